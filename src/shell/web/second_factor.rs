//! The optional second factor of a personal account: enrolling (`caseclerk user totp`),
//! removing it, and the sign-in's second step (the code after the password).
//!
//! Owns the account's TOTP secret at rest and the `web_second_steps` table (migration 13). The
//! secret is sealed with AES-256-GCM (ring, bound to the account's id) under a key kept in a
//! file beside the database, `<database>.web-key` (0600, made at the first enrolment): a copy of
//! the database alone — a backup, a stolen file — gives the argon2id hash and a sealed blob,
//! never a secret that makes codes. The code rules are [`crate::core::totp`]'s; a wrong code
//! counts toward the lockout as a wrong password does, and every attempt is recorded.
//!
//! Must not: log, print (but once, at enrolment, to the terminal) or keep in clear a secret or a
//! code; let a code be used twice; give a session on the password alone to an account that has a
//! second factor.

use super::accounts::{self, AccountError, Attempt, NewSession};
use crate::core::totp;
use crate::shell::store::{Store, parse_ts, ts};
use chrono::{DateTime, Duration, Utc};
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sqlx::Row;
use std::path::{Path, PathBuf};

/// How long the code may come after the password.
pub const SECOND_STEP_MINUTES: i64 = 5;

/// The file holding the key that seals second-factor secrets: the database's path with
/// `.web-key` appended.
pub fn key_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".web-key");
    PathBuf::from(name)
}

fn key_from(text: &str, path: &Path) -> Result<LessSafeKey, AccountError> {
    let bad = || {
        AccountError::SecondFactor(format!(
            "{} is not a key caseclerk made (64 hex digits); restore it from the backup of \
             this machine, or remove it and enrol every second factor again (`caseclerk user \
             totp <name>`)",
            path.display()
        ))
    };
    let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
    UnboundKey::new(&AES_256_GCM, &bytes)
        .map(LessSafeKey::new)
        .map_err(|_| bad())
}

/// The sealing key, made (and written, readable by the owner only) when there is none yet.
fn key_or_make(path: &Path) -> Result<LessSafeKey, AccountError> {
    match std::fs::read_to_string(path) {
        Ok(text) => key_from(&text, path),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            SystemRandom::new()
                .fill(&mut bytes)
                .map_err(|_| AccountError::SecondFactor("no random key".into()))?;
            let text = hex::encode(bytes);
            crate::shell::private::write(path, &text).map_err(|e| {
                AccountError::SecondFactor(format!("cannot write {}: {e}", path.display()))
            })?;
            key_from(&text, path)
        }
        Err(e) => Err(AccountError::SecondFactor(format!(
            "cannot read {}: {e}",
            path.display()
        ))),
    }
}

/// The sealing key, which must exist (an account has a sealed secret).
fn key(path: &Path) -> Result<LessSafeKey, AccountError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        AccountError::SecondFactor(format!(
            "cannot read {} ({e}): it seals the second factors; restore it from the backup of \
             this machine, or enrol each second factor again (`caseclerk user totp <name>`)",
            path.display()
        ))
    })?;
    key_from(&text, path)
}

fn aad(user_id: i64) -> String {
    format!("web_users:{user_id}:totp")
}

/// `v1:<nonce hex>:<ciphertext and tag hex>`.
fn seal(key: &LessSafeKey, user_id: i64, secret: &[u8]) -> Result<String, AccountError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| AccountError::SecondFactor("no random nonce".into()))?;
    let mut sealed = secret.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(aad(user_id)),
        &mut sealed,
    )
    .map_err(|_| AccountError::SecondFactor("cannot seal the secret".into()))?;
    Ok(format!("v1:{}:{}", hex::encode(nonce), hex::encode(sealed)))
}

fn open(key: &LessSafeKey, user_id: i64, stored: &str) -> Result<Vec<u8>, AccountError> {
    let bad = || {
        AccountError::SecondFactor(format!(
            "account {user_id}'s second factor does not open with this key (the key file was \
             replaced?): enrol it again (`caseclerk user totp <name>`)"
        ))
    };
    let mut parts = stored.splitn(3, ':');
    let (Some("v1"), Some(nonce), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let nonce: [u8; NONCE_LEN] = hex::decode(nonce)
        .ok()
        .and_then(|n| n.try_into().ok())
        .ok_or_else(bad)?;
    let mut body = hex::decode(body).map_err(|_| bad())?;
    let plain = key
        .open_in_place(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(user_id)),
            &mut body,
        )
        .map_err(|_| bad())?;
    Ok(plain.to_vec())
}

/// Give an account a new second factor (replacing any earlier one): the new secret, to show
/// once. From its next sign-in on, the account is asked for a code after its password.
pub async fn enrol(
    store: &Store,
    key_file: &Path,
    username: &str,
) -> Result<Vec<u8>, AccountError> {
    let id = super::accounts::user_id(store, username).await?;
    let key = key_or_make(key_file)?;
    let mut secret = vec![0u8; totp::SECRET_BYTES];
    SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| AccountError::SecondFactor("no random secret".into()))?;
    sqlx::query("UPDATE web_users SET totp_secret = ?, totp_last_step = NULL WHERE id = ?")
        .bind(seal(&key, id, &secret)?)
        .bind(id)
        .execute(store.pool())
        .await?;
    tracing::info!(user = id, "web account's second factor enrolled");
    Ok(secret)
}

/// Remove an account's second factor (a lost phone): its password alone signs it in again.
/// Whether it had one.
pub async fn remove(store: &Store, username: &str) -> Result<bool, AccountError> {
    let id = super::accounts::user_id(store, username).await?;
    let done = sqlx::query(
        "UPDATE web_users SET totp_secret = NULL, totp_last_step = NULL \
         WHERE id = ? AND totp_secret IS NOT NULL",
    )
    .bind(id)
    .execute(store.pool())
    .await?
    .rows_affected();
    sqlx::query("DELETE FROM web_second_steps WHERE user_id = ?")
        .bind(id)
        .execute(store.pool())
        .await?;
    tracing::info!(user = id, "web account's second factor removed");
    Ok(done == 1)
}

/// Begin the second step for an account whose password was right: its token (the browser keeps
/// it in a cookie; the database only its SHA-256).
pub(super) async fn begin_in(
    tx: &mut crate::shell::store::Tx<'_>,
    user_id: i64,
    now: DateTime<Utc>,
) -> Result<String, AccountError> {
    // Half-done sign-ins past their five minutes are of no use: none is left behind.
    sqlx::query("DELETE FROM web_second_steps WHERE created_at < ?")
        .bind(ts(now - Duration::minutes(SECOND_STEP_MINUTES)))
        .execute(&mut **tx)
        .await?;
    let token = accounts::random_token();
    sqlx::query(
        "INSERT INTO web_second_steps (token_sha256, user_id, created_at) VALUES (?, ?, ?)",
    )
    .bind(accounts::sha256(&token))
    .bind(user_id)
    .bind(ts(now))
    .execute(&mut **tx)
    .await?;
    Ok(token)
}

/// What a code typed on the second step leads to.
#[derive(Debug)]
pub enum Step {
    /// Right, and never used before: a session.
    Session(NewSession),
    /// Wrong (or already used): type another.
    WrongCode,
    /// The step is over — too late, unknown, the account locked or disabled: sign in again.
    Over,
}

async fn end_step(store: &Store, key: &str) -> Result<(), AccountError> {
    sqlx::query("DELETE FROM web_second_steps WHERE token_sha256 = ?")
        .bind(key)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The code typed on the second step `token` names, from `remote` at `now`. Every attempt is
/// recorded; a wrong code counts toward the lockout.
pub async fn second_step(
    store: &Store,
    key_file: &Path,
    token: &str,
    code: &str,
    remote: &str,
    now: DateTime<Utc>,
) -> Result<Step, AccountError> {
    let key = accounts::sha256(token);
    let Some(row) = sqlx::query(
        "SELECT s.user_id, s.created_at, u.failed_signins, u.locked_until, u.disabled_at, \
         u.totp_secret, u.totp_last_step FROM web_second_steps s \
         JOIN web_users u ON u.id = s.user_id WHERE s.token_sha256 = ?",
    )
    .bind(&key)
    .fetch_optional(store.pool())
    .await?
    else {
        accounts::record_signin(store, None, "code without a password", remote, now).await?;
        return Ok(Step::Over);
    };
    let id: i64 = row.get(0);
    let begun = parse_ts(&row.get::<String, _>(1))?;
    let refused = if now >= begun + Duration::minutes(SECOND_STEP_MINUTES) {
        Some("code too late")
    } else {
        accounts::refusal(&row, 3, 4, now)?
    };
    let Some(sealed) = row.get::<Option<String>, _>(5) else {
        end_step(store, &key).await?;
        accounts::record_signin(store, Some(id), "code: second factor removed", remote, now)
            .await?;
        return Ok(Step::Over);
    };
    if let Some(why) = refused {
        end_step(store, &key).await?;
        accounts::record_signin(store, Some(id), why, remote, now).await?;
        return Ok(Step::Over);
    }
    let secret = open(&self::key(key_file)?, id, &sealed)?;
    let last: Option<i64> = row.get(6);
    let used = match totp::check(&secret, code, now, last) {
        Some(step) => claim(store, id, step).await?,
        None => false,
    };
    let what = if used {
        "signed in with a code"
    } else if totp::check(&secret, code, now, None).is_some() {
        "code already used"
    } else {
        "wrong code"
    };
    // Decided against the account as it now stands, not as it was read above: codes typed at
    // once cannot outrun the lockout (see `accounts::attempt`).
    let mut tx = store.begin().await?;
    let (outcome, step) = match accounts::attempt(&mut tx, id, used, now).await? {
        Attempt::Refused(why) => (why.to_string(), Step::Over),
        Attempt::Wrong { locked: true } => (accounts::wrong(what, true), Step::Over),
        Attempt::Wrong { locked: false } => (accounts::wrong(what, false), Step::WrongCode),
        Attempt::Right => {
            let new = accounts::open_session(&mut tx, id, now).await?;
            (what.to_string(), Step::Session(new))
        }
    };
    if !matches!(step, Step::WrongCode) {
        sqlx::query("DELETE FROM web_second_steps WHERE token_sha256 = ?")
            .bind(&key)
            .execute(&mut *tx)
            .await?;
    }
    Store::commit(tx).await?;
    accounts::record_signin(store, Some(id), &outcome, remote, now).await?;
    Ok(step)
}

/// Mark `step` used for the account, unless a code of that step or later was used meanwhile
/// (two requests racing with the same code: one wins).
async fn claim(store: &Store, id: i64, step: i64) -> Result<bool, AccountError> {
    let n = sqlx::query(
        "UPDATE web_users SET totp_last_step = ? \
         WHERE id = ? AND (totp_last_step IS NULL OR totp_last_step < ?)",
    )
    .bind(step)
    .bind(id)
    .bind(step)
    .execute(store.pool())
    .await?
    .rows_affected();
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_key() -> LessSafeKey {
        key_from(&"ab".repeat(32), Path::new("test")).unwrap()
    }

    #[test]
    fn a_sealed_secret_opens_for_its_own_account_only() {
        let key = test_key();
        let sealed = seal(&key, 7, b"12345678901234567890").unwrap();
        assert!(!sealed.contains(&hex::encode(b"12345678901234567890")));
        assert_eq!(open(&key, 7, &sealed).unwrap(), b"12345678901234567890");
        assert!(open(&key, 8, &sealed).is_err(), "copied to another account");
        let other = key_from(&"cd".repeat(32), Path::new("other")).unwrap();
        assert!(open(&other, 7, &sealed).is_err(), "another key");
    }

    #[test]
    fn the_key_file_sits_beside_the_database() {
        assert_eq!(
            key_path(Path::new("/var/lib/caseclerk/caseclerk.db")),
            PathBuf::from("/var/lib/caseclerk/caseclerk.db.web-key")
        );
    }
}
