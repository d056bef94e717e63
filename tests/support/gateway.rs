//! The `tenure` gateway as a process: started on a free port (printing its bootstrap link), and
//! the HTTP helpers the end-to-end tests drive it with.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::port::{free_port, listening};

pub struct Server {
    pub child: Child,
    pub base: String,
    pub invitation: String,
    /// Its log (stderr), shown when a test fails while the server is up.
    log: std::path::PathBuf,
    _unnamed_log: Option<tempfile::TempPath>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // A failure that a request met may have its cause here: the process gone, or an error.
            let state = self.child.try_wait();
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("tenure serve at {} (exited: {state:?}); the end of its log:\n{tail}", self.base);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn serve(data_dir: &std::path::Path) -> Server {
    serve_with(data_dir, &[])
}

pub fn serve_with(data_dir: &std::path::Path, extra: &[&str]) -> Server {
    let server = start(data_dir, extra);
    assert!(!server.invitation.is_empty(), "the bootstrap invitation link");
    server
}

/// `tenure serve`, once it listens; `invitation` is empty when it printed no link.
pub fn start(data_dir: &std::path::Path, extra: &[&str]) -> Server {
    start_on(data_dir, free_port(), extra)
}

/// `tenure serve` on `port` (a gateway restarted where the proxy expects it).
pub fn start_on(data_dir: &std::path::Path, port: u16, extra: &[&str]) -> Server {
    let log = tempfile::NamedTempFile::new().unwrap().into_temp_path();
    launch(data_dir, port, extra, log.to_path_buf(), Some(log))
}

/// `tenure serve` with its log (stderr) written to `log`.
pub fn start_logging(data_dir: &std::path::Path, extra: &[&str], log: &std::path::Path) -> Server {
    launch(data_dir, free_port(), extra, log.to_path_buf(), None)
}

fn launch(
    data_dir: &std::path::Path,
    port: u16,
    extra: &[&str],
    log: std::path::PathBuf,
    unnamed_log: Option<tempfile::TempPath>,
) -> Server {
    let stderr = Stdio::from(std::fs::File::create(&log).unwrap());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--insecure-cookies"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    // The link, if any, is printed before the server listens.
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let (found, link) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("invitation_url: ") {
                let _ = found.send(url.to_string());
            }
        }
    });
    let started = Instant::now();
    while !listening(port) {
        assert!(started.elapsed() < Duration::from_secs(30), "tenure serve did not listen");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("tenure serve exited: {status}; its log:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let invitation = link.recv_timeout(Duration::from_millis(200)).unwrap_or_default();
    Server { child, base: format!("http://127.0.0.1:{port}"), invitation, log, _unnamed_log: unnamed_log }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

pub fn post(
    agent: &ureq::Agent,
    url: &str,
    body: Value,
    cookie: Option<&str>,
    csrf: Option<&str>,
) -> (u16, Option<String>, Value) {
    let mut request = agent.post(url);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", &format!("tenure_session={cookie}"));
    }
    if let Some(csrf) = csrf {
        request = request.header("X-CSRF-Token", csrf);
    }
    let mut response = request.send_json(body).unwrap();
    let status = response.status().as_u16();
    let cookie = response.headers().get("set-cookie").map(|v| v.to_str().unwrap().to_string());
    let json = response.body_mut().read_json::<Value>().unwrap_or(Value::Null);
    (status, cookie, json)
}

pub fn get(agent: &ureq::Agent, url: &str, cookie: Option<&str>) -> (u16, Value) {
    let mut request = agent.get(url);
    if let Some(cookie) = cookie {
        request = request.header("Cookie", &format!("tenure_session={cookie}"));
    }
    let mut response = request.call().unwrap();
    (response.status().as_u16(), response.body_mut().read_json::<Value>().unwrap_or(Value::Null))
}

pub fn rand_byte() -> u8 {
    let mut byte = [0u8; 1];
    getrandom::fill(&mut byte).unwrap();
    byte[0]
}
