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
