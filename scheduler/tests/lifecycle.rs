//! The scheduler over a real SQLite store, with the clock in the test's hands: months pass in
//! milliseconds. Warning mails are read from the store's outbox, where the scheduler queues them
//! with their events (their delivery over real SMTP is tested end to end in the CLI tests).

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use tenure_domain::calendar;
use tenure_domain::decide::{Command, Ctx, Factor, Invite};
use tenure_domain::events::{Client, MfaRequirement, Org, Role};
use tenure_domain::{AccountEvent, AccountId, OrgId, Username};
use tenure_mail::Mail;
use tenure_scheduler::{DEFAULT_QUARANTINE, Scheduler, Summary};
use tenure_store::conformance::Backend;
use tenure_store::{Actor, KeyStore, Keys, Meta, Store, secrets};
use uuid::Uuid;

mod support;

use support::{Outbox, World, world};

fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
}

/// Checks one account's history against SPEC §5: every scheduled event exactly at its deadline
/// as computed from the last activity before it, each once, in order.
fn check_history(id: AccountId, history: &[(AccountEvent, String)], end: DateTime<Utc>) {
    let mut last_activity = None;
    let mut deactivated = false;
    let mut warned = std::collections::HashSet::new();
    for (event, actor) in history {
        let d = last_activity.map(calendar::deadlines);
        match event {
            AccountEvent::AccountInvited(e) => last_activity = Some(e.at),
            AccountEvent::SignedIn(e) => {
                assert!(!deactivated, "{id}: a sign-in while deactivated");
                last_activity = Some(e.at);
            }
            AccountEvent::Reactivated(e) => {
                deactivated = false;
                last_activity = Some(e.at);
            }
            AccountEvent::DeactivationWarningSent(e) => {
                let d = d.unwrap();
                assert_eq!((e.deadline, e.at), (d.deactivation, d.deactivation_warning), "{id}");
                assert!(warned.insert(e.deadline), "{id}: a second warning for {}", e.deadline);
            }
            AccountEvent::Deactivated(e) => {
                assert_eq!(e.at, d.unwrap().deactivation, "{id}");
                deactivated = true;
            }
            AccountEvent::DeletionWarningSent(e) => {
                let d = d.unwrap();
                assert_eq!((e.deadline, e.at), (d.deletion, d.deletion_warning), "{id}");
                assert!(warned.insert(e.deadline), "{id}: a second warning for {}", e.deadline);
            }
            AccountEvent::Deleted(e) => assert_eq!(e.at, d.unwrap().deletion, "{id}"),
            // Events that move no deadline.
            AccountEvent::InvitationResent(_)
            | AccountEvent::PasswordSet(_)
            | AccountEvent::MfaRequirementChanged(_)
            | AccountEvent::MfaEnrolled(_)
            | AccountEvent::MfaEnrollmentFailed(_)
            | AccountEvent::TermsAccepted(_)
            | AccountEvent::SignInFailed(_)
            | AccountEvent::EmailCodeIssued(_)
            | AccountEvent::ProfileUpdated(_)
            | AccountEvent::SecurityNoticeSent(_)
            | AccountEvent::PasswordResetRequested(_)
            | AccountEvent::RecoveryCodesIssued(_)
            | AccountEvent::RecoveryCodeUsed(_)
            | AccountEvent::MfaReset(_)
            | AccountEvent::AuditorRead(_)
            | AccountEvent::Authorized(_) => {}
        }
        if matches!(
            event,
            AccountEvent::DeactivationWarningSent(_)
                | AccountEvent::Deactivated(_)
                | AccountEvent::DeletionWarningSent(_)
                | AccountEvent::Deleted(_)
        ) {
            assert_eq!(actor, "scheduler", "{id}");
        }
    }
    // Nothing that was due by the end was left undone.
    let d = calendar::deadlines(last_activity.unwrap());
    let done = |step: &dyn Fn(&AccountEvent) -> bool| history.iter().any(|(e, _)| step(e));
    if end >= d.deletion {
        assert!(done(&|e| matches!(e, AccountEvent::Deleted(_))), "{id}: not deleted by {end}");
    } else if end >= d.deactivation {
        assert!(done(&|e| matches!(e, AccountEvent::Deactivated(_))), "{id}: not deactivated by {end}");
    } else if end >= d.deactivation_warning {
        assert!(
            done(&|e| matches!(e, AccountEvent::DeactivationWarningSent(w) if w.deadline == d.deactivation)),
            "{id}"
        );
    }
}

/// Runs the scheduler exactly at each due time and the sign-ins at theirs, in time order, up to
/// `end`.
async fn walk(
    w: &World,
    scheduler: &mut Scheduler<Store, Keys, Outbox>,
    mut sign_ins: Vec<(DateTime<Utc>, AccountId)>,
    end: DateTime<Utc>,
) -> Summary {
    sign_ins.sort();
    sign_ins.reverse();
    let mut total = Summary::default();
    loop {
        let due = scheduler.tracker().next_due().filter(|due| *due <= end);
        let sign_in = sign_ins.last().copied().filter(|(at, _)| *at <= end);
        match (due, sign_in) {
            (None, None) => return total,
            (Some(due), Some((at, id))) if at < due => {
                sign_ins.pop();
                w.sign_in(id, at).await;
                scheduler.catch_up().await.unwrap();
            }
            (None, Some((at, id))) => {
                sign_ins.pop();
                w.sign_in(id, at).await;
                scheduler.catch_up().await.unwrap();
            }
            (Some(due), _) => {
                let (summary, _) = scheduler.pass(due, false).await.unwrap();
                total.warned += summary.warned;
                total.deactivated += summary.deactivated;
                total.deleted += summary.deleted;
                total.released += summary.released;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]

    /// Thirteen months over many accounts with random sign-ins, starting on 31 August before a
    /// leap year (31 August + 6 months = 29 February).
    #[test]
    fn a_thirteen_month_walk_does_every_step_at_its_deadline_once_on_both_backends(
        offsets in proptest::collection::vec((0i64..60, proptest::collection::vec(0i64..400 * 24, 0..4)), 30..40),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        for backend in [Backend::Sqlite, Backend::Postgres] {
        runtime.block_on(async {
            let w = world(backend).await;
            let start = at(2027, 8, 31);
            let end = start + Duration::days(396);
            let mut accounts = Vec::new();
            let mut sign_ins = Vec::new();
            for (i, (day, hours)) in offsets.iter().enumerate() {
                // A few accounts start exactly on the 31st, the others on random days.
                let created = if i % 5 == 0 { start } else { start + Duration::days(*day) };
                let id = w.active(&format!("user{i}"), created).await;
                accounts.push(id);
                sign_ins.extend(hours.iter().map(|h| (created + Duration::hours(*h) + Duration::minutes(7), id)));
            }
            // One account never signs in: 31 August 2027 + 6 months = 29 February 2028.
            let clamped = w.active("clamped", start).await;
            accounts.push(clamped);
            let mut scheduler = w.scheduler().await;
            let summary = walk(&w, &mut scheduler, sign_ins, end).await;
            prop_assert!(summary.deactivated > 0, "{summary}");
            let warnings: usize = {
                let mut count = 0;
                for id in &accounts {
                    count += w.events(*id).await.iter().filter(|(e, _)| {
                        matches!(e, AccountEvent::DeactivationWarningSent(_) | AccountEvent::DeletionWarningSent(_))
                    }).count();
                }
                count
            };
            prop_assert_eq!(warnings, summary.warned);
            prop_assert_eq!(w.mails().await.len(), summary.warned, "one mail queued per warning, no more");
            for id in &accounts {
                check_history(*id, &w.events(*id).await, end);
            }
            let history = w.events(clamped).await;
            let deactivated = history.iter().find_map(|(e, _)| match e {
                AccountEvent::Deactivated(d) => Some(d.at),
                _ => None,
            });
            let end_of_29_february = Utc.with_ymd_and_hms(2028, 2, 29, 23, 59, 59).unwrap() + Duration::nanoseconds(999_999_999);
            prop_assert_eq!(deactivated, Some(end_of_29_february), "31 August + 6 months in a leap year, at the end of the day");
            Ok(())
        })?;
        }
    }
}

async fn a_sign_in_after_the_warning_cancels_the_deactivation_and_a_reactivation_restarts_the_clock(w: World) {
    let t0 = at(2026, 1, 15);
    let id = w.active("jdoe", t0).await;
    let mut scheduler = w.scheduler().await;
    let d = calendar::deadlines(t0);

    let (summary, _) = scheduler.pass(d.deactivation_warning, false).await.unwrap();
    assert_eq!(summary, Summary { warned: 1, ..Summary::default() });
    assert_eq!(scheduler.pass(d.deactivation_warning + Duration::days(1), false).await.unwrap().0, Summary::default());
    assert!(w.sign_in(id, d.deactivation - Duration::days(10)).await);
    assert_eq!(scheduler.pass(d.deactivation, false).await.unwrap().0, Summary::default(), "the sign-in moved it");

    let signed = d.deactivation - Duration::days(10);
    let d2 = calendar::deadlines(signed);
    assert_eq!(scheduler.pass(d2.deactivation_warning, false).await.unwrap().0.warned, 1);
    assert_eq!(scheduler.pass(d2.deactivation, false).await.unwrap().0.deactivated, 1);
    assert_eq!(*w.outbox.ended.lock().unwrap(), [id], "deactivation ends the sessions");
    let mails: Vec<Mail> = w.mails().await.into_iter().map(|(_, mail)| mail.unwrap()).collect();
    assert_eq!(mails.len(), 2, "one per deadline");
    let day = |at: DateTime<Utc>| at.format("%-d %B %Y").to_string();
    assert!(mails[0].text.contains(&day(d.deactivation)), "{}", mails[0].text);
    assert!(mails[1].text.contains(&day(d2.deactivation)), "{}", mails[1].text);
    assert_eq!(mails[1].to, "jdoe@example.com");
    assert!(mails[1].subject.contains("deactivat"), "{}", mails[1].subject);

    // An administrator reactivates: the clock starts again from then.
    let back = d2.deactivation + Duration::days(3);
    let admin = Meta::new(Actor::Admin(AccountId(Uuid::now_v7())));
    w.repo.execute(id, Command::Reactivate, &Ctx { now: back }, &admin).await.unwrap();
    let d3 = calendar::deadlines(back);
    assert_eq!(
        scheduler.pass(d3.deactivation_warning - Duration::seconds(1), false).await.unwrap().0,
        Summary::default()
    );
    assert_eq!(scheduler.pass(d3.deactivation_warning, false).await.unwrap().0.warned, 1);
    check_history(id, &w.events(id).await, d3.deactivation_warning);
}

async fn a_pass_far_ahead_takes_every_step_once_in_order_then_releases_the_username(w: World) {
    let t0 = at(2026, 3, 31);
    let ids = [w.active("amy", t0).await, w.active("bob", t0 + Duration::days(1)).await];
    let mut scheduler = w.scheduler().await;
    let later = t0 + Duration::days(800);
    let (plan, lines) = scheduler.pass(later, true).await.unwrap();
    assert_eq!(plan, Summary { warned: 4, deactivated: 2, deleted: 2, released: 0 }, "{lines:?}");
    assert_eq!(lines.len(), 8, "{lines:?}");
    assert_eq!(w.events(ids[0]).await.len(), 3, "a dry run writes nothing");

    let (summary, _) = scheduler.pass(later, false).await.unwrap();
    assert_eq!(summary, Summary { warned: 4, deactivated: 2, deleted: 2, released: 0 });
    for id in ids {
        let types: Vec<&str> = w.events(id).await.iter().map(|(e, _)| e.type_name()).collect();
        assert_eq!(
            types[3..],
            ["DeactivationWarningSent", "Deactivated", "DeletionWarningSent", "Deleted"],
            "each step once, in order"
        );
        assert!(w.repo.keys.get(id).await.unwrap().is_none(), "the key is destroyed");
    }
    assert_eq!(scheduler.pass(later + Duration::days(1), false).await.unwrap().0, Summary::default(), "nothing twice");
    // The usernames stay in quarantine for 180 days, then they are free again.
    let amy = Username::parse("amy").unwrap();
    let (_, token_digest) = secrets::new_token().unwrap();
    let again = |_: DateTime<Utc>| Invite {
        all_orgs: false,
        account_id: AccountId(Uuid::now_v7()),
        username: amy.clone(),
        org: Org { id: OrgId("acme".into()), name: "Acme".into(), wholesale: false },
        role: Role::User,
        mfa: MfaRequirement::None,
        email: "amy@example.com".into(),
        display_name: None,
        token_digest,
    };
    let operator = Meta::new(Actor::Operator("test".into()));
    let early = later + Duration::days(179);
    assert!(w.repo.invite(again(early), &Ctx { now: early }, &operator, vec![]).await.is_err(), "still in quarantine");
    let out = later + DEFAULT_QUARANTINE;
    assert_eq!(scheduler.pass(out, false).await.unwrap().0, Summary { released: 2, ..Summary::default() });
    w.repo.invite(again(out), &Ctx { now: out }, &operator, vec![]).await.unwrap();
}

async fn a_sign_in_racing_the_deactivation_never_both(w: World) {
    let t0 = at(2026, 5, 10);
    let mut ids = Vec::new();
    for i in 0..300 {
        ids.push(w.active(&format!("racer{i}"), t0).await);
    }
    let d = calendar::deadlines(t0);
    let mut scheduler = w.scheduler().await;
    scheduler.pass(d.deactivation_warning, false).await.unwrap();
    // At the deadline, every account signs in (a moment before, by its own clock) while the
    // scheduler deactivates them.
    let signers = ids.clone();
    let repo = w.repo.clone();
    let sign_ins = tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for id in signers {
            let repo = repo.clone();
            tasks.spawn(async move {
                let command = Command::SignIn {
                    factor: Factor::Password { correct: true },
                    client: Client { address: "203.0.113.1".into(), user_agent: "race".into() },
                };
                let ctx = Ctx { now: d.deactivation - Duration::microseconds(1) };
                repo.execute(id, command, &ctx, &Meta::new(Actor::User(id))).await
            });
        }
        tasks.join_all().await
    });
    let (summary, _) = scheduler.pass(d.deactivation, false).await.unwrap();
    sign_ins.await.unwrap();
    let mut signed = 0;
    for id in &ids {
        let history = w.events(*id).await;
        let signed_in = history.iter().any(|(e, _)| matches!(e, AccountEvent::SignedIn(_)));
        let deactivated = history.iter().any(|(e, _)| matches!(e, AccountEvent::Deactivated(_)));
        assert!(signed_in != deactivated, "{id}: exactly one of them wins");
        signed += usize::from(signed_in);
    }
    assert_eq!(summary.deactivated + signed, ids.len());
}

async fn two_schedulers_at_once_take_each_step_once(w: World) {
    let t0 = at(2026, 2, 1);
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(w.active(&format!("twin{i}"), t0 + Duration::hours(i)).await);
    }
    let (mut a, mut b) = (w.scheduler().await, w.scheduler().await);
    let later = t0 + Duration::days(800);
    let (ra, rb) = tokio::join!(a.pass(later, false), b.pass(later, false));
    let (ra, rb) = (ra.unwrap().0, rb.unwrap().0);
    assert_eq!(ra.deactivated + rb.deactivated, ids.len(), "{ra} / {rb}");
    assert_eq!(ra.deleted + rb.deleted, ids.len(), "{ra} / {rb}");
    for id in ids {
        let types: Vec<&str> = w.events(id).await.iter().map(|(e, _)| e.type_name()).collect();
        assert_eq!(types[3..], ["DeactivationWarningSent", "Deactivated", "DeletionWarningSent", "Deleted"]);
    }
    assert_eq!(w.mails().await.len(), 120, "one mail per warning");
}

async fn a_warning_and_its_mail_are_one_write_and_a_restart_queues_nothing_again(w: World) {
    let t0 = at(2026, 4, 1);
    let (quiet, other) = (w.active("quiet", t0).await, w.active("other", t0).await);
    let d = calendar::deadlines(t0);
    let mut scheduler = w.scheduler().await;
    assert_eq!(scheduler.pass(d.deactivation_warning, false).await.unwrap().0.warned, 2);
    drop(scheduler);
    // Restarted (nothing of the scheduler's own survives a restart): nothing is queued again.
    let mut restarted = w.scheduler().await;
    assert_eq!(restarted.pass(d.deactivation_warning + Duration::days(2), false).await.unwrap().0, Summary::default());
    let mut accounts: Vec<AccountId> = w.mails().await.into_iter().map(|(account, _)| account).collect();
    accounts.sort_by_key(|a| a.0);
    let mut expected = vec![quiet, other];
    expected.sort_by_key(|a| a.0);
    assert_eq!(accounts, expected, "one warning mail per account, queued with the warning");
}

tenure_store::on_both_backends! {
    super::world;
    a_sign_in_after_the_warning_cancels_the_deactivation_and_a_reactivation_restarts_the_clock,
    a_pass_far_ahead_takes_every_step_once_in_order_then_releases_the_username,
    a_sign_in_racing_the_deactivation_never_both,
    two_schedulers_at_once_take_each_step_once,
    a_warning_and_its_mail_are_one_write_and_a_restart_queues_nothing_again,
}
