//! The Admin page: the org's members and their actions, and the invitation form.

use std::sync::Arc;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tenure_domain::OrgId;
use tenure_domain::decide::Command;
use tenure_domain::events::MfaRequirement;

use super::flow::{self, NewMember};
use crate::error::{ApiError, Error};
use crate::http::client::ClientInfo;
use crate::http::fallback::{PageForm, PagePath, PageQuery};
use crate::http::layout::{Chrome, Feedback, chrome, problem, refuse_form, when};
use crate::http::render::page;
use crate::http::session::{SignedIn, SignedInPage};
use crate::state::App;

type Shared = State<Arc<App>>;

pub struct Member {
    pub id: String,
    pub username: String,
    pub role: String,
    pub state: String,
    pub mfa: String,
    pub last_sign_in: String,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage {
    chrome: Chrome,
    org_name: String,
    members: Vec<Member>,
    invite: InviteForm,
    invitation_url: Option<String>,
    feedback: Feedback,
}

#[derive(Deserialize, Default)]
pub struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub mfa: String,
}

/// The admin page; `invite` is the invitation form as typed when it is shown again.
async fn admin_page(
    app: &App,
    admin: &SignedIn,
    invite: InviteForm,
    invitation_url: Option<String>,
    status: StatusCode,
    feedback: Feedback,
) -> Response {
    match members(app, admin).await {
        Ok(members) => page(
            status,
            AdminPage {
                chrome: chrome(app, &admin.cookie, &admin.account, "/admin"),
                org_name: admin.account.org_name.clone(),
                members,
                invite,
                invitation_url,
                feedback,
            },
        ),
        Err(error) => error.into_response(),
    }
}

/// The org's members, once the read models have caught up with the action just taken.
async fn members(app: &App, admin: &SignedIn) -> Result<Vec<Member>, Error> {
    app.caught_up().await?;
    let directory = app.read_models.org_directory(&OrgId(admin.account.org_id.clone())).await?;
    Ok(directory
        .into_iter()
        .map(|entry| Member {
            id: entry.account_id.to_string(),
            username: entry.username,
            role: entry.role,
            state: entry.state,
            mfa: entry.mfa_requirement,
            last_sign_in: entry.last_sign_in.map_or_else(|| "never".into(), when),
        })
        .collect())
}

/// The answer for anyone but an org administrator (a form must carry its CSRF token).
pub(super) fn refuse_non_admin(app: &App, signed_in: &SignedIn, csrf: Option<&str>) -> Option<Response> {
    if let Some(refused) = csrf.and_then(|csrf| refuse_form(app, signed_in, csrf)) {
        return Some(refused);
    }
    if !signed_in.is_admin() {
        let message = ApiError::from(Error::AdminsOnly).message;
        return Some(problem(app, signed_in, StatusCode::FORBIDDEN, "Administrators only", &message));
    }
    None
}

#[derive(Deserialize)]
pub struct AdminQuery {
    /// A deleted profile's username, to recreate it: the invitation form starts with it.
    recreate: Option<String>,
}

pub async fn admin(
    State(app): Shared,
    SignedInPage(admin): SignedInPage,
    PageQuery(query): PageQuery<AdminQuery>,
) -> Response {
    if let Some(refused) = refuse_non_admin(&app, &admin, None) {
        return refused;
    }
    let (invite, feedback) = match query.recreate {
        Some(username) => (
            InviteForm { username: username.clone(), ..InviteForm::default() },
            Feedback::notice(
                "invite",
                format!(
                    "Recreating {username}: the profile's data was erased, so enter the email address again. If the username is still held, choose another."
                ),
            ),
        ),
        None => (InviteForm::default(), Feedback::default()),
    };
    admin_page(&app, &admin, invite, None, StatusCode::OK, feedback).await
}

pub async fn invite(
    State(app): Shared,
    SignedInPage(admin): SignedInPage,
    PageForm(form): PageForm<InviteForm>,
) -> Response {
    if let Some(refused) = refuse_non_admin(&app, &admin, Some(&form.csrf)) {
        return refused;
    }
    let invited = async {
        let role = flow::parse_role(&form.role)?;
        let mfa = flow::parse_mfa(&form.mfa)?;
        let member = NewMember {
            username: form.username.clone(),
            email: form.email.clone(),
            role,
            mfa,
            display_name: Some(form.display_name.clone()),
            all_orgs: false,
        };
        flow::invite_member(&app, &admin.account, member).await
    }
    .await;
    match invited {
        Ok(invitation) => {
            let feedback = Feedback::notice(
                "invite",
                format!("{} is invited; the invitation is on its way.", form.username.trim()),
            );
            let url = app.mailer.is_outbox().then_some(invitation.url);
            admin_page(&app, &admin, InviteForm::default(), url, StatusCode::CREATED, feedback).await
        }
        Err(error) => {
            let error = ApiError::from(error);
            let status = error.status;
            admin_page(&app, &admin, form, None, status, Feedback::error("invite", error)).await
        }
    }
}

#[derive(Deserialize)]
pub struct MemberForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    mfa: String,
}

fn requirement_label(mfa: MfaRequirement) -> &'static str {
    match mfa {
        MfaRequirement::None => "no second factor",
        MfaRequirement::App => "an authenticator app",
        MfaRequirement::Email => "a code by email",
    }
}

/// One action on a member of the admin's org, shown on the members' list.
pub async fn action(
    State(app): Shared,
    SignedInPage(admin): SignedInPage,
    ClientInfo(client): ClientInfo,
    PagePath((id, action)): PagePath<(String, String)>,
    PageForm(form): PageForm<MemberForm>,
) -> Response {
    if let Some(refused) = refuse_non_admin(&app, &admin, Some(&form.csrf)) {
        return refused;
    }
    let done: Result<(String, Option<String>), Error> = async {
        let member = flow::member(&app, &admin.account, &id).await?;
        let name = &member.username;
        match action.as_str() {
            "reactivate" => {
                flow::command(&app, &admin.account, &member, Command::Reactivate).await?;
                Ok((format!("{name}'s profile is reactivated; they can sign in again."), None))
            }
            "mfa" => {
                let mfa = flow::parse_mfa(&form.mfa)?;
                flow::command(&app, &admin.account, &member, Command::ChangeMfaRequirement { mfa }).await?;
                Ok((format!("{name} now needs: {}.", requirement_label(mfa)), None))
            }
            "resend-invitation" => {
                let url = flow::resend_invitation(&app, &admin.account, &member).await?;
                Ok((format!("A new invitation is on its way to {name}."), app.mailer.is_outbox().then_some(url)))
            }
            "password-reset" => {
                flow::send_password_reset(&app, &admin.account, &member, &client).await?;
                Ok((format!("A password reset mail is on its way to {name}."), None))
            }
            "reset-mfa" => {
                flow::reset_mfa(&app, &admin.account, &member, &client).await?;
                let notice = format!(
                    "{name}'s two-factor sign-in is reset: they are signed out and set up a new authenticator at their next sign-in."
                );
                Ok((notice, None))
            }
            _ => Err(Error::NoSuchMember),
        }
    }
    .await;
    let (status, feedback, url) = match done {
        Ok((notice, url)) => (StatusCode::OK, Feedback::notice("members", notice), url),
        Err(error) => {
            // The list's forms have no field of their own to tie a message to.
            let error = ApiError { field: None, ..ApiError::from(error) };
            (error.status, Feedback::error("members", error), None)
        }
    };
    admin_page(&app, &admin, InviteForm::default(), url, status, feedback).await
}
