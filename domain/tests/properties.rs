//! Invariants that hold for every history `decide` can produce.

use chrono::{DateTime, Duration, TimeZone, Utc};
use proptest::prelude::*;
use tenure_domain::account::evolve;
use tenure_domain::decide::*;
use tenure_domain::events::*;
use tenure_domain::{Account, AccountEvent, AccountId, Lifecycle, OrgId, SecretDigest, Status, Username};
use uuid::Uuid;

const TOKEN: SecretDigest = SecretDigest([1; 32]);

#[derive(Debug, Clone)]
enum Step {
    Password { correct: bool },
    Totp { step: Option<u64> },
    SetPasswordThroughLink,
    EnrollApp { step: u64 },
    AcceptTerms { version: u32 },
    RequireMfa(MfaRequirement),
    WarnDeactivation,
    Deactivate,
    Reactivate,
    WarnDeletion,
    Delete,
    RequestReset,
    ResetPassword,
    ResetMfa,
    RecoveryCode,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<bool>().prop_map(|correct| Step::Password { correct }),
        proptest::option::of(0u64..200).prop_map(|step| Step::Totp { step }),
        Just(Step::SetPasswordThroughLink),
        (0u64..200).prop_map(|step| Step::EnrollApp { step }),
        (1u32..4).prop_map(|version| Step::AcceptTerms { version }),
        prop_oneof![Just(MfaRequirement::None), Just(MfaRequirement::App)].prop_map(Step::RequireMfa),
        Just(Step::WarnDeactivation),
        Just(Step::Deactivate),
        Just(Step::Reactivate),
        Just(Step::WarnDeletion),
        Just(Step::Delete),
        Just(Step::RequestReset),
        Just(Step::ResetPassword),
        Just(Step::ResetMfa),
        Just(Step::RecoveryCode),
    ]
}

fn command(step: Step) -> Command {
    let client = Client { address: "198.51.100.1".into(), user_agent: "test".into() };
    match step {
        Step::Password { correct } => Command::SignIn { factor: Factor::Password { correct }, client },
        Step::Totp { step } => Command::SignIn { factor: Factor::Totp { step }, client },
        Step::SetPasswordThroughLink => Command::SetPassword {
            password_hash: "$argon2id$x".into(),
            via: PasswordVia::Invitation { token_digest: TOKEN },
        },
        Step::EnrollApp { step } => Command::EnrollMfa {
            proof: EnrollmentProof::App { secret: "S".into(), step: Some(step), recovery: vec![TOKEN], spent: None },
            invitation: Some(TOKEN),
        },
        Step::AcceptTerms { version } => Command::AcceptTerms { version, invitation: Some(TOKEN) },
        Step::RequireMfa(mfa) => Command::ChangeMfaRequirement { mfa },
        Step::WarnDeactivation => Command::SendDeactivationWarning,
        Step::Deactivate => Command::Deactivate,
        Step::Reactivate => Command::Reactivate,
        Step::WarnDeletion => Command::SendDeletionWarning,
        Step::Delete => Command::Delete,
        Step::RequestReset => Command::RequestPasswordReset { token_digest: TOKEN, capped: true },
        Step::ResetPassword => Command::SetPassword {
            password_hash: "$argon2id$y".into(),
            via: PasswordVia::Reset { token_digest: TOKEN },
        },
        Step::ResetMfa => Command::ResetMfa,
        Step::RecoveryCode => Command::SignIn { factor: Factor::RecoveryCode { presented: TOKEN }, client },
    }
}

fn invite() -> Command {
    Command::Invite(Invite {
        all_orgs: false,
        account_id: AccountId(Uuid::from_u128(7)),
        username: Username::parse("prop").unwrap(),
        org: Org { id: OrgId("o".into()), name: "O".into(), wholesale: false },
        role: Role::User,
        mfa: MfaRequirement::None,
        email: "p@example.com".into(),
        display_name: None,
        token_digest: TOKEN,
    })
}

/// Runs the steps through decide/evolve, `hours` apart; returns every event and the state after
/// each one.
fn run(steps: Vec<(u32, Step)>) -> (Vec<AccountEvent>, Vec<Account>) {
    let mut now: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut state = Account::default();
    let mut events = Vec::new();
    let mut states = Vec::new();
    let commands = std::iter::once((0, invite())).chain(steps.into_iter().map(|(h, s)| (h, command(s))));
    for (hours, command) in commands {
        now += Duration::hours(i64::from(hours));
        if let Ok(decided) = decide(&state, command, &Ctx { now }) {
            for event in decided {
                state = evolve(state, &event);
                events.push(event);
                states.push(state.clone());
            }
        }
    }
    (events, states)
}

fn history() -> impl Strategy<Value = Vec<(u32, Step)>> {
    // Up to ~400 days between steps, so histories cross every lifecycle deadline.
    proptest::collection::vec((prop_oneof![0u32..2, 0u32..48, 0u32..9600], step()), 0..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn folding_a_history_is_deterministic_and_matches_incremental_evolution(steps in history()) {
        let (events, states) = run(steps);
        let once = Account::fold(&events);
        let twice = Account::fold(&events);
        prop_assert_eq!(&once, &twice);
        // The invitation always succeeds, so there is at least one state.
        prop_assert_eq!(Some(&once), states.last());
        prop_assert_eq!(once.version, events.len() as u64);
    }

    #[test]
    fn no_version_is_both_deactivated_and_signed_in(steps in history()) {
        let (events, states) = run(steps);
        for (event, state) in events.iter().zip(&states) {
            if matches!(event, AccountEvent::SignedIn(_)) {
                prop_assert_eq!(state.status(), Status::Active);
                prop_assert!(state.deactivated_at.is_none());
            }
        }
    }

    #[test]
    fn nothing_follows_a_deletion(steps in history()) {
        let (events, _) = run(steps);
        if let Some(at) = events.iter().position(|e| matches!(e, AccountEvent::Deleted(_))) {
            prop_assert_eq!(at, events.len() - 1);
        }
    }

    #[test]
    fn last_activity_never_moves_back(steps in history()) {
        let (_, states) = run(steps);
        for pair in states.windows(2) {
            prop_assert!(pair[1].last_activity >= pair[0].last_activity);
        }
    }

    #[test]
    fn each_deadline_is_warned_at_most_once(steps in history()) {
        let (events, _) = run(steps);
        let mut deadlines: Vec<DateTime<Utc>> = events
            .iter()
            .filter_map(|e| match e {
                AccountEvent::DeactivationWarningSent(w) => Some(w.deadline),
                _ => None,
            })
            .collect();
        let count = deadlines.len();
        deadlines.dedup();
        prop_assert_eq!(deadlines.len(), count);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The scheduler folds a `Lifecycle` from events; the decider reads one off its `Account`.
    /// Both must agree after every event, or the scheduler would wait for a step the decider
    /// refuses, or skip one it allows.
    #[test]
    fn the_folded_lifecycle_is_the_accounts_own(steps in history()) {
        let (events, states) = run(steps);
        let mut folded: Option<Lifecycle> = None;
        for (event, state) in events.iter().zip(&states) {
            folded = Some(match folded {
                None => match event {
                    AccountEvent::AccountInvited(e) => Lifecycle::invited(e.at),
                    other => panic!("a history starts with its invitation, not {other:?}"),
                },
                Some(lifecycle) => lifecycle.apply(event),
            });
            prop_assert_eq!(folded, state.lifecycle(), "after {:?}", event);
        }
    }

    /// Readers of the lifecycle read only `lifecycle::EVENT_TYPES`: no other type may change it.
    #[test]
    fn only_the_lifecycle_event_types_move_the_lifecycle(steps in history()) {
        let (events, states) = run(steps);
        for (event, before) in events.iter().skip(1).zip(&states) {
            let lifecycle = before.lifecycle().expect("invited");
            if !tenure_domain::lifecycle::EVENT_TYPES.contains(&event.type_name()) {
                prop_assert_eq!(lifecycle.apply(event), lifecycle, "{:?} moved the lifecycle", event);
            }
        }
    }
}
