//! `caseclerk backup` and `caseclerk restore`: a consistent copy of the database while the daemon
//! runs, and putting one back.
//!
//! Owns the backup file's making (SQLite's `VACUUM INTO` from a read-only connection: one
//! transaction's snapshot, taken beside a running daemon without stopping it, compacted; the
//! file created owner-only first, as `VACUUM INTO` would leave it to the umask) and its checking
//! (it opens as a caseclerk database of this schema and passes SQLite's integrity check); and
//! restoring (refused while a daemon holds the database; the copy checked first, written beside
//! the database and renamed over it, the old `-wal`/`-shm` removed, so a failure half-way
//! leaves the old database whole).
//!
//! Must not: decide what to keep (retention is not here); write anything but the two files named.

use crate::shell::store::{Store, StoreError};
use std::path::Path;

/// What a backup or a restore found in the database it wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contents {
    pub cases: i64,
    pub letters: i64,
    pub events: i64,
    pub messages: i64,
}

impl std::fmt::Display for Contents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} case(s), {} letter(s), {} event(s), {} message(s)",
            self.cases, self.letters, self.events, self.messages
        )
    }
}

/// Backup and restore errors: what went wrong and what to do.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} exists already: a backup never overwrites a file; name a new one")]
    Exists(String),
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a usable backup: {why}")]
    Unusable { path: String, why: String },
    #[error(
        "a caseclerk daemon is working on {0}: stop it first (`systemctl stop caseclerk`), then restore"
    )]
    DaemonRunning(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Copy the database at `database` into the new file `dest` while a daemon may be running.
pub async fn backup(database: &Path, dest: &Path) -> Result<Contents, BackupError> {
    if dest.exists() {
        return Err(BackupError::Exists(dest.display().to_string()));
    }
    let write = |source| BackupError::Write {
        path: dest.display().to_string(),
        source,
    };
    // Owner-only from the first byte: VACUUM INTO accepts an empty file and keeps its mode.
    crate::shell::private::write(dest, b"").map_err(write)?;
    if let Err(e) = Store::copy_to(database, dest).await {
        let _ = std::fs::remove_file(dest);
        return Err(e.into());
    }
    check(dest).await
}

/// The backup at `backup` opens as a caseclerk database of this schema and is whole.
pub async fn check(backup: &Path) -> Result<Contents, BackupError> {
    let unusable = |why: String| BackupError::Unusable {
        path: backup.display().to_string(),
        why,
    };
    let store = Store::open_read_only(backup)
        .await
        .map_err(|e| unusable(e.to_string()))?;
    let integrity = store.integrity_check().await?;
    if integrity != "ok" {
        return Err(unusable(format!(
            "SQLite's integrity check says: {integrity}"
        )));
    }
    let (cases, letters, events, messages) = store.row_counts().await?;
    store.close().await;
    Ok(Contents {
        cases,
        letters,
        events,
        messages,
    })
}

/// Put the backup at `backup` in place of the database at `database` (no daemon may hold it).
pub async fn restore(backup: &Path, database: &Path) -> Result<Contents, BackupError> {
    let contents = check(backup).await?;
    let _lock = crate::shell::engine::lock_file(database).map_err(|e| match e {
        crate::shell::engine::EngineError::Locked { path } => BackupError::DaemonRunning(path),
        other => BackupError::Unusable {
            path: database.display().to_string(),
            why: other.to_string(),
        },
    })?;
    let staged = database.with_extension("db.restoring");
    let write = |path: &Path| {
        let path = path.display().to_string();
        move |source| BackupError::Write { path, source }
    };
    // Copied by the file system, not through memory (a database can be large); owner-only
    // whatever mode the backup file has (`fs::copy` would carry its mode over).
    crate::shell::private::write(&staged, b"").map_err(write(&staged))?;
    std::fs::copy(backup, &staged).map_err(write(&staged))?;
    std::fs::set_permissions(&staged, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .map_err(write(&staged))?;
    for suffix in ["-wal", "-shm"] {
        let f = format!("{}{suffix}", database.display());
        if Path::new(&f).exists() {
            std::fs::remove_file(&f).map_err(write(Path::new(&f)))?;
        }
    }
    std::fs::rename(&staged, database).map_err(write(database))?;
    Ok(contents)
}
