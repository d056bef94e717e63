//! SPEC §10 through the API: forgotten passwords and usernames, recovery codes, an
//! administrator's resets, the sessions list, and the security notices they mail.

mod support;

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::json;
use support::{Harness, now_secs, reset_token};
use tenure_domain::AccountEvent;
use tenure_domain::events::{MfaRequirement, PasswordReason, Role};
use tenure_store::{EventStore, secrets};

const PASSWORD: &str = "mauve-otter-gravel-1987";
const NEW_PASSWORD: &str = "violet-heron-canyon-2031";

async fn ask_reset(h: &Harness, username: &str) {
    let asked = h.call("POST", "/api/v1/recovery/password", Some(json!({ "username": username })), None, None).await;
    assert_eq!((asked.status, &asked.json), (StatusCode::ACCEPTED, &json!({"sent": true})), "{asked:?}");
}

/// Waits for the recovery worker to have mailed `count` mails to `to` holding `marker`.
async fn wait_for_mails(h: &Harness, to: &str, marker: &str, count: usize) -> Vec<String> {
    for _ in 0..100 {
        let found = h.mails_to(to, marker).await;
        if found.len() >= count {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    }
    h.mails_to(to, marker).await
}

fn types(events: &[tenure_store::Envelope<AccountEvent>]) -> Vec<&'static str> {
    events.iter().map(|e| e.event.type_name()).collect()
}

async fn a_forgotten_password_is_reset_once_by_a_mailed_link_and_the_second_factor_stays(h: Harness) {
    let (id, cookie, app, _) = h.signed_in_with_codes("jdoe").await;
    ask_reset(&h, "jdoe").await;
    let mails = wait_for_mails(&h, "jdoe@example.com", "Reset your Tenure password", 1).await;
    assert_eq!(mails.len(), 1, "one link mailed");
    let token = reset_token(&mails[0]);
    assert!(mails[0].contains(&format!("https://portal.example.com/reset/{token}")), "{}", mails[0]);
    assert_eq!(token.len(), 65);

    let link = format!("/api/v1/resets/{token}");
    let opened = h.call("GET", &link, None, None, None).await;
    assert_eq!(opened.json, json!({"username": "jdoe"}), "{opened:?}");
    let set = format!("{link}/password");
    let mismatch = json!({"new_password": NEW_PASSWORD, "confirm_password": "something-else-entirely"});
    h.call("POST", &set, Some(mismatch), None, None).await.error(StatusCode::UNPROCESSABLE_ENTITY, "password_mismatch");
    let weak = json!({"new_password": "jdoe-jdoe-jdoe", "confirm_password": "jdoe-jdoe-jdoe"});
    h.call("POST", &set, Some(weak), None, None).await.error(StatusCode::UNPROCESSABLE_ENTITY, "weak_password");
    let good = json!({"new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD});
    let reset = h.call("POST", &set, Some(good.clone()), None, None).await;
    assert_eq!(reset.json, json!({"next": "sign_in"}), "{reset:?}");
    h.call("POST", &set, Some(good), None, None).await.error(StatusCode::NOT_FOUND, "not_found");
    h.call("GET", &link, None, None, None).await.error(StatusCode::NOT_FOUND, "not_found");
    h.call("GET", "/api/v1/session", None, Some(&cookie), None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");

    h.caught_up().await;
    let flow = h.start_sign_in("jdoe").await;
    h.password(&flow, PASSWORD).await.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    let flow = h.start_sign_in("jdoe").await;
    assert_eq!(h.password(&flow, NEW_PASSWORD).await.json["next"], "totp", "the second factor is still asked");
    h.clock.advance(Duration::seconds(30));
    let code = json!({"code": app.code_at(now_secs(&h))});
    let done = h.call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(code), None, None).await;
    assert_eq!(done.json["next"], "done", "{done:?}");

    let notices = wait_for_mails(&h, "jdoe@example.com", "Your Tenure password was reset", 1).await;
    assert_eq!(notices.len(), 1);
    assert!(notices[0].contains("From: ") && notices[0].contains("api-test"), "names where: {}", notices[0]);
    assert!(!notices[0].contains("/reset/"), "a notice holds no link to act on");
    let (_, events) = h.app.accounts.load(id).await.unwrap();
    assert!(types(&events).contains(&"PasswordResetRequested"));
    let reasons: Vec<PasswordReason> = events
        .iter()
        .filter_map(|e| match &e.event {
            AccountEvent::PasswordSet(set) => Some(set.reason),
            _ => None,
        })
        .collect();
    assert_eq!(reasons, [PasswordReason::Onboarding, PasswordReason::Reset]);
}

async fn a_newer_link_replaces_older_ones_links_expire_and_three_mails_an_hour_at_most(h: Harness) {
    h.signed_in("jdoe", Role::User, "acme").await;
    ask_reset(&h, "jdoe").await;
    wait_for_mails(&h, "jdoe@example.com", "Reset your Tenure password", 1).await;
    ask_reset(&h, "jdoe").await;
    let mails = wait_for_mails(&h, "jdoe@example.com", "Reset your Tenure password", 2).await;
    let (older, newer) = (reset_token(&mails[0]), reset_token(&mails[1]));
    assert_ne!(older, newer);
    h.call("GET", &format!("/api/v1/resets/{older}"), None, None, None).await.error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(h.call("GET", &format!("/api/v1/resets/{newer}"), None, None, None).await.status, StatusCode::OK);

    // Username reminders, which anyone who knows the address may ask for, have a cap of their
    // own: they cannot use up the owner's reset links.
    for _ in 0..3 {
        let email = json!({"email": "jdoe@example.com"});
        let asked = h.call("POST", "/api/v1/recovery/username", Some(email), None, None).await;
        assert_eq!(asked.status, StatusCode::ACCEPTED);
    }
    ask_reset(&h, "jdoe").await;
    ask_reset(&h, "jdoe").await;
    let capped = wait_for_mails(&h, "jdoe@example.com", "Reset your Tenure password", 3).await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(h.mails_to("jdoe@example.com", "Reset your Tenure password").await.len(), 3, "the fourth is not mailed");
    let newest = reset_token(&capped[2]);
    h.clock.advance(Duration::minutes(30));
    h.call("GET", &format!("/api/v1/resets/{newest}"), None, None, None)
        .await
        .error(StatusCode::GONE, "reset_link_expired");
    h.clock.advance(Duration::minutes(31));
    ask_reset(&h, "jdoe").await;
    assert_eq!(wait_for_mails(&h, "jdoe@example.com", "Reset your Tenure password", 4).await.len(), 4, "an hour on");
    for bad in ["short", &"A".repeat(65), &format!("{}x", &newest[..64])] {
        h.call("GET", &format!("/api/v1/resets/{bad}"), None, None, None)
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
    }
}

async fn deactivated_deleted_unknown_and_invited_names_get_the_same_answer_and_only_the_deactivated_a_mail(h: Harness) {
    let (sleepy, _, _) = h.signed_in("sleepy", Role::User, "acme").await;
    let (gone, _, _) = h.signed_in("gone", Role::User, "acme").await;
    h.invite("newbie", MfaRequirement::None).await;
    h.deactivate(sleepy).await;
    h.delete(gone).await;
    h.caught_up().await;
    for name in ["sleepy", "gone", "newbie", "nobody", "not a name!"] {
        ask_reset(&h, name).await;
    }
    let told = wait_for_mails(&h, "sleepy@example.com", "Your Tenure profile is deactivated", 1).await;
    assert_eq!(told.len(), 1);
    assert!(!told[0].contains("/reset/"), "no link for a deactivated profile");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for other in ["gone@example.com", "newbie@example.com"] {
        assert_eq!(h.mails_to(other, "").await, Vec::<String>::new(), "{other} was mailed");
    }
}

async fn a_forgotten_username_is_mailed_to_its_address_with_every_name_it_holds(h: Harness) {
    let (first, first_token) = h.invite_at("jane-work", "Jane@Example.com").await;
    let (second, second_token) = h.invite_at("jane-ops", "jane@example.com").await;
    h.invite_at("someone", "someone@example.com").await;
    h.onboarded(first, &first_token).await;
    h.onboarded(second, &second_token).await;
    for email in [" JANE@example.com ", "nobody@example.com", "not an address"] {
        let asked = h.call("POST", "/api/v1/recovery/username", Some(json!({ "email": email })), None, None).await;
        assert_eq!((asked.status, &asked.json), (StatusCode::ACCEPTED, &json!({"sent": true})), "{asked:?}");
    }
    let mails = wait_for_mails(&h, "", "Your Tenure username", 1).await;
    assert_eq!(mails.len(), 1, "one mail for the address that holds names: {mails:?}");
    assert!(mails[0].contains("- jane-ops") && mails[0].contains("- jane-work"), "{}", mails[0]);
    assert!(!mails[0].contains("someone"), "{}", mails[0]);
}

async fn a_recovery_code_signs_in_once_and_a_new_set_voids_the_old(h: Harness) {
    let (id, cookie, app, codes) = h.signed_in_with_codes("jdoe").await;
    let flow = h.start_sign_in("jdoe").await;
    assert_eq!(h.password(&flow, PASSWORD).await.json["next"], "totp");
    let recover = format!("/api/v1/sign-in/{flow}/recovery-code");
    h.call("POST", &recover, Some(json!({"code": "ZZZZZ-ZZZZZ"})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
    // Typed as a person copies it: lower case, a space for the dash.
    let typed = codes[3].to_lowercase().replace('-', " ");
    let used = h.call("POST", &recover, Some(json!({ "code": typed })), None, None).await;
    assert_eq!(
        (used.json["next"].as_str(), used.json["recovery_codes_left"].as_u64()),
        (Some("done"), Some(9)),
        "{used:?}"
    );
    used.session();
    let flow = h.start_sign_in("jdoe").await;
    h.password(&flow, PASSWORD).await;
    let again = format!("/api/v1/sign-in/{flow}/recovery-code");
    h.call("POST", &again, Some(json!({"code": codes[3]})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
    let notices = wait_for_mails(&h, "jdoe@example.com", "A Tenure recovery code was used", 1).await;
    assert!(notices[0].contains("(9 left)"), "{}", notices[0]);

    let csrf = h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.json["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let wrong = if app.code_at(now_secs(&h)) == "000000" { "111111" } else { "000000" };
    h.call("POST", "/api/v1/profile/recovery-codes", Some(json!({"code": wrong})), Some(&cookie), Some(&csrf))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_code");
    h.clock.advance(Duration::seconds(30));
    let fresh = h
        .call(
            "POST",
            "/api/v1/profile/recovery-codes",
            Some(json!({"code": app.code_at(now_secs(&h))})),
            Some(&cookie),
            Some(&csrf),
        )
        .await;
    let fresh: Vec<String> = fresh.json["recovery_codes"]
        .as_array()
        .expect("a new set")
        .iter()
        .map(|c| c.as_str().unwrap().into())
        .collect();
    assert_eq!(fresh.len(), 10);
    h.call("POST", "/api/v1/profile/recovery-codes", Some(json!({"code": "123456"})), Some(&cookie), None)
        .await
        .error(StatusCode::FORBIDDEN, "csrf");
    let flow = h.start_sign_in("jdoe").await;
    h.password(&flow, PASSWORD).await;
    let old = format!("/api/v1/sign-in/{flow}/recovery-code");
    h.call("POST", &old, Some(json!({"code": codes[0]})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
    let new = h.call("POST", &old, Some(json!({"code": fresh[0]})), None, None).await;
    assert_eq!(new.json["recovery_codes_left"], 9, "{new:?}");
    wait_for_mails(&h, "jdoe@example.com", "New Tenure recovery codes were made", 1).await;
    let (_, events) = h.app.accounts.load(id).await.unwrap();
    let kinds = types(&events);
    assert_eq!(kinds.iter().filter(|t| **t == "RecoveryCodesIssued").count(), 2, "{kinds:?}");
    assert_eq!(kinds.iter().filter(|t| **t == "RecoveryCodeUsed").count(), 2, "{kinds:?}");
}

async fn a_recovery_code_stands_in_for_a_lost_authenticator_when_moving_to_a_new_one(h: Harness) {
    let (id, cookie, _lost, codes) = h.signed_in_with_codes("jdoe").await;
    let csrf = h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.json["csrf_token"]
        .as_str()
        .unwrap()
        .to_string();
    let started = h.call("POST", "/api/v1/profile/mfa/start", None, Some(&cookie), Some(&csrf)).await;
    let secret = started.json["secret"].as_str().unwrap().to_string();
    let new_app = tenure_gateway::totp::Authenticator::from_secret(&secret, "Tenure", "jdoe").unwrap();
    let body = json!({"current_code": codes[5], "code": new_app.code_at(now_secs(&h))});
    let moved = h.call("POST", "/api/v1/profile/mfa/verify", Some(body), Some(&cookie), Some(&csrf)).await;
    let fresh = moved.json["recovery_codes"].as_array().unwrap_or_else(|| panic!("{moved:?}"));
    assert_eq!(fresh.len(), 10);
    wait_for_mails(&h, "jdoe@example.com", "A new authenticator app was set up", 1).await;
    assert!(
        h.mails_to("jdoe@example.com", "A Tenure recovery code was used").await.is_empty(),
        "the new authenticator's notice tells of it"
    );
    let (_, events) = h.app.accounts.load(id).await.unwrap();
    let kinds = types(&events);
    let at = kinds.iter().position(|t| *t == "RecoveryCodeUsed").expect("the code recorded as used");
    assert_eq!(&kinds[at..at + 3], ["RecoveryCodeUsed", "MfaEnrolled", "RecoveryCodesIssued"]);
    let flow = h.start_sign_in("jdoe").await;
    h.password(&flow, PASSWORD).await;
    let recover = format!("/api/v1/sign-in/{flow}/recovery-code");
    h.call("POST", &recover, Some(json!({"code": codes[0]})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
}

async fn an_administrator_resets_two_factor_and_sends_a_reset_link(h: Harness) {
    let (_, admin, admin_csrf) = h.signed_in("boss", Role::Admin, "acme").await;
    // Nothing to reset (no authenticator app): refused, and the member stays signed in.
    let (plain, plain_cookie, _) = h.signed_in("plain", Role::User, "acme").await;
    let head = h.app.accounts.store.head().await.unwrap();
    h.call("POST", &format!("/api/v1/admin/users/{plain}/reset-mfa"), None, Some(&admin), Some(&admin_csrf))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "not_allowed");
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&plain_cookie), None).await.status, StatusCode::OK);
    assert_eq!(h.app.accounts.store.head().await.unwrap(), head, "nothing recorded");
    let (id, cookie, _, codes) = h.signed_in_with_codes("jdoe").await;
    let reset =
        h.call("POST", &format!("/api/v1/admin/users/{id}/reset-mfa"), None, Some(&admin), Some(&admin_csrf)).await;
    assert_eq!(reset.status, StatusCode::NO_CONTENT, "{reset:?}");
    h.call("GET", "/api/v1/session", None, Some(&cookie), None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");
    wait_for_mails(&h, "jdoe@example.com", "Your Tenure two-factor sign-in was reset", 1).await;
    h.caught_up().await;
    let flow = h.start_sign_in("jdoe").await;
    let setup = h.password(&flow, PASSWORD).await;
    assert_eq!(setup.json["next"], "totp_setup", "the next sign-in enrolls anew: {setup:?}");
    h.call("POST", &format!("/api/v1/sign-in/{flow}/recovery-code"), Some(json!({"code": codes[1]})), None, None)
        .await
        .error(StatusCode::CONFLICT, "no_recovery_code_here");
    let app =
        tenure_gateway::totp::Authenticator::from_secret(setup.json["secret"].as_str().unwrap(), "Tenure", "jdoe")
            .unwrap();
    let code = json!({"code": app.code_at(now_secs(&h))});
    let done = h.call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(code), None, None).await;
    assert_eq!(done.json["next"], "done", "{done:?}");
    assert_eq!(done.json["recovery_codes"].as_array().map(Vec::len), Some(10), "{done:?}");

    // The owner's own requests are capped at 3 links an hour; the administrator's are not.
    for _ in 0..3 {
        ask_reset(&h, "jdoe").await;
    }
    wait_for_mails(&h, "jdoe@example.com", "Reset your Tenure password", 3).await;
    let sent = h
        .call("POST", &format!("/api/v1/admin/users/{id}/password-reset"), None, Some(&admin), Some(&admin_csrf))
        .await;
    assert_eq!(sent.json, json!({"sent": true, "mail": "queued"}), "{sent:?}");
    let mails = wait_for_mails(&h, "jdoe@example.com", "Reset your Tenure password", 4).await;
    assert_eq!(mails.len(), 4, "past the owner's cap");
    let token = reset_token(&mails[3]);
    assert_eq!(h.call("GET", &format!("/api/v1/resets/{token}"), None, None, None).await.json["username"], "jdoe");
    let (_, events) = h.app.accounts.load(id).await.unwrap();
    let actors = |wanted: fn(&AccountEvent) -> bool| -> Vec<String> {
        events.iter().filter(|e| wanted(&e.event)).map(|e| e.recorded.actor.split(':').next().unwrap().into()).collect()
    };
    assert_eq!(actors(|e| matches!(e, AccountEvent::MfaReset(_))), ["admin"]);
    let resets = actors(|e| matches!(e, AccountEvent::PasswordResetRequested(_)));
    assert_eq!(resets, ["user", "user", "user", "admin"], "the owner's three, then the administrator's");
}

async fn the_sessions_list_signs_out_one_session_or_every_other(h: Harness) {
    let (_, laptop, laptop_csrf) = h.signed_in("jdoe", Role::User, "acme").await;
    let mut others = Vec::new();
    for _ in 0..2 {
        let flow = h.start_sign_in("jdoe").await;
        others.push(h.password(&flow, PASSWORD).await.session());
    }
    let listed = h.call("GET", "/api/v1/profile/sessions", None, Some(&laptop), None).await;
    let sessions = listed.json.as_array().unwrap_or_else(|| panic!("{listed:?}"));
    assert_eq!(sessions.len(), 3);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(sessions[0]["current"], true, "the session in use is the most recently used");
    for session in sessions {
        let id = session["id"].as_str().unwrap();
        assert!(others.iter().chain([&laptop]).all(|cookie| !cookie.contains(id) && !id.contains(cookie.as_str())));
        assert_eq!(session["browser"], "api-test");
        assert!(
            session["started"].is_string() && session["last_used"].is_string() && session["client_address"].is_string()
        );
    }
    let other = sessions.iter().find(|s| s["current"] == false).unwrap()["id"].as_str().unwrap().to_string();
    let uri = format!("/api/v1/profile/sessions/{other}");
    h.call("DELETE", &uri, None, Some(&laptop), None).await.error(StatusCode::FORBIDDEN, "csrf");
    assert_eq!(h.call("DELETE", &uri, None, Some(&laptop), Some(&laptop_csrf)).await.status, StatusCode::NO_CONTENT);
    h.call("DELETE", &uri, None, Some(&laptop), Some(&laptop_csrf)).await.error(StatusCode::NOT_FOUND, "not_found");
    let alive: Vec<bool> = futures_util::future::join_all(
        others.iter().map(|cookie| h.call("GET", "/api/v1/session", None, Some(cookie), None)),
    )
    .await
    .iter()
    .map(|r| r.status == StatusCode::OK)
    .collect();
    assert_eq!(alive.iter().filter(|a| **a).count(), 1, "one of the two others ended");
    let (_, bob, bob_csrf) = h.signed_in("bob", Role::User, "acme").await;
    let laptop_id = sessions.iter().find(|s| s["current"] == true).unwrap()["id"].as_str().unwrap().to_string();
    h.call("DELETE", &format!("/api/v1/profile/sessions/{laptop_id}"), None, Some(&bob), Some(&bob_csrf))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let ended =
        h.call("POST", "/api/v1/profile/sessions/sign-out-others", None, Some(&laptop), Some(&laptop_csrf)).await;
    assert_eq!(ended.json, json!({"ended": 1}), "{ended:?}");
    for cookie in &others {
        h.call("GET", "/api/v1/session", None, Some(cookie), None)
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&laptop), None).await.status, StatusCode::OK);
    let left = h.call("GET", "/api/v1/profile/sessions", None, Some(&laptop), None).await;
    assert_eq!(left.json.as_array().unwrap().len(), 1);
}

tenure_store::on_both_backends! {
    super::Harness::on;
    a_forgotten_password_is_reset_once_by_a_mailed_link_and_the_second_factor_stays,
    a_newer_link_replaces_older_ones_links_expire_and_three_mails_an_hour_at_most,
    deactivated_deleted_unknown_and_invited_names_get_the_same_answer_and_only_the_deactivated_a_mail,
    a_forgotten_username_is_mailed_to_its_address_with_every_name_it_holds,
    a_recovery_code_signs_in_once_and_a_new_set_voids_the_old,
    a_recovery_code_stands_in_for_a_lost_authenticator_when_moving_to_a_new_one,
    an_administrator_resets_two_factor_and_sends_a_reset_link,
    the_sessions_list_signs_out_one_session_or_every_other,
}

/// After deletion, nothing of a reset link, a recovery code or the address's lookup digest is
/// left readable in any file of the data directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_leaves_no_reset_token_recovery_digest_or_email_digest_in_any_file() {
    let h = Harness::on(tenure_store::conformance::Backend::Sqlite).await;
    let (id, _, _, codes) = h.signed_in_with_codes("jdoe").await;
    ask_reset(&h, "jdoe").await;
    let mails = wait_for_mails(&h, "jdoe@example.com", "Reset your Tenure password", 1).await;
    let token = reset_token(&mails[0]);
    let email_digest = h.app.email_index.digest("jdoe@example.com");
    let index = h.app.email_index.catch_up(&h.app.accounts.store, &h.app.accounts.keys).await.unwrap();
    assert!(index > 0);
    assert_eq!(h.app.email_index.accounts("jdoe@example.com").await.unwrap(), [id]);
    let code_key = tenure_gateway::codes::CodeKey::new(h.app.accounts.keys.derive("email codes"));
    let code_digests: Vec<[u8; 32]> = codes.iter().map(|c| code_key.recovery_digest(id.0.as_bytes(), c).0).collect();
    let token_digest = secrets::token_digest(&token[22..]).0;

    h.delete(id).await;
    h.app.email_index.catch_up(&h.app.accounts.store, &h.app.accounts.keys).await.unwrap();
    assert!(h.app.email_index.accounts("jdoe@example.com").await.unwrap().is_empty());

    let mut secrets_found = Vec::new();
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("the email digest".into(), email_digest.to_vec()),
        ("the email digest (hex)".into(), hex::encode(email_digest).into_bytes()),
        ("the reset token digest".into(), token_digest.to_vec()),
        ("the reset token digest (hex)".into(), hex::encode(token_digest).into_bytes()),
        ("the reset token".into(), token.clone().into_bytes()),
    ];
    for (i, digest) in code_digests.iter().enumerate() {
        needles.push((format!("recovery code digest {i}"), digest.to_vec()));
        needles.push((format!("recovery code digest {i} (hex)"), hex::encode(digest).into_bytes()));
    }
    let mut files = vec![h.place.dir.path().to_path_buf()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        // The mail already sent is the user's copy, not the store's.
        if path.components().any(|c| c.as_os_str() == "outbox") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for (what, needle) in &needles {
            if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                secrets_found.push(format!("{what} in {}", path.display()));
            }
        }
    }
    assert!(secrets_found.is_empty(), "{secrets_found:?}");
}

/// The email index stores its place in the log with what it indexes, not at every sign-in (a
/// write per append, on every gateway, to the one row they share), and still finds an account
/// invited after a run of other events at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_email_index_stores_its_place_with_what_it_indexes_not_at_every_sign_in() {
    let h = Harness::on(tenure_store::conformance::Backend::Sqlite).await;
    let sessions_db = h.place.dir.path().join("sessions.db");
    let stored = || -> u64 {
        let connection = rusqlite::Connection::open(&sessions_db).unwrap();
        connection.query_row("SELECT position FROM email_index_position", [], |r| r.get::<_, i64>(0)).unwrap() as u64
    };
    let (store, keys) = (&h.app.accounts.store, &h.app.accounts.keys);

    // Invited, then a password, an authenticator, the terms and a sign-in: one event to index.
    let (jdoe, _, _) = h.signed_in_with_authenticator("jdoe").await;
    let reached = h.app.email_index.catch_up(store, keys).await.unwrap();
    assert_eq!(reached, store.head().await.unwrap());
    let at_invitation = stored();
    assert!(at_invitation < reached, "the position was stored past the invitation, at {at_invitation}");

    h.deactivate(jdoe).await;
    assert!(h.app.email_index.catch_up(store, keys).await.unwrap() > reached);
    assert_eq!(stored(), at_invitation, "the position was stored for events the index does not read");

    let (asmith, _) = h.invite_at("asmith", "asmith@example.com").await;
    let reached = h.app.email_index.catch_up(store, keys).await.unwrap();
    assert_eq!(reached, store.head().await.unwrap());
    assert_eq!(h.app.email_index.accounts("asmith@example.com").await.unwrap(), [asmith]);
    assert_eq!(h.app.email_index.accounts("jdoe@example.com").await.unwrap(), [jdoe]);
    assert!(stored() > at_invitation);
}
