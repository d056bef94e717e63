//! Throttling of SPEC §2 through the router with a manual clock: keyed on the account and the
//! client address, the account-wide brake with its daily notice, and unknown names throttled
//! exactly as known ones, also when their attempts run at the same time.

mod support;

use std::net::SocketAddr;

use axum::http::StatusCode;
use chrono::Duration;
use serde_json::json;
use support::{Harness, Reply};
use tenure_domain::events::Role;

const PASSWORD: &str = "mauve-otter-gravel-1987";

fn from(address: &str) -> Option<SocketAddr> {
    Some(SocketAddr::new(address.parse().unwrap(), 40_000))
}

/// One whole password attempt for `username` from `address`: the username step, then the password.
async fn attempt(h: &Harness, address: &str, username: &str, password: &str) -> Reply {
    let flow = start(h, address, username).await;
    password_step(h, address, &flow, password).await
}

/// The username step from `address`; returns the flow id.
async fn start(h: &Harness, address: &str, username: &str) -> String {
    let started = h
        .call_via(&h.app, from(address), "POST", "/api/v1/sign-in", Some(json!({"username": username})), None, None)
        .await;
    started.json["flow"].as_str().expect("a flow").to_string()
}

async fn password_step(h: &Harness, address: &str, flow: &str, password: &str) -> Reply {
    let uri = format!("/api/v1/sign-in/{flow}/password");
    h.call_via(&h.app, from(address), "POST", &uri, Some(json!({ "password": password })), None, None).await
}

fn seconds(reply: &Reply) -> Option<i64> {
    reply.retry_after.as_deref().map(|s| s.parse().unwrap())
}

/// The notices mailed so far (the outbox's `.eml` files that carry one).
fn notices(h: &Harness) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(h.place.dir.path().join("outbox")) else { return vec![] };
    dir.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|mail| mail.contains("Failed sign-ins on your Tenure profile"))
        .collect()
}

async fn notices_after_a_moment(h: &Harness, expected: usize) -> Vec<String> {
    for _ in 0..100 {
        let found = notices(h);
        if found.len() >= expected {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    notices(h)
}

async fn an_attacker_elsewhere_cannot_lock_the_owner_out(h: Harness) {
    h.signed_in("owner", Role::User, "acme").await;
    let mut last = None;
    for n in 0..100 {
        // The attacker's address is limited by its own failures too (SPEC §11): a new one
        // every 20 attempts, all in one /64 would count as one, so these are IPv4.
        let address = format!("198.51.100.{}", n / 20);
        let reply = attempt(&h, &address, "owner", "wrong guess").await;
        last = Some(reply.status);
    }
    assert_eq!(last, Some(StatusCode::TOO_MANY_REQUESTS));
    // The owner, from home, at once: no wait, no refusal.
    let owner = attempt(&h, "192.0.2.10", "owner", PASSWORD).await;
    assert_eq!(owner.json, json!({"next": "done"}), "{owner:?}");
    // The owner's sign-in lifts no attacker's wait: a made-up name's would never lift either.
    let again = attempt(&h, "198.51.100.4", "owner", "wrong guess").await;
    again.error(StatusCode::TOO_MANY_REQUESTS, "throttled");
}

async fn the_brake_paces_passwords_and_mails_one_notice_a_day(h: Harness) {
    let (id, _, _) = h.signed_in("target", Role::User, "acme").await;
    // 51 failures from 51 addresses in an hour: none of them is locked by its own count.
    for n in 0..51 {
        attempt(&h, &format!("203.0.113.{n}"), "target", "wrong")
            .await
            .error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        h.clock.advance(Duration::seconds(60));
    }
    let mails = notices_after_a_moment(&h, 1).await;
    assert_eq!(mails.len(), 1, "one notice");
    assert!(mails[0].contains("To: target@example.com"), "{}", mails[0]);
    assert!(mails[0].contains("more than 50 failed attempts"), "{}", mails[0]);
    let (_, events) = h.app.accounts.load(id).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event.type_name() == "SecurityNoticeSent").count(), 1);

    // Braked: an address that failed waits 10 s for its next password; the owner does not.
    attempt(&h, "198.51.100.1", "target", "wrong").await.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    h.clock.advance(Duration::seconds(4));
    let paced = attempt(&h, "198.51.100.1", "target", PASSWORD).await;
    paced.error(StatusCode::TOO_MANY_REQUESTS, "throttled");
    assert_eq!(seconds(&paced), Some(6));
    h.clock.advance(Duration::seconds(6));
    attempt(&h, "198.51.100.1", "target", "wrong").await.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(notices_after_a_moment(&h, 2).await.len(), 1, "still one notice");

    // The owner signs in, unhindered; failures the same day bring no second notice...
    assert_eq!(attempt(&h, "192.0.2.10", "target", PASSWORD).await.json, json!({"next": "done"}));
    h.clock.advance(Duration::hours(12));
    for n in 0..51 {
        attempt(&h, &format!("203.0.113.{n}"), "target", "wrong")
            .await
            .error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        h.clock.advance(Duration::seconds(60));
    }
    assert_eq!(notices_after_a_moment(&h, 2).await.len(), 1);
    // ...but a day after the first, the next failure under the brake does.
    h.clock.advance(Duration::hours(12));
    attempt(&h, "198.51.100.2", "target", "wrong").await.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(notices_after_a_moment(&h, 2).await.len(), 2);
}

/// What an unknown name answers, a known one answers too: the brake included.
async fn the_brake_on_an_unknown_name_answers_as_on_a_known_one(h: Harness) {
    h.signed_in("realname", Role::User, "acme").await;
    for name in ["realname", "madeupname"] {
        let mut answers = Vec::new();
        for n in 0..51 {
            let reply = attempt(&h, &format!("203.0.113.{n}"), name, "wrong").await;
            answers.push((reply.status, reply.json.clone()));
        }
        attempt(&h, "198.51.100.7", name, "wrong").await.error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        h.clock.advance(Duration::seconds(3));
        let paced = attempt(&h, "198.51.100.7", name, "wrong").await;
        paced.error(StatusCode::TOO_MANY_REQUESTS, "throttled");
        assert_eq!(paced.json["message"], "Too many attempts. Please wait before trying again.", "{name}");
        assert_eq!(seconds(&paced), Some(7), "{name}");
        assert!(answers.iter().all(|(status, _)| *status == StatusCode::UNAUTHORIZED), "{name}: {answers:?}");
        h.clock.advance(Duration::seconds(7));
    }
}

/// Wrong passwords sent at once, for a real account and for a made-up name, from one address:
/// the same answers, in the same numbers, and the same wait afterwards.
async fn concurrent_wrong_passwords_tell_no_name_apart(h: Harness) {
    for n in [12usize, 30] {
        let known = format!("known{n}");
        h.signed_in(&known, Role::User, "acme").await;
        let mut outcomes = Vec::new();
        for (i, name) in [known.as_str(), &format!("ghost{n}")].into_iter().enumerate() {
            let address = format!("198.51.100.{}", n + i);
            let mut flows = Vec::new();
            for _ in 0..n {
                flows.push(start(&h, &address, name).await);
            }
            let replies =
                futures_util::future::join_all(flows.iter().map(|flow| password_step(&h, &address, flow, "wrong")))
                    .await;
            let mut answers: Vec<(u16, String, Option<i64>)> =
                replies.iter().map(|r| (r.status.as_u16(), r.json.to_string(), seconds(r))).collect();
            answers.sort();
            let next = attempt(&h, &address, name, "wrong").await;
            outcomes.push((answers, next.status, next.json.clone(), seconds(&next)));
        }
        let (known, ghost) = (&outcomes[0], &outcomes[1]);
        assert_eq!(known, ghost, "{n} at once");
        let unauthorized = known.0.iter().filter(|(status, _, _)| *status == 401).count();
        assert_eq!(unauthorized, 5, "{n} at once: five failures count, the rest are throttled: {known:?}");
        assert!(known.0.iter().all(|(status, _, _)| [401, 429].contains(status)), "{known:?}");
        assert_eq!((known.1.as_u16(), known.3), (429, Some(60)), "{known:?}");
    }
}

/// A stolen session guesses the current password no faster than a sign-in could.
async fn the_current_password_of_a_password_change_is_throttled_like_a_sign_in(h: Harness) {
    let (_, cookie, csrf) = h.signed_in("changer", Role::User, "acme").await;
    let change = |current: &str| json!({"current_password": current, "new_password": "quartz-lantern-meadow-5521", "confirm_password": "quartz-lantern-meadow-5521"});
    let call = |address: &'static str, body| {
        let (cookie, csrf) = (cookie.clone(), csrf.clone());
        let h = &h;
        async move {
            h.call_via(
                &h.app,
                from(address),
                "POST",
                "/api/v1/profile/password",
                Some(body),
                Some(&cookie),
                Some(&csrf),
            )
            .await
        }
    };
    for _ in 0..5 {
        call("198.51.100.9", change("not my password")).await.error(StatusCode::UNPROCESSABLE_ENTITY, "wrong_password");
    }
    let refused = call("198.51.100.9", change(PASSWORD)).await;
    refused.error(StatusCode::TOO_MANY_REQUESTS, "throttled");
    assert_eq!(seconds(&refused), Some(60));
    // From another address the right password goes through.
    let changed = call("192.0.2.10", change(PASSWORD)).await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT, "{changed:?}");
}

tenure_store::on_both_backends! {
    super::Harness::on;
    the_current_password_of_a_password_change_is_throttled_like_a_sign_in,
    an_attacker_elsewhere_cannot_lock_the_owner_out,
    the_brake_paces_passwords_and_mails_one_notice_a_day,
    the_brake_on_an_unknown_name_answers_as_on_a_known_one,
    concurrent_wrong_passwords_tell_no_name_apart,
}
