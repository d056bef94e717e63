//! The auditor's API and pages (SPEC §12), driven through the router on both backends: who may
//! read, whose histories, what a history and a state say, that heads and proofs check out with
//! the public key alone (also for an erased account), and that every read is recorded.

mod support;

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Duration;
use serde_json::Value;
use support::Harness;
use tenure_domain::events::Role;
use tenure_domain::{AccountId, Clock};
use tenure_store::EventStore;
use tenure_store::merkle::heads::{PublicKey, SignedHead};
use tenure_store::merkle::{Hash, leaf_input, proofs};

fn hash(text: &str) -> Hash {
    STANDARD.decode(text).unwrap().try_into().unwrap()
}

fn hex_hash(text: &str) -> Hash {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn hashes(list: &Value) -> Vec<Hash> {
    list.as_array().unwrap().iter().map(|h| hash(h.as_str().unwrap())).collect()
}

const ENDPOINTS: [&str; 7] = [
    "/api/v1/audit/head",
    "/api/v1/audit/public-key",
    "/api/v1/audit/proof/inclusion?position=1",
    "/api/v1/audit/proof/consistency?first=1&second=2",
    "/api/v1/audit/accounts?query=a",
    "/api/v1/audit/accounts/{id}/events",
    "/api/v1/audit/accounts/{id}/state",
];

async fn only_auditors_read_and_only_their_orgs_accounts(h: Harness) {
    let (_, admin, _) = h.signed_in("boss", Role::Admin, "acme").await;
    let (worker, user, _) = h.signed_in("worker", Role::User, "acme").await;
    let (_, inspector, _) = h.signed_in("inspector", Role::Auditor, "acme").await;
    let (_, rival, _) = h.signed_in("rival", Role::Auditor, "beta").await;
    let (outsider, _, _) = h.signed_in("outsider", Role::User, "beta").await;
    let (_, everyone, _) = h.signed_in_auditor_of_all_orgs("overseer").await;

    for endpoint in ENDPOINTS {
        let uri = endpoint.replace("{id}", &worker.to_string());
        h.call("GET", &uri, None, None, None).await.error(StatusCode::UNAUTHORIZED, "unauthenticated");
        for cookie in [&user, &admin] {
            h.call("GET", &uri, None, Some(cookie), None).await.error(StatusCode::FORBIDDEN, "forbidden");
        }
        let read = h.call("GET", &uri, None, Some(&inspector), None).await;
        assert_eq!(read.status, StatusCode::OK, "{uri}: {read:?}");
    }

    // Another org's auditor: the account is not found, and a search finds nothing of acme's.
    for uri in [format!("/api/v1/audit/accounts/{worker}/events"), format!("/api/v1/audit/accounts/{worker}/state")] {
        h.call("GET", &uri, None, Some(&rival), None).await.error(StatusCode::NOT_FOUND, "not_found");
        let seen = h.call("GET", &uri, None, Some(&everyone), None).await;
        assert_eq!(seen.status, StatusCode::OK, "an auditor of every org reads acme's: {seen:?}");
    }
    let unknown = format!("/api/v1/audit/accounts/{}/events", AccountId(uuid::Uuid::now_v7()));
    h.call("GET", &unknown, None, Some(&inspector), None).await.error(StatusCode::NOT_FOUND, "not_found");
    h.call("GET", "/api/v1/audit/accounts/not-an-id/events", None, Some(&inspector), None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let names = |reply: &support::Reply| -> Vec<String> {
        reply.json.as_array().unwrap().iter().map(|a| a["username"].as_str().unwrap().to_string()).collect()
    };
    let found = h.call("GET", "/api/v1/audit/accounts?query=o", None, Some(&rival), None).await;
    assert_eq!(names(&found), ["outsider"], "beta's auditor finds beta's accounts only");
    let found = h.call("GET", "/api/v1/audit/accounts?query=O", None, Some(&inspector), None).await;
    assert_eq!(names(&found), ["boss", "inspector", "worker"]);
    let found = h.call("GET", "/api/v1/audit/accounts?query=o", None, Some(&everyone), None).await;
    assert_eq!(names(&found), ["boss", "inspector", "outsider", "overseer", "worker"]);
    let outsider_events = format!("/api/v1/audit/accounts/{outsider}/events");
    h.call("GET", &outsider_events, None, Some(&inspector), None).await.error(StatusCode::NOT_FOUND, "not_found");

    // The tabs: Audit for auditors only.
    for (cookie, shown) in [(&inspector, true), (&user, false), (&admin, false)] {
        let dashboard = h.page("/dashboard", Some(cookie)).await;
        assert_eq!(dashboard.text.contains("id=\"tab-audit\""), shown, "{}", dashboard.text);
    }
    assert_eq!(h.page("/audit", Some(&user)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(h.page("/audit", Some(&admin)).await.status, StatusCode::FORBIDDEN);
    let other = h.page(&format!("/audit/accounts/{worker}"), Some(&rival)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
}

async fn a_deleted_accounts_history_reads_erased_and_still_verifies(h: Harness) {
    let (_, inspector, _) = h.signed_in("inspector", Role::Auditor, "acme").await;
    let (gone, _, _) = h.signed_in("gone", Role::User, "acme").await;
    h.delete(gone).await;
    h.caught_up().await;
    let found = h.call("GET", "/api/v1/audit/accounts?query=gone", None, Some(&inspector), None).await;
    assert_eq!(found.json[0]["state"], "deleted", "{found:?}");
    assert_eq!(found.json[0]["account_id"], gone.to_string());

    let history = h.call("GET", &format!("/api/v1/audit/accounts/{gone}/events"), None, Some(&inspector), None).await;
    assert_eq!(history.status, StatusCode::OK, "{history:?}");
    let events = history.json["events"].as_array().unwrap();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types.first(), Some(&"AccountInvited"));
    assert_eq!(types.last(), Some(&"Deleted"));
    assert_eq!(history.json["personal_data"], "erased");
    assert_eq!(events[0]["data"]["personal"], "erased");
    assert_eq!(events[0]["data"]["username"], "gone", "the username is no personal field");
    let verification = &history.json["verification"];
    assert_eq!(verification["verified"], true, "{verification}");
    assert_eq!(verification["events_proven"], events.len());

    // Each event's inclusion, checked here with the public key alone.
    let key = h.call("GET", "/api/v1/audit/public-key", None, Some(&inspector), None).await;
    let key = PublicKey::from_raw(&STANDARD.decode(key.json["public_key"].as_str().unwrap()).unwrap()).unwrap();
    let head: SignedHead = serde_json::from_value(verification["head"].clone()).unwrap();
    head.verify(&key).unwrap();
    for event in events {
        let position = event["position"].as_u64().unwrap();
        let uri = format!("/api/v1/audit/proof/inclusion?position={position}&tree_size={}", head.tree_size);
        let proof = h.call("GET", &uri, None, Some(&inspector), None).await;
        let input = leaf_input(
            position,
            event["stream"].as_str().unwrap(),
            event["version"].as_u64().unwrap(),
            &hex_hash(event["hash"].as_str().unwrap()),
        );
        let path = hashes(&proof.json["audit_path"]);
        proofs::verify_inclusion(&input, position - 1, head.tree_size, &head.root_hash, &path).unwrap();
        let wrong = leaf_input(position, "account-forged", 1, &[0; 32]);
        assert!(proofs::verify_inclusion(&wrong, position - 1, head.tree_size, &head.root_hash, &path).is_err());
    }
}

async fn the_state_as_of_a_time_and_consistent_heads(h: Harness) {
    let (_, inspector, _) = h.signed_in("inspector", Role::Auditor, "acme").await;
    let before = h.clock.now();
    h.clock.advance(Duration::minutes(2));
    let (worker, _, _) = h.signed_in("worker", Role::User, "acme").await;
    let invited = h.clock.now();
    h.clock.advance(Duration::minutes(2));
    let state = |as_of: String| {
        let uri = format!("/api/v1/audit/accounts/{worker}/state?as_of={}", as_of.replace('+', "%2B"));
        let cookie = inspector.clone();
        let h = &h;
        async move { h.call("GET", &uri, None, Some(&cookie), None).await }
    };
    let then = state(invited.to_rfc3339()).await;
    assert_eq!(then.json["status"], "active", "{then:?}");
    assert_eq!(then.json["email"], "worker@example.com", "personal fields are shown to the auditor");
    // The time an event is shown at (milliseconds) includes it, though it is kept in microseconds.
    let events = h.call("GET", &format!("/api/v1/audit/accounts/{worker}/events"), None, Some(&inspector), None).await;
    let signed_in = events.json["events"].as_array().unwrap().iter().find(|e| e["type"] == "SignedIn").unwrap();
    let shown = state(signed_in["recorded_at"].as_str().unwrap().to_string()).await;
    assert!(shown.json["last_sign_in"].is_string(), "{shown:?}");
    let earlier = state(before.to_rfc3339()).await;
    assert_eq!(earlier.json["events"], 0, "{earlier:?}");
    for bad in ["yesterday", "2026-12-03T06:00:60Z", "-2026-01-01", "0000-01-01"] {
        state(bad.into()).await.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    }
    let today = state(invited.format("%Y-%m-%d").to_string()).await;
    assert_eq!(today.status, StatusCode::OK, "a date reads as its end");

    let first: SignedHead =
        serde_json::from_value(h.call("GET", "/api/v1/audit/head", None, Some(&inspector), None).await.json).unwrap();
    let second: SignedHead =
        serde_json::from_value(h.call("GET", "/api/v1/audit/head", None, Some(&inspector), None).await.json).unwrap();
    assert!(second.tree_size > first.tree_size, "the read of the first head is itself a new event");
    let uri = format!("/api/v1/audit/proof/consistency?first={}&second={}", first.tree_size, second.tree_size);
    let proof = h.call("GET", &uri, None, Some(&inspector), None).await;
    let path = hashes(&proof.json["proof"]);
    proofs::verify_consistency((first.tree_size, &first.root_hash), (second.tree_size, &second.root_hash), &path)
        .unwrap();

    for (uri, field) in [
        ("/api/v1/audit/proof/inclusion?position=0", "position"),
        ("/api/v1/audit/proof/inclusion?position=abc", "position"),
        ("/api/v1/audit/proof/inclusion", "position"),
        ("/api/v1/audit/proof/inclusion?position=1&tree_size=999999", "tree_size"),
        ("/api/v1/audit/proof/inclusion?position=999999&tree_size=2", "position"),
        ("/api/v1/audit/proof/consistency?first=3&second=2", "first"),
        ("/api/v1/audit/proof/consistency?first=0&second=2", "first"),
        ("/api/v1/audit/proof/inclusion?position=1&tree_size=0", "tree_size"),
        ("/api/v1/audit/proof/consistency?first=1&second=999999", "second"),
        ("/api/v1/audit/proof/consistency?first=1", "second"),
    ] {
        let refused = h.call("GET", uri, None, Some(&inspector), None).await;
        refused.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert_eq!(refused.json["field"], field, "{uri}");
    }
}

async fn every_auditor_read_is_an_event_on_the_auditors_stream(h: Harness) {
    let (inspector_id, inspector, _) = h.signed_in("inspector", Role::Auditor, "acme").await;
    let (worker, _, _) = h.signed_in("worker", Role::User, "acme").await;
    let (_, user, _) = h.signed_in("plain", Role::User, "acme").await;
    let reads = [
        "/api/v1/audit/accounts?query=work".to_string(),
        format!("/api/v1/audit/accounts/{worker}/events"),
        format!("/api/v1/audit/accounts/{worker}/state"),
        "/api/v1/audit/head".to_string(),
    ];
    for uri in &reads {
        assert_eq!(h.call("GET", uri, None, Some(&inspector), None).await.status, StatusCode::OK);
    }
    // A refused read by a plain user records nothing anywhere.
    let head_before = h.app.accounts.store.head().await.unwrap();
    h.call("GET", &reads[1], None, Some(&user), None).await.error(StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(h.app.accounts.store.head().await.unwrap(), head_before);

    let stream = h.app.accounts.store.read_stream(&inspector_id.stream(), 1).await.unwrap();
    let recorded: Vec<(String, Option<String>, String)> = stream
        .iter()
        .filter(|e| e.event_type == "AuditorRead")
        .map(|e| {
            let data: Value = serde_json::from_slice(&e.data).unwrap();
            (data["what"].as_str().unwrap().into(), data["subject"].as_str().map(String::from), e.actor.clone())
        })
        .collect();
    let me = format!("user:{inspector_id}");
    let worker = Some(worker.to_string());
    assert_eq!(
        recorded,
        [
            ("search".to_string(), None, me.clone()),
            ("events".to_string(), worker.clone(), me.clone()),
            ("state".to_string(), worker.clone(), me.clone()),
            ("head".to_string(), None, me),
        ]
    );
    let search: Value =
        serde_json::from_slice(&stream.iter().find(|e| e.event_type == "AuditorRead").unwrap().data).unwrap();
    assert_eq!(search["found"], serde_json::json!([worker.clone().unwrap()]), "a search records what it found");
    // A read of an id no account of the org has is recorded as refused.
    let (outsider, _, _) = h.signed_in("outsider", Role::User, "beta").await;
    let refused = format!("/api/v1/audit/accounts/{outsider}/events");
    h.call("GET", &refused, None, Some(&inspector), None).await.error(StatusCode::NOT_FOUND, "not_found");
    let last = h.app.accounts.store.read_stream(&inspector_id.stream(), 1).await.unwrap().pop().unwrap();
    let last: Value = serde_json::from_slice(&last.data).unwrap();
    assert_eq!(
        (last["subject"].as_str(), last["refused"].as_bool()),
        (Some(outsider.to_string().as_str()), Some(true))
    );
    // A page that cannot be shown records both of its reads as refused.
    let page = h.page(&format!("/audit/accounts/{}?as_of=someday", worker.clone().unwrap()), Some(&inspector)).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let stream = h.app.accounts.store.read_stream(&inspector_id.stream(), 1).await.unwrap();
    let last_two: Vec<Value> =
        stream[stream.len() - 2..].iter().map(|e| serde_json::from_slice(&e.data).unwrap()).collect();
    assert!(last_two.iter().all(|r| r["refused"] == true), "{last_two:?}");
    // The history says so in words.
    let own =
        h.call("GET", &format!("/api/v1/audit/accounts/{inspector_id}/events"), None, Some(&inspector), None).await;
    assert!(own.json["events"].as_array().unwrap().iter().any(|e| e["type"] == "AuditorRead"));
}

/// One auditor's reads in parallel, through two gateways: each is answered and recorded, and the
/// heads signed meanwhile stay one growing log.
async fn parallel_reads_through_two_gateways_are_all_answered_and_recorded(h: Harness) {
    let (inspector_id, inspector, _) = h.signed_in("inspector", Role::Auditor, "acme").await;
    let (worker, _, _) = h.signed_in("worker", Role::User, "acme").await;
    let other = h.second_gateway().await;
    let uris = [format!("/api/v1/audit/accounts/{worker}/events"), "/api/v1/audit/head".to_string()];
    let before = h.app.accounts.store.read_stream(&inspector_id.stream(), 1).await.unwrap().len();
    let h = &h;
    let calls = (0..24).map(|n| {
        let (app, uri, cookie) = (if n % 2 == 0 { &h.app } else { &other }, &uris[n % 4 / 2], &inspector);
        async move { h.call_via(app, None, "GET", uri, None, Some(cookie), None).await }
    });
    for reply in futures_util::future::join_all(calls).await {
        assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
    }
    let after = h.app.accounts.store.read_stream(&inspector_id.stream(), 1).await.unwrap().len();
    assert_eq!(after - before, 24, "every read recorded once");
    let heads = h.app.accounts.store.signed_heads(tenure_store::audit_log::Heads::All).await.unwrap();
    for pair in heads.windows(2) {
        assert!(pair[0].tree_size < pair[1].tree_size, "{heads:?}");
    }
}

/// Secrets and digests never leave in a history; an operator's auditor is read only by auditors
/// of every org, since its reads name every org's accounts.
async fn digests_are_redacted_and_an_operators_auditor_is_no_orgs_to_read(h: Harness) {
    let (_, inspector, _) = h.signed_in("inspector", Role::Auditor, "acme").await;
    let (overseer, everyone, _) = h.signed_in_auditor_of_all_orgs("overseer").await;
    let (worker, _, _) = h.signed_in("worker", Role::User, "acme").await;
    let history = h.call("GET", &format!("/api/v1/audit/accounts/{worker}/events"), None, Some(&everyone), None).await;
    let invited = &history.json["events"][0]["data"];
    assert_eq!(invited["invitation"]["token_digest"], "redacted", "{invited}");
    let password = history.json["events"].as_array().unwrap().iter().find(|e| e["type"] == "PasswordSet").unwrap();
    assert_eq!(password["data"]["personal"]["password_hash"], "redacted");
    // Not even named to an auditor of its own org.
    let (_, ops, _) = h.signed_in("opsaud", Role::Auditor, "ops").await;
    let found = h.call("GET", "/api/v1/audit/accounts?query=o", None, Some(&ops), None).await;
    let names: Vec<&str> = found.json.as_array().unwrap().iter().map(|a| a["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["opsaud"], "{found:?}");
    let found = h.call("GET", "/api/v1/audit/accounts?query=overseer", None, Some(&everyone), None).await;
    assert_eq!(found.json[0]["username"], "overseer");
    let of_overseer = format!("/api/v1/audit/accounts/{overseer}/events");
    h.call("GET", &of_overseer, None, Some(&inspector), None).await.error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(h.call("GET", &of_overseer, None, Some(&everyone), None).await.status, StatusCode::OK);
}

tenure_store::on_both_backends! {
    super::Harness::on;
    only_auditors_read_and_only_their_orgs_accounts,
    a_deleted_accounts_history_reads_erased_and_still_verifies,
    the_state_as_of_a_time_and_consistent_heads,
    every_auditor_read_is_an_event_on_the_auditors_stream,
    parallel_reads_through_two_gateways_are_all_answered_and_recorded,
    digests_are_redacted_and_an_operators_auditor_is_no_orgs_to_read,
}
