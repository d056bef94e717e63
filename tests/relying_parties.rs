//! Real relying parties against the release-shaped `tenure serve`: panva's `openid-client` (Node,
//! installed by scripts/test into tests/rp) signs a user in through headless Chromium with a
//! password and an authenticator code, then checks what SPEC §13 promises an application
//! (tests/rp/openid-client.mjs holds each step). The Rust `openidconnect` crate is driven in
//! gateway/tests/relying_party.rs.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod support {
    pub mod gateway;
    pub mod port;
    pub mod smtp;
}
use support::smtp::smtp_sink;

const PASSWORD: &str = "saffron-quartz-meadow-2026";

/// `tenure` with the test's data directory, mail to the SMTP sink.
fn tenure(dir: &Path, smtp_port: u16, base: &str, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(dir)
        .args(["--smtp", &format!("smtp://127.0.0.1:{smtp_port}"), "--public-url", base])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "tenure {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

fn field<'a>(printed: &'a str, name: &str) -> &'a str {
    printed
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in {printed}"))
        .trim()
}

#[test]
fn openid_client_signs_a_user_in_through_chromium_with_an_authenticator_code() {
    let rp = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/rp");
    assert!(
        rp.join("node_modules/openid-client").is_dir() && rp.join("node_modules/playwright-core").is_dir(),
        "tests/rp/node_modules is missing: scripts/test installs it with npm ci"
    );
    assert!(Path::new("/usr/bin/chromium").exists(), "/usr/bin/chromium is missing: scripts/test installs it");
    let smtp = smtp_sink();
    let dir = tempfile::tempdir().unwrap();
    let smtp_flag = format!("smtp://127.0.0.1:{}", smtp.port);
    let server = support::gateway::start(dir.path(), &["--smtp", &smtp_flag]);
    let base = server.base.clone();

    tenure(
        dir.path(),
        smtp.port,
        &base,
        &["admin", "invite", "--username", "olivia", "--email", "olivia@example.com", "--org", "acme", "--mfa", "app"],
    );
    let mail = smtp.wait_for_message(1).replace("=\r\n", "").replace("=\n", "");
    let at = mail.find(&format!("{base}/invite/")).expect("the invitation link");
    let invitation = mail[at..].split_whitespace().next().unwrap().trim_end_matches(['"', '>', '.']).to_string();

    // The application's site: the relying party listens there.
    let port = support::port::free_port();
    let (redirect, bye) = (format!("http://127.0.0.1:{port}/cb"), format!("http://127.0.0.1:{port}/bye"));
    let (redirect, bye) = (redirect.as_str(), bye.as_str());
    let app = |extra: &[&str]| {
        let mut args = vec!["oidc", "client", "add", "--org", "acme", "--name", "Services", "--redirect-uri", redirect];
        args.extend_from_slice(extra);
        tenure(dir.path(), smtp.port, &base, &args)
    };
    let confidential = app(&["--post-logout-redirect-uri", bye]);
    let public = app(&["--public"]);

    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    let output = Command::new("node")
        .arg("openid-client.mjs")
        .current_dir(&rp)
        .env("ISSUER", &base)
        .env("INVITATION", &invitation)
        .env("USERNAME", "olivia")
        .env("PASSWORD", PASSWORD)
        .env("CLIENT_ID", field(&confidential, "client_id"))
        .env("CLIENT_SECRET", field(&confidential, "client_secret"))
        .env("PUBLIC_CLIENT_ID", field(&public, "client_id"))
        .env("REDIRECT_URI", redirect)
        .env("POST_LOGOUT_URI", bye)
        .env("SCREENSHOTS", &screenshots)
        .output()
        .expect("node runs (scripts/test installs Node.js where missing)");
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the relying party failed:\n{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    assert_eq!(summary["passed"], true, "{summary}");
    assert_eq!((summary["preferred_username"].as_str(), summary["org"].as_str()), (Some("olivia"), Some("acme")));
    assert!(summary["amr"].as_array().unwrap().contains(&Value::from("otp")), "{summary}");

    // The account's history names the application: the sign-ins through it, the first grant.
    let history = tenure(dir.path(), smtp.port, &base, &["audit", "olivia", "--format", "json"]);
    let client_id = field(&confidential, "client_id");
    assert!(history.contains("\"Authorized\"") && history.contains(client_id), "{history}");
    drop(server);
}
