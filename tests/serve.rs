//! `tenure serve` as a user meets it: a real process on a real port, driven over HTTP.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support {
    pub mod gateway;
    pub mod port;
    pub mod smtp;
}
use support::gateway::{agent, get, post, rand_byte, serve, serve_with, start, start_logging};
use support::smtp::{code_in, smtp_sink};

#[test]
fn the_first_administrator_signs_in_through_the_bootstrap_link_then_signs_in_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path());
    let token = server.invitation.rsplit('/').next().unwrap().to_string();
    assert!(server.invitation.starts_with(&format!("{}/invite/", server.base)), "{}", server.invitation);
    let http = agent();
    let api = format!("{}/api/v1", server.base);

    let (status, info) = get(&http, &format!("{api}/invitations/{token}"), None);
    assert_eq!(
        (status, info),
        (200, json!({"username": "admin", "next": "password", "mfa": "none", "terms_version": 1}))
    );
    let password = json!({"new_password": "plum-harbour-violin-4417", "confirm_password": "plum-harbour-violin-4417"});
    assert_eq!(
        post(&http, &format!("{api}/invitations/{token}/password"), password, None, None).2,
        json!({"next": "terms"})
    );
    let (status, set_cookie, done) =
        post(&http, &format!("{api}/invitations/{token}/terms"), json!({"accept": true, "version": 1}), None, None);
    assert_eq!((status, done), (200, json!({"next": "done"})));
    let set_cookie = set_cookie.expect("a session cookie");
    assert!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax") && !set_cookie.contains("Secure"),
        "{set_cookie}"
    );
    let cookie = set_cookie.trim_start_matches("tenure_session=").split(';').next().unwrap().to_string();

    let (status, session) = get(&http, &format!("{api}/session"), Some(&cookie));
    assert_eq!((status, session["username"].as_str()), (200, Some("admin")));
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    assert_eq!(post(&http, &format!("{api}/sign-out"), json!({}), Some(&cookie), None).0, 403, "no CSRF token");
    assert_eq!(post(&http, &format!("{api}/sign-out"), json!({}), Some(&cookie), Some(&csrf)).0, 204);
    assert_eq!(get(&http, &format!("{api}/session"), Some(&cookie)).0, 401);
    assert_eq!(get(&http, &format!("{api}/invitations/{token}"), None).0, 404, "the link worked once");

    let (_, _, flow) = post(&http, &format!("{api}/sign-in"), json!({"username": "Admin"}), None, None);
    let flow = flow["flow"].as_str().unwrap().to_string();
    let (status, again, next) = post(
        &http,
        &format!("{api}/sign-in/{flow}/password"),
        json!({"password": "plum-harbour-violin-4417"}),
        None,
        None,
    );
    assert_eq!((status, next), (200, json!({"next": "done"})));
    assert!(again.is_some());
}

#[test]
fn a_second_start_on_the_same_store_prints_no_new_link() {
    let dir = tempfile::tempdir().unwrap();
    drop(serve(dir.path()));
    let port = support::port::free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    support::port::wait_until_listening(port, Duration::from_secs(20), "tenure serve");
    child.kill().unwrap();
    child.wait().unwrap();
    let mut printed = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut printed).unwrap();
    assert!(!printed.contains("invitation_url"), "{printed}");
}

/// Failures, not requests, count per address (SPEC §11): many username steps pass, and the
/// 31st wrong password from one address within a minute is refused with `Retry-After`.
#[test]
fn one_address_is_limited_by_its_failures_across_usernames() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(dir.path(), &["--argon2-memory-kib", "1024", "--argon2-iterations", "1"]);
    let http = agent();
    let mut limited = None;
    for n in 0..40 {
        // Once the address is over its quota, every sign-in step is refused, the username step too.
        let mut response = http
            .post(&format!("{}/api/v1/sign-in", server.base))
            .send_json(json!({"username": format!("user{n}")}))
            .unwrap();
        if response.status().as_u16() == 200 {
            let flow = response.body_mut().read_json::<Value>().unwrap()["flow"].as_str().unwrap().to_string();
            response = http
                .post(&format!("{}/api/v1/sign-in/{flow}/password", server.base))
                .send_json(json!({"password": "wrong"}))
                .unwrap();
        }
        if response.status().as_u16() == 429 {
            let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
            let body = response.body_mut().read_json::<Value>().unwrap();
            limited = Some((n, retry_after, body));
            break;
        }
        assert_eq!(response.status().as_u16(), 401, "failure {n}");
    }
    let (n, retry_after, body) = limited.expect("the address is limited");
    assert_eq!(n, 30, "30 failures are allowed, the 31st refused");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().unwrap() >= 1));
    assert_eq!(body["error"], "rate_limited");
}

/// Every log line of a request names its id (the one a trusted proxy sent, echoed in the
/// answer) and its route, never the path that holds an invitation token or a flow id, and no
/// colour codes when it goes to a file; SIGTERM ends the gateway with 0.
#[test]
fn logs_carry_the_request_id_and_no_token_flow_or_password() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    let mut server = start_logging(&dir.path().join("data"), &["--trusted-proxies", "127.0.0.1"], &log);
    let token = server.invitation.rsplit('/').next().unwrap().to_string();
    assert!(!token.is_empty(), "the bootstrap link");
    let http = agent();
    let api = format!("{}/api/v1", server.base);
    let password = "plum-harbour-violin-4417";
    let set = json!({"new_password": password, "confirm_password": password});
    assert_eq!(post(&http, &format!("{api}/invitations/{token}/password"), set, None, None).0, 200);
    let request_id = "0f8fad5b-d9cb-469f-a165-70867728950e";
    let mut accepted = http
        .post(&format!("{api}/invitations/{token}/terms"))
        .header("X-Request-Id", request_id)
        .send_json(json!({"accept": true, "version": 1}))
        .unwrap();
    assert_eq!(accepted.headers().get("x-request-id").unwrap().to_str().unwrap(), request_id);
    let cookie = accepted.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    let cookie = cookie.trim_start_matches("tenure_session=").split(';').next().unwrap().to_string();
    let _ = accepted.body_mut().read_to_string();
    let (_, _, flow) = post(&http, &format!("{api}/sign-in"), json!({"username": "admin"}), None, None);
    let flow = flow["flow"].as_str().unwrap().to_string();
    assert_eq!(
        post(&http, &format!("{api}/sign-in/{flow}/password"), json!({"password": password}), None, None).0,
        200
    );

    assert_eq!(unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) }, 0);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "SIGTERM exits 0: {status}");
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(!log.contains('\u{1b}'), "a log written to a file holds no terminal colour codes: {log:?}");
    let signed_in =
        log.lines().find(|l| l.contains(request_id)).unwrap_or_else(|| panic!("no line with the id: {log}"));
    assert!(signed_in.contains("signed in") && signed_in.contains("/api/v1/invitations/{token}/terms"), "{signed_in}");
    for secret in [token.as_str(), flow.as_str(), password, cookie.as_str()] {
        assert!(!log.contains(secret), "the log holds a secret: {log}");
    }
}

/// The email-code variant: codes travel over real SMTP to aiosmtpd and are read from there.
#[test]
fn first_sign_in_and_sign_in_with_emailed_codes() {
    let sink = smtp_sink();
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(dir.path(), &["--smtp", &format!("smtp://127.0.0.1:{}", sink.port)]);
    let invite = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir.path())
        .args([
            "admin",
            "invite",
            "--username",
            "mailer",
            "--email",
            "mailer@example.com",
            "--org",
            "acme",
            "--mfa",
            "email",
        ])
        .output()
        .unwrap();
    assert!(invite.status.success(), "{}", String::from_utf8_lossy(&invite.stderr));
    let link = String::from_utf8(invite.stdout).unwrap();
    let token =
        link.lines().find_map(|l| l.strip_prefix("invitation_url: ")).unwrap().rsplit('/').next().unwrap().to_string();
    let http = agent();
    let api = format!("{}/api/v1", server.base);

    // The gateway's projections pick up an invitation made by another process within moments.
    let started = Instant::now();
    let info = loop {
        let (status, info) = get(&http, &format!("{api}/invitations/{token}"), None);
        if status == 200 || started.elapsed() > Duration::from_secs(10) {
            break info;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(info["mfa"], "email");
    let password = json!({"new_password": "quartz-meadow-lantern-82", "confirm_password": "quartz-meadow-lantern-82"});
    assert_eq!(
        post(&http, &format!("{api}/invitations/{token}/password"), password, None, None).2,
        json!({"next": "mfa"})
    );
    assert_eq!(
        post(&http, &format!("{api}/invitations/{token}/mfa/start"), json!({}), None, None).2,
        json!({"sent": true, "mail": "queued"})
    );
    let mail = sink.wait_for_message(1);
    assert!(mail.contains("To: mailer@example.com"), "{mail}");
    let verified =
        post(&http, &format!("{api}/invitations/{token}/mfa/verify"), json!({"code": code_in(&mail)}), None, None);
    assert_eq!(verified.2, json!({"next": "terms"}));
    let done =
        post(&http, &format!("{api}/invitations/{token}/terms"), json!({"accept": true, "version": 1}), None, None);
    assert_eq!(done.2, json!({"next": "done"}));

    let (_, _, flow) = post(&http, &format!("{api}/sign-in"), json!({"username": "mailer"}), None, None);
    let flow = flow["flow"].as_str().unwrap().to_string();
    let next = post(
        &http,
        &format!("{api}/sign-in/{flow}/password"),
        json!({"password": "quartz-meadow-lantern-82"}),
        None,
        None,
    );
    assert_eq!(next.2, json!({"next": "email_code", "mail": "queued"}));
    let code = code_in(&sink.wait_for_message(2));
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = post(&http, &format!("{api}/sign-in/{flow}/code"), json!({"code": wrong}), None, None);
    assert_eq!((refused.0, refused.2["error"].as_str()), (401, Some("invalid_code")));
    let (status, cookie, done) = post(&http, &format!("{api}/sign-in/{flow}/code"), json!({"code": code}), None, None);
    assert_eq!((status, done), (200, json!({"next": "done"})));
    assert!(cookie.is_some());
    assert_eq!(post(&http, &format!("{api}/sign-in/{flow}/resend"), json!({}), None, None).0, 404, "the flow is over");
}

#[test]
fn serve_with_scheduler_runs_it_in_process_and_reports_it_in_the_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve_with(dir.path(), &["--with-scheduler"]);
    let agent = agent();
    let started = Instant::now();
    loop {
        let mut response = agent.get(&format!("{}/metrics", server.base)).call().unwrap();
        let text = response.body_mut().read_to_string().unwrap();
        // The bootstrap administrator is tracked; its first step is months away.
        if text.lines().any(|l| l == "tenure_scheduler_accounts 1") {
            let next = text
                .lines()
                .find_map(|l| l.strip_prefix("tenure_scheduler_next_due_timestamp_seconds "))
                .and_then(|v| v.parse::<i64>().ok())
                .expect("the next due time");
            let in_days = (next - chrono::Utc::now().timestamp()) / 86_400;
            assert!(
                (140..=155).contains(&in_days),
                "the deactivation warning is 6 months less 30 days away: {in_days}"
            );
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no scheduler metrics: {text}");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Only one scheduler at a time: a standalone one waits for the lease while serve holds it.
    let mut second = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["scheduler", "--once"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert!(second.try_wait().unwrap().is_none(), "the second scheduler waits");
    second.kill().unwrap();
    second.wait().unwrap();
}

/// Two gateways on one PostgreSQL database, each with a data directory of its own (holding the
/// same master key), as on two hosts: a session started on one works on the other, the other's
/// dashboard and admin list show what the first wrote, a rebuild run from the CLI meanwhile
/// disturbs neither, the second takes over the projections when the first stops, and sign-out
/// on one ends the session on both.
#[test]
fn two_gateways_on_one_postgres_database_share_sessions_and_read_models() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(tenure_store::conformance::TestDatabase::create());
    let store = ["--store", database.url.as_str()];
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let master: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
    for dir in [&dir_a, &dir_b] {
        std::fs::write(dir.path().join("master.key"), &master).unwrap();
    }
    let a = serve_with(dir_a.path(), &store);
    let b = start(dir_b.path(), &store);
    assert!(b.invitation.is_empty(), "the second gateway found the store bootstrapped");
    let http = agent();
    let (api_a, api_b) = (format!("{}/api/v1", a.base), format!("{}/api/v1", b.base));

    let token = a.invitation.rsplit('/').next().unwrap().to_string();
    let password = json!({"new_password": "plum-harbour-violin-4417", "confirm_password": "plum-harbour-violin-4417"});
    assert_eq!(post(&http, &format!("{api_a}/invitations/{token}/password"), password, None, None).0, 200);
    let (status, set_cookie, _) =
        post(&http, &format!("{api_a}/invitations/{token}/terms"), json!({"accept": true, "version": 1}), None, None);
    assert_eq!(status, 200);
    let cookie = set_cookie.unwrap().trim_start_matches("tenure_session=").split(';').next().unwrap().to_string();

    let (status, session) = get(&http, &format!("{api_b}/session"), Some(&cookie));
    assert_eq!((status, session["username"].as_str()), (200, Some("admin")), "the session works on B");
    let csrf = session["csrf_token"].as_str().unwrap().to_string();
    // B reads the read models A's sign-in reaches through the shared database: within moments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let dashboard = loop {
        let (status, dashboard) = get(&http, &format!("{api_b}/dashboard"), Some(&cookie));
        assert_eq!(status, 200, "{dashboard}");
        if dashboard["last_sign_in"].is_string() || std::time::Instant::now() > deadline {
            break dashboard;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(dashboard["last_sign_in"].is_string(), "B shows the sign-in made through A: {dashboard}");
    assert!(dashboard["tabs"].to_string().contains("Admin"), "{dashboard}");

    // A writes; B's read models follow.
    let invite = json!({"username": "newbie", "email": "newbie@example.com", "mfa": "none"});
    let (status, _, created) = post(&http, &format!("{api_a}/admin/users"), invite, Some(&cookie), Some(&csrf));
    assert_eq!(status, 201, "{created}");
    let listed = |api: &str| {
        let (status, users) = get(&http, &format!("{api}/admin/users"), Some(&cookie));
        assert_eq!(status, 200, "{users}");
        users.to_string().contains("newbie")
    };
    let started = Instant::now();
    while !listed(&api_b) {
        assert!(started.elapsed() < Duration::from_secs(10), "B's admin list never showed the new user");
        std::thread::sleep(Duration::from_millis(50));
    }

    // A rebuild from the CLI while both serve.
    let rebuild = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir_b.path())
        .args(store)
        .args(["projections", "rebuild"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..20 {
        for api in [&api_a, &api_b] {
            assert_eq!(get(&http, &format!("{api}/dashboard"), Some(&cookie)).0, 200, "{api} during the rebuild");
            assert!(listed(api), "{api} lost the new user during the rebuild");
        }
    }
    let rebuilt = rebuild.wait_with_output().unwrap();
    assert!(rebuilt.status.success(), "{}", String::from_utf8_lossy(&rebuilt.stderr));
    assert!(String::from_utf8_lossy(&rebuilt.stdout).starts_with("rebuilt"), "{rebuilt:?}");
    for api in [&api_a, &api_b] {
        assert!(listed(api), "{api} after the rebuild");
    }

    // A, which started first and runs the projections, goes away: B takes the runner over.
    drop(a);
    let invite = json!({"username": "second", "email": "second@example.com", "mfa": "none"});
    let (status, _, created) = post(&http, &format!("{api_b}/admin/users"), invite, Some(&cookie), Some(&csrf));
    assert_eq!(status, 201, "{created}");
    let started = Instant::now();
    while !get(&http, &format!("{api_b}/admin/users"), Some(&cookie)).1.to_string().contains("second") {
        assert!(started.elapsed() < Duration::from_secs(10), "B never took over the projections");
        std::thread::sleep(Duration::from_millis(50));
    }

    let a = start(dir_a.path(), &store);
    let api_a = format!("{}/api/v1", a.base);
    assert_eq!(post(&http, &format!("{api_b}/sign-out"), json!({}), Some(&cookie), Some(&csrf)).0, 204);
    assert_eq!(get(&http, &format!("{api_a}/session"), Some(&cookie)).0, 401, "signed out on A too");
    drop((a, b));
}
