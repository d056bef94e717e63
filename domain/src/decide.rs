//! `decide`: what a command means for an account in a given state. It either returns the events
//! that record the decision or a typed error naming the rule that forbids it. Failed sign-in and
//! code attempts are decisions too: they return `SignInFailed` / `MfaEnrollmentFailed` events.

use chrono::{DateTime, Duration, Utc};

use crate::account::{Account, Status};
use crate::events::*;
use crate::ids::{AccountId, Username};
use crate::lifecycle::{Lifecycle, Step};
use crate::personal::Personal;
use crate::profile::{self, ProfileError};
use crate::secret::{Confidential, SecretDigest};
use crate::throttle::{Attempt, ENROLLMENT};

pub const INVITATION_VALIDITY: Duration = Duration::days(7);
pub const EMAIL_CODE_VALIDITY: Duration = Duration::minutes(10);
pub const EMAIL_CODE_MAX_WRONG: u32 = 5;
/// The shortest interval between two emailed codes.
pub const EMAIL_CODE_RESEND_INTERVAL: Duration = Duration::seconds(60);
/// Times an invitation may be sent again within any 24 hours.
pub const RESENDS_PER_DAY: usize = 5;
/// How long a password reset link works.
pub const RESET_LINK_VALIDITY: Duration = Duration::minutes(30);
/// Password reset mails (links, or the notice that the profile is deactivated) per account per
/// hour: enough for a user who lost one, too few to flood an inbox.
pub const RESET_MAILS_PER_HOUR: usize = 3;
/// Recovery codes in a set.
pub const RECOVERY_CODES: usize = 10;

/// What `decide` may know besides the state and the command.
#[derive(Debug, Clone, Copy)]
pub struct Ctx {
    pub now: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Invite(Invite),
    ResendInvitation {
        token_digest: SecretDigest,
    },
    /// The hash is computed by the caller: hashing is slow and needs randomness.
    SetPassword {
        password_hash: Confidential,
        via: PasswordVia,
    },
    ChangeMfaRequirement {
        mfa: MfaRequirement,
    },
    /// `invitation` is the link's token digest during first sign-in, `None` for a signed-in user.
    /// `previous_unsent` when the mail of the code issued last has not left (the mail server
    /// refused it so far): a new code may then be issued without waiting out the spacing.
    IssueEmailCode {
        purpose: CodePurpose,
        code_digest: SecretDigest,
        invitation: Option<SecretDigest>,
        previous_unsent: bool,
    },
    EnrollMfa {
        proof: EnrollmentProof,
        invitation: Option<SecretDigest>,
    },
    AcceptTerms {
        version: u32,
        invitation: Option<SecretDigest>,
    },
    SignIn {
        factor: Factor,
        client: Client,
    },
    /// Sign-in of an account whose org began requiring an authenticator app after its first
    /// sign-in: the caller has just verified the password, offered a new key and matched the
    /// code typed against it (`step`, or `None` when it matched nothing). A right code enrolls
    /// the key and signs in at once; a wrong one is a failed sign-in and enrolls nothing.
    SignInEnrolling {
        secret: Confidential,
        step: Option<u64>,
        client: Client,
        /// The digests of the recovery codes shown with the new key.
        recovery: Vec<SecretDigest>,
    },
    /// The owner (or an administrator for them) asks for a password reset: an active profile
    /// gets a link whose token has the digest `token_digest`, a deactivated one a notice.
    RequestPasswordReset {
        token_digest: SecretDigest,
        /// Held to the hourly cap of reset links: the owner's own requests are, since anyone may
        /// make them; an administrator's or operator's are not.
        capped: bool,
    },
    /// Someone who forgot their username asks for the usernames the profile's address holds.
    RemindUsername,
    /// A signed-in user asks for a new set of recovery codes, proven with a code from the current
    /// authenticator (`step`, or `None` when it matched nothing, checked by the caller).
    IssueRecoveryCodes {
        step: Option<u64>,
        digests: Vec<SecretDigest>,
    },
    /// An administrator voids the enrolled second factor and the recovery codes.
    ResetMfa,
    /// A signed-in user gave a wrong current password to change it (checked by the caller).
    WrongCurrentPassword {
        client: Client,
    },
    UpdateProfile {
        profile: Profile,
    },
    SendDeactivationWarning,
    Deactivate,
    Reactivate,
    SendDeletionWarning,
    Delete,
    /// An auditor read a history, a proof or a head: recorded on the auditor's own stream, at
    /// the command's time.
    RecordAuditRead(AuditorRead),
    /// An application signs the user in through Tenure on their session (SPEC §13): activity,
    /// naming the application; the first time, the application is also `Authorized`.
    SignInToClient {
        client_id: String,
        scope: String,
        client: Client,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    pub account_id: AccountId,
    pub username: Username,
    pub org: Org,
    pub role: Role,
    pub mfa: MfaRequirement,
    pub email: String,
    pub display_name: Option<String>,
    pub token_digest: SecretDigest,
    /// An auditor for every org (only an operator makes one).
    pub all_orgs: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordVia {
    /// First sign-in, proven by the invitation link.
    Invitation { token_digest: SecretDigest },
    /// A signed-in user who has just re-entered the current password.
    Change,
    /// The owner of a live reset link.
    Reset { token_digest: SecretDigest },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnrollmentProof {
    /// The caller checked a code against `secret`; `step` is the TOTP time step it matched, or
    /// `None` when it matched none in the accepted window.
    App {
        secret: Confidential,
        step: Option<u64>,
        /// The digests of the recovery codes shown with the key, issued with the enrollment.
        recovery: Vec<SecretDigest>,
        /// A recovery code given in place of a code from the current authenticator (a user
        /// who lost it moves to a new one): it must be unused, and is recorded as used.
        spent: Option<SecretDigest>,
    },
    Email {
        presented: SecretDigest,
    },
}

/// One factor of a sign-in, already checked by the caller where checking is slow or needs the
/// secret (argon2 verification, TOTP window search).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Factor {
    /// The end of first sign-in: the invitation link, the new password and any second factor
    /// were just proven. Only an account that has never signed in may use it.
    Invitation,
    Password {
        correct: bool,
    },
    Totp {
        step: Option<u64>,
    },
    EmailCode {
        presented: SecretDigest,
    },
    /// One of the recovery codes, in place of the authenticator.
    RecoveryCode {
        presented: SecretDigest,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("no such account")]
    UnknownAccount,
    #[error(transparent)]
    InvalidEmail(#[from] crate::ids::EmailError),
    /// A profile field (display name, phone, address) breaks its rule; the error names it.
    #[error(transparent)]
    InvalidProfile(#[from] ProfileError),
    #[error("the account already exists")]
    AlreadyExists,
    #[error("only an auditor reads histories")]
    NotAnAuditor,
    #[error("only an auditor can be made for every org")]
    AllOrgsForAuditorsOnly,
    #[error("the profile is deactivated; the organisation's administrator can reactivate it")]
    Deactivated,
    #[error("the profile has been deleted")]
    Deleted,
    #[error("first sign-in is not finished; use the invitation link")]
    OnboardingIncomplete,
    #[error("first sign-in is already finished")]
    AlreadyOnboarded,
    #[error("the invitation link is not valid")]
    InvalidInvitation,
    #[error("the invitation link has expired")]
    InvitationExpired,
    #[error("the password has already been set; continue with the next step")]
    PasswordAlreadySet,
    #[error("set a password first")]
    PasswordNotSet,
    #[error("complete the two-factor setup first")]
    MfaNotEnrolled,
    #[error("that second factor does not meet the {required:?} requirement")]
    MfaMethodNotAllowed { required: MfaRequirement },
    #[error("a {required:?} code is required to finish signing in")]
    SecondFactorRequired { required: MfaRequirement },
    #[error("this account does not use that kind of code")]
    WrongFactor,
    #[error("terms version {version} is older than the accepted version {accepted}")]
    StaleTermsVersion { version: u32, accepted: u32 },
    #[error("too many failed attempts; try again after {until}")]
    Throttled { until: DateTime<Utc> },
    #[error("no code has been sent; request a new code")]
    NoEmailCode,
    #[error("the code has expired; request a new code")]
    EmailCodeExpired,
    #[error("too many wrong codes; request a new code")]
    EmailCodeExhausted,
    #[error("a code was sent moments ago; you can request another at {retry_at}")]
    ResendTooSoon { retry_at: DateTime<Utc> },
    #[error("the invitation has been sent again 5 times in a day; it can be sent again at {retry_at}")]
    TooManyResends { retry_at: DateTime<Utc> },
    #[error("not due before {due}")]
    NotDue { due: DateTime<Utc> },
    #[error("the warning for the deadline {deadline} has already been sent")]
    AlreadyWarned { deadline: DateTime<Utc> },
    #[error("the profile is not deactivated")]
    NotDeactivated,
    #[error("this password reset link is not valid (it may have been used or replaced)")]
    InvalidResetLink,
    #[error("this password reset link has expired; ask for a new one")]
    ResetLinkExpired,
    #[error("3 recovery mails have been sent within an hour; another can be sent at {retry_at}")]
    TooManyResetMails { retry_at: DateTime<Utc> },
    #[error("this profile has no authenticator app")]
    NoAuthenticator,
}

pub fn decide(state: &Account, command: Command, ctx: &Ctx) -> Result<Vec<AccountEvent>, AccountError> {
    let now = ctx.now;
    if let Command::Invite(invite) = command {
        crate::ids::check_email(&invite.email)?;
        let display_name = Profile { display_name: invite.display_name.clone(), ..Profile::default() };
        profile::check(&display_name)?;
        if invite.all_orgs && invite.role != Role::Auditor {
            return Err(AccountError::AllOrgsForAuditorsOnly);
        }
        return match state.status() {
            Status::New => Ok(vec![invited(invite, now)]),
            _ => Err(AccountError::AlreadyExists),
        };
    }
    match state.status() {
        Status::New => return Err(AccountError::UnknownAccount),
        Status::Deleted => return Err(AccountError::Deleted),
        Status::Invited | Status::Onboarding | Status::Active | Status::Deactivated => {}
    }
    let event: AccountEvent = match command {
        Command::Invite(_) => unreachable!("handled above"),
        Command::ResendInvitation { token_digest } => {
            require_onboarding(state)?;
            // Each resend mails a new link: a day's worth is bounded, so that neither a careless
            // administrator nor a stolen admin session can flood an inbox.
            if let [oldest, ..] = state.recent_resends[..]
                && state.recent_resends.len() >= RESENDS_PER_DAY
                && now - oldest < Duration::days(1)
            {
                return Err(AccountError::TooManyResends { retry_at: oldest + Duration::days(1) });
            }
            InvitationResent { invitation: invitation(token_digest, now), at: now }.into()
        }
        Command::SetPassword { password_hash, via } => {
            let reason = match via {
                PasswordVia::Invitation { token_digest } => {
                    require_onboarding(state)?;
                    require_invitation(state, token_digest, now)?;
                    if state.password.is_some() {
                        return Err(AccountError::PasswordAlreadySet);
                    }
                    PasswordReason::Onboarding
                }
                PasswordVia::Change => {
                    require_active(state)?;
                    PasswordReason::Change
                }
                PasswordVia::Reset { token_digest } => {
                    require_active(state)?;
                    let reset = state.reset.as_ref().ok_or(AccountError::InvalidResetLink)?;
                    // Sealed or erased, the link matches nothing.
                    if reset.link.known().is_none_or(|link| link.token_digest != token_digest) {
                        return Err(AccountError::InvalidResetLink);
                    }
                    if now >= reset.expires_at {
                        return Err(AccountError::ResetLinkExpired);
                    }
                    PasswordReason::Reset
                }
            };
            PasswordSet { reason, at: now, personal: Personal::Known(PasswordHash { password_hash: password_hash.0 }) }
                .into()
        }
        Command::ChangeMfaRequirement { mfa } => {
            if mfa == state.mfa_requirement {
                return Ok(vec![]);
            }
            MfaRequirementChanged { mfa, at: now }.into()
        }
        Command::IssueEmailCode { purpose, code_digest, invitation, previous_unsent } => {
            match purpose {
                // The password step just passed for this client address: a code may follow.
                CodePurpose::SignIn => {
                    require_active(state)?;
                    if state.mfa_requirement != MfaRequirement::Email && !switching_to_app(state) {
                        return Err(AccountError::WrongFactor);
                    }
                }
                CodePurpose::Enrollment => {
                    require_step_authority(state, invitation, now)?;
                    require_not_throttled(state, ENROLLMENT, Attempt::Code, now)?;
                    require_password(state)?;
                    allow_method(state, MfaMethod::Email)?;
                }
            }
            if let Some(code) = &state.email_code
                && !previous_unsent
            {
                let retry_at = code.issued_at + EMAIL_CODE_RESEND_INTERVAL;
                if now < retry_at {
                    return Err(AccountError::ResendTooSoon { retry_at });
                }
            }
            EmailCodeIssued { purpose, code_digest, expires_at: now + EMAIL_CODE_VALIDITY, at: now }.into()
        }
        Command::EnrollMfa { proof, invitation } => {
            require_step_authority(state, invitation, now)?;
            require_not_throttled(state, ENROLLMENT, Attempt::Code, now)?;
            require_password(state)?;
            match proof {
                EnrollmentProof::App { secret, step, recovery, spent } => {
                    allow_method(state, MfaMethod::App)?;
                    let used = spent.map(|digest| state.recovery_codes.iter().position(|code| *code == Some(digest)));
                    return Ok(match (step, used) {
                        (None, _) | (_, Some(None)) => {
                            vec![MfaEnrollmentFailed { method: MfaMethod::App, at: now }.into()]
                        }
                        (Some(step), used) => used
                            .flatten()
                            .map(|index| used_code(state, index, now))
                            .into_iter()
                            .chain(with_recovery_codes(
                                MfaEnrolled {
                                    method: MfaMethod::App,
                                    totp_step: Some(step),
                                    at: now,
                                    personal: Personal::Known(MfaSecret { totp_secret: Some(secret.0) }),
                                }
                                .into(),
                                recovery,
                                now,
                            ))
                            .collect(),
                    });
                }
                EnrollmentProof::Email { presented } => {
                    allow_method(state, MfaMethod::Email)?;
                    if check_email_code(state, CodePurpose::Enrollment, presented, now)? {
                        MfaEnrolled {
                            method: MfaMethod::Email,
                            totp_step: None,
                            at: now,
                            personal: Personal::Known(MfaSecret { totp_secret: None }),
                        }
                        .into()
                    } else {
                        MfaEnrollmentFailed { method: MfaMethod::Email, at: now }.into()
                    }
                }
            }
        }
        Command::AcceptTerms { version, invitation } => {
            require_step_authority(state, invitation, now)?;
            require_password(state)?;
            if !state.mfa_satisfied() {
                return Err(AccountError::MfaNotEnrolled);
            }
            if let Some(accepted) = state.terms_version {
                if version < accepted {
                    return Err(AccountError::StaleTermsVersion { version, accepted });
                }
                if version == accepted {
                    return Ok(vec![]);
                }
            }
            TermsAccepted { version, at: now }.into()
        }
        Command::SignIn { factor, client } => return sign_in(state, factor, client, now),
        Command::SignInEnrolling { secret, step, client, recovery } => {
            return sign_in_enrolling(state, secret, step, client, recovery, now);
        }
        Command::RemindUsername => {
            require_under_cap(&state.recent_recovery_notices, now)?;
            match state.status() {
                Status::Active | Status::Deactivated => {
                    SecurityNoticeSent { reason: NoticeReason::UsernameReminder, at: now }.into()
                }
                _ => return Err(AccountError::OnboardingIncomplete),
            }
        }
        Command::RequestPasswordReset { token_digest, capped } => match state.status() {
            Status::Active => {
                if capped {
                    require_under_cap(&state.recent_reset_mails, now)?;
                }
                PasswordResetRequested {
                    expires_at: now + RESET_LINK_VALIDITY,
                    at: now,
                    personal: Personal::Known(ResetLink { token_digest }),
                }
                .into()
            }
            Status::Deactivated => {
                require_under_cap(&state.recent_recovery_notices, now)?;
                SecurityNoticeSent { reason: NoticeReason::ResetWhileDeactivated, at: now }.into()
            }
            _ => return Err(AccountError::OnboardingIncomplete),
        },
        Command::IssueRecoveryCodes { step, digests } => {
            require_active(state)?;
            require_not_throttled(state, ENROLLMENT, Attempt::Code, now)?;
            if state.enrollment.as_ref().is_none_or(|e| e.method != MfaMethod::App) {
                return Err(AccountError::NoAuthenticator);
            }
            match step {
                Some(step) if state.last_totp_step.is_none_or(|last| step > last) => RecoveryCodesIssued {
                    totp_step: Some(step),
                    at: now,
                    personal: Personal::Known(RecoveryCodeSet { digests }),
                }
                .into(),
                _ => MfaEnrollmentFailed { method: MfaMethod::App, at: now }.into(),
            }
        }
        Command::ResetMfa => {
            match state.status() {
                Status::Active | Status::Deactivated => {}
                _ => return Err(AccountError::OnboardingIncomplete),
            }
            // Only an authenticator app (or codes left from one) has anything to void: emailed
            // codes go to the mailbox, and an account already reset has set up nothing since.
            let has_app = state.enrollment.as_ref().is_some_and(|e| e.method == MfaMethod::App);
            if !has_app && state.recovery_codes.is_empty() {
                return Err(AccountError::NoAuthenticator);
            }
            MfaReset { at: now }.into()
        }
        Command::WrongCurrentPassword { client } => {
            require_active(state)?;
            require_not_throttled(state, &client.address, Attempt::Password, now)?;
            let failure = SignInFailed {
                reason: FailureReason::WrongCurrentPassword,
                at: now,
                personal: Personal::Known(client),
            };
            return Ok(with_notice(state, failure));
        }
        Command::UpdateProfile { profile } => {
            profile::check(&profile)?;
            require_active(state)?;
            ProfileUpdated { at: now, personal: Personal::Known(profile) }.into()
        }
        Command::SendDeactivationWarning => {
            require_not_deactivated(state)?;
            let deadline = scheduled(state, Step::WarnDeactivation, now)?;
            DeactivationWarningSent { deadline, at: now }.into()
        }
        Command::Deactivate => {
            require_not_deactivated(state)?;
            let deadline = scheduled(state, Step::Deactivate, now)?;
            Deactivated { deadline, at: now }.into()
        }
        Command::Reactivate => {
            if state.status() != Status::Deactivated {
                return Err(AccountError::NotDeactivated);
            }
            Reactivated { at: now }.into()
        }
        Command::SendDeletionWarning => {
            if state.status() != Status::Deactivated {
                return Err(AccountError::NotDeactivated);
            }
            let deadline = scheduled(state, Step::WarnDeletion, now)?;
            DeletionWarningSent { deadline, at: now }.into()
        }
        Command::SignInToClient { client_id, scope, client } => {
            match state.status() {
                Status::Active => {}
                Status::Deactivated => return Err(AccountError::Deactivated),
                _ => return Err(AccountError::OnboardingIncomplete),
            }
            let signed_in = SignedIn {
                method: SignInMethod::Session,
                totp_step: None,
                client_id: Some(client_id.clone()),
                at: now,
                personal: Personal::Known(client),
            };
            if state.authorized_clients.contains(&client_id) {
                return Ok(vec![signed_in.into()]);
            }
            return Ok(vec![Authorized { client_id, scope, at: now }.into(), signed_in.into()]);
        }
        Command::RecordAuditRead(read) => {
            if state.status() != Status::Active || state.invited.as_ref().map(|i| i.role) != Some(Role::Auditor) {
                return Err(AccountError::NotAnAuditor);
            }
            AuditorRead { at: now, ..read }.into()
        }
        Command::Delete => {
            if state.status() != Status::Deactivated {
                return Err(AccountError::NotDeactivated);
            }
            let deadline = scheduled(state, Step::Delete, now)?;
            Deleted { deadline, at: now }.into()
        }
    };
    Ok(vec![event])
}

fn invited(invite: Invite, now: DateTime<Utc>) -> AccountEvent {
    AccountInvited {
        account_id: invite.account_id,
        username: invite.username,
        org: invite.org,
        role: invite.role,
        mfa: invite.mfa,
        invitation: invitation(invite.token_digest, now),
        all_orgs: invite.all_orgs,
        at: now,
        personal: Personal::Known(Invitee { email: invite.email, display_name: invite.display_name }),
    }
    .into()
}

fn invitation(token_digest: SecretDigest, now: DateTime<Utc>) -> Invitation {
    Invitation { token_digest, expires_at: now + INVITATION_VALIDITY }
}

/// A sign-in attempt; a failure that puts on the brake, or finds it on, also notices the owner
/// (at most once a day).
fn sign_in(
    state: &Account,
    factor: Factor,
    client: Client,
    now: DateTime<Utc>,
) -> Result<Vec<AccountEvent>, AccountError> {
    Ok(match sign_in_attempt(state, factor, &client, now)? {
        AccountEvent::SignInFailed(failure) => with_notice(state, failure),
        signed_in @ AccountEvent::SignedIn(SignedIn { method: SignInMethod::RecoveryCode, .. }) => {
            let Factor::RecoveryCode { presented } = factor else { unreachable!("signed in by a recovery code") };
            let index = state.recovery_codes.iter().position(|code| *code == Some(presented));
            vec![used_code(state, index.expect("a sign-in by recovery code matched one"), now), signed_in]
        }
        event => vec![event],
    })
}

/// The recovery code at `index` used up.
fn used_code(state: &Account, index: usize, now: DateTime<Utc>) -> AccountEvent {
    let remaining = state.recovery_codes.iter().flatten().count() as u32 - 1;
    RecoveryCodeUsed { index: index as u32, remaining, at: now }.into()
}

/// An authenticator enrolled, and the recovery codes shown with it.
fn with_recovery_codes(enrolled: AccountEvent, digests: Vec<SecretDigest>, now: DateTime<Utc>) -> Vec<AccountEvent> {
    if digests.is_empty() {
        return vec![enrolled];
    }
    let issued =
        RecoveryCodesIssued { totp_step: None, at: now, personal: Personal::Known(RecoveryCodeSet { digests }) };
    vec![enrolled, issued.into()]
}

/// A failure, and the notice it calls for when it finds the brake on and the owner has not been
/// told within a day.
fn with_notice(state: &Account, failure: SignInFailed) -> Vec<AccountEvent> {
    let mut guard = state.guard.clone();
    let address = failure.personal.known().map_or("", |client| client.address.as_str());
    guard.failed(address, failure.at, true);
    if guard.notice_due(failure.at) {
        let notice = SecurityNoticeSent { reason: NoticeReason::FailedSignIns, at: failure.at };
        return vec![failure.into(), notice.into()];
    }
    vec![failure.into()]
}

fn sign_in_attempt(
    state: &Account,
    factor: Factor,
    client: &Client,
    now: DateTime<Utc>,
) -> Result<AccountEvent, AccountError> {
    let attempt = match factor {
        Factor::Password { .. } => Attempt::Password,
        Factor::Invitation | Factor::Totp { .. } | Factor::EmailCode { .. } | Factor::RecoveryCode { .. } => {
            Attempt::Code
        }
    };
    require_not_throttled(state, &client.address, attempt, now)?;
    let failed = |reason| SignInFailed { reason, at: now, personal: Personal::Known(client.clone()) };
    let signed_in = |method, totp_step| SignedIn {
        method,
        totp_step,
        client_id: None,
        at: now,
        personal: Personal::Known(client.clone()),
    };
    // A wrong password is recorded whatever the state, so that throttling covers every account
    // and the answer never tells a deactivated account from a wrong password.
    if factor == (Factor::Password { correct: false }) {
        return Ok(failed(FailureReason::WrongPassword).into());
    }
    match state.status() {
        Status::Active => {}
        Status::Deactivated => return Err(AccountError::Deactivated),
        _ => return Err(AccountError::OnboardingIncomplete),
    }
    // Six months without activity deactivate the profile whether or not the scheduler has
    // recorded it yet: a late scheduler must not let an expired profile sign in and reset its clock.
    if lifecycle(state).deactivates_on().is_some_and(|deadline| now >= deadline) {
        return Err(AccountError::Deactivated);
    }
    let required = state.mfa_requirement;
    let event: AccountEvent = match (factor, required) {
        (Factor::Invitation, _) if state.last_sign_in.is_none() => signed_in(SignInMethod::Invitation, None).into(),
        (Factor::Invitation, _) => return Err(AccountError::AlreadyOnboarded),
        (Factor::Password { .. }, MfaRequirement::None) => signed_in(SignInMethod::Password, None).into(),
        (Factor::Password { .. }, required) => {
            return Err(AccountError::SecondFactorRequired { required });
        }
        (Factor::Totp { step }, MfaRequirement::App) => {
            if !state.mfa_satisfied() {
                return Err(AccountError::MfaNotEnrolled);
            }
            match step {
                None => failed(FailureReason::WrongTotp).into(),
                Some(step) if state.last_totp_step.is_some_and(|last| step <= last) => {
                    failed(FailureReason::TotpReplayed).into()
                }
                Some(step) => signed_in(SignInMethod::Totp, Some(step)).into(),
            }
        }
        (Factor::RecoveryCode { presented }, MfaRequirement::App) => {
            if !state.mfa_satisfied() {
                return Err(AccountError::MfaNotEnrolled);
            }
            if state.recovery_codes.contains(&Some(presented)) {
                signed_in(SignInMethod::RecoveryCode, None).into()
            } else {
                failed(FailureReason::WrongRecoveryCode).into()
            }
        }
        // The org now requires an authenticator app and this account proves itself with emailed
        // codes: one last code signs in, and the same sign-in enrolls the app before any session
        // starts (docs/adr/0015).
        (Factor::EmailCode { presented }, MfaRequirement::Email)
        | (Factor::EmailCode { presented }, MfaRequirement::App)
            if required == MfaRequirement::Email || switching_to_app(state) =>
        {
            if check_email_code(state, CodePurpose::SignIn, presented, now)? {
                signed_in(SignInMethod::EmailCode, None).into()
            } else {
                failed(FailureReason::WrongEmailCode).into()
            }
        }
        _ => return Err(AccountError::WrongFactor),
    };
    Ok(event)
}

fn sign_in_enrolling(
    state: &Account,
    secret: Confidential,
    step: Option<u64>,
    client: Client,
    recovery: Vec<SecretDigest>,
    now: DateTime<Utc>,
) -> Result<Vec<AccountEvent>, AccountError> {
    // Only an account with no second factor at all: one that proves itself with emailed codes
    // must not have them replaced on the strength of its password alone.
    if state.mfa_requirement != MfaRequirement::App || state.enrollment.is_some() {
        return Err(AccountError::WrongFactor);
    }
    // The step is recorded once, by the sign-in, so that the code cannot be replayed.
    let enrolled: AccountEvent = MfaEnrolled {
        method: MfaMethod::App,
        totp_step: None,
        at: now,
        personal: Personal::Known(MfaSecret { totp_secret: Some(secret.0) }),
    }
    .into();
    let enrolled_state = crate::account::evolve(state.clone(), &enrolled);
    let mut events = sign_in(&enrolled_state, Factor::Totp { step }, client, now)?;
    if matches!(events.first(), Some(AccountEvent::SignedIn(_))) {
        let mut enrolled = with_recovery_codes(enrolled, recovery, now);
        enrolled.append(&mut events);
        return Ok(enrolled);
    }
    Ok(events)
}

/// `Ok(true)` when the presented code is the live one, `Ok(false)` when it is wrong (an attempt
/// to record), an error when no code can be accepted at all.
fn check_email_code(
    state: &Account,
    purpose: CodePurpose,
    presented: SecretDigest,
    now: DateTime<Utc>,
) -> Result<bool, AccountError> {
    let code = state.email_code.as_ref().filter(|code| code.purpose == purpose).ok_or(AccountError::NoEmailCode)?;
    if code.failed_attempts >= EMAIL_CODE_MAX_WRONG {
        return Err(AccountError::EmailCodeExhausted);
    }
    if now >= code.expires_at {
        return Err(AccountError::EmailCodeExpired);
    }
    Ok(code.digest == presented)
}

/// Whether the account must move from emailed codes to the authenticator app its org now
/// requires: it may then sign in once more with an emailed code, to enroll the app.
fn switching_to_app(state: &Account) -> bool {
    state.mfa_requirement == MfaRequirement::App
        && state.enrollment.as_ref().is_some_and(|e| e.method == MfaMethod::Email)
}

fn lifecycle(state: &Account) -> Lifecycle {
    // Every account past `New` has been invited, which is activity.
    state.lifecycle().expect("an invited account has a lifecycle")
}

/// A step of the inactivity clock, taken by the scheduler: the deadline it is for, once it is
/// due and, for a warning, not yet given for that deadline.
fn scheduled(state: &Account, step: Step, now: DateTime<Utc>) -> Result<DateTime<Utc>, AccountError> {
    let lifecycle = lifecycle(state);
    let deadline = lifecycle.deadline(step);
    if matches!(step, Step::WarnDeactivation | Step::WarnDeletion) && lifecycle.warned {
        return Err(AccountError::AlreadyWarned { deadline });
    }
    // The release, the only step with a quarantine, is not an account command.
    let due = lifecycle.due_at(step, Duration::zero());
    if now < due { Err(AccountError::NotDue { due }) } else { Ok(deadline) }
}

/// At most `RESET_MAILS_PER_HOUR` mails of one kind (reset links; notices and reminders) in an
/// hour: none may flood an inbox. The kinds have a cap each, so that reminders asked for by
/// someone who knows the address cannot use up the owner's reset links.
fn require_under_cap(recent: &[DateTime<Utc>], now: DateTime<Utc>) -> Result<(), AccountError> {
    if let [oldest, ..] = recent[..]
        && recent.len() >= RESET_MAILS_PER_HOUR
        && now - oldest < Duration::hours(1)
    {
        return Err(AccountError::TooManyResetMails { retry_at: oldest + Duration::hours(1) });
    }
    Ok(())
}

fn require_active(state: &Account) -> Result<(), AccountError> {
    match state.status() {
        Status::Active => Ok(()),
        Status::Deactivated => Err(AccountError::Deactivated),
        _ => Err(AccountError::OnboardingIncomplete),
    }
}

fn require_onboarding(state: &Account) -> Result<(), AccountError> {
    match state.status() {
        Status::Invited | Status::Onboarding => Ok(()),
        Status::Deactivated => Err(AccountError::Deactivated),
        _ => Err(AccountError::AlreadyOnboarded),
    }
}

fn require_not_deactivated(state: &Account) -> Result<(), AccountError> {
    match state.status() {
        Status::Deactivated => Err(AccountError::Deactivated),
        _ => Ok(()),
    }
}

/// First-sign-in steps are authorised by the invitation link; the same steps later (re-enrolling,
/// accepting new terms) by the caller's session, and then no link may be presented.
fn require_step_authority(
    state: &Account,
    invitation: Option<SecretDigest>,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    match (state.status(), invitation) {
        (Status::Invited | Status::Onboarding, Some(token_digest)) => require_invitation(state, token_digest, now),
        (Status::Invited | Status::Onboarding, None) => Err(AccountError::OnboardingIncomplete),
        (Status::Active, None) => Ok(()),
        (Status::Active, Some(_)) => Err(AccountError::AlreadyOnboarded),
        (Status::Deactivated, _) => Err(AccountError::Deactivated),
        (Status::New | Status::Deleted, _) => unreachable!("refused before any command"),
    }
}

fn require_not_throttled(
    state: &Account,
    address: &str,
    attempt: Attempt,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    match state.guard.refused_until(address, attempt, now) {
        Some(until) => Err(AccountError::Throttled { until }),
        None => Ok(()),
    }
}

fn require_password(state: &Account) -> Result<(), AccountError> {
    if state.password.is_none() { Err(AccountError::PasswordNotSet) } else { Ok(()) }
}

fn require_invitation(state: &Account, token_digest: SecretDigest, now: DateTime<Utc>) -> Result<(), AccountError> {
    let invitation = state.invitation.as_ref().ok_or(AccountError::InvalidInvitation)?;
    if invitation.token_digest != token_digest {
        return Err(AccountError::InvalidInvitation);
    }
    if now >= invitation.expires_at {
        return Err(AccountError::InvitationExpired);
    }
    Ok(())
}

fn allow_method(state: &Account, method: MfaMethod) -> Result<(), AccountError> {
    match state.mfa_requirement.method() {
        Some(required) if required != method => {
            Err(AccountError::MfaMethodNotAllowed { required: state.mfa_requirement })
        }
        _ => Ok(()),
    }
}
