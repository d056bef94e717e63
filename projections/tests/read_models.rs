//! The read models answer the login and dashboard queries; erasure reaches them; a poison event
//! stops only its own projection.

mod common;

use std::time::Duration;

use chrono::Duration as Days;
use common::*;
use tenure_domain::decide::{Command, Factor};
use tenure_domain::events::{Client, Profile, ProfileUpdated, Role, SignInMethod};
use tenure_domain::org::OrgCommand;
use tenure_domain::{AccountEvent, OrgId, Personal, Status, Username};
use tenure_projections::{ALL, Projection, ProjectionError, ProjectionState, catch_up};
use tenure_store::{EventStore, Expected, KeyStore};

fn client() -> Client {
    Client { address: "203.0.113.9".into(), user_agent: "Firefox".into() }
}

async fn read_models_answer_the_login_and_dashboard_queries(w: World) {
    let repo = &w.repo;
    let db = w.db("projections.db").await;
    let jane = invite(repo, "JDoe", "acme", Role::Admin, t0()).await;
    let amy = invite(repo, "amy", "acme", Role::User, t0()).await;
    invite(repo, "bob", "beta", Role::User, t0()).await;
    onboard(repo, jane, "JDoe", t0()).await;
    let profile = Profile { display_name: Some("Jane D.".into()), phone: Some("+441632960001".into()), address: None };
    repo.execute(jane, Command::UpdateProfile { profile }, &ctx(t0()), &meta()).await.unwrap();
    for day in 1..=3 {
        let at = t0() + Days::days(day);
        repo.execute(
            jane,
            Command::SignIn { factor: Factor::Password { correct: true }, client: client() },
            &ctx(at),
            &meta(),
        )
        .await
        .unwrap();
    }
    repo.execute(
        jane,
        Command::SignIn { factor: Factor::Password { correct: false }, client: client() },
        &ctx(t0() + Days::days(4)),
        &meta(),
    )
    .await
    .unwrap();
    let acme = OrgId("acme".into());
    for command in [
        OrgCommand::OpenTicket { ticket_id: "T-1".into(), title: "Circuit down".into() },
        OrgCommand::OpenOrder { order_id: "O-1".into(), title: "New line".into() },
        OrgCommand::CloseOrder { order_id: "O-1".into() },
        OrgCommand::ScheduleMaintenance {
            window_id: "past".into(),
            title: "Done".into(),
            starts_at: t0(),
            ends_at: t0() + Days::hours(2),
        },
        OrgCommand::ScheduleMaintenance {
            window_id: "soon".into(),
            title: "Upgrade".into(),
            starts_at: t0() + Days::days(30),
            ends_at: t0() + Days::days(31),
        },
    ] {
        repo.execute_org(&acme, command, &ctx(t0()), &meta()).await.unwrap();
    }

    let head = repo.store.head().await.unwrap();
    for projection in ALL {
        assert_eq!(catch_up(&repo.store, &db, projection).await.unwrap(), head);
    }

    let login = db.login_lookup(&Username::parse("jdoe").unwrap()).await.unwrap().expect("login row");
    assert_eq!(login.account_id, jane);
    assert_eq!(login.status(), Status::Active);
    assert_eq!(login.terms_version, Some(1));
    assert_eq!(login.failures, 1);
    let password = repo.event_at(jane, login.password.expect("password position")).await.unwrap();
    assert!(
        matches!(password, Some(AccountEvent::PasswordSet(e)) if e.personal.known().is_some_and(|p| p.password_hash == "$argon2id$x"))
    );

    let view = db.account_view(jane).await.unwrap().expect("account view");
    assert_eq!((view.org_id.as_str(), view.role, view.wholesale), ("acme", Role::Admin, true));
    assert_eq!(view.last_sign_in, Some(t0() + Days::days(3)));
    assert_eq!(
        view.deactivates_on(),
        Some(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 8, 4, 9, 0, 0).unwrap())
    );
    assert_eq!(view.recent_sign_ins.len(), 3);
    assert_eq!(view.recent_sign_ins[0].at, t0() + Days::days(3), "newest first");
    assert_eq!(view.recent_sign_ins[0].method, SignInMethod::Password);
    match repo.event_at(jane, view.profile.unwrap()).await.unwrap() {
        Some(AccountEvent::ProfileUpdated(ProfileUpdated { personal: Personal::Known(p), .. })) => {
            assert_eq!(p.display_name.as_deref(), Some("Jane D."))
        }
        other => panic!("{other:?}"),
    }
    match repo.event_at(jane, view.recent_sign_ins[0].event).await.unwrap() {
        Some(AccountEvent::SignedIn(e)) => assert_eq!(e.personal.known().unwrap().address, "203.0.113.9"),
        other => panic!("{other:?}"),
    }
    assert_eq!(repo.event_at(amy, view.profile.unwrap()).await.unwrap(), None, "another account's event is not opened");

    let directory = db.org_directory(&acme).await.unwrap();
    let names: Vec<(&str, &str)> = directory.iter().map(|e| (e.username.as_str(), e.state.as_str())).collect();
    assert_eq!(names, [("amy", "invited"), ("jdoe", "active")]);

    let pending = db.account_by_invitation(token_for("amy")).await.unwrap();
    assert_eq!(pending.map(|row| (row.account_id, row.status())), Some((amy, Status::Invited)));
    assert_eq!(db.account_by_invitation(token_for("JDoe")).await.unwrap(), None, "a used invitation is gone");

    let widgets = db.org_widgets(&acme, t0() + Days::days(1)).await.unwrap();
    assert_eq!(widgets.open_tickets.iter().map(|i| i.item_id.as_str()).collect::<Vec<_>>(), ["T-1"]);
    assert!(widgets.open_orders.is_empty());
    assert_eq!(widgets.upcoming_maintenance.iter().map(|i| i.item_id.as_str()).collect::<Vec<_>>(), ["soon"]);
    assert_eq!(db.org_widgets(&OrgId("beta".into()), t0()).await.unwrap(), Default::default());

    for status in db.status(&repo.store).await.unwrap() {
        assert_eq!((status.checkpoint, status.head, status.lag()), (head, head, 0));
        assert_eq!(status.state, ProjectionState::Stopped);
    }
}

async fn erasure_reaches_the_read_models(w: World) {
    let repo = &w.repo;
    let db = w.db("projections.db").await;
    let id = invite(repo, "gone", "acme", Role::User, t0()).await;
    onboard(repo, id, "gone", t0()).await;
    let profile = Profile { display_name: Some("Quentin Quokka".into()), phone: None, address: None };
    repo.execute(id, Command::UpdateProfile { profile }, &ctx(t0()), &meta()).await.unwrap();
    catch_up(&repo.store, &db, Projection::Accounts).await.unwrap();
    let profile_at = db.account_view(id).await.unwrap().unwrap().profile.unwrap();

    repo.execute(id, Command::Deactivate, &ctx(t0() + Days::days(200)), &meta()).await.unwrap();
    repo.execute(id, Command::Delete, &ctx(t0() + Days::days(400)), &meta()).await.unwrap();
    repo.keys.destroy(id).await.unwrap();
    catch_up(&repo.store, &db, Projection::Accounts).await.unwrap();

    let view = db.account_view(id).await.unwrap().unwrap();
    assert_eq!(view.status(), Status::Deleted);
    assert_eq!((view.invitee, view.password, view.profile), (None, None, None));
    assert!(view.recent_sign_ins.is_empty());
    assert_eq!(db.login_lookup(&Username::parse("gone").unwrap()).await.unwrap(), None);
    match repo.event_at(id, profile_at).await.unwrap() {
        Some(AccountEvent::ProfileUpdated(e)) => assert_eq!(e.personal, Personal::Erased),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{:?}", dump(&db).await).contains("Quentin"), "no personal data in the rows");
    if w.backend == Backend::Sqlite {
        let bytes = std::fs::read(w.place.dir.path().join("projections.db")).unwrap();
        let wal = std::fs::read(w.place.dir.path().join("projections.db-wal")).unwrap_or_default();
        for haystack in [bytes, wal] {
            assert!(!haystack.windows(7).any(|w| w == b"Quentin"), "no personal data in the read-model files");
        }
    }
}

async fn a_poison_event_stops_only_its_projection_and_names_the_event(w: World) {
    let repo = &w.repo;
    let db = w.db("projections.db").await;
    let id = invite(repo, "victim", "acme", Role::User, t0()).await;
    let strange = tenure_store::conformance::event("AccountTeleported", b"{}");
    let strange_id = strange.id;
    let poisoned_at = repo.store.append(&id.stream(), Expected::Exact(1), vec![strange]).await.unwrap().position;
    let after = invite(repo, "later", "acme", Role::User, t0()).await;
    repo.execute_org(
        &OrgId("acme".into()),
        OrgCommand::OpenTicket { ticket_id: "T-9".into(), title: "After".into() },
        &ctx(t0()),
        &meta(),
    )
    .await
    .unwrap();
    let head = repo.store.head().await.unwrap();

    let error = catch_up(&repo.store, &db, Projection::Accounts).await.unwrap_err();
    match &error {
        ProjectionError::Poison { event_id, position, reason, .. } => {
            assert_eq!((*event_id, *position), (strange_id, poisoned_at));
            assert!(reason.contains("AccountTeleported"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        catch_up(&repo.store, &db, Projection::OrgWidgets).await.unwrap(),
        head,
        "the other projection keeps going"
    );
    let statuses = db.status(&repo.store).await.unwrap();
    let accounts = statuses.iter().find(|s| s.name == "accounts").unwrap();
    assert_eq!(accounts.checkpoint, poisoned_at - 1, "everything before the poison event is applied, nothing after");
    assert!(
        matches!(&accounts.state, ProjectionState::Failed { position, reason } if *position == poisoned_at && reason.contains(&strange_id.to_string()))
    );
    assert!(db.account_view(id).await.unwrap().is_some());
    assert!(db.account_view(after).await.unwrap().is_none(), "never skipped past");
    let widgets = statuses.iter().find(|s| s.name == "org_widgets").unwrap();
    assert_eq!((widgets.checkpoint, &widgets.state), (head, &ProjectionState::Stopped));

    // A rebuild meets the same event and leaves the serving copy as it was.
    let before = dump(&db).await;
    let refused = tenure_projections::rebuild(&repo.store, &db, &[Projection::Accounts], |_| {}).await.unwrap_err();
    assert!(matches!(refused, ProjectionError::Poison { position, .. } if position == poisoned_at));
    assert_eq!(dump(&db).await, before);
}

/// Two events that cannot be applied in one batch: the earlier is named and recorded, whatever
/// makes each of them poison (here an account never invited, then an event of another kind of
/// stream moved onto an account's stream).
async fn of_two_poison_events_in_a_batch_the_earlier_stops_the_projection(w: World) {
    let repo = &w.repo;
    let db = w.db("projections.db").await;
    let known = invite(repo, "known", "acme", Role::User, t0()).await;
    let stray = tenure_domain::AccountId(uuid::Uuid::now_v7());
    let never_invited = tenure_domain::Event::from(tenure_domain::events::Reactivated { at: t0() });
    let event = tenure_store::codec::encode(&never_invited, &stray.stream(), None, &meta(), t0()).unwrap();
    let first = repo.store.append(&stray.stream(), Expected::NoStream, vec![event]).await.unwrap().position;
    let moved = order_moved_onto(&known);
    repo.store.append(&known.stream(), Expected::Exact(1), vec![moved]).await.unwrap();

    let error = catch_up(&repo.store, &db, Projection::Accounts).await.unwrap_err();
    assert!(matches!(&error, ProjectionError::Poison { position, .. } if *position == first), "{error:?}");
    let statuses = db.status(&repo.store).await.unwrap();
    let accounts = statuses.iter().find(|s| s.name == "accounts").unwrap();
    assert_eq!(accounts.checkpoint, first - 1);
    assert!(
        matches!(&accounts.state, ProjectionState::Failed { position, reason } if *position == first && reason.contains("never invited")),
        "{:?}",
        accounts.state
    );
}

async fn the_runner_follows_live_appends_for_read_your_writes(w: World) {
    let repo = &w.repo;
    let db = w.db("projections.db").await;
    let runners =
        tenure_projections::runner::start(repo.store.clone(), db.clone()).await.unwrap().expect("the lock is free");
    let runners = tokio::spawn(runners);
    assert!(
        tenure_projections::runner::start(repo.store.clone(), db.clone()).await.unwrap().is_none(),
        "one runner at a time"
    );
    assert!(db.status(&repo.store).await.unwrap().iter().all(|s| s.state == ProjectionState::Running));

    let id = invite(repo, "fresh", "acme", Role::User, t0()).await;
    let position = repo.store.head().await.unwrap();
    assert!(db.wait_for(Projection::Accounts, position, Duration::from_secs(10)).await.unwrap());
    assert_eq!(db.account_view(id).await.unwrap().unwrap().username, "fresh");
    assert!(!db.wait_for(Projection::Accounts, position + 1, Duration::from_millis(50)).await.unwrap(), "times out");
    runners.abort();
}

async fn one_projection_can_be_rebuilt_alone(w: World) {
    let repo = &w.repo;
    let db = w.db("projections.db").await;
    invite(repo, "solo", "acme", Role::User, t0()).await;
    repo.execute_org(
        &OrgId("acme".into()),
        OrgCommand::OpenOrder { order_id: "O-1".into(), title: "Line".into() },
        &ctx(t0()),
        &meta(),
    )
    .await
    .unwrap();
    for projection in [Projection::OrgWidgets, Projection::Accounts] {
        let report = tenure_projections::rebuild(&repo.store, &db, &[projection], |_| {}).await.unwrap();
        assert_eq!(report.position, repo.store.head().await.unwrap());
        assert_eq!(db.checkpoint(projection).await.unwrap().generation, 1);
    }
    assert_eq!(db.org_widgets(&OrgId("acme".into()), t0()).await.unwrap().open_orders.len(), 1);
    assert!(db.login_lookup(&Username::parse("solo").unwrap()).await.unwrap().is_some());
}

/// An event of another kind of stream moved onto an account's stream stops a rebuild where the
/// live runner stops, with the same words, and the serving copy stays as it was.
async fn a_rebuild_stops_at_an_event_of_another_kind_of_stream(w: World) {
    let repo = &w.repo;
    let db = w.db("projections.db").await;
    let known = invite(repo, "known", "acme", Role::User, t0()).await;
    let moved = order_moved_onto(&known);
    let at = repo.store.append(&known.stream(), Expected::Exact(1), vec![moved]).await.unwrap().position;

    let live = catch_up(&repo.store, &db, Projection::Accounts).await.unwrap_err();
    let before = dump(&db).await;
    let rebuilt = tenure_projections::rebuild(&repo.store, &db, &[Projection::Accounts], |_| {}).await.unwrap_err();
    for error in [&live, &rebuilt] {
        assert!(
            matches!(error, ProjectionError::Poison { position, reason, .. }
                if *position == at && reason.ends_with(&format!("OrderOpened does not belong on stream {}", known.stream()))),
            "{error:?}"
        );
    }
    assert_eq!(dump(&db).await, before);
}

/// An organisation's event, encoded for the stream of account `onto`: an event of another kind
/// of stream, as if moved there by hand.
fn order_moved_onto(onto: &tenure_domain::AccountId) -> tenure_store::NewEvent {
    let order = tenure_domain::Event::from(tenure_domain::events::OrderOpened {
        org_id: OrgId("acme".into()),
        order_id: "O-1".into(),
        title: "Moved".into(),
        at: t0(),
    });
    tenure_store::codec::encode(&order, &onto.stream(), None, &meta(), t0()).unwrap()
}

tenure_store::on_both_backends! {
    super::common::world;
    read_models_answer_the_login_and_dashboard_queries,
    erasure_reaches_the_read_models,
    a_poison_event_stops_only_its_projection_and_names_the_event,
    of_two_poison_events_in_a_batch_the_earlier_stops_the_projection,
    a_rebuild_stops_at_an_event_of_another_kind_of_stream,
    the_runner_follows_live_appends_for_read_your_writes,
    one_projection_can_be_rebuilt_alone,
}
