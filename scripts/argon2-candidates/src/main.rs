//! Argon2id candidates side by side (issue 19): the same hash from each, then hashes per second
//! on one thread, in alternating rounds. Not part of the workspace, so the product does not
//! depend on the candidates:
//! `cargo run --release --manifest-path scripts/argon2-candidates/Cargo.toml`
//! (needs Debian's `libargon2-1`, the reference C implementation). Figures: docs/performance.md.

use std::time::Instant;

extern "C" {
    fn argon2id_hash_raw(
        t_cost: u32,
        m_cost: u32,
        parallelism: u32,
        pwd: *const u8,
        pwdlen: usize,
        salt: *const u8,
        saltlen: usize,
        hash: *mut u8,
        hashlen: usize,
    ) -> i32;
}

/// One candidate: the raw 32-byte hash of `PW` and `SALT`.
type Candidate = (&'static str, fn() -> [u8; 32]);

const M: u32 = 19_456;
const T: u32 = 2;
const PW: &[u8] = b"correct horse battery staple";
const SALT: &[u8] = b"sixteen byte slt";

fn rc05() -> [u8; 32] {
    use argon2_05::{Algorithm, Argon2, Params, Version};
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(M, T, 1, Some(32)).unwrap());
    let mut out = [0u8; 32];
    a.hash_password_into(PW, SALT, &mut out).unwrap();
    out
}
fn rc06() -> [u8; 32] {
    use argon2_06::{Algorithm, Argon2, Params, Version};
    let a = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(M, T, 1, Some(32)).unwrap());
    let mut out = [0u8; 32];
    a.hash_password_into(PW, SALT, &mut out).unwrap();
    out
}
fn rust_argon2() -> [u8; 32] {
    let config = rargon2::Config {
        variant: rargon2::Variant::Argon2id,
        version: rargon2::Version::Version13,
        mem_cost: M,
        time_cost: T,
        lanes: 1,
        secret: &[],
        ad: &[],
        hash_length: 32,
        thread_mode: rargon2::ThreadMode::Sequential,
    };
    rargon2::hash_raw(PW, SALT, &config).unwrap().try_into().unwrap()
}
fn libargon2() -> [u8; 32] {
    let mut out = [0u8; 32];
    let rc =
        unsafe { argon2id_hash_raw(T, M, 1, PW.as_ptr(), PW.len(), SALT.as_ptr(), SALT.len(), out.as_mut_ptr(), 32) };
    assert_eq!(rc, 0);
    out
}

fn main() {
    let cands: [Candidate; 4] = [
        ("argon2 0.5.3 (RustCrypto, in use)", rc05),
        ("argon2 0.6.0 (RustCrypto)", rc06),
        ("rust-argon2 3", rust_argon2),
        ("libargon2 (Debian libargon2-1, reference C)", libargon2),
    ];
    let reference = libargon2();
    for (name, f) in &cands {
        assert_eq!(f(), reference, "{name} gives another hash");
    }
    println!(
        "all four give the same Argon2id hash (m={M} KiB, t={T}, p=1): {}",
        reference.iter().map(|b| format!("{b:02x}")).collect::<String>()
    );
    let rounds = 6;
    let per = 12;
    let mut rates = vec![Vec::new(); cands.len()];
    for _ in 0..rounds {
        for (i, (_, f)) in cands.iter().enumerate() {
            let started = Instant::now();
            for _ in 0..per {
                std::hint::black_box(f());
            }
            rates[i].push(per as f64 / started.elapsed().as_secs_f64());
        }
    }
    let median = |v: &Vec<f64>| {
        let mut v = v.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
    };
    let base = median(&rates[0]);
    for (i, (name, _)) in cands.iter().enumerate() {
        let m = median(&rates[i]);
        println!(
            "{name:48} {m:7.1} hashes/s on one thread  {:.2} x argon2 0.5.3   (rounds: {})",
            m / base,
            rates[i].iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>().join(" ")
        );
    }
}
