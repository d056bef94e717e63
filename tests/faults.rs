//! Faults as operators meet them, against the real binary: the mail server away and back,
//! PostgreSQL stopped under load, the data directory's disk full.

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod support {
    pub mod gateway;
    pub mod pg_cluster;
    pub mod port;
    pub mod smtp;
}
use support::gateway::{agent, get, post, serve_with, start_logging};
use support::smtp::{SmtpSink, code_in, smtp_sink};

fn tenure(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenure")).arg("--data-dir").arg(dir).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits until `done` holds, for up to `seconds`.
fn eventually(seconds: u64, what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(seconds), "{what} within {seconds} s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The messages received, once the outbox of `dir` holds nothing queued (each retry waits at
/// most a minute), and a moment more for a duplicate to show.
fn settled(smtp: &SmtpSink, dir: &Path) -> Vec<String> {
    eventually(90, "the outbox empties", || {
        text(&tenure(dir, &["mail", "status"]).stdout).lines().any(|l| l.starts_with("queued: 0"))
    });
    std::thread::sleep(Duration::from_millis(500));
    smtp.messages()
}

fn message_id(mail: &str) -> String {
    mail.lines().find_map(|l| l.strip_prefix("Message-ID: ")).unwrap_or_else(|| panic!("no Message-ID: {mail}")).into()
}

fn failing(dir: &Path) -> u64 {
    let status = text(&tenure(dir, &["mail", "status"]).stdout);
    status.lines().find_map(|l| l.strip_prefix("failing: ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

#[test]
fn mail_queued_while_the_mail_server_is_away_arrives_once_when_it_is_back_and_the_user_finishes() {
    let mut smtp = smtp_sink();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let server = serve_with(d, &["--smtp", &smtp_url]);
    let http = agent();
    let api = format!("{}/api/v1", server.base);
    smtp.stop();

    // The invitation is recorded with its mail, whatever the mail server does.
    let invited = tenure(
        d,
        &[
            "--smtp",
            &smtp_url,
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
        ],
    );
    assert!(invited.status.success(), "{}", text(&invited.stderr));
    assert!(text(&invited.stderr).contains("queued"), "{}", text(&invited.stderr));
    let token = text(&invited.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("invitation_url: "))
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    eventually(10, "the invitation is seen", || get(&http, &format!("{api}/invitations/{token}"), None).0 == 200);

    // The code at first sign-in is queued too, and answered as such.
    let password = json!({"new_password": "quartz-meadow-lantern-82", "confirm_password": "quartz-meadow-lantern-82"});
    assert_eq!(post(&http, &format!("{api}/invitations/{token}/password"), password, None, None).2["next"], "mfa");
    let start = format!("{api}/invitations/{token}/mfa/start");
    assert_eq!(post(&http, &start, json!({}), None, None).2, json!({"sent": true, "mail": "queued"}));
    // Once the server has refused it, another code may be asked for at once; the refused one
    // will not be sent.
    eventually(15, "both mails refused once", || failing(d) >= 2);
    let again = post(&http, &start, json!({}), None, None);
    assert_eq!((again.0, again.2.clone()), (200, json!({"sent": true, "mail": "queued"})), "{again:?}");

    smtp.restart();
    let mails = settled(&smtp, d);
    assert_eq!(mails.len(), 2, "the invitation and the newest code, each once: {mails:?}");
    assert!(mails.iter().any(|m| m.contains("/invite/")), "{mails:?}");
    let code = code_in(mails.iter().find(|m| m.contains("code is ")).unwrap());
    let verified = post(&http, &format!("{api}/invitations/{token}/mfa/verify"), json!({"code": code}), None, None);
    assert_eq!(verified.2, json!({"next": "terms"}), "{verified:?}");
    let terms = json!({"accept": true, "version": 1});
    assert_eq!(post(&http, &format!("{api}/invitations/{token}/terms"), terms, None, None).2["next"], "done");

    // At a returning sign-in, and for the scheduler's warnings, while the server is away again.
    smtp.stop();
    let flow = post(&http, &format!("{api}/sign-in"), json!({"username": "mailer"}), None, None).2["flow"]
        .as_str()
        .unwrap()
        .to_string();
    let next = post(
        &http,
        &format!("{api}/sign-in/{flow}/password"),
        json!({"password": "quartz-meadow-lantern-82"}),
        None,
        None,
    );
    assert_eq!(next.2, json!({"next": "email_code", "mail": "queued"}), "{next:?}");
    let warn_at = (chrono::Utc::now() + chrono::Duration::days(160)).to_rfc3339();
    let pass = tenure(d, &["--smtp", &smtp_url, "scheduler", "--once", "--now", &warn_at]);
    assert!(pass.status.success(), "{}", text(&pass.stderr));
    assert!(text(&pass.stdout).starts_with("warned: 2,"), "the administrator and mailer: {}", text(&pass.stdout));
    eventually(15, "the code refused once", || failing(d) >= 1);
    let resent = post(&http, &format!("{api}/sign-in/{flow}/resend"), json!({}), None, None);
    assert_eq!(resent.0, 200, "a code whose mail failed may be replaced at once: {resent:?}");

    smtp.restart();
    let mails = settled(&smtp, d);
    let later = &mails[2..];
    assert_eq!(later.iter().filter(|m| m.contains("code is ")).count(), 1, "one code: {later:?}");
    assert_eq!(later.iter().filter(|m| m.contains("will be deactivated")).count(), 2, "two warnings: {later:?}");
    assert_eq!(later.len(), 3, "{later:?}");
    let mut ids: Vec<String> = mails.iter().map(|m| message_id(m)).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), mails.len(), "every mail once");
    let code = code_in(later.iter().find(|m| m.contains("code is ")).unwrap());
    let done = post(&http, &format!("{api}/sign-in/{flow}/code"), json!({"code": code}), None, None);
    assert_eq!(done.2, json!({"next": "done"}), "{done:?}");

    let status = text(&tenure(d, &["mail", "status"]).stdout);
    assert!(status.contains("queued: 0") && status.contains("failing: 0"), "{status}");
    let metrics = agent().get(&format!("{}/metrics", server.base)).call().unwrap().body_mut().read_to_string().unwrap();
    assert!(metrics.lines().any(|l| l == "tenure_mail_queued 0"), "{metrics}");
    assert!(metrics.lines().any(|l| l == "tenure_mail_sent 5"), "{metrics}");
}

/// Every answer during the outage is a 503 that says so, never a 500.
fn outage_answer(status: u16, retry_after: Option<String>, body: &Value, reason: &str) -> bool {
    match status {
        200..=299 | 401 | 404 => false,
        503 => {
            assert!(retry_after.is_some(), "503 without Retry-After: {body}");
            let said = body["error"].as_str().or(body["reason"].as_str());
            assert_eq!(said, Some(reason), "{body}");
            true
        }
        other => panic!("{other} during an outage: {body}"),
    }
}

/// Where the PostgreSQL test's gateway logs, to show when it stops answering.
static LOG: std::sync::Mutex<Option<std::path::PathBuf>> = std::sync::Mutex::new(None);

fn log() -> String {
    let path = LOG.lock().unwrap().clone();
    path.and_then(|path| std::fs::read_to_string(path).ok()).unwrap_or_default()
}

/// One request on a connection of its own: an answer given before the request's body was read
/// (a 503 from a limit checked first) closes its connection, and a pooled one may then be dead.
fn call(_: &ureq::Agent, method: &str, url: &str, body: Option<Value>) -> (u16, Option<String>, Value) {
    let http = agent();
    let response = match body {
        Some(body) => http.post(url).send_json(body),
        None if method == "GET" => http.get(url).call(),
        None => unreachable!(),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e} (the gateway's log: {})", log()));
    let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    let status = response.status().as_u16();
    (status, retry, response.body_mut().read_json::<Value>().unwrap_or(Value::Null))
}

#[test]
fn postgres_stopped_under_load_is_answered_503_with_retry_after_and_recovered_from_by_itself() {
    let cluster = support::pg_cluster::Cluster::create();
    let url = cluster.url();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let log_path = d.join("serve.log");
    *LOG.lock().unwrap() = Some(log_path.clone());
    let server = start_logging(d, &["--store", &url], &log_path);
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let name = format!("kept{i}");
        let made = tenure(
            d,
            &["--store", &url, "admin", "invite", "--username", &name, "--email", "k@example.com", "--org", "acme"],
        );
        assert!(made.status.success(), "{}", text(&made.stderr));
        acknowledged.push(name);
    }
    let http = agent();
    let api = format!("{}/api/v1", server.base);
    let sign_in = || call(&http, "POST", &format!("{api}/sign-in"), Some(json!({"username": "kept0"})));
    let ready = || call(&http, "GET", &format!("{}/readyz", server.base), None);
    eventually(10, "ready", || ready().0 == 200);
    assert_eq!(sign_in().0, 200);

    cluster.stop();
    let stopped = Instant::now();
    let (mut outages, mut not_ready) = (0, 0);
    while stopped.elapsed() < Duration::from_secs(10) {
        let (status, retry, body) = sign_in();
        outages += usize::from(outage_answer(status, retry, &body, "store_unavailable"));
        let (status, retry, body) = ready();
        not_ready += usize::from(outage_answer(status, retry, &body, "store_unavailable"));
    }
    assert!(outages > 0 && not_ready > 0, "{outages} outage answers, {not_ready} not ready");

    cluster.start();
    eventually(30, "requests succeed again", || sign_in().0 == 200);
    eventually(30, "ready again", || ready().0 == 200);
    // The runner's lock ended with its connection: the runner takes it again (it does not go on
    // writing the read models without it), and the status says it runs.
    eventually(30, "the runner holds its lock again", || {
        let status = text(&tenure(d, &["--store", &url, "projections", "status"]).stdout);
        status.contains("running") && !status.contains("stopped")
    });
    for name in &acknowledged {
        let audit = tenure(d, &["--store", &url, "audit", name]);
        assert!(
            audit.status.success() && text(&audit.stdout).contains("AccountInvited"),
            "{name}: {}",
            text(&audit.stderr)
        );
    }
}

/// A tmpfs of its own, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(mounted.status.success(), "mounting a tmpfs needs root: {}", text(&mounted.stderr));
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).output();
    }
}

#[test]
fn a_full_disk_is_answered_503_disk_full_and_recovered_from_once_space_is_freed() {
    let disk = Tmpfs::mount("24m");
    let d = disk.0.path().join("data");
    let server = serve_with(&d, &[]);
    let http = agent();
    let api = format!("{}/api/v1", server.base);
    let ready = || call(&http, "GET", &format!("{}/readyz", server.base), None);
    eventually(10, "ready", || ready().0 == 200);

    // Fill what is left of the disk.
    let filler = disk.0.path().join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while std::io::Write::write_all(&mut file, &block).is_ok() {}
    drop(file);

    let mut full = None;
    for i in 0..2000 {
        let (status, retry, body) =
            call(&http, "POST", &format!("{api}/sign-in"), Some(json!({"username": format!("u{i}")})));
        if outage_answer(status, retry, &body, "disk_full") {
            full = Some(i);
            break;
        }
    }
    assert!(full.is_some(), "writes never failed on the full disk");
    let (status, _, body) = ready();
    assert_eq!((status, body["reason"].as_str()), (503, Some("disk_full")), "{body}");

    std::fs::remove_file(&filler).unwrap();
    eventually(30, "ready again once space is freed", || ready().0 == 200);
    eventually(30, "writes succeed again", || {
        call(&http, "POST", &format!("{api}/sign-in"), Some(json!({"username": "after"}))).0 == 200
    });
    drop(server);
}
