//! Outbound mail with lettre: SMTP (`--smtp smtp://host:port`, STARTTLS whenever the server
//! offers it) or, by default, `.eml` files in `<data-dir>/outbox/` for local use. Every mail has
//! a plain-text and an HTML body, and a Message-ID the caller derives from the event it reports,
//! so that a mail sent twice for one event is recognisably the same mail.

pub mod delivery;
pub mod texts;

use std::path::Path;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("{0} is not an SMTP address (smtp://host:port)")]
    BadSmtpUrl(String),
    #[error("{what} is not a mail address: {reason}")]
    BadAddress { what: &'static str, reason: String },
    #[error("cannot build the mail: {0}")]
    Build(String),
    #[error("cannot deliver the mail: {0}")]
    Delivery(String),
    /// The server refused the mail for good (a 5xx reply): sending it again cannot help.
    #[error("the mail server refused the mail for good: {0}")]
    Refused(String),
}

/// One mail to one recipient.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    /// The left part of the Message-ID, unique per mail (an event id).
    pub message_id: String,
}

#[derive(Clone)]
pub enum Mailer {
    Smtp { transport: AsyncSmtpTransport<Tokio1Executor>, from: Mailbox },
    Outbox { transport: AsyncFileTransport<Tokio1Executor>, from: Mailbox },
}

impl Mailer {
    pub fn smtp(url: &str, from: &str) -> Result<Mailer, MailError> {
        let bad = || MailError::BadSmtpUrl(url.to_string());
        let (host, port) = url.strip_prefix("smtp://").and_then(|rest| rest.rsplit_once(':')).ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        let tls = TlsParameters::new(host.to_string()).map_err(|e| MailError::Build(e.to_string()))?;
        // The URL names a relay the operator chose; STARTTLS is used whenever it offers it.
        let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .tls(Tls::Opportunistic(tls))
            .build();
        Ok(Mailer::Smtp { transport, from: mailbox("the sender", from)? })
    }

    pub fn outbox(dir: &Path, from: &str) -> Result<Mailer, MailError> {
        std::fs::create_dir_all(dir).map_err(|e| MailError::Build(format!("cannot create {}: {e}", dir.display())))?;
        Ok(Mailer::Outbox {
            transport: AsyncFileTransport::<Tokio1Executor>::new(dir),
            from: mailbox("the sender", from)?,
        })
    }

    /// Whether mail lands in the outbox folder rather than with a mail server.
    pub fn is_outbox(&self) -> bool {
        matches!(self, Mailer::Outbox { .. })
    }

    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let from = match self {
            Mailer::Smtp { from, .. } | Mailer::Outbox { from, .. } => from.clone(),
        };
        let domain = from.email.domain().to_string();
        let message = Message::builder()
            .from(from)
            .to(mailbox("the recipient", &mail.to)?)
            .subject(&mail.subject)
            .message_id(Some(format!("<{}@{domain}>", mail.message_id)))
            .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
            .map_err(|e| MailError::Build(e.to_string()))?;
        match self {
            Mailer::Smtp { transport, .. } => transport.send(message).await.map(|_| ()).map_err(|e| {
                if e.is_permanent() { MailError::Refused(e.to_string()) } else { MailError::Delivery(e.to_string()) }
            }),
            Mailer::Outbox { transport, .. } => {
                transport.send(message).await.map(|_| ()).map_err(|e| MailError::Delivery(e.to_string()))
            }
        }
    }
}

fn mailbox(what: &'static str, address: &str) -> Result<Mailbox, MailError> {
    address.parse().map_err(|e: lettre::address::AddressError| MailError::BadAddress { what, reason: e.to_string() })
}
