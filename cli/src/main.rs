//! `tenure`: the one binary of Tenure.

mod args;
mod commands;
mod context;
mod logging;
mod memory;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Errors are reported as one line; a panic is a bug, but even then the user gets one line
    // rather than a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let location = info.location().map(|l| format!(" at {}:{}", l.file(), l.line())).unwrap_or_default();
        eprintln!("error: internal error{location}; please report it");
    }));
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => error.exit(), // --help and --version
        Err(error) => {
            // clap's first paragraph says what is wrong, sometimes over several lines; the rest
            // is a usage tip.
            let message = error.to_string();
            let what: Vec<&str> = message.lines().take_while(|l| !l.trim().is_empty()).map(str::trim).collect();
            eprintln!("{}", what.join(" "));
            return ExitCode::from(2);
        }
    };
    // Rust ignores SIGPIPE, which turns `tenure audit … | head` into a write error; commands that
    // print get the default back, so that a closed pipe ends them quietly, as it does for other
    // tools. A server keeps ignoring it: a client that goes away while the gateway writes to it
    // (a vectored write, as TLS and HTTP/1 make, raises SIGPIPE) must not end the process.
    #[cfg(unix)]
    if !cli.command.serves() {
        // SAFETY: no other thread exists yet.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .max_blocking_threads(memory::BLOCKING_THREADS)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(error) => {
            // `{:#}` joins anyhow's context chain on one line.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
