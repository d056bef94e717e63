// Debian ships the reference implementation as libargon2.so.1 only (no -dev symlink needed).
fn main() {
    println!("cargo:rustc-link-arg=/usr/lib/x86_64-linux-gnu/libargon2.so.1");
}
