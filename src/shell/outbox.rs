//! The outbox: sends decided letters over SMTP and records what happened.
//!
//! Owns the SMTP transport (implicit TLS, STARTTLS, or plain on loopback only; AUTH with the
//! configured credentials) and the send loop: every pending letter whose time has come is sent as
//! the exact bytes decided for it, then marked sent with a `letter_sent` event in one transaction.
//! A permanent refusal (5xx) marks it undelivered and raises it to the business unit; a transient
//! failure (4xx, connection) is retried with backoff for up to a day, then marked undelivered.
//!
//! Exactly-once: a letter is only ever re-sent when the SMTP server did not accept it. The one
//! window left is a crash between the server's `250 OK` and our commit (milliseconds); the
//! letter keeps the same Message-ID, so a resend is recognisable as the same letter.
//!
//! Must not: decide or render letters, or log recipients' addresses or content.

use crate::core::case::Event;
use crate::shell::config::{SmtpSettings, TlsMode};
use crate::shell::mailbox::hash_id;
use crate::shell::store::{OutboxRow, Store, StoreError, record_event};
use chrono::{DateTime, Duration, Utc};
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

/// How long a letter keeps being retried after transient failures.
pub const GIVE_UP_AFTER: Duration = Duration::hours(24);

/// Outbox errors.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("SMTP settings for {host}: {detail}")]
    Settings { host: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Build the SMTP transport from the settings.
pub fn transport(s: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, OutboxError> {
    let err = |detail: String| OutboxError::Settings {
        host: s.host.clone(),
        detail,
    };
    let password = s
        .password
        .as_ref()
        .ok_or_else(|| err("no password (set password_env or password_file in [smtp])".into()))?;
    let mut params = TlsParameters::builder(s.host.clone());
    if let Some(ca) = &s.ca_file {
        let pem = std::fs::read(ca).map_err(|e| err(format!("ca_file {}: {e}", ca.display())))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| err(format!("ca_file {}: {e}", ca.display())))?;
        params = params.add_root_certificate(cert);
    }
    let params = params.build_rustls().map_err(|e| err(e.to_string()))?;
    let tls = match s.tls {
        TlsMode::Implicit => Tls::Wrapper(params),
        TlsMode::Starttls => Tls::Required(params),
        TlsMode::None => Tls::None,
    };
    Ok(
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(s.timeout))
            .credentials(Credentials::new(
                s.username.clone(),
                password.expose().to_string(),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login])
            .build(),
    )
}

/// What one send pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub retrying: usize,
    pub undelivered: usize,
}

/// When to try again after `attempts` failures: 1, 2, 4 … minutes, at most an hour apart.
pub fn retry_delay(attempts: i64) -> Duration {
    let minutes = 1i64 << attempts.clamp(0, 6);
    Duration::minutes(minutes.min(60))
}

/// Send every letter that is due at `now`.
pub async fn send_due(
    store: &Store,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    now: DateTime<Utc>,
) -> Result<SendReport, OutboxError> {
    let mut report = SendReport::default();
    for row in store.sendable(now).await? {
        send_one(store, transport, &row, now, &mut report).await?;
    }
    Ok(report)
}

async fn send_one(
    store: &Store,
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    row: &OutboxRow,
    now: DateTime<Utc>,
    report: &mut SendReport,
) -> Result<(), OutboxError> {
    let envelope = match envelope(row) {
        Ok(e) => e,
        Err(reason) => return undelivered(store, row, &reason, now, report).await,
    };
    match transport.send_raw(&envelope, &row.raw).await {
        Ok(_) => {
            let mut tx = store.begin().await?;
            Store::mark_sent(&mut tx, row.id, now).await?;
            if let Some(case_id) = row.case_id {
                let e = Event::LetterSent {
                    step: row.step.clone(),
                    recipient: row.recipient.clone(),
                    outbox: row.id,
                };
                record_event(&mut tx, case_id, now, "caseclerk", &e).await?;
            }
            Store::commit(tx).await?;
            tracing::info!(outbox = row.id, step = %row.step, to = %hash_id(&row.recipient), "letter sent");
            report.sent += 1;
        }
        Err(e) if e.is_permanent() => {
            let reason = format!("refused by the mail server: {e}");
            undelivered(store, row, &reason, now, report).await?;
        }
        Err(e) => {
            if now - row.due_at > GIVE_UP_AFTER {
                let reason = format!("could not be sent for a day: {e}");
                return undelivered(store, row, &reason, now, report).await;
            }
            let retry = now + retry_delay(row.attempts);
            let mut tx = store.begin().await?;
            Store::mark_attempt_failed(&mut tx, row.id, &e.to_string(), Some(retry)).await?;
            Store::commit(tx).await?;
            tracing::warn!(outbox = row.id, attempts = row.attempts + 1, error = %smtp_summary(&e), "letter not sent; will retry");
            report.retrying += 1;
        }
    }
    Ok(())
}

/// An SMTP error's category and code, without the server's text (which can quote addresses).
pub fn smtp_summary(e: &lettre::transport::smtp::Error) -> String {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_tls() {
        "TLS failure"
    } else if e.is_permanent() {
        "permanent refusal"
    } else if e.is_transient() {
        "temporary refusal"
    } else if e.is_response() {
        "unexpected response"
    } else {
        "connection failure"
    };
    match e.status() {
        Some(code) => format!("{kind} ({code})"),
        None => kind.to_string(),
    }
}

fn envelope(row: &OutboxRow) -> Result<Envelope, String> {
    let from = row
        .envelope_from
        .parse()
        .map_err(|e| format!("bad sender address: {e}"))?;
    let to = row
        .envelope_to
        .iter()
        .map(|a| a.parse())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad recipient address: {e}"))?;
    Envelope::new(Some(from), to).map_err(|e| e.to_string())
}

async fn undelivered(
    store: &Store,
    row: &OutboxRow,
    reason: &str,
    now: DateTime<Utc>,
    report: &mut SendReport,
) -> Result<(), OutboxError> {
    let mut tx = store.begin().await?;
    Store::mark_attempt_failed(&mut tx, row.id, reason, None).await?;
    if let Some(case_id) = row.case_id {
        let e = Event::LetterUndelivered {
            step: row.step.clone(),
            recipient: row.recipient.clone(),
            outbox: row.id,
            reason: reason.to_string(),
        };
        record_event(&mut tx, case_id, now, "caseclerk", &e).await?;
    }
    Store::commit(tx).await?;
    tracing::warn!(outbox = row.id, step = %row.step, "letter undelivered");
    report.undelivered += 1;
    Ok(())
}

/// The one way a letter becomes an outbox row: process steps, notices, the digest, the tracker
/// report and an operator's resend all come here, inside the caller's transaction (with the
/// events that go with it). A case letter's Message-ID joins the case's thread, so replies to it
/// are filed on the case as answers to it. Returns the row's id, or `None` when a letter with the
/// same key was already decided (it is never decided twice).
pub async fn enqueue(
    tx: &mut crate::shell::store::Tx<'_>,
    letter: &crate::shell::store::NewLetter,
    now: DateTime<Utc>,
) -> Result<Option<i64>, StoreError> {
    let Some(id) = Store::queue_letter(tx, letter, now).await? else {
        return Ok(None);
    };
    if let Some(case_id) = letter.case_id {
        Store::add_thread_id(
            tx,
            &letter.message_id,
            case_id,
            Some(id),
            Some(&letter.step),
            Some(&letter.replies_as),
        )
        .await?;
    }
    Ok(Some(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_delay(0), Duration::minutes(1));
        assert_eq!(retry_delay(1), Duration::minutes(2));
        assert_eq!(retry_delay(5), Duration::minutes(32));
        assert_eq!(retry_delay(6), Duration::minutes(60));
        assert_eq!(retry_delay(40), Duration::minutes(60));
    }
}
