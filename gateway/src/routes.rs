//! Every route and the handler that answers it: the one place that names handlers.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::{Router, middleware};

use crate::http::{fallback, middleware as layers, render};
use crate::state::{App, BODY_LIMIT};
use crate::{admin, dashboard, first_sign_in, ops, profile, recovery, sign_in};

pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/api/v1/sign-in", post(sign_in::api::start))
        .route("/api/v1/sign-in/{flow}/password", post(sign_in::api::password))
        .route("/api/v1/sign-in/{flow}/code", post(sign_in::api::code))
        .route("/api/v1/sign-in/{flow}/resend", post(sign_in::api::resend))
        .route("/api/v1/sign-in/{flow}/terms", post(sign_in::api::terms))
        .route("/api/v1/sign-in/{flow}/recovery-code", post(sign_in::api::recovery_code))
        .route("/api/v1/recovery/password", post(recovery::api::password))
        .route("/api/v1/recovery/username", post(recovery::api::username))
        .route("/api/v1/resets/{token}", get(recovery::api::link))
        .route("/api/v1/resets/{token}/password", post(recovery::api::set_password))
        .route("/api/v1/session", get(sign_in::api::session))
        .route("/api/v1/sign-out", post(sign_in::api::sign_out))
        .route("/api/v1/dashboard", get(dashboard::api))
        .route("/api/v1/profile", get(profile::api::get).patch(profile::api::patch))
        .route("/api/v1/profile/password", post(profile::api::change_password))
        .route("/api/v1/profile/mfa/start", post(profile::api::mfa_start))
        .route("/api/v1/profile/mfa/verify", post(profile::api::mfa_verify))
        .route("/api/v1/profile/recovery-codes", post(profile::api::recovery_codes))
        .route("/api/v1/profile/sessions", get(profile::api::sessions))
        .route("/api/v1/profile/sessions/sign-out-others", post(profile::api::sign_out_others))
        .route("/api/v1/profile/sessions/{id}", delete(profile::api::end_session))
        .route("/api/v1/admin/users", get(admin::api::users).post(admin::api::invite))
        .route("/api/v1/admin/users/{id}/reactivate", post(admin::api::reactivate))
        .route("/api/v1/admin/users/{id}/mfa", post(admin::api::mfa))
        .route("/api/v1/admin/users/{id}/resend-invitation", post(admin::api::resend))
        .route("/api/v1/admin/users/{id}/password-reset", post(admin::api::password_reset))
        .route("/api/v1/admin/users/{id}/reset-mfa", post(admin::api::reset_mfa))
        .route("/api/v1/invitations/{token}", get(first_sign_in::api::invitation))
        .route("/api/v1/invitations/{token}/password", post(first_sign_in::api::password))
        .route("/api/v1/invitations/{token}/mfa/start", post(first_sign_in::api::mfa_start))
        .route("/api/v1/invitations/{token}/mfa/verify", post(first_sign_in::api::mfa_verify))
        .route("/api/v1/invitations/{token}/terms", post(first_sign_in::api::terms))
        .route("/", get(sign_in::pages::root))
        .route("/sign-in", get(sign_in::pages::form).post(sign_in::pages::start))
        .route("/sign-in/{flow}", get(sign_in::pages::step))
        .route("/sign-in/{flow}/password", post(sign_in::pages::password))
        .route("/sign-in/{flow}/code", post(sign_in::pages::code))
        .route("/sign-in/{flow}/resend", post(sign_in::pages::resend))
        .route("/sign-in/{flow}/terms", post(sign_in::pages::terms))
        .route(
            "/sign-in/{flow}/recovery-code",
            get(sign_in::pages::recovery_code_form).post(sign_in::pages::recovery_code),
        )
        .route("/recover", get(recovery::pages::password_form).post(recovery::pages::password))
        .route("/recover/username", get(recovery::pages::username_form).post(recovery::pages::username))
        .route("/reset/{token}", get(recovery::pages::link).post(recovery::pages::set_password))
        .route("/sign-out", post(sign_in::pages::sign_out))
        .route("/dashboard", get(dashboard::page))
        .route("/services", get(dashboard::tab))
        .route("/apis", get(dashboard::tab))
        .route("/monitoring", get(dashboard::tab))
        .route("/billing", get(dashboard::tab))
        .route("/support", get(dashboard::tab))
        .route("/orders", get(dashboard::tab))
        .route("/profile", get(profile::pages::profile).post(profile::pages::save))
        .route("/profile/password", post(profile::pages::change_password))
        .route("/profile/authenticator", get(profile::pages::authenticator).post(profile::pages::replace_authenticator))
        .route("/profile/recovery-codes", post(profile::pages::recovery_codes))
        .route("/profile/sessions/{id}/sign-out", post(profile::pages::end_session))
        .route("/profile/sessions/sign-out-others", post(profile::pages::sign_out_others))
        .route("/admin", get(admin::pages::admin))
        .route("/admin/users", post(admin::pages::invite))
        .route("/admin/users/{id}/{action}", post(admin::pages::action))
        .route("/invite/{token}", get(first_sign_in::pages::invitation))
        .route(
            "/invite/{token}/password",
            get(first_sign_in::pages::password_form).post(first_sign_in::pages::password),
        )
        .route("/invite/{token}/mfa", get(first_sign_in::pages::mfa_form).post(first_sign_in::pages::mfa))
        .route("/invite/{token}/mfa/send", post(first_sign_in::pages::mfa_send))
        .route("/invite/{token}/terms", get(first_sign_in::pages::terms_form).post(first_sign_in::pages::terms))
        .route("/help/passwords", get(first_sign_in::pages::help_passwords))
        .route("/static/style.css", get(render::stylesheet))
        .route("/api/openapi.json", get(ops::openapi))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .fallback(fallback::not_found)
        .method_not_allowed_fallback(fallback::method_not_allowed)
        // The limit sees a cross-site sign-in form before the general refusal does: it counts.
        .layer(middleware::from_fn_with_state(app.clone(), layers::refuse_cross_site))
        .layer(middleware::from_fn_with_state(app.clone(), layers::limit_addresses))
        .layer(middleware::from_fn_with_state(app.clone(), layers::observe))
        .layer(middleware::from_fn_with_state(app.clone(), layers::front_door))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(app)
}
