//! The outbox's SMTP client: lettre's SMTP conversation on a TCP socket of our own, opened with
//! `TCP_NODELAY`.
//!
//! Why not lettre's transport: it opens its socket itself and gives no hook to set socket
//! options, and it writes a letter's bytes and the final `.` in two writes. With Nagle's
//! algorithm on, the small second write waits for the server to acknowledge the first — and the
//! server delays that acknowledgement (delayed ACK, ~40 ms on Linux) because it has nothing to
//! say until it sees the dot. That wait was most of the ~50 ms hand-over, and the hand-over is
//! the window in which a `kill -9` leaves a letter in doubt (see [`crate::shell::outbox`]).
//! Here the socket is ours ([`AsyncSmtpConnection::connect_with_transport`]), so `TCP_NODELAY`
//! sends the dot at once; STARTTLS, AUTH (PLAIN/LOGIN or XOAUTH2) and the conversation itself
//! stay lettre's. One connection is kept for the pass (as lettre's pool did) and dropped after any
//! failure.
//!
//! Implicit TLS (`tls = "implicit"`, port 465) is still lettre's own socket, without
//! `TCP_NODELAY`: its TLS must start before the greeting, and lettre offers no way to hand it a
//! socket for that. Microsoft 365 and the local stack use STARTTLS on 587.
//!
//! Must not: log addresses, credentials or content (errors go to the outbox, which logs their
//! category and code only).

use crate::shell::config::{SmtpSettings, TlsMode};
use crate::shell::outbox::{FailureKind, SendFailure, Transport, failure_kind, smtp_summary};
use futures::future::BoxFuture;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;

/// An SMTP client for one pass: connects at its first letter, reuses the connection after.
pub struct SmtpClient {
    host: String,
    port: u16,
    tls: TlsMode,
    params: Option<TlsParameters>,
    credentials: Credentials,
    mechanisms: Vec<Mechanism>,
    timeout: std::time::Duration,
    conn: tokio::sync::Mutex<Option<AsyncSmtpConnection>>,
}

impl SmtpClient {
    /// A client for `s`, logging in as `username` with `secret` by one of `mechanisms`; `params`
    /// are the TLS parameters (None only with `tls = "none"`).
    pub fn new(
        s: &SmtpSettings,
        params: Option<TlsParameters>,
        secret: String,
        mechanisms: Vec<Mechanism>,
    ) -> SmtpClient {
        SmtpClient {
            host: s.host.clone(),
            port: s.port,
            tls: s.tls,
            params,
            credentials: Credentials::new(s.username.clone(), secret),
            mechanisms,
            timeout: s.timeout,
            conn: tokio::sync::Mutex::new(None),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendFailure> {
        let hello = ClientId::default();
        let mut conn = match (self.tls, &self.params) {
            (TlsMode::Implicit, params) => AsyncSmtpConnection::connect_tokio1(
                (self.host.as_str(), self.port),
                Some(self.timeout),
                &hello,
                params.clone(),
                None,
            )
            .await
            .map_err(lettre_failure)?,
            _ => {
                let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                    .await
                    .map_err(io_failure)?;
                tcp.set_nodelay(true).map_err(io_failure)?;
                AsyncSmtpConnection::connect_with_transport(Box::new(tcp), &hello)
                    .await
                    .map_err(lettre_failure)?
            }
        };
        if let (TlsMode::Starttls, Some(params)) = (self.tls, &self.params) {
            conn.starttls(params.clone(), &hello)
                .await
                .map_err(lettre_failure)?;
        }
        conn.auth(&self.mechanisms, &self.credentials)
            .await
            .map_err(lettre_failure)?;
        Ok(conn)
    }

    async fn send_on(&self, envelope: &Envelope, raw: &[u8]) -> Result<(), SendFailure> {
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_none_or(AsyncSmtpConnection::has_broken) {
            *slot = Some(self.connect().await?);
        }
        let conn = slot.as_mut().expect("connected above");
        match conn.send(envelope, raw).await {
            Ok(_) => Ok(()),
            Err(e) => {
                // Whatever state the conversation is in, the next letter starts afresh.
                *slot = None;
                Err(lettre_failure(e))
            }
        }
    }
}

impl Transport for SmtpClient {
    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<(), SendFailure>> {
        Box::pin(async move {
            match tokio::time::timeout(self.timeout, self.send_on(envelope, raw)).await {
                Ok(result) => result,
                Err(_) => {
                    *self.conn.lock().await = None;
                    Err(SendFailure {
                        kind: FailureKind::Transient,
                        detail: format!(
                            "no answer from the mail server within {} s",
                            self.timeout.as_secs()
                        ),
                        summary: "timeout".into(),
                    })
                }
            }
        })
    }
}

fn lettre_failure(e: lettre::transport::smtp::Error) -> SendFailure {
    SendFailure {
        kind: failure_kind(e.status().map(u16::from), e.is_permanent(), &e.to_string()),
        detail: e.to_string(),
        summary: smtp_summary(&e),
    }
}

fn io_failure(e: std::io::Error) -> SendFailure {
    SendFailure {
        kind: FailureKind::Transient,
        detail: format!("connecting to the mail server: {e}"),
        summary: "connection failure".into(),
    }
}
