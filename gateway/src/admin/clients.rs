//! The org's applications (OpenID Connect clients, SPEC §13) as its administrators register them:
//! `GET/POST /api/v1/admin/clients`, `DELETE /api/v1/admin/clients/{id}`. Administrators register
//! for their own org only; sharing an application with every org is an operator's act
//! (`tenure oidc client add --all-orgs`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tenure_domain::OrgId;
use tenure_domain::events::ClientRegistered;
use tenure_domain::org::{OrgCommand, OrgError};
use tenure_projections::AccountRow;
use tenure_store::{Actor, ExecuteError, secrets};

use crate::error::Error;
use crate::http::fallback::ApiPath;
use crate::http::json::ApiJson;
use crate::http::session::OrgAdmin;
use crate::state::App;

type Shared = State<Arc<App>>;

fn shown(client: &ClientRegistered) -> Value {
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "redirect_uris": client.redirect_uris,
        "post_logout_redirect_uris": client.post_logout_redirect_uris,
        "public": client.public,
        "tab": client.tab,
    })
}

pub async fn list(State(app): Shared, OrgAdmin(admin): OrgAdmin) -> Result<Response, Error> {
    let clients = registered(&app, &admin.account).await?;
    Ok(Json(clients.iter().map(shown).collect::<Vec<_>>()).into_response())
}

/// The applications registered with the administrator's org.
pub async fn registered(app: &App, admin: &AccountRow) -> Result<Vec<ClientRegistered>, Error> {
    let org = app.accounts.org(&OrgId(admin.org_id.clone())).await.map_err(|e| refused(e, app))?;
    Ok(org.clients.into_values().collect())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub name: String,
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    #[serde(default)]
    pub public: bool,
    pub tab: Option<String>,
}

pub async fn register(
    State(app): Shared,
    OrgAdmin(admin): OrgAdmin,
    ApiJson(body): ApiJson<NewClient>,
) -> Result<Response, Error> {
    let (client_id, secret) = add(&app, &admin.account, body).await?;
    let mut answer = json!({ "client_id": client_id });
    if let Some(secret) = secret {
        answer["client_secret"] = json!(secret);
    }
    Ok((StatusCode::CREATED, Json(answer)).into_response())
}

/// Registers `client` with the administrator's org: its id, and the secret of a confidential
/// one, to show once.
pub async fn add(app: &App, admin: &AccountRow, client: NewClient) -> Result<(String, Option<String>), Error> {
    let org_id = OrgId(admin.org_id.clone());
    let client_id = secrets::new_client_id(&org_id).map_err(Error::internal)?;
    let secret = if client.public { None } else { Some(secrets::new_token().map_err(Error::internal)?) };
    let registration = ClientRegistered {
        org_id: org_id.clone(),
        client_id: client_id.clone(),
        name: client.name,
        redirect_uris: client.redirect_uris,
        post_logout_redirect_uris: client.post_logout_redirect_uris,
        public: client.public,
        tab: client.tab,
        all_orgs: false,
        secret_digest: secret.as_ref().map(|(_, digest)| *digest),
        at: app.clock.now(),
    };
    let meta = crate::state::meta(Actor::Admin(admin.account_id));
    app.accounts
        .execute_org(&org_id, OrgCommand::RegisterClient(registration), &app.ctx(), &meta)
        .await
        .map_err(|e| refused(e, app))?;
    Ok((client_id, secret.map(|(secret, _)| secret)))
}

pub async fn remove(
    State(app): Shared,
    OrgAdmin(admin): OrgAdmin,
    ApiPath(client_id): ApiPath<String>,
) -> Result<Response, Error> {
    drop_client(&app, &admin.account, client_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Removes an application of the administrator's org; another org's is "not found", like one
/// that does not exist.
pub async fn drop_client(app: &App, admin: &AccountRow, client_id: String) -> Result<(), Error> {
    let org_id = OrgId(admin.org_id.clone());
    if secrets::client_org(&client_id).as_ref() != Some(&org_id) {
        return Err(Error::NoSuchClient);
    }
    let meta = crate::state::meta(Actor::Admin(admin.account_id));
    app.accounts
        .execute_org(&org_id, OrgCommand::RemoveClient { client_id }, &app.ctx(), &meta)
        .await
        .map_err(|e| refused(e, app))?;
    Ok(())
}

/// A registration the org's rules refuse, next to the field it is about.
fn refused(error: ExecuteError, app: &App) -> Error {
    let field = |field: &'static str, error: &OrgError| Error::InvalidField {
        field,
        message: crate::admin::flow::sentence(&error.to_string()),
    };
    match error {
        ExecuteError::Org(error) => match &error {
            OrgError::BadText(_) => field("name", &error),
            OrgError::BadRedirectUri(_) | OrgError::RedirectUrisCount(_) => field("redirect_uris", &error),
            OrgError::BadPostLogoutUri(_) | OrgError::PostLogoutUrisCount(_) => {
                field("post_logout_redirect_uris", &error)
            }
            OrgError::UnknownTab(_) | OrgError::TabTaken { .. } => field("tab", &error),
            OrgError::NoSuchClient(_) => Error::NoSuchClient,
            _ => Error::internal(error),
        },
        other => Error::refused(other, app.clock.now()),
    }
}
