//! SPEC §9 and §11 as an operator deploys it: Debian's nginx round-robin in front of two
//! `tenure serve` processes on one PostgreSQL database, a rolling restart under load, many users
//! behind one address, and HTTPS reloaded on SIGHUP.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};
use tenure_gateway::totp::Authenticator;

mod support {
    pub mod gateway;
    pub mod nginx;
    pub mod port;
}
use support::gateway::{Server, agent, rand_byte, serve_with, start, start_on};
use support::nginx::{NGINX_ADDRESS, Nginx};

const PASSWORD: &str = "plum-harbour-violin-4417";
const CHEAP: [&str; 4] = ["--argon2-memory-kib", "1024", "--argon2-iterations", "1"];

/// What a call through the proxy answered, and which gateway answered it.
struct Answer {
    status: u16,
    json: Value,
    upstream: String,
    cookie: Option<String>,
    retry_after: Option<String>,
}

fn call(http: &ureq::Agent, method: &str, url: &str, body: Option<Value>, session: Option<(&str, &str)>) -> Answer {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some((cookie, csrf)) = session {
        request = request.header("Cookie", format!("tenure_session={cookie}")).header("X-CSRF-Token", csrf);
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let request = request.header("Content-Type", "application/json").body(body).unwrap();
    let mut response = http.run(request).unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    let (upstream, retry_after) = (header("x-upstream").unwrap_or_default(), header("retry-after"));
    let cookie =
        header("set-cookie").map(|c| c.trim_start_matches("tenure_session=").split(';').next().unwrap().to_string());
    let status = response.status().as_u16();
    let json = response.body_mut().read_json::<Value>().unwrap_or(Value::Null);
    Answer { status, json, upstream, cookie, retry_after }
}

/// Two gateways on one fresh PostgreSQL database (each with its own data directory holding the
/// same master key, as on two hosts), trusting nginx's address, and nginx in front.
struct Deployment {
    _database: tenure_store::conformance::TestDatabase,
    _runtime: tokio::runtime::Runtime,
    gateways: Vec<(Server, tempfile::TempDir, u16)>,
    args: Vec<String>,
    nginx: Nginx,
    admin: (String, String),
}

impl Deployment {
    fn start() -> Deployment {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let database = runtime.block_on(tenure_store::conformance::TestDatabase::create());
        let mut args: Vec<String> =
            vec!["--store".into(), database.url.clone(), "--trusted-proxies".into(), NGINX_ADDRESS.into()];
        args.extend(CHEAP.iter().map(|s| s.to_string()));
        let master: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
        let mut gateways = Vec::new();
        let mut invitation = String::new();
        for n in 0..2 {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("master.key"), &master).unwrap();
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            let server = if n == 0 { serve_with(dir.path(), &refs) } else { start(dir.path(), &refs) };
            if n == 0 {
                invitation = server.invitation.clone();
            }
            let port = server.base.rsplit(':').next().unwrap().parse().unwrap();
            gateways.push((server, dir, port));
        }
        let ports: Vec<u16> = gateways.iter().map(|g| g.2).collect();
        let nginx = Nginx::start(&ports);
        let http = agent();
        let token = invitation.rsplit('/').next().unwrap();
        let api = format!("{}/api/v1", nginx.base);
        let set = json!({"new_password": PASSWORD, "confirm_password": PASSWORD});
        assert_eq!(call(&http, "POST", &format!("{api}/invitations/{token}/password"), Some(set), None).status, 200);
        let terms = call(
            &http,
            "POST",
            &format!("{api}/invitations/{token}/terms"),
            Some(json!({"accept": true, "version": 1})),
            None,
        );
        let cookie = terms.cookie.expect("the administrator's session");
        let csrf = call(&http, "GET", &format!("{api}/session"), None, Some((&cookie, ""))).json["csrf_token"]
            .as_str()
            .unwrap()
            .to_string();
        Deployment { _database: database, _runtime: runtime, gateways, args, nginx, admin: (cookie, csrf) }
    }

    fn api(&self) -> String {
        format!("{}/api/v1", self.nginx.base)
    }

    /// Invites `username` through the admin API; returns the invitation token.
    fn invite(&self, http: &ureq::Agent, username: &str, mfa: &str) -> String {
        let body = json!({"username": username, "email": format!("{username}@example.com"), "mfa": mfa});
        let admin = (self.admin.0.as_str(), self.admin.1.as_str());
        let created = call(http, "POST", &format!("{}/admin/users", self.api()), Some(body), Some(admin));
        assert_eq!(created.status, 201, "{}", created.json);
        created.json["invitation_url"].as_str().unwrap().rsplit('/').next().unwrap().to_string()
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[test]
fn behind_nginx_any_gateway_serves_any_step_and_the_client_is_the_one_recorded() {
    let world = Deployment::start();
    let (http, api) = (agent(), world.api());
    // Re-enrollment needs a current code newer than the enrolling one: a few users move keys
    // right after their first sign-in, the others sign in again.
    let users: Vec<String> = (0..105).map(|n| format!("user{n:03}")).collect();
    let mut keys = Vec::new();
    let mut sessions = Vec::new();
    for user in &users {
        let token = world.invite(&http, user, "app");
        let base = format!("{api}/invitations/{token}");
        let mut upstreams = BTreeSet::new();
        let set = json!({"new_password": PASSWORD, "confirm_password": PASSWORD});
        let answer = call(&http, "POST", &format!("{base}/password"), Some(set), None);
        assert_eq!(answer.json["next"], "mfa", "{user}: {}", answer.json);
        upstreams.insert(answer.upstream);
        let started = call(&http, "POST", &format!("{base}/mfa/start"), None, None);
        upstreams.insert(started.upstream);
        let key = Authenticator::from_secret(started.json["secret"].as_str().unwrap(), "Tenure", user).unwrap();
        let verified =
            call(&http, "POST", &format!("{base}/mfa/verify"), Some(json!({"code": key.code_at(unix_now())})), None);
        assert_eq!(verified.json["next"], "terms", "{user}: {}", verified.json);
        upstreams.insert(verified.upstream);
        let done = call(&http, "POST", &format!("{base}/terms"), Some(json!({"accept": true, "version": 1})), None);
        assert_eq!(done.json["next"], "done", "{user}: {}", done.json);
        upstreams.insert(done.upstream);
        assert_eq!(upstreams.len(), 2, "{user}'s first sign-in went through both gateways: {upstreams:?}");
        keys.push(key);
        sessions.push(done.cookie.unwrap());
    }

    // My Profile: a new key offered by one gateway, confirmed on the other.
    for n in 0..5 {
        let cookie = &sessions[n];
        let csrf = call(&http, "GET", &format!("{api}/session"), None, Some((cookie, ""))).json["csrf_token"]
            .as_str()
            .unwrap()
            .to_string();
        let offered = call(&http, "POST", &format!("{api}/profile/mfa/start"), None, Some((cookie, &csrf)));
        let new_key =
            Authenticator::from_secret(offered.json["secret"].as_str().unwrap(), "Tenure", &users[n]).unwrap();
        let now = unix_now();
        let codes = json!({"current_code": keys[n].code_at(now + 30), "code": new_key.code_at(now)});
        let moved = call(&http, "POST", &format!("{api}/profile/mfa/verify"), Some(codes), Some((cookie, &csrf)));
        assert_eq!(moved.status, 200, "{}: {}", users[n], moved.json);
        assert_eq!(moved.json["recovery_codes"].as_array().map(Vec::len), Some(10), "{}", moved.json);
        assert_ne!(offered.upstream, moved.upstream, "the key was offered and confirmed on different gateways");
    }

    // 100 complete sign-ins: username, password, a code from the enrolled key.
    let mut alternated = 0;
    for n in 5..105 {
        let user = &users[n];
        let started = call(&http, "POST", &format!("{api}/sign-in"), Some(json!({"username": user})), None);
        let flow = started.json["flow"].as_str().unwrap().to_string();
        let password =
            call(&http, "POST", &format!("{api}/sign-in/{flow}/password"), Some(json!({"password": PASSWORD})), None);
        assert_eq!(password.json["next"], "totp", "{user}: {}", password.json);
        let code = json!({"code": keys[n].code_at(unix_now() + 30)});
        let done = call(&http, "POST", &format!("{api}/sign-in/{flow}/code"), Some(code), None);
        assert_eq!((done.status, &done.json["next"]), (200, &json!("done")), "{user}: {}", done.json);
        let upstreams: BTreeSet<_> = [&started.upstream, &password.upstream, &done.upstream].into_iter().collect();
        alternated += usize::from(upstreams.len() == 2);
        // What the sign-in recorded: the test client's address, not nginx's.
        if n == 5 {
            let profile = call(&http, "GET", &format!("{api}/profile"), None, Some((&done.cookie.unwrap(), "")));
            assert_eq!(profile.json["recent_sign_ins"][0]["client_address"], "127.0.0.1", "{}", profile.json);
        }
    }
    assert_eq!(alternated, 100, "every sign-in's steps went through both gateways");
}

#[test]
fn a_gateway_restarted_in_the_middle_of_concurrent_sign_ins_loses_none() {
    let mut world = Deployment::start();
    let http = agent();
    let api = world.api();
    let users: Vec<String> = (0..20).map(|n| format!("member{n:02}")).collect();
    for user in &users {
        let token = world.invite(&http, user, "none");
        let set = json!({"new_password": PASSWORD, "confirm_password": PASSWORD});
        assert_eq!(call(&http, "POST", &format!("{api}/invitations/{token}/password"), Some(set), None).status, 200);
        let terms = json!({"accept": true, "version": 1});
        assert_eq!(call(&http, "POST", &format!("{api}/invitations/{token}/terms"), Some(terms), None).status, 200);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = users
        .into_iter()
        .map(|user| {
            let (stop, done, api) = (stop.clone(), done.clone(), api.clone());
            std::thread::spawn(move || {
                let http = agent();
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let started = call(&http, "POST", &format!("{api}/sign-in"), Some(json!({"username": user})), None);
                    let Some(flow) = started.json["flow"].as_str() else {
                        failures.push(format!("{user}: username step {} {}", started.status, started.json));
                        continue;
                    };
                    let signed_in = call(
                        &http,
                        "POST",
                        &format!("{api}/sign-in/{flow}/password"),
                        Some(json!({"password": PASSWORD})),
                        None,
                    );
                    if signed_in.json["next"] == "done" {
                        done.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failures.push(format!("{user}: password step {} {}", signed_in.status, signed_in.json));
                    }
                }
                failures
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    let (mut server, dir, port) = world.gateways.remove(0);
    let before = done.load(Ordering::Relaxed);
    let child = &mut server.child;
    // SIGTERM: the gateway stops accepting, finishes what it has, releases its locks, exits 0.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let exited = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(exited.elapsed() < Duration::from_secs(15), "the gateway did not stop within the drain time");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "SIGTERM ends the gateway with 0: {status}");
    std::thread::sleep(Duration::from_secs(1));
    let refs: Vec<&str> = world.args.iter().map(String::as_str).collect();
    let restarted = start_on(dir.path(), port, &refs);
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(failures.is_empty(), "{} failed: {failures:#?}\nnginx: {}", failures.len(), world.nginx.error_log());
    let total = done.load(Ordering::Relaxed);
    assert!(total > before + 20, "sign-ins went on during the restart: {before} before, {total} in all");
    drop(restarted);
}

#[test]
fn three_hundred_users_behind_one_address_sign_in_while_an_address_that_fails_is_stopped() {
    let world = Deployment::start();
    let (http, api) = (agent(), world.api());
    let users: Vec<String> = (0..300).map(|n| format!("office{n:03}")).collect();
    for user in &users {
        let token = world.invite(&http, user, "none");
        let set = json!({"new_password": PASSWORD, "confirm_password": PASSWORD});
        assert_eq!(call(&http, "POST", &format!("{api}/invitations/{token}/password"), Some(set), None).status, 200);
        let terms = json!({"accept": true, "version": 1});
        assert_eq!(call(&http, "POST", &format!("{api}/invitations/{token}/terms"), Some(terms), None).status, 200);
    }
    let started = Instant::now();
    for user in &users {
        let flow = call(&http, "POST", &format!("{api}/sign-in"), Some(json!({"username": user})), None);
        assert_eq!(flow.status, 200, "{user}: {}", flow.json);
        let flow = flow.json["flow"].as_str().unwrap();
        let done =
            call(&http, "POST", &format!("{api}/sign-in/{flow}/password"), Some(json!({"password": PASSWORD})), None);
        assert_eq!((done.status, &done.json["next"]), (200, &json!("done")), "{user}: {}", done.json);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(60), "300 sign-ins from one address took {took:?}");

    // 40 wrong passwords from the same address, through both gateways: the 31st is refused.
    let mut refused_at = None;
    let failing = Instant::now();
    for (n, user) in users.iter().take(40).enumerate() {
        let flow = call(&http, "POST", &format!("{api}/sign-in"), Some(json!({"username": user})), None);
        if flow.status == 429 {
            refused_at = Some((n, flow.retry_after));
            break;
        }
        let flow = flow.json["flow"].as_str().unwrap();
        let wrong =
            call(&http, "POST", &format!("{api}/sign-in/{flow}/password"), Some(json!({"password": "wrong"})), None);
        if wrong.status == 429 {
            refused_at = Some((n, wrong.retry_after));
            break;
        }
        assert_eq!(wrong.status, 401, "failure {n}: {}", wrong.json);
    }
    let (n, retry_after) = refused_at.expect("the failing address is stopped");
    // A burst of 30, and one more for every 2 s the burst took (30 a minute).
    let earned = (failing.elapsed().as_millis() / 2000) as usize;
    assert!((30..=30 + earned).contains(&n), "30 failures at once, then one per 2 s: {n} in {:?}", failing.elapsed());
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));

    // Through nginx, a Forwarded header of the client's own making changes nothing either.
    let forged = http
        .post(&format!("{api}/sign-in"))
        .header("Forwarded", "for=10.99.0.1")
        .send_json(json!({"username": "office000"}))
        .unwrap();
    assert_eq!(forged.status().as_u16(), 429, "a client's Forwarded is not believed behind nginx");

    // Talking to a gateway directly (an untrusted peer), a forged X-Forwarded-For changes nothing.
    let direct = &world.gateways[0].0.base;
    let forged = http
        .post(&format!("{direct}/api/v1/sign-in"))
        .header("X-Forwarded-For", "203.0.113.77")
        .send_json(json!({"username": "office000"}))
        .unwrap();
    assert_eq!(forged.status().as_u16(), 429, "the forged address is not believed");
}

/// A test CA, and server pairs for "localhost" it signs.
struct TestCa {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    pem: String,
}

impl TestCa {
    fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "Tenure test CA");
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        TestCa { pem: certificate.pem(), ca: rcgen::Issuer::new(params, key) }
    }

    /// (certificate PEM, key PEM, certificate DER).
    fn server(&self) -> (String, String, Vec<u8>) {
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.ca).unwrap();
        (certificate.pem(), key.serialize_pem(), certificate.der().to_vec())
    }
}

/// A TLS connection to `port` checked against `ca`, offering `alpn`.
fn tls_connect(port: u16, ca: &str, alpn: &[&[u8]]) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in rustls::pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, TcpStream::connect(("127.0.0.1", port)).unwrap());
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

/// One keep-alive `GET /healthz` on an open HTTP/1.1 connection; returns the status line, and
/// checks that the answer tells the browser to keep to HTTPS.
fn healthz(stream: &mut impl ReadWrite) -> String {
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let mut byte = [0u8; 1];
    // The answer is small: read up to the end of the headers, then its two-byte body ("ok").
    while !answer.ends_with(b"\r\n\r\n") {
        stream.read_exact(&mut byte).unwrap();
        answer.push(byte[0]);
    }
    let mut body = [0u8; 2];
    stream.read_exact(&mut body).unwrap();
    let head = String::from_utf8_lossy(&answer).to_ascii_lowercase();
    assert!(head.contains("strict-transport-security: max-age=31536000"), "{head}");
    head.lines().next().unwrap().to_uppercase()
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

#[test]
fn https_is_served_and_a_new_pair_is_taken_on_sighup_without_dropping_connections() {
    let ca = TestCa::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let (first_pem, first_key, first_der) = ca.server();
    std::fs::write(&cert, &first_pem).unwrap();
    std::fs::write(&key, &first_key).unwrap();

    // A key that does not belong to the certificate: one clear error, no server.
    let (_, other_key, _) = ca.server();
    let wrong_key = dir.path().join("other.pem");
    std::fs::write(&wrong_key, &other_key).unwrap();
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&wrong_key)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("does not belong to the certificate"), "{stderr}");

    let data = dir.path().join("data");
    let mut server = start(&data, &["--tls-cert", cert.to_str().unwrap(), "--tls-key", key.to_str().unwrap()]);
    let port: u16 = server.base.rsplit(':').next().unwrap().parse().unwrap();
    let mut kept = tls_connect(port, &ca.pem, &[b"http/1.1"]);
    assert_eq!(kept.conn.peer_certificates().unwrap()[0].as_ref(), first_der.as_slice());
    assert_eq!(healthz(&mut kept), "HTTP/1.1 200 OK");
    let h2 = tls_connect(port, &ca.pem, &[b"h2", b"http/1.1"]);
    assert_eq!(h2.conn.alpn_protocol(), Some(&b"h2"[..]), "HTTP/2 is offered by ALPN");

    // A new pair, then SIGHUP: new handshakes get it; the open connection goes on. The
    // connections the loop opens and drops unread make the gateway write to closed sockets,
    // which once ended the process by SIGPIPE.
    let (second_pem, second_key, second_der) = ca.server();
    std::fs::write(&cert, &second_pem).unwrap();
    std::fs::write(&key, &second_key).unwrap();
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) }, 0);
    let reloaded = Instant::now();
    loop {
        let fresh = tls_connect(port, &ca.pem, &[b"http/1.1"]);
        if fresh.conn.peer_certificates().unwrap()[0].as_ref() == second_der.as_slice() {
            break;
        }
        assert!(reloaded.elapsed() < Duration::from_secs(5), "the new certificate was never served");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(healthz(&mut kept), "HTTP/1.1 200 OK", "the keep-alive connection survived the reload");

    // A broken pair at the next reload is refused; the last good one stays.
    std::fs::write(&key, "not a key").unwrap();
    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGHUP) }, 0);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the gateway died at the reload: {:?}",
        server.child.try_wait()
    );
    let after = tls_connect(port, &ca.pem, &[b"http/1.1"]);
    assert_eq!(after.conn.peer_certificates().unwrap()[0].as_ref(), second_der.as_slice());
    assert_eq!(healthz(&mut kept), "HTTP/1.1 200 OK");
}

/// The TLS-only cluster scripts/pg-tls-cluster starts: its URL and its CA.
fn tls_cluster() -> (String, String) {
    let url = std::env::var("TENURE_TEST_POSTGRES_TLS");
    let ca = std::env::var("TENURE_TEST_POSTGRES_TLS_CA");
    match (url, ca) {
        (Ok(url), Ok(ca)) => (url, ca),
        _ => panic!(
            "TENURE_TEST_POSTGRES_TLS and TENURE_TEST_POSTGRES_TLS_CA are not set: scripts/test starts the \
             TLS-only PostgreSQL cluster (scripts/pg-tls-cluster) and sets them"
        ),
    }
}

fn tenure(data: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_tenure")).arg("--data-dir").arg(data).args(args).output().unwrap()
}

#[test]
fn postgres_over_tls_is_verified_by_ca_and_host_name_and_plain_text_is_refused() {
    let (url, ca) = tls_cluster();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let verified = format!("{url}?sslmode=verify-full&sslrootcert={ca}");
    let scratch = runtime.block_on(tenure_store::postgres::ScratchDatabase::create(&verified, "tenure_tls")).unwrap();
    assert!(scratch.url.contains("sslmode=verify-full"), "{}", scratch.url);
    let data = tempfile::tempdir().unwrap();

    let migrated = tenure(data.path(), &["--store", &scratch.url, "migrate"]);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    let server = start(data.path(), &["--store", &scratch.url]);
    let ready = agent().get(&format!("{}/readyz", server.base)).call().unwrap();
    assert_eq!(ready.status().as_u16(), 200, "a gateway serves on PostgreSQL over verified TLS");
    drop(server);

    let one_line = |output: &std::process::Output, expected: &str| {
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{expected:?} in {stderr}");
    };
    // The certificate names localhost, not 127.0.0.1.
    let by_address = scratch.url.replace("@localhost:", "@127.0.0.1:");
    one_line(&tenure(data.path(), &["--store", &by_address, "migrate"]), "not valid for name");
    // Another CA did not sign it.
    let stranger = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(stranger.path(), TestCa::new().pem).unwrap();
    let other_ca = scratch.url.replace(&ca, stranger.path().to_str().unwrap());
    one_line(&tenure(data.path(), &["--store", &other_ca, "migrate"]), "invalid peer certificate");
    // The server takes TLS only.
    let plain = scratch.url.replace("sslmode=verify-full", "sslmode=disable");
    one_line(&tenure(data.path(), &["--store", &plain, "migrate"]), "no encryption");
}
