//! End to end in headless Chromium (Debian's chromium and chromium-driver, installed by
//! scripts/test): invitations arrive by real SMTP, the user clicks through first sign-in with an
//! authenticator app (the key read off the page) or emailed codes, signs out and signs in again.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use tenure_gateway::totp::Authenticator;

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
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.driver_port))
            .await
            .expect("a Chromium session")
    }

    /// Invites through the CLI; the link is read from the mail the SMTP server received.
    fn invite(&self, username: &str, mfa: &str, mails_before: usize) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_tenure"))
            .arg("--data-dir")
            .arg(self.data_dir.path())
            .args(["--smtp", &format!("smtp://127.0.0.1:{}", self.smtp.port), "--public-url", &self.base])
            .args([
                "admin",
                "invite",
                "--username",
                username,
                "--email",
                &format!("{username}@example.com"),
                "--org",
                "acme",
                "--mfa",
                mfa,
            ])
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

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sign_in_with_an_authenticator_app_then_sign_out_and_in_again() {
    let world = world();
    let link = world.invite("alice", "app", 0);
    let browser = world.browser().await;

    open_invitation(&browser, &link).await;
    fill(&browser, "new_password", "tangerine-cobalt-harbour-77").await;
    fill(&browser, "confirm_password", "tangerine-cobalt-harbour-77").await;
    click_to(&browser, "continue", "secret").await;

    let secret = text(&browser, "secret").await;
    let otpauth = browser.find(Locator::Id("otpauth")).await.unwrap().attr("href").await.unwrap().unwrap();
    assert!(otpauth.starts_with("otpauth://totp/Tenure:alice?"), "{otpauth}");
    let app = Authenticator::from_secret(&secret, "Tenure", "alice").unwrap();
    let enrolled_at = unix_now();
    fill(&browser, "code", &app.code_at(enrolled_at)).await;
    click_to(&browser, "continue", "accept").await;

    click(&browser, "accept").await;
    click_to(&browser, "continue", "welcome").await;
    assert_eq!(text(&browser, "welcome").await, "Welcome, alice");
    assert_eq!(text(&browser, "mfa").await, "authenticator app");
    let dashboard = browser.source().await.unwrap();
    assert!(dashboard.contains("<li>Services</li>") && !dashboard.contains("<li>Orders</li>"), "acme is not wholesale");
    assert!(dashboard.contains("No open tickets."), "the empty state");

    click_to(&browser, "sign-out", "username").await;
    assert!(browser.source().await.unwrap().contains("You have signed out."));
    browser.goto(&format!("{}/dashboard", world.base)).await.unwrap();
    assert!(browser.current_url().await.unwrap().path().ends_with("/sign-in"), "signed out means signed out");

    fill(&browser, "username", "Alice").await;
    click_to(&browser, "next", "password").await;
    fill(&browser, "password", "tangerine-cobalt-harbour-77").await;
    click_to(&browser, "sign-in", "code").await;
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
    click_to(&browser, "send", "code").await;
    let code = code_in(&world.smtp.wait_for_message(2));
    fill(&browser, "code", &code).await;
    click_to(&browser, "continue", "accept").await;
    click(&browser, "accept").await;
    click_to(&browser, "continue", "welcome").await;
    assert_eq!(text(&browser, "welcome").await, "Welcome, bruno");

    click_to(&browser, "sign-out", "username").await;
    fill(&browser, "username", "bruno").await;
    click_to(&browser, "next", "password").await;
    fill(&browser, "password", "wrong-password-entirely").await;
    click_to(&browser, "sign-in", "form-error").await;
    assert_eq!(text(&browser, "form-error").await, "The username or password is not correct.");
    fill(&browser, "password", "saffron-glacier-piano-31").await;
    click_to(&browser, "sign-in", "code").await;
    let code = code_in(&world.smtp.wait_for_message(3));
    fill(&browser, "code", &code).await;
    click_to(&browser, "continue", "welcome").await;
    assert_eq!(text(&browser, "welcome").await, "Welcome, bruno");
    browser.close().await.unwrap();
}
