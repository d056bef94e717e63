//! My Profile's pages. The values typed are kept when a form is shown again with an error, so
//! that nothing has to be typed twice.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use serde::Deserialize;
use tenure_domain::events::SignInMethod;

use super::flow;
use crate::error::{ApiError, Error};
use crate::http::client::ClientInfo;
use crate::http::fallback::{PageForm, PagePath};
use crate::http::layout::{Chrome, Feedback, chrome, mfa_label, refuse_form, when};
use crate::http::render::{RecoveryCodesPage, page, see};
use crate::http::session::{SignedIn, SignedInPage, session_cookie};
use crate::mfa::MfaSetup;
use crate::state::App;

type Shared = State<Arc<App>>;

pub struct RecentSignIn {
    pub at: String,
    pub method: &'static str,
    pub address: String,
    pub user_agent: String,
}

#[derive(Template)]
#[template(path = "profile.html")]
struct ProfilePage {
    chrome: Chrome,
    email: String,
    org_name: String,
    display_name: String,
    phone: String,
    address: String,
    mfa: &'static str,
    can_replace_authenticator: bool,
    recovery_left: usize,
    recent: Vec<RecentSignIn>,
    sessions: Vec<SessionRow>,
    feedback: Feedback,
}

pub struct SessionRow {
    pub id: String,
    pub browser: String,
    pub address: String,
    pub started: String,
    pub last_used: String,
    pub current: bool,
}

/// The fields as typed, when a form is shown again with an error; otherwise the stored ones.
struct Typed {
    display_name: String,
    phone: String,
    address: String,
}

fn method_label(method: SignInMethod) -> &'static str {
    match method {
        SignInMethod::Invitation => "first sign-in",
        SignInMethod::Password => "password",
        SignInMethod::Totp => "password and authenticator app",
        SignInMethod::EmailCode => "password and emailed code",
        SignInMethod::RecoveryCode => "password and recovery code",
        SignInMethod::Session => "to an application, on a session",
    }
}

async fn profile_page(
    app: &App,
    signed_in: &SignedIn,
    typed: Option<Typed>,
    status: StatusCode,
    feedback: Feedback,
) -> Response {
    // Read afresh: the form just handled may have changed what the page shows.
    let row = match app.read_models.account_view(signed_in.account.account_id).await {
        Ok(Some(row)) => row,
        Ok(None) => return see("/sign-in"),
        Err(error) => return Error::from(error).into_response(),
    };
    let view = match flow::view(app, &row).await {
        Ok(view) => view,
        Err(error) => return error.into_response(),
    };
    let typed = typed.unwrap_or_else(|| Typed {
        display_name: view.profile.display_name.clone().unwrap_or_default(),
        phone: view.profile.phone.clone().unwrap_or_default(),
        address: view.profile.address.clone().unwrap_or_default(),
    });
    let recent = view
        .recent_sign_ins
        .iter()
        .map(|(at, method, client)| RecentSignIn {
            at: when(*at),
            method: method_label(*method),
            address: client.as_ref().map_or_else(|| "erased".into(), |c| c.address.clone()),
            user_agent: client.as_ref().map_or_else(|| "erased".into(), |c| c.user_agent.clone()),
        })
        .collect();
    let sessions = match flow::sessions(app, &row, &signed_in.cookie).await {
        Ok(sessions) => sessions
            .into_iter()
            .map(|s| SessionRow {
                id: s.info.id,
                browser: s.browser,
                address: s.info.client_address.unwrap_or_else(|| "unknown".into()),
                started: when(s.info.started),
                last_used: when(s.info.last_used),
                current: s.current,
            })
            .collect(),
        Err(error) => return error.into_response(),
    };
    let recovery_left = if flow::uses_authenticator(&row) {
        match flow::recovery_codes_left(app, &row).await {
            Ok(left) => left,
            Err(error) => return error.into_response(),
        }
    } else {
        0
    };
    page(
        status,
        ProfilePage {
            chrome: chrome(app, &signed_in.cookie, &row, "/profile"),
            email: view.email.unwrap_or_default(),
            org_name: row.org_name.clone(),
            display_name: typed.display_name,
            phone: typed.phone,
            address: typed.address,
            mfa: mfa_label(row.mfa_method),
            can_replace_authenticator: flow::uses_authenticator(&row),
            recovery_left,
            recent,
            sessions,
            feedback,
        },
    )
}

pub async fn profile(State(app): Shared, SignedInPage(signed_in): SignedInPage) -> Response {
    profile_page(&app, &signed_in, None, StatusCode::OK, Feedback::default()).await
}

#[derive(Deserialize)]
pub struct DetailsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    address: String,
}

pub async fn save(
    State(app): Shared,
    SignedInPage(signed_in): SignedInPage,
    PageForm(form): PageForm<DetailsForm>,
) -> Response {
    if let Some(refused) = refuse_form(&app, &signed_in, &form.csrf) {
        return refused;
    }
    let typed =
        Typed { display_name: form.display_name.clone(), phone: form.phone.clone(), address: form.address.clone() };
    let saved =
        flow::update(&app, &signed_in.account, Some(form.display_name), Some(form.phone), Some(form.address)).await;
    match saved {
        Ok(_) => {
            let feedback = Feedback::notice("details", "Your profile is saved.");
            profile_page(&app, &signed_in, None, StatusCode::OK, feedback).await
        }
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status;
            profile_page(&app, &signed_in, Some(typed), status, Feedback::error("details", error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    confirm_password: String,
}

pub async fn change_password(
    State(app): Shared,
    SignedInPage(signed_in): SignedInPage,
    ClientInfo(client): ClientInfo,
    jar: CookieJar,
    PageForm(form): PageForm<PasswordForm>,
) -> Response {
    if let Some(refused) = refuse_form(&app, &signed_in, &form.csrf) {
        return refused;
    }
    let (current, new) = (form.current_password, form.new_password);
    let changed = flow::change_password(&app, &signed_in.account, current, new, &form.confirm_password, client).await;
    match changed {
        // The page is drawn for the fresh session, whose cookie the answer sets.
        Ok(fresh) => {
            let signed_in = SignedIn { cookie: fresh.clone(), account: signed_in.account };
            let notice =
                Feedback::notice("password", "Your password is changed. Your other sessions have been signed out.");
            let page = profile_page(&app, &signed_in, None, StatusCode::OK, notice).await;
            (jar.add(session_cookie(&app, fresh)), page).into_response()
        }
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status;
            profile_page(&app, &signed_in, None, status, Feedback::error("password", error)).await
        }
    }
}

#[derive(Template)]
#[template(path = "authenticator.html")]
struct AuthenticatorPage {
    chrome: Chrome,
    otpauth_uri: String,
    secret: String,
    qr_png_base64: String,
    feedback: Feedback,
}

fn authenticator_page(
    app: &App,
    signed_in: &SignedIn,
    setup: MfaSetup,
    status: StatusCode,
    feedback: Feedback,
) -> Response {
    let MfaSetup::App { otpauth_uri, secret, qr_png_base64 } = setup else {
        return Error::internal("re-enrollment offers an authenticator key only").into_response();
    };
    let chrome = chrome(app, &signed_in.cookie, &signed_in.account, "/profile");
    page(status, AuthenticatorPage { chrome, otpauth_uri, secret, qr_png_base64, feedback })
}

/// Showing the page offers a new key; the current authenticator stays until a code confirms it.
pub async fn authenticator(State(app): Shared, SignedInPage(signed_in): SignedInPage) -> Response {
    match flow::start_reenrollment(&app, &signed_in.account).await {
        Ok(setup) => authenticator_page(&app, &signed_in, setup, StatusCode::OK, Feedback::default()),
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status;
            profile_page(&app, &signed_in, None, status, Feedback::error("mfa", error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct ReenrollForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current_code: String,
    #[serde(default)]
    code: String,
}

pub async fn replace_authenticator(
    State(app): Shared,
    SignedInPage(signed_in): SignedInPage,
    ClientInfo(client): ClientInfo,
    PageForm(form): PageForm<ReenrollForm>,
) -> Response {
    if let Some(refused) = refuse_form(&app, &signed_in, &form.csrf) {
        return refused;
    }
    match flow::finish_reenrollment(&app, &signed_in.account, &form.current_code, &form.code, &client).await {
        Ok(codes) => {
            let notice = Some("Your new authenticator is in use; the old one no longer works.".to_string());
            let shown = RecoveryCodesPage::new(&signed_in.account.username, codes, "/profile".into(), notice);
            page(StatusCode::OK, shown)
        }
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status;
            match flow::pending_reenrollment(&app, &signed_in.account).await {
                Some(setup) => authenticator_page(&app, &signed_in, setup, status, Feedback::error("mfa", error)),
                None => profile_page(&app, &signed_in, None, status, Feedback::error("mfa", error)).await,
            }
        }
    }
}

#[derive(Deserialize)]
pub struct RecoveryCodesForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

pub async fn recovery_codes(
    State(app): Shared,
    SignedInPage(signed_in): SignedInPage,
    ClientInfo(client): ClientInfo,
    PageForm(form): PageForm<RecoveryCodesForm>,
) -> Response {
    if let Some(refused) = refuse_form(&app, &signed_in, &form.csrf) {
        return refused;
    }
    match flow::new_recovery_codes(&app, &signed_in.account, &form.code, &client).await {
        Ok(codes) => {
            let notice = Some("Your new recovery codes are ready; the old ones no longer work.".to_string());
            page(StatusCode::OK, RecoveryCodesPage::new(&signed_in.account.username, codes, "/profile".into(), notice))
        }
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status;
            profile_page(&app, &signed_in, None, status, Feedback::error("recovery", error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub async fn end_session(
    State(app): Shared,
    SignedInPage(signed_in): SignedInPage,
    PagePath(id): PagePath<String>,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    if let Some(refused) = refuse_form(&app, &signed_in, &form.csrf) {
        return refused;
    }
    let feedback = match flow::end_session(&app, &signed_in.account, &id).await {
        Ok(()) => Feedback::notice("sessions", "That session is signed out."),
        Err(error) => Feedback::error("sessions", ApiError::from(error)),
    };
    profile_page(&app, &signed_in, None, StatusCode::OK, feedback).await
}

pub async fn sign_out_others(
    State(app): Shared,
    SignedInPage(signed_in): SignedInPage,
    PageForm(form): PageForm<CsrfOnly>,
) -> Response {
    if let Some(refused) = refuse_form(&app, &signed_in, &form.csrf) {
        return refused;
    }
    let feedback = match flow::sign_out_others(&app, &signed_in.account, &signed_in.cookie).await {
        Ok(1) => Feedback::notice("sessions", "Signed out everywhere else: 1 other session ended."),
        Ok(ended) => Feedback::notice("sessions", format!("Signed out everywhere else: {ended} other sessions ended.")),
        Err(error) => Feedback::error("sessions", ApiError::from(error)),
    };
    profile_page(&app, &signed_in, None, StatusCode::OK, feedback).await
}
