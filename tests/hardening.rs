//! The hardening of issue 14, against the `tenure` binary over real sockets: wrong passwords
//! sent at once cannot tell a real username from a made-up one (API and HTML forms), an attacker
//! cannot lock the owner out, and clients that stall are disconnected within their limits while
//! normal clients see no error.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support {
    pub mod gateway;
    pub mod port;
}
use support::gateway::{Server, serve_with};

const PASSWORD: &str = "plum-harbour-violin-4417";
const CHEAP: [&str; 4] = ["--argon2-memory-kib", "1024", "--argon2-iterations", "1"];

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).max_redirects(0).build().into()
}

struct Answer {
    status: u16,
    body: String,
    retry_after: Option<String>,
    location: Option<String>,
    cookie: Option<String>,
}

/// A request as a client behind the trusted proxy at 127.0.0.1 sends it, from `client`.
fn send(http: &ureq::Agent, url: &str, client: &str, body: Body, session: Option<(&str, &str)>) -> Answer {
    let mut request = ureq::http::Request::builder().method(if body.is_get() { "GET" } else { "POST" }).uri(url);
    request = request.header("X-Forwarded-For", client);
    if let Some((cookie, csrf)) = session {
        request = request.header("Cookie", format!("tenure_session={cookie}")).header("X-CSRF-Token", csrf);
    }
    let (content_type, text) = match body {
        Body::None => ("text/plain", String::new()),
        Body::Json(json) => ("application/json", json.to_string()),
        Body::Form(fields) => ("application/x-www-form-urlencoded", fields),
    };
    let request = request.header("Content-Type", content_type).body(text).unwrap();
    let mut response = http.run(request).unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let (retry_after, location) = (header("retry-after"), header("location"));
    let cookie =
        header("set-cookie").map(|c| c.trim_start_matches("tenure_session=").split(';').next().unwrap().to_string());
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Answer { status, body, retry_after, location, cookie }
}

enum Body {
    None,
    Json(Value),
    Form(String),
}

impl Body {
    fn is_get(&self) -> bool {
        matches!(self, Body::None)
    }
}

/// One gateway on the embedded store, trusting 127.0.0.1 as its proxy, with an administrator.
struct Portal {
    server: Server,
    _dir: tempfile::TempDir,
    admin: (String, String),
}

impl Portal {
    fn start(extra: &[&str]) -> Portal {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--trusted-proxies", "127.0.0.1"];
        args.extend(CHEAP);
        args.extend(extra);
        let server = serve_with(dir.path(), &args);
        let token = server.invitation.rsplit('/').next().unwrap().to_string();
        let portal = Portal { server, _dir: dir, admin: (String::new(), String::new()) };
        let admin = portal.onboard(&token);
        Portal { admin, ..portal }
    }

    fn api(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.server.base)
    }

    /// Sets the password and accepts the terms of the invitation `token`: a session and its CSRF token.
    fn onboard(&self, token: &str) -> (String, String) {
        let http = agent();
        let set = json!({"new_password": PASSWORD, "confirm_password": PASSWORD});
        let set =
            send(&http, &self.api(&format!("/invitations/{token}/password")), "192.0.2.200", Body::Json(set), None);
        assert_eq!(set.status, 200, "{}", set.body);
        let terms = json!({"accept": true, "version": 1});
        let done =
            send(&http, &self.api(&format!("/invitations/{token}/terms")), "192.0.2.200", Body::Json(terms), None);
        let cookie = done.cookie.expect("a session");
        let session = send(&http, &self.api("/session"), "192.0.2.200", Body::None, Some((&cookie, "")));
        let csrf = serde_json::from_str::<Value>(&session.body).unwrap()["csrf_token"].as_str().unwrap().to_string();
        (cookie, csrf)
    }

    /// A user who has signed in once.
    fn user(&self, username: &str) {
        let http = agent();
        let body = json!({"username": username, "email": format!("{username}@example.com")});
        let admin = (self.admin.0.as_str(), self.admin.1.as_str());
        let created = send(&http, &self.api("/admin/users"), "192.0.2.200", Body::Json(body), Some(admin));
        assert_eq!(created.status, 201, "{}", created.body);
        let url = serde_json::from_str::<Value>(&created.body).unwrap()["invitation_url"].as_str().unwrap().to_string();
        self.onboard(url.rsplit('/').next().unwrap());
    }

    /// A new sign-in flow for `username` from `client`, by the API or by the sign-in page.
    fn flow(&self, http: &ureq::Agent, username: &str, client: &str, html: bool) -> String {
        if html {
            let form = Body::Form(format!("username={username}"));
            let started = send(http, &format!("{}/sign-in", self.server.base), client, form, None);
            assert_eq!(started.status, 303, "{}", started.body);
            started.location.unwrap().rsplit('/').next().unwrap().to_string()
        } else {
            let started = send(http, &self.api("/sign-in"), client, Body::Json(json!({"username": username})), None);
            serde_json::from_str::<Value>(&started.body).unwrap()["flow"].as_str().unwrap().to_string()
        }
    }

    fn password(&self, http: &ureq::Agent, flow: &str, password: &str, client: &str, html: bool) -> Answer {
        if html {
            let form = Body::Form(format!("password={password}"));
            send(http, &format!("{}/sign-in/{flow}/password", self.server.base), client, form, None)
        } else {
            let body = Body::Json(json!({ "password": password }));
            send(http, &self.api(&format!("/sign-in/{flow}/password")), client, body, None)
        }
    }
}

/// Status, body (with the flow id and the name blanked out) and Retry-After.
type Seen = (u16, String, Option<String>);

fn seen(answer: &Answer, flow: &str, name: &str) -> Seen {
    (answer.status, answer.body.replace(flow, "FLOW").replace(name, "NAME"), answer.retry_after.clone())
}

/// `n` wrong passwords for `name` sent at once from `client`, then one more: what each got,
/// sorted, and what the one more got.
fn burst(portal: &Portal, name: &str, client: &str, n: usize, html: bool) -> (Vec<Seen>, Seen) {
    let http = agent();
    let flows: Vec<String> = (0..n).map(|_| portal.flow(&http, name, client, html)).collect();
    let start = Arc::new(std::sync::Barrier::new(n));
    let mut answers: Vec<Seen> = std::thread::scope(|scope| {
        let handles: Vec<_> = flows
            .iter()
            .map(|flow| {
                let start = start.clone();
                scope.spawn(move || {
                    let http = agent();
                    start.wait();
                    seen(&portal.password(&http, flow, "wrong-guess", client, html), flow, name)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    answers.sort();
    let flow = portal.flow(&http, name, client, html);
    let next = seen(&portal.password(&http, &flow, "wrong-guess", client, html), &flow, name);
    (answers, next)
}

#[test]
fn wrong_passwords_sent_at_once_answer_alike_for_real_and_made_up_names() {
    let portal = Portal::start(&["--address-failures-per-minute", "1000"]);
    let mut round = 0;
    for html in [false, true] {
        for n in [12, 30] {
            // Names of one length, so that pages showing them are byte for byte comparable.
            let (known, made_up) = (format!("real{n:02}{}", html as u8), format!("fake{n:02}{}", html as u8));
            portal.user(&known);
            round += 1;
            let known_seen = burst(&portal, &known, &format!("198.51.100.{round}"), n, html);
            round += 1;
            let made_up_seen = burst(&portal, &made_up, &format!("198.51.100.{round}"), n, html);
            let what = format!("{n} at once, {}", if html { "HTML" } else { "API" });
            let statuses = |seen: &[Seen]| seen.iter().map(|s| s.0).collect::<Vec<_>>();
            assert_eq!(statuses(&known_seen.0), statuses(&made_up_seen.0), "{what}");
            assert_eq!(statuses(&known_seen.0).iter().filter(|s| **s == 401).count(), 5, "{what}");
            for (k, m) in known_seen.0.iter().zip(&made_up_seen.0) {
                assert_eq!(k.1, m.1, "{what}: the same body");
                let wait = |s: &Seen| s.2.as_deref().map(|w| w.parse::<i64>().unwrap());
                assert!(wait(k).zip(wait(m)).is_none_or(|(k, m)| (k - m).abs() <= 1), "{what}: {:?} {:?}", k.2, m.2);
                assert_eq!(k.2.is_some(), m.2.is_some(), "{what}");
            }
            let (k, m) = (&known_seen.1, &made_up_seen.1);
            assert_eq!((k.0, &k.1), (m.0, &m.1), "{what}: the attempt after");
            let wait = |s: &Seen| s.2.as_deref().unwrap().parse::<i64>().unwrap();
            assert!((wait(k) - wait(m)).abs() <= 1 && wait(k) > 55, "{what}: Retry-After {:?} {:?}", k.2, m.2);
        }
    }
}

#[test]
fn an_attacker_failing_a_hundred_times_does_not_keep_the_owner_out() {
    let portal = Portal::start(&["--address-failures-per-minute", "1000"]);
    portal.user("owner");
    let http = agent();
    let mut statuses = Vec::new();
    for _ in 0..100 {
        let flow = portal.flow(&http, "owner", "203.0.113.66", false);
        statuses.push(portal.password(&http, &flow, "wrong-guess", "203.0.113.66", false).status);
    }
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 95, "{statuses:?}");
    // The right password from the attacker's address waits too...
    let flow = portal.flow(&http, "owner", "203.0.113.66", false);
    assert_eq!(portal.password(&http, &flow, PASSWORD, "203.0.113.66", false).status, 429);
    // ...but the owner, from another address, gets in at once, by the API and by the page.
    let flow = portal.flow(&http, "owner", "192.0.2.10", false);
    let owner = portal.password(&http, &flow, PASSWORD, "192.0.2.10", false);
    assert_eq!((owner.status, owner.body.as_str()), (200, r#"{"next":"done"}"#));
    let flow = portal.flow(&http, "owner", "192.0.2.11", true);
    let page = portal.password(&http, &flow, PASSWORD, "192.0.2.11", true);
    assert_eq!((page.status, page.location.as_deref()), (303, Some("/dashboard")), "{}", page.body);
}

/// A TCP connection to the gateway from the loopback address `from` (127.0.0.x).
fn connect(server: &Server, from: &str) -> TcpStream {
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let stream = if from == "127.0.0.1" {
        // Bound explicitly, the socket would take its port from the pool `free_port` draws on,
        // and could hold the one a gateway of a test running beside this one is about to bind.
        TcpStream::connect(("127.0.0.1", port)).unwrap()
    } else {
        let local: SocketAddr = format!("{from}:0").parse().unwrap();
        // std cannot bind before it connects; tokio's socket can.
        let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build().unwrap();
        let stream = runtime.block_on(async {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(local).unwrap();
            socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap()
        });
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    };
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream
}

/// How long until the server closes `stream`, once `sent` has been written (the connection is
/// then read to its end, answers included).
fn closed_after(mut stream: TcpStream, sent: &[u8]) -> Duration {
    let started = Instant::now();
    stream.write_all(sent).unwrap();
    let mut sink = [0u8; 4096];
    loop {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

#[test]
fn stalled_clients_are_dropped_within_their_limits_while_normal_clients_see_no_error() {
    let portal = Portal::start(&[
        "--header-timeout-secs",
        "2",
        "--idle-timeout-secs",
        "4",
        "--body-timeout-secs",
        "3",
        "--connections-per-address",
        "80",
    ]);
    // Fifty normal clients on keep-alive connections, asking a page and signing in badly,
    // all the while.
    let stop = Arc::new(AtomicBool::new(false));
    let (served, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..50)
        .map(|n| {
            let (stop, served, failed) = (stop.clone(), served.clone(), failed.clone());
            let base = portal.server.base.clone();
            std::thread::spawn(move || {
                let http = agent();
                while !stop.load(Ordering::Relaxed) {
                    let healthy = send(&http, &format!("{base}/healthz"), &format!("192.0.2.{n}"), Body::None, None);
                    let body = Body::Json(json!({"username": format!("someone{n}")}));
                    let started = send(&http, &format!("{base}/api/v1/sign-in"), &format!("192.0.2.{n}"), body, None);
                    if healthy.status == 200 && started.status == 200 {
                        served.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();

    let server = &portal.server;
    let timed = std::thread::scope(|scope| {
        let nothing = scope.spawn(|| closed_after(connect(server, "127.0.0.1"), b""));
        let headers =
            scope.spawn(|| closed_after(connect(server, "127.0.0.1"), b"GET /healthz HTTP/1.1\r\nHost: x\r\n"));
        let body = scope.spawn(|| {
            let head = b"POST /api/v1/sign-in HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"user";
            closed_after(connect(server, "127.0.0.1"), head)
        });
        let idle =
            scope.spawn(|| closed_after(connect(server, "127.0.0.1"), b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        let slow = scope.spawn(|| {
            // One byte every half second: never quite stalled, never done.
            let mut stream = connect(server, "127.0.0.1");
            let started = Instant::now();
            for byte in b"GET /healthz HTTP/1.1\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n" {
                if stream.write_all(&[*byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            started.elapsed()
        });
        [nothing, headers, body, idle, slow].map(|h| h.join().unwrap())
    });
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let [nothing, headers, body, idle, slow] = timed;
    let within = |took: Duration, limit: u64| {
        took >= Duration::from_millis(limit * 1000 - 300) && took < Duration::from_millis(limit * 1000 + 1500)
    };
    assert!(within(nothing, 2), "a connection that sends nothing: {nothing:?}");
    assert!(within(headers, 2), "half-sent headers: {headers:?}");
    assert!(within(body, 3), "half-sent body: {body:?}");
    assert!(within(idle, 4), "an idle keep-alive connection, after its answer: {idle:?}");
    assert!(slow < Duration::from_secs(4), "headers a byte at a time are cut at the header timeout: {slow:?}");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "normal clients saw errors");
    assert!(served.load(Ordering::Relaxed) > 200, "normal clients were served: {}", served.load(Ordering::Relaxed));
}

#[test]
fn one_address_holds_only_its_share_of_connections_and_a_trusted_proxy_is_not_capped() {
    let portal = Portal::start(&["--connections-per-address", "20"]);
    let server = &portal.server;
    let held: Vec<TcpStream> = (0..20).map(|_| connect(server, "127.0.0.2")).collect();
    // The 21st is closed at once, before it can ask anything.
    let refused = closed_after(connect(server, "127.0.0.2"), b"");
    assert!(refused < Duration::from_millis(500), "{refused:?}");
    // Another address is not held back, nor is the trusted proxy with 40 at once.
    let mut other = connect(server, "127.0.0.3");
    other.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    other.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    let proxied: Vec<TcpStream> = (0..40).map(|_| connect(server, "127.0.0.1")).collect();
    for mut stream in proxied {
        stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = [0u8; 12];
        stream.read_exact(&mut answer).unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200");
    }
    // A closed connection gives its address a slot back.
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = connect(server, "127.0.0.2");
    again.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = [0u8; 12];
    again.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
}

/// Where scripts/test installed schemathesis (PyPI), unless TENURE_SCHEMATHESIS names another.
fn schemathesis() -> std::path::PathBuf {
    let path = std::env::var_os("TENURE_SCHEMATHESIS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/schemathesis/bin/st"));
    assert!(path.exists(), "{} is missing: scripts/test installs schemathesis", path.display());
    path
}

#[test]
fn the_api_answers_only_what_its_openapi_document_says() {
    let portal = Portal::start(&["--address-failures-per-minute", "1000000"]);
    // Ids that exist, so that cases reach past the 404s: a sign-in flow, an invitation, an account.
    let http = agent();
    let body = json!({"username": "fuzzed", "email": "fuzzed@example.com", "mfa": "email"});
    let admin = (portal.admin.0.as_str(), portal.admin.1.as_str());
    let created = send(&http, &portal.api("/admin/users"), "192.0.2.200", Body::Json(body), Some(admin));
    let created: Value = serde_json::from_str(&created.body).unwrap();
    let token = created["invitation_url"].as_str().unwrap().rsplit('/').next().unwrap();
    let flow = portal.flow(&http, "admin", "192.0.2.200", false);
    let config = tempfile::tempdir().unwrap();
    let parameters = format!(
        "[parameters]\n\"path.flow\" = \"{flow}\"\n\"path.token\" = \"{token}\"\n\"path.id\" = \"{}\"\n",
        created["account_id"].as_str().unwrap()
    );
    std::fs::write(config.path().join("schemathesis.toml"), parameters).unwrap();
    let base = &portal.server.base;
    let output = std::process::Command::new(schemathesis())
        .current_dir(config.path())
        .args(["run", &format!("{base}/api/openapi.json"), "--url", base])
        .args(["-H", &format!("Cookie: tenure_session={}", portal.admin.0)])
        .args(["-H", &format!("X-CSRF-Token: {}", portal.admin.1)])
        .args(["--checks", "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance"])
        // Both end the session every other case needs; their answers are tested on their own.
        .args(["--exclude-path", "/api/v1/sign-out", "--exclude-path", "/api/v1/profile/password"])
        .args(["--phases", "examples,coverage,fuzzing", "--max-examples", "100", "--seed", "20261202"])
        // One worker: Python 3.11's parser is not safe across threads, and with two workers
        // hypothesis's look at its own lambdas died now and then ("AST constructor recursion
        // depth mismatch"), twice in a row on CI, which says nothing about the API.
        .args(["--no-color", "--workers", "1", "--continue-on-failure"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let generated: usize = report
        .lines()
        .find_map(|line| line.trim().strip_suffix(" passed")?.split_once(" generated, ").map(|(n, _)| n.parse().ok()))
        .flatten()
        .unwrap_or_else(|| panic!("no count of cases in:\n{report}"));
    assert!(generated >= 2000, "only {generated} cases:\n{report}");
}
