//! The mail outbox on both backends: mail is queued if and only if its events are stored, each
//! mail is claimed by one worker at a time, a claim that runs out (a worker killed mid-send) lets
//! another send it again, counted, and a failure waits for its retry time.

use chrono::{Duration, TimeZone, Utc};
use tenure_domain::decide::{Command, Ctx, Invite};
use tenure_domain::events::{MfaRequirement, Org, Role};
use tenure_domain::{AccountId, OrgId, SecretDigest, Username};
use tenure_store::conformance::{Backend, TestLocation};
use tenure_store::outbox::{Letter, MailState, Outbox};
use tenure_store::sqlite::Open;
use tenure_store::{Accounts, Actor, ExecuteError, KeyStore, Keys, Meta, Store};
use uuid::Uuid;

struct World {
    _place: TestLocation,
    repo: Accounts<Store, Keys>,
    outbox: Outbox,
}

async fn world(backend: Backend) -> World {
    let place = TestLocation::create(backend).await;
    let (store, keys) = place.location.open(Open::CreateIfMissing).await.unwrap();
    let outbox = Outbox::of(&store).unwrap();
    World { _place: place, repo: Accounts::new(store, keys), outbox }
}

fn t0() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0).unwrap()
}

fn letter(kind: &'static str, body: &str) -> Letter {
    Letter { id: Uuid::now_v7(), kind, body: body.as_bytes().to_vec() }
}

fn meta() -> Meta {
    Meta::new(Actor::Operator("test".into()))
}

impl World {
    async fn invite(&self, name: &str, mail: Vec<Letter>) -> Result<AccountId, ExecuteError> {
        let id = AccountId(Uuid::now_v7());
        let invite = Invite {
            all_orgs: false,
            account_id: id,
            username: Username::parse(name).unwrap(),
            org: Org { id: OrgId("acme".into()), name: "Acme".into(), wholesale: false },
            role: Role::User,
            mfa: MfaRequirement::None,
            email: format!("{name}@example.com"),
            display_name: None,
            token_digest: SecretDigest([3; 32]),
        };
        self.repo.invite(invite, &Ctx { now: t0() }, &meta(), mail).await.map(|_| id)
    }
}

async fn mail_is_queued_with_its_events_and_only_then(w: World) {
    let first = letter("invitation", "to jdoe");
    let id = w.invite("jdoe", vec![first.clone()]).await.unwrap();
    assert_eq!(w.outbox.state(first.id).await.unwrap(), Some(MailState::Queued { failures: 0 }));
    // The name is taken: no events, so no mail either.
    let refused = letter("invitation", "to the second jdoe");
    assert!(w.invite("jdoe", vec![refused.clone()]).await.is_err());
    assert_eq!(w.outbox.state(refused.id).await.unwrap(), None);
    // A command the decider refuses queues nothing; one it accepts queues its mail.
    let (rejected, accepted) = (letter("invitation", "again"), letter("invitation", "resent"));
    let resend = |token| Command::ResendInvitation { token_digest: SecretDigest([token; 32]) };
    let ctx = Ctx { now: t0() + Duration::minutes(1) };
    w.repo.execute_mailing(id, resend(4), &ctx, &meta(), |_, _| vec![accepted.clone()]).await.unwrap();
    w.repo.execute_mailing(id, Command::Reactivate, &ctx, &meta(), |_, _| vec![rejected.clone()]).await.unwrap_err();
    assert_eq!(w.outbox.state(accepted.id).await.unwrap(), Some(MailState::Queued { failures: 0 }));
    assert_eq!(w.outbox.state(rejected.id).await.unwrap(), None);
    assert_eq!(
        w.outbox.latest(id.0, "invitation").await.unwrap(),
        Some((accepted.id, MailState::Queued { failures: 0 }))
    );

    // Sealed with the account's key and bound to the mail and the account.
    let claimed = w.outbox.claim(t0(), Duration::minutes(2), 10).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let key = w.repo.keys.get(id).await.unwrap().unwrap();
    let sealed = claimed.iter().find(|c| c.id == first.id).unwrap();
    assert!(!String::from_utf8_lossy(&sealed.sealed).contains("to jdoe"), "not in plaintext at rest");
    let context = tenure_store::outbox::context(first.id, id.0);
    assert_eq!(key.open(&context, &sealed.sealed).unwrap(), b"to jdoe");
    assert!(key.open(&tenure_store::outbox::context(accepted.id, id.0), &sealed.sealed).is_none());
}

async fn a_claim_holds_a_mail_until_it_is_sent_or_the_claim_runs_out(w: World) {
    let mail = letter("code", "123456");
    w.invite("claimed", vec![mail.clone()]).await.unwrap();
    let now = t0();
    let first = w.outbox.claim(now, Duration::minutes(2), 10).await.unwrap();
    assert_eq!(first.iter().map(|c| (c.id, c.attempts)).collect::<Vec<_>>(), [(mail.id, 1)]);
    // Another worker finds nothing while the claim holds.
    assert!(w.outbox.claim(now + Duration::seconds(30), Duration::minutes(2), 10).await.unwrap().is_empty());
    // The first worker was killed after the server took the mail: the claim runs out and the
    // mail goes again, counted as a second attempt.
    let again = w.outbox.claim(now + Duration::minutes(3), Duration::minutes(2), 10).await.unwrap();
    assert_eq!(again.iter().map(|c| (c.id, c.attempts)).collect::<Vec<_>>(), [(mail.id, 2)]);
    // The first worker's late word no longer counts: the mail is the second claim's now.
    w.outbox.failed(&first[0], now + Duration::minutes(4), "late").await.unwrap();
    w.outbox.sent(&first[0], now + Duration::minutes(4)).await.unwrap();
    assert_eq!(w.outbox.state(mail.id).await.unwrap(), Some(MailState::Queued { failures: 0 }));
    assert!(w.outbox.claim(now + Duration::minutes(4), Duration::minutes(2), 10).await.unwrap().is_empty());
    w.outbox.sent(&again[0], now + Duration::minutes(3)).await.unwrap();
    assert_eq!(w.outbox.state(mail.id).await.unwrap(), Some(MailState::Sent));
    let status = w.outbox.status().await.unwrap();
    assert_eq!((status.queued, status.sent, status.sent_again), (0, 1, 1));
    assert!(w.outbox.claim(now + Duration::hours(1), Duration::minutes(2), 10).await.unwrap().is_empty());
    // Sent mail is forgotten after a while.
    assert_eq!(w.outbox.prune(now + Duration::days(31)).await.unwrap(), 1);
    assert_eq!(w.outbox.state(mail.id).await.unwrap(), None);
}

async fn a_refused_mail_waits_for_its_retry_and_a_newer_one_replaces_it(w: World) {
    let old = letter("code", "111111");
    let id = w.invite("refused", vec![old.clone()]).await.unwrap();
    let now = t0();
    let claimed = w.outbox.claim(now, Duration::minutes(2), 10).await.unwrap();
    w.outbox.failed(&claimed[0], now + Duration::seconds(4), "421 try later").await.unwrap();
    assert_eq!(w.outbox.state(old.id).await.unwrap(), Some(MailState::Queued { failures: 1 }));
    assert!(w.outbox.claim(now + Duration::seconds(3), Duration::minutes(2), 10).await.unwrap().is_empty());
    assert_eq!(w.outbox.next_due().await.unwrap(), Some(now + Duration::seconds(4)));
    let status = w.outbox.status().await.unwrap();
    assert_eq!((status.queued, status.failing_count), (1, 1));
    assert_eq!(status.failing[0].last_error, "421 try later");
    assert_eq!(status.oldest_queued, Some(now));

    let newer = letter("code", "222222");
    let ctx = Ctx { now: now + Duration::seconds(5) };
    let command = Command::ResendInvitation { token_digest: SecretDigest([9; 32]) };
    w.repo.execute_mailing(id, command, &ctx, &meta(), |_, _| vec![newer.clone()]).await.unwrap();
    w.outbox.supersede(id.0, "code", newer.id).await.unwrap();
    assert_eq!(w.outbox.state(old.id).await.unwrap(), Some(MailState::Dropped));
    let due = w.outbox.claim(now + Duration::seconds(6), Duration::minutes(2), 10).await.unwrap();
    assert_eq!(due.iter().map(|c| c.id).collect::<Vec<_>>(), [newer.id], "only the newer code goes");
    // Superseding by an older code (two requests racing) leaves the newer one alone.
    w.outbox.supersede(id.0, "code", old.id).await.unwrap();
    assert_eq!(w.outbox.state(newer.id).await.unwrap(), Some(MailState::Queued { failures: 0 }));
    // One mail claimed by id, for a command that sends only its own.
    let own = letter("code", "333333");
    let command = Command::ResendInvitation { token_digest: SecretDigest([10; 32]) };
    w.repo.execute_mailing(id, command, &ctx, &meta(), |_, _| vec![own.clone()]).await.unwrap();
    let one = w.outbox.claim_one(own.id, now + Duration::seconds(7), Duration::minutes(2)).await.unwrap();
    assert_eq!(one.map(|c| c.id), Some(own.id));
    assert!(w.outbox.claim_one(own.id, now + Duration::seconds(8), Duration::minutes(2)).await.unwrap().is_none());
    // Refused for good: dropped, and counted apart from erased accounts and replaced codes.
    w.outbox.dropped(own.id, "refused for good: 550 no such user").await.unwrap();
    let status = w.outbox.status().await.unwrap();
    assert_eq!((status.dropped, status.refused), (2, 1));
}

async fn two_workers_claiming_at_once_never_take_the_same_mail(w: World) {
    let mut ids = Vec::new();
    for i in 0..40 {
        let mail = letter("invitation", "hello");
        ids.push(mail.id);
        w.invite(&format!("user{i}"), vec![mail]).await.unwrap();
    }
    let (a, b) = (w.outbox.clone(), w.outbox.clone());
    let claim = |outbox: Outbox| async move {
        let mut got = Vec::new();
        loop {
            let claimed = outbox.claim(t0(), Duration::minutes(2), 3).await.unwrap();
            if claimed.is_empty() {
                return got;
            }
            got.extend(claimed.into_iter().map(|c| c.id));
        }
    };
    let (mut got_a, got_b) = tokio::join!(claim(a), claim(b));
    got_a.extend(got_b);
    got_a.sort();
    ids.sort();
    assert_eq!(got_a, ids, "every mail claimed once");
}

tenure_store::on_both_backends! {
    super::world;
    mail_is_queued_with_its_events_and_only_then,
    a_claim_holds_a_mail_until_it_is_sent_or_the_claim_runs_out,
    a_refused_mail_waits_for_its_retry_and_a_newer_one_replaces_it,
    two_workers_claiming_at_once_never_take_the_same_mail,
}
