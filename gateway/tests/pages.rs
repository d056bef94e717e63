//! The signed-in pages, driven through the router as a browser drives them (forms, cookies):
//! who may see and post what, and that every field's bad values are refused next to the field
//! without changing anything.

mod support;

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::json;
use support::{Harness, Reply, now_secs};
use tenure_domain::AccountId;
use tenure_domain::events::Role;
use tenure_gateway::totp::Authenticator;
use tenure_store::EventStore;

/// The CSRF token the page's forms carry.
fn csrf_in(page: &Reply) -> String {
    let at = page.text.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
    page.text[at..].split('"').next().unwrap().to_string()
}

#[track_caller]
fn field_error(reply: &Reply, field: &str, message: &str) {
    assert_eq!(reply.status, StatusCode::UNPROCESSABLE_ENTITY, "{field}: {}", reply.text);
    assert!(
        reply.text.contains(&format!("aria-invalid=\"true\" aria-describedby=\"{field}-error\"")),
        "{field} is marked invalid and described by its error: {}",
        reply.text
    );
    let error = format!("<p class=\"field-error\" id=\"{field}-error\">");
    let at = reply.text.find(&error).unwrap_or_else(|| panic!("no error for {field}: {}", reply.text)) + error.len();
    let shown = reply.text[at..].split("</p>").next().unwrap();
    assert!(shown.contains(message), "{field}: {shown:?} should say {message:?}");
    assert_eq!(reply.text.matches("class=\"field-error\"").count(), 1, "one error, on {field}");
}

async fn version(h: &Harness, account: AccountId) -> u64 {
    h.app.accounts.store.read_stream(&account.stream(), 0).await.unwrap().len() as u64
}

async fn pages_need_a_session_and_the_admin_pages_an_admin_of_the_same_org(h: Harness) {
    let (_, admin, _) = h.signed_in("boss", Role::Admin, "acme").await;
    let (worker_id, user, _) = h.signed_in("worker", Role::User, "acme").await;
    let (_, rival, _) = h.signed_in("rival", Role::Admin, "beta").await;

    for path in ["/dashboard", "/profile", "/profile/authenticator", "/admin", "/services", "/orders"] {
        let reply = h.page(path, None).await;
        assert_eq!((reply.status, reply.location.as_deref()), (StatusCode::SEE_OTHER, Some("/sign-in")), "{path}");
    }
    let invite = [("username", "newbie"), ("email", "newbie@example.com"), ("role", "user"), ("mfa", "none")];
    let signed_out = h.form("/admin/users", &[&invite[..], &[("csrf", "x")]].concat(), None).await;
    assert_eq!(signed_out.location.as_deref(), Some("/sign-in"));

    let plain = h.page("/admin", Some(&user)).await;
    assert_eq!(plain.status, StatusCode::FORBIDDEN);
    assert!(
        plain.text.contains("Only your organisation&#x27;s administrators")
            || plain.text.contains("administrators can do this")
    );
    let dashboard = h.page("/dashboard", Some(&user)).await;
    assert!(!dashboard.text.contains("href=\"/admin\""), "no Admin tab for a plain user");
    let user_csrf = csrf_in(&dashboard);
    let posted = h.form("/admin/users", &[&invite[..], &[("csrf", &user_csrf)]].concat(), Some(&user)).await;
    assert_eq!(posted.status, StatusCode::FORBIDDEN, "{}", posted.text);

    let admin_page = h.page("/admin", Some(&admin)).await;
    assert_eq!(admin_page.status, StatusCode::OK);
    assert!(admin_page.text.contains("id=\"member-worker\"") && !admin_page.text.contains("rival"), "acme only");
    let admin_csrf = csrf_in(&admin_page);
    let forged = h.form("/admin/users", &[&invite[..], &[("csrf", "forged")]].concat(), Some(&admin)).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let no_token = h.form("/admin/users", &invite, Some(&admin)).await;
    assert_eq!(no_token.status, StatusCode::FORBIDDEN);
    h.caught_up().await;
    assert!(!h.page("/admin", Some(&admin)).await.text.contains("newbie"), "nothing was invited");

    // Another org's admin: the member is not found, and nothing happens to it.
    let before = version(&h, worker_id).await;
    let rival_csrf = csrf_in(&h.page("/admin", Some(&rival)).await);
    for action in ["reactivate", "mfa", "resend-invitation"] {
        let reply = h
            .form(&format!("/admin/users/{worker_id}/{action}"), &[("csrf", &rival_csrf), ("mfa", "app")], Some(&rival))
            .await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{action}: {}", reply.text);
        assert!(reply.text.contains("No such user in your organisation."), "{action}");
    }
    let reply =
        h.form(&format!("/admin/users/{worker_id}/mfa"), &[("csrf", &user_csrf), ("mfa", "app")], Some(&user)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "a plain user");
    assert_eq!(version(&h, worker_id).await, before, "no event was appended");

    // The admin of the same org: the requirement changes and the list shows it.
    let reply = h
        .form(&format!("/admin/users/{worker_id}/mfa"), &[("csrf", &admin_csrf), ("mfa", "email")], Some(&admin))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.text.contains("worker now needs: a code by email."), "{}", reply.text);
    assert!(reply.text.contains("<option value=\"email\" selected>"), "{}", reply.text);
    let created = h.form("/admin/users", &[&invite[..], &[("csrf", &admin_csrf)]].concat(), Some(&admin)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(created.text.contains("id=\"member-newbie\""), "the list shows the invitee");
    assert!(created.text.contains("id=\"invitation-url\""), "outbox mode shows the link");
}

async fn the_orders_tab_is_for_wholesale_orgs_only(h: Harness) {
    let (_, retail, _) = h.signed_in("retail", Role::User, "acme").await;
    let page = h.page("/dashboard", Some(&retail)).await;
    for tab in ["Services", "APIs", "Monitoring &#38; Reports", "Billing", "Support"] {
        assert!(page.text.contains(&format!(">{tab}</a>")), "{tab}: {}", page.text);
    }
    assert!(!page.text.contains("id=\"tab-orders\""), "no Orders tab");
    assert!(page.text.contains("<title>Dashboard · Tenure</title>") && page.text.contains("<body class=\"portal\">"));
    assert_eq!(h.page("/orders", Some(&retail)).await.status, StatusCode::NOT_FOUND);
    let services = h.page("/services", Some(&retail)).await;
    assert_eq!(services.status, StatusCode::OK);
    assert!(services.text.contains("id=\"tab-services\" aria-current=\"page\""), "{}", services.text);

    let (_, wholesale, _) = h.signed_in_wholesale("bulk").await;
    assert!(h.page("/dashboard", Some(&wholesale)).await.text.contains("id=\"tab-orders\""));
    assert_eq!(h.page("/orders", Some(&wholesale)).await.status, StatusCode::OK);
}

async fn every_profile_field_refuses_bad_values_next_to_the_field_and_changes_nothing(h: Harness) {
    let (id, cookie, _) = h.signed_in("jdoe", Role::User, "acme").await;
    let page = h.page("/profile", Some(&cookie)).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("id=\"email\">jdoe@example.com<"), "{}", page.text);
    assert!(page.text.contains("<td>api-test</td>") || page.text.contains(">api-test<"), "recent sign-ins");
    let csrf = csrf_in(&page);
    let good =
        [("csrf", csrf.as_str()), ("display_name", "Jane Doe"), ("phone", "+442079460958"), ("address", "1 Main St")];
    let saved = h.form("/profile", &good, Some(&cookie)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.text);
    assert!(saved.text.contains("Your profile is saved.") && saved.text.contains("value=\"+442079460958\""));
    let stored = version(&h, id).await;

    let long_name = "n".repeat(101);
    let long_address = "a".repeat(301);
    let cases: [(&str, &str, &str); 8] = [
        ("display_name", &long_name, "1 to 100 characters"),
        ("display_name", "Jane\u{7}Doe", "letters, spaces and punctuation"),
        ("phone", "02079460958", "international format"),
        ("phone", "+0207946", "international format"),
        ("phone", "+44 20 7946 0958", "international format"),
        ("phone", "+4420794609581234", "international format"),
        ("address", &long_address, "1 to 300 characters"),
        ("address", "1 Main St\u{0}", "line breaks only"),
    ];
    for (field, bad, message) in cases {
        let mut fields: Vec<(&str, &str)> = good.to_vec();
        fields.iter_mut().find(|(name, _)| *name == field).unwrap().1 = bad;
        let reply = h.form("/profile", &fields, Some(&cookie)).await;
        field_error(&reply, field, message);
        assert!(reply.text.contains("role=\"alert\""), "the error is announced");
        if field != "address" {
            let shown = bad.replace('&', "&amp;");
            assert!(reply.text.contains(&format!("value=\"{shown}\"")), "{field}: what was typed is kept");
        }
        assert_eq!(version(&h, id).await, stored, "{field}={bad:?} changed nothing");
    }
    let profile = h.call("GET", "/api/v1/profile", None, Some(&cookie), None).await.json;
    assert_eq!(
        (profile["display_name"].clone(), profile["phone"].clone(), profile["address"].clone()),
        (json!("Jane Doe"), json!("+442079460958"), json!("1 Main St"))
    );

    // The password form: each mistake on its field, and the password stays.
    let password = |current: &'static str, new: &'static str, confirm: &'static str| {
        [
            ("csrf", csrf.clone()),
            ("current_password", current.to_string()),
            ("new_password", new.to_string()),
            ("confirm_password", confirm.to_string()),
        ]
    };
    let as_pairs =
        |fields: &[(&'static str, String); 4]| fields.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>();
    let post = |fields: [(&'static str, String); 4]| {
        let pairs = as_pairs(&fields);
        let h = &h;
        let cookie = cookie.clone();
        async move {
            let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            h.form("/profile/password", &borrowed, Some(&cookie)).await
        }
    };
    let reply = post(password("not-my-password-at-all", "violet-anchor-meadow-52", "violet-anchor-meadow-52")).await;
    field_error(&reply, "current_password", "not correct");
    let reply = post(password("mauve-otter-gravel-1987", "violet-anchor-meadow-52", "violet-anchor-meadow-53")).await;
    field_error(&reply, "confirm_password", "not the same");
    let reply = post(password("mauve-otter-gravel-1987", "password1234", "password1234")).await;
    field_error(&reply, "new_password", "");
    let reply = post(password("mauve-otter-gravel-1987", "short", "short")).await;
    field_error(&reply, "new_password", "");
    // Only the wrong current password is recorded, as a failed attempt the throttle counts.
    assert_eq!(version(&h, id).await, stored + 1, "no password was set");
    let reply = post(password("mauve-otter-gravel-1987", "violet-anchor-meadow-52", "violet-anchor-meadow-52")).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.text.contains("Your password is changed."));
    // The page goes on in a fresh session: its cookie is set, the old one is over, and the page's
    // forms carry the fresh session's CSRF token.
    let fresh = reply.session();
    assert_ne!(fresh, cookie);
    assert_eq!(h.call("GET", "/api/v1/session", None, Some(&cookie), None).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(csrf_in(&reply), csrf_in(&h.page("/profile", Some(&fresh)).await));

    let forged = h.form("/profile", &[("display_name", "Mallory")], Some(&fresh)).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "no CSRF token");
    assert_eq!(h.call("GET", "/api/v1/profile", None, Some(&fresh), None).await.json["display_name"], "Jane Doe");
}

async fn every_invitation_field_refuses_bad_values_next_to_the_field_and_invites_nobody(h: Harness) {
    let (_, admin, _) = h.signed_in("boss", Role::Admin, "acme").await;
    let csrf = csrf_in(&h.page("/admin", Some(&admin)).await);
    let head = h.app.accounts.store.head().await.unwrap();
    let long_name = "n".repeat(101);
    let cases: [(&str, &str, &str); 9] = [
        ("username", "ab", "3 to 64 characters"),
        ("username", "no spaces", "letters, digits"),
        ("username", "boss", "taken or was recently used; please choose another"),
        ("email", "", "name@example.com"),
        ("email", "jane.example.com", "name@example.com"),
        ("email", "jane@example", "name@example.com"),
        ("display_name", &long_name, "1 to 100 characters"),
        ("role", "owner", "user, admin or auditor"),
        ("mfa", "sms", "none, app or email"),
    ];
    for (field, bad, message) in cases {
        let mut fields = vec![
            ("csrf", csrf.as_str()),
            ("username", "jane"),
            ("email", "jane@example.com"),
            ("display_name", "Jane"),
            ("role", "user"),
            ("mfa", "app"),
        ];
        fields.iter_mut().find(|(name, _)| *name == field).unwrap().1 = bad;
        let reply = h.form("/admin/users", &fields, Some(&admin)).await;
        if field == "username" && bad == "boss" {
            assert_eq!(reply.status, StatusCode::CONFLICT);
            let fixed = Reply { status: StatusCode::UNPROCESSABLE_ENTITY, ..reply };
            field_error(&fixed, field, message);
        } else {
            field_error(&reply, field, message);
        }
        assert_eq!(h.app.accounts.store.head().await.unwrap(), head, "{field}={bad:?} invited nobody");
    }
}

async fn an_authenticator_is_replaced_only_with_a_code_from_the_current_one(h: Harness) {
    let (id, cookie, old) = h.signed_in_with_authenticator("mia").await;
    let page = h.page("/profile", Some(&cookie)).await;
    assert!(page.text.contains("id=\"replace-authenticator\""), "{}", page.text);
    let offer = h.page("/profile/authenticator", Some(&cookie)).await;
    assert_eq!(offer.status, StatusCode::OK);
    let at = offer.text.find("id=\"secret\">").unwrap() + 12;
    let secret = offer.text[at..].split('<').next().unwrap().to_string();
    let new = Authenticator::from_secret(&secret, "Tenure", "mia").unwrap();
    let csrf = csrf_in(&offer);
    h.clock.advance(Duration::seconds(30));
    let now = now_secs(&h);
    let wrong = if old.code_at(now) == "000000" { "111111" } else { "000000" };

    let before = version(&h, id).await;
    let reply = h
        .form(
            "/profile/authenticator",
            &[("csrf", &csrf), ("current_code", wrong), ("code", &new.code_at(now))],
            Some(&cookie),
        )
        .await;
    field_error(&reply, "current_code", "current authenticator is not correct");
    assert!(reply.text.contains(&secret), "the same new key is offered again");
    let reply = h
        .form(
            "/profile/authenticator",
            &[("csrf", &csrf), ("current_code", &old.code_at(now)), ("code", wrong)],
            Some(&cookie),
        )
        .await;
    field_error(&reply, "code", "new authenticator is not correct");
    assert_eq!(version(&h, id).await, before + 2, "each wrong code is recorded, counting towards throttling");
    let reply = h
        .form(
            "/profile/authenticator",
            &[("csrf", &csrf), ("current_code", &old.code_at(now)), ("code", &new.code_at(now))],
            Some(&cookie),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text);
    assert!(reply.text.contains("Your new authenticator is in use"));
    assert!(
        reply.text.contains("id=\"recovery-codes\"") && reply.text.contains("tenure-recovery-codes.txt"),
        "new codes, once"
    );
    h.caught_up().await;

    // Signing in: the old authenticator's codes no longer work, the new one's do.
    h.clock.advance(Duration::seconds(30));
    let now = now_secs(&h);
    let flow = h.start_sign_in("mia").await;
    h.password(&flow, "mauve-otter-gravel-1987").await;
    h.call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": old.code_at(now)})), None, None)
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_code");
    let done = h
        .call("POST", &format!("/api/v1/sign-in/{flow}/code"), Some(json!({"code": new.code_at(now)})), None, None)
        .await;
    assert_eq!(done.json["next"], "done", "{done:?}");

    // The API does the same; a profile without an authenticator has none to replace.
    let (_, plain, plain_csrf) = h.signed_in("noah", Role::User, "acme").await;
    h.call("POST", "/api/v1/profile/mfa/start", None, Some(&plain), Some(&plain_csrf))
        .await
        .error(StatusCode::CONFLICT, "no_authenticator");
    h.call("POST", "/api/v1/profile/mfa/start", None, Some(&plain), None).await.error(StatusCode::FORBIDDEN, "csrf");
    assert_eq!(h.page("/profile/authenticator", Some(&plain)).await.status, StatusCode::CONFLICT);
}

async fn every_admin_form_refuses_the_signed_out_plain_users_other_orgs_and_missing_csrf(h: Harness) {
    let (_, admin, _) = h.signed_in("boss", Role::Admin, "acme").await;
    let (member, user, _) = h.signed_in("worker", Role::User, "acme").await;
    let (_, rival, _) = h.signed_in("rival", Role::Admin, "beta").await;
    let admin_csrf = csrf_in(&h.page("/admin", Some(&admin)).await);
    let user_csrf = csrf_in(&h.page("/dashboard", Some(&user)).await);
    let rival_csrf = csrf_in(&h.page("/admin", Some(&rival)).await);
    let head = h.app.accounts.store.head().await.unwrap();
    let forms = [
        "/admin/users".to_string(),
        format!("/admin/users/{member}/reactivate"),
        format!("/admin/users/{member}/mfa"),
        format!("/admin/users/{member}/resend-invitation"),
        format!("/admin/users/{member}/password-reset"),
        format!("/admin/users/{member}/reset-mfa"),
    ];
    let fields = [("username", "newbie"), ("email", "newbie@example.com"), ("role", "user"), ("mfa", "app")];
    let h = &h;
    for uri in &forms {
        let post = |cookie: Option<String>, csrf: Option<String>| {
            let mut all: Vec<(&str, String)> = fields.iter().map(|(k, v)| (*k, v.to_string())).collect();
            if let Some(csrf) = csrf {
                all.push(("csrf", csrf));
            }
            async move {
                let borrowed: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
                h.form(uri, &borrowed, cookie.as_deref()).await
            }
        };
        let signed_out = post(None, Some(admin_csrf.clone())).await;
        assert_eq!(
            (signed_out.status, signed_out.location.as_deref()),
            (StatusCode::SEE_OTHER, Some("/sign-in")),
            "{uri}"
        );
        assert_eq!(
            post(Some(user.clone()), Some(user_csrf.clone())).await.status,
            StatusCode::FORBIDDEN,
            "{uri}: plain user"
        );
        assert_eq!(post(Some(admin.clone()), None).await.status, StatusCode::FORBIDDEN, "{uri}: no CSRF token");
        assert_eq!(
            post(Some(admin.clone()), Some(user_csrf.clone())).await.status,
            StatusCode::FORBIDDEN,
            "{uri}: another session's token"
        );
        if uri.contains(&member.to_string()) {
            assert_eq!(
                post(Some(rival.clone()), Some(rival_csrf.clone())).await.status,
                StatusCode::NOT_FOUND,
                "{uri}: another org"
            );
        }
    }
    assert_eq!(h.app.accounts.store.head().await.unwrap(), head, "no refused form appended anything");
}

async fn a_deleted_profile_is_listed_and_recreated_under_a_free_username(h: Harness) {
    let (_, admin, _) = h.signed_in("boss", Role::Admin, "acme").await;
    let (gone, _, _) = h.signed_in("gone", Role::User, "acme").await;
    h.delete(gone).await;
    h.caught_up().await;

    let page = h.page("/admin", Some(&admin)).await;
    assert!(page.text.contains("id=\"state-gone\">deleted<"), "{}", page.text);
    assert!(page.text.contains("href=\"/admin?recreate=gone#invite-heading\" id=\"recreate-gone\""), "{}", page.text);
    let recreate = h.page("/admin?recreate=gone", Some(&admin)).await;
    assert!(recreate.text.contains("id=\"invite-username\" name=\"username\" value=\"gone\""), "{}", recreate.text);
    assert!(recreate.text.contains("Recreating gone"), "{}", recreate.text);
    let csrf = csrf_in(&recreate);
    let again = [
        ("csrf", csrf.as_str()),
        ("username", "gone"),
        ("email", "gone@example.com"),
        ("role", "user"),
        ("mfa", "none"),
    ];
    let held = h.form("/admin/users", &again, Some(&admin)).await;
    assert_eq!(held.status, StatusCode::CONFLICT);
    assert!(held.text.contains("taken or was recently used; please choose another"), "{}", held.text);
    assert!(held.text.contains("value=\"gone@example.com\""), "what was typed is kept");
    let fresh = [
        ("csrf", csrf.as_str()),
        ("username", "gone2"),
        ("email", "gone@example.com"),
        ("role", "user"),
        ("mfa", "none"),
    ];
    let created = h.form("/admin/users", &fresh, Some(&admin)).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert!(
        created.text.contains("id=\"state-gone2\">invited<") && created.text.contains("id=\"state-gone\">deleted<")
    );
}

/// The profile's new forms change nothing without the session's CSRF token.
async fn the_profile_session_and_recovery_forms_need_the_csrf_token(h: Harness) {
    let (_, laptop, _) = h.signed_in("jdoe", Role::User, "acme").await;
    let flow = h.start_sign_in("jdoe").await;
    let phone = h.password(&flow, "mauve-otter-gravel-1987").await.session();
    let (_, other, _) = h.signed_in("bob", Role::User, "acme").await;
    let other_csrf = csrf_in(&h.page("/profile", Some(&other)).await);
    let page = h.page("/profile", Some(&laptop)).await;
    assert!(page.text.contains("id=\"sessions\"") && page.text.contains("(this session)"), "{}", page.text);
    let at = page.text.find("/profile/sessions/").expect("a sign-out form for the other session") + 18;
    let id: String = page.text[at..].chars().take_while(|c| c.is_ascii_hexdigit()).collect();
    assert_eq!(id.len(), 32);
    let head = h.app.accounts.store.head().await.unwrap();
    for (uri, fields) in [
        (format!("/profile/sessions/{id}/sign-out"), vec![]),
        ("/profile/sessions/sign-out-others".to_string(), vec![]),
        ("/profile/recovery-codes".to_string(), vec![("code", "123456")]),
    ] {
        for csrf in [None, Some(other_csrf.as_str())] {
            let mut all = fields.clone();
            if let Some(csrf) = csrf {
                all.push(("csrf", csrf));
            }
            let refused = h.form(&uri, &all, Some(&laptop)).await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{uri} with {csrf:?}");
        }
    }
    assert_eq!(
        h.call("GET", "/api/v1/session", None, Some(&phone), None).await.status,
        StatusCode::OK,
        "still signed in"
    );
    assert_eq!(h.app.accounts.store.head().await.unwrap(), head, "nothing recorded");
    let csrf = csrf_in(&page);
    let ended = h.form(&format!("/profile/sessions/{id}/sign-out"), &[("csrf", &csrf)], Some(&laptop)).await;
    assert!(ended.text.contains("That session is signed out."), "{}", ended.text);
    h.call("GET", "/api/v1/session", None, Some(&phone), None).await.error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

tenure_store::on_both_backends! {
    super::Harness::on;
    the_profile_session_and_recovery_forms_need_the_csrf_token,
    a_deleted_profile_is_listed_and_recreated_under_a_free_username,
    pages_need_a_session_and_the_admin_pages_an_admin_of_the_same_org,
    the_orders_tab_is_for_wholesale_orgs_only,
    every_profile_field_refuses_bad_values_next_to_the_field_and_changes_nothing,
    every_invitation_field_refuses_bad_values_next_to_the_field_and_invites_nobody,
    an_authenticator_is_replaced_only_with_a_code_from_the_current_one,
    every_admin_form_refuses_the_signed_out_plain_users_other_orgs_and_missing_csrf,
}
