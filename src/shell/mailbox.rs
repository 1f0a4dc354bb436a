//! The mailbox: IMAP fetch, the UID watermark, and the IDLE watcher.
//!
//! Owns talking IMAP to the shared mailbox: connecting (implicit TLS, STARTTLS, or plain on
//! loopback only), logging in (LOGIN with the password, or `AUTHENTICATE XOAUTH2` with the token
//! client's access token, [`crate::shell::oauth`]), opening the folder read-only (`EXAMINE`), fetching every message above the stored
//! watermark with `BODY.PEEK[]` (so `\Seen` is never set — a person reading the mailbox in Outlook
//! must not hide mail from caseclerk, and caseclerk must not mark mail read for them), and storing
//! the raw bytes with the watermark in one transaction per batch. Batches are bounded by bytes
//! ([`FETCH_BUDGET`], from the server's `RFC822.SIZE` learnt first; a larger message alone), and
//! one is stored while the next is fetched, so memory follows the budget, never the backlog.
//! While it stores, it tells the engine how far it may decide ([`Frontier`]). It never deletes, moves or flags mail.
//! The first look at a folder records the first run and, with `--since`, passes over older mail
//! ([`crate::shell::firstrun`]).
//!
//! The watcher keeps one connection in IDLE and signals the engine when the server reports
//! anything; it proves the connection alive every `check_interval` (DONE + IDLE, or NOOP when the
//! server has no IDLE and it polls), so a server that stops answering is noticed within two
//! minutes; it treats any error as "reconnect with backoff" (reset after a session that worked),
//! wraps every command in a timeout (a silently dead link must not hang it), and records its
//! health in the database (`<imap-watch>`). A session opened with an access token is replaced
//! before the token's renewal time ([`connect_until`]): Exchange ends it when the token expires.
//! Notifications are only a hint: each wake-up is followed by a full UID SEARCH above the
//! watermark, and the engine fetches on a timer as well.
//!
//! Messages are keyed by [`identity`]'s rule (what the author wrote; trace headers left out), so the
//! store keeps two different messages apart and a re-delivery once.
//!
//! Must not: classify or parse beyond the Message-ID needed for de-duplication, or log content.

use crate::core::{identity, intake};
use crate::shell::clock::SharedClock;
use crate::shell::config::{ImapSettings, TlsMode};
use crate::shell::firstrun::{self, FirstRunRecord};
use crate::shell::oauth::AccessToken;
use crate::shell::progress::Progress;
use crate::shell::store::{
    BatchStored, FETCH_READING_KEY, Ingest, NewMessage, Settling, Store, StoreError,
    batches_by_bytes,
};
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
    // The login name is never in these texts: they are logged, kept in the health row and printed
    // in the digest, and a mailbox may be reached with a person's own account.
    #[error("IMAP login failed: {detail} (check [mailbox] username and the password source)")]
    Login { detail: String },
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
    #[error("IMAP login: no access token: {source}")]
    Token {
        source: crate::shell::oauth::OAuthError,
    },
    #[error(
        "IMAP login with an access token refused ({detail}): {}",
        crate::core::oauth::REFUSED_TOKEN_ADVICE
    )]
    TokenRefused { detail: String },
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
    timed_for(settings.command_timeout, command, fut).await
}

/// `fut`, a command to the server, within `limit`: its error or its silence as the mailbox's
/// error (with what to do when Exchange Online says the account cannot reach the mailbox).
pub(crate) async fn timed_for<T, E: std::fmt::Display>(
    limit: Duration,
    command: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, MailboxError> {
    match tokio::time::timeout(limit, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => {
            let said = e.to_string();
            let advice = crate::core::oauth::after_login_advice(&said);
            Err(MailboxError::Command {
                command,
                detail: match advice {
                    Some(a) => format!("{said} ({a})"),
                    None => said,
                },
            })
        }
        Err(_) => Err(MailboxError::Timeout {
            command,
            seconds: limit.as_secs(),
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

/// What a session logs in with.
enum LoginWith {
    Password(String),
    Token(AccessToken),
}

/// XOAUTH2 for async-imap: it passes the decoded challenge and base64-encodes what is returned,
/// so the SASL string goes raw; a second challenge (the server's error JSON) gets the empty
/// answer the protocol asks for, and the tagged NO follows.
struct XOAuth2(Option<String>);

impl async_imap::Authenticator for XOAuth2 {
    type Response = String;
    fn process(&mut self, _challenge: &[u8]) -> String {
        self.0.take().unwrap_or_default()
    }
}

/// Connect and log in.
pub async fn connect(settings: &ImapSettings) -> Result<Session, MailboxError> {
    connect_until(settings).await.map(|(session, _)| session)
}

/// Connect and log in; with OAuth2, also the instant by which the session must be replaced (its
/// token's renewal time: Exchange ends a session whose token expires).
pub async fn connect_until(
    settings: &ImapSettings,
) -> Result<(Session, Option<DateTime<Utc>>), MailboxError> {
    let with = match &settings.oauth2 {
        Some(source) => LoginWith::Token(
            source
                .token()
                .await
                .map_err(|source| MailboxError::Token { source })?,
        ),
        None => LoginWith::Password(
            settings
                .password
                .as_ref()
                .ok_or(MailboxError::NoPassword)?
                .expose()
                .to_string(),
        ),
    };
    let deadline = match &with {
        LoginWith::Token(t) => Some(t.renew_at),
        LoginWith::Password(_) => None,
    };
    let session = open(settings, with).await?;
    Ok((session, deadline))
}

async fn open(settings: &ImapSettings, with: LoginWith) -> Result<Session, MailboxError> {
    let tcp = tokio::time::timeout(
        settings.command_timeout,
        crate::shell::dial::dial(&settings.host, settings.port),
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
            return login(settings, async_imap::Client::new(stream), with, false).await;
        }
    };
    login(settings, async_imap::Client::new(stream), with, true).await
}

async fn login(
    settings: &ImapSettings,
    mut client: async_imap::Client<Stream>,
    with: LoginWith,
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
    let password = match with {
        LoginWith::Password(p) => p,
        LoginWith::Token(token) => return authenticate(settings, client, token).await,
    };
    match tokio::time::timeout(
        settings.command_timeout,
        client.login(&settings.username, &password),
    )
    .await
    {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _client))) => Err(MailboxError::Login {
            detail: e.to_string(),
        }),
        Err(_) => Err(MailboxError::Timeout {
            command: "LOGIN",
            seconds: settings.command_timeout.as_secs(),
        }),
    }
}

/// `AUTHENTICATE XOAUTH2` as the mailbox's address. A refusal forgets the token (the next login
/// asks for a new one) and says what to check.
async fn authenticate(
    settings: &ImapSettings,
    client: async_imap::Client<Stream>,
    token: AccessToken,
) -> Result<Session, MailboxError> {
    let sasl = crate::core::oauth::xoauth2(&settings.username, token.token.expose());
    match tokio::time::timeout(
        settings.command_timeout,
        client.authenticate("XOAUTH2", XOAuth2(Some(sasl))),
    )
    .await
    {
        Ok(Ok(session)) => Ok(session),
        Ok(Err((e, _client))) if !token_refused(&e) => Err(MailboxError::Command {
            command: "AUTHENTICATE",
            detail: e.to_string(),
        }),
        Ok(Err((e, _client))) => {
            if let Some(source) = &settings.oauth2 {
                source.refused(&token).await;
            }
            Err(MailboxError::TokenRefused {
                detail: e.to_string(),
            })
        }
        Err(_) => Err(MailboxError::Timeout {
            command: "AUTHENTICATE",
            seconds: settings.command_timeout.as_secs(),
        }),
    }
}

/// Whether `AUTHENTICATE`'s failure is the server refusing the token — a tagged NO or BAD — and
/// not a dropped or reset connection, a BYE (a server shedding load), or a temporary
/// `NO [UNAVAILABLE]` ("Temporary authentication failure": its token service is down). Only a
/// refusal forgets a good token and sends the operator to the app's permissions.
fn token_refused(e: &async_imap::error::Error) -> bool {
    use async_imap::error::Error as E;
    match e {
        E::No(text) | E::Bad(text) => {
            let t = text.to_ascii_lowercase();
            !t.contains("unavailable") && !t.contains("temporary")
        }
        _ => false,
    }
}

/// At most this many messages are fetched and stored per transaction (`caseclerk bench` measured
/// no gain from larger batches of small mail). A crash mid-batch only means the batch is fetched
/// again, and de-duplicated.
const FETCH_CHUNK: usize = 50;

/// Storage batches asked for by one `UID FETCH` (so at most 400 messages or 64 MB a command):
/// the server streams on while each batch is stored, instead of waiting for a command per batch.
/// A first run over 10,000 messages took 1.9–2.5 s this way against 2.4–2.7 s with a command
/// per batch (README, *Session 15*). What is held stays two batches while the server sends in
/// order; a batch waiting for a message sent out of order holds the ones after it
/// ([`Gathering`]), at most the command's 64 MB.
const STREAM_BATCHES: usize = 8;

/// At most this many bytes of mail (by the server's `RFC822.SIZE`) are fetched and held per
/// batch: memory follows this budget, not the backlog. A message larger than the budget is
/// fetched alone. 8 MB keeps batches of ordinary mail at [`FETCH_CHUNK`] (so ingest is as fast
/// as before) while a burst of 20 MB referrals is taken one at a time; a batch is stored while
/// the next is fetched, and let go once stored (two batches held at most).
pub const FETCH_BUDGET: u64 = 8 * 1024 * 1024;

/// UIDs in fetch batches: in order, at most [`FETCH_CHUNK`] a batch and at most `budget` bytes
/// by `sizes` (a UID the server gave no size for counts as empty: it was expunged meanwhile, and
/// fetching it returns nothing), a message larger than the budget alone.
fn fetch_batches(uids: &[u32], sizes: &[Sized], budget: u64) -> Vec<Vec<u32>> {
    let size = |u: u32| sized(sizes, u).map_or(0, |s| s.size);
    batches_by_bytes(uids.iter().map(|&u| (u, size(u))), FETCH_CHUNK, budget)
}

/// The server's `RFC822.SIZE` of each of `uids`, sorted by UID (a few bytes a message), asked in
/// as few commands as [`uid_chunks`] allows: one for a first run over 10,000 messages, where
/// commands of 500 took 20 round trips (25 ms of a run here).
async fn sizes(
    settings: &ImapSettings,
    session: &mut Session,
    uids: &[u32],
) -> Result<Vec<Sized>, MailboxError> {
    let mut out = Vec::with_capacity(uids.len());
    for chunk in uid_chunks(uids, LOOKUP_UIDS, SET_TEXT) {
        let set = uid_set(chunk);
        look_up(
            settings.command_timeout,
            "UID FETCH RFC822.SIZE",
            session,
            &set,
            "(UID RFC822.SIZE INTERNALDATE)",
            |f| {
                out.extend(f.uid.zip(f.size).map(|(uid, size)| Sized {
                    uid,
                    size: u64::from(size),
                    date: f.internal_date().map(|d| d.with_timezone(&Utc)),
                }))
            },
        )
        .await?;
    }
    out.sort_unstable_by_key(|s| s.uid);
    out.dedup_by_key(|s| s.uid);
    Ok(out)
}

/// One look-up `UID FETCH` of `items` over `set`: each response handed to `each` and let go as it
/// comes. A response holds the buffer it was read into (kilobytes): holding the 10,000 of a first
/// run's one look-up took its peak from 55 to 103 MiB. The whole response is read even after an
/// error, so the session stays in step; the first error is returned.
async fn look_up(
    limit: Duration,
    command: &'static str,
    session: &mut Session,
    set: &str,
    items: &str,
    mut each: impl FnMut(&async_imap::types::Fetch),
) -> Result<(), MailboxError> {
    timed_for(limit, command, async {
        let mut stream = session.uid_fetch(set, items).await?;
        let mut failed = None;
        while let Some(f) = stream.next().await {
            match f {
                Ok(f) => each(&f),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        failed.map_or(Ok(()), Err)
    })
    .await
}

/// A message's size and arrival time as the server gave them before its body is fetched.
#[derive(Debug, Clone, Copy)]
struct Sized {
    uid: u32,
    size: u64,
    /// `None` when the server gave none (the message is then stored with the time it is fetched).
    date: Option<DateTime<Utc>>,
}

/// What the server said of `uid` (`sizes` sorted by UID); `None` for a UID it gave nothing for.
fn sized(sizes: &[Sized], uid: u32) -> Option<&Sized> {
    sizes
        .binary_search_by_key(&uid, |s| s.uid)
        .ok()
        .map(|i| &sizes[i])
}

/// How far the engine may decide while a fetch is still storing mail: it decides pending mail in
/// the order of arrival (`internal_date`, then the order stored), so a message may be decided
/// once no message still to be stored could come before it. Published by [`fetch_new`] through a
/// `watch` channel as each batch is stored; a fetch that ends, however it ends, leaves
/// [`Frontier::Done`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frontier {
    /// Nothing may be decided yet: the fetch has not learnt what it will store.
    Unknown,
    /// Mail that arrived at or before this instant may be decided: everything still to be stored
    /// arrived after it (a message stored later with the same instant sorts after those stored).
    Until(DateTime<Utc>),
    /// This fetch stores nothing more.
    Done,
}

/// The frontier before the first of `batches` is stored, and after each: the earliest arrival
/// among the batches still to store; [`Frontier::Unknown`] while one of them holds a message the
/// server gave no date for (it is stored with the time it is fetched, which nothing here knows),
/// [`Frontier::Done`] after the last. A UID the server gave no size for was expunged: fetching it
/// stores nothing.
fn frontiers(batches: &[Vec<u32>], sizes: &[Sized]) -> Vec<Frontier> {
    let date = |u: &u32| sized(sizes, *u).map(|s| s.date);
    let mut out = vec![Frontier::Done];
    // From the last batch back: `earliest` is over the batches after the one being looked at.
    let mut earliest = Frontier::Done;
    for batch in batches.iter().rev() {
        for d in batch.iter().filter_map(date) {
            earliest = match (earliest, d) {
                (Frontier::Unknown, _) | (_, None) => Frontier::Unknown,
                (Frontier::Done, Some(d)) => Frontier::Until(d),
                (Frontier::Until(e), Some(d)) => Frontier::Until(e.min(d)),
            };
        }
        out.push(earliest);
    }
    out.reverse();
    out
}

/// The bytes of a batch by the server's sizes.
fn batch_bytes(uids: &[u32], sizes: &[Sized]) -> u64 {
    uids.iter()
        .filter_map(|u| sized(sizes, *u))
        .map(|s| s.size)
        .sum()
}

/// `uids` as an IMAP sequence set, each run of consecutive UIDs as `first:last` (`1:10000` for a
/// whole mailbox's first run, not ten thousand numbers).
fn uid_set(uids: &[u32]) -> String {
    let mut out = String::new();
    for (first, last) in runs(uids) {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&first.to_string());
        if last != first {
            out.push(':');
            out.push_str(&last.to_string());
        }
    }
    out
}

/// `uids` as runs of consecutive UIDs, `(first, last)`, in the order given.
fn runs(uids: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &u in uids {
        match out.last_mut() {
            Some((_, last)) if last.checked_add(1) == Some(u) => *last = u,
            _ => out.push((u, u)),
        }
    }
    out
}

/// The longest UID set one command of ours names, in characters: RFC 7162 asks servers to take
/// command lines of 8,192 octets at least, and a few hundred are left for the rest of the line.
const SET_TEXT: usize = 7_500;

/// The most UIDs one look-up command ([`sizes`], [`left_uids`]) asks about: what is kept of its
/// answer is tens of bytes a message, its responses let go as they come ([`look_up`]).
const LOOKUP_UIDS: usize = 10_000;

/// `uids` cut, in order, into slices of at most `most` UIDs whose [`uid_set`] is at most
/// `text` characters (a single UID always fits): a first run over a mailbox of consecutive
/// UIDs asks about 10,000 messages in one command, where a set of scattered UIDs takes several.
fn uid_chunks(uids: &[u32], most: usize, text: usize) -> Vec<&[u32]> {
    let mut out = Vec::new();
    let mut start = 0;
    // The chunk's set so far: its length before the current run, and that run's first UID.
    let (mut before, mut first) = (0, None::<u32>);
    for (i, &u) in uids.iter().enumerate() {
        let joins = i > start && uids[i - 1].checked_add(1) == Some(u);
        let run_start = if joins { first.unwrap_or(u) } else { u };
        let before_run = if joins || i == start {
            before
        } else {
            set_length(before, first, uids[i - 1]) + 1
        };
        let length = set_length(before_run, Some(run_start), u);
        if i > start && (i - start == most || length > text) {
            out.push(&uids[start..i]);
            start = i;
            (before, first) = (0, Some(u));
        } else {
            (before, first) = (before_run, Some(run_start));
        }
    }
    if start < uids.len() {
        out.push(&uids[start..]);
    }
    out
}

/// The length of a set that is `before` characters and then the run `first..=last`.
fn set_length(before: usize, first: Option<u32>, last: u32) -> usize {
    match first {
        Some(f) if f != last => before + digits(f) + 1 + digits(last),
        _ => before + digits(last),
    }
}

fn digits(u: u32) -> usize {
    u.checked_ilog10().map_or(1, |d| d as usize + 1)
}

/// The messages of one `UID FETCH` that covers several storage batches ([`STREAM_BATCHES`]),
/// gathered into those batches as they arrive. A batch is complete when every UID of it has
/// arrived, or when the response has ended (a UID never sent was expunged meanwhile): only then
/// is it stored, so a batch's watermark never passes a message still to come, in whatever order
/// the server sends them. Pure: the reading is [`next_batch`]'s.
#[derive(Default)]
struct Gathering {
    got: std::collections::BTreeMap<u32, NewMessage>,
    ended: bool,
}

impl Gathering {
    fn arrived(&mut self, m: NewMessage) {
        self.got.insert(m.uid, m);
    }

    fn end(&mut self) {
        self.ended = true;
    }

    /// `batch`'s messages, in UID order, once it is complete; `None` while one may still come.
    fn take(&mut self, batch: &[u32]) -> Option<Vec<NewMessage>> {
        (self.ended || batch.iter().all(|u| self.got.contains_key(u)))
            .then(|| batch.iter().filter_map(|u| self.got.remove(u)).collect())
    }
}

/// Read `stream` (one `UID FETCH` of several batches) until `batch` is complete, turning each
/// message into a [`NewMessage`] as it arrives, letting the server's response go at once. Each
/// response is waited for at most the command timeout (a dead connection is noticed however long
/// the whole command runs).
async fn next_batch<S>(
    settings: &ImapSettings,
    stream: &mut S,
    gathering: &mut Gathering,
    batch: &[u32],
    (last, now): (u32, DateTime<Utc>),
    identity: &mut Duration,
) -> Result<Vec<NewMessage>, MailboxError>
where
    S: futures::Stream<Item = Result<async_imap::types::Fetch, async_imap::error::Error>> + Unpin,
{
    loop {
        if let Some(messages) = gathering.take(batch) {
            return Ok(messages);
        }
        let Some(f) = next_response(settings, stream).await? else {
            gathering.end();
            continue;
        };
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
        let started = std::time::Instant::now();
        gathering.arrived(new_message(raw, uid, internal_date));
        *identity += started.elapsed();
    }
}

/// Read a `UID FETCH` response whose batches are all complete to its end: nothing more of ours
/// comes (each UID asked for has arrived), only the command's completion.
async fn to_the_end<S>(settings: &ImapSettings, stream: &mut S) -> Result<(), MailboxError>
where
    S: futures::Stream<Item = Result<async_imap::types::Fetch, async_imap::error::Error>> + Unpin,
{
    while next_response(settings, stream).await?.is_some() {}
    Ok(())
}

/// The next response of a `UID FETCH` (`None` once it has ended), waited for at most the command
/// timeout; an error in it is the command's.
async fn next_response<S>(
    settings: &ImapSettings,
    stream: &mut S,
) -> Result<Option<async_imap::types::Fetch>, MailboxError>
where
    S: futures::Stream<Item = Result<async_imap::types::Fetch, async_imap::error::Error>> + Unpin,
{
    timed(settings, "UID FETCH", async {
        stream.next().await.transpose()
    })
    .await
}

/// Fetch every batch, a [`STREAM_BATCHES`] group to a command (the server streams on while each
/// is stored), and wait for the last to be stored: the bytes asked for. On an error, the
/// pipeline's reading record is dealt with ([`Pipeline::after_error`]).
async fn fetch_groups(
    settings: &ImapSettings,
    session: &mut Session,
    batches: &[Vec<u32>],
    sizes: &[Sized],
    pipeline: &mut Pipeline<'_>,
    report: &mut FetchReport,
) -> Result<u64, MailboxError> {
    let mut bytes = 0;
    let fetched = async {
        for group in batches.chunks(STREAM_BATCHES) {
            bytes += fetch_group(settings, session, group, sizes, pipeline, report).await?;
        }
        pipeline.settle(report).await
    }
    .await;
    if let Err(e) = fetched {
        pipeline.after_error(&e).await;
        return Err(e);
    }
    Ok(bytes)
}

/// Fetch `group`'s batches with one `UID FETCH`, each handed to `pipeline` as it completes
/// ([`Gathering`]); the bytes asked for (by the server's sizes).
async fn fetch_group(
    settings: &ImapSettings,
    session: &mut Session,
    group: &[Vec<u32>],
    sizes: &[Sized],
    pipeline: &mut Pipeline<'_>,
    report: &mut FetchReport,
) -> Result<u64, MailboxError> {
    let now = pipeline.now;
    let mut bytes = 0;
    let last = pipeline.floor;
    let set = uid_set(&group.concat());
    let mut stream = timed(
        settings,
        "UID FETCH",
        session.uid_fetch(&set, "(UID INTERNALDATE BODY.PEEK[])"),
    )
    .await?;
    let mut gathering = Gathering::default();
    for chunk in group {
        let batch_bytes = batch_bytes(chunk, sizes);
        bytes += batch_bytes;
        tracing::debug!(
            messages = chunk.len(),
            bytes = batch_bytes,
            "fetching a batch"
        );
        let started = std::time::Instant::now();
        let mut identity = Duration::ZERO;
        let fetched = next_batch(
            settings,
            &mut stream,
            &mut gathering,
            chunk,
            (last, now),
            &mut identity,
        )
        .await;
        report.timings.server += started.elapsed().saturating_sub(identity);
        report.timings.identity += identity;
        let fetched = match fetched {
            Ok(batch) => pipeline.keep_gaps(chunk, &batch).await.map(|()| batch),
            Err(e) => Err(e),
        };
        // Packed at once, while the batch before is still being stored; that one is stored
        // (or has failed) before this one is handed over.
        let packing = fetched.map(|batch| pipeline.pack(batch));
        pipeline.settle(report).await?;
        pipeline.hand_over(packing?, chunk.len())?;
    }
    // Every batch is complete: the response is read to its end (its completion), so the
    // session can take the next command.
    if !gathering.ended {
        to_the_end(settings, &mut stream).await?;
    }
    Ok(bytes)
}

/// A fetched batch being packed, and the UID the watermark moves to once it is stored.
struct Packing(crate::shell::store::PackingAhead, u32);

/// A batch being stored while the next is fetched: the ingest connection comes back with what
/// the store did, the watermark it moved to, and how long it took.
type Stored = (Ingest, Result<(BatchStored, u32), StoreError>, Duration);

/// The storing task, and how many of the folder's messages its batch covers.
struct Storing(tokio::task::JoinHandle<Stored>, usize);

impl Storing {
    /// Wait for the batch to be stored; its figures go into the report. The connection is
    /// `None` when the storing task itself failed (it panicked: the connection is gone with it).
    async fn finished(self, report: &mut FetchReport) -> (Option<Ingest>, Result<u32, StoreError>) {
        match self.0.await {
            Ok((ingest, Ok((stored, top)), took)) => {
                // `took` starts once the batch is packed: packing is its own figure.
                report.timings.storing += took;
                report.timings.packing += stored.packing;
                report.stored += stored.stored;
                (Some(ingest), Ok(top))
            }
            Ok((ingest, Err(e), _)) => (Some(ingest), Err(e)),
            Err(_) => (
                None,
                Err(StoreError::Corrupt(
                    "storing a fetched batch stopped unexpectedly; it is fetched again".into(),
                )),
            ),
        }
    }
}

/// The batches of one fetch on their way into the store: each batch is packed as soon as it is
/// fetched, and stored while the next is fetched (the store's work is the processor's and the
/// disk's, the fetch's the server's), at most one batch in each hand. Batches are handed over in order and each is stored before the
/// next is, so batches and watermarks commit in order; after each, the engine learns how far it
/// may decide ([`Frontier`]).
struct Pipeline<'a> {
    folder: String,
    uidvalidity: u32,
    now: DateTime<Utc>,
    storing: Option<Storing>,
    ingest: Option<Ingest>,
    /// Before the first batch is stored, then after each.
    frontiers: std::vec::IntoIter<Frontier>,
    frontier: Option<&'a tokio::sync::watch::Sender<Frontier>>,
    /// Whether each batch is read for the engine as it is packed ([`Pipeline::pack`]).
    read: bool,
    progress: &'a Progress,
    done: usize,
    total: usize,
    /// The watermark as stored.
    last: u32,
    /// A message at or below this UID in a response was not asked for: the watermark, or below
    /// it when messages listed before are asked for again.
    floor: u32,
    /// The UIDs this fetch asked for and was not handed (every batch's gaps).
    missing: Vec<u32>,
    /// The UIDs kept to be asked for again: those of earlier passes, and any a batch of this one
    /// came without — saved before that batch's watermark is, so no error or crash between the
    /// two can let one pass unseen.
    gaps: Vec<u32>,
    store: &'a Store,
}

impl Pipeline<'_> {
    /// Tell the engine how far it may decide now.
    fn publish(&mut self) {
        if let (Some(tx), Some(f)) = (self.frontier, self.frontiers.next()) {
            tx.send_replace(f);
        }
    }

    /// Whether this fetch, which has `batches` to fetch, reads what it stores for the engine:
    /// only for an engine deciding while it stores (a pass's fetch), and not when the last fetch
    /// that read stopped while reading (its record left); else yes, under a record of its own
    /// ([`Ingest::mark_reading`]).
    async fn reading(&mut self, batches: bool) -> Result<bool, MailboxError> {
        if self.frontier.is_none() || !batches {
            return Ok(false);
        }
        let Some(ingest) = self.ingest.as_mut() else {
            return Err(StoreError::Corrupt("the ingest connection was lost".into()).into());
        };
        if ingest.reading_stopped().await? {
            tracing::warn!(
                "the last fetch stopped while reading the mail it had fetched: this one stores \
                 it unread, and the engine reads it under its guard (a message that stops \
                 caseclerk again is set aside for a person)"
            );
            return Ok(false);
        }
        ingest.mark_reading(true).await?;
        Ok(true)
    }

    /// Give the ingest connection back once every batch is stored, clearing the reading record
    /// if this fetch (which had `batches` to fetch) kept it or found it ([`Pipeline::reading`]):
    /// the checkpoint started while storing, if it is still running.
    async fn finish(&mut self, batches: bool) -> Result<Settling, MailboxError> {
        let Some(mut ingest) = self.ingest.take() else {
            return Ok(Settling::default());
        };
        if self.frontier.is_some() && batches {
            ingest.mark_reading(false).await?;
        }
        Ok(ingest.finish().await)
    }

    /// A fetch that failed: an error is not a stop, so the reading record is cleared (a fetch
    /// that failed on an unreachable server does not leave the next one reading nothing) —
    /// unless reading itself stopped (a panic while packing a batch), which counts as a stop.
    /// Best effort: a record that cannot be cleared costs the next fetch only its reading.
    async fn after_error(&mut self, e: &MailboxError) {
        if !self.read || matches!(e, MailboxError::Store(StoreError::PackingStopped)) {
            return;
        }
        if let Err(e) = self.store.clear_meta(FETCH_READING_KEY).await {
            tracing::warn!(error = %e, "the fetch's reading record could not be cleared after its error; the next fetch stores its mail unread");
        }
    }

    /// Wait for the batch being stored, if one is.
    async fn settle(&mut self, report: &mut FetchReport) -> Result<(), MailboxError> {
        if let Some(s) = self.storing.take() {
            self.done += s.1;
            let (back, stored) = s.finished(report).await;
            self.ingest = back;
            self.last = stored?;
            self.publish();
            self.progress
                .update("reading the mailbox", self.done.min(self.total), self.total);
        }
        Ok(())
    }

    /// Before a batch is stored (and its watermark with it): the UIDs of `chunk` it came without
    /// are added to those kept to be asked for again, and the list saved.
    async fn keep_gaps(&mut self, chunk: &[u32], batch: &[NewMessage]) -> Result<(), MailboxError> {
        let mut came: Vec<u32> = batch.iter().map(|m| m.uid).collect();
        came.sort_unstable();
        let gap = not_arrived(chunk, &came);
        if gap.is_empty() {
            return Ok(());
        }
        self.missing.extend(&gap);
        self.gaps.extend(gap);
        self.gaps.sort_unstable();
        self.gaps.dedup();
        self.store
            .set_meta(
                &unfetched_key(&self.folder),
                &format_unfetched(self.uidvalidity, &self.gaps),
            )
            .await?;
        // Raised now too: a fetch that fails later at every pass would never reach the end of
        // the fetch, where the list is settled.
        raise_unfetched(self.store, &self.folder, &self.gaps, self.now).await?;
        Ok(())
    }

    /// Start packing a fetched batch on a blocking thread ([`Ingest::prepare`]), at once: it is
    /// packed while the batch before is still being stored. Returns the task and the UID the
    /// watermark moves to once the batch is stored.
    fn pack(&self, mut batch: Vec<NewMessage>) -> Packing {
        batch.sort_by_key(|m| m.uid);
        // Only advance the watermark over what was actually returned, in order.
        let top = batch
            .last()
            .map(|m| m.uid)
            .unwrap_or(self.last)
            .max(self.last);
        for m in &batch {
            tracing::debug!(uid = m.uid, key = %hash_id(&m.dedupe_key), "message stored");
        }
        // Read for the engine only when one decides while this fetch stores (a pass's fetch),
        // and the last such fetch did not stop while reading (`Ingest::mark_reading`).
        Packing(Ingest::pack_ahead(batch, self.read), top)
    }

    /// Store a packed batch (of `count` of the folder's messages) on a task of its own.
    fn hand_over(&mut self, packing: Packing, count: usize) -> Result<(), MailboxError> {
        let Some(mut ingest) = self.ingest.take() else {
            return Err(StoreError::Corrupt("the ingest connection was lost".into()).into());
        };
        let (folder, uidvalidity, now) = (self.folder.clone(), self.uidvalidity, self.now);
        let Packing(prepared, top) = packing;
        self.storing = Some(Storing(
            tokio::spawn(async move {
                let prepared = match prepared.finished().await {
                    Ok(p) => p,
                    Err(stopped) => return (ingest, Err(stopped), Duration::ZERO),
                };
                let started = std::time::Instant::now();
                let stored = ingest
                    .store_prepared(&folder, uidvalidity, prepared, top, now)
                    .await;
                (ingest, stored.map(|s| (s, top)), started.elapsed())
            }),
            count,
        ));
        Ok(())
    }
}

/// What one fetch did.
#[derive(Debug, Default)]
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
    /// Where the fetch's time went (for `caseclerk bench`).
    pub timings: FetchTimings,
    /// The checkpoint after a large fetch, still running when the fetch returns.
    pub settling: crate::shell::store::Settling,
}

/// Where a fetch's time went: the session's set-up (EXAMINE, SEARCH, the sizes), waiting for the
/// server's batches, computing each message's identity (and copying it out of the response),
/// packing (attached files taken out) and storing (SQL, commits) — the last two while the next
/// batch is fetched. The checkpoint after a large fetch runs after it returns ([`FetchReport::settling`]);
/// the benchmark times it there.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchTimings {
    /// From the fetch's start until its first batch is asked for.
    pub setup: Duration,
    pub server: Duration,
    pub identity: Duration,
    pub packing: Duration,
    pub storing: Duration,
    /// Filled by the benchmark: from the fetch's return until its checkpoint had finished.
    pub checkpoint: Duration,
}

impl FetchTimings {
    /// Where the fetch's time went, at debug level (durations only).
    fn log(&self) {
        tracing::debug!(
            setup_ms = self.setup.as_millis(),
            server_ms = self.server.as_millis(),
            identity_ms = self.identity.as_millis(),
            packing_ms = self.packing.as_millis(),
            storing_ms = self.storing.as_millis(),
            "fetch timings"
        );
    }
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

/// A fetched message as it is stored: its identity (its key, [`identity`]), UID and arrival
/// time. The fingerprint is the key of a message without a Message-ID; one with a Message-ID is
/// compared by it only when its key is already stored, and the store computes it then
/// ([`crate::shell::store::Ingest::store_batch`]).
pub fn new_message(raw: &[u8], uid: u32, internal_date: DateTime<Utc>) -> NewMessage {
    let message_id = intake::header_message_id(raw);
    let fingerprint = match message_id {
        Some(_) => None,
        None => Some(identity::fingerprint(raw)),
    };
    NewMessage {
        dedupe_key: identity::key(message_id.as_deref(), fingerprint.as_deref().unwrap_or("")),
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
    frontier: Option<&tokio::sync::watch::Sender<Frontier>>,
) -> Result<FetchReport, MailboxError> {
    let begun = std::time::Instant::now();
    let folder = settings.folder.clone();
    // EXAMINE, not SELECT: caseclerk only reads the shared mailbox, and a read-only session
    // changes nothing in it — not even `\Recent`, which a SELECT takes from every person's
    // client (and Dovecot, on the first SELECT of a large maildir, moves every new message:
    // 170 ms of a first run over 10,000 messages here).
    let mailbox = timed(settings, "EXAMINE", session.examine(&folder)).await?;
    let uidvalidity = mailbox
        .uid_validity
        .ok_or_else(|| MailboxError::NoUidValidity {
            folder: folder.clone(),
        })?;
    let previous = store.mailbox_state(&folder).await?;
    let last = match &previous {
        Some(s) if s.uidvalidity == uidvalidity => s.last_uid,
        Some(s) if s.uidvalidity != 0 => {
            tracing::warn!(
                folder = %folder,
                old = s.uidvalidity,
                new = uidvalidity,
                "UIDVALIDITY changed: re-reading the folder; messages already stored are recognised by Message-ID, and mail the first run left for people is left again"
            );
            0
        }
        _ => 0,
    };
    let first_time = previous.as_ref().is_none_or(|s| s.uidvalidity == 0);
    let renumbered = previous
        .as_ref()
        .is_some_and(|s| s.uidvalidity != 0 && s.uidvalidity != uidvalidity);
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
        (first_time, renumbered),
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
    // Messages listed before and not handed over are asked for again (below the watermark).
    let retry = unfetched(store, &folder, uidvalidity, now).await?;
    uids.extend(&retry);
    uids.sort_unstable();
    uids.dedup();
    // Sizes first, then the bodies in batches bounded by bytes: a backlog of any size, or a
    // burst of large referrals, is held one batch at a time.
    let sizes = sizes(settings, session, &uids).await?;
    let batches = fetch_batches(&uids, &sizes, FETCH_BUDGET);
    let (mut bytes, total) = (0, uids.len());
    let mut pipeline = Pipeline {
        folder: folder.clone(),
        uidvalidity,
        now,
        storing: None,
        ingest: Some(store.ingest().await?),
        frontiers: frontiers(&batches, &sizes).into_iter(),
        frontier,
        read: false,
        progress,
        done: 0,
        total,
        last,
        floor: retry
            .first()
            .map_or(last, |r| last.min(r.saturating_sub(1))),
        missing: Vec::new(),
        gaps: retry.clone(),
        store,
    };
    pipeline.read = pipeline.reading(!batches.is_empty()).await?;
    // What the engine may decide before anything is stored.
    pipeline.publish();
    report.timings.setup = begun.elapsed();
    bytes += fetch_groups(
        settings,
        session,
        &batches,
        &sizes,
        &mut pipeline,
        &mut report,
    )
    .await?;
    let running = pipeline.finish(!batches.is_empty()).await?;
    report.timings.log();
    let mut missing = std::mem::take(&mut pipeline.missing);
    missing.sort_unstable();
    if !missing.is_empty() || !retry.is_empty() {
        // The folder may hold mail: it did at EXAMINE, or new mail was listed after it.
        let here = (
            folder.as_str(),
            uidvalidity,
            mailbox.exists > 0 || newest_seen > last,
        );
        account_for(settings, session, store, here, &missing, now).await?;
    }
    let mut last = pipeline.last;
    // Batches were committed without a checkpoint: a large fetch checkpoints once, from here, in
    // the background while the engine decides what it fetched.
    report.settling = store.settle_ingest(bytes, running);
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

/// Where the UIDs a server listed and did not hand over are kept (`meta`), per folder.
fn unfetched_key(folder: &str) -> String {
    format!("unfetched:{folder}")
}

/// The UIDs kept under [`unfetched_key`] (`"<uidvalidity>:<uid>,<uid>…"`), if they are of this
/// `uidvalidity` (after a change they name other messages, or none: the whole folder is read
/// again anyway), sorted.
fn parse_unfetched(value: &str, uidvalidity: u32) -> Vec<u32> {
    let Some((v, list)) = value.split_once(':') else {
        return Vec::new();
    };
    if v.parse::<u32>().ok() != Some(uidvalidity) {
        return Vec::new();
    }
    let mut out: Vec<u32> = list
        .split(',')
        .filter_map(|u| u.parse().ok())
        .filter(|u| *u > 0)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// What [`parse_unfetched`] reads.
fn format_unfetched(uidvalidity: u32, uids: &[u32]) -> String {
    let list: Vec<String> = uids.iter().map(u32::to_string).collect();
    format!("{uidvalidity}:{}", list.join(","))
}

/// The UIDs in `asked` that are not in `got` (both sorted).
fn not_arrived(asked: &[u32], got: &[u32]) -> Vec<u32> {
    asked
        .iter()
        .copied()
        .filter(|u| got.binary_search(u).is_err())
        .collect()
}

/// The messages listed at an earlier pass and not handed over, to ask for again. A list kept
/// under another UIDVALIDITY names nothing any more (the folder is read again from the start):
/// it is dropped, and its alarm with it.
async fn unfetched(
    store: &Store,
    folder: &str,
    uidvalidity: u32,
    now: DateTime<Utc>,
) -> Result<Vec<u32>, StoreError> {
    let Some(kept) = store.meta(&unfetched_key(folder)).await? else {
        return Ok(Vec::new());
    };
    let retry = parse_unfetched(&kept, uidvalidity);
    let kept_under = kept
        .split_once(':')
        .and_then(|(v, _)| v.parse::<u32>().ok());
    let stale = retry.is_empty() && kept_under.is_some_and(|v| v != uidvalidity);
    if stale {
        store
            .set_meta(&unfetched_key(folder), &format_unfetched(uidvalidity, &[]))
            .await?;
        store.record_mailbox_ok(UNFETCHED_HEALTH_KEY, now).await?;
    }
    Ok(retry)
}

/// The UIDs of `missing` the folder still lists, asked by `UID SEARCH` in chunks; `None` when
/// the answer cannot be trusted. A `NO`, a `BAD` or a dropped connection can come back from the
/// IMAP library as an empty answer rather than an error, and "not listed" must not be read from
/// that: each search also asks for `*` (the folder's newest message), which a folder that is not
/// empty always lists — an answer without anything is trusted only when the folder was empty
/// when the fetch began and no new mail was listed since (`may_hold_mail` false).
async fn still_listed(
    settings: &ImapSettings,
    session: &mut Session,
    missing: &[u32],
    may_hold_mail: bool,
) -> Result<Option<Vec<u32>>, MailboxError> {
    let mut listed = Vec::new();
    for chunk in uid_chunks(missing, LOOKUP_UIDS, SET_TEXT) {
        let found = timed(
            settings,
            "UID SEARCH",
            session.uid_search(format!("UID {},*", uid_set(chunk))),
        )
        .await?;
        if found.is_empty() && may_hold_mail {
            return Ok(None);
        }
        listed.extend(chunk.iter().copied().filter(|u| found.contains(u)));
    }
    Ok(Some(listed))
}

/// After a fetch: of the `missing` UIDs (asked for, not handed over), those the folder no longer
/// lists left it meanwhile (moved or deleted: nothing to read); those it still lists — all of
/// them, when the folder's answer cannot be trusted — are kept to be asked for again at the next
/// pass, and raised ([`UNFETCHED_HEALTH_KEY`]) until none is left. A server that lists a message
/// and will not give it must not let it pass unseen: it may be a referral. (The batches already
/// saved each gap before their watermarks: this only settles the list.)
async fn account_for(
    settings: &ImapSettings,
    session: &mut Session,
    store: &Store,
    (folder, uidvalidity, may_hold_mail): (&str, u32, bool),
    missing: &[u32],
    now: DateTime<Utc>,
) -> Result<(), MailboxError> {
    let listed = match missing {
        [] => Vec::new(),
        _ => match still_listed(settings, session, missing, may_hold_mail).await? {
            Some(listed) => listed,
            None => {
                tracing::warn!(folder = %folder, "the folder's answer to which messages it still lists cannot be trusted; all are asked for again");
                missing.to_vec()
            }
        },
    };
    let gone = missing.len() - listed.len();
    if gone > 0 {
        tracing::info!(folder = %folder, gone, "messages left the folder before they could be read");
    }
    store
        .set_meta(
            &unfetched_key(folder),
            &format_unfetched(uidvalidity, &listed),
        )
        .await?;
    if listed.is_empty() {
        store.record_mailbox_ok(UNFETCHED_HEALTH_KEY, now).await?;
        return Ok(());
    }
    raise_unfetched(store, folder, &listed, now).await?;
    Ok(())
}

/// Raise [`UNFETCHED_HEALTH_KEY`] for `listed`, the UIDs kept to be asked for again.
async fn raise_unfetched(
    store: &Store,
    folder: &str,
    listed: &[u32],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    // The first few by number (a server refusing a whole batch could leave thousands).
    let shown: Vec<String> = listed.iter().take(20).map(u32::to_string).collect();
    let more = match listed.len() > shown.len() {
        true => format!(" and {} more", listed.len() - shown.len()),
        false => String::new(),
    };
    tracing::warn!(folder = %folder, count = listed.len(), uids = %shown.join(","), "the server listed messages it did not hand over; asked for again at the next pass");
    let said = format!(
        "{} message(s) the mail server lists in {folder} were not handed over when asked (UID {}{more})",
        listed.len(),
        shown.join(", ")
    );
    store
        .record_mailbox_error(UNFETCHED_HEALTH_KEY, &said, now)
        .await?;
    Ok(())
}

/// The first look at the folder records the first run ([`crate::shell::firstrun`]); on every
/// look, the UIDs `--since` leaves for people (sorted).
#[allow(clippy::too_many_arguments)]
async fn first_look(
    settings: &ImapSettings,
    session: &mut Session,
    store: &Store,
    existing: ExistingMail,
    (first_time, renumbered): (bool, bool),
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
    // Only a folder renumbered since the first run has its renumbering looked up.
    let since_renumbered = record
        .as_ref()
        .is_some_and(|r| r.uidvalidity != uidvalidity);
    let renumbered_until = match renumbered || since_renumbered {
        true => renumbering(store, renumbered, uidvalidity, uids).await?,
        false => None,
    };
    let left = left_uids(
        session,
        (record.as_ref(), renumbered_until),
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

/// Where the renumbering of the folder was found: `<uidvalidity>:<newest UID then>`.
const RENUMBERED_KEY: &str = "renumbered";

/// The newest UID in the folder when it was found renumbered under `uidvalidity` (recorded on
/// the pass that finds it, before anything of it is stored, so a pass stopped half-way keeps
/// the rule); `None` if it was not.
async fn renumbering(
    store: &Store,
    now_found: bool,
    uidvalidity: u32,
    uids: &[u32],
) -> Result<Option<u32>, MailboxError> {
    if now_found {
        let until = uids.last().copied().unwrap_or(0);
        store
            .set_meta(RENUMBERED_KEY, &format!("{uidvalidity}:{until}"))
            .await?;
        return Ok(Some(until));
    }
    Ok(store.meta(RENUMBERED_KEY).await?.and_then(|v| {
        let (validity, until) = v.split_once(':')?;
        (validity.parse::<u32>().ok()? == uidvalidity)
            .then(|| until.parse().ok())
            .flatten()
    }))
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
    frontier: Option<&tokio::sync::watch::Sender<Frontier>>,
) -> Result<FetchReport, MailboxError> {
    let mut session = connect(settings).await?;
    let result = fetch_new(
        settings,
        &mut session,
        store,
        existing,
        now,
        progress,
        frontier,
    )
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
    result
}

/// Where the watcher's health is kept: a row of `mailbox_state` under a name no IMAP folder is
/// given (angle brackets, as the SMTP login's `<smtp>`), so a read-only reader of the database
/// sees it. `last_ok_at` is the watcher's last proof of life (a connection that answered its
/// liveness check), `failures` the attempts that failed since, `last_error` what went wrong.
pub const WATCH_HEALTH_KEY: &str = "<imap-watch>";

/// The health row for messages the IMAP server listed in the folder but did not hand over when
/// asked (Exchange Online is reported to do so now and then on busy mailboxes): each is asked for
/// again at every pass ([`crate::shell::mailbox`]), and until it arrives or leaves the folder
/// `caseclerk health` (`messages_unfetched`, CRITICAL: it may be a referral) and the digest say
/// so.
pub const UNFETCHED_HEALTH_KEY: &str = "<imap-unfetched>";

/// The wait before reconnecting: 1 s, doubling up to two minutes, and back to 1 s once a session
/// has worked (connected, selected, and answered its first liveness check) — one drop after
/// hours of good service is followed by a prompt reconnect, not by the last outage's delay. Two
/// minutes at most: a server that comes back is used again within the two minutes the liveness
/// check promises (and the engine's safety-net fetch does not wait for the watcher at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff(Duration);

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(120);

    pub fn new() -> Backoff {
        Backoff(Backoff::FIRST)
    }

    /// The wait before the next attempt; the one after it doubles.
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Backoff::MAX);
        wait
    }

    /// A session worked: the next failure waits the shortest time again.
    pub fn reset(&mut self) {
        self.0 = Backoff::FIRST;
    }

    /// The wait after a session that ended, having `lived` this long: one that worked (its first
    /// liveness check answered) for at least `steady` starts the doubling again from 1 s; one that
    /// ended sooner — a server that takes the login and IDLE, then says BYE within seconds (a
    /// mailbox being moved, a draining load balancer) — goes on doubling, so a flapping server
    /// is not logged in to once a second for ever.
    pub fn after_session(&mut self, worked: bool, lived: Duration, steady: Duration) -> Duration {
        if worked && lived >= steady {
            self.reset();
        }
        self.next_wait()
    }
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff::new()
    }
}

/// What the watcher needs: its settings, whom to signal, and where to record its health.
#[derive(Clone)]
pub struct Watcher {
    pub settings: Arc<ImapSettings>,
    pub notify: Arc<Notify>,
    pub store: Store,
    pub clock: SharedClock,
}

impl Watcher {
    /// Record a proof of life. A database that cannot be written does not stop the watcher.
    async fn alive(&self) {
        let now = self.clock.now();
        if let Err(e) = self.store.record_mailbox_alive(WATCH_HEALTH_KEY, now).await {
            tracing::error!(error = %e, "cannot record the mailbox watcher's health");
        }
    }

    async fn failed(&self, error: &MailboxError) {
        let now = self.clock.now();
        if let Err(e) = self
            .store
            .record_mailbox_error(WATCH_HEALTH_KEY, &error.to_string(), now)
            .await
        {
            tracing::error!(error = %e, "cannot record the mailbox watcher's health");
        }
    }
}

/// Watch the mailbox and `notify` whenever something may have arrived. Runs until cancelled.
///
/// One connection sits in IDLE; on any server data it leaves IDLE, signals, and re-enters. Every
/// `check_interval` (60 s by default; and at least every `idle_refresh`) it leaves IDLE and enters
/// it again, each answer awaited for at most `check_interval` (or `command_timeout`, if shorter):
/// a server that has stopped answering without closing the connection is noticed within two
/// check intervals. Without IDLE support it sends NOOP as often instead, and signals every
/// `poll_interval`. Each answered check is recorded under [`WATCH_HEALTH_KEY`]; any error is
/// recorded there, drops the connection and reconnects after a [`Backoff`], signalling once on
/// reconnect so nothing that arrived meanwhile waits. A session whose access token is due for
/// renewal ends without an error and is replaced at once.
pub async fn watch(watcher: Watcher) {
    let mut backoff = Backoff::new();
    // A session that lasted this long was no flap ([`Backoff::after_session`]).
    let steady = watcher.settings.check_interval;
    loop {
        let mut established = false;
        let started = tokio::time::Instant::now();
        let error = match watch_once(&watcher, &mut established).await {
            Err(e) => e,
            // A session ended on purpose (its access token is due for renewal): a new one at
            // once — unless it was short-lived (a token issued with almost no life left), which
            // waits as a failure would.
            Ok(()) => {
                if started.elapsed() < steady {
                    tokio::time::sleep(backoff.next_wait()).await;
                } else {
                    backoff.reset();
                }
                watcher.notify.notify_one();
                continue;
            }
        };
        watcher.failed(&error).await;
        let wait = backoff.after_session(established, started.elapsed(), steady);
        if established {
            tracing::warn!(error = %error, retry_in_s = wait.as_secs(), "mailbox watcher lost its connection");
        } else {
            tracing::warn!(error = %error, retry_in_s = wait.as_secs(), "mailbox watcher cannot connect");
        }
        tokio::time::sleep(wait).await;
        watcher.notify.notify_one();
    }
}

/// One session: connect, open the folder read-only, then IDLE (or poll) until something fails (an error) or its
/// access token is due for renewal (`Ok`). `established` turns true once the first liveness
/// check is answered.
async fn watch_once(watcher: &Watcher, established: &mut bool) -> Result<(), MailboxError> {
    let settings = &*watcher.settings;
    let (mut session, deadline) = connect_until(settings).await?;
    let caps = timed(settings, "CAPABILITY", session.capabilities()).await?;
    let idle = caps.has_str("IDLE");
    // Read-only, as the fetch (IDLE is answered in a folder opened with EXAMINE alike).
    timed(settings, "EXAMINE", session.examine(&settings.folder)).await?;
    // A liveness answer is a few bytes: a live server gives it at once.
    let probe = settings.check_interval.min(settings.command_timeout);
    if !idle {
        return poll(watcher, session, probe, established, deadline).await;
    }
    tracing::info!("watching the mailbox with IDLE");
    watcher.notify.notify_one();
    let wait = settings.check_interval.min(settings.idle_refresh);
    loop {
        // A session opened with an access token ends before the token's renewal time: the
        // reconnection logs in with the renewed token (Exchange would end it at expiry).
        let Some(refresh) = session_left(deadline, wait) else {
            tracing::info!("the session's access token is due for renewal: reconnecting");
            let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
            return Ok(());
        };
        let mut handle = session.idle();
        // The server's `+ idling` is the check's answer.
        timed_for(probe, "IDLE", handle.init()).await?;
        *established = true;
        watcher.alive().await;
        let woke = {
            let (waiting, stop) = handle.wait_with_timeout(refresh);
            // The server's keep-alives reset the crate's own timeout, so bound the wait ourselves.
            let r = tokio::time::timeout(refresh, waiting).await;
            drop(stop);
            match r {
                Ok(Ok(async_imap::extensions::idle::IdleResponse::NewData(data))) => {
                    token_expired_bye(settings, data.parsed()).await?;
                    true
                }
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
        // The tagged OK to DONE is the other half of the check.
        session = timed_for(probe, "DONE", handle.done()).await?;
        if woke {
            watcher.notify.notify_one();
        }
    }
}

/// A server without IDLE: NOOP every `check_interval` (or `poll_interval`, if shorter) as the
/// liveness check, and a signal every `poll_interval`.
async fn poll(
    watcher: &Watcher,
    mut session: Session,
    probe: Duration,
    established: &mut bool,
    deadline: Option<DateTime<Utc>>,
) -> Result<(), MailboxError> {
    let settings = &*watcher.settings;
    tracing::info!("the IMAP server has no IDLE: polling");
    let every = settings.poll_interval.min(settings.check_interval);
    let mut since_signal = Duration::ZERO;
    loop {
        timed_for(probe, "NOOP", session.noop()).await?;
        *established = true;
        watcher.alive().await;
        let Some(step) = session_left(deadline, every) else {
            // The session's access token is due for renewal: a new session.
            let _ = tokio::time::timeout(Duration::from_secs(5), session.logout()).await;
            return Ok(());
        };
        tokio::time::sleep(step).await;
        since_signal += every;
        if since_signal >= settings.poll_interval {
            since_signal = Duration::ZERO;
            watcher.notify.notify_one();
        }
    }
}

/// Exchange's `* BYE Session invalidated - AccessTokenExpired`: the token is forgotten (the
/// server says it has expired, whatever our clock says), so the reconnection asks for a new one.
async fn token_expired_bye(
    settings: &ImapSettings,
    data: &async_imap::imap_proto::Response<'_>,
) -> Result<(), MailboxError> {
    use async_imap::imap_proto::{Response, Status};
    if let Response::Data {
        status: Status::Bye,
        outcome,
    } = data
        && outcome
            .information
            .as_deref()
            .is_some_and(crate::core::oauth::bye_is_token_expiry)
    {
        if let Some(source) = &settings.oauth2 {
            source.forget().await;
        }
        return Err(MailboxError::Command {
            command: "IDLE",
            detail: "the server ended the session: its access token expired".into(),
        });
    }
    Ok(())
}

/// How long a session may still wait in IDLE: `idle_refresh`, cut short by its token's
/// `deadline`; `None` once the deadline has passed (the session must be replaced).
fn session_left(deadline: Option<DateTime<Utc>>, idle_refresh: Duration) -> Option<Duration> {
    use crate::shell::clock::Clock;
    let Some(d) = deadline else {
        return Some(idle_refresh);
    };
    let left = (d - crate::shell::clock::SystemClock.now()).to_std().ok()?;
    (!left.is_zero()).then(|| left.min(idle_refresh))
}

/// Of `uids`, those `--since` leaves for people, read from their INTERNALDATE (a few bytes a
/// message; see `shell::firstrun` for why not `SEARCH SINCE`).
async fn left_uids(
    session: &mut Session,
    (record, renumbered_until): (Option<&FirstRunRecord>, Option<u32>),
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
        .filter(|u| r.filters(uidvalidity, *u, renumbered_until))
        .collect();
    let mut left = Vec::new();
    for chunk in uid_chunks(&asked, LOOKUP_UIDS, SET_TEXT) {
        let set = uid_set(chunk);
        look_up(
            timeout,
            "UID FETCH INTERNALDATE",
            session,
            &set,
            "(UID INTERNALDATE)",
            |f| {
                if let (Some(uid), Some(date)) = (f.uid, f.internal_date())
                    && r.leaves(uidvalidity, date.with_timezone(&Utc))
                {
                    left.push(uid);
                }
            },
        )
        .await?;
    }
    left.sort_unstable();
    left.dedup();
    Ok(left)
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_uids_kept_to_ask_again_read_back_only_under_their_uidvalidity() {
        let kept = format_unfetched(7, &[105, 230]);
        assert_eq!(kept, "7:105,230");
        assert_eq!(parse_unfetched(&kept, 7), [105, 230]);
        assert_eq!(
            parse_unfetched(&kept, 8),
            Vec::<u32>::new(),
            "another UIDVALIDITY"
        );
        assert_eq!(
            parse_unfetched(&format_unfetched(7, &[]), 7),
            Vec::<u32>::new()
        );
        assert_eq!(parse_unfetched("", 7), Vec::<u32>::new());
        assert_eq!(parse_unfetched("7:9,x,3,9", 7), [3, 9], "sorted, once each");
        assert_eq!(parse_unfetched("7:0,4", 7), [4], "no message has UID 0");
    }

    #[test]
    fn what_was_asked_and_not_handed_over_is_told_apart() {
        assert_eq!(not_arrived(&[1, 2, 3, 5, 8], &[1, 3, 8]), [2, 5]);
        assert_eq!(not_arrived(&[1, 2], &[1, 2]), Vec::<u32>::new());
        assert_eq!(not_arrived(&[], &[4]), Vec::<u32>::new());
    }

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
        assert_eq!(nb.dedupe_key, "mid:x@y", "trace headers are not identity");
        assert_eq!(
            (na.fingerprint, nb.fingerprint),
            (None, None),
            "a message with a Message-ID is not hashed as it arrives: the store hashes it if a \
             delivery under the same key is compared with it"
        );
        assert_eq!(
            intake::parse(a).message_id.as_deref(),
            Some("x@y"),
            "the key's Message-ID is the full parse's"
        );
        let no_id = new_message(b"Subject: s\r\n\r\nHello\r\n", 3, DateTime::UNIX_EPOCH);
        let print = no_id
            .fingerprint
            .expect("the key of a message without a Message-ID");
        assert_eq!(print, identity::fingerprint(b"Subject: s\r\n\r\nHello\r\n"));
        assert_eq!(no_id.dedupe_key, format!("content:{print}"));
    }

    #[tokio::test]
    async fn only_an_access_token_bye_ends_the_session_as_a_token_expiry() {
        let settings = ImapSettings {
            host: "127.0.0.1".into(),
            port: 993,
            tls: TlsMode::Implicit,
            username: "bsp@bury.test".into(),
            password: None,
            folder: "INBOX".into(),
            ca_file: None,
            oauth2: None,
            sent_folder: None,
            sent_copy: crate::shell::config::SentCopy::None,
            in_doubt_grace: std::time::Duration::from_secs(120),
            idle_refresh: Duration::from_secs(60),
            poll_interval: Duration::from_secs(60),
            command_timeout: Duration::from_secs(60),
            check_interval: Duration::from_secs(60),
            fetch_interval: Duration::from_secs(300),
        };
        let parse = |line: &'static [u8]| async_imap::imap_proto::Response::parse(line).unwrap().1;
        let expired = parse(b"* BYE Session invalidated - AccessTokenExpired\r\n");
        let e = token_expired_bye(&settings, &expired).await.unwrap_err();
        assert!(e.to_string().contains("access token expired"), "{e}");
        let other = parse(b"* BYE Server shutting down.\r\n");
        assert!(token_expired_bye(&settings, &other).await.is_ok());
        let exists = parse(b"* 3 EXISTS\r\n");
        assert!(token_expired_bye(&settings, &exists).await.is_ok());
    }

    #[test]
    fn a_uid_set_names_runs_of_consecutive_uids_by_their_ends() {
        assert_eq!(uid_set(&[1, 2, 3, 5, 7, 8]), "1:3,5,7:8");
        assert_eq!(uid_set(&(1..=10_000).collect::<Vec<_>>()), "1:10000");
        assert_eq!(uid_set(&[42]), "42");
        assert_eq!(uid_set(&[u32::MAX - 1, u32::MAX]), "4294967294:4294967295");
        assert_eq!(uid_set(&[]), "");
    }

    #[test]
    fn a_whole_mailbox_is_looked_up_in_one_command_and_scattered_uids_in_commands_of_bounded_length()
     {
        let all: Vec<u32> = (1..=10_000).collect();
        assert_eq!(uid_chunks(&all, LOOKUP_UIDS, SET_TEXT), [&all[..]]);
        let odd: Vec<u32> = (0..10_000).map(|i| 2 * i + 1).collect();
        let chunks = uid_chunks(&odd, LOOKUP_UIDS, SET_TEXT);
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| uid_set(c).len() <= SET_TEXT));
        assert_eq!(chunks.concat(), odd);
        let many: Vec<u32> = (1..=25_000).collect();
        assert_eq!(
            uid_chunks(&many, LOOKUP_UIDS, SET_TEXT)
                .iter()
                .map(|c| c.len())
                .collect::<Vec<_>>(),
            [10_000, 10_000, 5_000]
        );
    }

    proptest::proptest! {
        #[test]
        fn uid_chunks_keep_every_uid_in_order_each_set_within_its_length_and_each_as_long_as_it_can_be(
            gaps in proptest::collection::vec(1u32..40, 0..400),
            most in 1usize..60,
            text in 1usize..80,
        ) {
            let mut uids = Vec::new();
            let mut u = 0u32;
            for g in gaps {
                u += g;
                uids.push(u);
            }
            let chunks = uid_chunks(&uids, most, text);
            proptest::prop_assert_eq!(chunks.concat(), uids.clone());
            let mut at = 0;
            for c in &chunks {
                proptest::prop_assert!(!c.is_empty() && c.len() <= most);
                proptest::prop_assert!(c.len() == 1 || uid_set(c).len() <= text);
                at += c.len();
                // Cut only where the next UID would not have fitted.
                if at < uids.len() {
                    let longer = &uids[at - c.len()..=at];
                    proptest::prop_assert!(longer.len() > most || uid_set(longer).len() > text);
                }
            }
        }
    }

    #[test]
    fn the_reconnect_wait_doubles_to_two_minutes_and_starts_again_after_a_session_that_worked() {
        let mut backoff = Backoff::new();
        let waits: Vec<u64> = (0..9).map(|_| backoff.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 120, 120]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_secs(1));
    }

    #[tokio::test]
    async fn exchange_s_authenticated_but_not_connected_says_to_give_the_app_the_mailbox() {
        let refused = timed_for(Duration::from_secs(5), "EXAMINE", async {
            Err::<(), _>("bad response: User is authenticated but not connected.")
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(refused.contains("Add-MailboxPermission"), "{refused}");
        let other = timed_for(Duration::from_secs(5), "EXAMINE", async {
            Err::<(), _>("no response: Mailbox doesn't exist: Inbox2")
        })
        .await
        .unwrap_err()
        .to_string();
        assert!(!other.contains("Add-MailboxPermission"), "{other}");
    }

    #[test]
    fn only_a_tagged_refusal_of_the_token_counts_as_a_refused_token() {
        use async_imap::error::Error as E;
        assert!(token_refused(&E::No(
            "code: None, info: Some(\"AUTHENTICATE failed.\")".into()
        )));
        assert!(token_refused(&E::Bad("code: None, info: None".into())));
        // Dovecot's and Exchange's temporary failures, a reset, a BYE: the token may be good.
        assert!(!token_refused(&E::No(
            "code: Some(Unavailable), info: Some(\"Temporary authentication failure.\")".into()
        )));
        assert!(!token_refused(&E::No(
            "code: Some(Other(\"UNAVAILABLE\")), info: None".into()
        )));
        assert!(!token_refused(&E::ConnectionLost));
        assert!(!token_refused(&E::Io(std::io::Error::other(
            "status: Bye, code: None, information: Some(\"Server shutting down\")"
        ))));
    }

    #[test]
    fn a_server_that_says_bye_seconds_after_each_login_is_tried_ever_less_often() {
        let steady = Duration::from_secs(60);
        let mut backoff = Backoff::new();
        // Login and IDLE answered, then BYE after two seconds, again and again.
        let waits: Vec<u64> = (0..8)
            .map(|_| {
                backoff
                    .after_session(true, Duration::from_secs(2), steady)
                    .as_secs()
            })
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 120]);
        // A session that worked for a while starts again from a second.
        let wait = backoff.after_session(true, Duration::from_secs(3600), steady);
        assert_eq!(wait, Duration::from_secs(1));
        // One that never worked does not, however long it took to fail.
        backoff.next_wait();
        let wait = backoff.after_session(false, Duration::from_secs(3600), steady);
        assert_eq!(wait, Duration::from_secs(4));
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
        ]
        .map(|(uid, size)| Sized {
            uid,
            size,
            date: None,
        });
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
    fn the_engine_may_decide_up_to_the_earliest_arrival_still_to_be_stored() {
        let t = |m: i64| Some(DateTime::UNIX_EPOCH + chrono::Duration::minutes(m));
        let sized = |uid, date| Sized {
            uid,
            size: 10,
            date,
        };
        // Three batches; UID 5, the earliest arrival, is in the last; UID 7 was expunged.
        let sizes = [
            sized(1, t(30)),
            sized(2, t(20)),
            sized(3, t(40)),
            sized(4, t(50)),
            sized(5, t(10)),
            sized(6, t(60)),
        ];
        let batches = [vec![1, 2], vec![3, 4], vec![5, 6, 7]];
        assert_eq!(
            frontiers(&batches, &sizes),
            [
                Frontier::Until(t(10).unwrap()),
                Frontier::Until(t(10).unwrap()),
                Frontier::Until(t(10).unwrap()),
                Frontier::Done,
            ]
        );
        let batches = [vec![5, 6], vec![1, 2], vec![3, 4]];
        assert_eq!(
            frontiers(&batches, &sizes),
            [
                Frontier::Until(t(10).unwrap()),
                Frontier::Until(t(20).unwrap()),
                Frontier::Until(t(40).unwrap()),
                Frontier::Done,
            ]
        );
        // A message the server gave no date for: nothing past it until it is stored.
        let mut undated = sizes;
        undated[3].date = None;
        assert_eq!(
            frontiers(&batches, &undated),
            [
                Frontier::Unknown,
                Frontier::Unknown,
                Frontier::Unknown,
                Frontier::Done,
            ]
        );
        assert_eq!(frontiers(&[], &sizes), [Frontier::Done]);
    }

    /// One `UID FETCH` for several batches: a batch is stored only once every UID of it has
    /// arrived, or once the response has ended, whatever order the server sends them in.
    #[test]
    fn a_batch_of_a_streamed_fetch_is_complete_only_when_nothing_of_it_can_still_come() {
        let at = "2026-12-22T09:00:00Z".parse().unwrap();
        let m = |uid: u32| new_message(format!("Subject: {uid}\r\n\r\nx\r\n").as_bytes(), uid, at);
        let uids = |batch: Option<Vec<NewMessage>>| {
            batch.map(|b| b.iter().map(|m| m.uid).collect::<Vec<_>>())
        };
        let mut g = Gathering::default();
        g.arrived(m(1));
        assert_eq!(uids(g.take(&[1, 2])), None, "2 may still come");
        g.arrived(m(3)); // sent before 2: kept for its own batch
        g.arrived(m(2));
        assert_eq!(uids(g.take(&[1, 2])), Some(vec![1, 2]));
        assert_eq!(uids(g.take(&[3, 4])), None, "4 may still come");
        g.end(); // 4 was expunged meanwhile: the response ended without it
        assert_eq!(uids(g.take(&[3, 4])), Some(vec![3]));
        assert_eq!(
            uids(g.take(&[5])),
            Some(vec![]),
            "after the end, nothing more comes"
        );
    }

    #[test]
    fn fetch_batches_of_small_mail_are_bounded_by_count() {
        let uids: Vec<u32> = (1..=120).collect();
        let sizes: Vec<Sized> = uids
            .iter()
            .map(|&uid| Sized {
                uid,
                size: 2000,
                date: None,
            })
            .collect();
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
