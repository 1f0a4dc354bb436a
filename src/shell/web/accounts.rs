//! Personal accounts of the web workspace: argon2id passwords, sign-in with lockout, sessions
//! kept in the database, and the record of every sign-in.
//!
//! Owns the `web_users`, `web_sessions` and `web_signins` tables (migrations 12 and 13; the
//! second factor is [`super::second_factor`]'s, the proxy sign-in [`super::proxy`]'s). A session's
//! cookie carries a random token; the database keeps only its SHA-256, so a copy of the database
//! signs nobody in. The rules (how many failures lock, how long a session lives) are
//! [`crate::core::access`]'s.
//!
//! Must not: log a username, a display name, a password or a token (account ids only); keep the
//! name typed at a failed sign-in that matched no account.

use crate::core::access::{self, Role};
use crate::shell::store::{Store, StoreError, parse_ts, ts};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// The shortest password an account may have.
pub const MIN_PASSWORD: usize = 12;

/// Why an account could not be added or changed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(
        "`{0}` is not a user name: use 2 to 64 lowercase letters, digits, dots, dashes or underscores"
    )]
    BadName(String),
    #[error("a user {0} already exists")]
    Exists(String),
    #[error("there is no user {0} (see `caseclerk user list`)")]
    NoUser(String),
    #[error("user {0} is already disabled")]
    AlreadyDisabled(String),
    #[error("user {0} is not disabled")]
    NotDisabled(String),
    #[error("the password is too short: use at least {MIN_PASSWORD} characters")]
    ShortPassword,
    #[error("`{0}` is not a role: use read-only or business-unit")]
    BadRole(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("too many sign-ins at once: none was checked for {} s", CHECK_WAIT.as_secs())]
    Busy,
    #[error(
        "{CHECKS_PER_ADDRESS} sign-ins from the same address are already being checked or waiting"
    )]
    BusyFromAddress,
    #[error("the second factor's key: {0}")]
    SecondFactor(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AccountError {
    fn from(e: sqlx::Error) -> Self {
        AccountError::Store(StoreError::from(e))
    }
}

/// How many password checks run at once. Each (argon2id) holds 19 MiB on a blocking thread of
/// the process that also sends the letters: without a bound, anyone who can reach the sign-in
/// page could make it hold gigabytes (64 sign-ins at once took 1.1 GiB) and queue the daemon's
/// own blocking work behind them. A sign-in beyond waits its turn, up to [`CHECK_WAIT`].
pub const PASSWORD_CHECKS: usize = 2;

/// How long a sign-in waits for its password check to start before it is refused as busy.
pub const CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

static CHECKING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(PASSWORD_CHECKS);

/// How many sign-ins from one address (an IPv6 address's /64, which one household or host is
/// given whole) may be checked or waiting for their turn at once. One more is refused at once
/// ([`AccountError::BusyFromAddress`]): a flood from one machine holds at most this many places
/// in the queue of [`PASSWORD_CHECKS`], so everybody else's sign-in still starts within a few
/// checks' time instead of waiting behind the flood and being refused as busy. Two, not one: a
/// person who presses "Sign in" twice is not refused.
pub const CHECKS_PER_ADDRESS: usize = 2;

/// The sign-ins being checked or waiting, by address ([`CHECKS_PER_ADDRESS`]).
static FROM: std::sync::Mutex<std::collections::BTreeMap<String, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// One place of an address among the sign-ins checked or waiting; given back when dropped.
struct AddressTurn(String);

impl AddressTurn {
    fn take(remote: &str) -> Result<AddressTurn, AccountError> {
        let key = address_key(remote);
        let mut from = FROM
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let held = from.entry(key.clone()).or_default();
        if *held >= CHECKS_PER_ADDRESS {
            return Err(AccountError::BusyFromAddress);
        }
        *held += 1;
        Ok(AddressTurn(key))
    }
}

impl Drop for AddressTurn {
    fn drop(&mut self) {
        let mut from = FROM
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(held) = from.get_mut(&self.0) {
            *held -= 1;
            if *held == 0 {
                from.remove(&self.0);
            }
        }
    }
}

/// What counts as one address for [`CHECKS_PER_ADDRESS`]: an IPv4 address (also when written as
/// IPv6), an IPv6 address's /64, or the text as given when it is not an address.
fn address_key(remote: &str) -> String {
    match remote
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.to_canonical())
    {
        Ok(std::net::IpAddr::V4(a)) => a.to_string(),
        Ok(std::net::IpAddr::V6(a)) => {
            let s = a.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Err(_) => remote.to_string(),
    }
}

/// Whether `password` matches `hash`, checked on a blocking thread once a turn is free
/// ([`PASSWORD_CHECKS`]) and while `remote`, if given, has no more than [`CHECKS_PER_ADDRESS`]
/// sign-ins checked or waiting. Both turns are held by the check itself, not by the request: a client
/// that hangs up ends its request, never the check, so it cannot free a turn for another check
/// while its own still holds the memory.
async fn checked(
    hash: String,
    password: String,
    remote: Option<&str>,
) -> Result<bool, AccountError> {
    let place = remote.map(AddressTurn::take).transpose()?;
    let turn = tokio::time::timeout(CHECK_WAIT, CHECKING.acquire())
        .await
        .map_err(|_| AccountError::Busy)?
        .map_err(|_| AccountError::Busy)?;
    tokio::task::spawn_blocking(move || {
        let matches = verify_password(&hash, &password);
        drop(turn);
        drop(place);
        matches
    })
    .await
    .map_err(|e| AccountError::Hash(e.to_string()))
}

/// A signed-in person, as a request sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub user_id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// The token every form of this session must carry back.
    pub csrf: String,
}

/// A new session: the cookie's token (shown once, never stored) and its form token.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub token: String,
    pub csrf: String,
}

/// One account, for `caseclerk user list`.
#[derive(Debug, Clone)]
pub struct Account {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    pub locked_until: Option<DateTime<Utc>>,
    /// Asked for a code after the password ([`super::second_factor`]).
    pub second_factor: bool,
    /// Signs in through the trusted proxy as this name ([`super::proxy`]).
    pub proxy_name: Option<String>,
}

/// 32 random bytes from the system's source, as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .expect("the system random source works");
    hex::encode(bytes)
}

pub(super) fn sha256(token: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Equal, compared in time that does not depend on where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// An argon2id hash (PHC string) of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    let mut salt = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut salt)
        .map_err(|_| AccountError::Hash("no random salt".into()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AccountError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Does `password` match the stored hash?
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

fn valid_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
}

/// Add a personal account.
pub async fn add_user(
    store: &Store,
    username: &str,
    display_name: &str,
    role: Role,
    password: &str,
    now: DateTime<Utc>,
) -> Result<i64, AccountError> {
    if !valid_name(username) {
        return Err(AccountError::BadName(username.to_string()));
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(AccountError::ShortPassword);
    }
    let owned = password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))??;
    let r = sqlx::query(
        "INSERT INTO web_users (username, display_name, role, password_hash, created_at) \
         VALUES (?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(username)
    .bind(display_name.trim())
    .bind(role.as_str())
    .bind(hash)
    .bind(ts(now))
    .fetch_one(store.pool())
    .await;
    match r {
        Ok(row) => Ok(row.get::<i64, _>(0)),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(AccountError::Exists(username.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

/// Disable an account: it cannot sign in, and its sessions end now.
pub async fn disable_user(
    store: &Store,
    username: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    let row = sqlx::query("SELECT id, disabled_at FROM web_users WHERE username = ?")
        .bind(username)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| AccountError::NoUser(username.to_string()))?;
    if row.get::<Option<String>, _>(1).is_some() {
        return Err(AccountError::AlreadyDisabled(username.to_string()));
    }
    let id: i64 = row.get(0);
    let mut tx = store.begin().await?;
    sqlx::query("UPDATE web_users SET disabled_at = ? WHERE id = ?")
        .bind(ts(now))
        .bind(id)
        .execute(&mut *tx)
        .await?;
    end_sessions(&mut tx, id, now).await?;
    Store::commit(tx).await?;
    tracing::info!(user = id, "web account disabled");
    Ok(())
}

/// Give an account a new password (a person who forgot theirs): its sessions end, its lockout
/// is lifted, and the change is recorded in its sign-in record.
pub async fn set_password(
    store: &Store,
    username: &str,
    password: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(AccountError::ShortPassword);
    }
    let id = user_id(store, username).await?;
    let owned = password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))??;
    let mut tx = store.begin().await?;
    sqlx::query(
        "UPDATE web_users SET password_hash = ?, failed_signins = 0, locked_until = NULL \
         WHERE id = ?",
    )
    .bind(hash)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    end_sessions(&mut tx, id, now).await?;
    Store::commit(tx).await?;
    record_signin(
        store,
        Some(id),
        "password set by an operator",
        "command line",
        now,
    )
    .await?;
    Ok(())
}

/// Enable a disabled account again (its password as it was, its lockout lifted), recorded in its
/// sign-in record.
pub async fn enable_user(
    store: &Store,
    username: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    let id = user_id(store, username).await?;
    let done = sqlx::query(
        "UPDATE web_users SET disabled_at = NULL, failed_signins = 0, locked_until = NULL \
         WHERE id = ? AND disabled_at IS NOT NULL",
    )
    .bind(id)
    .execute(store.pool())
    .await?;
    if done.rows_affected() == 0 {
        return Err(AccountError::NotDisabled(username.to_string()));
    }
    record_signin(
        store,
        Some(id),
        "enabled by an operator",
        "command line",
        now,
    )
    .await?;
    Ok(())
}

/// An account's id by its user name.
pub(super) async fn user_id(store: &Store, username: &str) -> Result<i64, AccountError> {
    sqlx::query_scalar("SELECT id FROM web_users WHERE username = ?")
        .bind(username)
        .fetch_optional(store.pool())
        .await?
        .ok_or_else(|| AccountError::NoUser(username.to_string()))
}

/// End every open session of an account, and any sign-in half done (a code still asked for
/// after a right password: the password it followed may be the one being replaced).
async fn end_sessions(
    tx: &mut crate::shell::store::Tx<'_>,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    sqlx::query("UPDATE web_sessions SET ended_at = ? WHERE user_id = ? AND ended_at IS NULL")
        .bind(ts(now))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM web_second_steps WHERE user_id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Every account, by name.
pub async fn users(store: &Store) -> Result<Vec<Account>, AccountError> {
    let rows = sqlx::query(
        "SELECT username, display_name, role, disabled_at, locked_until, \
         totp_secret IS NOT NULL, proxy_name FROM web_users ORDER BY username",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let role: String = r.get(2);
            Ok(Account {
                username: r.get(0),
                display_name: r.get(1),
                role: Role::parse(&role).ok_or(AccountError::BadRole(role))?,
                disabled: r.get::<Option<String>, _>(3).is_some(),
                locked_until: r
                    .get::<Option<String>, _>(4)
                    .map(|s| parse_ts(&s))
                    .transpose()?,
                second_factor: r.get(5),
                proxy_name: r.get(6),
            })
        })
        .collect()
}

pub(super) async fn record_signin(
    store: &Store,
    user: Option<i64>,
    outcome: &str,
    remote: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    // The same attempt again within a minute of a recorded one is counted on it (migration 18):
    // a flood of requests that cost nothing adds a count, not a row a year. Only attempts that
    // change nothing are counted so: on no account (nothing locks out a name that matches none)
    // or refused outright (a locked or disabled account); every wrong password or code on an
    // account, every sign-in and sign-out keeps a row of its own (the lockout bounds them).
    if user.is_some() && !outcome.starts_with("refused") {
        return insert_signin(store, user, outcome, remote, now).await;
    }
    let folded = sqlx::query(
        "UPDATE web_signins SET repeats = repeats + 1, last_at = ? WHERE id = (\
         SELECT id FROM web_signins WHERE (user_id = ? OR (user_id IS NULL AND ? IS NULL)) \
         AND outcome = ? AND remote = ? AND at >= ? ORDER BY id DESC LIMIT 1)",
    )
    .bind(ts(now))
    .bind(user)
    .bind(user)
    .bind(outcome)
    .bind(remote)
    .bind(ts(now - FOLDED_WITHIN))
    .execute(store.pool())
    .await?
    .rows_affected();
    if folded == 0 {
        return insert_signin(store, user, outcome, remote, now).await;
    }
    tracing::info!(user = ?user, outcome, "web sign-in");
    Ok(())
}

/// [`record_signin`]'s row of its own.
async fn insert_signin(
    store: &Store,
    user: Option<i64>,
    outcome: &str,
    remote: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    sqlx::query("INSERT INTO web_signins (at, user_id, outcome, remote) VALUES (?, ?, ?, ?)")
        .bind(ts(now))
        .bind(user)
        .bind(outcome)
        .bind(remote)
        .execute(store.pool())
        .await?;
    tracing::info!(user = ?user, outcome, "web sign-in");
    Ok(())
}

/// Record that account `user` read `what` in the workspace: a case reference and which part
/// (`RR-2026-0003: letter 12`), never content (migration 19). The same read again within a
/// minute is counted on its row. A read that cannot be recorded is logged at error, and the
/// page is still served: the business unit is not stopped from working by the record of its
/// work (a database that cannot be written is raised by health anyway).
pub async fn record_read(store: &Store, user: i64, what: &str, now: DateTime<Utc>) {
    if let Err(e) = try_record_read(store, user, what, now).await {
        tracing::error!(user, error = %e, "a read in the web workspace could not be recorded");
    }
}

async fn try_record_read(
    store: &Store,
    user: i64,
    what: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    let folded = sqlx::query(
        "UPDATE web_reads SET repeats = repeats + 1, last_at = ? WHERE id = (\
         SELECT id FROM web_reads WHERE user_id = ? AND what = ? AND at >= ? \
         ORDER BY id DESC LIMIT 1)",
    )
    .bind(ts(now))
    .bind(user)
    .bind(what)
    .bind(ts(now - FOLDED_WITHIN))
    .execute(store.pool())
    .await?
    .rows_affected();
    if folded == 0 {
        sqlx::query("INSERT INTO web_reads (at, user_id, what) VALUES (?, ?, ?)")
            .bind(ts(now))
            .bind(user)
            .bind(what)
            .execute(store.pool())
            .await?;
    }
    Ok(())
}

/// The recorded reads, newest first — of one account, or of every account: (when, the account's
/// user name, what was read, with how many times if more than once).
pub async fn reads(
    store: &Store,
    username: Option<&str>,
) -> Result<Vec<(DateTime<Utc>, String, String)>, AccountError> {
    let rows = sqlx::query(
        "SELECT r.at, u.username, r.what, r.repeats, r.last_at FROM web_reads r \
         JOIN web_users u ON u.id = r.user_id WHERE (? IS NULL OR u.username = ?) \
         ORDER BY r.id DESC",
    )
    .bind(username)
    .bind(username)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let what = outcome_counted(r.get(2), r.get(3), r.get(4))?;
            Ok((parse_ts(&r.get::<String, _>(0))?, r.get(1), what))
        })
        .collect()
}

/// An attempt the same as one recorded this long before (or less) is counted on its row.
const FOLDED_WITHIN: chrono::Duration = chrono::Duration::seconds(60);

/// A recorded attempt's outcome, with how many times it came if more than once.
fn outcome_counted(
    outcome: String,
    repeats: i64,
    last: Option<String>,
) -> Result<String, AccountError> {
    match last {
        Some(last) if repeats > 1 => Ok(format!(
            "{outcome} ({repeats} times, the last at {})",
            crate::core::calendar::short_instant(parse_ts(&last)?)
        )),
        _ => Ok(outcome),
    }
}

/// A hash to check a password against when the name matched no account, so that a wrong name
/// takes as long as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("no account has this password").unwrap_or_default())
}

/// What a name and password lead to.
#[derive(Debug)]
pub enum SignIn {
    /// Signed in: a new session.
    Session(NewSession),
    /// The password was right and the account has a second factor: the code is asked for next,
    /// on the second step this token names (the password alone gives no session).
    CodeAsked(String),
    /// The name or password is wrong, or the account is locked or disabled: one answer for all.
    Refused,
}

/// Sign in with a name and password from `remote` at `now` (see [`SignIn`]). Every attempt is
/// recorded.
pub async fn sign_in(
    store: &Store,
    username: &str,
    password: &str,
    remote: &str,
    now: DateTime<Utc>,
) -> Result<SignIn, AccountError> {
    sign_in_bounded(store, username, password, remote, Some(remote), now).await
}

/// [`sign_in`] through a proxy, whose one address every person's sign-in comes from (the trusted
/// proxy, after the council's identity provider; or a reverse proxy on this machine, on
/// loopback): not bound by address ([`CHECKS_PER_ADDRESS`]), only by [`PASSWORD_CHECKS`].
pub(super) async fn sign_in_through_proxy(
    store: &Store,
    username: &str,
    password: &str,
    remote: &str,
    now: DateTime<Utc>,
) -> Result<SignIn, AccountError> {
    sign_in_bounded(store, username, password, remote, None, now).await
}

async fn sign_in_bounded(
    store: &Store,
    username: &str,
    password: &str,
    remote: &str,
    bound: Option<&str>,
    now: DateTime<Utc>,
) -> Result<SignIn, AccountError> {
    let row = sqlx::query(
        "SELECT id, password_hash, failed_signins, locked_until, disabled_at, \
         totp_secret IS NOT NULL FROM web_users WHERE username = ?",
    )
    .bind(username.trim())
    .fetch_optional(store.pool())
    .await?;
    let hash = row
        .as_ref()
        .map_or_else(|| decoy_hash().to_string(), |r| r.get::<String, _>(1));
    let owned = password.to_string();
    let matches = checked(hash, owned, bound).await?;
    let Some(row) = row else {
        record_signin(store, None, "unknown account", remote, now).await?;
        return Ok(SignIn::Refused);
    };
    let id: i64 = row.get(0);
    let mut tx = store.begin().await?;
    let outcome = match attempt(&mut tx, id, matches, now).await? {
        Attempt::Refused(why) => (why.to_string(), SignIn::Refused),
        Attempt::Wrong { locked } => (wrong("wrong password", locked), SignIn::Refused),
        Attempt::Right if row.get::<bool, _>(5) => {
            let token = super::second_factor::begin_in(&mut tx, id, now).await?;
            (
                "password right: code asked".into(),
                SignIn::CodeAsked(token),
            )
        }
        Attempt::Right => {
            let new = open_session(&mut tx, id, now).await?;
            ("signed in".into(), SignIn::Session(new))
        }
    };
    Store::commit(tx).await?;
    record_signin(store, Some(id), &outcome.0, remote, now).await?;
    Ok(outcome.1)
}

/// What one attempt to prove who one is (a password, or a code) comes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attempt {
    /// The account is locked or disabled as it now stands, whatever was typed (as recorded).
    Refused(&'static str),
    /// Wrong: counted, and whether that locked the account.
    Wrong { locked: bool },
    /// Right, and the account may sign in.
    Right,
}

/// Decide one attempt, `right` or not, against the account as it stands inside `tx` (a write
/// transaction): every wrong attempt is counted on the count as it now is, and a right one is
/// refused once the account is locked. So attempts made at once, each checked against the row
/// read before its slow password hash, cannot outrun the lockout: the fifth wrong one locks the
/// account for all that come after it, a right password among them included.
pub(super) async fn attempt(
    tx: &mut crate::shell::store::Tx<'_>,
    id: i64,
    right: bool,
    now: DateTime<Utc>,
) -> Result<Attempt, AccountError> {
    let row = sqlx::query(
        "SELECT failed_signins, NULL, NULL, locked_until, disabled_at FROM web_users WHERE id = ?",
    )
    .bind(id)
    .fetch_one(&mut **tx)
    .await?;
    if let Some(why) = refusal(&row, 3, 4, now)? {
        return Ok(Attempt::Refused(why));
    }
    if right {
        return Ok(Attempt::Right);
    }
    let failures = u32::try_from(row.get::<i64, _>(0)).unwrap_or(u32::MAX);
    let (n, until) = access::after_failure(failures, now);
    sqlx::query("UPDATE web_users SET failed_signins = ?, locked_until = ? WHERE id = ?")
        .bind(i64::from(n))
        .bind(until.map(ts))
        .bind(id)
        .execute(&mut **tx)
        .await?;
    Ok(Attempt::Wrong {
        locked: until.is_some(),
    })
}

/// How a wrong attempt (`what`) is recorded.
pub(super) fn wrong(what: &str, locked: bool) -> String {
    if locked {
        format!("{what}: locked")
    } else {
        what.to_string()
    }
}

/// Why an account's row refuses any sign-in at `now` (`disabled_at` and `locked_until` at
/// these columns), as recorded, or `None`.
pub(super) fn refusal(
    row: &sqlx::sqlite::SqliteRow,
    locked_col: usize,
    disabled_col: usize,
    now: DateTime<Utc>,
) -> Result<Option<&'static str>, AccountError> {
    if row.get::<Option<String>, _>(disabled_col).is_some() {
        return Ok(Some("refused: disabled"));
    }
    let locked_until = row
        .get::<Option<String>, _>(locked_col)
        .map(|s| parse_ts(&s))
        .transpose()?;
    Ok(access::locked(locked_until, now).then_some("refused: locked"))
}

/// A new session for an account that has just proved who it is (its failures forgotten).
pub(super) async fn start_session(
    store: &Store,
    id: i64,
    now: DateTime<Utc>,
) -> Result<NewSession, AccountError> {
    let mut tx = store.begin().await?;
    let new = open_session(&mut tx, id, now).await?;
    Store::commit(tx).await?;
    Ok(new)
}

/// [`start_session`] inside a write transaction, so that the check it follows holds.
pub(super) async fn open_session(
    tx: &mut crate::shell::store::Tx<'_>,
    id: i64,
    now: DateTime<Utc>,
) -> Result<NewSession, AccountError> {
    let new = NewSession {
        token: random_token(),
        csrf: random_token(),
    };
    sqlx::query("UPDATE web_users SET failed_signins = 0, locked_until = NULL WHERE id = ?")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO web_sessions (token_sha256, user_id, csrf, created_at, last_seen_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(sha256(&new.token))
    .bind(id)
    .bind(&new.csrf)
    .bind(ts(now))
    .bind(ts(now))
    .execute(&mut **tx)
    .await?;
    Ok(new)
}

/// The live session a cookie's token names at `now` (its use recorded), or `None`: unknown,
/// signed out, expired, or its account disabled.
pub async fn session(
    store: &Store,
    token: &str,
    now: DateTime<Utc>,
) -> Result<Option<Session>, AccountError> {
    let key = sha256(token);
    let Some(r) = sqlx::query(
        "SELECT s.user_id, u.username, u.display_name, u.role, s.csrf, s.created_at, \
         s.last_seen_at FROM web_sessions s JOIN web_users u ON u.id = s.user_id \
         WHERE s.token_sha256 = ? AND s.ended_at IS NULL AND u.disabled_at IS NULL",
    )
    .bind(&key)
    .fetch_optional(store.pool())
    .await?
    else {
        return Ok(None);
    };
    let created = parse_ts(&r.get::<String, _>(5))?;
    let last_seen = parse_ts(&r.get::<String, _>(6))?;
    if !access::session_alive(created, last_seen, now) {
        sqlx::query("UPDATE web_sessions SET ended_at = ? WHERE token_sha256 = ?")
            .bind(ts(access::session_ends(created, last_seen)))
            .bind(&key)
            .execute(store.pool())
            .await?;
        return Ok(None);
    }
    sqlx::query("UPDATE web_sessions SET last_seen_at = ? WHERE token_sha256 = ?")
        .bind(ts(now))
        .bind(&key)
        .execute(store.pool())
        .await?;
    let role: String = r.get(3);
    Ok(Some(Session {
        user_id: r.get(0),
        username: r.get(1),
        display_name: r.get(2),
        role: Role::parse(&role).ok_or(AccountError::BadRole(role))?,
        csrf: r.get(4),
    }))
}

/// End the session a token names (signing out), recorded.
pub async fn sign_out(
    store: &Store,
    token: &str,
    remote: &str,
    now: DateTime<Utc>,
) -> Result<(), AccountError> {
    let user: Option<i64> = sqlx::query_scalar(
        "UPDATE web_sessions SET ended_at = ? WHERE token_sha256 = ? AND ended_at IS NULL \
         RETURNING user_id",
    )
    .bind(ts(now))
    .bind(sha256(token))
    .fetch_optional(store.pool())
    .await?;
    if let Some(id) = user {
        record_signin(store, Some(id), "signed out", remote, now).await?;
    }
    Ok(())
}

/// The recorded sign-ins of an account, newest first: (when, what happened, from where).
pub async fn signins(
    store: &Store,
    username: &str,
) -> Result<Vec<(DateTime<Utc>, String, String)>, AccountError> {
    let rows = sqlx::query(
        "SELECT s.at, s.outcome, s.remote, s.repeats, s.last_at FROM web_signins s \
         JOIN web_users u ON u.id = s.user_id WHERE u.username = ? ORDER BY s.id DESC",
    )
    .bind(username)
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            let what = outcome_counted(r.get(1), r.get(3), r.get(4))?;
            Ok((parse_ts(&r.get::<String, _>(0))?, what, r.get(2)))
        })
        .collect()
}

/// Every recorded sign-in, oldest first: (when, the account's name if any, what happened, from
/// where) — `caseclerk user signins --all` lists them newest first.
pub async fn all_signins(
    store: &Store,
) -> Result<Vec<(DateTime<Utc>, Option<String>, String, String)>, AccountError> {
    let rows = sqlx::query(
        "SELECT s.at, u.username, s.outcome, s.remote, s.repeats, s.last_at FROM web_signins s \
         LEFT JOIN web_users u ON u.id = s.user_id ORDER BY s.id",
    )
    .fetch_all(store.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                parse_ts(&r.get::<String, _>(0))?,
                r.get(1),
                outcome_counted(r.get(2), r.get(4), r.get(5))?,
                r.get(3),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    //! The bounds on password checks at once: in all, for a request dropped mid-check, and by
    //! address. The tests take turns ([`ONE_AT_A_TIME`]): each counts the process's turns.
    use super::*;

    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    #[tokio::test]
    async fn a_sign_in_dropped_while_its_password_is_checked_keeps_its_turn_until_the_check_ends() {
        let _alone = ONE_AT_A_TIME.lock().await;
        let store = Store::open_in_memory().await.unwrap();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let request = tokio::spawn(async move {
            let _ = sign_in(&store, "nobody", "a guess", "192.0.2.1", now).await;
        });
        // Wait until its check holds a turn, then hang up (the request is dropped).
        while CHECKING.available_permits() == PASSWORD_CHECKS {
            assert!(!request.is_finished(), "the sign-in ended before its check");
            tokio::task::yield_now().await;
        }
        request.abort();
        let _ = request.await;
        assert_eq!(
            CHECKING.available_permits(),
            PASSWORD_CHECKS - 1,
            "the check still running holds its turn"
        );
        // And gives it back when it ends.
        let _back = CHECKING.acquire_many(PASSWORD_CHECKS as u32).await.unwrap();
    }

    #[tokio::test]
    async fn a_machine_with_two_sign_ins_being_checked_has_a_third_refused_at_once_and_others_are_not()
     {
        let _alone = ONE_AT_A_TIME.lock().await;
        let store = Store::open_in_memory().await.unwrap();
        let now = DateTime::<Utc>::UNIX_EPOCH;
        let held: Vec<AddressTurn> = (0..CHECKS_PER_ADDRESS)
            .map(|_| AddressTurn::take("192.0.2.1").unwrap())
            .collect();
        for same in ["192.0.2.1", "::ffff:192.0.2.1"] {
            let third = sign_in(&store, "nobody", "a guess", same, now).await;
            assert!(
                matches!(third, Err(AccountError::BusyFromAddress)),
                "{same}: {third:?}"
            );
        }
        let other = sign_in(&store, "nobody", "a guess", "192.0.2.2", now).await;
        assert!(matches!(other, Ok(SignIn::Refused)), "{other:?}");
        let proxied = sign_in_through_proxy(&store, "nobody", "a guess", "192.0.2.1", now).await;
        assert!(matches!(proxied, Ok(SignIn::Refused)), "{proxied:?}");
        drop(held);
        let again = sign_in(&store, "nobody", "a guess", "192.0.2.1", now).await;
        assert!(matches!(again, Ok(SignIn::Refused)), "{again:?}");
        assert!(FROM.lock().unwrap().is_empty(), "every place is given back");
    }

    #[test]
    fn an_ipv6_machine_is_its_slash_64_and_an_ipv4_one_its_address_however_written() {
        assert_eq!(address_key("2001:db8:1:2::7"), "2001:db8:1:2::/64");
        assert_eq!(address_key("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
        assert_ne!(
            address_key("2001:db8:1:3::7"),
            address_key("2001:db8:1:2::7")
        );
        assert_eq!(address_key("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(address_key("192.0.2.1"), "192.0.2.1");
        assert_ne!(address_key("192.0.2.2"), address_key("192.0.2.1"));
    }
}
