//! Debian's nginx as the reverse proxy of docs/operations.md, in front of gateways: round-robin
//! without stickiness, `X-Forwarded-For` and `X-Request-Id` set, connecting from 127.0.0.3 so
//! that the gateways can tell it (a trusted proxy) from the test client (127.0.0.1).
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const NGINX_ADDRESS: &str = "127.0.0.3";
const NGINX: &str = "/usr/sbin/nginx";

pub struct Nginx {
    child: Child,
    pub base: String,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    /// SIGTERM, so that the master stops its workers too (SIGKILL would orphan them).
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let asked = Instant::now();
        while self.child.try_wait().ok().flatten().is_none() && asked.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration docs/operations.md shows, for gateways on `upstreams`.
pub fn config(listen: u16, upstreams: &[u16], dir: &std::path::Path) -> String {
    let servers: String = upstreams.iter().map(|port| format!("        server 127.0.0.1:{port};\n")).collect();
    let dir = dir.display();
    format!(
        "worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream tenure {{
{servers}    }}
    server {{
        listen 127.0.0.1:{listen};
        location / {{
            proxy_pass http://tenure;
            proxy_bind {NGINX_ADDRESS};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Request-Id $request_id;
            # Which gateway answered, for the tests to see the steps alternate.
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"
    )
}

impl Nginx {
    /// What nginx logged (warnings and errors): why a request failed, when one did.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("error.log")).unwrap_or_default()
    }

    pub fn start(upstreams: &[u16]) -> Nginx {
        assert!(std::path::Path::new(NGINX).exists(), "{NGINX} is missing: scripts/test installs nginx");
        let dir = tempfile::tempdir().unwrap();
        let port = super::port::free_port();
        let file = dir.path().join("nginx.conf");
        std::fs::write(&file, config(port, upstreams, dir.path())).unwrap();
        let child = Command::new(NGINX)
            .arg("-c")
            .arg(&file)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        super::port::wait_until_listening(port, Duration::from_secs(10), "nginx");
        Nginx { child, base: format!("http://127.0.0.1:{port}"), _dir: dir }
    }
}
