//! The `tenure` binary driven as an operator or auditor would: real processes, a real store.

use std::path::Path;
use std::process::{Command, Output};

mod support {
    pub mod port;
    pub mod smtp;
}

fn tenure(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(args)
        .env_remove("TENURE_STORE")
        .env_remove("TENURE_PUBLIC_URL")
        .env("USER", "ops-alice")
        .output()
        .expect("run tenure")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("utf-8")
}

/// Fails unless the command failed with exactly one clear line on stderr containing `needle`.
#[track_caller]
fn assert_one_line_error(output: &Output, needle: &str) {
    let err = stderr(output);
    assert!(!output.status.success(), "expected failure, got success: {}", stdout(output));
    assert_eq!(err.trim_end().lines().count(), 1, "one line expected:\n{err}");
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err:?}");
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");
}

fn invite(dir: &Path, username: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec!["admin", "invite", "--username", username, "--email", "jane@example.com", "--org", "acme"];
    args.extend_from_slice(extra);
    let output = tenure(dir, &args);
    assert!(output.status.success(), "{}", stderr(&output));
    let out = stdout(&output);
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("{name} in {out}"))
    };
    (field("account_id:"), field("invitation_url:"))
}

#[test]
fn invite_prints_the_account_id_and_a_single_use_link() {
    let dir = tempfile::tempdir().unwrap();
    let (id, url) = invite(
        dir.path(),
        "JDoe",
        &[
            "--org-name",
            "Acme Corp",
            "--wholesale",
            "--role",
            "admin",
            "--mfa",
            "app",
            "--display-name",
            "Jane Doe",
            "--public-url",
            "https://portal.example.com/",
        ],
    );
    assert!(uuid::Uuid::parse_str(&id).is_ok_and(|u| u.get_version_num() == 7), "{id}");
    let token = url.strip_prefix("https://portal.example.com/invite/").expect(&url);
    assert!(token.len() >= 22 && token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'), "{token}");
    // Only the token's digest is stored.
    let db = std::fs::read(dir.path().join("tenure.db")).unwrap();
    let wal = std::fs::read(dir.path().join("tenure.db-wal")).unwrap_or_default();
    for bytes in [db, wal] {
        assert!(!bytes.windows(token.len()).any(|w| w == token.as_bytes()));
    }

    let audit = tenure(dir.path(), &["audit", "jdoe", "--format", "json"]);
    assert!(audit.status.success(), "{}", stderr(&audit));
    let events: serde_json::Value = serde_json::from_str(&stdout(&audit)).unwrap();
    let invited = &events[0];
    assert_eq!(invited["type"], "AccountInvited");
    assert_eq!(invited["schema_version"], 2);
    assert_eq!(invited["actor"], "operator:ops-alice");
    assert_eq!(invited["version"], 1);
    assert_eq!(invited["data"]["username"], "jdoe");
    assert_eq!(invited["data"]["org"], serde_json::json!({"id": "acme", "name": "Acme Corp", "wholesale": true}));
    assert_eq!(invited["data"]["role"], "admin");
    assert_eq!(invited["data"]["mfa"], "app");
    assert_eq!(invited["data"]["personal"]["email"], "jane@example.com");
    assert_eq!(invited["data"]["personal"]["display_name"], "Jane Doe");
    assert_eq!(invited["data"]["account_id"], id.as_str());
    assert_eq!(invited["prev_hash"], "0".repeat(64));
}

#[test]
fn audit_shows_history_in_text_and_cloudevents_and_state_as_of_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (id, _) = invite(dir.path(), "sam", &[]);
    let resend = tenure(dir.path(), &["admin", "resend", "sam"]);
    assert!(resend.status.success(), "{}", stderr(&resend));
    let mfa = tenure(dir.path(), &["admin", "mfa", "SAM", "email"]);
    assert!(stdout(&mfa).contains("now requires emailed codes"), "{}", stdout(&mfa));

    let text = stdout(&tenure(dir.path(), &["audit", &id]));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with(&format!("account {id}: 3 events")), "{text}");
    assert!(lines[1].starts_with("#1") && lines[1].contains("operator:ops-alice"), "{text}");
    assert!(lines[1].contains("AccountInvited") && lines[1].contains("username=sam"), "{text}");
    assert!(lines[1].contains("email=jane@example.com"), "{text}");
    assert!(lines[2].starts_with("#2") && lines[2].contains("InvitationResent"), "{text}");
    assert!(
        lines[3].starts_with("#3") && lines[3].contains("MfaRequirementChanged") && lines[3].ends_with("mfa=email"),
        "{text}"
    );
    assert!(!text.contains("token_digest"), "digests are not shown: {text}");

    let cloud: serde_json::Value =
        serde_json::from_str(&stdout(&tenure(dir.path(), &["audit", "sam", "--format", "cloudevents"]))).unwrap();
    assert_eq!(cloud.as_array().unwrap().len(), 3);
    assert_eq!(cloud[0]["specversion"], "1.0");
    assert_eq!(cloud[0]["type"], "tenure.AccountInvited.v2");
    assert_eq!(cloud[0]["subject"], format!("account-{id}"));
    assert_eq!(cloud[2]["tenureversion"], 3);

    let before = tenure(dir.path(), &["audit", "sam", "--as-of", "2000-01-01T00:00:00Z", "--format", "json"]);
    let state: serde_json::Value = serde_json::from_str(&stdout(&before)).unwrap();
    assert_eq!(state["status"], "new");
    assert_eq!(state["events"], 0);
    let now = tenure(dir.path(), &["audit", "sam", "--as-of", "2999-01-01T00:00:00Z", "--format", "json"]);
    let state: serde_json::Value = serde_json::from_str(&stdout(&now)).unwrap();
    assert_eq!(state["status"], "invited");
    assert_eq!(state["mfa_requirement"], "email");
    assert_eq!(state["email"], "jane@example.com");
    assert!(state["deadlines"]["deactivation"].is_string());
}

#[test]
fn a_changed_byte_is_reported_by_verify_naming_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let (id, _) = invite(dir.path(), "victim", &[]);
    assert!(tenure(dir.path(), &["admin", "resend", "victim"]).status.success());
    assert!(tenure(dir.path(), &["admin", "mfa", "victim", "app"]).status.success());
    let intact = tenure(dir.path(), &["audit", "victim", "--verify"]);
    assert!(intact.status.success(), "{}", stderr(&intact));
    assert!(stdout(&intact).starts_with("hash chain intact: 3 events"), "{}", stdout(&intact));

    // Flip one byte of the second event's stored payload, as an attacker with file access would.
    let connection = rusqlite::Connection::open(dir.path().join("tenure.db")).unwrap();
    let stream = format!("account-{id}");
    let (event_id, mut data): (Vec<u8>, Vec<u8>) = connection
        .query_row("SELECT event_id, data FROM events WHERE stream = ?1 AND version = 2", [&stream], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let at = data.iter().position(|b| *b == b'"').unwrap() + 1;
    data[at] ^= 0x20;
    connection
        .execute("UPDATE events SET data = ?1 WHERE stream = ?2 AND version = 2", rusqlite::params![data, stream])
        .unwrap();
    drop(connection);

    let broken = tenure(dir.path(), &["audit", "victim", "--verify"]);
    let event_id = uuid::Uuid::from_slice(&event_id).unwrap().to_string();
    assert_one_line_error(&broken, &event_id);
    assert!(stderr(&broken).contains("version 2"), "{}", stderr(&broken));
}

#[test]
fn bad_input_gets_one_clear_line_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_one_line_error(&tenure(d, &["audit", "jdoe"]), "no store at");
    invite(d, "jdoe", &[]);
    assert_one_line_error(
        &tenure(d, &["admin", "invite", "--username", "JDOE", "--email", "x@example.com", "--org", "acme"]),
        "not available",
    );
    assert_one_line_error(
        &tenure(d, &["admin", "invite", "--username", "a b", "--email", "x@example.com", "--org", "o"]),
        "--username",
    );
    assert_one_line_error(
        &tenure(d, &["admin", "invite", "--username", "newbie", "--email", "not-an-email", "--org", "o"]),
        "email",
    );
    assert_one_line_error(
        &tenure(d, &["admin", "invite", "--username", "newbie", "--email", "n@example.com"]),
        "--org",
    );
    assert_one_line_error(
        &tenure(
            d,
            &["admin", "invite", "--username", "newbie", "--email", "n@example.com", "--org", "o", "--mfa", "sms"],
        ),
        "sms",
    );
    assert_one_line_error(&tenure(d, &["audit", "nobody"]), "no account named");
    assert_one_line_error(&tenure(d, &["audit", "jdoe", "--as-of", "yesterday"]), "RFC 3339");
    assert_one_line_error(&tenure(d, &["audit", "jdoe", "--format", "xml"]), "xml");
    assert_one_line_error(&tenure(d, &["admin", "reactivate", "jdoe"]), "not deactivated");
    let unreachable = tenure(d, &["--store", "postgres://tenure:secret@127.0.0.1:1/tenure", "audit", "jdoe"]);
    assert_one_line_error(&unreachable, "cannot reach PostgreSQL");
    assert!(!stderr(&unreachable).contains("secret"), "the password stays out of messages");
    assert_one_line_error(&tenure(d, &["--store", "mysql://127.0.0.1/tenure", "audit", "jdoe"]), "postgres://");
    assert_one_line_error(
        &tenure(d, &["--store", "kurrentdb://127.0.0.1:2113", "audit", "jdoe"]),
        "no KurrentDB backend",
    );
    assert_one_line_error(&tenure(d, &["--smtp", "mail.example.com", "audit", "jdoe"]), "smtp://host:port");
    assert_one_line_error(&tenure(d, &["frobnicate"]), "frobnicate");
}

/// `tenure admin invite` and the admin page are one use case: the same rules, the same words,
/// and nothing recorded when a rule refuses.
#[test]
fn an_invitation_from_the_command_line_is_held_to_the_admin_pages_rules() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let long = "x".repeat(500);
    let profile = tenure_domain::events::Profile { display_name: Some(long.clone()), ..Default::default() };
    let rule = tenure_domain::profile::check(&profile).expect_err("500 characters are refused");
    let refused = tenure(
        d,
        &[
            "admin",
            "invite",
            "--username",
            "longname",
            "--email",
            "l@example.com",
            "--org",
            "acme",
            "--display-name",
            &long,
        ],
    );
    assert_one_line_error(&refused, &format!("--display-name: {}", rule.message));
    assert!(!stdout(&refused).contains("invitation_url"), "nothing was invited");
    assert_one_line_error(&tenure(d, &["audit", "longname"]), "no account named");
    // A blank display name is no display name, as on the page.
    invite(d, "blankname", &["--display-name", "   "]);
}

#[test]
fn a_corrupt_or_foreign_store_is_refused_without_damage() {
    let dir = tempfile::tempdir().unwrap();
    let garbage: Vec<u8> = (0..8192u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(dir.path().join("tenure.db"), &garbage).unwrap();
    std::fs::write(dir.path().join("keys.db"), b"").unwrap();
    std::fs::write(dir.path().join("master.key"), "00".repeat(32)).unwrap();
    assert_one_line_error(&tenure(dir.path(), &["audit", "jdoe"]), "not a Tenure store");
    assert_one_line_error(
        &tenure(dir.path(), &["admin", "invite", "--username", "jdoe", "--email", "j@example.com", "--org", "o"]),
        "not a Tenure store",
    );
    assert_eq!(std::fs::read(dir.path().join("tenure.db")).unwrap(), garbage, "the file is left as it was");

    let other = tempfile::tempdir().unwrap();
    let foreign = rusqlite::Connection::open(other.path().join("tenure.db")).unwrap();
    foreign.execute_batch("CREATE TABLE invoices (id INTEGER PRIMARY KEY);").unwrap();
    drop(foreign);
    let before = std::fs::read(other.path().join("tenure.db")).unwrap();
    assert_one_line_error(
        &tenure(other.path(), &["admin", "invite", "--username", "jdoe", "--email", "j@example.com", "--org", "o"]),
        "not a Tenure store",
    );
    assert_eq!(std::fs::read(other.path().join("tenure.db")).unwrap(), before, "not even switched to WAL");
    assert!(!other.path().join("tenure.db-wal").exists());
}

/// Writes an event of a type this build does not know as version 2 of the account's stream,
/// straight into the file, as a newer build or a careless hand would.
fn append_unknown_event(data_dir: &Path, account_id: &str) {
    let connection = rusqlite::Connection::open(data_dir.join("tenure.db")).unwrap();
    connection
        .execute(
            "INSERT INTO events (stream, version, event_id, event_type, schema_version, recorded_at, actor, \
             correlation_id, data, prev_hash, hash) VALUES (?1, 2, ?2, 'AccountTeleported', 1, 0, 'x', ?2, ?3, ?4, ?4)",
            rusqlite::params![
                format!("account-{account_id}"),
                uuid::Uuid::now_v7().as_bytes(),
                b"{}".to_vec(),
                [0u8; 32]
            ],
        )
        .unwrap();
}

#[test]
fn projections_status_and_rebuild_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (id, _) = invite(d, "proj", &[]);
    let ticket = tenure(d, &["org", "ticket", "open", "--org", "acme", "--id", "T-1", "--title", "Circuit down"]);
    assert!(ticket.status.success(), "{}", stderr(&ticket));
    assert_eq!(stdout(&ticket).trim(), "TicketOpened T-1 in org acme");

    let status = tenure(d, &["projections", "status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let text = stdout(&status);
    assert!(text.lines().any(|l| l.starts_with("accounts") && l.contains(" 0 ") && l.contains("stopped")), "{text}");

    let rebuilt = tenure(d, &["projections", "rebuild"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert!(stdout(&rebuilt).contains("rebuilt accounts, org_widgets from 3 events"), "{}", stdout(&rebuilt));
    assert!(stderr(&rebuilt).is_empty() || stderr(&rebuilt).starts_with("rebuild:"), "{}", stderr(&rebuilt));
    let text = stdout(&tenure(d, &["projections", "status"]));
    for name in ["accounts", "org_widgets"] {
        let line = text.lines().find(|l| l.starts_with(name)).unwrap();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&fields[1..4], ["3", "3", "0"], "{line}");
    }
    assert_one_line_error(&tenure(d, &["projections", "rebuild", "dashboards"]), "no projection named");

    // An event this build cannot read: the rebuild refuses, naming it, and changes nothing.
    append_unknown_event(d, &id);
    assert_one_line_error(&tenure(d, &["projections", "rebuild", "accounts"]), "position 4");
    let text = stdout(&tenure(d, &["projections", "status"]));
    assert!(text.lines().any(|l| l.starts_with("accounts") && l.split_whitespace().nth(1) == Some("3")), "{text}");
}

#[test]
fn a_running_projection_that_meets_a_poison_event_shows_as_failed_with_a_non_zero_status() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (id, _) = invite(d, "runner", &[]);
    let mut runner = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(d)
        .args(["projections", "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status_line = |name: &str| {
        let output = tenure(d, &["projections", "status"]);
        let line = stdout(&output).lines().find(|l| l.starts_with(name)).unwrap_or_default().to_string();
        (output.status.success(), line)
    };
    let wait_for = |name: &str, what: &dyn Fn(&(bool, String)) -> bool| {
        let started = std::time::Instant::now();
        loop {
            let seen = status_line(name);
            if what(&seen) || started.elapsed() > std::time::Duration::from_secs(20) {
                return seen;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    let (ok, line) =
        wait_for("accounts", &|(_, line)| line.contains("running") && line.split_whitespace().nth(3) == Some("0"));
    assert!(ok && line.contains("running"), "{line}");

    append_unknown_event(d, &id);
    let (ok, line) = wait_for("accounts", &|(_, line)| line.contains("failed"));
    assert!(!ok, "status exits non-zero when a projection has failed");
    assert!(line.contains("failed at position 3") && line.contains("AccountTeleported"), "{line}");
    let (_, widgets) = wait_for("org_widgets", &|(_, line)| line.split_whitespace().nth(1) == Some("3"));
    assert!(
        widgets.contains("running") && widgets.split_whitespace().nth(1) == Some("3"),
        "the other keeps going: {widgets}"
    );
    runner.kill().unwrap();
    runner.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(&mut runner.stderr.take().unwrap(), &mut log).unwrap();
    assert!(log.contains("position=3") || log.contains("position 3"), "the failure is logged: {log}");
    assert!(!log.contains("jane@example.com"), "logs carry no email: {log}");
}

/// Every file under `dir`, read whole.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push((path.display().to_string(), std::fs::read(&path).unwrap()));
        }
    }
    found
}

#[test]
fn the_scheduler_warns_by_smtp_then_deactivates_deletes_and_erases_in_one_pass_far_ahead() {
    let smtp = support::smtp::smtp_sink();
    let dir = tempfile::tempdir().unwrap();
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let (id, _) = invite(dir.path(), "sleepy", &["--smtp", &smtp_url, "--display-name", "Sleepy Sloth"]);
    smtp.wait_for_message(1);

    let far = (chrono::Utc::now() + chrono::Duration::days(400)).to_rfc3339();
    let plan = tenure(dir.path(), &["scheduler", "--dry-run", "--now", &far, "--smtp", &smtp_url]);
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan = stdout(&plan);
    assert!(
        plan.contains(&format!("{id}: deactivation warning")) && plan.contains(&format!("{id}: deletion")),
        "{plan}"
    );
    assert!(plan.trim_end().ends_with("warned: 2, deactivated: 1, deleted: 1, released: 0"), "{plan}");
    assert_eq!(smtp.messages().len(), 1, "a dry run sends nothing");

    // At the warning's time the warning is mailed, queued with its event.
    let warn_at = (chrono::Utc::now() + chrono::Duration::days(160)).to_rfc3339();
    let warned = tenure(dir.path(), &["scheduler", "--once", "--now", &warn_at, "--smtp", &smtp_url]);
    assert!(warned.status.success(), "{}", stderr(&warned));
    assert_eq!(stdout(&warned).trim(), "warned: 1, deactivated: 0, deleted: 0, released: 0");
    smtp.wait_for_message(2);
    let pass = tenure(dir.path(), &["scheduler", "--once", "--now", &far, "--smtp", &smtp_url]);
    assert!(pass.status.success(), "{}", stderr(&pass));
    assert_eq!(stdout(&pass).trim(), "warned: 1, deactivated: 1, deleted: 1, released: 0");
    let mails = smtp.messages();
    assert!(mails[1].contains("will be deactivated"), "{mails:?}");
    assert!(mails[1].contains("Message-ID: <warning-"), "{}", mails[1]);
    // The deletion warning was queued in the same pass that deleted the account: erasing the
    // account erased its unsent mail too, and the outbox says so.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(smtp.messages().len(), 2, "no mail for an erased account: {:?}", smtp.messages());
    let status = stdout(&tenure(dir.path(), &["mail", "status"]));
    assert!(status.contains("queued: 0") && status.contains("dropped: 1"), "{status}");
    let again = tenure(dir.path(), &["scheduler", "--once", "--now", &far, "--smtp", &smtp_url]);
    assert_eq!(stdout(&again).trim(), "warned: 0, deactivated: 0, deleted: 0, released: 0", "nothing twice");

    // Crypto-shredding: the email and the name are in no file of the data directory, and the
    // history still reads and verifies, with the personal fields erased.
    for (file, bytes) in files(dir.path()) {
        for secret in ["jane@example.com", "Sleepy Sloth"] {
            assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{file} holds {secret}");
        }
    }
    let verify = tenure(dir.path(), &["audit", &id, "--verify"]);
    assert!(verify.status.success() && stdout(&verify).contains("hash chain intact"), "{}", stderr(&verify));
    let text = stdout(&tenure(dir.path(), &["audit", &id]));
    assert!(text.contains("personal=erased") && text.contains("(personal data erased)"), "{text}");
    assert!(text.lines().any(|l| l.contains("scheduler") && l.contains("Deleted")), "{text}");
}

#[test]
fn kill_9_of_the_scheduler_and_its_mail_worker_at_random_points_loses_no_warning_and_does_no_step_twice() {
    let smtp = support::smtp::smtp_sink();
    let dir = tempfile::tempdir().unwrap();
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let accounts = 24;
    let ids: Vec<String> =
        (0..accounts).map(|i| invite(dir.path(), &format!("crash{i}"), &["--smtp", &smtp_url]).0).collect();
    smtp.wait_for_message(accounts);
    // When the deactivation warnings are due (and nothing else): the scheduler records them
    // with their mail, and its delivery worker sends the mail, both killed at random moments.
    let warn_at = (chrono::Utc::now() + chrono::Duration::days(160)).to_rfc3339();
    let scheduler = || {
        Command::new(env!("CARGO_BIN_EXE_tenure"))
            .arg("--data-dir")
            .arg(dir.path())
            .args(["--smtp", &smtp_url, "scheduler", "--now", &warn_at])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut seed = 0x9e37_79b9_u64;
    for _ in 0..8 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let mut child = scheduler();
        std::thread::sleep(std::time::Duration::from_millis(30 + (seed >> 33) % 250));
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let last = tenure(dir.path(), &["--smtp", &smtp_url, "scheduler", "--once", "--now", &warn_at]);
    assert!(last.status.success(), "{}", stderr(&last));
    // A mail claimed by a killed worker waits for its claim to run out: `mail send` waits for
    // it, as a running gateway would.
    let mut status = String::new();
    for _ in 0..20 {
        status = stdout(&tenure(dir.path(), &["--smtp", &smtp_url, "mail", "send"]));
        if status.contains("queued: 0") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_secs(5));
    }
    assert!(status.contains("queued: 0"), "{status}");

    let mut warnings = 0;
    for id in &ids {
        let audit: serde_json::Value =
            serde_json::from_str(&stdout(&tenure(dir.path(), &["audit", id, "--format", "json"]))).unwrap();
        let types: Vec<String> =
            audit.as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap().to_string()).collect();
        assert_eq!(types, ["AccountInvited", "DeactivationWarningSent"], "{id}: the step once");
        warnings += 1;
    }
    // Every warning mailed; a copy beyond the first carries the same Message-ID, and is counted.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let mails = smtp.messages();
    let mut ids_mailed: Vec<String> = mails
        .iter()
        .filter_map(|m| m.lines().find_map(|l| l.strip_prefix("Message-ID: <warning-")))
        .map(|rest| rest.split('@').next().unwrap().to_string())
        .collect();
    let sent = ids_mailed.len();
    ids_mailed.sort();
    ids_mailed.dedup();
    assert_eq!(ids_mailed.len(), warnings, "each warning mailed, under one Message-ID");
    let duplicates = sent - warnings;
    let counted: usize = status
        .lines()
        .find_map(|l| l.split("with the same Message-ID: ").nth(1))
        .and_then(|n| n.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{status}"));
    assert!(duplicates <= counted, "every duplicate counted: {duplicates} sent twice, {counted} counted");
    println!(
        "kill -9 rounds: {warnings} warnings, {sent} mails, {duplicates} duplicates (same Message-ID), {counted} counted"
    );
}

#[test]
fn a_second_scheduler_waits_for_the_lease_and_takes_over_when_the_first_dies() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    invite(dir.path(), "lease", &[]);
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_tenure"))
            .arg("--data-dir")
            .arg(dir.path())
            .arg("scheduler")
            .env("TENURE_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // The log lines of a child, as they come.
    let lines = |child: &mut std::process::Child| {
        let (send, receive) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = send.send(line);
            }
        });
        receive
    };
    let wait_for = |lines: &std::sync::mpsc::Receiver<String>, needle: &str| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return,
                Ok(_) => {}
                Err(_) => panic!("no log line with {needle:?}"),
            }
        }
    };
    let mut first = start();
    let first_lines = lines(&mut first);
    wait_for(&first_lines, "scheduler running");
    let mut second = start();
    let second_lines = lines(&mut second);
    wait_for(&second_lines, "another scheduler holds the lease");
    assert!(second_lines.recv_timeout(std::time::Duration::from_millis(1500)).is_err(), "the second one only waits");
    first.kill().unwrap();
    first.wait().unwrap();
    wait_for(&second_lines, "scheduler running");
    second.kill().unwrap();
    second.wait().unwrap();
}

/// The embedded store moves to PostgreSQL: every event in order with its keys, chains verified;
/// the copy then answers as the original did; a second run resumes and copies nothing; a
/// source whose chain is broken is refused, naming the event, as is a target that is not a
/// copy of the source.
#[test]
fn migrate_store_moves_the_embedded_store_to_postgres_and_the_copy_serves() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(tenure_store::conformance::TestDatabase::create());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (id, _) = invite(d, "mover", &["--display-name", "Morgan Mover"]);
    let (_, stayer_link) = invite(d, "stayer", &["--role", "admin"]);
    assert!(tenure(d, &["admin", "mfa", "mover", "app"]).status.success());
    assert!(
        tenure(d, &["org", "order", "open", "--org", "acme", "--id", "O-1", "--title", "New line"]).status.success()
    );
    let source = format!("sqlite://{}", d.join("tenure.db").display());
    let to = database.url.as_str();

    let copied = tenure(d, &["migrate-store", "--from", &source, "--to", to]);
    assert!(copied.status.success(), "{}", stderr(&copied));
    assert!(stdout(&copied).contains("every hash chain verified on both sides"), "{}", stdout(&copied));
    assert!(stdout(&copied).contains("2 data keys"), "{}", stdout(&copied));
    for format in ["text", "json"] {
        let here = tenure(d, &["audit", "mover", "--format", format]);
        let there = tenure(d, &["--store", to, "audit", "mover", "--format", format]);
        assert!(there.status.success(), "{}", stderr(&there));
        assert_eq!(stdout(&there), stdout(&here), "the copy tells the same history, personal data included");
    }
    assert!(stdout(&tenure(d, &["--store", to, "audit", "mover"])).contains("Morgan Mover"));
    let verified = tenure(d, &["--store", to, "audit", "mover", "--verify"]);
    assert!(stdout(&verified).starts_with("hash chain intact: 2 events"), "{}", stdout(&verified));
    let rebuilt = tenure(d, &["--store", to, "projections", "rebuild"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    let status = stdout(&tenure(d, &["--store", to, "projections", "status"]));
    assert!(status.contains("accounts") && !status.contains("failed"), "{status}");

    // The copy serves: a gateway on it opens the invitation made before the move.
    let port = support::port::free_port();
    let mut gateway = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(d)
        .args(["--store", to, "serve", "--listen", &format!("127.0.0.1:{port}"), "--insecure-cookies"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    support::port::wait_until_listening(port, std::time::Duration::from_secs(20), "the gateway");
    let token = stayer_link.rsplit('/').next().unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut answer = agent.get(&format!("http://127.0.0.1:{port}/api/v1/invitations/{token}")).call().unwrap();
    let status = answer.status().as_u16();
    let body = answer.body_mut().read_to_string().unwrap();
    let _ = gateway.kill();
    let _ = gateway.wait();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"username\":\"stayer\""), "{body}");

    let again = tenure(d, &["migrate-store", "--from", &source, "--to", to]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).contains("(0 copied by this run)"), "{}", stdout(&again));

    // The source's scheduler deletes the accounts (crypto-shredding) after the first copy: the
    // rerun carries the new events and the destroyed keys over, and erases the copy too.
    let pass = tenure(d, &["scheduler", "--once", "--now", "2031-01-01T00:00:00Z"]);
    assert!(pass.status.success(), "{}", stderr(&pass));
    assert!(stdout(&pass).contains("deleted: 2"), "{}", stdout(&pass));
    let erased = tenure(d, &["migrate-store", "--from", &source, "--to", to]);
    assert!(erased.status.success(), "{}", stderr(&erased));
    assert!(stdout(&erased).contains("its 0 data keys"), "{}", stdout(&erased));
    let history = stdout(&tenure(d, &["--store", to, "audit", "mover"]));
    assert!(history.contains("erased") && !history.contains("Morgan Mover"), "{history}");

    // A target that holds something else is not a copy of the source.
    invite(d, "newcomer", &[]);
    let other = tempfile::tempdir().unwrap();
    // The same master key, so that the target opens from there too.
    std::fs::copy(d.join("master.key"), other.path().join("master.key")).unwrap();
    invite(other.path(), "stranger", &[]);
    let foreign = format!("sqlite://{}", other.path().join("tenure.db").display());
    // (With this directory's keys the foreign store does not even open: its keys are elsewhere.)
    assert_one_line_error(&tenure(d, &["migrate-store", "--from", &foreign, "--to", to]), "has no key for account");
    let copied_over = tenure(other.path(), &["migrate-store", "--from", &foreign, "--to", to]);
    assert_one_line_error(&copied_over, "not a copy of");

    // A changed byte in the source stops the copy at that event.
    let connection = rusqlite::Connection::open(d.join("tenure.db")).unwrap();
    let stream = format!("account-{id}");
    let event_id: Vec<u8> = connection
        .query_row("SELECT event_id FROM events WHERE stream = ?1 AND version = 2", [&stream], |r| r.get(0))
        .unwrap();
    connection.execute("UPDATE events SET actor = 'forged' WHERE stream = ?1 AND version = 2", [&stream]).unwrap();
    drop(connection);
    let fresh = runtime.block_on(tenure_store::conformance::TestDatabase::create());
    let refused = tenure(d, &["migrate-store", "--from", &source, "--to", &fresh.url]);
    // Progress lines come first on stderr; the error is the last line.
    let last = stderr(&refused).trim_end().lines().last().unwrap_or_default().to_string();
    assert!(!refused.status.success() && last.starts_with("error: "), "{last}");
    assert!(last.contains(&uuid::Uuid::from_slice(&event_id).unwrap().to_string()), "{last}");
    assert!(last.contains("hash chain is broken"), "{last}");
}

/// A key store that is missing, emptied or another store's is refused by every command, and is
/// never made anew: that would pass the lost keys off as erasure (issue 15).
#[test]
fn a_lost_emptied_or_swapped_key_store_is_refused_and_never_made_anew() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ids: Vec<String> = (0..18).map(|n| invite(d, &format!("user{n:02}"), &[]).0).collect();
    let (keys, master) = (d.join("keys.db"), d.join("master.key"));
    let saved = std::fs::read(&keys).unwrap();
    let refusing = |needle: &str| {
        for args in [
            &["serve", "--listen", "127.0.0.1:0"][..],
            &["audit", "user00"],
            &["admin", "invite", "--username", "newcomer", "--email", "n@example.com", "--org", "acme"],
        ] {
            assert_one_line_error(&tenure(d, args), needle);
        }
    };

    std::fs::remove_file(&keys).unwrap();
    refusing("keys.db is missing");
    assert!(!keys.exists(), "the key store was made anew");
    assert!(stderr(&tenure(d, &["audit", "user00"])).contains("restore keys.db and master.key from a backup"));

    std::fs::write(&keys, &saved).unwrap();
    let emptied = rusqlite::Connection::open(&keys).unwrap();
    emptied.execute("DELETE FROM account_keys", []).unwrap();
    drop(emptied);
    refusing("has no key for account");

    let other = tempfile::tempdir().unwrap();
    invite(other.path(), "stranger", &[]);
    std::fs::copy(other.path().join("keys.db"), &keys).unwrap();
    let own_master = std::fs::read(&master).unwrap();
    std::fs::copy(other.path().join("master.key"), &master).unwrap();
    refusing("has no key for account");

    // Restored, it opens. A key lost past the accounts checked at start is reported by audit as
    // lost, not erased, and the chain check fails too.
    std::fs::write(&keys, &saved).unwrap();
    std::fs::write(&master, own_master).unwrap();
    assert!(tenure(d, &["audit", "user00"]).status.success());
    let lost: uuid::Uuid = ids[17].parse().unwrap();
    let store = rusqlite::Connection::open(&keys).unwrap();
    store.execute("DELETE FROM account_keys WHERE account_id = ?1", [lost.as_bytes()]).unwrap();
    drop(store);
    assert_one_line_error(&tenure(d, &["audit", "user17"]), "lost, not erased");
    assert_one_line_error(&tenure(d, &["audit", "user17", "--verify"]), "lost, not erased");
    assert!(tenure(d, &["audit", "user16"]).status.success());
}

#[test]
fn an_emptied_key_table_on_postgres_is_refused_and_never_made_anew() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let database = runtime.block_on(tenure_store::conformance::TestDatabase::create());
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let url = database.url.as_str();
    invite(d, "pgkeys", &["--store", url]);
    assert!(tenure(d, &["--store", url, "audit", "pgkeys"]).status.success());
    let emptied = Command::new("psql").args([url, "-qc", "DELETE FROM account_keys"]).output().unwrap();
    assert!(emptied.status.success(), "{}", String::from_utf8_lossy(&emptied.stderr));
    for args in [
        &["--store", url, "serve", "--listen", "127.0.0.1:0"][..],
        &["--store", url, "audit", "pgkeys"],
        &["--store", url, "scheduler", "--once"],
    ] {
        assert_one_line_error(&tenure(d, args), "the database's account_keys has no key for account");
    }
}

/// A damaged read-model file is set aside and made anew (the read models come back from the
/// events); a damaged `sessions.db` too (users sign in again). Neither needs a human.
#[test]
fn damaged_disposable_files_are_set_aside_and_made_anew() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for n in 0..200 {
        invite(d, &format!("member{n:03}"), &[]);
    }
    let rebuilt = tenure(d, &["projections", "rebuild"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    // The scheduler opens sessions.db too (it ends sessions); a dry run writes nothing else.
    let pass = tenure(d, &["scheduler", "--once", "--dry-run"]);
    assert!(pass.status.success(), "{}", stderr(&pass));
    for name in ["projections.db", "sessions.db"] {
        let file = d.join(name);
        let length = std::fs::metadata(&file).unwrap().len();
        assert!(length > 8192, "{name} is {length} bytes");
        // Keep the header, lose the rest: what a crash of the disk or a careless copy leaves.
        let bytes = std::fs::read(&file).unwrap();
        let mut damaged = bytes[..4096].to_vec();
        damaged.extend(std::iter::repeat_n(0xA5u8, bytes.len() - 4096));
        std::fs::write(&file, damaged).unwrap();
        let _ = std::fs::remove_file(d.join(format!("{name}-wal")));
        let _ = std::fs::remove_file(d.join(format!("{name}-shm")));
    }
    let pass = tenure(d, &["scheduler", "--once", "--dry-run"]);
    assert!(pass.status.success(), "{}", stderr(&pass));
    let rebuilt = tenure(d, &["projections", "rebuild"]);
    assert!(rebuilt.status.success(), "{}", stderr(&rebuilt));
    assert!(stdout(&rebuilt).contains("from 400 events"), "{}", stdout(&rebuilt));
    let status = stdout(&tenure(d, &["projections", "status"]));
    assert!(
        status.lines().any(|l| l.starts_with("accounts") && l.split_whitespace().nth(1) == Some("400")),
        "{status}"
    );
    let aside: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".damaged-"))
        .collect();
    assert!(aside.iter().any(|n| n.starts_with("projections.db.damaged-")), "{aside:?}");
    assert!(aside.iter().any(|n| n.starts_with("sessions.db.damaged-")), "{aside:?}");
    // The events and the keys are never set aside.
    assert!(tenure(d, &["audit", "member007"]).status.success());
}

/// Finishes the first sign-in of `username` straight through the store (password, an
/// authenticator app, the terms), as the pages would.
fn onboard_with_app(dir: &Path, invitation_url: &str) {
    use tenure_domain::decide::{Command as Do, Ctx, EnrollmentProof, PasswordVia};
    let token = invitation_url.rsplit('/').next().unwrap();
    let digest = tenure_store::secrets::token_digest(token);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let store =
            tenure_store::SqliteStore::open(&dir.join("tenure.db"), tenure_store::sqlite::Open::MustExist).unwrap();
        let (keys, master) = tenure_store::keys::key_store_paths(dir);
        let keys = tenure_store::SqliteKeyStore::open(&keys, &master, false).unwrap();
        let accounts = tenure_store::Accounts::new(store, keys);
        let id = accounts.resolve("jdoe").await.unwrap().unwrap();
        let ctx = Ctx { now: chrono::Utc::now() };
        let meta = tenure_store::Meta::new(tenure_store::Actor::User(id));
        let invitation = Some(digest);
        let password = Do::SetPassword {
            password_hash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA".into(),
            via: PasswordVia::Invitation { token_digest: digest },
        };
        let proof =
            EnrollmentProof::App { secret: "JBSWY3DPEHPK3PXP".into(), step: Some(1), recovery: vec![], spent: None };
        for command in [password, Do::EnrollMfa { proof, invitation }, Do::AcceptTerms { version: 1, invitation }] {
            accounts.execute(id, command, &ctx, &meta).await.unwrap();
        }
    });
}

#[test]
fn an_operator_mails_a_password_reset_and_resets_two_factor_as_the_named_actor() {
    let smtp = support::smtp::smtp_sink();
    let dir = tempfile::tempdir().unwrap();
    let smtp_url = format!("smtp://127.0.0.1:{}", smtp.port);
    let public = ["--smtp", &smtp_url, "--public-url", "https://portal.example.com"];
    let (_, url) = invite(dir.path(), "jdoe", &["--mfa", "app", "--smtp", &smtp_url]);
    smtp.wait_for_message(1);

    // Before the first sign-in there is no password to reset: the invitation is the way in.
    let early = tenure(dir.path(), &[&public[..], &["admin", "reset-password", "jdoe"]].concat());
    assert_one_line_error(&early, "first sign-in");
    assert_one_line_error(&tenure(dir.path(), &["admin", "reset-mfa", "nobody"]), "no account named");

    onboard_with_app(dir.path(), &url);
    let sent = tenure(dir.path(), &[&public[..], &["admin", "reset-password", "jdoe"]].concat());
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert!(stdout(&sent).contains("a password reset mail to jdoe is queued"), "{}", stdout(&sent));
    assert!(!stdout(&sent).contains("/reset/"), "the link goes to the owner only");
    let mail = smtp.wait_for_message(2).replace("=\r\n", "").replace("=\n", "");
    assert!(
        mail.contains("Reset your Tenure password") && mail.contains("https://portal.example.com/reset/"),
        "{mail}"
    );

    let reset = tenure(dir.path(), &["--smtp", &smtp_url, "admin", "reset-mfa", "jdoe"]);
    assert!(reset.status.success(), "{}", stderr(&reset));
    assert!(stdout(&reset).contains("no longer work"), "{}", stdout(&reset));
    let notice = smtp.wait_for_message(3);
    assert!(notice.contains("two-factor sign-in was reset") && notice.contains("the command line"), "{notice}");
    let again = tenure(dir.path(), &["--smtp", &smtp_url, "admin", "reset-mfa", "jdoe"]);
    assert_one_line_error(&again, "has no authenticator app");

    let audit = tenure(dir.path(), &["audit", "jdoe", "--format", "json"]);
    let events: serde_json::Value = serde_json::from_str(&stdout(&audit)).unwrap();
    let by_type = |t: &str| events.as_array().unwrap().iter().find(|e| e["type"] == t).cloned().unwrap_or_default();
    assert_eq!(by_type("PasswordResetRequested")["actor"], "operator:ops-alice", "{events}");
    assert_eq!(by_type("MfaReset")["actor"], "operator:ops-alice", "{events}");
}

#[test]
fn token_signing_keys_rotate_and_a_replaced_one_stays_for_its_grace() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    invite(d, "jdoe", &[]);
    let rotate = |grace: &str| {
        let output = tenure(d, &["oidc", "rotate-keys", "--grace-hours", grace]);
        assert!(output.status.success(), "{}", stderr(&output));
        let text = stdout(&output);
        let current = text.lines().next().unwrap().strip_prefix("signing key: ").unwrap().to_string();
        let kept: Vec<String> = text.lines().skip(1).map(|l| l.rsplit(' ').next().unwrap().to_string()).collect();
        (current, kept)
    };
    let (first, none) = rotate("24");
    assert!(none.is_empty(), "the first key replaces nothing");
    let (second, kept) = rotate("24");
    assert_ne!(first, second);
    assert_eq!(kept, std::slice::from_ref(&first), "the replaced key verifies for a day");
    let (third, kept) = rotate("1");
    assert_eq!(kept, [second.clone(), first.clone()]);
    let (_, kept) = rotate("24");
    assert_eq!(kept, [third, second, first], "each replaced key stays for its grace");
    assert!(!tenure(d, &["oidc", "rotate-keys", "--grace-hours", "0"]).status.success(), "a grace of at least an hour");
    assert!(stderr(&tenure(d, &["oidc", "rotate-keys", "--grace-hours", "9999"])).contains("9999"));
}

#[test]
fn operators_register_list_and_remove_applications_and_a_secret_is_shown_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    invite(d, "jdoe", &[]);
    let add = |extra: &[&str]| {
        let mut args = vec!["oidc", "client", "add", "--org", "acme", "--name", "Services"];
        args.extend(extra);
        tenure(d, &args)
    };
    let confidential = add(&["--redirect-uri", "https://services.example.com/cb", "https://services.example.com/cb2"]);
    assert!(confidential.status.success(), "{}", stderr(&confidential));
    let text = stdout(&confidential);
    let field = |text: &str, name: &str| {
        text.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_string()).unwrap_or_default()
    };
    let (id, secret) = (field(&text, "client_id:"), field(&text, "client_secret:"));
    assert!(id.starts_with("acme.") && id.len() > 20, "{text}");
    assert!(secret.len() >= 43, "{text}");
    let public = add(&["--public", "--tab", "services", "--redirect-uri", "http://localhost:3000/cb"]);
    assert!(public.status.success(), "{}", stderr(&public));
    assert!(!stdout(&public).contains("client_secret"), "a public client has no secret");
    let public_id = field(&stdout(&public), "client_id:");

    let listed = stdout(&tenure(d, &["oidc", "client", "list", "--org", "acme"]));
    assert!(listed.contains(&id) && listed.contains(&public_id) && listed.contains("tab=services"), "{listed}");
    assert!(!listed.contains(&secret), "the secret is shown once, at registration");
    assert_eq!(stdout(&tenure(d, &["oidc", "client", "list"])), listed, "all orgs: here only acme");
    for (files, bytes) in files(d) {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "{files} holds the secret");
    }

    for (bad, says) in [
        (vec!["--redirect-uri", "http://services.example.com/cb"], "not a redirect URI"),
        (vec!["--redirect-uri", "https://services.example.com/cb#x"], "not a redirect URI"),
        (vec!["--tab", "admin", "--redirect-uri", "https://a.example.com/cb"], "admin"),
    ] {
        let refused = add(&bad);
        assert!(!refused.status.success() && stderr(&refused).contains(says), "{bad:?}: {}", stderr(&refused));
    }
    assert!(tenure(d, &["oidc", "client", "remove", &id]).status.success());
    let listed = stdout(&tenure(d, &["oidc", "client", "list", "--org", "acme"]));
    assert!(!listed.contains(&id) && listed.contains(&public_id), "{listed}");
    let again = tenure(d, &["oidc", "client", "remove", &id]);
    assert!(!again.status.success() && stderr(&again).contains("no client"), "{}", stderr(&again));
}

/// The soak benchmark's one-minute smoke run (issue 19): a real `tenure serve` under the mixed
/// load, its memory read each minute. Whether memory stays flat is recorded from ten-minute
/// release runs in docs/performance.md, never asserted here; this checks that the load runs
/// and every answer is the one expected.
#[test]
fn a_one_minute_soak_loads_a_real_gateway_and_reports_its_memory() {
    let dir = tempfile::tempdir().unwrap();
    let output = tenure(dir.path(), &["bench", "soak", "--minutes", "1", "--clients", "4", "--accounts", "200"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(out.contains("minute  0:") && out.contains("minute  1:"), "{out}");
    assert!(out.contains(", 0 answers not as expected"), "{out}");
    let sign_ins: u64 = out
        .lines()
        .find_map(|l| l.split(" sign-ins").next()?.rsplit(", ").next()?.parse().ok())
        .unwrap_or_else(|| panic!("no sign-ins counted: {out}"));
    assert!(sign_ins > 0, "{out}");
}
