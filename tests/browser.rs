//! End to end in headless Chromium (Debian's chromium and chromium-driver, installed by
//! scripts/test): invitations arrive by real SMTP, users click through first sign-in with an
//! authenticator app (the key read off the page) or emailed codes, sign out and in again, edit
//! their profile; an org administrator reactivates a deactivated user, who then signs in. Every
//! page visited is saved as a screenshot in docs/screenshots/ (README links them).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tenure_domain::decide::{Command as DomainCommand, Ctx};
use tenure_gateway::totp::Authenticator;
use tenure_store::sqlite::Open;
use tenure_store::{Accounts, Actor, Meta, SqliteKeyStore, SqliteStore};

mod support {
    pub mod smtp;
}
use support::smtp::{SmtpSink, code_in, smtp_sink};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(30), "{what} did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct World {
    smtp: SmtpSink,
    data_dir: tempfile::TempDir,
    base: String,
    _server: Process,
    _driver: Process,
    driver_port: u16,
    profile: tempfile::TempDir,
}

fn world() -> World {
    for binary in ["/usr/bin/chromium", "/usr/bin/chromedriver"] {
        assert!(
            std::path::Path::new(binary).exists(),
            "{binary} is missing: scripts/test installs chromium and chromium-driver"
        );
    }
    let smtp = smtp_sink();
    let data_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = Command::new(env!("CARGO_BIN_EXE_tenure"))
        .arg("--data-dir")
        .arg(data_dir.path())
        .args(["--smtp", &format!("smtp://127.0.0.1:{}", smtp.port)])
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--insecure-cookies"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(port, "tenure serve");
    let driver_port = free_port();
    let driver = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_port(driver_port, "chromedriver");
    World {
        smtp,
        data_dir,
        base: format!("http://127.0.0.1:{port}"),
        _server: Process(server),
        _driver: Process(driver),
        driver_port,
        profile: tempfile::tempdir().unwrap(),
    }
}

impl World {
    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", self.profile.path().display()),
                ],
            }),
        );
        // chromedriver listens on plain HTTP on this machine: no TLS stack is needed.
        let browser = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.driver_port))
            .await
            .expect("a Chromium session");
        browser.set_window_size(1280, 900).await.unwrap();
        browser
    }

    /// Invites through the CLI; the link is read from the mail the SMTP server received.
    fn invite(&self, username: &str, mfa: &str, mails_before: usize) -> String {
        self.invite_with(username, &["--org", "acme", "--mfa", mfa], mails_before)
    }

    /// Invites with the given `admin invite` options besides the username and email.
    fn invite_with(&self, username: &str, options: &[&str], mails_before: usize) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["--smtp", &format!("smtp://127.0.0.1:{}", self.smtp.port), "--public-url", &self.base])
            .args(["admin", "invite", "--username", username, "--email", &format!("{username}@example.com")])
            .args(options)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let mail = self.smtp.wait_for_message(mails_before + 1);
        // Quoted-printable wraps long lines with a trailing "=".
        let mail = mail.replace("=\r\n", "").replace("=\n", "");
        let at = mail.find(&format!("{}/invite/", self.base)).expect("the link in the mail");
        mail[at..].split_whitespace().next().unwrap().trim_end_matches(['"', '>', '.']).to_string()
    }
}

async fn fill(browser: &Client, id: &str, text: &str) {
    browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}")).send_keys(text).await.unwrap();
}

async fn click(browser: &Client, id: &str) {
    browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}")).click().await.unwrap();
}

/// Clicks `id` and waits for the page that follows to show `then`.
async fn click_to(browser: &Client, id: &str, then: &str) {
    click(browser, id).await;
    if let Err(error) = browser.wait().at_most(Duration::from_secs(20)).for_element(Locator::Id(then)).await {
        let page = browser.source().await.unwrap_or_default();
        panic!("after #{id}, no #{then} ({error}) on this page:\n{page}");
    }
}

async fn text(browser: &Client, id: &str) -> String {
    browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}")).text().await.unwrap()
}

/// Waits for the projections of another process to show the new account to the gateway.
async fn open_invitation(browser: &Client, link: &str) {
    let started = Instant::now();
    loop {
        browser.goto(link).await.unwrap();
        if browser.find(Locator::Id("new_password")).await.is_ok() {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "the invitation page never showed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Saves what the browser shows as docs/screenshots/<name>.png.
async fn screenshot(browser: &Client, name: &str) {
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&folder).unwrap();
    let png = browser.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG image");
    std::fs::write(folder.join(format!("{name}.png")), png).unwrap();
}

/// Signs out through the username menu in the upper right.
async fn sign_out(browser: &Client) {
    click(browser, "user-menu").await;
    click_to(browser, "sign-out", "username").await;
}

/// First sign-in of an account without MFA: a password, then the terms; the dashboard follows.
async fn first_sign_in(browser: &Client, link: &str, password: &str) {
    open_invitation(browser, link).await;
    fill(browser, "new_password", password).await;
    fill(browser, "confirm_password", password).await;
    click_to(browser, "continue", "accept").await;
    click(browser, "accept").await;
    click_to(browser, "continue", "welcome").await;
}

async fn sign_in(browser: &Client, username: &str, password: &str, then: &str) {
    fill(browser, "username", username).await;
    click_to(browser, "next", "password").await;
    fill(browser, "password", password).await;
    click_to(browser, "sign-in", then).await;
}

async fn value(browser: &Client, id: &str) -> String {
    browser.find(Locator::Id(id)).await.unwrap().prop("value").await.unwrap().unwrap_or_default()
}

async fn replace(browser: &Client, id: &str, text: &str) {
    let field = browser.find(Locator::Id(id)).await.unwrap_or_else(|e| panic!("#{id}: {e}"));
    field.clear().await.unwrap();
    field.send_keys(text).await.unwrap();
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sign_in_with_an_authenticator_app_then_sign_out_and_in_again() {
    let world = world();
    let link = world.invite("alice", "app", 0);
    let browser = world.browser().await;

    open_invitation(&browser, &link).await;
    screenshot(&browser, "first-sign-in-1-password").await;
    fill(&browser, "new_password", "tangerine-cobalt-harbour-77").await;
    fill(&browser, "confirm_password", "tangerine-cobalt-harbour-77").await;
    click_to(&browser, "continue", "secret").await;
    screenshot(&browser, "first-sign-in-2-authenticator").await;

    let secret = text(&browser, "secret").await;
    let otpauth = browser.find(Locator::Id("otpauth")).await.unwrap().attr("href").await.unwrap().unwrap();
    assert!(otpauth.starts_with("otpauth://totp/Tenure:alice?"), "{otpauth}");
    let app = Authenticator::from_secret(&secret, "Tenure", "alice").unwrap();
    let enrolled_at = unix_now();
    fill(&browser, "code", &app.code_at(enrolled_at)).await;
    click_to(&browser, "continue", "accept").await;
    screenshot(&browser, "first-sign-in-3-terms").await;

    click(&browser, "accept").await;
    click_to(&browser, "continue", "welcome").await;
    assert_eq!(text(&browser, "welcome").await, "Welcome, alice");
    assert_eq!(text(&browser, "mfa").await, "authenticator app");
    assert!(browser.find(Locator::Id("tab-services")).await.is_ok(), "the Services tab");
    assert!(browser.find(Locator::Id("tab-orders")).await.is_err(), "acme is not wholesale: no Orders tab");
    assert!(browser.find(Locator::Id("tab-admin")).await.is_err(), "alice is no administrator");
    assert!(browser.source().await.unwrap().contains("No open tickets."), "the empty state");

    // My Profile offers to move to a new authenticator, with a code from the current one.
    click(&browser, "user-menu").await;
    click_to(&browser, "my-profile", "replace-authenticator").await;
    click_to(&browser, "replace-authenticator", "current_code").await;
    assert_ne!(text(&browser, "secret").await, secret, "a new key");
    screenshot(&browser, "profile-new-authenticator").await;

    sign_out(&browser).await;
    assert!(browser.source().await.unwrap().contains("You have signed out."));
    browser.goto(&format!("{}/dashboard", world.base)).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().ends_with("/sign-in"), "signed out means signed out");
    screenshot(&browser, "sign-in-1-username").await;

    fill(&browser, "username", "Alice").await;
    click_to(&browser, "next", "password").await;
    screenshot(&browser, "sign-in-2-password").await;
    fill(&browser, "password", "tangerine-cobalt-harbour-77").await;
    click_to(&browser, "sign-in", "code").await;
    screenshot(&browser, "sign-in-3-code").await;
    // The enrollment's time step was used; the next step's code is accepted (one step of drift).
    fill(&browser, "code", &app.code_at(enrolled_at + 30)).await;
    click_to(&browser, "continue", "welcome").await;
    assert_eq!(text(&browser, "welcome").await, "Welcome, alice");
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sign_in_and_sign_in_with_codes_by_email() {
    let world = world();
    let link = world.invite("bruno", "email", 0);
    let browser = world.browser().await;

    open_invitation(&browser, &link).await;
    fill(&browser, "new_password", "saffron-glacier-piano-31").await;
    fill(&browser, "confirm_password", "saffron-glacier-piano-31").await;
    click_to(&browser, "continue", "send").await;
    screenshot(&browser, "first-sign-in-2-email").await;
    click_to(&browser, "send", "code").await;
    let code = code_in(&world.smtp.wait_for_message(2));
    fill(&browser, "code", &code).await;
    click_to(&browser, "continue", "accept").await;
    click(&browser, "accept").await;
    click_to(&browser, "continue", "welcome").await;
    assert_eq!(text(&browser, "welcome").await, "Welcome, bruno");

    sign_out(&browser).await;
    sign_in(&browser, "bruno", "wrong-password-entirely", "form-error").await;
    assert_eq!(text(&browser, "form-error").await, "The username or password is not correct.");
    fill(&browser, "password", "saffron-glacier-piano-31").await;
    click_to(&browser, "sign-in", "code").await;
    let code = code_in(&world.smtp.wait_for_message(3));
    fill(&browser, "code", &code).await;
    click_to(&browser, "continue", "welcome").await;
    assert_eq!(text(&browser, "welcome").await, "Welcome, bruno");
    browser.close().await.unwrap();
}

/// Deactivates `username` as the scheduler does once six months have passed without a sign-in
/// (the scheduler itself is another issue): the command, run against the store of the serving
/// process, at a time past the deadline.
async fn deactivate(world: &World, username: &str) {
    let dir = world.data_dir.path();
    let store = SqliteStore::open(&dir.join("tenure.db"), Open::MustExist).unwrap();
    let (keys, master) = tenure_store::keys::key_store_paths(dir);
    let accounts = Accounts::new(store, SqliteKeyStore::open(&keys, &master, false).unwrap());
    let id = accounts.resolve(username).await.unwrap().expect("the account");
    let later = Ctx { now: chrono::Utc::now() + chrono::Duration::days(200) };
    let events = accounts.execute(id, DomainCommand::Deactivate, &later, &Meta::new(Actor::Scheduler)).await.unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_edits_the_profile_and_an_admin_reactivates_a_deactivated_user_who_then_signs_in() {
    let world = world();
    let ada_link = world.invite_with("ada", &["--org", "acme", "--role", "admin"], 0);
    let carl_link = world.invite_with("carl", &["--org", "acme"], 1);
    let browser = world.browser().await;

    // The administrator's first sign-in: the Admin tab, no Orders tab (acme is not wholesale).
    first_sign_in(&browser, &ada_link, "quartz-lantern-fjord-58").await;
    assert!(browser.find(Locator::Id("tab-admin")).await.is_ok(), "ada administers acme");
    assert!(browser.find(Locator::Id("tab-orders")).await.is_err(), "acme is not wholesale: no Orders tab");
    screenshot(&browser, "dashboard").await;
    click_to(&browser, "tab-services", "tab-heading").await;
    assert_eq!(text(&browser, "tab-heading").await, "Services");
    screenshot(&browser, "tab-services").await;

    // My Profile, from the username menu: a bad phone number is refused next to the field.
    click(&browser, "user-menu").await;
    click_to(&browser, "my-profile", "profile-heading").await;
    assert_eq!(text(&browser, "email").await, "ada@example.com");
    screenshot(&browser, "profile").await;
    replace(&browser, "display_name", "Ada Lovelace").await;
    replace(&browser, "phone", "020 7946 0958").await;
    replace(&browser, "address", "12 St James's Square\nLondon").await;
    click_to(&browser, "save-profile", "phone-error").await;
    assert!(text(&browser, "phone-error").await.contains("international format"));
    let phone = browser.find(Locator::Id("phone")).await.unwrap();
    assert_eq!(phone.attr("aria-invalid").await.unwrap().as_deref(), Some("true"));
    assert_eq!(phone.attr("aria-describedby").await.unwrap().as_deref(), Some("phone-error"));
    assert_eq!(value(&browser, "display_name").await, "Ada Lovelace", "what was typed is kept");
    screenshot(&browser, "profile-error").await;
    replace(&browser, "phone", "+442079460958").await;
    click_to(&browser, "save-profile", "details-notice").await;
    assert_eq!(text(&browser, "details-notice").await, "Your profile is saved.");
    browser.goto(&format!("{}/profile", world.base)).await.unwrap();
    assert_eq!(value(&browser, "display_name").await, "Ada Lovelace");
    assert_eq!(value(&browser, "phone").await, "+442079460958");
    assert_eq!(value(&browser, "address").await, "12 St James's Square\nLondon");
    let recent = text(&browser, "recent-sign-ins").await;
    assert!(recent.contains("127.0.0.1") && recent.contains("first sign-in"), "{recent}");
    sign_out(&browser).await;

    // Carl signs in for the first time, then goes six months without signing in.
    first_sign_in(&browser, &carl_link, "marble-thistle-comet-90").await;
    sign_out(&browser).await;
    deactivate(&world, "carl").await;
    sign_in(&browser, "carl", "marble-thistle-comet-90", "form-error").await;
    assert!(text(&browser, "form-error").await.contains("administrator can reactivate"), "the reason is given");
    screenshot(&browser, "sign-in-deactivated").await;

    // Ada reactivates carl from the Admin tab.
    browser.goto(&format!("{}/sign-in", world.base)).await.unwrap();
    sign_in(&browser, "ada", "quartz-lantern-fjord-58", "welcome").await;
    click_to(&browser, "tab-admin", "admin-heading").await;
    assert_eq!(text(&browser, "state-carl").await, "deactivated");
    screenshot(&browser, "admin").await;
    click_to(&browser, "reactivate-carl", "members-notice").await;
    assert!(text(&browser, "members-notice").await.contains("carl's profile is reactivated"));
    assert_eq!(text(&browser, "state-carl").await, "active");
    screenshot(&browser, "admin-reactivated").await;
    // The audit trail names the administrator who reactivated carl.
    let audit = |who: &str| {
        let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .arg("--data-dir")
            .arg(world.data_dir.path())
            .args(["audit", who])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let ada = audit("ada").split_whitespace().nth(1).unwrap().trim_end_matches(':').to_string();
    let audit = audit("carl");
    let reactivated = audit.lines().find(|line| line.contains("Reactivated")).unwrap_or_else(|| panic!("{audit}"));
    assert!(reactivated.contains(&format!("admin:{ada}")), "{audit}");
    browser.set_window_size(390, 844).await.unwrap();
    browser.goto(&format!("{}/dashboard", world.base)).await.unwrap();
    screenshot(&browser, "dashboard-phone").await;
    browser.set_window_size(1280, 900).await.unwrap();
    sign_out(&browser).await;

    sign_in(&browser, "carl", "marble-thistle-comet-90", "welcome").await;
    assert_eq!(text(&browser, "welcome").await, "Welcome, carl");
    assert!(browser.find(Locator::Id("tab-admin")).await.is_err(), "carl is no administrator");
    browser.goto(&format!("{}/admin", world.base)).await.unwrap();
    assert!(browser.source().await.unwrap().contains("Administrators only"));
    sign_out(&browser).await;

    // A wholesale org's user sees the Orders tab.
    let wanda_link = world.invite_with("wanda", &["--org", "bulkco", "--wholesale"], 2);
    first_sign_in(&browser, &wanda_link, "harbor-violet-quill-64").await;
    assert!(browser.find(Locator::Id("tab-orders")).await.is_ok(), "bulkco is wholesale");
    browser.close().await.unwrap();
}
