//! The gateway over a temporary data directory, driven through its router with a manual clock.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use tenure_store::conformance::{Backend, TestLocation};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use tenure_domain::decide::{Command, Ctx, Invite};
use tenure_domain::events::{MfaRequirement, Org, Role};
use tenure_domain::{AccountId, Clock, OrgId, Username};
use tenure_gateway::passwords::HashCost;
use tenure_gateway::routes::router;
use tenure_gateway::state::{App, Config};
use tenure_gateway::totp::Authenticator;
use tenure_mail::Mailer;
use tenure_store::{Actor, EventStore, KeyStore, Meta, secrets};
use tower::ServiceExt;
use uuid::Uuid;

pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap()
    }
}

pub struct Harness {
    pub place: TestLocation,
    pub app: Arc<App>,
    pub clock: Arc<ManualClock>,
    _runners: tokio::task::JoinHandle<()>,
}

/// A gateway over `place`: the harness's own, or another beside it on the same store.
async fn gateway(place: &TestLocation, clock: Arc<ManualClock>) -> Arc<App> {
    let config = Config {
        public_url: "https://portal.example.com".into(),
        insecure_cookies: false,
        terms_version: 3,
        issuer: "Tenure".into(),
        address_quota: Default::default(),
        trusted_proxies: tenure_gateway::http::client::TrustedProxies::parse("10.0.0.0/8").unwrap(),
        session_lifetimes: Default::default(),
        metrics_from: tenure_gateway::http::client::TrustedProxies::parse("127.0.0.0/8,::1").unwrap(),
    };
    let mailer = Mailer::outbox(&place.dir.path().join("outbox"), "Tenure <no-reply@tenure.example>").unwrap();
    let cheap = HashCost { memory_kib: 1024, iterations: 1, parallelism: 1 };
    App::open(&place.location, config, mailer, clock, cheap).await.unwrap()
}

impl Harness {
    /// Stops the projections' runner: what is appended from now on stays unread by the read models.
    pub async fn stop_projections(&self) {
        self._runners.abort();
        tokio::task::yield_now().await;
    }

    /// A second gateway on the same store and database, as on another host.
    pub async fn second_gateway(&self) -> Arc<App> {
        gateway(&self.place, self.clock.clone()).await
    }

    /// The gateway over the embedded store, or over a fresh PostgreSQL database.
    pub async fn on(backend: Backend) -> Harness {
        let place = TestLocation::create(backend).await;
        let clock = Arc::new(ManualClock(Mutex::new(Utc::now())));
        let app = gateway(&place, clock.clone()).await;
        let runners = tenure_projections::runner::start(app.accounts.store.clone(), app.read_models.clone())
            .await
            .unwrap()
            .unwrap();
        let runners = tokio::spawn(async move {
            let _ = runners.await;
        });
        Harness { place, app, clock, _runners: runners }
    }

    /// Invites `username` and returns the invitation token.
    pub async fn invite(&self, username: &str, mfa: MfaRequirement) -> (AccountId, String) {
        self.invite_into(username, mfa, Role::User, "acme").await
    }

    pub async fn invite_into(&self, username: &str, mfa: MfaRequirement, role: Role, org: &str) -> (AccountId, String) {
        self.invite_org(username, mfa, role, Org { id: OrgId(org.into()), name: org.to_uppercase(), wholesale: false })
            .await
    }

    pub async fn invite_org(&self, username: &str, mfa: MfaRequirement, role: Role, org: Org) -> (AccountId, String) {
        self.invite_as(username, &format!("{username}@example.com"), mfa, role, org, false).await
    }

    /// A signed-in auditor of every org, as an operator makes one (`--all-orgs`), nominally of
    /// the org "ops".
    pub async fn signed_in_auditor_of_all_orgs(&self, username: &str) -> (AccountId, String, String) {
        let ops = Org { id: OrgId("ops".into()), name: "Operations".into(), wholesale: false };
        let email = format!("{username}@example.com");
        let (id, token) = self.invite_as(username, &email, MfaRequirement::None, Role::Auditor, ops, true).await;
        self.onboarded(id, &token).await
    }

    /// A user of "acme" without MFA, invited at `email`.
    pub async fn invite_at(&self, username: &str, email: &str) -> (AccountId, String) {
        let acme = Org { id: OrgId("acme".into()), name: "ACME".into(), wholesale: false };
        self.invite_as(username, email, MfaRequirement::None, Role::User, acme, false).await
    }

    async fn invite_as(
        &self,
        username: &str,
        email: &str,
        mfa: MfaRequirement,
        role: Role,
        org: Org,
        all_orgs: bool,
    ) -> (AccountId, String) {
        let (token, token_digest) = secrets::new_token().unwrap();
        let id = AccountId(Uuid::now_v7());
        let invite = Invite {
            all_orgs,
            account_id: id,
            username: Username::parse(username).unwrap(),
            org,
            role,
            mfa,
            email: email.to_string(),
            display_name: None,
            token_digest,
        };
        self.app
            .accounts
            .invite(invite, &Ctx { now: self.clock.now() }, &Meta::new(Actor::Operator("test".into())), vec![])
            .await
            .unwrap();
        self.caught_up().await;
        (id, token)
    }

    /// A signed-in account without MFA: its session cookie and CSRF token.
    pub async fn signed_in(&self, username: &str, role: Role, org: &str) -> (AccountId, String, String) {
        let (id, token) = self.invite_into(username, MfaRequirement::None, role, org).await;
        self.onboarded(id, &token).await
    }

    /// A signed-in user of the wholesale org "bulkco".
    pub async fn signed_in_wholesale(&self, username: &str) -> (AccountId, String, String) {
        let org = Org { id: OrgId("bulkco".into()), name: "Bulk Co".into(), wholesale: true };
        let (id, token) = self.invite_org(username, MfaRequirement::None, Role::User, org).await;
        self.onboarded(id, &token).await
    }

    /// A signed-in user of "acme" who enrolled an authenticator app, and that app.
    pub async fn signed_in_with_authenticator(&self, username: &str) -> (AccountId, String, Authenticator) {
        let (id, cookie, app, _) = self.signed_in_with_codes(username).await;
        (id, cookie, app)
    }

    /// As `signed_in_with_authenticator`, with the recovery codes shown at the enrollment.
    pub async fn signed_in_with_codes(&self, username: &str) -> (AccountId, String, Authenticator, Vec<String>) {
        let (id, token) = self.invite_into(username, MfaRequirement::App, Role::User, "acme").await;
        let password =
            json!({"new_password": "mauve-otter-gravel-1987", "confirm_password": "mauve-otter-gravel-1987"});
        self.call("POST", &format!("/api/v1/invitations/{token}/password"), Some(password), None, None).await;
        let started = self.call("POST", &format!("/api/v1/invitations/{token}/mfa/start"), None, None, None).await;
        let app = Authenticator::from_secret(started.json["secret"].as_str().unwrap(), "Tenure", username).unwrap();
        let code = json!({"code": app.code_at(now_secs(self))});
        let verified =
            self.call("POST", &format!("/api/v1/invitations/{token}/mfa/verify"), Some(code), None, None).await;
        assert_eq!(verified.json["next"], "terms", "{verified:?}");
        let codes = verified.json["recovery_codes"].as_array().expect("recovery codes");
        let codes = codes.iter().map(|c| c.as_str().unwrap().to_string()).collect();
        let (_, cookie, _) = self.onboarded(id, &token).await;
        (id, cookie, app, codes)
    }

    /// Every mail delivered to the outbox folder so far (once what is queued has left), as text
    /// with quoted-printable soft breaks and escapes undone, oldest first.
    pub async fn mails(&self) -> Vec<String> {
        self.app.delivery.flush(std::time::Duration::from_secs(10)).await.unwrap();
        let Ok(dir) = std::fs::read_dir(self.place.dir.path().join("outbox")) else { return vec![] };
        let mut files: Vec<_> = dir.map(|e| e.unwrap().path()).collect();
        files.sort_by_key(|p| std::fs::metadata(p).unwrap().modified().unwrap());
        files.iter().map(|p| unquote(&std::fs::read_to_string(p).unwrap())).collect()
    }

    /// The mails to `to` whose text holds `marker`.
    pub async fn mails_to(&self, to: &str, marker: &str) -> Vec<String> {
        self.mails().await.into_iter().filter(|m| m.contains(&format!("To: {to}")) && m.contains(marker)).collect()
    }

    /// Accepts the terms of an invitation whose other steps are done (setting the password when
    /// it is not set yet): the session cookie and CSRF token of the first sign-in.
    pub async fn onboarded(&self, id: AccountId, token: &str) -> (AccountId, String, String) {
        let password =
            json!({"new_password": "mauve-otter-gravel-1987", "confirm_password": "mauve-otter-gravel-1987"});
        let info = self.call("GET", &format!("/api/v1/invitations/{token}"), None, None, None).await;
        if info.json["next"] == "password" {
            self.call("POST", &format!("/api/v1/invitations/{token}/password"), Some(password), None, None).await;
        }
        let terms = json!({"accept": true, "version": 3});
        let cookie =
            self.call("POST", &format!("/api/v1/invitations/{token}/terms"), Some(terms), None, None).await.session();
        self.caught_up().await;
        let csrf = self.call("GET", "/api/v1/session", None, Some(&cookie), None).await.json["csrf_token"]
            .as_str()
            .unwrap()
            .to_string();
        (id, cookie, csrf)
    }

    /// What the scheduler does after six months without a sign-in: deactivates `id`.
    pub async fn deactivate(&self, id: AccountId) {
        let later = Ctx { now: self.clock.now() + Duration::days(200) };
        let scheduler = Meta::new(Actor::Scheduler);
        self.app.accounts.execute(id, Command::Deactivate, &later, &scheduler).await.unwrap();
    }

    /// And six months more: deletes it, destroying its key.
    pub async fn delete(&self, id: AccountId) {
        self.deactivate(id).await;
        let later = Ctx { now: self.clock.now() + Duration::days(400) };
        self.app.accounts.execute(id, Command::Delete, &later, &Meta::new(Actor::Scheduler)).await.unwrap();
        self.app.accounts.keys.destroy(id).await.unwrap();
    }

    /// The username step; returns the flow id.
    pub async fn start_sign_in(&self, username: &str) -> String {
        let reply = self.call("POST", "/api/v1/sign-in", Some(json!({"username": username})), None, None).await;
        assert_eq!(reply.json["next"], "password", "{reply:?}");
        reply.json["flow"].as_str().unwrap().to_string()
    }

    /// The password step of the sign-in `flow`.
    pub async fn password(&self, flow: &str, password: &str) -> Reply {
        let uri = format!("/api/v1/sign-in/{flow}/password");
        self.call("POST", &uri, Some(json!({ "password": password })), None, None).await
    }

    pub async fn caught_up(&self) {
        let head = self.app.accounts.store.head().await.unwrap();
        let done = self.app.read_models.wait_for(
            tenure_projections::Projection::Accounts,
            head,
            std::time::Duration::from_secs(10),
        );
        assert!(done.await.unwrap());
    }

    pub async fn call(
        &self,
        method: &str,
        uri: &str,
        body: Option<Value>,
        cookie: Option<&str>,
        csrf: Option<&str>,
    ) -> Reply {
        self.call_via(&self.app, None, method, uri, body, cookie, csrf).await
    }

    /// An API call to the gateway `app`, from the TCP peer `peer` when given.
    #[allow(clippy::too_many_arguments)]
    pub async fn call_via(
        &self,
        app: &Arc<App>,
        peer: Option<std::net::SocketAddr>,
        method: &str,
        uri: &str,
        body: Option<Value>,
        cookie: Option<&str>,
        csrf: Option<&str>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(peer) = peer {
            request = request.extension(axum::extract::ConnectInfo(peer));
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send_to(app, request, cookie, body).await
    }

    /// A page's form, posted as a browser posts it.
    pub async fn form(&self, uri: &str, fields: &[(&str, &str)], cookie: Option<&str>) -> Reply {
        let request = Request::builder()
            .method("POST")
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        self.send(request, cookie, Body::from(serde_urlencoded::to_string(fields).unwrap())).await
    }

    /// A page, fetched as a browser fetches it.
    pub async fn page(&self, uri: &str, cookie: Option<&str>) -> Reply {
        self.send(Request::builder().method("GET").uri(uri), cookie, Body::empty()).await
    }

    async fn send(&self, request: axum::http::request::Builder, cookie: Option<&str>, body: Body) -> Reply {
        self.send_to(&self.app, request, cookie, body).await
    }

    pub async fn send_to(
        &self,
        app: &Arc<App>,
        request: axum::http::request::Builder,
        cookie: Option<&str>,
        body: Body,
    ) -> Reply {
        let mut request = request.header(header::USER_AGENT, "api-test");
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, format!("tenure_session={cookie}"));
        }
        let response = router(app.clone()).oneshot(request.body(body).unwrap()).await.unwrap();
        let status = response.status();
        let set_cookie = response.headers().get(header::SET_COOKIE).map(|v| v.to_str().unwrap().to_string());
        let retry_after = response.headers().get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_string());
        let location = response.headers().get(header::LOCATION).map(|v| v.to_str().unwrap().to_string());
        let request_id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply { status, json, set_cookie, retry_after, location, request_id, headers, text }
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub json: Value,
    pub set_cookie: Option<String>,
    pub retry_after: Option<String>,
    pub location: Option<String>,
    pub request_id: Option<String>,
    pub headers: axum::http::HeaderMap,
    /// The body as text: the HTML of a page.
    pub text: String,
}

impl Reply {
    #[track_caller]
    pub fn error(&self, status: StatusCode, code: &str) {
        assert_eq!((self.status, self.json["error"].as_str()), (status, Some(code)), "{self:?}");
        assert!(self.json["message"].as_str().is_some_and(|m| !m.is_empty()), "{self:?}");
    }

    pub fn session(&self) -> String {
        let cookie = self.set_cookie.as_deref().expect("a session cookie");
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax") && cookie.contains("Secure"),
            "{cookie}"
        );
        cookie.trim_start_matches("tenure_session=").split(';').next().unwrap().to_string()
    }
}

pub fn now_secs(h: &Harness) -> u64 {
    h.clock.now().timestamp() as u64
}

/// Quoted-printable as lettre writes it, undone: soft line breaks and `=XX` escapes.
pub fn unquote(mail: &str) -> String {
    let joined = mail.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && bytes[i + 1].is_ascii_hexdigit()
            && bytes[i + 2].is_ascii_hexdigit()
        {
            out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The reset token of the link in `mail`.
pub fn reset_token(mail: &str) -> String {
    let at = mail.find("/reset/").expect("a reset link") + "/reset/".len();
    mail[at..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_').collect()
}
