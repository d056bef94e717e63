//! Mail reaches a real SMTP server (aiosmtpd, installed by scripts/test) and the outbox folder.

#[path = "../../tests/support"]
mod support {
    pub mod port;
    pub mod smtp;
}

use std::path::Path;

use support::smtp::smtp_sink;

use tenure_mail::{Mail, Mailer};

fn mail() -> Mail {
    Mail {
        to: "jane@example.com".into(),
        subject: "Your Tenure sign-in code".into(),
        text: "Your code is 314159. It is valid for 10 minutes.".into(),
        html: "<p>Your code is <strong>314159</strong>. It is valid for 10 minutes.</p>".into(),
        message_id: "01933c0e-0000-7000-8000-00000000abcd".into(),
    }
}

fn all_files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(all_files(&path));
        } else {
            found.push(std::fs::read_to_string(&path).unwrap_or_default());
        }
    }
    found
}

#[tokio::test]
async fn the_outbox_holds_an_eml_file_with_both_bodies_and_the_message_id() {
    let dir = tempfile::tempdir().unwrap();
    let mailer = Mailer::outbox(&dir.path().join("outbox"), "Tenure <no-reply@tenure.example>").unwrap();
    mailer.send(&mail()).await.unwrap();
    let files = all_files(&dir.path().join("outbox"));
    let eml = files.iter().find(|f| f.contains("Subject:")).expect("an .eml file");
    assert!(eml.contains("To: jane@example.com"), "{eml}");
    assert!(eml.contains("Message-ID: <01933c0e-0000-7000-8000-00000000abcd@tenure.example>"), "{eml}");
    assert!(eml.contains("text/plain") && eml.contains("text/html"), "{eml}");
    assert!(eml.contains("314159"), "{eml}");
}

#[tokio::test]
async fn mail_is_delivered_to_a_real_smtp_server() {
    let sink = smtp_sink();
    let mailer = Mailer::smtp(&format!("smtp://127.0.0.1:{}", sink.port), "Tenure <no-reply@tenure.example>").unwrap();
    mailer.send(&mail()).await.unwrap();
    let message = sink.wait_for_message(1);
    assert!(message.contains("Subject: Your Tenure sign-in code"), "{message}");
    assert!(message.contains("To: jane@example.com") && message.contains("314159"), "{message}");
    assert!(message.contains("Message-ID: <01933c0e-0000-7000-8000-00000000abcd@tenure.example>"), "{message}");
}

#[test]
fn a_malformed_smtp_address_is_refused() {
    for bad in ["mail.example.com", "smtp://mail.example.com", "smtp://mail.example.com:port"] {
        assert!(Mailer::smtp(bad, "no-reply@tenure.example").is_err(), "{bad}");
    }
}
