#![allow(dead_code)]
//! A real SMTP server for tests: aiosmtpd (installed by scripts/test), delivering into a
//! maildir that tests read.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct SmtpSink {
    process: Child,
    pub maildir: tempfile::TempDir,
    pub port: u16,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

pub fn smtp_sink() -> SmtpSink {
    let port = super::port::free_port();
    let maildir = tempfile::tempdir().unwrap();
    let process = launch(port, maildir.path());
    SmtpSink { process, maildir, port }
}

fn launch(port: u16, maildir: &Path) -> Child {
    let process = Command::new("python3")
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir.join("mail"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 with aiosmtpd is needed (scripts/test installs it)");
    super::port::wait_until_listening(port, Duration::from_secs(20), "aiosmtpd (scripts/test installs it)");
    process
}

impl SmtpSink {
    /// The mail server goes away: connections to its port are refused.
    pub fn stop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }

    /// The mail server comes back on the same port, keeping what it received.
    pub fn restart(&mut self) {
        self.process = launch(self.port, self.maildir.path());
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<String> {
        fn walk(dir: &Path, files: &mut Vec<(std::time::SystemTime, String)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                // A maildir writes each message into tmp/ first, then moves it whole into new/:
                // what is in tmp/ may be half written.
                if path.is_dir() {
                    if !path.ends_with("tmp") {
                        walk(&path, files);
                    }
                } else if let (Ok(text), Ok(meta)) = (std::fs::read_to_string(&path), entry.metadata()) {
                    files.push((meta.modified().unwrap_or(std::time::UNIX_EPOCH), text));
                }
            }
        }
        let mut files = Vec::new();
        walk(self.maildir.path(), &mut files);
        files.sort_by_key(|(at, _)| *at);
        files.into_iter().map(|(_, text)| text).collect()
    }

    /// Waits for the `n`-th message (1-based) to arrive and returns it.
    pub fn wait_for_message(&self, n: usize) -> String {
        let started = Instant::now();
        loop {
            let mut messages = self.messages();
            if messages.len() >= n {
                return messages.swap_remove(n - 1);
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no message {n} arrived");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The six-digit code in a Tenure code mail ("Your verification code is 123456.").
pub fn code_in(message: &str) -> String {
    let at = message.find("code is ").unwrap_or_else(|| panic!("not a code mail: {message}")) + "code is ".len();
    let code: String = message[at..].chars().take(6).collect();
    assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()), "{code:?} in {message}");
    code
}
