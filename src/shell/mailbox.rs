//! The mailbox: IMAP fetch, the UID watermark, and the IDLE watcher.
//!
//! Owns talking IMAP to the shared mailbox: connecting (implicit TLS, STARTTLS, or plain on
//! loopback only), logging in, selecting the folder, fetching every message above the stored
//! watermark with `BODY.PEEK[]` (so `\Seen` is never set — a person reading the mailbox in Outlook
//! must not hide mail from caseclerk, and caseclerk must not mark mail read for them), and storing
//! the raw bytes with the watermark in one transaction per batch. Batches are bounded by bytes
//! ([`FETCH_BUDGET`], from the server's `RFC822.SIZE` learnt first; a larger message alone), so
//! memory follows the budget, never the backlog. It never deletes, moves or flags mail.
//! The first look at a folder records the first run and, with `--since`, passes over older mail
//! ([`crate::shell::firstrun`]).
//!
//! The watcher keeps one connection in IDLE and signals the engine when the server reports
//! anything; it re-issues IDLE before `idle_refresh` (< 29 minutes), treats any error as "reconnect
//! with backoff", wraps every command in a timeout (a silently dead link must not hang it), and
//! polls when the server has no IDLE. Notifications are only a hint: each wake-up is followed by a
//! full UID SEARCH above the watermark.
//!
//! Messages are keyed by [`identity`]'s rule (what the author wrote; trace headers left out), so the
//! store keeps two different messages apart and a re-delivery once.
//!
//! Must not: classify or parse beyond the Message-ID needed for de-duplication, or log content.

use crate::core::{identity, intake};
use crate::shell::config::{ImapSettings, TlsMode};
use crate::shell::firstrun::{self, FirstRunRecord};
use crate::shell::progress::Progress;
use crate::shell::store::{NewMessage, Store, StoreError};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::ServerName;

/// Mailbox errors: what failed, never message content.
#[derive(Debug, thiserror::Error)]
pub enum MailboxError {
    #[error("cannot connect to IMAP server {host}:{port}: {source}")]
    Connect {
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error("TLS with IMAP server {host} failed: {detail}")]
    Tls { host: String, detail: String },
    #[error(
        "IMAP login as {user} failed: {detail} (check the username and password source in [mailbox])"
    )]
    Login { user: String, detail: String },
    #[error("IMAP {command} failed: {detail}")]
    Command {
        command: &'static str,
        detail: String,
    },
    #[error("IMAP {command} timed out after {seconds} s (the connection may be dead)")]
    Timeout { command: &'static str, seconds: u64 },
    #[error("the IMAP server did not report UIDVALIDITY for {folder}")]
    NoUidValidity { folder: String },
    #[error("no password for the mailbox (set password_env or password_file in [mailbox])")]
    NoPassword,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A plain or TLS connection, so one IMAP session type serves both.
#[derive(Debug)]
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A logged-in IMAP session.
pub type Session = async_imap::Session<Stream>;

async fn timed<T, E: std::fmt::Display>(
    settings: &ImapSettings,
    command: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, MailboxError> {
    match tokio::time::timeout(settings.command_timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(MailboxError::Command {
            command,
            detail: e.to_string(),
        }),
        Err(_) => Err(MailboxError::Timeout {
            command,
            seconds: settings.command_timeout.as_secs(),
        }),
    }
}

async fn tls_wrap(settings: &ImapSettings, tcp: TcpStream) -> Result<Stream, MailboxError> {
    let tls_err = |detail: String| MailboxError::Tls {
        host: settings.host.clone(),
        detail,
    };
    let config = crate::shell::tls::client_config(settings.ca_file.as_deref())
        .map_err(|e| tls_err(e.to_string()))?;
    let name = ServerName::try_from(settings.host.clone()).map_err(|e| tls_err(e.to_string()))?;
    let tls = tokio::time::timeout(
        settings.command_timeout,
        TlsConnector::from(config).connect(name, tcp),
    )
    .await
    .map_err(|_| tls_err("handshake timed out".into()))?
    .map_err(|e| tls_err(e.to_string()))?;
    Ok(Stream::Tls(Box::new(tls)))
}

/// Connect and log in.
pub async fn connect(settings: &ImapSettings) -> Result<Session, MailboxError> {
    let password = settings.password.as_ref().ok_or(MailboxError::NoPassword)?;
    let tcp = tokio::time::timeout(
        settings.command_timeout,
        TcpStream::connect((settings.host.as_str(), settings.port)),
    )
    .await
    .map_err(|_| MailboxError::Timeout {
        command: "connect",
        seconds: settings.command_timeout.as_secs(),
    })?
    .map_err(|source| MailboxError::Connect {
        host: settings.host.clone(),
        port: settings.port,
        source,
    })?;
    let stream = match settings.tls {
        TlsMode::Implicit => tls_wrap(settings, tcp).await?,
        TlsMode::None => Stream::Plain(tcp),
        TlsMode::Starttls => {
            let mut client = async_imap::Client::new(Stream::Plain(tcp));
            timed(settings, "greeting", async {
                client.read_response().await.and_then(|r| {
                    r.ok_or_else(|| std::io::Error::other("connection closed before the greeting"))
                })
            })
            .await?;
            timed(
                settings,
                "STARTTLS",
                client.run_command_and_check_ok("STARTTLS", None),
            )
            .await?;
            let Stream::Plain(tcp) = client.into_inner() else {
                unreachable!("the stream is plain until STARTTLS succeeds")
            };
            let stream = tls_wrap(settings, tcp).await?;
            return login(
                settings,
                async_imap::Client::new(stream),
                password.expose(),
                false,
            )
            .await;
        }
    };
    login(
        settings,
        async_imap::Client::new(stream),
        password.expose(),
        true,
    )
    .await
}

async fn login(
    settings: &ImapSettings,
    mut client: async_imap::Client<Stream>,
    password: &str,
    greeting: bool,
) -> Result<Session, MailboxError> {
    if greeting {
        timed(settings, "greeting", async {
            client.read_response().await.and_then(|r| {
                r.ok_or_else(|| std::io::Error::other("connection closed before the greeting"))
            })
        })
        .await?;
    }
    match tokio::time::timeout(
        settings.command_timeout,
        client.login(&settings.username, password),
    )
    .await
    {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _client))) => Err(MailboxError::Login {
            user: settings.username.clone(),
            detail: e.to_string(),
        }),
        Err(_) => Err(MailboxError::Timeout {
            command: "LOGIN",
            seconds: settings.command_timeout.as_secs(),
        }),
    }
}

/// At most this many messages are fetched and stored per transaction (`caseclerk bench` measured
/// no gain from larger batches of small mail). A crash mid-batch only means the batch is fetched
/// again, and de-duplicated.
const FETCH_CHUNK: usize = 50;

/// At most this many bytes of mail (by the server's `RFC822.SIZE`) are fetched and held per
/// batch: memory follows this budget, not the backlog. A message larger than the budget is
/// fetched alone. 8 MB keeps batches of ordinary mail at [`FETCH_CHUNK`] (so ingest is as fast
/// as before) while a burst of 20 MB referrals is taken one at a time; each batch is stored and
/// let go before the next is fetched.
pub const FETCH_BUDGET: u64 = 8 * 1024 * 1024;

/// UIDs in fetch batches: in order, at most [`FETCH_CHUNK`] a batch and at most `budget` bytes
/// by `sizes` (a UID the server gave no size for counts as empty: it was expunged meanwhile, and
/// fetching it returns nothing), a message larger than the budget alone.
pub fn fetch_batches(uids: &[u32], sizes: &[(u32, u64)], budget: u64) -> Vec<Vec<u32>> {
    let size = |u: u32| {
        sizes
            .binary_search_by_key(&u, |(uid, _)| *uid)
            .map(|i| sizes[i].1)
            .unwrap_or(0)
    };
    let mut batches: Vec<Vec<u32>> = Vec::new();
    let mut current: Vec<u32> = Vec::new();
    let mut bytes = 0u64;
    for &uid in uids {
        let n = size(uid);
        if !current.is_empty() && (current.len() >= FETCH_CHUNK || bytes + n > budget) {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        current.push(uid);
        bytes += n;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

/// The server's `RFC822.SIZE` of each of `uids`, sorted by UID (a few bytes a message).
async fn sizes(
    settings: &ImapSettings,
    session: &mut Session,
    uids: &[u32],
) -> Result<Vec<(u32, u64)>, MailboxError> {
    let mut out = Vec::with_capacity(uids.len());
    for chunk in uids.chunks(500) {
        let set = uid_set(chunk);
        let fetched = timed(settings, "UID FETCH RFC822.SIZE", async {
            let stream = session.uid_fetch(&set, "(UID RFC822.SIZE)").await?;
            stream
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
        out.extend(
            fetched
                .iter()
                .filter_map(|f| Some((f.uid?, u64::from(f.size?)))),
        );
    }
    out.sort_unstable();
    out.dedup_by_key(|(uid, _)| *uid);
    Ok(out)
}

/// The bytes of a batch by the server's sizes.
fn batch_bytes(uids: &[u32], sizes: &[(u32, u64)]) -> u64 {
    uids.iter()
        .filter_map(|u| {
            sizes
                .binary_search_by_key(u, |(uid, _)| *uid)
                .ok()
                .map(|i| sizes[i].1)
        })
        .sum()
}

fn uid_set(uids: &[u32]) -> String {
    uids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Fetch one batch's bodies and turn each into a [`NewMessage`] as it arrives, letting the
/// server's response go at once (the bytes are held once, not twice, for the whole batch).
async fn fetch_batch(
    settings: &ImapSettings,
    session: &mut Session,
    uids: &[u32],
    last: u32,
    now: DateTime<Utc>,
) -> Result<Vec<NewMessage>, MailboxError> {
    let set = uid_set(uids);
    timed(settings, "UID FETCH", async {
        let mut stream = session
            .uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])")
            .await?;
        let mut batch = Vec::with_capacity(uids.len());
        while let Some(f) = stream.next().await {
            let f = f?;
            let (Some(uid), Some(raw)) = (f.uid, f.body()) else {
                continue;
            };
            if uid <= last {
                continue;
            }
            let internal_date = f
                .internal_date()
                .map(|d| d.with_timezone(&Utc))
                .unwrap_or(now);
            batch.push(new_message(raw, uid, internal_date));
        }
        Ok::<_, async_imap::error::Error>(batch)
    })
    .await
}

/// What one fetch did.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    pub uidvalidity: u32,
    pub seen: usize,
    pub stored: usize,
    pub last_uid: u32,
    pub idle_supported: bool,
    /// Messages left for people on the first run (`--since`, or all without `--process-existing`).
    pub left: usize,
    /// This fetch was caseclerk's first look at the folder.
    pub first_run: bool,
}

/// How to treat mail already in the folder the first time caseclerk looks at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExistingMail {
    /// Start the watermark at the newest message: mail from before caseclerk is left for people.
    Leave,
    /// Process everything in the folder.
    Process,
    /// Process mail received on or after this London date; leave older mail for people
    /// ([`crate::shell::firstrun`]).
    Since(chrono::NaiveDate),
}

/// A fetched message as it is stored: its identity (key and fingerprint, [`identity`]), UID and
/// arrival time.
pub fn new_message(raw: &[u8], uid: u32, internal_date: DateTime<Utc>) -> NewMessage {
    let fingerprint = identity::fingerprint(raw);
    NewMessage {
        dedupe_key: identity::key(intake::header_message_id(raw).as_deref(), &fingerprint),
        fingerprint,
        uid,
        internal_date,
        raw: raw.to_vec(),
    }
}

/// Fetch every message above the watermark into the store. Never sets `\Seen`, never deletes.
pub async fn fetch_new(
    settings: &ImapSettings,
    session: &mut Session,
    store: &Store,
    existing: ExistingMail,
    now: DateTime<Utc>,
    progress: &Progress,
) -> Result<FetchReport, MailboxError> {
    let folder = settings.folder.clone();
    let mailbox = timed(settings, "SELECT", session.select(&folder)).await?;
    let uidvalidity = mailbox
        .uid_validity
        .ok_or_else(|| MailboxError::NoUidValidity {
            folder: folder.clone(),
        })?;
    let previous = store.mailbox_state(&folder).await?;
    let mut last = match &previous {
        Some(s) if s.uidvalidity == uidvalidity => s.last_uid,
        Some(s) if s.uidvalidity != 0 => {
            tracing::warn!(
                folder = %folder,
                old = s.uidvalidity,
                new = uidvalidity,
                "UIDVALIDITY changed: re-reading the folder; messages already stored are recognised by Message-ID"
            );
            0
        }
        _ => 0,
    };
    let first_time = previous.as_ref().is_none_or(|s| s.uidvalidity == 0);
    let mut uids: Vec<u32> = timed(
        settings,
        "UID SEARCH",
        session.uid_search(format!("UID {}:*", last + 1)),
    )
    .await?
    .into_iter()
    .filter(|u| *u > last) // `n:*` always includes the highest UID, even below n
    .collect();
    uids.sort_unstable();
    let mut report = FetchReport {
        uidvalidity,
        seen: uids.len(),
        last_uid: last,
        first_run: first_time,
        ..Default::default()
    };
    let newest_seen = uids.last().copied().unwrap_or(last);
    let left = first_look(
        settings,
        session,
        store,
        existing,
        first_time,
        uidvalidity,
        &uids,
        now,
    )
    .await?;
    report.left = left.len();
    if first_time && existing == ExistingMail::Leave {
        let newest = uids.last().copied().unwrap_or(last);
        store
            .store_fetched(&folder, uidvalidity, &[], newest, now)
            .await?;
        tracing::info!(folder = %folder, left = uids.len(), "first look at the mailbox: existing mail left for people");
        report.last_uid = newest;
        report.left = uids.len();
        return Ok(report);
    }
    uids.retain(|u| left.binary_search(u).is_err());
    let total = uids.len();
    // Sizes first, then the bodies in batches bounded by bytes: a backlog of any size, or a
    // burst of large referrals, is held one batch at a time.
    let sizes = sizes(settings, session, &uids).await?;
    let mut done = 0;
    for chunk in fetch_batches(&uids, &sizes, FETCH_BUDGET) {
        tracing::debug!(
            messages = chunk.len(),
            bytes = batch_bytes(&chunk, &sizes),
            "fetching a batch"
        );
        let mut batch = fetch_batch(settings, session, &chunk, last, now).await?;
        batch.sort_by_key(|m| m.uid);
        // Only advance the watermark over what was actually returned, in order.
        let top = batch.last().map(|m| m.uid).unwrap_or(last);
        for m in &batch {
            tracing::debug!(uid = m.uid, key = %hash_id(&m.dedupe_key), "message stored");
        }
        let stored = store
            .store_batch(&folder, uidvalidity, batch, top.max(last), now)
            .await?;
        report.stored += stored;
        last = top.max(last);
        done += chunk.len();
        progress.update("reading the mailbox", done.min(total), total);
    }
    // Mail left for people is passed over: the watermark moves above it too.
    if uids.is_empty() || newest_seen > last {
        last = last.max(newest_seen);
        store
            .store_fetched(&folder, uidvalidity, &[], last, now)
            .await?;
    }
    report.last_uid = last;
    Ok(report)
}

/// The first look at the folder records the first run ([`crate::shell::firstrun`]); on every
/// look, the UIDs `--since` leaves for people (sorted).
#[allow(clippy::too_many_arguments)]
async fn first_look(
    settings: &ImapSettings,
    session: &mut Session,
    store: &Store,
    existing: ExistingMail,
    first_time: bool,
    uidvalidity: u32,
    uids: &[u32],
    now: DateTime<Utc>,
) -> Result<Vec<u32>, MailboxError> {
    let record = if first_time {
        Some(FirstRunRecord {
            started: now,
            uidvalidity,
            until_uid: uids.last().copied().unwrap_or(0),
            since: match existing {
                ExistingMail::Since(d) => Some(d),
                _ => None,
            },
            processed: existing != ExistingMail::Leave,
            left: 0,
        })
    } else {
        firstrun::load(store).await?
    };
    let left = left_uids(
        session,
        record.as_ref(),
        uidvalidity,
        uids,
        settings.command_timeout,
    )
    .await?;
    if let Some(r) = record.filter(|_| first_time) {
        let left = if r.processed { left.len() } else { uids.len() };
        firstrun::record(store, &FirstRunRecord { left, ..r }).await?;
        tracing::info!(folder = %settings.folder, messages = uids.len(), left, "first look at the mailbox");
    }
    Ok(left)
}

/// A short hash of an identifier, for logs (Message-IDs can carry names).
pub use crate::core::intake::hash_id;

/// Connect, fetch once, log out.
pub async fn fetch_once(
    settings: &ImapSettings,
    store: &Store,
    existing: ExistingMail,
    now: DateTime<Utc>,
    progress: &Progress,
) -> Result<FetchReport, MailboxError> {
    let mut session = connect(settings).await?;
    let result = fetch_new(settings, &mut session, store, existing, now, progress).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
    result
}

/// Watch the mailbox and `notify` whenever something may have arrived. Runs until cancelled.
///
/// One connection sits in IDLE; on any server data, or after `idle_refresh`, it leaves IDLE,
/// signals, and re-enters. Any error drops the connection and reconnects with backoff (1 s, 2 s,
/// 4 s … up to 5 minutes), signalling once on reconnect so nothing that arrived meanwhile waits.
/// Without IDLE support it signals every `poll_interval`.
pub async fn watch(settings: Arc<ImapSettings>, notify: Arc<Notify>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        match watch_once(&settings, &notify).await {
            Ok(()) => backoff = Duration::from_secs(1),
            Err(e) => {
                tracing::warn!(error = %e, retry_in_s = backoff.as_secs(), "mailbox watcher lost its connection");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(300));
                notify.notify_one();
            }
        }
    }
}

async fn watch_once(settings: &ImapSettings, notify: &Notify) -> Result<(), MailboxError> {
    let mut session = connect(settings).await?;
    let caps = timed(settings, "CAPABILITY", session.capabilities()).await?;
    let idle = caps.has_str("IDLE");
    timed(settings, "SELECT", session.select(&settings.folder)).await?;
    if !idle {
        tracing::info!("the IMAP server has no IDLE: polling");
        loop {
            tokio::time::sleep(settings.poll_interval).await;
            timed(settings, "NOOP", session.noop()).await?;
            notify.notify_one();
        }
    }
    tracing::info!("watching the mailbox with IDLE");
    notify.notify_one();
    loop {
        let mut handle = session.idle();
        timed(settings, "IDLE", handle.init()).await?;
        let woke = {
            let (wait, stop) = handle.wait_with_timeout(settings.idle_refresh);
            // The server's keep-alives reset the crate's own timeout, so bound the wait ourselves.
            let r = tokio::time::timeout(settings.idle_refresh, wait).await;
            drop(stop);
            match r {
                Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(_))) => true,
                Ok(Ok(async_imap::extensions::idle::IdleResponse::Timeout)) | Err(_) => false,
                // A dropped connection looks like an interrupt: treat it as an error.
                Ok(Ok(async_imap::extensions::idle::IdleResponse::ManualInterrupt)) => {
                    return Err(MailboxError::Command {
                        command: "IDLE",
                        detail: "connection closed".into(),
                    });
                }
                Ok(Err(e)) => {
                    return Err(MailboxError::Command {
                        command: "IDLE",
                        detail: e.to_string(),
                    });
                }
            }
        };
        session = timed(settings, "DONE", handle.done()).await?;
        if woke {
            notify.notify_one();
        }
    }
}

/// Of `uids`, those `--since` leaves for people, read from their INTERNALDATE (a few bytes a
/// message; see `shell::firstrun` for why not `SEARCH SINCE`).
async fn left_uids(
    session: &mut Session,
    record: Option<&FirstRunRecord>,
    uidvalidity: u32,
    uids: &[u32],
    timeout: std::time::Duration,
) -> Result<Vec<u32>, MailboxError> {
    let Some(r) = record else {
        return Ok(Vec::new());
    };
    let asked: Vec<u32> = uids
        .iter()
        .copied()
        .filter(|u| r.filters(uidvalidity, *u))
        .collect();
    let mut left = Vec::new();
    for chunk in asked.chunks(500) {
        let set = chunk
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let fetched = tokio::time::timeout(timeout, async {
            let stream = session.uid_fetch(&set, "(UID INTERNALDATE)").await?;
            stream
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|_| MailboxError::Timeout {
            command: "UID FETCH INTERNALDATE",
            seconds: timeout.as_secs(),
        })?
        .map_err(|e| MailboxError::Command {
            command: "UID FETCH INTERNALDATE",
            detail: e.to_string(),
        })?;
        for f in &fetched {
            let (Some(uid), Some(date)) = (f.uid, f.internal_date()) else {
                continue;
            };
            if crate::core::firstrun::left_for_people(r.since, date.with_timezone(&Utc)) {
                left.push(uid);
            }
        }
    }
    left.sort_unstable();
    left.dedup();
    Ok(left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetched_message_is_keyed_by_the_identity_rule_and_matches_the_full_parse() {
        let a = b"Received: from a\r\nMessage-ID: <x@y>\r\nSubject: s\r\n\r\nHello\r\n";
        let b = b"Received: from b\r\nDelivered-To: alias\r\nMessage-ID: <x@y>\r\nSubject: s\r\n\r\nHello\r\n";
        let (na, nb) = (
            new_message(a, 1, DateTime::UNIX_EPOCH),
            new_message(b, 2, DateTime::UNIX_EPOCH),
        );
        assert_eq!(na.dedupe_key, "mid:x@y");
        assert_eq!(
            na.fingerprint, nb.fingerprint,
            "trace headers are not identity"
        );
        assert_eq!(na.dedupe_key, intake::parse(a).dedupe_key());
        let no_id = new_message(b"Subject: s\r\n\r\nHello\r\n", 3, DateTime::UNIX_EPOCH);
        assert_eq!(no_id.dedupe_key, format!("content:{}", no_id.fingerprint));
    }

    #[test]
    fn fetch_batches_are_bounded_by_bytes_and_a_message_larger_than_the_budget_goes_alone() {
        let mb = 1024 * 1024;
        let uids = [1, 2, 3, 4, 5, 6, 7];
        let sizes = [
            (1, mb),
            (2, 3 * mb),
            (3, 4 * mb),
            (4, 20 * mb),
            (5, mb),
            (7, 2 * mb),
        ];
        // 6 has no size (expunged meanwhile): it rides along, counting nothing.
        assert_eq!(
            fetch_batches(&uids, &sizes, 8 * mb),
            vec![vec![1, 2, 3], vec![4], vec![5, 6, 7]]
        );
        assert_eq!(
            fetch_batches(&uids, &sizes, 0),
            vec![
                vec![1],
                vec![2],
                vec![3],
                vec![4],
                vec![5],
                vec![6],
                vec![7]
            ],
            "a budget too small for anything still fetches every message, one at a time"
        );
    }

    #[test]
    fn fetch_batches_of_small_mail_are_bounded_by_count() {
        let uids: Vec<u32> = (1..=120).collect();
        let sizes: Vec<(u32, u64)> = uids.iter().map(|u| (*u, 2000)).collect();
        let batches = fetch_batches(&uids, &sizes, FETCH_BUDGET);
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![FETCH_CHUNK, FETCH_CHUNK, 20]
        );
        assert_eq!(batches.concat(), uids, "every UID once, in order");
    }

    #[test]
    fn ids_are_hashed_for_logs() {
        let h = hash_id("jane.doe.referral@hospital.test");
        assert_eq!(h.len(), 12);
        assert!(!h.contains("jane"));
    }
}
