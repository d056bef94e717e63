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
    pub mod port;
    pub mod smtp;
}
use support::port::{free_port, wait_until_listening};
use support::smtp::{SmtpSink, code_in, smtp_sink};

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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
    wait_until_listening(port, Duration::from_secs(30), "tenure serve");
    let driver_port = free_port();
    let driver = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={driver_port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_listening(driver_port, Duration::from_secs(30), "chromedriver");
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
        self.browser_in(self.profile.path()).await
    }

    /// A browser with a profile of its own (cookies included): a second device.
    async fn browser_in(&self, profile: &std::path::Path) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                    format!("--user-data-dir={}", profile.display()),
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

    /// The newest mail to `to` whose text holds `marker`, once it arrives; quoted-printable undone.
    fn wait_for_mail(&self, to: &str, marker: &str) -> String {
        let started = Instant::now();
        loop {
            let found = self
                .smtp
                .messages()
                .into_iter()
                .map(|m| m.replace("=\r\n", "").replace("=\n", "").replace("=3D", "="))
                .rfind(|m| m.contains(&format!("To: {to}")) && m.contains(marker));
            if let Some(mail) = found {
                return mail;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "no mail to {to} with {marker:?} arrived");
            std::thread::sleep(Duration::from_millis(50));
        }
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
    click_to(&browser, "continue", "recovery-codes").await;
    assert_eq!(text(&browser, "recovery-codes").await.lines().count(), 10, "ten recovery codes, shown once");
    screenshot(&browser, "first-sign-in-3-recovery-codes").await;
    click_to(&browser, "continue", "accept").await;
    screenshot(&browser, "first-sign-in-4-terms").await;

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
/// Runs the scheduler's `steps` on `username`, each the given number of days from now, as another
/// process beside the server; returns the accounts, to do more.
async fn schedule(
    world: &World,
    username: &str,
    steps: &[(DomainCommand, i64)],
) -> (Accounts<SqliteStore, SqliteKeyStore>, tenure_domain::AccountId) {
    let dir = world.data_dir.path();
    let store = SqliteStore::open(&dir.join("tenure.db"), Open::MustExist).unwrap();
    let (keys, master) = tenure_store::keys::key_store_paths(dir);
    let accounts = Accounts::new(store, SqliteKeyStore::open(&keys, &master, false).unwrap());
    let id = accounts.resolve(username).await.unwrap().expect("the account");
    for (command, days) in steps {
        let later = Ctx { now: chrono::Utc::now() + chrono::Duration::days(*days) };
        let events = accounts.execute(id, command.clone(), &later, &Meta::new(Actor::Scheduler)).await.unwrap();
        assert_eq!(events.len(), 1, "{events:?}");
    }
    (accounts, id)
}

async fn deactivate(world: &World, username: &str) {
    schedule(world, username, &[(DomainCommand::Deactivate, 200)]).await;
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

/// First sign-in with an authenticator app: the key read off the page, the recovery codes shown
/// once (returned), the terms. Returns the app and the codes.
async fn first_sign_in_with_app(
    browser: &Client,
    link: &str,
    username: &str,
    password: &str,
) -> (Authenticator, Vec<String>) {
    open_invitation(browser, link).await;
    fill(browser, "new_password", password).await;
    fill(browser, "confirm_password", password).await;
    click_to(browser, "continue", "secret").await;
    let app = Authenticator::from_secret(&text(browser, "secret").await, "Tenure", username).unwrap();
    fill(browser, "code", &app.code_at(unix_now())).await;
    click_to(browser, "continue", "recovery-codes").await;
    let codes: Vec<String> = text(browser, "recovery-codes").await.lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(codes.len(), 10, "{codes:?}");
    let download = browser.find(Locator::Id("download")).await.unwrap();
    let href = download.attr("href").await.unwrap().unwrap();
    assert!(href.starts_with("data:text/plain") && href.contains(&codes[0]), "the download holds the codes: {href}");
    assert_eq!(download.attr("download").await.unwrap().as_deref(), Some("tenure-recovery-codes.txt"));
    click_to(browser, "continue", "accept").await;
    click(browser, "accept").await;
    click_to(browser, "continue", "welcome").await;
    (app, codes)
}

/// The code of `app` for a step after the one used last (a used step is refused as a replay).
fn next_code(app: &Authenticator, after: &mut u64) -> String {
    let now = unix_now().max(*after + 30);
    *after = now;
    app.code_at(now)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_password_and_a_forgotten_username_come_back_by_mail() {
    let world = world();
    let link = world.invite("erin", "app", 0);
    let browser = world.browser().await;
    let (app, _) = first_sign_in_with_app(&browser, &link, "erin", "cedar-lagoon-window-42").await;
    let mut used = unix_now();
    sign_out(&browser).await;

    click_to(&browser, "forgot-password", "send").await;
    screenshot(&browser, "recover-password").await;
    fill(&browser, "username", "erin").await;
    click_to(&browser, "send", "sent").await;
    screenshot(&browser, "recover-sent").await;
    let mail = world.wait_for_mail("erin@example.com", "Reset your Tenure password");
    let at = mail.find(&format!("{}/reset/", world.base)).expect("the link in the mail");
    let reset: String =
        mail[at..].chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<' && *c != '>').collect();
    browser.goto(&reset).await.unwrap();
    assert_eq!(text(&browser, "username").await, "erin");
    screenshot(&browser, "reset-password").await;
    fill(&browser, "new_password", "harbour-sorrel-mitten-19").await;
    fill(&browser, "confirm_password", "harbour-sorrel-mitten-19").await;
    click_to(&browser, "continue", "reset-done").await;
    screenshot(&browser, "reset-done").await;
    let notice = world.wait_for_mail("erin@example.com", "Your Tenure password was reset");
    assert!(notice.contains("127.0.0.1") && notice.contains("Chrome"), "where and with what: {notice}");

    // The link worked once.
    browser.goto(&reset).await.unwrap();
    let page = browser.source().await.unwrap();
    assert!(page.contains("This link cannot be used") && page.contains("not valid"), "{page}");
    screenshot(&browser, "reset-link-used").await;

    // The new password, and the authenticator as before.
    browser.goto(&format!("{}/sign-in", world.base)).await.unwrap();
    sign_in(&browser, "erin", "cedar-lagoon-window-42", "form-error").await;
    browser.goto(&format!("{}/sign-in", world.base)).await.unwrap();
    sign_in(&browser, "erin", "harbour-sorrel-mitten-19", "code").await;
    fill(&browser, "code", &next_code(&app, &mut used)).await;
    click_to(&browser, "continue", "welcome").await;
    sign_out(&browser).await;

    click_to(&browser, "forgot-username", "email").await;
    screenshot(&browser, "recover-username").await;
    fill(&browser, "email", "ERIN@example.com").await;
    click_to(&browser, "send", "sent").await;
    let names = world.wait_for_mail("erin@example.com", "Your Tenure username");
    assert!(names.contains("- erin"), "{names}");
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_code_replaces_a_lost_phone_and_an_administrator_resets_two_factor() {
    let world = world();
    let finn_link = world.invite("finn", "app", 0);
    let ada_link = world.invite_with("ada", &["--org", "acme", "--role", "admin"], 1);
    let browser = world.browser().await;
    let (_lost, codes) = first_sign_in_with_app(&browser, &finn_link, "finn", "copper-meadow-lantern-7").await;
    sign_out(&browser).await;

    // The phone is lost: a recovery code instead, then a new authenticator.
    sign_in(&browser, "finn", "copper-meadow-lantern-7", "use-recovery-code").await;
    click_to(&browser, "use-recovery-code", "code").await;
    screenshot(&browser, "sign-in-recovery-code").await;
    fill(&browser, "code", &codes[0].to_lowercase()).await;
    click_to(&browser, "continue", "codes-left").await;
    assert!(text(&browser, "codes-left").await.contains("9 recovery codes left"));
    screenshot(&browser, "signed-in-with-recovery-code").await;
    let used = world.wait_for_mail("finn@example.com", "A Tenure recovery code was used");
    assert!(used.contains("9 left"), "{used}");
    click_to(&browser, "new-authenticator", "current_code").await;
    let new_app = Authenticator::from_secret(&text(&browser, "secret").await, "Tenure", "finn").unwrap();
    fill(&browser, "current_code", &codes[1]).await;
    fill(&browser, "code", &new_app.code_at(unix_now())).await;
    click_to(&browser, "replace", "recovery-codes").await;
    let fresh = text(&browser, "recovery-codes").await;
    assert!(!fresh.contains(&codes[2]), "a new set");
    click_to(&browser, "continue", "profile-heading").await;
    assert!(text(&browser, "recovery-left").await.contains("10 unused"));
    sign_out(&browser).await;

    // The administrator resets finn's two-factor sign-in; finn sets up a new authenticator.
    first_sign_in(&browser, &ada_link, "granite-osprey-violin-3").await;
    click_to(&browser, "tab-admin", "admin-heading").await;
    click_to(&browser, "reset-mfa-finn", "members-notice").await;
    assert!(text(&browser, "members-notice").await.contains("two-factor sign-in is reset"));
    screenshot(&browser, "admin-reset-two-factor").await;
    world.wait_for_mail("finn@example.com", "Your Tenure two-factor sign-in was reset");
    sign_out(&browser).await;
    sign_in(&browser, "finn", "copper-meadow-lantern-7", "secret").await;
    screenshot(&browser, "sign-in-new-authenticator").await;
    let again = Authenticator::from_secret(&text(&browser, "secret").await, "Tenure", "finn").unwrap();
    fill(&browser, "code", &again.code_at(unix_now())).await;
    click_to(&browser, "continue", "recovery-codes").await;
    click_to(&browser, "continue", "welcome").await;
    browser.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_everywhere_else_ends_a_second_browsers_session() {
    let world = world();
    let link = world.invite("gil", "none", 0);
    let laptop = world.browser().await;
    first_sign_in(&laptop, &link, "pepper-walnut-harbor-88").await;
    let phone_profile = tempfile::tempdir().unwrap();
    let phone = world.browser_in(phone_profile.path()).await;
    phone.goto(&format!("{}/sign-in", world.base)).await.unwrap();
    sign_in(&phone, "gil", "pepper-walnut-harbor-88", "welcome").await;

    laptop.goto(&format!("{}/profile", world.base)).await.unwrap();
    let listed = text(&laptop, "sessions").await;
    assert!(listed.contains("(this session)") && listed.contains("127.0.0.1"), "{listed}");
    assert_eq!(laptop.find_all(Locator::Css("#sessions tbody tr")).await.unwrap().len(), 2, "{listed}");
    laptop.execute("document.getElementById('sessions-heading').scrollIntoView()", vec![]).await.unwrap();
    screenshot(&laptop, "profile-sessions").await;
    click_to(&laptop, "sign-out-others", "sessions-notice").await;
    assert!(text(&laptop, "sessions-notice").await.contains("1 other session ended"), "one other");
    assert_eq!(laptop.find_all(Locator::Css("#sessions tbody tr")).await.unwrap().len(), 1);

    phone.goto(&format!("{}/dashboard", world.base)).await.unwrap();
    assert!(phone.current_url().await.unwrap().path().ends_with("/sign-in"), "the phone is signed out");
    laptop.goto(&format!("{}/dashboard", world.base)).await.unwrap();
    assert!(laptop.find(Locator::Id("welcome")).await.is_ok(), "this session goes on");
    phone.close().await.unwrap();
    laptop.close().await.unwrap();
}

/// Deletes `username` as the scheduler does a year after the last sign-in, its key destroyed.
async fn delete(world: &World, username: &str) {
    let steps = [(DomainCommand::Deactivate, 200), (DomainCommand::Delete, 400)];
    let (accounts, id) = schedule(world, username, &steps).await;
    tenure_store::KeyStore::destroy(&accounts.keys, id).await.unwrap();
}

/// What `uri` answers the signed-in browser: status and body.
async fn fetch(browser: &Client, uri: &str) -> (u64, String) {
    let script = "const done = arguments[arguments.length - 1]; \
                  fetch(arguments[0]).then(r => r.text().then(t => done([r.status, t])));";
    let answer = browser.execute_async(script, vec![json!(uri)]).await.unwrap();
    (answer[0].as_u64().unwrap(), answer[1].as_str().unwrap().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_reads_a_deleted_users_verified_history_others_cannot() {
    let world = world();
    let iris = world.invite_with("iris", &["--org", "acme", "--role", "auditor"], 0);
    let dora = world.invite_with("dora", &["--org", "acme"], 1);
    let adam = world.invite_with("adam", &["--org", "acme", "--role", "admin"], 2);
    let ugo = world.invite_with("ugo", &["--org", "acme"], 3);
    let bea = world.invite_with("bea", &["--org", "beta", "--role", "auditor"], 4);
    let browser = world.browser().await;
    first_sign_in(&browser, &dora, "saffron-meadow-pylon-31").await;
    sign_out(&browser).await;
    delete(&world, "dora").await;

    // The auditor finds the deleted user and reads the timeline, the badge and the state.
    first_sign_in(&browser, &iris, "cobalt-juniper-ferry-47").await;
    assert!(browser.find(Locator::Id("tab-admin")).await.is_err(), "an auditor administers nothing");
    click_to(&browser, "tab-audit", "audit-query").await;
    fill(&browser, "audit-query", "dora").await;
    click_to(&browser, "audit-find", "audit-results").await;
    assert!(text(&browser, "audit-results").await.contains("deleted"));
    screenshot(&browser, "audit-search").await;
    click_to(&browser, "audit-open-dora", "audit-badge").await;
    let badge = text(&browser, "badge-verified").await;
    assert!(badge.contains("Verified") && badge.contains("included in the log's signed tree head"), "{badge}");
    assert!(!text(&browser, "badge-root").await.is_empty(), "the head is shown");
    let timeline = text(&browser, "audit-timeline").await;
    for fact in
        ["AccountInvited", "Invited as dora (user) into acme, email erased", "Signed in", "Deactivated", "Deleted"]
    {
        assert!(timeline.contains(fact), "{fact:?} not in the timeline:\n{timeline}");
    }
    assert!(text(&browser, "audit-heading").await.contains("dora"));
    // Now, the deletion (dated a year ahead by the scheduler above) has not happened yet.
    assert_eq!(text(&browser, "state-status").await, "active");
    screenshot(&browser, "audit-account").await;
    let after = (chrono::Utc::now() + chrono::Duration::days(401)).format("%Y-%m-%dT%H:%M").to_string();
    browser.execute("document.getElementById('as-of').value = arguments[0]", vec![json!(after)]).await.unwrap();
    click_to(&browser, "as-of-show", "audit-state").await;
    assert_eq!(text(&browser, "state-status").await, "deleted");
    assert_eq!(text(&browser, "state-email").await, "erased");

    // The exports, and a proof that checks offline with the public key alone.
    let here = browser.current_url().await.unwrap().path().to_string();
    let (status, csv) = fetch(&browser, &format!("{here}/export/csv")).await;
    assert_eq!(status, 200);
    assert!(csv.starts_with("position,version,recorded_at,actor,type,facts,event_id,hash"), "{csv}");
    assert!(csv.lines().last().unwrap().contains(",Deleted,"), "{csv}");
    let (_, cloud) = fetch(&browser, &format!("{here}/export/cloudevents")).await;
    let cloud: serde_json::Value = serde_json::from_str(&cloud).unwrap();
    assert_eq!(cloud[0]["specversion"], "1.0");
    let (_, proof) = fetch(&browser, &format!("{here}/export/proof")).await;
    let proof_file = world.data_dir.path().join("dora-proof.json");
    std::fs::write(&proof_file, proof).unwrap();
    let checked = Command::new(env!("CARGO_BIN_EXE_tenure")).args(["audit", "check-proof"]).arg(&proof_file).output();
    let checked = checked.unwrap();
    assert!(checked.status.success(), "{}", String::from_utf8_lossy(&checked.stderr));
    let (status, _) = fetch(&browser, "/api/v1/audit/head").await;
    assert_eq!(status, 200);
    sign_out(&browser).await;

    // A plain user and an administrator: no Audit tab, and 403 from the API.
    for (link, password) in [(&ugo, "lilac-harbor-tundra-29"), (&adam, "garnet-willow-canyon-65")] {
        first_sign_in(&browser, link, password).await;
        assert!(browser.find(Locator::Id("tab-audit")).await.is_err(), "no Audit tab");
        let (status, body) = fetch(&browser, "/api/v1/audit/accounts?query=dora").await;
        assert_eq!(status, 403, "{body}");
        browser.goto(&format!("{}/audit", world.base)).await.unwrap();
        assert!(browser.source().await.unwrap().contains("Auditors only"));
        sign_out(&browser).await;
    }

    // Another org's auditor: the account is not found.
    first_sign_in(&browser, &bea, "tangerine-oxbow-lattice-83").await;
    let (status, _) = fetch(&browser, &format!("/api/v1{here}/events")).await;
    assert_eq!(status, 404);
    browser.goto(&format!("{}{here}", world.base)).await.unwrap();
    assert!(browser.source().await.unwrap().contains("No such account"));
    browser.close().await.unwrap();
}
