//! A rebuilt projection equals the incrementally built one, for any history.

mod common;

use chrono::{DateTime, Duration, Utc};
use common::*;
use proptest::prelude::*;
use tenure_domain::AccountId;
use tenure_domain::OrgId;
use tenure_domain::decide::{Command, Factor};
use tenure_domain::events::{Client, Profile, Role};
use tenure_domain::org::OrgCommand;
use tenure_projections::{ALL, catch_up, rebuild};
use tenure_store::EventStore;

#[derive(Debug, Clone)]
enum Op {
    Invite(usize),
    Onboard(usize),
    SignIn(usize, bool),
    EditProfile(usize),
    Deactivate(usize),
    Reactivate(usize),
    Delete(usize),
    Wait(i64),
    OpenTicket(u8),
    CloseTicket(u8),
    CatchUp,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize).prop_map(Op::Invite),
        (0..4usize).prop_map(Op::Onboard),
        ((0..4usize), any::<bool>()).prop_map(|(n, ok)| Op::SignIn(n, ok)),
        (0..4usize).prop_map(Op::EditProfile),
        (0..4usize).prop_map(Op::Deactivate),
        (0..4usize).prop_map(Op::Reactivate),
        (0..4usize).prop_map(Op::Delete),
        (1..200i64).prop_map(Op::Wait),
        (0..3u8).prop_map(Op::OpenTicket),
        (0..3u8).prop_map(Op::CloseTicket),
        Just(Op::CatchUp),
    ]
}

async fn play(backend: Backend, ops: Vec<Op>) {
    let w = world(backend).await;
    let repo = &w.repo;
    let incremental = w.db("projections.db").await;
    let mut ids: Vec<Option<AccountId>> = vec![None; 4];
    let mut now: DateTime<Utc> = t0();
    let client = Client { address: "192.0.2.1".into(), user_agent: "proptest".into() };
    let acme = OrgId("acme".into());
    for op in ops {
        now += Duration::minutes(1);
        let account = |n: usize| ids[n];
        // Refusals (a sign-in before onboarding, a second deletion, ...) are part of any history.
        let _ = match op {
            Op::Invite(n) => {
                if ids[n].is_none() {
                    ids[n] = Some(
                        invite(repo, &format!("user{n}"), if n % 2 == 0 { "acme" } else { "beta" }, Role::User, now)
                            .await,
                    );
                }
                Ok(vec![])
            }
            Op::Onboard(n) => {
                if let Some(id) = account(n) {
                    let token = token_for(&format!("user{n}"));
                    let via = tenure_domain::decide::PasswordVia::Invitation { token_digest: token };
                    let _ = repo
                        .execute(id, Command::SetPassword { password_hash: "$h".into(), via }, &ctx(now), &meta())
                        .await;
                    let _ = repo
                        .execute(id, Command::AcceptTerms { version: 1, invitation: Some(token) }, &ctx(now), &meta())
                        .await;
                }
                Ok(vec![])
            }
            Op::SignIn(n, correct) => match account(n) {
                Some(id) => {
                    let command = Command::SignIn { factor: Factor::Password { correct }, client: client.clone() };
                    repo.execute(id, command, &ctx(now), &meta()).await
                }
                None => Ok(vec![]),
            },
            Op::EditProfile(n) => match account(n) {
                Some(id) => {
                    let profile = Profile { display_name: Some(format!("At {now}")), phone: None, address: None };
                    repo.execute(id, Command::UpdateProfile { profile }, &ctx(now), &meta()).await
                }
                None => Ok(vec![]),
            },
            Op::Deactivate(n) | Op::Reactivate(n) | Op::Delete(n) => match account(n) {
                Some(id) => {
                    let command = match op {
                        Op::Deactivate(_) => Command::Deactivate,
                        Op::Reactivate(_) => Command::Reactivate,
                        _ => Command::Delete,
                    };
                    repo.execute(id, command, &ctx(now), &meta()).await
                }
                None => Ok(vec![]),
            },
            Op::Wait(days) => {
                now += Duration::days(days);
                Ok(vec![])
            }
            Op::OpenTicket(t) | Op::CloseTicket(t) => {
                let ticket_id = format!("T-{t}");
                let command = match op {
                    Op::OpenTicket(_) => OrgCommand::OpenTicket { ticket_id, title: format!("Ticket {t}") },
                    _ => OrgCommand::CloseTicket { ticket_id },
                };
                repo.execute_org(&acme, command, &ctx(now), &meta()).await.map(|_| vec![])
            }
            Op::CatchUp => {
                for projection in ALL {
                    catch_up(&repo.store, &incremental, projection).await.unwrap();
                }
                Ok(vec![])
            }
        };
    }
    for projection in ALL {
        catch_up(&repo.store, &incremental, projection).await.unwrap();
    }
    let rebuilt = w.db("rebuilt.db").await;
    let report = rebuild(&repo.store, &rebuilt, &ALL, |_| {}).await.unwrap();
    assert_eq!(report.position, repo.store.head().await.unwrap());
    let expected = dump(&incremental).await;
    assert_eq!(dump(&rebuilt).await, expected, "a fresh rebuild equals the incremental build");
    // Rebuilding over the live copy swaps in the same rows.
    rebuild(&repo.store, &incremental, &ALL, |_| {}).await.unwrap();
    assert_eq!(dump(&incremental).await, expected, "a rebuild in place equals it too");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn a_rebuilt_projection_equals_the_incrementally_built_one(ops in proptest::collection::vec(op(), 1..80)) {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(play(Backend::Sqlite, ops.clone()));
        runtime.block_on(play(Backend::Postgres, ops));
    }
}

/// Several pages, and appends landing while the rebuild replays: what arrives during the
/// rebuild is applied by the swap's catch-up, once.
async fn a_rebuild_over_many_pages_with_concurrent_appends_equals_the_incremental_build(w: World) {
    let repo = &w.repo;
    tenure_projections::sample::generate(&repo.store, &repo.keys, 2_500, 11).await.unwrap();
    let rebuilt = w.db("rebuilt.db").await;
    let writer = {
        let repo = w.reopen().await;
        tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..40 {
                ids.push(invite(&repo, &format!("late{n}"), "acme", Role::User, t0()).await);
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            ids
        })
    };
    let report = rebuild(&repo.store, &rebuilt, &ALL, |_| {}).await.unwrap();
    let late = writer.await.unwrap();
    for projection in ALL {
        catch_up(&repo.store, &rebuilt, projection).await.unwrap();
    }
    assert!(report.events > 2 * 8192, "three pages at least: {report:?}");
    let incremental = w.db("incremental.db").await;
    for projection in ALL {
        catch_up(&repo.store, &incremental, projection).await.unwrap();
    }
    assert_eq!(dump(&rebuilt).await, dump(&incremental).await);
    for id in late {
        assert!(rebuilt.account_view(id).await.unwrap().is_some());
    }
}

tenure_store::on_both_backends! {
    super::common::world;
    a_rebuild_over_many_pages_with_concurrent_appends_equals_the_incremental_build,
}
