//! What every mail of Tenure says: the invitation, the verification code, the inactivity
//! warnings and security notices. The gateway, the command line and the scheduler all send
//! these and write none of their own.

use chrono::{DateTime, Utc};

use crate::Mail;

/// The invitation to a first sign-in, with its single-use link.
pub fn invitation(to: &str, username: &str, url: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "You are invited to Tenure".into(),
        text: format!(
            "Hello,\n\nA profile with the username {username} has been set up for you.\nSign in for the first time here (the link works once, for 7 days):\n\n{url}\n"
        ),
        html: format!(
            "<p>Hello,</p><p>A profile with the username <strong>{username}</strong> has been set up for you.</p><p><a href=\"{url}\">Sign in for the first time</a> (the link works once, for 7 days).</p>"
        ),
        message_id: uuid::Uuid::now_v7().to_string(),
    }
}

/// An emailed code, for signing in or for setting up emailed codes.
pub fn verification_code(to: &str, code: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "Your Tenure verification code".into(),
        text: format!(
            "Your verification code is {code}.\n\nIt is valid for 10 minutes. If you did not ask for it, ignore this mail."
        ),
        html: format!(
            "<p>Your verification code is <strong>{code}</strong>.</p><p>It is valid for 10 minutes. If you did not ask for it, ignore this mail.</p>"
        ),
        message_id: uuid::Uuid::now_v7().to_string(),
    }
}

/// The security notice of SPEC §2: many failed sign-ins, and the brake they put on.
pub fn failed_sign_ins_notice(to: &str, username: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "Failed sign-ins on your Tenure profile".into(),
        text: format!(
            "Hello,\n\nThere have been more than 50 failed attempts to sign in as {username} in the last 24 hours.\nNobody got in by them. Until you next sign in, each address may try a password only once every 10 seconds.\n\nIf these attempts were not yours, tell your organisation's administrator.\nWe send this notice at most once a day.\n"
        ),
        html: format!(
            "<p>Hello,</p><p>There have been more than 50 failed attempts to sign in as <strong>{username}</strong> in the last 24 hours.</p><p>Nobody got in by them. Until you next sign in, each address may try a password only once every 10 seconds.</p><p>If these attempts were not yours, tell your organisation's administrator.</p><p>We send this notice at most once a day.</p>"
        ),
        message_id: uuid::Uuid::now_v7().to_string(),
    }
}

/// What an inactivity warning announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ahead {
    Deactivation,
    Deletion,
}

/// A warning ahead of a deactivation or deletion on `deadline`. `message_id` derives from the
/// event that recorded the warning, so that a warning sent twice is recognisably one mail.
pub fn inactivity_warning(
    to: &str,
    username: &str,
    ahead: Ahead,
    deadline: DateTime<Utc>,
    public_url: &str,
    message_id: String,
) -> Mail {
    let date = deadline.format("%-d %B %Y");
    let (subject, text) = match ahead {
        Ahead::Deletion => (
            "Your Tenure profile will be deleted",
            format!(
                "Hello,\n\nYour Tenure profile {username} was deactivated after six months without a sign-in. It will be deleted on {date}.\n\nYour organisation's administrator can reactivate it before then.\n"
            ),
        ),
        Ahead::Deactivation => (
            "Your Tenure profile will be deactivated",
            format!(
                "Hello,\n\nYour Tenure profile {username} has not been used for almost six months. It will be deactivated on {date}.\n\nTo keep it, sign in before then: {public_url}/sign-in\n"
            ),
        ),
    };
    let html = format!("<p>{}</p>", text.trim().replace("\n\n", "</p><p>").replace('\n', "<br>"));
    Mail { to: to.to_string(), subject: subject.into(), text, html, message_id }
}

/// The password reset link of SPEC §10: single use, 30 minutes.
pub fn password_reset(to: &str, username: &str, url: &str) -> Mail {
    Mail {
        to: to.to_string(),
        subject: "Reset your Tenure password".into(),
        text: format!(
            "Hello,\n\nSomeone (we hope you) asked to reset the password of your Tenure profile {username}.\nChoose a new password here (the link works once, for 30 minutes):\n\n{url}\n\nIf you did not ask for this, ignore this mail: your password stays as it is.\n"
        ),
        html: format!(
            "<p>Hello,</p><p>Someone (we hope you) asked to reset the password of your Tenure profile <strong>{username}</strong>.</p><p><a href=\"{url}\">Choose a new password</a> (the link works once, for 30 minutes).</p><p>If you did not ask for this, ignore this mail: your password stays as it is.</p>"
        ),
        message_id: uuid::Uuid::now_v7().to_string(),
    }
}

/// The answer to a reset asked for a deactivated profile: no link, and whom to ask.
pub fn reset_while_deactivated(to: &str, username: &str) -> Mail {
    let text = format!(
        "Hello,\n\nSomeone (we hope you) asked to reset the password of your Tenure profile {username}.\nThe profile is deactivated, so its password cannot be reset. Your organisation's administrator can reactivate it; you can then sign in with your password, or reset it.\n\nIf you did not ask for this, you can ignore this mail.\n"
    );
    plain(to, "Your Tenure profile is deactivated", text)
}

/// The usernames an email address holds, for someone who forgot theirs.
pub fn usernames(to: &str, usernames: &[(String, bool)], sign_in_url: &str) -> Mail {
    let list: Vec<String> = usernames
        .iter()
        .map(|(name, active)| if *active { format!("- {name}") } else { format!("- {name} (deactivated)") })
        .collect();
    let text = format!(
        "Hello,\n\nSomeone (we hope you) asked which Tenure usernames belong to this address. They are:\n\n{}\n\nSign in at {sign_in_url}. If you did not ask for this, you can ignore this mail.\n",
        list.join("\n")
    );
    plain(to, "Your Tenure username", text)
}

/// What a security notice tells the owner of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    PasswordChanged,
    PasswordReset,
    AuthenticatorReplaced,
    /// By an administrator, not by the owner.
    TwoFactorReset,
    RecoveryCodesRenewed,
    RecoveryCodeUsed {
        remaining: u32,
    },
}

/// Where and when a change was made, as a notice names it.
pub struct Origin<'a> {
    pub at: DateTime<Utc>,
    pub address: &'a str,
    pub browser: &'a str,
}

/// A security notice after a change to how the owner signs in: what, when, from where. It holds
/// no link to act on, so that a forged copy of it can lead nowhere.
pub fn security_notice(to: &str, username: &str, change: &Change, origin: &Origin<'_>) -> Mail {
    let (subject, what) = match change {
        Change::PasswordChanged => ("Your Tenure password was changed", "The password was changed".to_string()),
        Change::PasswordReset => {
            ("Your Tenure password was reset", "The password was reset through a link sent to this address".to_string())
        }
        Change::AuthenticatorReplaced => (
            "A new authenticator app was set up for Tenure",
            "A new authenticator app was set up; the second factor used before it no longer works".to_string(),
        ),
        Change::TwoFactorReset => (
            "Your Tenure two-factor sign-in was reset",
            "Your organisation's administrator reset your two-factor sign-in: your authenticator and recovery codes no longer work, and you will set up a new authenticator at your next sign-in".to_string(),
        ),
        Change::RecoveryCodesRenewed => (
            "New Tenure recovery codes were made",
            "A new set of recovery codes was made; the previous codes no longer work".to_string(),
        ),
        Change::RecoveryCodeUsed { remaining } => (
            "A Tenure recovery code was used",
            format!("Someone signed in with one of your recovery codes ({remaining} left)"),
        ),
    };
    let when = origin.at.format("%-d %B %Y at %H:%M UTC");
    let text = format!(
        "Hello,\n\n{what} on your Tenure profile {username}.\n\nWhen: {when}\nFrom: {address}, {browser}\n\nIf this was you, there is nothing to do. If it was not, tell your organisation's administrator at once.\n",
        address = origin.address,
        browser = origin.browser,
    );
    plain(to, subject, text)
}

/// A mail whose HTML part is its text, escaped and in paragraphs.
fn plain(to: &str, subject: &str, text: String) -> Mail {
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let html = format!("<p>{}</p>", escaped.trim().replace("\n\n", "</p><p>").replace('\n', "<br>"));
    Mail { to: to.to_string(), subject: subject.into(), text, html, message_id: uuid::Uuid::now_v7().to_string() }
}
