//! Given / when / then for every command of the `Account` decider and every error it can give.

use chrono::{DateTime, Duration, TimeZone, Utc};
use tenure_domain::account::evolve;
use tenure_domain::decide::*;
use tenure_domain::events::*;
use tenure_domain::profile::ProfileError;
use tenure_domain::{Account, AccountError, AccountId, OrgId, Personal, SecretDigest, Status, Username};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 15, 9, 0, 0).unwrap()
}

fn id() -> AccountId {
    AccountId(Uuid::from_u128(0x0193_0000_0000_7000_8000_0000_0000_0001))
}

const TOKEN: SecretDigest = SecretDigest([1; 32]);
const OTHER_TOKEN: SecretDigest = SecretDigest([2; 32]);
const CODE: SecretDigest = SecretDigest([7; 32]);
const WRONG_CODE: SecretDigest = SecretDigest([8; 32]);

fn client() -> Client {
    Client { address: "203.0.113.7".into(), user_agent: "Firefox".into() }
}

fn invite_command(mfa: MfaRequirement) -> Invite {
    Invite {
        all_orgs: false,
        account_id: id(),
        username: Username::parse("jdoe").unwrap(),
        org: Org { id: OrgId("acme".into()), name: "Acme".into(), wholesale: false },
        role: Role::User,
        mfa,
        email: "jane@example.com".into(),
        display_name: Some("Jane Doe".into()),
        token_digest: TOKEN,
    }
}

fn invited(mfa: MfaRequirement) -> AccountEvent {
    AccountInvited {
        account_id: id(),
        username: Username::parse("jdoe").unwrap(),
        org: Org { id: OrgId("acme".into()), name: "Acme".into(), wholesale: false },
        role: Role::User,
        mfa,
        invitation: Invitation { token_digest: TOKEN, expires_at: t0() + Duration::days(7) },
        all_orgs: false,
        at: t0(),
        personal: Personal::Known(Invitee { email: "jane@example.com".into(), display_name: Some("Jane Doe".into()) }),
    }
    .into()
}

fn password_set(reason: PasswordReason, at: DateTime<Utc>) -> AccountEvent {
    PasswordSet { reason, at, personal: Personal::Known(PasswordHash { password_hash: "$argon2id$h".into() }) }.into()
}

fn app_enrolled(step: u64) -> AccountEvent {
    MfaEnrolled {
        method: MfaMethod::App,
        totp_step: Some(step),
        at: t0(),
        personal: Personal::Known(MfaSecret { totp_secret: Some("JBSWY3DPEHPK3PXP".into()) }),
    }
    .into()
}

fn terms(version: u32) -> AccountEvent {
    TermsAccepted { version, at: t0() }.into()
}

fn signed_in(at: DateTime<Utc>) -> AccountEvent {
    SignedIn {
        client_id: None,
        method: SignInMethod::Password,
        totp_step: None,
        at,
        personal: Personal::Known(client()),
    }
    .into()
}

fn failed(reason: FailureReason, at: DateTime<Utc>) -> AccountEvent {
    SignInFailed { reason, at, personal: Personal::Known(client()) }.into()
}

fn from(address: &str) -> Client {
    Client { address: address.into(), user_agent: "curl".into() }
}

fn failed_from(address: &str, at: DateTime<Utc>) -> AccountEvent {
    SignInFailed { reason: FailureReason::WrongPassword, at, personal: Personal::Known(from(address)) }.into()
}

fn code_issued(purpose: CodePurpose, at: DateTime<Utc>) -> AccountEvent {
    EmailCodeIssued { purpose, code_digest: CODE, expires_at: at + Duration::minutes(10), at }.into()
}

/// An active account without MFA.
fn active() -> Vec<AccountEvent> {
    vec![invited(MfaRequirement::None), password_set(PasswordReason::Onboarding, t0()), terms(1)]
}

fn active_with_app() -> Vec<AccountEvent> {
    vec![invited(MfaRequirement::App), password_set(PasswordReason::Onboarding, t0()), app_enrolled(100), terms(1)]
}

fn active_with_email() -> Vec<AccountEvent> {
    vec![
        invited(MfaRequirement::Email),
        password_set(PasswordReason::Onboarding, t0()),
        code_issued(CodePurpose::Enrollment, t0()),
        MfaEnrolled {
            method: MfaMethod::Email,
            totp_step: None,
            at: t0(),
            personal: Personal::Known(MfaSecret { totp_secret: None }),
        }
        .into(),
        terms(1),
    ]
}

fn deactivated() -> Vec<AccountEvent> {
    let mut events = active();
    events.push(Deactivated { deadline: t0() + Duration::days(181), at: t0() + Duration::days(181) }.into());
    events
}

struct Given {
    state: Account,
    now: DateTime<Utc>,
}

fn given(events: impl IntoIterator<Item = AccountEvent>) -> Given {
    let state = events.into_iter().fold(Account::default(), |s, e| evolve(s, &e));
    Given { state, now: t0() }
}

impl Given {
    fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    fn when(self, command: Command) -> Then {
        Then { result: decide(&self.state, command, &Ctx { now: self.now }) }
    }
}

struct Then {
    result: Result<Vec<AccountEvent>, AccountError>,
}

impl Then {
    #[track_caller]
    fn then(self, expected: impl IntoIterator<Item = AccountEvent>) {
        assert_eq!(self.result, Ok(expected.into_iter().collect::<Vec<_>>()));
    }

    #[track_caller]
    fn then_err(self, expected: AccountError) {
        assert_eq!(self.result, Err(expected));
    }
}

fn sign_in(factor: Factor) -> Command {
    Command::SignIn { factor, client: client() }
}

fn later(days: i64) -> DateTime<Utc> {
    t0() + Duration::days(days)
}

// --- invitation ---

#[test]
fn invite_creates_the_account_with_a_seven_day_link() {
    given([]).when(Command::Invite(invite_command(MfaRequirement::None))).then([invited(MfaRequirement::None)]);
}

#[test]
fn invite_with_a_malformed_email_is_refused() {
    let mut invite = invite_command(MfaRequirement::None);
    invite.email = "jane.example.com".into();
    given([]).when(Command::Invite(invite)).then_err(AccountError::InvalidEmail(tenure_domain::ids::EmailError));
}

#[test]
fn invite_with_a_display_name_over_a_hundred_characters_is_refused_whoever_invites() {
    let mut invite = invite_command(MfaRequirement::None);
    invite.display_name = Some("x".repeat(500));
    given([]).when(Command::Invite(invite)).then_err(AccountError::InvalidProfile(ProfileError {
        field: "display_name",
        message: "Use 1 to 100 characters.".into(),
    }));
}

#[test]
fn invite_twice_is_refused() {
    given([invited(MfaRequirement::None)])
        .when(Command::Invite(invite_command(MfaRequirement::None)))
        .then_err(AccountError::AlreadyExists);
}

#[test]
fn commands_on_an_account_that_does_not_exist_are_refused() {
    given([]).when(Command::Reactivate).then_err(AccountError::UnknownAccount);
}

#[test]
fn resending_an_invitation_replaces_the_link() {
    given([invited(MfaRequirement::None)])
        .at(later(3))
        .when(Command::ResendInvitation { token_digest: OTHER_TOKEN })
        .then([InvitationResent {
            invitation: Invitation { token_digest: OTHER_TOKEN, expires_at: later(10) },
            at: later(3),
        }
        .into()]);
    let mut events = vec![invited(MfaRequirement::None)];
    events.push(
        InvitationResent { invitation: Invitation { token_digest: OTHER_TOKEN, expires_at: later(10) }, at: t0() }
            .into(),
    );
    given(events)
        .when(Command::SetPassword { password_hash: "h".into(), via: PasswordVia::Invitation { token_digest: TOKEN } })
        .then_err(AccountError::InvalidInvitation);
}

#[test]
fn an_invitation_is_sent_again_at_most_five_times_in_a_day() {
    let resent = |hours: i64| -> AccountEvent {
        InvitationResent {
            invitation: Invitation { token_digest: OTHER_TOKEN, expires_at: t0() + chrono::Duration::days(7) },
            at: t0() + chrono::Duration::hours(hours),
        }
        .into()
    };
    let mut events = vec![invited(MfaRequirement::None)];
    events.extend([1, 2, 3, 4, 5].map(resent));
    given(events.clone())
        .at(t0() + chrono::Duration::hours(20))
        .when(Command::ResendInvitation { token_digest: TOKEN })
        .then_err(AccountError::TooManyResends { retry_at: t0() + chrono::Duration::hours(25) });
    // A day after the oldest of the five, one more may go.
    let later = t0() + chrono::Duration::hours(25);
    given(events).at(later).when(Command::ResendInvitation { token_digest: TOKEN }).then([InvitationResent {
        invitation: Invitation { token_digest: TOKEN, expires_at: later + chrono::Duration::days(7) },
        at: later,
    }
    .into()]);
}

#[test]
fn resending_after_onboarding_is_refused() {
    given(active())
        .when(Command::ResendInvitation { token_digest: OTHER_TOKEN })
        .then_err(AccountError::AlreadyOnboarded);
}

// --- first sign-in ---

#[test]
fn set_password_through_the_invitation() {
    given([invited(MfaRequirement::None)])
        .when(Command::SetPassword {
            password_hash: "$argon2id$h".into(),
            via: PasswordVia::Invitation { token_digest: TOKEN },
        })
        .then([password_set(PasswordReason::Onboarding, t0())]);
}

#[test]
fn an_expired_or_wrong_invitation_cannot_set_a_password() {
    let set = |token_digest| Command::SetPassword {
        password_hash: "h".into(),
        via: PasswordVia::Invitation { token_digest },
    };
    given([invited(MfaRequirement::None)]).at(later(7)).when(set(TOKEN)).then_err(AccountError::InvitationExpired);
    given([invited(MfaRequirement::None)]).when(set(OTHER_TOKEN)).then_err(AccountError::InvalidInvitation);
}

#[test]
fn the_password_step_cannot_be_repeated_through_the_link() {
    given([invited(MfaRequirement::None), password_set(PasswordReason::Onboarding, t0())])
        .when(Command::SetPassword { password_hash: "h".into(), via: PasswordVia::Invitation { token_digest: TOKEN } })
        .then_err(AccountError::PasswordAlreadySet);
}

#[test]
fn a_password_change_needs_an_active_account() {
    given(active())
        .when(Command::SetPassword { password_hash: "$argon2id$h".into(), via: PasswordVia::Change })
        .then([password_set(PasswordReason::Change, t0())]);
    given([invited(MfaRequirement::None)])
        .when(Command::SetPassword { password_hash: "h".into(), via: PasswordVia::Change })
        .then_err(AccountError::OnboardingIncomplete);
}

#[test]
fn terms_before_a_password_are_refused() {
    given([invited(MfaRequirement::None)])
        .when(Command::AcceptTerms { version: 1, invitation: Some(TOKEN) })
        .then_err(AccountError::PasswordNotSet);
}

#[test]
fn terms_before_the_required_mfa_enrollment_are_refused() {
    given([invited(MfaRequirement::App), password_set(PasswordReason::Onboarding, t0())])
        .when(Command::AcceptTerms { version: 1, invitation: Some(TOKEN) })
        .then_err(AccountError::MfaNotEnrolled);
}

#[test]
fn accepting_the_terms_finishes_onboarding() {
    let events = [invited(MfaRequirement::None), password_set(PasswordReason::Onboarding, t0())];
    given(events.clone()).when(Command::AcceptTerms { version: 1, invitation: Some(TOKEN) }).then([terms(1)]);
    let mut all = events.to_vec();
    all.push(terms(1));
    assert_eq!(Account::fold(&all).status(), Status::Active);
    assert_eq!(Account::fold(&all[..2]).status(), Status::Onboarding);
    assert_eq!(Account::fold(&all[..1]).status(), Status::Invited);
}

#[test]
fn onboarding_steps_need_the_link_and_later_steps_must_not_present_it() {
    given([invited(MfaRequirement::None), password_set(PasswordReason::Onboarding, t0())])
        .when(Command::AcceptTerms { version: 1, invitation: None })
        .then_err(AccountError::OnboardingIncomplete);
    given(active())
        .when(Command::AcceptTerms { version: 2, invitation: Some(TOKEN) })
        .then_err(AccountError::AlreadyOnboarded);
}

#[test]
fn new_terms_versions_are_accepted_once_and_old_ones_refused() {
    given(active()).when(Command::AcceptTerms { version: 2, invitation: None }).then([terms(2)]);
    given(active()).when(Command::AcceptTerms { version: 1, invitation: None }).then([]);
    let mut events = active();
    events.push(terms(3));
    given(events)
        .when(Command::AcceptTerms { version: 2, invitation: None })
        .then_err(AccountError::StaleTermsVersion { version: 2, accepted: 3 });
}

#[test]
fn app_enrollment_with_a_matching_code_records_the_secret_and_step() {
    given([invited(MfaRequirement::App), password_set(PasswordReason::Onboarding, t0())])
        .when(Command::EnrollMfa {
            proof: EnrollmentProof::App {
                secret: "JBSWY3DPEHPK3PXP".into(),
                step: Some(100),
                recovery: vec![],
                spent: None,
            },
            invitation: Some(TOKEN),
        })
        .then([app_enrolled(100)]);
}

#[test]
fn app_enrollment_with_a_wrong_code_is_recorded_as_failed() {
    given([invited(MfaRequirement::App), password_set(PasswordReason::Onboarding, t0())])
        .when(Command::EnrollMfa {
            proof: EnrollmentProof::App {
                secret: "JBSWY3DPEHPK3PXP".into(),
                step: None,
                recovery: vec![],
                spent: None,
            },
            invitation: Some(TOKEN),
        })
        .then([MfaEnrollmentFailed { method: MfaMethod::App, at: t0() }.into()]);
}

#[test]
fn enrollment_needs_a_password_and_the_required_method() {
    given([invited(MfaRequirement::App)])
        .when(Command::EnrollMfa {
            proof: EnrollmentProof::App { secret: "S".into(), step: Some(1), recovery: vec![], spent: None },
            invitation: Some(TOKEN),
        })
        .then_err(AccountError::PasswordNotSet);
    given([invited(MfaRequirement::App), password_set(PasswordReason::Onboarding, t0())])
        .when(Command::EnrollMfa { proof: EnrollmentProof::Email { presented: CODE }, invitation: Some(TOKEN) })
        .then_err(AccountError::MfaMethodNotAllowed { required: MfaRequirement::App });
}

#[test]
fn email_enrollment_issues_then_checks_a_code() {
    let base = [invited(MfaRequirement::Email), password_set(PasswordReason::Onboarding, t0())];
    given(base.clone())
        .when(Command::IssueEmailCode {
            purpose: CodePurpose::Enrollment,
            code_digest: CODE,
            invitation: Some(TOKEN),
            previous_unsent: false,
        })
        .then([code_issued(CodePurpose::Enrollment, t0())]);
    let mut issued = base.to_vec();
    issued.push(code_issued(CodePurpose::Enrollment, t0()));
    given(issued.clone())
        .at(t0() + Duration::minutes(2))
        .when(Command::EnrollMfa { proof: EnrollmentProof::Email { presented: CODE }, invitation: Some(TOKEN) })
        .then([MfaEnrolled {
            method: MfaMethod::Email,
            totp_step: None,
            at: t0() + Duration::minutes(2),
            personal: Personal::Known(MfaSecret { totp_secret: None }),
        }
        .into()]);
    given(issued)
        .when(Command::EnrollMfa { proof: EnrollmentProof::Email { presented: WRONG_CODE }, invitation: Some(TOKEN) })
        .then([MfaEnrollmentFailed { method: MfaMethod::Email, at: t0() }.into()]);
}

#[test]
fn email_codes_expire_after_ten_minutes() {
    let mut events = active_with_email();
    events.push(code_issued(CodePurpose::SignIn, t0()));
    given(events)
        .at(t0() + Duration::minutes(10))
        .when(sign_in(Factor::EmailCode { presented: CODE }))
        .then_err(AccountError::EmailCodeExpired);
}

#[test]
fn five_wrong_email_codes_kill_the_code() {
    let mut events = active_with_email();
    events.push(code_issued(CodePurpose::SignIn, t0()));
    for _ in 0..4 {
        events.push(failed(FailureReason::WrongEmailCode, t0()));
    }
    given(events.clone())
        .when(sign_in(Factor::EmailCode { presented: WRONG_CODE }))
        .then([failed(FailureReason::WrongEmailCode, t0())]);
    events.push(failed(FailureReason::WrongEmailCode, t0()));
    // The fifth failure also throttled the account; once that passes, the code is still dead.
    given(events)
        .at(t0() + Duration::minutes(2))
        .when(sign_in(Factor::EmailCode { presented: CODE }))
        .then_err(AccountError::EmailCodeExhausted);
}

#[test]
fn no_code_means_no_email_sign_in() {
    given(active_with_email()).when(sign_in(Factor::EmailCode { presented: CODE })).then_err(AccountError::NoEmailCode);
}

#[test]
fn an_email_code_for_sign_in_signs_in_once() {
    let mut events = active_with_email();
    events.push(code_issued(CodePurpose::SignIn, t0()));
    let signed: AccountEvent = SignedIn {
        client_id: None,
        method: SignInMethod::EmailCode,
        totp_step: None,
        at: t0(),
        personal: Personal::Known(client()),
    }
    .into();
    given(events.clone()).when(sign_in(Factor::EmailCode { presented: CODE })).then([signed.clone()]);
    events.push(signed);
    given(events).when(sign_in(Factor::EmailCode { presented: CODE })).then_err(AccountError::NoEmailCode);
}

#[test]
fn email_codes_cannot_be_requested_more_than_once_a_minute() {
    let mut events = active_with_email();
    events.push(code_issued(CodePurpose::SignIn, t0()));
    let issue = || Command::IssueEmailCode {
        purpose: CodePurpose::SignIn,
        code_digest: CODE,
        invitation: None,
        previous_unsent: false,
    };
    given(events.clone())
        .at(t0() + Duration::seconds(30))
        .when(issue())
        .then_err(AccountError::ResendTooSoon { retry_at: t0() + Duration::seconds(60) });
    given(events)
        .at(t0() + Duration::seconds(60))
        .when(issue())
        .then([code_issued(CodePurpose::SignIn, t0() + Duration::seconds(60))]);
}

#[test]
fn sign_in_codes_are_only_for_email_accounts() {
    given(active_with_app())
        .when(Command::IssueEmailCode {
            purpose: CodePurpose::SignIn,
            code_digest: CODE,
            invitation: None,
            previous_unsent: false,
        })
        .then_err(AccountError::WrongFactor);
    given(active_with_app()).when(sign_in(Factor::EmailCode { presented: CODE })).then_err(AccountError::WrongFactor);
}

// --- MFA requirement ---

#[test]
fn an_admin_changes_the_mfa_requirement() {
    given(active()).when(Command::ChangeMfaRequirement { mfa: MfaRequirement::App }).then([MfaRequirementChanged {
        mfa: MfaRequirement::App,
        at: t0(),
    }
    .into()]);
    given(active()).when(Command::ChangeMfaRequirement { mfa: MfaRequirement::None }).then([]);
}

#[test]
fn a_new_requirement_asks_for_the_second_factor_at_the_next_sign_in() {
    let mut events = active();
    events.push(MfaRequirementChanged { mfa: MfaRequirement::App, at: t0() }.into());
    given(events.clone())
        .when(sign_in(Factor::Password { correct: true }))
        .then_err(AccountError::SecondFactorRequired { required: MfaRequirement::App });
    given(events).when(sign_in(Factor::Totp { step: Some(5) })).then_err(AccountError::MfaNotEnrolled);
}

#[test]
fn a_required_authenticator_is_enrolled_by_the_sign_in_that_first_needs_it() {
    let mut events = active();
    events.push(MfaRequirementChanged { mfa: MfaRequirement::App, at: t0() }.into());
    let enrolling =
        |step| Command::SignInEnrolling { secret: "JBSWY3DPEHPK3PXP".into(), step, client: client(), recovery: vec![] };
    let at = later(1);
    given(events.clone()).at(at).when(enrolling(None)).then([failed(FailureReason::WrongTotp, at)]);
    let enrolled: AccountEvent = MfaEnrolled {
        method: MfaMethod::App,
        totp_step: None,
        at,
        personal: Personal::Known(MfaSecret { totp_secret: Some("JBSWY3DPEHPK3PXP".into()) }),
    }
    .into();
    let signed: AccountEvent = SignedIn {
        client_id: None,
        method: SignInMethod::Totp,
        totp_step: Some(9),
        at,
        personal: Personal::Known(client()),
    }
    .into();
    given(events.clone()).at(at).when(enrolling(Some(9))).then([enrolled.clone(), signed.clone()]);

    // Afterwards the code's step is spent, and there is nothing left to enroll this way.
    let mut after = events.clone();
    after.extend([enrolled, signed]);
    given(after.clone())
        .at(at)
        .when(sign_in(Factor::Totp { step: Some(9) }))
        .then([failed(FailureReason::TotpReplayed, at)]);
    given(after).at(at).when(enrolling(Some(10))).then_err(AccountError::WrongFactor);
    // Only where an authenticator is required and missing; and never for a deactivated profile.
    given(active_with_app()).when(enrolling(Some(9))).then_err(AccountError::WrongFactor);
    let mut email_user = active_with_email();
    email_user.push(MfaRequirementChanged { mfa: MfaRequirement::App, at: t0() }.into());
    given(email_user).when(enrolling(Some(9))).then_err(AccountError::WrongFactor);
    given(active()).when(enrolling(Some(9))).then_err(AccountError::WrongFactor);
    let mut deactivated = deactivated();
    deactivated.push(MfaRequirementChanged { mfa: MfaRequirement::App, at: t0() }.into());
    given(deactivated).at(later(200)).when(enrolling(Some(9))).then_err(AccountError::Deactivated);
}

// --- sign-in ---

#[test]
fn a_correct_password_signs_in_an_account_without_mfa() {
    given(active()).at(later(1)).when(sign_in(Factor::Password { correct: true })).then([signed_in(later(1))]);
}

#[test]
fn first_sign_in_ends_with_a_sign_in_by_invitation_once() {
    let signed: AccountEvent = SignedIn {
        client_id: None,
        method: SignInMethod::Invitation,
        totp_step: None,
        at: t0(),
        personal: Personal::Known(client()),
    }
    .into();
    given(active_with_app()).when(sign_in(Factor::Invitation)).then([signed.clone()]);
    let mut events = active_with_app();
    events.push(signed);
    given(events).when(sign_in(Factor::Invitation)).then_err(AccountError::AlreadyOnboarded);
    given([invited(MfaRequirement::None)])
        .when(sign_in(Factor::Invitation))
        .then_err(AccountError::OnboardingIncomplete);
}

#[test]
fn a_wrong_password_is_recorded() {
    given(active())
        .when(sign_in(Factor::Password { correct: false }))
        .then([failed(FailureReason::WrongPassword, t0())]);
}

#[test]
fn sign_in_on_a_deactivated_account_is_refused() {
    given(deactivated()).when(sign_in(Factor::Password { correct: true })).then_err(AccountError::Deactivated);
}

#[test]
fn sign_in_before_onboarding_is_refused() {
    given([invited(MfaRequirement::None)])
        .when(sign_in(Factor::Password { correct: true }))
        .then_err(AccountError::OnboardingIncomplete);
}

#[test]
fn totp_sign_in_accepts_each_time_step_once() {
    let signed: AccountEvent = SignedIn {
        client_id: None,
        method: SignInMethod::Totp,
        totp_step: Some(101),
        at: t0(),
        personal: Personal::Known(client()),
    }
    .into();
    given(active_with_app()).when(sign_in(Factor::Totp { step: Some(101) })).then([signed]);
    given(active_with_app())
        .when(sign_in(Factor::Totp { step: Some(100) }))
        .then([failed(FailureReason::TotpReplayed, t0())]);
    given(active_with_app()).when(sign_in(Factor::Totp { step: None })).then([failed(FailureReason::WrongTotp, t0())]);
    given(active_with_app())
        .when(sign_in(Factor::Password { correct: true }))
        .then_err(AccountError::SecondFactorRequired { required: MfaRequirement::App });
}

#[test]
fn five_failures_throttle_for_a_minute_and_a_sign_in_resets_the_count() {
    let mut events = active();
    for _ in 0..5 {
        events.push(failed(FailureReason::WrongPassword, t0()));
    }
    let until = t0() + Duration::minutes(1);
    given(events.clone())
        .at(t0() + Duration::seconds(59))
        .when(sign_in(Factor::Password { correct: true }))
        .then_err(AccountError::Throttled { until });
    given(events.clone()).at(until).when(sign_in(Factor::Password { correct: true })).then([signed_in(until)]);
    events.push(failed(FailureReason::WrongPassword, until));
    given(events.clone())
        .at(until + Duration::seconds(119))
        .when(sign_in(Factor::Password { correct: true }))
        .then_err(AccountError::Throttled { until: until + Duration::minutes(2) });
    // A sign-in from the address starts its count afresh: four more failures lock nothing.
    let later = until + Duration::minutes(2);
    events.push(signed_in(later));
    for _ in 0..4 {
        events.push(failed(FailureReason::WrongPassword, later));
    }
    given(events).at(later).when(sign_in(Factor::Password { correct: true })).then([signed_in(later)]);
}

#[test]
fn a_late_scheduler_does_not_let_an_expired_profile_sign_in() {
    // Nobody has recorded the deactivation yet, but six months have passed.
    let deadline = Utc.with_ymd_and_hms(2026, 7, 15, 9, 0, 0).unwrap();
    given(active()).at(deadline).when(sign_in(Factor::Password { correct: true })).then_err(AccountError::Deactivated);
    given(active())
        .at(deadline - Duration::seconds(1))
        .when(sign_in(Factor::Password { correct: true }))
        .then([signed_in(deadline - Duration::seconds(1))]);
}

#[test]
fn wrong_enrollment_codes_throttle_like_sign_in_failures() {
    let mut events = vec![invited(MfaRequirement::App), password_set(PasswordReason::Onboarding, t0())];
    for _ in 0..5 {
        events.push(MfaEnrollmentFailed { method: MfaMethod::App, at: t0() }.into());
    }
    given(events)
        .when(Command::EnrollMfa {
            proof: EnrollmentProof::App { secret: "S".into(), step: Some(1), recovery: vec![], spent: None },
            invitation: Some(TOKEN),
        })
        .then_err(AccountError::Throttled { until: t0() + Duration::minutes(1) });
}

#[test]
fn an_attacker_elsewhere_does_not_lock_the_owner_out() {
    let mut events = active();
    for i in 0..100 {
        events.push(failed_from("198.51.100.66", t0() + Duration::seconds(i)));
    }
    let last = t0() + Duration::seconds(99);
    let attacker = Command::SignIn { factor: Factor::Password { correct: true }, client: from("198.51.100.66") };
    given(events.clone())
        .at(last)
        .when(attacker)
        .then_err(AccountError::Throttled { until: last + Duration::hours(1) });
    // The owner's address has not failed: the brake paces only addresses that have.
    given(events).at(last).when(sign_in(Factor::Password { correct: true })).then([signed_in(last)]);
}

#[test]
fn the_fifty_first_failure_in_a_day_brakes_and_notices_the_owner_once_a_day() {
    let mut events = active();
    for i in 0..50 {
        events.push(failed_from(&format!("198.51.100.{i}"), t0() + Duration::minutes(i)));
    }
    let at = t0() + Duration::hours(1);
    let wrong = |address: &str| Command::SignIn { factor: Factor::Password { correct: false }, client: from(address) };
    let notice: AccountEvent = SecurityNoticeSent { reason: NoticeReason::FailedSignIns, at }.into();
    given(events.clone()).at(at).when(wrong("192.0.2.1")).then([failed_from("192.0.2.1", at), notice.clone()]);
    events.extend([failed_from("192.0.2.1", at), notice]);
    // The brake is on: one password per 10 s from an address that failed, and no second notice.
    let later = at + Duration::seconds(5);
    given(events.clone())
        .at(later)
        .when(Command::SignIn { factor: Factor::Password { correct: true }, client: from("192.0.2.1") })
        .then_err(AccountError::Throttled { until: at + Duration::seconds(10) });
    given(events.clone()).at(later).when(wrong("192.0.2.2")).then([failed_from("192.0.2.2", later)]);
    // A day later, with the brake still on, the owner is told again.
    let tomorrow = at + Duration::hours(24);
    for i in 0..51 {
        events.push(failed_from(&format!("203.0.113.{i}"), tomorrow - Duration::minutes(60 - i)));
    }
    let notice: AccountEvent = SecurityNoticeSent { reason: NoticeReason::FailedSignIns, at: tomorrow }.into();
    given(events.clone())
        .at(tomorrow)
        .when(wrong("192.0.2.3"))
        .then([failed_from("192.0.2.3", tomorrow), notice.clone()]);
    // The owner's sign-in lifts neither the brake nor other addresses' waits: that would tell
    // whoever waits that a real user just signed in.
    events.extend([failed_from("192.0.2.3", tomorrow), notice, signed_in(tomorrow)]);
    given(events.clone())
        .at(tomorrow)
        .when(wrong("192.0.2.3"))
        .then_err(AccountError::Throttled { until: tomorrow + Duration::seconds(10) });
    given(events).at(tomorrow).when(wrong("192.0.2.4")).then([failed_from("192.0.2.4", tomorrow)]);
}

#[test]
fn four_failures_do_not_throttle() {
    let mut events = active();
    for _ in 0..4 {
        events.push(failed(FailureReason::WrongPassword, t0()));
    }
    given(events).when(sign_in(Factor::Password { correct: true })).then([signed_in(t0())]);
}

// --- profile ---

#[test]
fn an_active_user_updates_the_profile() {
    let profile = Profile { display_name: Some("J. Doe".into()), phone: Some("+441632960000".into()), address: None };
    given(active()).when(Command::UpdateProfile { profile: profile.clone() }).then([ProfileUpdated {
        at: t0(),
        personal: Personal::Known(profile.clone()),
    }
    .into()]);
    given(deactivated()).when(Command::UpdateProfile { profile }).then_err(AccountError::Deactivated);
}

#[test]
fn a_profile_update_with_a_bad_field_is_refused_and_names_the_field() {
    let profile = Profile { phone: Some("01632 960001".into()), ..Profile::default() };
    let refused = decide(&Account::fold(&active()), Command::UpdateProfile { profile }, &Ctx { now: t0() });
    assert!(matches!(refused, Err(AccountError::InvalidProfile(ProfileError { field: "phone", .. }))), "{refused:?}");
}

// --- inactivity lifecycle ---

/// 2026-01-15 09:00 + 6 months = 2026-07-15 09:00; the warning 30 days earlier.
fn deactivation_deadline() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 7, 15, 9, 0, 0).unwrap()
}

fn deletion_deadline() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2027, 1, 15, 9, 0, 0).unwrap()
}

#[test]
fn the_deactivation_warning_is_due_thirty_days_before_and_sent_once_per_deadline() {
    let warn_at = deactivation_deadline() - Duration::days(30);
    given(active())
        .at(warn_at - Duration::seconds(1))
        .when(Command::SendDeactivationWarning)
        .then_err(AccountError::NotDue { due: warn_at });
    let warned: AccountEvent = DeactivationWarningSent { deadline: deactivation_deadline(), at: warn_at }.into();
    given(active()).at(warn_at).when(Command::SendDeactivationWarning).then([warned.clone()]);
    let mut events = active();
    events.push(warned);
    given(events.clone())
        .at(warn_at + Duration::days(1))
        .when(Command::SendDeactivationWarning)
        .then_err(AccountError::AlreadyWarned { deadline: deactivation_deadline() });
    // A sign-in moves the deadline: the next warning is for the new deadline.
    let signed = later(100);
    events.push(signed_in(signed));
    let new_deadline = Utc.with_ymd_and_hms(2026, 10, 25, 9, 0, 0).unwrap();
    given(events)
        .at(new_deadline - Duration::days(30))
        .when(Command::SendDeactivationWarning)
        .then([DeactivationWarningSent { deadline: new_deadline, at: new_deadline - Duration::days(30) }.into()]);
}

#[test]
fn deactivation_happens_at_six_months_and_not_before() {
    given(active())
        .at(deactivation_deadline() - Duration::seconds(1))
        .when(Command::Deactivate)
        .then_err(AccountError::NotDue { due: deactivation_deadline() });
    given(active()).at(deactivation_deadline()).when(Command::Deactivate).then([Deactivated {
        deadline: deactivation_deadline(),
        at: deactivation_deadline(),
    }
    .into()]);
    given(deactivated()).when(Command::Deactivate).then_err(AccountError::Deactivated);
}

#[test]
fn a_sign_in_after_the_warning_cancels_the_deactivation() {
    let mut events = active();
    events.push(DeactivationWarningSent { deadline: deactivation_deadline(), at: later(150) }.into());
    events.push(signed_in(later(160)));
    given(events)
        .at(deactivation_deadline())
        .when(Command::Deactivate)
        .then_err(AccountError::NotDue { due: Utc.with_ymd_and_hms(2026, 12, 24, 9, 0, 0).unwrap() });
}

#[test]
fn reactivation_restarts_the_clock() {
    let back = later(200);
    given(deactivated()).at(back).when(Command::Reactivate).then([Reactivated { at: back }.into()]);
    given(active()).when(Command::Reactivate).then_err(AccountError::NotDeactivated);
    let mut events = deactivated();
    events.push(Reactivated { at: back }.into());
    let state = given(events).state;
    assert_eq!(state.status(), Status::Active);
    assert_eq!(state.last_activity, Some(back));
}

#[test]
fn the_deletion_warning_and_deletion_follow_twelve_months_after_last_activity() {
    let warn_at = deletion_deadline() - Duration::days(30);
    given(active()).at(warn_at).when(Command::SendDeletionWarning).then_err(AccountError::NotDeactivated);
    given(deactivated())
        .at(warn_at - Duration::seconds(1))
        .when(Command::SendDeletionWarning)
        .then_err(AccountError::NotDue { due: warn_at });
    let warned: AccountEvent = DeletionWarningSent { deadline: deletion_deadline(), at: warn_at }.into();
    given(deactivated()).at(warn_at).when(Command::SendDeletionWarning).then([warned.clone()]);
    let mut events = deactivated();
    events.push(warned);
    given(events.clone())
        .at(warn_at)
        .when(Command::SendDeletionWarning)
        .then_err(AccountError::AlreadyWarned { deadline: deletion_deadline() });
    given(events.clone())
        .at(deletion_deadline() - Duration::seconds(1))
        .when(Command::Delete)
        .then_err(AccountError::NotDue { due: deletion_deadline() });
    let deleted: AccountEvent = Deleted { deadline: deletion_deadline(), at: deletion_deadline() }.into();
    given(events.clone()).at(deletion_deadline()).when(Command::Delete).then([deleted.clone()]);
    given(active()).at(deletion_deadline()).when(Command::Delete).then_err(AccountError::NotDeactivated);
    events.push(deleted);
    given(events.clone()).when(Command::Delete).then_err(AccountError::Deleted);
    given(events).when(sign_in(Factor::Password { correct: true })).then_err(AccountError::Deleted);
}

#[test]
fn invitations_that_are_never_used_are_deactivated_too() {
    given([invited(MfaRequirement::None)]).at(deactivation_deadline()).when(Command::Deactivate).then([Deactivated {
        deadline: deactivation_deadline(),
        at: deactivation_deadline(),
    }
    .into()]);
}

#[test]
fn a_code_whose_mail_never_left_may_be_replaced_at_once() {
    let mut events = active_with_email();
    events.push(code_issued(CodePurpose::SignIn, t0()));
    given(events)
        .at(t0() + Duration::seconds(5))
        .when(Command::IssueEmailCode {
            purpose: CodePurpose::SignIn,
            code_digest: CODE,
            invitation: None,
            previous_unsent: true,
        })
        .then([code_issued(CodePurpose::SignIn, t0() + Duration::seconds(5))]);
}

// --- password reset (SPEC §10) ---

fn reset_requested(token: SecretDigest, at: DateTime<Utc>) -> AccountEvent {
    PasswordResetRequested {
        expires_at: at + RESET_LINK_VALIDITY,
        at,
        personal: Personal::Known(ResetLink { token_digest: token }),
    }
    .into()
}

fn reset_with(token: SecretDigest) -> Command {
    Command::SetPassword { password_hash: "$argon2id$h".into(), via: PasswordVia::Reset { token_digest: token } }
}

#[test]
fn an_active_profile_asking_for_a_reset_gets_a_thirty_minute_link() {
    given(active())
        .when(Command::RequestPasswordReset { token_digest: TOKEN, capped: true })
        .then([reset_requested(TOKEN, t0())]);
}

#[test]
fn a_deactivated_profile_asking_for_a_reset_gets_a_notice_and_no_link() {
    given(deactivated())
        .when(Command::RequestPasswordReset { token_digest: TOKEN, capped: true })
        .then([SecurityNoticeSent { reason: NoticeReason::ResetWhileDeactivated, at: t0() }.into()]);
}

#[test]
fn a_reset_before_first_sign_in_is_refused_and_a_deleted_profile_gets_nothing() {
    given([invited(MfaRequirement::None)])
        .when(Command::RequestPasswordReset { token_digest: TOKEN, capped: true })
        .then_err(AccountError::OnboardingIncomplete);
    let mut deleted = deactivated();
    deleted.push(Deleted { deadline: later(400), at: later(400) }.into());
    given(deleted)
        .when(Command::RequestPasswordReset { token_digest: TOKEN, capped: true })
        .then_err(AccountError::Deleted);
}

#[test]
fn at_most_three_reset_mails_an_hour_count_links_and_notices_alike() {
    let mut events = active();
    for minutes in [0, 10, 20] {
        events.push(reset_requested(TOKEN, t0() + Duration::minutes(minutes)));
    }
    given(events.clone())
        .at(t0() + Duration::minutes(59))
        .when(Command::RequestPasswordReset { token_digest: OTHER_TOKEN, capped: true })
        .then_err(AccountError::TooManyResetMails { retry_at: t0() + Duration::hours(1) });
    given(events)
        .at(t0() + Duration::minutes(60))
        .when(Command::RequestPasswordReset { token_digest: OTHER_TOKEN, capped: true })
        .then([reset_requested(OTHER_TOKEN, t0() + Duration::minutes(60))]);
    let mut notices = deactivated();
    for minutes in [0, 1, 2] {
        notices.push(
            SecurityNoticeSent { reason: NoticeReason::ResetWhileDeactivated, at: t0() + Duration::minutes(minutes) }
                .into(),
        );
    }
    given(notices)
        .at(t0() + Duration::minutes(3))
        .when(Command::RequestPasswordReset { token_digest: TOKEN, capped: true })
        .then_err(AccountError::TooManyResetMails { retry_at: t0() + Duration::hours(1) });
}

#[test]
fn the_live_link_sets_the_password_once() {
    let mut events = active();
    events.push(reset_requested(TOKEN, t0()));
    let then = given(events.clone()).at(t0() + Duration::minutes(29)).when(reset_with(TOKEN));
    then.then([password_set(PasswordReason::Reset, t0() + Duration::minutes(29))]);
    events.push(password_set(PasswordReason::Reset, t0() + Duration::minutes(29)));
    given(events).at(t0() + Duration::minutes(29)).when(reset_with(TOKEN)).then_err(AccountError::InvalidResetLink);
}

#[test]
fn an_expired_replaced_or_unknown_link_is_refused() {
    let mut events = active();
    events.push(reset_requested(TOKEN, t0()));
    given(events.clone())
        .at(t0() + Duration::minutes(30))
        .when(reset_with(TOKEN))
        .then_err(AccountError::ResetLinkExpired);
    given(events.clone()).when(reset_with(OTHER_TOKEN)).then_err(AccountError::InvalidResetLink);
    events.push(reset_requested(OTHER_TOKEN, t0() + Duration::minutes(1)));
    given(events).at(t0() + Duration::minutes(2)).when(reset_with(TOKEN)).then_err(AccountError::InvalidResetLink);
    given(active()).when(reset_with(TOKEN)).then_err(AccountError::InvalidResetLink);
}

#[test]
fn a_password_change_or_deactivation_voids_a_link_still_out() {
    let mut changed = active();
    changed.push(reset_requested(TOKEN, t0()));
    changed.push(password_set(PasswordReason::Change, t0()));
    given(changed).when(reset_with(TOKEN)).then_err(AccountError::InvalidResetLink);
    let mut events = active();
    events.push(reset_requested(TOKEN, t0()));
    events.push(Deactivated { deadline: t0(), at: t0() }.into());
    events.push(Reactivated { at: t0() }.into());
    given(events).when(reset_with(TOKEN)).then_err(AccountError::InvalidResetLink);
}

#[test]
fn a_sealed_link_matches_nothing() {
    let mut events = active();
    events.push(
        PasswordResetRequested {
            expires_at: t0() + RESET_LINK_VALIDITY,
            at: t0(),
            personal: Personal::Sealed("c2VhbGVk".into()),
        }
        .into(),
    );
    given(events).when(reset_with(TOKEN)).then_err(AccountError::InvalidResetLink);
}

// --- recovery codes ---

const RECOVERY: [SecretDigest; 3] = [SecretDigest([31; 32]), SecretDigest([32; 32]), SecretDigest([33; 32])];

fn codes_issued(step: Option<u64>) -> AccountEvent {
    RecoveryCodesIssued {
        totp_step: step,
        at: t0(),
        personal: Personal::Known(RecoveryCodeSet { digests: RECOVERY.to_vec() }),
    }
    .into()
}

fn with_codes() -> Vec<AccountEvent> {
    let mut events = active_with_app();
    events.push(codes_issued(None));
    events
}

fn recovery_sign_in(presented: SecretDigest) -> Command {
    sign_in(Factor::RecoveryCode { presented })
}

#[test]
fn enrolling_an_authenticator_issues_the_recovery_codes_with_it() {
    let steps = vec![invited(MfaRequirement::App), password_set(PasswordReason::Onboarding, t0())];
    given(steps)
        .when(Command::EnrollMfa {
            proof: EnrollmentProof::App {
                secret: "JBSWY3DPEHPK3PXP".into(),
                step: Some(100),
                recovery: RECOVERY.to_vec(),
                spent: None,
            },
            invitation: Some(TOKEN),
        })
        .then([app_enrolled(100), codes_issued(None)]);
}

#[test]
fn a_recovery_code_signs_in_once_and_counts_what_is_left() {
    let used = RecoveryCodeUsed { index: 1, remaining: 2, at: t0() };
    let signed = SignedIn {
        client_id: None,
        method: SignInMethod::RecoveryCode,
        totp_step: None,
        at: t0(),
        personal: Personal::Known(client()),
    };
    given(with_codes()).when(recovery_sign_in(RECOVERY[1])).then([used.clone().into(), signed.into()]);
    let mut events = with_codes();
    events.push(used.into());
    given(events).when(recovery_sign_in(RECOVERY[1])).then([failed(FailureReason::WrongRecoveryCode, t0())]);
}

#[test]
fn a_wrong_recovery_code_is_a_failed_sign_in_and_is_throttled_like_a_code() {
    given(with_codes()).when(recovery_sign_in(WRONG_CODE)).then([failed(FailureReason::WrongRecoveryCode, t0())]);
    let mut events = with_codes();
    for _ in 0..5 {
        events.push(failed(FailureReason::WrongRecoveryCode, t0()));
    }
    assert!(matches!(given(events).when(recovery_sign_in(RECOVERY[0])).result, Err(AccountError::Throttled { .. })));
}

#[test]
fn a_recovery_code_is_no_factor_for_an_account_without_an_authenticator() {
    given(active()).when(recovery_sign_in(RECOVERY[0])).then_err(AccountError::WrongFactor);
}

#[test]
fn a_new_set_needs_a_fresh_authenticator_code_and_voids_the_old_set() {
    let new_set = vec![SecretDigest([41; 32])];
    let issued = RecoveryCodesIssued {
        totp_step: Some(101),
        at: t0(),
        personal: Personal::Known(RecoveryCodeSet { digests: new_set.clone() }),
    };
    given(with_codes())
        .when(Command::IssueRecoveryCodes { step: Some(101), digests: new_set.clone() })
        .then([issued.clone().into()]);
    given(with_codes())
        .when(Command::IssueRecoveryCodes { step: Some(100), digests: new_set.clone() })
        .then([MfaEnrollmentFailed { method: MfaMethod::App, at: t0() }.into()]);
    given(with_codes())
        .when(Command::IssueRecoveryCodes { step: None, digests: new_set.clone() })
        .then([MfaEnrollmentFailed { method: MfaMethod::App, at: t0() }.into()]);
    let mut events = with_codes();
    events.push(issued.into());
    given(events).when(recovery_sign_in(RECOVERY[0])).then([failed(FailureReason::WrongRecoveryCode, t0())]);
    given(active_with_email())
        .when(Command::IssueRecoveryCodes { step: Some(1), digests: new_set })
        .then_err(AccountError::NoAuthenticator);
}

// --- two-factor reset by an administrator ---

#[test]
fn an_mfa_reset_voids_the_key_and_the_codes_and_the_next_sign_in_enrolls_anew() {
    given(with_codes()).when(Command::ResetMfa).then([MfaReset { at: t0() }.into()]);
    let mut events = with_codes();
    events.push(MfaReset { at: t0() }.into());
    let state = given(events.clone()).state;
    assert!(state.enrollment.is_none() && state.recovery_codes.is_empty());
    given(events.clone()).when(recovery_sign_in(RECOVERY[0])).then_err(AccountError::MfaNotEnrolled);
    given(events.clone()).when(sign_in(Factor::Totp { step: Some(200) })).then_err(AccountError::MfaNotEnrolled);
    // Nothing left to reset: refused, nothing recorded.
    given(events).when(Command::ResetMfa).then_err(AccountError::NoAuthenticator);
    given(active()).when(Command::ResetMfa).then_err(AccountError::NoAuthenticator);
    given([invited(MfaRequirement::App)]).when(Command::ResetMfa).then_err(AccountError::OnboardingIncomplete);
}

#[test]
fn the_owner_of_a_reset_profile_enrolls_at_sign_in_with_new_codes() {
    let mut events = with_codes();
    events.push(MfaReset { at: t0() }.into());
    let result = given(events)
        .when(Command::SignInEnrolling {
            secret: "NEWSECRET".into(),
            step: Some(300),
            client: client(),
            recovery: RECOVERY.to_vec(),
        })
        .result
        .unwrap();
    let types: Vec<&str> = result.iter().map(|e| e.type_name()).collect();
    assert_eq!(types, ["MfaEnrolled", "RecoveryCodesIssued", "SignedIn"]);
}

#[test]
fn a_username_reminder_goes_to_active_and_deactivated_profiles_within_the_same_cap() {
    let reminder = |at| -> AccountEvent { SecurityNoticeSent { reason: NoticeReason::UsernameReminder, at }.into() };
    given(active()).when(Command::RemindUsername).then([reminder(t0())]);
    given(deactivated()).when(Command::RemindUsername).then([reminder(t0())]);
    given([invited(MfaRequirement::None)]).when(Command::RemindUsername).then_err(AccountError::OnboardingIncomplete);
    let mut events = active();
    for _ in 0..3 {
        events.push(reminder(t0()));
    }
    given(events.clone())
        .when(Command::RemindUsername)
        .then_err(AccountError::TooManyResetMails { retry_at: t0() + Duration::hours(1) });
    // Reminders asked for by whoever knows the address leave the owner's reset links alone.
    given(events)
        .when(Command::RequestPasswordReset { token_digest: TOKEN, capped: true })
        .then([reset_requested(TOKEN, t0())]);
}

#[test]
fn an_administrators_reset_is_not_held_to_the_owners_hourly_cap() {
    let mut events = active();
    for minutes in [0, 10, 20] {
        events.push(reset_requested(TOKEN, t0() + Duration::minutes(minutes)));
    }
    given(events)
        .at(t0() + Duration::minutes(30))
        .when(Command::RequestPasswordReset { token_digest: OTHER_TOKEN, capped: false })
        .then([reset_requested(OTHER_TOKEN, t0() + Duration::minutes(30))]);
}

#[test]
fn a_two_factor_reset_is_for_an_authenticator_app_not_for_emailed_codes() {
    given(active_with_email()).when(Command::ResetMfa).then_err(AccountError::NoAuthenticator);
}

#[test]
fn a_recovery_code_stands_in_for_the_lost_authenticator_once_when_moving_to_a_new_one() {
    let proof = |spent| EnrollmentProof::App {
        secret: "NEWSECRET".into(),
        step: Some(300),
        recovery: vec![SecretDigest([41; 32])],
        spent: Some(spent),
    };
    let result = given(with_codes()).when(Command::EnrollMfa { proof: proof(RECOVERY[2]), invitation: None }).result;
    let types: Vec<&str> = result.unwrap().iter().map(|e| e.type_name()).collect();
    assert_eq!(types, ["RecoveryCodeUsed", "MfaEnrolled", "RecoveryCodesIssued"]);
    let mut used = with_codes();
    used.push(RecoveryCodeUsed { index: 2, remaining: 2, at: t0() }.into());
    given(used).when(Command::EnrollMfa { proof: proof(RECOVERY[2]), invitation: None }).then([MfaEnrollmentFailed {
        method: MfaMethod::App,
        at: t0(),
    }
    .into()]);
}

// --- from emailed codes to a newly required authenticator app (docs/adr/0015) ---

fn switching() -> Vec<AccountEvent> {
    let mut events = active_with_email();
    events.push(MfaRequirementChanged { mfa: MfaRequirement::App, at: t0() }.into());
    events
}

#[test]
fn an_emailed_code_account_whose_org_now_requires_an_app_signs_in_with_a_last_code_then_enrolls() {
    let issue = |digest| Command::IssueEmailCode {
        purpose: CodePurpose::SignIn,
        code_digest: digest,
        invitation: None,
        previous_unsent: false,
    };
    given(switching()).when(issue(CODE)).then([code_issued(CodePurpose::SignIn, t0())]);
    let mut events = switching();
    events.push(code_issued(CodePurpose::SignIn, t0()));
    given(events.clone())
        .when(sign_in(Factor::EmailCode { presented: WRONG_CODE }))
        .then([failed(FailureReason::WrongEmailCode, t0())]);
    let signed = SignedIn {
        client_id: None,
        method: SignInMethod::EmailCode,
        totp_step: None,
        at: t0(),
        personal: Personal::Known(client()),
    };
    given(events.clone()).when(sign_in(Factor::EmailCode { presented: CODE })).then([signed.clone().into()]);
    events.push(signed.into());
    let result = given(events)
        .when(Command::EnrollMfa {
            proof: EnrollmentProof::App {
                secret: "JBSWY3DPEHPK3PXP".into(),
                step: Some(100),
                recovery: RECOVERY.to_vec(),
                spent: None,
            },
            invitation: None,
        })
        .result
        .unwrap();
    let types: Vec<&str> = result.iter().map(|e| e.type_name()).collect();
    assert_eq!(types, ["MfaEnrolled", "RecoveryCodesIssued"]);
}

#[test]
fn an_account_with_an_app_gets_no_emailed_code_in_its_place() {
    let mut events = active_with_app();
    events.push(code_issued(CodePurpose::SignIn, t0()));
    given(events).when(sign_in(Factor::EmailCode { presented: CODE })).then_err(AccountError::WrongFactor);
    given(active_with_app())
        .when(Command::IssueEmailCode {
            purpose: CodePurpose::SignIn,
            code_digest: CODE,
            invitation: None,
            previous_unsent: false,
        })
        .then_err(AccountError::WrongFactor);
}
