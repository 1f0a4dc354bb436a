//! The outbox: sends decided letters over SMTP and records what happened.
//!
//! Owns the SMTP transport (implicit TLS, STARTTLS, or plain on loopback only; AUTH with the
//! configured credentials) and the send loop: every pending letter whose time has come is sent as
//! the exact bytes decided for it, then marked sent with a `letter_sent` event in one transaction.
//! A permanent refusal (5xx) marks it undelivered and raises it to the business unit; a transient
//! failure (4xx, connection) is retried with backoff for up to a day, then marked undelivered.
//! An authentication failure (535, 534, 530, 454, or no usable AUTH mechanism) is none of those:
//! it says nothing about the letter, so the pass stops, every letter stays pending with its
//! attempts unchanged, and the failure is recorded as the SMTP health ([`SMTP_HEALTH_KEY`]) for
//! the digest and `caseclerk cases`; the next pass tries again, and the first letter that goes
//! clears it.
//!
//! The transport is a [`Transport`]: the real one is lettre's SMTP client; [`RecordingTransport`]
//! keeps what it is given (and refuses what it is told to), so a whole review runs without a server.
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
use futures::future::BoxFuture;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::{Arc, Mutex};

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

/// Where the SMTP login's health is kept: a row of `mailbox_state` under a name no IMAP folder
/// is given (angle brackets), so no migration is needed.
pub const SMTP_HEALTH_KEY: &str = "<smtp>";

/// What a failure to send says about the letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Our login was refused: nothing is wrong with the letter; stop and keep it pending.
    Auth,
    /// The server refused the letter itself and retrying will not change that (SMTP 5xx).
    Permanent,
    /// Try again later (4xx, timeouts, connection failures).
    Transient,
}

/// Classify an SMTP failure from its reply code (if any), whether the client called it
/// permanent, and its text (read here, never logged). 530 (authentication required), 534
/// (mechanism too weak), 535 (credentials invalid) and 454 (temporary authentication failure)
/// are the login's fault, not the letter's; so is a client error about authentication or
/// credentials raised before any recipient was tried (no common AUTH mechanism).
pub fn failure_kind(code: Option<u16>, permanent: bool, text: &str) -> FailureKind {
    let t = text.to_lowercase();
    match code {
        Some(530 | 534 | 535 | 454) => FailureKind::Auth,
        None if t.contains("authentication") || t.contains("credentials") => FailureKind::Auth,
        _ if permanent => FailureKind::Permanent,
        _ => FailureKind::Transient,
    }
}

/// Why a transport did not take a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// What the failure says about the letter.
    pub kind: FailureKind,
    /// The whole error, for the outbox record (may quote addresses: never logged).
    pub detail: String,
    /// Category and code only, for logs.
    pub summary: String,
}

/// Something that takes a letter's envelope and exact bytes: SMTP, or a recorder in tests.
pub trait Transport: Send + Sync {
    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SendFailure>>;
}

impl Transport for AsyncSmtpTransport<Tokio1Executor> {
    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async move {
            self.send_raw(envelope, raw)
                .await
                .map(|_| ())
                .map_err(|e| SendFailure {
                    kind: failure_kind(e.status().map(u16::from), e.is_permanent(), &e.to_string()),
                    detail: e.to_string(),
                    summary: smtp_summary(&e),
                })
        })
    }
}

/// One letter a [`RecordingTransport`] took.
#[derive(Debug, Clone)]
pub struct RecordedLetter {
    pub from: Option<String>,
    pub to: Vec<String>,
    pub raw: Vec<u8>,
}

/// A transport that keeps every letter instead of sending it, and permanently refuses any letter
/// to an address it was told to refuse (as a server's `550` would). For tests and replays.
#[derive(Debug, Clone, Default)]
pub struct RecordingTransport {
    sent: Arc<Mutex<Vec<RecordedLetter>>>,
    refused: Arc<Mutex<Vec<String>>>,
    login_refused: Arc<Mutex<bool>>,
}

impl RecordingTransport {
    pub fn new() -> RecordingTransport {
        RecordingTransport::default()
    }

    /// Refuse every letter with this recipient (envelope, case-insensitive) from now on.
    pub fn refuse(&self, address: &str) {
        self.refused
            .lock()
            .expect("not poisoned")
            .push(address.to_lowercase());
    }

    /// Refuse our login (as a server's `535 5.7.8` would, after a password change) until told
    /// otherwise: every letter fails before any recipient is tried.
    pub fn refuse_login(&self, refuse: bool) {
        *self.login_refused.lock().expect("not poisoned") = refuse;
    }

    /// Everything taken so far, in order.
    pub fn sent(&self) -> Vec<RecordedLetter> {
        self.sent.lock().expect("not poisoned").clone()
    }
}

impl Transport for RecordingTransport {
    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        let to: Vec<String> = envelope.to().iter().map(|a| a.to_string()).collect();
        let refused = self.refused.lock().expect("not poisoned").clone();
        let login_refused = *self.login_refused.lock().expect("not poisoned");
        let result = match to.iter().find(|a| refused.contains(&a.to_lowercase())) {
            _ if login_refused => Err(SendFailure {
                kind: FailureKind::Auth,
                detail: "535 5.7.8 Error: authentication failed".into(),
                summary: "authentication failed (535)".into(),
            }),
            Some(a) => Err(SendFailure {
                kind: FailureKind::Permanent,
                detail: format!("550 5.1.1 <{a}>: Recipient address rejected"),
                summary: "permanent refusal (550)".into(),
            }),
            None => {
                self.sent
                    .lock()
                    .expect("not poisoned")
                    .push(RecordedLetter {
                        from: envelope.from().map(|a| a.to_string()),
                        to,
                        raw: raw.to_vec(),
                    });
                Ok(())
            }
        };
        Box::pin(std::future::ready(result))
    }
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
                current_password(s, password),
            ))
            .authentication(vec![Mechanism::Plain, Mechanism::Login])
            .build(),
    )
}

/// The password to log in with now: the password file as it is now (a rotated password written
/// there works without a restart), else the one read at start.
fn current_password(s: &SmtpSettings, loaded: &crate::shell::config::Secret) -> String {
    s.password_file
        .as_ref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|v| v.trim_end_matches(['\n', '\r']).to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| loaded.expose().to_string())
}

/// What one send pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SendReport {
    pub sent: usize,
    pub retrying: usize,
    pub undelivered: usize,
    /// The server refused our login: the pass stopped with every letter left pending.
    pub login_refused: bool,
}

/// When to try again after `attempts` failures: 1, 2, 4 … minutes, at most an hour apart.
pub fn retry_delay(attempts: i64) -> Duration {
    let minutes = 1i64 << attempts.clamp(0, 6);
    Duration::minutes(minutes.min(60))
}

/// Send every letter that is due at `now`.
pub async fn send_due(
    store: &Store,
    transport: &dyn Transport,
    now: DateTime<Utc>,
) -> Result<SendReport, OutboxError> {
    let mut report = SendReport::default();
    // One letter's bytes in memory at a time (a letter can carry a referral's attachments).
    for id in store.sendable_ids(now).await? {
        let Some(row) = store.sendable_letter(id, now).await? else {
            continue;
        };
        send_one(store, transport, &row, now, &mut report).await?;
        if report.login_refused {
            break; // the same login would be refused for every other letter
        }
    }
    Ok(report)
}

async fn send_one(
    store: &Store,
    transport: &dyn Transport,
    row: &OutboxRow,
    now: DateTime<Utc>,
    report: &mut SendReport,
) -> Result<(), OutboxError> {
    let envelope = match envelope(row) {
        Ok(e) => e,
        Err(reason) => return undelivered(store, row, &reason, now, report).await,
    };
    match transport.send(&envelope, &row.raw).await {
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
            if report.sent == 0 {
                store.record_mailbox_ok(SMTP_HEALTH_KEY, now).await?;
            }
            report.sent += 1;
        }
        Err(e) if e.kind == FailureKind::Auth => {
            // Not the letter's fault: it stays pending, untouched (attempts, next try), and is
            // neither undelivered nor raised; the login is what needs a person.
            store
                .record_mailbox_error(SMTP_HEALTH_KEY, "login failed", now)
                .await?;
            tracing::error!(outbox = row.id, error = %e.summary, "the mail server refused our login; no letters sent this pass (check the SMTP password)");
            report.login_refused = true;
        }
        Err(e) if e.kind == FailureKind::Permanent => {
            let reason = format!("refused by the mail server: {}", e.detail);
            undelivered(store, row, &reason, now, report).await?;
        }
        Err(e) => {
            if now - row.due_at > GIVE_UP_AFTER {
                let reason = format!("could not be sent for a day: {}", e.detail);
                return undelivered(store, row, &reason, now, report).await;
            }
            let retry = now + retry_delay(row.attempts);
            let mut tx = store.begin().await?;
            Store::mark_attempt_failed(&mut tx, row.id, &e.detail, Some(retry)).await?;
            Store::commit(tx).await?;
            tracing::warn!(outbox = row.id, attempts = row.attempts + 1, error = %e.summary, "letter not sent; will retry");
            report.retrying += 1;
        }
    }
    Ok(())
}

/// An SMTP error's category and code, without the server's text (which can quote addresses).
pub fn smtp_summary(e: &lettre::transport::smtp::Error) -> String {
    let kind = if failure_kind(e.status().map(u16::from), e.is_permanent(), &e.to_string())
        == FailureKind::Auth
    {
        "authentication failed"
    } else if e.is_timeout() {
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

    #[tokio::test]
    async fn the_recording_transport_keeps_letters_and_refuses_what_it_is_told_to() {
        let t = RecordingTransport::new();
        t.refuse("Gone@Example.test");
        let env = |to: &str| {
            Envelope::new(Some("a@b.test".parse().unwrap()), vec![to.parse().unwrap()]).unwrap()
        };
        assert_eq!(t.send(&env("x@example.test"), b"one").await, Ok(()));
        let refused = t.send(&env("gone@example.test"), b"two").await.unwrap_err();
        assert_eq!(refused.kind, FailureKind::Permanent, "{refused:?}");
        let sent = t.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].to, ["x@example.test"]);
        assert_eq!(sent[0].raw, b"one");
    }

    #[test]
    fn a_refused_login_is_an_authentication_failure_whatever_its_code() {
        for code in [535, 534, 530, 454] {
            let permanent = code >= 500;
            assert_eq!(
                failure_kind(Some(code), permanent, "5.7.8 Error: authentication failed"),
                FailureKind::Auth,
                "{code}"
            );
        }
        let no_mechanism =
            "internal client error: No compatible authentication mechanism was found";
        assert_eq!(failure_kind(None, false, no_mechanism), FailureKind::Auth);
    }

    #[test]
    fn a_refused_recipient_is_permanent_and_a_busy_server_transient() {
        let rejected = "permanent error (550): 5.1.1 <x@y.test>: Recipient address rejected";
        assert_eq!(
            failure_kind(Some(550), true, rejected),
            FailureKind::Permanent
        );
        assert_eq!(
            failure_kind(Some(554), true, "5.7.1 spam"),
            FailureKind::Permanent
        );
        assert_eq!(
            failure_kind(Some(451), false, "try later"),
            FailureKind::Transient
        );
        assert_eq!(
            failure_kind(Some(421), false, "closing"),
            FailureKind::Transient
        );
        assert_eq!(
            failure_kind(None, false, "connection refused"),
            FailureKind::Transient
        );
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        assert_eq!(retry_delay(0), Duration::minutes(1));
        assert_eq!(retry_delay(1), Duration::minutes(2));
        assert_eq!(retry_delay(5), Duration::minutes(32));
        assert_eq!(retry_delay(6), Duration::minutes(60));
        assert_eq!(retry_delay(40), Duration::minutes(60));
    }
}
