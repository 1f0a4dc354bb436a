//! The outbox: sends decided letters over SMTP and records what happened.
//!
//! Owns the SMTP transport (implicit TLS, STARTTLS, or plain on loopback only; AUTH PLAIN/LOGIN
//! with the configured password, or `AUTH XOAUTH2` with the shared token client's access token
//! when `auth = "oauth2"` — [`OAuthSmtp`]; a token that cannot be had or is refused is an
//! authentication failure like a refused password) and the send loop: every pending letter whose time has come is sent as
//! the exact bytes decided for it, then marked sent with a `letter_sent` event in one transaction.
//! A permanent refusal (5xx) marks it undelivered and raises it to the business unit; a transient
//! failure (4xx, connection) is retried with backoff for up to a day, then marked undelivered.
//! An authentication failure (535, 534, 530, 454, or no usable AUTH mechanism) is none of those:
//! it says nothing about the letter, so the pass stops, every letter stays pending with its
//! attempts unchanged, and the failure is recorded as the SMTP health ([`SMTP_HEALTH_KEY`]) for
//! the digest and `caseclerk cases`; the next pass tries again, and the first letter that goes
//! clears it.
//!
//! The transport is a [`Transport`]: the real one is [`SmtpClient`] (lettre's SMTP conversation on
//! a `TCP_NODELAY` socket of our own); [`RecordingTransport`]
//! keeps what it is given (and refuses what it is told to), so a whole review runs without a server.
//!
//! Exactly-once, intent before action. Each letter is sent on the outbox's own connection
//! ([`SendConn`]) in three steps:
//! 1. **intent**: the row's `sending_since` is set and committed (fsync'd) *before* the letter is
//!    handed to the server. If that write fails, nothing is sent and the pass stops.
//! 2. **outcome, staged**: one transaction (`BEGIN IMMEDIATE`) marks the letter sent, clearing
//!    `sending_since`, with its `letter_sent` event — and is left open.
//! 3. **hand-over**: the exact bytes go to the server. On its `250` the staged transaction is
//!    committed — the only thing between the server's answer and our record — without waiting
//!    for an fsync (`synchronous = NORMAL`: a committed WAL write survives `kill -9`; only a power
//!    cut could undo it, and then the intent is still there) and with no automatic WAL checkpoint
//!    on that connection (the pass checkpoints after its last letter). On a refusal or a failure
//!    it is rolled back and that outcome recorded instead. The open transaction holds SQLite's
//!    write lock for the length of one SMTP exchange: the daemon's passes are sequential, readers
//!    are not blocked (WAL), and an operator's writing command waits (up to its busy timeout).
//!
//! If the outcome after a `250` cannot be written (disk full, database read-only or locked),
//! the letter is kept in memory ([`Unrecorded`]), the error is logged, and the outbox stops —
//! not just that letter: no further letter is sent while any outcome is unwritten. Every later
//! pass (every [`RETRY_RECORDING_AFTER`]) first tries to write it; once it is written, sending
//! resumes by itself, with no restart and no resend. Meanwhile a read-only reader of the
//! database sees the letter "being sent since" its intent: a `health` check reads that.
//!
//! **In doubt.** A pending letter found with `sending_since` already set was being handed over
//! when the daemon died (or, before a restart, could not record the answer): the server may or
//! may not have accepted it. SMTP has no "did you get Message-ID X" query, so what happens next
//! depends on who keeps the copy in the sent folder (`[mailbox] sent_copy`, decided by the pure
//! [`crate::core::indoubt::decide`]):
//!
//! - **`sent_copy = "server"`** — the server files its own copy as part of accepting a letter.
//!   Microsoft says so for Exchange Online: since June 2018 "sent email will now be stored in the
//!   Sent Items folder of the mailbox" for SMTP Authenticated Submission (Exchange Team blog,
//!   "Changes coming to the SMTP Authenticated Submission client protocol", 20 April 2018,
//!   <https://blogs.technet.microsoft.com/exchange/2018/04/20/changes-coming-to-the-smtp-authenticated-submission-client-protocol/>);
//!   the local stack does the same with Postfix's `sender_bcc_maps` (the copy's recipient is in
//!   the queue file before Postfix answers `250`) and Dovecot's `lmtp_save_to_detail_mailbox`.
//!   So "accepted" implies "a copy will appear". A letter in doubt is then *not* sent at once: it
//!   waits until its intent is older than `in_doubt_grace_seconds` (default 120: time for the
//!   copy to arrive; the daemon wakes for it), then its Message-ID is looked up in the sent folder
//!   (`UID SEARCH HEADER Message-ID`, read-only). Found: it is recorded sent — sent at its
//!   intent, filed, `confirmed_by_copy`, its `letter_sent` event saying so — and **not sent
//!   again**. Absent: the server never took it, and it is sent again, counted in `in_doubt`. If
//!   the folder cannot be searched (IMAP down, folder renamed), the letter waits and is looked
//!   up again every minute, for at most an hour from its intent, then sent again: for the
//!   business unit a possible duplicate of a statutory letter about a child is the worse failure
//!   of the two, but a letter an hour late still meets deadlines counted in working days, and a
//!   late letter must never become a lost one. Meanwhile `health` shows it as `letter_in_flight`.
//!   A copy slower than the grace (the server's delivery to the folder backed up) is the one way
//!   a letter can still go twice; choose the grace with that in mind.
//!   A letter whose whole content went to the server and whose answer never came (a timeout or a
//!   cut connection after the content: [`FailureKind::AfterContent`]) may have been accepted
//!   too: with this policy its intent is kept ([`Store::mark_answer_lost`]) and it is settled the
//!   same way, never simply sent again.
//! - **`"caseclerk"` (default) or `"none"`** — the copy, if any, is written by us *after* the
//!   `250`, so its absence proves nothing: the letter is **sent again at once, with the same
//!   Message-ID**, counted in `in_doubt` (logged at warn). Why resend rather than hold: most of
//!   the window is before the `250` (connecting, TLS, AUTH, DATA), where a kill means the letter
//!   was not accepted, and holding it would lose a letter on a statutory timeline. A duplicate
//!   carries the same Message-ID, so mail clients and our own intake can recognise it.
//!
//! The hand-over itself is kept short: letters go over [`SmtpClient`],
//! lettre's conversation on a `TCP_NODELAY` socket, so the final dot is not held back by Nagle's
//! algorithm waiting on the server's delayed ACK. The measured rates are in the README
//! (`caseclerk chaos`).
//!
//! Must not: decide or render letters, or log recipients' addresses or content.

use crate::core::case::Event;
use crate::core::indoubt::{self, CopyPolicy, Doubt, Lookup};
use crate::core::views::SmtpHold;
use crate::shell::config::{SmtpSettings, TlsMode};
use crate::shell::mailbox::hash_id;
use crate::shell::oauth::AccessToken;
use crate::shell::store::{OutboxRow, SendConn, Store, StoreError, record_event};
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use std::sync::{Arc, Mutex};

/// How long a letter keeps being retried after transient failures, from the first of them.
pub const GIVE_UP_AFTER: Duration = Duration::hours(24);

/// Outbox errors.
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("SMTP settings for {host}: {detail}")]
    Settings { host: String, detail: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OutboxError {
    /// The hold a transport that cannot be built puts on every letter: its CA file gone or
    /// unreadable is a server caseclerk cannot trust; anything else about the settings keeps it
    /// from logging in.
    pub fn hold(&self) -> SmtpHold {
        let said = self.to_string().to_lowercase();
        match said.contains("ca_file") || said.contains("ca certificate file") {
            true => SmtpHold::CertificateNotTrusted,
            false => SmtpHold::LoginRefused,
        }
    }
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
    /// The server's TLS certificate did not verify: nothing is wrong with the letter, and trying
    /// again will not help until a person acts (`ca_file`, the server's certificate); stop and
    /// keep it pending.
    Untrusted,
    /// The server will not send as our address (a 5xx to `MAIL FROM`, Exchange Online's "send
    /// as" refusals): nothing is wrong with the letter, and every other letter would be refused
    /// alike until a person acts (the mailbox's Send As permission, `[mailbox] address`); stop
    /// and keep it pending.
    Sender,
    /// The server will not send from the shared mailbox for now (full, over its daily limit,
    /// throttled: [`failure_kind`]): every other letter would be refused alike; stop and keep it
    /// pending.
    Mailbox,
    /// A permanent refusal of the connection itself, before any letter (its greeting, `EHLO`,
    /// `STARTTLS`): every letter would meet it.
    Connection,
    /// Try again later (4xx, timeouts, connection failures).
    Transient,
    /// The letter's whole content went to the server, then no answer came (a timeout, a cut
    /// connection): the server may have accepted it. With the server keeping its own copy
    /// (`sent_copy = "server"`) the letter stays in doubt and the sent folder settles it;
    /// otherwise it is retried as a transient failure (and may then arrive twice).
    AfterContent,
}

impl FailureKind {
    /// The hold this failure puts on every letter, if it is one that repeats until a person acts
    /// and is no letter's fault.
    pub fn hold(self) -> Option<SmtpHold> {
        match self {
            FailureKind::Auth => Some(SmtpHold::LoginRefused),
            FailureKind::Untrusted => Some(SmtpHold::CertificateNotTrusted),
            FailureKind::Sender => Some(SmtpHold::SenderRefused),
            FailureKind::Mailbox => Some(SmtpHold::MailboxRefused),
            FailureKind::Connection => Some(SmtpHold::ConnectionRefused),
            FailureKind::Permanent | FailureKind::Transient | FailureKind::AfterContent => None,
        }
    }
}

/// Classify an SMTP failure from its reply code (if any), whether the client called it
/// permanent, and its text (read here, never logged). 530 (authentication required), 534
/// (mechanism too weak), 535 (credentials invalid) and 454 (temporary authentication failure)
/// are the login's fault, not the letter's; so is a client error about authentication or
/// credentials raised before any recipient was tried (no common AUTH mechanism). A permanent
/// refusal whose enhanced status code is about the sender — Exchange Online's 5.7.60 ("does not
/// have permissions to send as this sender"), 5.2.252 (SendAsDenied), 5.1.8 (bad outbound
/// sender) — is the sender's fault, whatever stage it came at. One about the sending mailbox
/// itself — full (`554 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException`),
/// over its daily recipient limit (`554 5.2.0 …SubmissionQuotaExceededException`), or throttled
/// for repeated errors (`550 5.2.251`, `5.2.253`, `5.2.254`, `5.2.255`) — is the mailbox's.
pub fn failure_kind(code: Option<u16>, permanent: bool, text: &str) -> FailureKind {
    let t = text.to_lowercase();
    let about_sender = ["5.7.60", "5.2.252", "5.1.8 ", "sendasdenied"]
        .iter()
        .any(|s| t.contains(s));
    // Exchange's own submission refusals only: a recipient's full mailbox elsewhere may also say
    // "QuotaExceeded", and is that letter's refusal.
    let about_mailbox = (t.contains("storedrv.submission") && t.contains("quotaexceeded"))
        || ["5.2.251", "5.2.253", "5.2.254", "5.2.255"]
            .iter()
            .any(|s| t.contains(s));
    match code {
        // 454 is also "4.7.0 TLS not available due to temporary reason", the answer to STARTTLS.
        Some(454) if t.contains("tls") => FailureKind::Transient,
        Some(530 | 534 | 535 | 454) => FailureKind::Auth,
        _ if permanent && about_sender => FailureKind::Sender,
        _ if permanent && about_mailbox => FailureKind::Mailbox,
        // lettre answers a server's XOAUTH2 error challenge (Dovecot sends one before its 535)
        // with "This mechanism does not expect a challenge": a refused token.
        None if t.contains("authentication")
            || t.contains("credentials")
            || t.contains("expect a challenge") =>
        {
            FailureKind::Auth
        }
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

/// The summaries ([`SendFailure::summary`]) of a failure with no answer from the server at all.
const TIMEOUT: &str = "timeout";
const CONNECTION_FAILURE: &str = "connection failure";

impl SendFailure {
    /// No answer came from the server at all — a timeout, a refused or cut connection — or one
    /// that refuses any connection for now (432, Exchange Online's "concurrent connections limit
    /// exceeded" to a fourth one), rather than a reply about this letter: every letter after it
    /// would meet the same, each charged an attempt. (A 421 stays the letter's own: a throttling
    /// server gives it per message, and each letter keeps its own day of retries.)
    pub fn unanswered(&self) -> bool {
        // 454 too when it is "TLS not available" ([`failure_kind`]): no connection would do.
        let service = self.summary.ends_with("(432)")
            || (self.summary.ends_with("(454)") && self.kind == FailureKind::Transient);
        matches!(
            self.kind,
            FailureKind::Transient | FailureKind::AfterContent
        ) && ([TIMEOUT, CONNECTION_FAILURE].contains(&self.summary.as_str()) || service)
    }
}

/// Something that takes a letter's envelope and exact bytes: SMTP, or a recorder in tests.
pub trait Transport: Send + Sync {
    /// Hand the letter over. `Ok` once the server took it for at least one addressee: what it
    /// says of those it refused is in [`Handed`].
    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<Handed, SendFailure>>;

    /// The pass is over: end any conversation still open politely (`QUIT`), within the
    /// transport's own timeout. Nothing to do for a transport that keeps no connection.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// What the server did with a letter it took.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Handed {
    /// The addressees it refused for good at `RCPT` (each with the server's answer); every
    /// other addressee has the letter. Empty: all have it.
    pub refused: Vec<(String, String)>,
}

impl Handed {
    /// Why a letter taken for some of its addressees only is undelivered, for its case's
    /// history (the server's answers name the addresses; views reduce them to their kind).
    pub fn reason(&self, addressees: usize) -> Option<String> {
        if self.refused.is_empty() {
            return None;
        }
        let each: Vec<String> = self
            .refused
            .iter()
            .map(|(address, answer)| format!("{address}: {answer}"))
            .collect();
        Some(format!(
            "refused by the mail server for {} of its {addressees} addressee(s), who did not get \
             it (the others did): {}",
            self.refused.len(),
            each.join("; ")
        ))
    }
}

impl Transport for AsyncSmtpTransport<Tokio1Executor> {
    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<Handed, SendFailure>> {
        Box::pin(async move {
            self.send_raw(envelope, raw)
                .await
                .map(|_| Handed::default())
                .map_err(lettre_failure)
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

/// A transport that keeps every letter instead of sending it, and refuses for good each address
/// it was told to refuse (as a server's `550` at `RCPT` would): a letter for refused addressees
/// only is refused; one with others too is kept for those others. For tests and replays.
#[derive(Debug, Clone, Default)]
pub struct RecordingTransport {
    sent: Arc<Mutex<Vec<RecordedLetter>>>,
    refused: Arc<Mutex<Vec<String>>>,
    login_refused: Arc<Mutex<bool>>,
    busy: Arc<Mutex<bool>>,
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

    /// Answer every letter with a temporary refusal (as a throttling server's `421` would) until
    /// told otherwise.
    pub fn busy(&self, busy: bool) {
        *self.busy.lock().expect("not poisoned") = busy;
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
    ) -> BoxFuture<'a, Result<Handed, SendFailure>> {
        let to: Vec<String> = envelope.to().iter().map(|a| a.to_string()).collect();
        let refused = self.refused.lock().expect("not poisoned").clone();
        let login_refused = *self.login_refused.lock().expect("not poisoned");
        let busy = *self.busy.lock().expect("not poisoned");
        let (refused, taken): (Vec<String>, Vec<String>) = to
            .into_iter()
            .partition(|a| refused.contains(&a.to_lowercase()));
        let answer = |a: &str| format!("550 5.1.1 <{a}>: Recipient address rejected");
        let result = if login_refused {
            Err(SendFailure {
                kind: FailureKind::Auth,
                detail: "535 5.7.8 Error: authentication failed".into(),
                summary: "authentication failed (535)".into(),
            })
        } else if busy {
            Err(SendFailure {
                kind: FailureKind::Transient,
                detail: "421 4.3.2 Service not available, try again later".into(),
                summary: "temporary refusal (421)".into(),
            })
        } else if taken.is_empty() {
            Err(SendFailure {
                kind: FailureKind::Permanent,
                detail: answer(refused.first().map_or("", String::as_str)),
                summary: "permanent refusal (550)".into(),
            })
        } else {
            self.sent
                .lock()
                .expect("not poisoned")
                .push(RecordedLetter {
                    from: envelope.from().map(|a| a.to_string()),
                    to: taken,
                    raw: raw.to_vec(),
                });
            Ok(Handed {
                refused: refused.iter().map(|a| (a.clone(), answer(a))).collect(),
            })
        };
        Box::pin(std::future::ready(result))
    }
}

// ---- The SMTP client ----
// The outbox's SMTP client: lettre's SMTP conversation on a TCP socket of our own, opened with
// `TCP_NODELAY`.
//
// Why not lettre's transport: it opens its socket itself and gives no hook to set socket
// options, and it writes a letter's bytes and the final `.` in two writes. With Nagle's
// algorithm on, the small second write waits for the server to acknowledge the first — and the
// server delays that acknowledgement (delayed ACK, ~40 ms on Linux) because it has nothing to
// say until it sees the dot. That wait was most of the ~50 ms hand-over, and the hand-over is
// the window in which a `kill -9` leaves a letter in doubt (see the module doc).
// Here the socket is ours (`AsyncSmtpConnection::connect_with_transport`), so `TCP_NODELAY`
// sends the dot at once; STARTTLS, AUTH (PLAIN/LOGIN or XOAUTH2) and the conversation itself
// stay lettre's. One connection is kept for the pass (as lettre's pool did) and dropped after any
// failure.
//
// Implicit TLS (`tls = "implicit"`, port 465) is the same socket with TLS started on it before
// the greeting, by tokio-rustls with the configuration the IMAP client uses
// ([`crate::shell::tls::client_config`]: the webpki roots plus `ca_file`), and lettre's
// conversation run inside it ([`ImplicitTls`]). lettre cannot be handed a socket to start TLS
// on itself; its own implicit-TLS socket had no `TCP_NODELAY`, so every letter there waited for
// the server's delayed acknowledgement. It logs nothing: errors go to the outbox, which logs
// their category and code only.

/// The SMTP client's socket: a `TcpStream` that acknowledges what it has read at once.
///
/// After STARTTLS the server sends its session tickets and then its answer to our `EHLO`; with
/// Nagle's algorithm on the server's side (Postfix here), the answer waits for the tickets to
/// be acknowledged, and Linux delays that acknowledgement (~40 ms) because we have nothing to
/// send until the answer comes: every pass's first letter waited 42–44 ms in two passes out of
/// three. Setting `TCP_QUICKACK` after a read sends any acknowledgement still pending at once
/// (the kernel turns quick-ack mode off again by itself, so it is set after every read). One
/// system call per read of a conversation of a few lines a letter.
#[derive(Debug)]
struct QuickAck(tokio::net::TcpStream);

impl tokio::io::AsyncRead for QuickAck {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let read = std::pin::Pin::new(&mut self.0).poll_read(cx, buf);
        if read.is_ready() {
            // Only a hint to the kernel: a failure changes nothing but the timing.
            let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
        }
        read
    }
}

impl tokio::io::AsyncWrite for QuickAck {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}

impl lettre::transport::smtp::client::AsyncTokioStream for QuickAck {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.peer_addr()
    }
}

/// The SMTP client's socket with implicit TLS: TLS started by us on a [`QuickAck`] socket, and
/// lettre's conversation inside it (lettre takes it for a plain stream and never starts TLS on
/// it again: `starttls` is only called with `tls = "starttls"`).
#[derive(Debug)]
struct ImplicitTls(tokio_rustls::client::TlsStream<QuickAck>);

impl tokio::io::AsyncRead for ImplicitTls {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ImplicitTls {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl lettre::transport::smtp::client::AsyncTokioStream for ImplicitTls {
    fn peer_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.0.get_ref().0.0.peer_addr()
    }
}

/// How an [`SmtpClient`]'s connection is secured: one value, so a TLS mode without its TLS
/// settings cannot be built (it would talk, and log in, in the clear).
enum Security {
    /// `tls = "none"` (the configuration allows it on loopback only).
    Plain,
    /// `tls = "starttls"`: lettre's STARTTLS with these parameters, before the login.
    Starttls(TlsParameters),
    /// `tls = "implicit"`: TLS started by us, before the greeting, with this configuration,
    /// checking the server's certificate against this name.
    Implicit(
        std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
        rustls_pki_types::ServerName<'static>,
    ),
}

/// Start implicit TLS on `socket`; the server's certificate is checked against `name`. (The whole
/// send, this included, is within the client's timeout: [`Transport::send`].)
async fn start_tls(
    config: std::sync::Arc<tokio_rustls::rustls::ClientConfig>,
    name: rustls_pki_types::ServerName<'static>,
    socket: QuickAck,
) -> Result<ImplicitTls, SendFailure> {
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, socket)
        .await
        .map_err(|e| {
            let untrusted = crate::shell::tls::certificate_not_trusted(&e);
            SendFailure {
                kind: match untrusted {
                    true => FailureKind::Untrusted,
                    false => FailureKind::Transient,
                },
                detail: format!("starting TLS with the mail server: {e}"),
                summary: match untrusted {
                    true => "certificate not trusted",
                    false => "TLS failure",
                }
                .into(),
            }
        })?;
    Ok(ImplicitTls(tls))
}

/// An SMTP client for one pass: connects at its first letter, reuses the connection after.
pub struct SmtpClient {
    host: String,
    port: u16,
    security: Security,
    credentials: Credentials,
    mechanisms: Vec<Mechanism>,
    timeout: std::time::Duration,
    conn: tokio::sync::Mutex<Option<AsyncSmtpConnection>>,
    /// Set once the current letter's whole content has been written (only its final dot and
    /// the server's answer to come): a failure after it leaves the letter in doubt.
    content_sent: std::sync::atomic::AtomicBool,
}

impl SmtpClient {
    /// A client for `s`'s server, secured by `security`, logging in as `username` with `secret`
    /// by one of `mechanisms`.
    fn new(
        s: &SmtpSettings,
        security: Security,
        secret: String,
        mechanisms: Vec<Mechanism>,
    ) -> SmtpClient {
        SmtpClient {
            host: s.host.clone(),
            port: s.port,
            security,
            credentials: Credentials::new(s.username.clone(), secret),
            mechanisms,
            timeout: s.timeout,
            conn: tokio::sync::Mutex::new(None),
            content_sent: std::sync::atomic::AtomicBool::new(false),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendFailure> {
        let hello = ClientId::default();
        let tcp = crate::shell::dial::dial(&self.host, self.port)
            .await
            .map_err(io_failure)?;
        tcp.set_nodelay(true).map_err(io_failure)?;
        let stream: Box<dyn lettre::transport::smtp::client::AsyncTokioStream> =
            match &self.security {
                Security::Implicit(config, name) => {
                    Box::new(start_tls(config.clone(), name.clone(), QuickAck(tcp)).await?)
                }
                Security::Plain | Security::Starttls(_) => Box::new(QuickAck(tcp)),
            };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &hello)
            .await
            .map_err(|e| before_any_letter(lettre_failure(e), FailureKind::Connection))?;
        if let Security::Starttls(params) = &self.security {
            conn.starttls(params.clone(), &hello)
                .await
                .map_err(|e| before_any_letter(lettre_failure(e), FailureKind::Connection))?;
        }
        conn.auth(&self.mechanisms, &self.credentials)
            .await
            .map_err(|e| before_any_letter(lettre_failure(e), FailureKind::Auth))?;
        Ok(conn)
    }

    /// The mail server did not answer within the client's timeout: after the letter's content,
    /// in doubt.
    fn timed_out(&self) -> SendFailure {
        let after = self.content_sent.load(std::sync::atomic::Ordering::SeqCst);
        SendFailure {
            kind: match after {
                true => FailureKind::AfterContent,
                false => FailureKind::Transient,
            },
            detail: format!(
                "no answer from the mail server within {} s{}",
                self.timeout.as_secs(),
                if after {
                    " after the letter's content"
                } else {
                    ""
                }
            ),
            summary: TIMEOUT.into(),
        }
    }

    async fn send_on(&self, envelope: &Envelope, raw: &[u8]) -> Result<Handed, SendFailure> {
        self.content_sent
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let mut slot = self.conn.lock().await;
        if slot.as_ref().is_none_or(AsyncSmtpConnection::has_broken) {
            *slot = Some(self.connect().await?);
        }
        let conn = slot.as_mut().expect("connected above");
        let sent = conversation(conn, envelope, raw, &self.content_sent).await;
        if sent.is_err() {
            // Whatever state the conversation is in, the next letter starts afresh.
            *slot = None;
        }
        sent
    }
}

/// One letter's SMTP transaction — what lettre's `send` does (`MAIL FROM` with `SMTPUTF8` and
/// `8BITMIME` as the letter needs them, `RCPT TO` for each addressee, `DATA`, the content, the
/// final dot), step by step, so that
/// - an addressee the server refuses for good at `RCPT` (someone who left: `550 5.1.1`) costs
///   only that addressee the letter, not everyone it is shared with (lettre gives up on the
///   whole letter): the others get it, and [`Handed`] names who did not;
/// - a failure after the content is known for one ([`FailureKind::AfterContent`]):
///   `content_sent` is set once every byte of the content is written, before the dot.
async fn conversation(
    conn: &mut AsyncSmtpConnection,
    envelope: &Envelope,
    raw: &[u8],
    content_sent: &std::sync::atomic::AtomicBool,
) -> Result<Handed, SendFailure> {
    use lettre::transport::smtp::commands::{Data, Mail, Rcpt};
    use lettre::transport::smtp::extension::{Extension, MailBodyParameter, MailParameter};
    let cannot = |detail: &str| SendFailure {
        kind: FailureKind::Permanent,
        detail: detail.to_string(),
        summary: "permanent refusal (the server lacks an extension)".into(),
    };
    let info = conn.server_info();
    let mut options = Vec::new();
    let addresses = envelope.from().into_iter().chain(envelope.to());
    if addresses
        .clone()
        .any(|a| !AsRef::<str>::as_ref(a).is_ascii())
    {
        if !info.supports_feature(Extension::SmtpUtfEight) {
            return Err(cannot(
                "an address is not ASCII and the mail server does not offer SMTPUTF8",
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !raw.is_ascii() {
        if !info.supports_feature(Extension::EightBitMime) {
            return Err(cannot(
                "the letter is not 7-bit and the mail server does not offer 8BITMIME",
            ));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    conn.command(Mail::new(envelope.from().cloned(), options))
        .await
        .map_err(mail_from_failure)?;
    let mut handed = Handed::default();
    let mut first_refusal = None;
    for to in envelope.to() {
        match conn.command(Rcpt::new(to.clone(), Vec::new())).await {
            Ok(_) => {}
            Err(e) if e.is_permanent() => {
                handed.refused.push((to.to_string(), e.to_string()));
                first_refusal.get_or_insert(e);
            }
            Err(e) => return Err(lettre_failure(e)),
        }
    }
    if handed.refused.len() == envelope.to().len()
        && let Some(e) = first_refusal
    {
        return Err(lettre_failure(e)); // nobody to send it to: refused
    }
    conn.command(Data).await.map_err(lettre_failure)?;
    // lettre writes each part as the iterator gives it, then the dot: the iterator is asked for
    // a next part only once the content is written.
    let parts = std::iter::once(raw).chain(std::iter::from_fn(|| {
        content_sent.store(true, std::sync::atomic::Ordering::SeqCst);
        None
    }));
    match conn.message_iter(parts).await {
        Ok(_) => Ok(handed),
        // The server's answer to the dot (a 4xx or 5xx) is an answer: the letter was not taken.
        Err(e) if e.status().is_some() => Err(lettre_failure(e)),
        Err(e) if content_sent.load(std::sync::atomic::Ordering::SeqCst) => {
            let mut f = lettre_failure(e);
            f.kind = FailureKind::AfterContent;
            f.detail = format!("after the letter's content: {}", f.detail);
            Err(f)
        }
        Err(e) => Err(lettre_failure(e)),
    }
}

impl Transport for SmtpClient {
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let open = self.conn.lock().await.take();
            if let Some(mut conn) = open.filter(|c| !c.has_broken()) {
                // Whatever the server answers, the pass is over; its answer changes nothing.
                let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
            }
        })
    }

    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<Handed, SendFailure>> {
        Box::pin(async move {
            match tokio::time::timeout(
                letter_budget(self.timeout, raw.len()),
                self.send_on(envelope, raw),
            )
            .await
            {
                Ok(result) => result,
                Err(_) => {
                    *self.conn.lock().await = None;
                    Err(self.timed_out())
                }
            }
        })
    }
}

/// The slowest upload a letter is allowed before it counts as unanswered: 64 KB/s (half a
/// megabit), far below any office line — and slow enough that a 25 MB letter still ends within
/// systemd's ten-minute watchdog, which is pinged after each letter.
const SLOWEST_UPLOAD_BYTES_PER_SECOND: u64 = 64 * 1024;

/// How long one letter may take: `[smtp] timeout_seconds` for the conversation, plus its upload
/// at [`SLOWEST_UPLOAD_BYTES_PER_SECOND`]. A 20 MB referral forwarded over a 3 Mbit/s office line
/// takes about a minute to upload; with only the timeout it was cut off and uploaded again at
/// every retry until given up a day later, its statutory day missed.
fn letter_budget(timeout: std::time::Duration, bytes: usize) -> std::time::Duration {
    timeout + std::time::Duration::from_secs(bytes as u64 / SLOWEST_UPLOAD_BYTES_PER_SECOND)
}

/// lettre's error as a failure; a certificate that did not verify during STARTTLS (lettre wraps
/// rustls's error as a connection error) is [`FailureKind::Untrusted`].
fn lettre_failure(e: lettre::transport::smtp::Error) -> SendFailure {
    let kind = match crate::shell::tls::certificate_not_trusted(&e) {
        true => FailureKind::Untrusted,
        false => failure_kind(e.status().map(u16::from), e.is_permanent(), &e.to_string()),
    };
    SendFailure {
        kind,
        detail: e.to_string(),
        summary: smtp_summary(&e),
    }
}

/// A failure while connecting or logging in, before any letter was given: a permanent refusal
/// there is never the letter's ([`FailureKind::Permanent`] would give up every due letter in one
/// pass) but the connection's, or the login's (`504 5.7.4 Unrecognized authentication type`,
/// Exchange Online's `550 5.7.30 Basic authentication is not supported`): `kind`, which holds
/// every letter until it is put right.
fn before_any_letter(f: SendFailure, kind: FailureKind) -> SendFailure {
    match f.kind {
        FailureKind::Permanent => SendFailure { kind, ..f },
        _ => f,
    }
}

/// A refusal of `MAIL FROM`: a permanent one names no recipient, so it is about our address
/// ([`FailureKind::Sender`]); anything else as [`lettre_failure`] says.
fn mail_from_failure(e: lettre::transport::smtp::Error) -> SendFailure {
    match lettre_failure(e) {
        f if f.kind == FailureKind::Permanent => SendFailure {
            kind: FailureKind::Sender,
            ..f
        },
        f => f,
    }
}

fn io_failure(e: std::io::Error) -> SendFailure {
    SendFailure {
        kind: FailureKind::Transient,
        detail: format!("connecting to the mail server: {e}"),
        summary: CONNECTION_FAILURE.into(),
    }
}

/// `MAIL FROM:<from>` then `RSET` on a logged-in connection: whether the server will send as
/// `from`, sending nothing. A permanent refusal is the sender's ([`FailureKind::Sender`]).
async fn may_send_as(conn: &mut AsyncSmtpConnection, from: &str) -> Result<(), SendFailure> {
    use lettre::transport::smtp::commands::{Mail, Rset};
    let address: lettre::Address = from.parse().map_err(|e| SendFailure {
        kind: FailureKind::Sender,
        detail: format!("[mailbox] address `{from}` is not an address: {e}"),
        summary: "sender address".into(),
    })?;
    conn.command(Mail::new(Some(address), Vec::new()))
        .await
        .map_err(mail_from_failure)?;
    conn.command(Rset).await.map_err(lettre_failure)?;
    Ok(())
}

/// The transport for the configured SMTP server: with a password, the outbox's client
/// ([`SmtpClient`]); with `auth = "oauth2"`, an [`OAuthSmtp`] that logs in with the current token.
pub fn smtp(s: &SmtpSettings) -> Result<Box<dyn Transport>, OutboxError> {
    match &s.oauth2 {
        Some(_) => Ok(Box::new(OAuthSmtp {
            settings: s.clone(),
            login: tokio::sync::OnceCell::new(),
        })),
        None => Ok(Box::new(client(s, None)?)),
    }
}

/// SMTP with `AUTH XOAUTH2`. The token is asked for at the first letter of a pass (a pass with
/// nothing to send asks for none) and the outbox's client is built with it (its credentials are
/// fixed when it is built, so each pass builds its own). No token, or a refused one, is
/// [`FailureKind::Auth`]: every letter stays pending and the `<smtp>` health row is raised; a
/// refused token is forgotten, so the next pass asks for a new one.
pub struct OAuthSmtp {
    settings: SmtpSettings,
    login: tokio::sync::OnceCell<Result<(Arc<SmtpClient>, AccessToken), SendFailure>>,
}

impl OAuthSmtp {
    async fn login(&self) -> Result<(Arc<SmtpClient>, AccessToken), SendFailure> {
        let source = self
            .settings
            .oauth2
            .as_ref()
            .expect("built only with [oauth2]");
        let token = source.token().await.map_err(|e| SendFailure {
            kind: FailureKind::Auth,
            detail: e.to_string(),
            summary: "no access token".into(),
        })?;
        let t = client(&self.settings, Some(&token)).map_err(|e| SendFailure {
            kind: FailureKind::Auth,
            detail: e.to_string(),
            summary: "SMTP settings".into(),
        })?;
        Ok((Arc::new(t), token))
    }
}

impl Transport for OAuthSmtp {
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            if let Some(Ok((t, _))) = self.login.get() {
                t.close().await;
            }
        })
    }

    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        raw: &'a [u8],
    ) -> BoxFuture<'a, Result<Handed, SendFailure>> {
        Box::pin(async move {
            let (t, token) = self.login.get_or_init(|| self.login()).await.clone()?;
            let result = Transport::send(t.as_ref(), envelope, raw).await;
            if let Err(e) = &result
                && e.kind == FailureKind::Auth
                && let Some(source) = &self.settings.oauth2
            {
                source.refused(&token).await;
            }
            result
        })
    }
}

/// Connect and log in to the SMTP server as a pass would, sending nothing (`check --connect`):
/// the outbox's own client ([`SmtpClient`]: its socket, its TLS, its login), then `NOOP` and
/// `QUIT`, within the client's timeout. A refused login is [`FailureKind::Auth`].
///
/// With `sender`, the server is also asked whether it will send as that address: `MAIL FROM`
/// with it, then `RSET` — nothing is sent. A refusal is [`FailureKind::Sender`] (Exchange
/// Online's missing Send As permission on the shared mailbox), which the daemon would otherwise
/// meet only at its first letter, holding every letter.
pub async fn test_login(s: &SmtpSettings, sender: Option<&str>) -> Result<(), SendFailure> {
    let setup = |e: OutboxError| SendFailure {
        kind: FailureKind::Transient,
        detail: e.to_string(),
        summary: "SMTP settings".into(),
    };
    let (c, token) = match &s.oauth2 {
        Some(_) => {
            let o = OAuthSmtp {
                settings: s.clone(),
                login: tokio::sync::OnceCell::new(),
            };
            let (_, token) = o.login().await?;
            (client(s, Some(&token)).map_err(setup)?, Some(token))
        }
        None => (client(s, None).map_err(setup)?, None),
    };
    let talk = async {
        let mut conn = c.connect().await?;
        let answered = conn.test_connected().await;
        let may_send = match (answered, sender) {
            (true, Some(from)) => may_send_as(&mut conn, from).await,
            _ => Ok(()),
        };
        let _ = conn.quit().await;
        match answered {
            true => may_send,
            false => Err(SendFailure {
                kind: FailureKind::Transient,
                detail: "the connection did not answer NOOP".into(),
                summary: CONNECTION_FAILURE.into(),
            }),
        }
    };
    let result = tokio::time::timeout(s.timeout, talk)
        .await
        .unwrap_or_else(|_| Err(c.timed_out()));
    if let (Err(e), Some(token), Some(source)) = (&result, &token, &s.oauth2)
        && e.kind == FailureKind::Auth
    {
        source.refused(token).await;
    }
    result
}

/// lettre's own SMTP transport for the settings, logging in with the password: the reference
/// `caseclerk bench --letters` measures the outbox's client against (its own socket, Nagle on).
/// Nothing sends with it.
pub fn transport(s: &SmtpSettings) -> Result<AsyncSmtpTransport<Tokio1Executor>, OutboxError> {
    let (secret, mechanisms) = login_parts(s, None)?;
    let tls = match s.tls {
        TlsMode::Implicit => Tls::Wrapper(tls_parameters(s)?),
        TlsMode::Starttls => Tls::Required(tls_parameters(s)?),
        TlsMode::None => Tls::None,
    };
    Ok(
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
            .port(s.port)
            .tls(tls)
            .timeout(Some(s.timeout))
            .credentials(Credentials::new(s.username.clone(), secret))
            .authentication(mechanisms)
            .build(),
    )
}

/// The client the outbox sends with: lettre's conversation on a `TCP_NODELAY` socket
/// ([`SmtpClient`]): with `token`, AUTH XOAUTH2 as the mailbox; else AUTH PLAIN/LOGIN with the
/// password.
fn client(s: &SmtpSettings, token: Option<&AccessToken>) -> Result<SmtpClient, OutboxError> {
    let (secret, mechanisms) = login_parts(s, token)?;
    let err = |detail: String| settings_error(s, detail);
    let security = match s.tls {
        TlsMode::None => Security::Plain,
        TlsMode::Starttls => Security::Starttls(tls_parameters(s)?),
        TlsMode::Implicit => Security::Implicit(
            crate::shell::tls::client_config(s.ca_file.as_deref())
                .map_err(|e| err(e.to_string()))?,
            rustls_pki_types::ServerName::try_from(s.host.clone())
                .map_err(|e| err(format!("{e}: host must be a DNS name or an IP address")))?,
        ),
    };
    Ok(SmtpClient::new(s, security, secret, mechanisms))
}

/// A problem with the `[smtp]` settings for `s`'s server.
fn settings_error(s: &SmtpSettings, detail: String) -> OutboxError {
    OutboxError::Settings {
        host: s.host.clone(),
        detail,
    }
}

/// What a login needs: the secret (the token, or the password as it is now) and the mechanisms to
/// offer.
fn login_parts(
    s: &SmtpSettings,
    token: Option<&AccessToken>,
) -> Result<(String, Vec<Mechanism>), OutboxError> {
    let err = |detail: String| settings_error(s, detail);
    let (secret, mechanisms) = match token {
        Some(t) => (t.token.expose().to_string(), vec![Mechanism::Xoauth2]),
        None => {
            let password = s.password.as_ref().ok_or_else(|| {
                err("no password (set password_env or password_file in [smtp])".into())
            })?;
            (
                current_password(s, password),
                vec![Mechanism::Plain, Mechanism::Login],
            )
        }
    };
    Ok((secret, mechanisms))
}

/// lettre's TLS parameters for `s`'s server: the webpki roots plus `ca_file`.
fn tls_parameters(s: &SmtpSettings) -> Result<TlsParameters, OutboxError> {
    let err = |detail: String| settings_error(s, detail);
    let mut params = TlsParameters::builder(s.host.clone());
    if let Some(ca) = &s.ca_file {
        let pem = std::fs::read(ca).map_err(|e| err(format!("ca_file {}: {e}", ca.display())))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| err(format!("ca_file {}: {e}", ca.display())))?;
        params = params.add_root_certificate(cert);
    }
    params.build_rustls().map_err(|e| err(e.to_string()))
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
    /// The server refused our login, or its certificate did not verify: the pass stopped with
    /// every letter left pending.
    pub held: Option<SmtpHold>,
    /// The database would not take the outbox's records (an intent, or an outcome after a
    /// `250`): the outbox sent nothing more, and tries again at the next pass.
    pub stopped: bool,
    /// The server gave no answer at all to a letter (a timeout, a refused or cut connection):
    /// the pass stopped there, and the letters after it wait, untried, for the next pass — each
    /// would have waited as long, and a pass of many letters to a silent relay outlasted the
    /// watchdog, which killed the daemon mid-send.
    pub unanswered: bool,
    /// Letters in doubt recorded sent because the server's copy was in the sent folder (not
    /// sent again).
    pub confirmed_by_copy: usize,
    /// The earliest instant a letter in doubt left waiting (for the server's copy to arrive, or
    /// for the sent folder to answer) is to be looked at again: the daemon's next pass.
    pub recheck_at: Option<DateTime<Utc>>,
}

/// How soon the next pass comes after the outbox stopped because it could not write: writing the
/// remembered outcomes again is cheap, and until it succeeds no letter goes.
pub const RETRY_RECORDING_AFTER: Duration = Duration::seconds(10);

/// When to try again after `attempts` failures: 1, 2, 4 … minutes, at most an hour apart.
pub fn retry_delay(attempts: i64) -> Duration {
    let minutes = 1i64 << attempts.clamp(0, 6);
    Duration::minutes(minutes.min(60))
}

/// Letters the server accepted (`250`) whose "sent" the database would not take, kept in memory
/// by the engine across passes. While one is here the outbox sends nothing: every pass first
/// writes them, and only when all are written does it send again (no restart, no resend). The
/// database meanwhile shows each as "being sent since" its intent (see the module doc).
#[derive(Debug, Default)]
pub struct Unrecorded(Mutex<Vec<Accepted>>);

/// A letter the server accepted: what its record needs.
#[derive(Debug, Clone)]
struct Accepted {
    id: i64,
    event: Option<(i64, Event)>,
    at: DateTime<Utc>,
    /// Why it is undelivered all the same, when the server refused some of its addressees.
    refused: Option<String>,
}

/// Commit `staged`, the letter's "sent" ([`SendConn::stage_sent`]) — with, when the server
/// refused some of its addressees, its being undelivered all the same (as a bounce for some of
/// them makes it, `refused` on its case): one commit, on the `250` or when recorded late.
async fn commit_sent(
    mut staged: crate::shell::store::Tx<'_>,
    a: &Accepted,
) -> Result<(), StoreError> {
    if let Some(reason) = &a.refused {
        partly_refused(&mut staged, a, reason).await?;
    }
    Store::commit(staged).await
}

async fn partly_refused(
    tx: &mut crate::shell::store::Tx<'_>,
    a: &Accepted,
    reason: &str,
) -> Result<(), StoreError> {
    Store::mark_bounced(tx, a.id).await?;
    if let Some((
        case_id,
        Event::LetterSent {
            step, recipient, ..
        },
    )) = &a.event
    {
        let e = Event::LetterUndelivered {
            step: step.clone(),
            recipient: recipient.clone(),
            outbox: a.id,
            reason: reason.to_string(),
        };
        record_event(tx, *case_id, a.at, "caseclerk", &e).await?;
    }
    Ok(())
}

impl Unrecorded {
    /// Ids of the letters accepted but not yet recorded.
    pub fn ids(&self) -> Vec<i64> {
        self.0
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|a| a.id)
            .collect()
    }

    fn remember(&self, a: Accepted) {
        self.0.lock().expect("not poisoned").push(a);
    }

    /// Write every remembered outcome, oldest first; true when none is left.
    async fn record(&self, conn: &mut SendConn) -> bool {
        let waiting = std::mem::take(&mut *self.0.lock().expect("not poisoned"));
        let mut left = waiting.into_iter();
        while let Some(a) = left.next() {
            let event = a.event.as_ref().map(|(c, e)| (*c, e));
            let recorded = match conn.stage_sent(a.id, event, a.at).await {
                Ok(staged) => commit_sent(staged, &a).await,
                Err(e) => Err(e),
            };
            match recorded {
                Ok(()) => {
                    tracing::info!(
                        outbox = a.id,
                        "letter recorded as sent at last; the outbox resumes"
                    )
                }
                Err(e) => {
                    tracing::error!(outbox = a.id, error = %e, "still cannot record a letter the mail server accepted; the outbox stays stopped (free space or make the database writable)");
                    let mut kept = self.0.lock().expect("not poisoned");
                    let newer = std::mem::take(&mut *kept);
                    kept.push(a);
                    kept.extend(left);
                    kept.extend(newer);
                    return false;
                }
            }
        }
        true
    }
}

/// Where the outbox can look for the server's copy of a letter (by Message-ID).
pub trait SentFolder: Send + Sync {
    /// Whether the folder holds a letter with this Message-ID; an error (for the log: no
    /// addresses or content) when the folder cannot be searched.
    fn has_copy<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<bool, String>>;
}

impl SentFolder for crate::shell::config::ImapSettings {
    fn has_copy<'a>(&'a self, message_id: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            crate::shell::sentfolder::has_copy(self, message_id)
                .await
                .map_err(|e| e.to_string())
        })
    }
}

/// How the outbox settles a letter in doubt: the [`CopyPolicy`], and with a server copy the
/// folder to look in.
#[derive(Clone, Copy)]
pub struct InDoubt<'a> {
    pub policy: CopyPolicy,
    pub folder: Option<&'a dyn SentFolder>,
    /// The partnership's address as configured now (`[mailbox] address`): a refusal to send as
    /// it holds every letter ([`FailureKind::Sender`]); a refusal of a letter made when the
    /// address was another (queued before it changed, or resent as it was) is that letter's
    /// own, and never holds the rest. Unknown (`None`): any such refusal holds.
    pub sender: Option<&'a str>,
    /// Told after each letter the pass has dealt with: the daemon pings systemd's watchdog, so a
    /// pass of many large letters over a slow line is not killed mid-send for taking longer than
    /// the watchdog's interval (each letter is bounded by the transport's own timeout).
    pub progress: Option<&'a (dyn Fn() + Send + Sync)>,
    /// The sent folder holding a copy of every letter sent, by the server or by caseclerk's own
    /// filing (any `sent_copy` but `"none"`): after a restore, a letter due before it is looked
    /// for there before it goes ([`after_restore`]).
    pub copies: Option<&'a dyn SentFolder>,
}

impl<'a> InDoubt<'a> {
    /// No server copy: a letter in doubt is sent again at once.
    pub fn resend() -> InDoubt<'static> {
        InDoubt {
            policy: CopyPolicy::NoServerCopy,
            folder: None,
            sender: None,
            progress: None,
            copies: None,
        }
    }

    /// As `[mailbox]` says: with `sent_copy = "server"`, look in its sent folder after the grace.
    pub fn from_settings(imap: &'a crate::shell::config::ImapSettings) -> InDoubt<'a> {
        use crate::shell::config::SentCopy;
        let copies = imap.copies_folder().map(|_| imap as &'a dyn SentFolder);
        match (imap.sent_copy, &imap.sent_folder) {
            (SentCopy::Server, Some(_)) => InDoubt {
                policy: CopyPolicy::server_copy(
                    Duration::from_std(imap.in_doubt_grace).unwrap_or(Duration::minutes(2)),
                ),
                folder: Some(imap),
                sender: None,
                progress: None,
                copies,
            },
            _ => InDoubt {
                copies,
                ..InDoubt::resend()
            },
        }
    }
}

/// Send every letter that is due at `now` — after writing any outcome `unrecorded` still holds;
/// if that fails, nothing is sent. A letter in doubt is sent again at once.
pub async fn send_due(
    store: &Store,
    transport: &dyn Transport,
    unrecorded: &Unrecorded,
    now: DateTime<Utc>,
) -> Result<SendReport, OutboxError> {
    send_due_settling(store, transport, unrecorded, InDoubt::resend(), now).await
}

/// As [`send_due`], a letter in doubt being settled as `doubt` says (see the module doc).
pub async fn send_due_settling(
    store: &Store,
    transport: &dyn Transport,
    unrecorded: &Unrecorded,
    doubt: InDoubt<'_>,
    now: DateTime<Utc>,
) -> Result<SendReport, OutboxError> {
    let mut report = SendReport::default();
    let mut conn = store.send_connection().await?;
    if !unrecorded.record(&mut conn).await {
        report.stopped = true;
        return Ok(report);
    }
    let result = send_all(
        store,
        &mut conn,
        transport,
        unrecorded,
        doubt,
        now,
        &mut report,
    )
    .await;
    conn.finish().await;
    transport.close().await;
    result.map(|_| report)
}

async fn send_all(
    store: &Store,
    conn: &mut SendConn,
    transport: &dyn Transport,
    unrecorded: &Unrecorded,
    doubt: InDoubt<'_>,
    now: DateTime<Utc>,
    report: &mut SendReport,
) -> Result<(), OutboxError> {
    let restored = store.restored_at().await?;
    // Once the sent folder cannot be searched, the other letters due before the restore wait for
    // the next pass without asking again (each ask may take the whole command timeout).
    let mut folder_down = false;
    // One letter's bytes in memory at a time (a letter can carry a referral's attachments).
    for id in store.sendable_ids(now).await? {
        let Some(row) = store.sendable_letter(id, now).await? else {
            continue;
        };
        if let Some(at) = restored.filter(|at| row.due_at <= *at) {
            let looked = match folder_down {
                true => Ok(Restored::FolderDown),
                false => after_restore(conn, doubt.copies, &row, now, report).await,
            };
            if let Some(alive) = doubt.progress {
                alive();
            }
            match looked {
                Ok(Restored::Send) => {}
                Ok(Restored::Recorded) => continue,
                Ok(Restored::FolderDown) if now - at < Duration::hours(RESTORE_LOOKUP_WAIT) => {
                    folder_down = true;
                    report.retrying += 1;
                    continue;
                }
                Ok(Restored::FolderDown) => {
                    folder_down = true;
                    tracing::warn!(
                        outbox = row.id,
                        "letter due before the restore: the sent folder could not be searched for a day; it goes now"
                    );
                }
                Err(e) => {
                    cannot_start(&row, &e, report);
                    break;
                }
            }
        }
        match settle(conn, doubt, &row, now, report).await {
            Ok(Settled::Send) => {}
            Ok(Settled::Done) => continue,
            Err(e) => {
                cannot_start(&row, &e, report);
                break;
            }
        }
        let parts = Sending {
            store,
            transport,
            unrecorded,
            policy: doubt.policy,
            sender: doubt.sender,
        };
        send_one(&parts, conn, &row, now, report).await?;
        if let Some(alive) = doubt.progress {
            alive();
        }
        if report.held.is_some() || report.stopped || report.unanswered {
            // The same login, or certificate, would be refused; the same database would refuse;
            // the same silent server would keep the next letter waiting as long.
            break;
        }
    }
    Ok(())
}

/// What [`settle`] left to do with a letter.
enum Settled {
    /// Hand it to the server (it is not in doubt, or it is and must go again).
    Send,
    /// Nothing now: recorded sent from the server's copy, or left waiting.
    Done,
}

/// A letter found with an intent and no outcome is in doubt: decide with [`indoubt::decide`]
/// whether it goes again, waits, or is recorded sent from the server's copy in the sent folder.
async fn settle(
    conn: &mut SendConn,
    doubt: InDoubt<'_>,
    row: &OutboxRow,
    now: DateTime<Utc>,
    report: &mut SendReport,
) -> Result<Settled, StoreError> {
    if doubt.policy == CopyPolicy::NoServerCopy {
        return Ok(Settled::Send); // mark_sending counts and logs the doubt
    }
    let Some(intent) = conn.intent(row.id).await? else {
        return Ok(Settled::Send);
    };
    let mut lookup = None;
    loop {
        match indoubt::decide(doubt.policy, intent, now, lookup) {
            Doubt::WaitUntil(at) => {
                tracing::info!(outbox = row.id, step = %row.step, recheck_at = %at, looked = lookup.is_some(), "letter in doubt: waiting for the server's copy before deciding whether to send it again");
                report.recheck_at = Some(report.recheck_at.map_or(at, |r| r.min(at)));
                return Ok(Settled::Done);
            }
            Doubt::LookUp => {
                lookup = Some(match doubt.folder {
                    None => Lookup::Failed,
                    Some(f) => match f.has_copy(&row.message_id).await {
                        Ok(true) => Lookup::Found,
                        Ok(false) => Lookup::Absent,
                        Err(e) => {
                            tracing::warn!(outbox = row.id, error = %e, "letter in doubt: the sent folder cannot be searched; the letter waits (an hour at most, then it is sent again)");
                            Lookup::Failed
                        }
                    },
                });
            }
            Doubt::RecordSent => {
                found_in_the_sent_folder(conn, row, intent, now, report).await?;
                tracing::info!(outbox = row.id, step = %row.step, "letter in doubt found in the sent folder: the server had accepted it; recorded as sent, not sent again");
                return Ok(Settled::Done);
            }
            Doubt::Resend => return Ok(Settled::Send),
        }
    }
}

/// Record `row` sent at `sent` from its copy in the sent folder (with its case's event), never
/// sending it again.
async fn found_in_the_sent_folder(
    conn: &mut SendConn,
    row: &OutboxRow,
    sent: DateTime<Utc>,
    now: DateTime<Utc>,
    report: &mut SendReport,
) -> Result<(), StoreError> {
    let event = row.case_id.map(|case_id| {
        let e = Event::LetterSent {
            step: row.step.clone(),
            recipient: row.recipient.clone(),
            outbox: row.id,
            confirmed_by_copy: true,
        };
        (case_id, e)
    });
    let event = event.as_ref().map(|(c, e)| (*c, e));
    conn.record_confirmed_by_copy(row.id, event, sent, now)
        .await?;
    report.confirmed_by_copy += 1;
    Ok(())
}

/// How long after a restore a letter due before it waits for a sent folder that cannot be
/// searched, before it goes anyway (a letter late beats one never sent).
const RESTORE_LOOKUP_WAIT: i64 = 24;

/// What [`after_restore`] found of a letter due before the restore.
enum Restored {
    /// Not in the sent folder (or there is none): it goes.
    Send,
    /// Found there, and recorded sent.
    Recorded,
    /// The folder cannot be searched: it waits, for [`RESTORE_LOOKUP_WAIT`] hours at most.
    FolderDown,
}

/// A letter due before the database was restored from a backup may have gone already, after the
/// backup was taken: the backup says "not sent", and the same letter would go twice — with the
/// same Message-ID, to the same people. So it is looked for in the sent folder first: found, it
/// is recorded sent from that copy, on its due day; absent, it goes. With no sent folder
/// (`sent_copy = "none"`) it goes (`caseclerk restore` warns of this).
async fn after_restore(
    conn: &mut SendConn,
    copies: Option<&dyn SentFolder>,
    row: &OutboxRow,
    now: DateTime<Utc>,
    report: &mut SendReport,
) -> Result<Restored, StoreError> {
    let Some(folder) = copies else {
        return Ok(Restored::Send);
    };
    match folder.has_copy(&row.message_id).await {
        Ok(true) => {
            // Sent on its day as far as anyone can tell now: recorded at the restore's time, an
            // agency's request would seem to have gone late and its return day moved.
            found_in_the_sent_folder(conn, row, row.due_at, now, report).await?;
            tracing::info!(outbox = row.id, step = %row.step, "letter due before the restore found in the sent folder: it went after the backup was taken; recorded as sent, not sent again");
            Ok(Restored::Recorded)
        }
        Ok(false) => Ok(Restored::Send),
        Err(e) => {
            tracing::warn!(outbox = row.id, error = %e, "letter due before the restore: the sent folder cannot be searched; the letters due before the restore wait, so as not to go twice");
            Ok(Restored::FolderDown)
        }
    }
}

/// What sending one letter works with.
struct Sending<'a> {
    store: &'a Store,
    transport: &'a dyn Transport,
    unrecorded: &'a Unrecorded,
    /// How a letter in doubt is settled (a failure after its content leaves it in doubt when
    /// the server keeps a copy).
    policy: CopyPolicy,
    /// The address the partnership sends as now ([`InDoubt::sender`]).
    sender: Option<&'a str>,
}

async fn send_one(
    parts: &Sending<'_>,
    conn: &mut SendConn,
    row: &OutboxRow,
    now: DateTime<Utc>,
    report: &mut SendReport,
) -> Result<(), OutboxError> {
    let Sending {
        store,
        transport,
        unrecorded,
        policy,
        sender,
    } = *parts;
    // A letter from an address that is no longer ours is refused for itself.
    let ours = |from: &str| sender.is_none_or(|s| s.eq_ignore_ascii_case(from));
    let envelope = match envelope(row) {
        Ok(e) => e,
        Err(reason) => return undelivered(store, row, &reason, now, report).await,
    };
    // Everything the outcome's record needs is made before the letter goes.
    let accepted = Accepted {
        id: row.id,
        event: row.case_id.map(|case_id| {
            let e = Event::LetterSent {
                step: row.step.clone(),
                recipient: row.recipient.clone(),
                outbox: row.id,
                confirmed_by_copy: false,
            };
            (case_id, e)
        }),
        at: now,
        refused: None,
    };
    match conn.mark_sending(row.id, now).await {
        Ok(false) => {}
        Ok(true) => {
            tracing::warn!(outbox = row.id, step = %row.step, "letter in doubt: an earlier attempt was handed to the mail server but its outcome never recorded; sending it again with the same Message-ID")
        }
        Err(e) => {
            cannot_start(row, &e, report);
            return Ok(());
        }
    }
    // The outcome "sent" is written now, in a transaction left open across the hand-over and
    // committed on the 250: between the server's answer and our record there is one COMMIT.
    let event = accepted.event.as_ref().map(|(c, e)| (*c, e));
    let staged = match conn.stage_sent(row.id, event, now).await {
        Ok(tx) => tx,
        Err(e) => {
            cannot_start(row, &e, report);
            return Ok(());
        }
    };
    let started = std::time::Instant::now();
    let result = transport.send(&envelope, &row.raw).await;
    let handed = started.elapsed();
    let mut accepted = accepted;
    let result = match result {
        Ok(h) => {
            // Refused for some addressees only: sent to the others, and undelivered all the same
            // (raised to the business manager), recorded with the "sent" in one commit.
            accepted.refused = h.reason(row.envelope_to.len());
            Ok(commit_sent(staged, &accepted).await)
        }
        Err(e) => {
            let _ = staged.rollback().await; // (dropping it would roll back too)
            Err(e)
        }
    };
    match result {
        Ok(Ok(())) => {
            // How long the hand-over took, and how long the record after the 250 (the window).
            let (hand_over_us, record_us) =
                (handed.as_micros(), (started.elapsed() - handed).as_micros());
            tracing::info!(outbox = row.id, step = %row.step, to = %hash_id(&row.recipient), hand_over_us, record_us, "letter sent");
            if report.sent == 0 {
                store.record_mailbox_ok(SMTP_HEALTH_KEY, now).await?;
            }
            report.sent += 1;
            if accepted.refused.is_some() {
                tracing::warn!(outbox = row.id, step = %row.step, "letter refused by the mail server for some of its addressees: sent to the others, recorded undelivered");
                report.undelivered += 1;
            }
        }
        Ok(Err(e)) => {
            tracing::error!(outbox = row.id, error = %e, "the mail server accepted a letter but recording it failed; the outbox stops sending until it is recorded (kept in memory: it will not be sent again unless the daemon stops first)");
            unrecorded.remember(accepted);
            report.sent += 1;
            report.stopped = true;
        }
        Err(e) if e.kind == FailureKind::Sender && !ours(&row.envelope_from) => {
            let reason = format!(
                "refused by the mail server: it was made to go from an address that is no longer \
                 the partnership's ([mailbox] address); send it again (caseclerk resend) from the \
                 address in use: {}",
                e.detail
            );
            undelivered(store, row, &reason, now, report).await?;
        }
        Err(e) if let Some(hold) = e.kind.hold() => {
            // Not the letter's fault: it stays pending, untouched (attempts, next try), and is
            // neither undelivered nor raised; the login, or the certificate, needs a person.
            conn.clear_sending(row.id).await?;
            store
                .record_mailbox_error(SMTP_HEALTH_KEY, hold.recorded(), now)
                .await?;
            match hold {
                SmtpHold::LoginRefused => {
                    tracing::error!(outbox = row.id, error = %e.summary, "the mail server refused our login; no letters sent this pass (check the SMTP password)")
                }
                SmtpHold::CertificateNotTrusted => {
                    tracing::error!(outbox = row.id, error = %e.summary, "the mail server's certificate is not trusted; no letters sent this pass (set [smtp] ca_file to the CA that signs it, or renew the server's certificate)")
                }
                SmtpHold::SenderRefused => {
                    tracing::error!(outbox = row.id, error = %e.summary, "the mail server refuses to send as our address; no letters sent this pass (check the account's Send As permission on the shared mailbox and [mailbox] address)")
                }
                SmtpHold::MailboxRefused => {
                    tracing::error!(outbox = row.id, error = %e.summary, "the mail server will not send from the shared mailbox now (full, over its daily limit, or throttled); no letters sent this pass (free space in the mailbox, e.g. its Sent Items, or wait for the limit)")
                }
                SmtpHold::ConnectionRefused => {
                    tracing::error!(outbox = row.id, error = %e.summary, "the mail server refuses caseclerk's connection before any letter (our address blocked, or its access list); no letters sent this pass (ask IT to let this host send through it)")
                }
            }
            report.held = Some(hold);
        }
        Err(e) if e.kind == FailureKind::Permanent => {
            let reason = format!("refused by the mail server: {}", e.detail);
            undelivered(store, row, &reason, now, report).await?;
        }
        Err(e) => {
            report.unanswered |= e.unanswered();
            not_taken(store, row, &e, policy, now, report).await?
        }
    }
    Ok(())
}

/// A letter the server did not take, for a reason that may pass: retried, or kept in doubt when
/// its answer was lost after its content and the server keeps a copy; given up after a day.
async fn not_taken(
    store: &Store,
    row: &OutboxRow,
    e: &SendFailure,
    policy: CopyPolicy,
    now: DateTime<Utc>,
    report: &mut SendReport,
) -> Result<(), OutboxError> {
    if let (FailureKind::AfterContent, CopyPolicy::ServerCopy { grace, .. }) = (e.kind, policy) {
        // The server may have taken it, and files its own copy of what it takes: the letter
        // stays in doubt (its intent kept), and the sent folder settles it after the grace —
        // recorded sent if the copy is there, sent again if not. Never blindly again; and,
        // answered by nothing for a day, raised like any letter not sent for a day.
        // Between two such attempts the letter waits out the grace: only a wait longer than
        // that breaks its run of failures.
        let broken_after =
            crate::shell::store::FAILING_RUN_BROKEN_AFTER.max(grace + Duration::hours(1));
        let since = crate::shell::store::failing_since_within(row, now, broken_after);
        if now - since > GIVE_UP_AFTER {
            let reason = format!(
                "no answer from the mail server after its content for a day (it may have \
                 arrived: check with the addressee before resending): {}",
                e.detail
            );
            return undelivered(store, row, &reason, now, report).await;
        }
        let mut tx = store.begin().await?;
        Store::mark_answer_lost(&mut tx, row.id, &e.detail, now, since).await?;
        Store::commit(tx).await?;
        tracing::warn!(outbox = row.id, step = %row.step, error = %e.summary, "no answer from the mail server after the letter's content: it may have been accepted; in doubt until the sent folder says");
        report.retrying += 1;
        return Ok(());
    }
    // A day of failing, counted from the first failure of this run of retries: a letter that
    // fell due, or was retrying, while sending was held (a refused login over a weekend) or the
    // daemon stopped gets a day of retries like any other.
    let since = crate::shell::store::failing_since(row, now);
    if now - since > GIVE_UP_AFTER {
        let reason = format!("could not be sent for a day: {}", e.detail);
        return undelivered(store, row, &reason, now, report).await;
    }
    let retry = now + retry_delay(row.attempts);
    let mut tx = store.begin().await?;
    Store::mark_attempt_failed(&mut tx, row.id, &e.detail, Some((retry, since))).await?;
    Store::commit(tx).await?;
    if e.kind == FailureKind::AfterContent {
        tracing::warn!(outbox = row.id, attempts = row.attempts + 1, error = %e.summary, "no answer from the mail server after the letter's content: it may have been accepted; sent again with the same Message-ID (sent_copy = \"server\" would settle it from the sent folder)");
    } else {
        tracing::warn!(outbox = row.id, attempts = row.attempts + 1, error = %e.summary, "letter not sent; will retry");
    }
    report.retrying += 1;
    Ok(())
}

/// The database would not take the records that come before a hand-over: nothing is sent, and the
/// pass stops (the next pass tries again).
fn cannot_start(row: &OutboxRow, e: &StoreError, report: &mut SendReport) {
    tracing::error!(outbox = row.id, error = %e, "cannot record that a letter is about to be sent, so it is not sent; the outbox stops until the database takes writes again");
    report.stopped = true;
}

/// An SMTP error's category and code, without the server's text (which can quote addresses).
pub fn smtp_summary(e: &lettre::transport::smtp::Error) -> String {
    let kind = if crate::shell::tls::certificate_not_trusted(e) {
        "certificate not trusted"
    } else if failure_kind(e.status().map(u16::from), e.is_permanent(), &e.to_string())
        == FailureKind::Auth
    {
        "authentication failed"
    } else if e.is_timeout() {
        TIMEOUT
    } else if e.is_tls() {
        "TLS failure"
    } else if e.is_permanent() {
        "permanent refusal"
    } else if e.is_transient() {
        "temporary refusal"
    } else if e.is_response() {
        "unexpected response"
    } else {
        CONNECTION_FAILURE
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
        assert_eq!(
            t.send(&env("x@example.test"), b"one").await,
            Ok(Handed::default())
        );
        let refused = t.send(&env("gone@example.test"), b"two").await.unwrap_err();
        assert_eq!(refused.kind, FailureKind::Permanent, "{refused:?}");
        // Shared with someone refused: kept for the others, the refused one named.
        let both = Envelope::new(
            Some("a@b.test".parse().unwrap()),
            vec![
                "x@example.test".parse().unwrap(),
                "gone@example.test".parse().unwrap(),
            ],
        )
        .unwrap();
        let handed = t.send(&both, b"three").await.unwrap();
        assert_eq!(handed.refused.len(), 1);
        assert_eq!(handed.refused[0].0, "gone@example.test");
        let reason = handed.reason(2).unwrap();
        assert!(
            reason.starts_with("refused by the mail server for 1 of its 2"),
            "{reason}"
        );
        // Every one refused is named, for the business manager to put right.
        t.refuse("left@example.test");
        let three = Envelope::new(
            Some("a@b.test".parse().unwrap()),
            vec![
                "x@example.test".parse().unwrap(),
                "gone@example.test".parse().unwrap(),
                "left@example.test".parse().unwrap(),
            ],
        )
        .unwrap();
        let reason = t.send(&three, b"four").await.unwrap().reason(3).unwrap();
        assert!(
            reason.contains("gone@example.test") && reason.contains("left@example.test"),
            "{reason}"
        );
        let sent = t.sent();
        assert_eq!(sent.len(), 3);
        assert_eq!(sent[0].to, ["x@example.test"]);
        assert_eq!(sent[0].raw, b"one");
        assert_eq!(sent[1].to, ["x@example.test"]);
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
    fn a_refused_token_is_an_authentication_failure_in_both_shapes() {
        // Dovecot behind Postfix: a 334 error challenge lettre cannot answer.
        let challenged = "internal client error: This mechanism does not expect a challenge";
        assert_eq!(failure_kind(None, false, challenged), FailureKind::Auth);
        // Exchange Online: a plain 535.
        let exchange = "permanent error (535): 5.7.3 Authentication unsuccessful";
        assert_eq!(failure_kind(Some(535), true, exchange), FailureKind::Auth);
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
    fn exchange_s_refusals_to_send_as_our_address_are_the_sender_s_fault_at_any_stage() {
        for said in [
            "permanent error (550): 5.7.60 SMTP; Client does not have permissions to send as this sender",
            "permanent error (554): 5.2.252 SendAsDenied; bsp@bury.test not allowed to send as x",
            "permanent error (550): 5.1.8 Access denied, bad outbound sender",
        ] {
            let code = said[17..20].parse().unwrap();
            assert_eq!(failure_kind(Some(code), true, said), FailureKind::Sender);
            assert_eq!(
                failure_kind(Some(450), false, said),
                FailureKind::Transient,
                "a temporary answer stays temporary"
            );
        }
        assert_eq!(FailureKind::Sender.hold(), Some(SmtpHold::SenderRefused));
    }

    #[test]
    fn a_server_refusing_any_connection_ends_the_pass_and_tls_not_available_is_no_login_failure() {
        let failure = |code: &str, kind| SendFailure {
            kind,
            detail: String::new(),
            summary: format!("temporary refusal ({code})"),
        };
        assert!(failure("432", FailureKind::Transient).unanswered());
        assert!(failure("454", FailureKind::Transient).unanswered());
        assert!(!failure("421", FailureKind::Transient).unanswered());
        assert!(
            !failure("450", FailureKind::Transient).unanswered(),
            "that letter's own"
        );
        assert_eq!(
            failure_kind(
                Some(454),
                false,
                "transient error (454): 4.7.0 TLS not available due to temporary reason"
            ),
            FailureKind::Transient
        );
        assert_eq!(
            failure_kind(
                Some(454),
                false,
                "transient error (454): 4.7.0 Temporary authentication failure"
            ),
            FailureKind::Auth
        );
    }

    #[test]
    fn a_large_letter_has_time_for_its_upload_on_a_slow_line() {
        use std::time::Duration as Std;
        let minute = Std::from_secs(60);
        assert_eq!(letter_budget(minute, 64 * 1024), Std::from_secs(61));
        // 20 MB: five minutes more and a bit, at the slowest line allowed.
        assert_eq!(
            letter_budget(minute, 20 * 1024 * 1024),
            Std::from_secs(60 + 320)
        );
    }

    #[test]
    fn exchange_s_refusals_of_the_shared_mailbox_itself_hold_every_letter() {
        for said in [
            "permanent error (554): 5.2.2 mailbox full; STOREDRV.Submission.Exception:QuotaExceededException.MapiExceptionShutoffQuotaExceeded",
            "permanent error (554): 5.2.0 STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
            "permanent error (550): 5.2.251 Sender throttled due to continuous mailbox full errors",
            "permanent error (550): 5.2.253 Sender throttled due to continuous invalid license errors",
            "permanent error (550): 5.2.254 Sender throttled due to continuous too many recipients errors",
            "permanent error (550): 5.2.255 Sender throttled due to continuous invalid recipients errors",
        ] {
            let code = said[17..20].parse().unwrap();
            assert_eq!(
                failure_kind(Some(code), true, said),
                FailureKind::Mailbox,
                "{said}"
            );
        }
        // A recipient's own full mailbox is that letter's refusal, not ours.
        assert_eq!(
            failure_kind(Some(552), true, "permanent error (552): 5.2.2 Mailbox full"),
            FailureKind::Permanent
        );
        assert_eq!(
            failure_kind(
                Some(550),
                true,
                "permanent error (550): 5.2.2 recipient QuotaExceededException"
            ),
            FailureKind::Permanent
        );
        assert_eq!(
            failure_kind(
                Some(550),
                true,
                "permanent error (550): 5.1.10 STOREDRV.Submission.Exception:InvalidRecipientsException"
            ),
            FailureKind::Permanent,
            "one letter's bad address is that letter's"
        );
        assert_eq!(FailureKind::Mailbox.hold(), Some(SmtpHold::MailboxRefused));
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
