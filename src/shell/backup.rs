//! `caseclerk backup` and `caseclerk restore`: a consistent copy of the database while the daemon
//! runs, and putting one back.
//!
//! Owns the backup file's making (SQLite's `VACUUM INTO` from a read-only connection: one
//! transaction's snapshot, taken beside a running daemon without stopping it, compacted; the
//! file created owner-only first, as `VACUUM INTO` would leave it to the umask) and its checking
//! (it opens as a caseclerk database of this schema and passes SQLite's integrity check); and
//! restoring (refused while a daemon holds the database; the copy written beside the database,
//! brought to this schema, checked, marked restored ([`RESTORED_AT`]: the outbox then looks for
//! every letter due before it in the sent folder before sending it), given the database's owner,
//! and renamed over it, the old `-wal`/`-shm` removed, so a failure half-way leaves the old
//! database whole).
//!
//! Optionally encrypted with `age` ([`backup_encrypted`], [`restore_encrypted`]): the backup is
//! piped through Debian's `age` command to one or more recipient public keys (`age1…`), so the
//! file at rest can only be opened with the matching private key, which need not be on this
//! server at all. The `age` command rather than the `age` crate: no new crate tree in the daemon,
//! and the operator decrypts with the same standard tool (`age -d -i key.txt -o plain.db
//! backup.db.age`) with or without caseclerk. `VACUUM INTO` can only write a file, so the
//! plaintext exists briefly in a private scratch directory beside the *database* (never beside
//! the backup, whose store must hold nothing readable: [`crate::shell::private::Scratch`]),
//! removed whatever happens, and by the next such command if this one is stopped first; the
//! encrypted file is owner-only from its first byte.
//!
//! Must not: decide what to keep (retention is not here); write anything but the files named
//! (and the one temporary plaintext, in the scratch directory).

use crate::shell::private::{Scratch, scratch_root};
use crate::shell::store::{RESTORED_AT, Store, StoreError};
use chrono::{DateTime, Utc};
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
    #[error(
        "a web workspace (`caseclerk serve`) has {0} open: stop it first, then restore, then start it again"
    )]
    Serving(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Where the time of the last checked backup is kept (`meta`, RFC 3339), for `caseclerk health`.
pub const LAST_BACKUP: &str = "last_backup";

/// Copy the database at `database` into the new file `dest` while a daemon may be running. A
/// copy that does not check whole is removed (a retry under the same name is not refused).
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
    let checked = check(dest).await;
    if checked.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    checked
}

/// The backup at `backup` opens as a caseclerk database of this schema, or an older one (a
/// database the daemon has not started on since an upgrade), and is whole.
pub async fn check(backup: &Path) -> Result<Contents, BackupError> {
    let store = Store::open_read_only_backup(backup)
        .await
        .map_err(|e| unusable(backup, e))?;
    contents_of(whole(store, backup).await?).await
}

/// The file at `backup` (a backup, or the database a restore would replace) is not usable, for
/// `why`.
fn unusable(backup: &Path, why: impl std::fmt::Display) -> BackupError {
    BackupError::Unusable {
        path: backup.display().to_string(),
        why: why.to_string(),
    }
}

/// `store` (of the backup at `backup`) if it passes SQLite's integrity check; else closed, and
/// the backup unusable.
async fn whole(store: Store, backup: &Path) -> Result<Store, BackupError> {
    let integrity = store.integrity_check().await?;
    if integrity == "ok" {
        return Ok(store);
    }
    store.close().await;
    Err(unusable(
        backup,
        format!("SQLite's integrity check says: {integrity}"),
    ))
}

/// What `store` holds, counted; then closed.
async fn contents_of(store: Store) -> Result<Contents, BackupError> {
    let (cases, letters, events, messages) = store.row_counts().await?;
    store.close().await;
    Ok(Contents {
        cases,
        letters,
        events,
        messages,
    })
}

/// Put the backup at `backup` in place of the database at `database` (no daemon may hold it), at
/// `now`. The copy is staged beside the database and made ready there before it replaces it:
/// - brought up to this version's schema (a backup taken before an upgrade restores after it),
///   and checked whole (SQLite's integrity check);
/// - marked restored at `now` ([`RESTORED_AT`]): the backup says "not sent" of letters that went
///   after it was taken, and mail that came since is read and decided again, so every letter due
///   before the restore is looked for in the sent folder before it goes, never simply sent twice;
/// - given the owner of the database it replaces (or of its folder): restored by root, it is
///   still the daemon's to open.
pub async fn restore(
    backup: &Path,
    database: &Path,
    now: DateTime<Utc>,
) -> Result<Contents, BackupError> {
    // Not even an SQLite file: refused before anything is made (the lock below makes the
    // database's file if there is none).
    if !starts_with(backup, b"SQLite format 3\0") {
        return Err(unusable(
            backup,
            "it is not an SQLite database (a file made by `caseclerk backup` is)",
        ));
    }
    // Whose the database is, before the lock below makes its file if there is none.
    let owner = owner_of(database)?;
    let _lock = crate::shell::engine::lock_file(database).map_err(|e| match e {
        crate::shell::engine::EngineError::Locked { path } => BackupError::DaemonRunning(path),
        other => unusable(database, other),
    })?;
    // A workspace (`caseclerk serve`) beside a stopped daemon still has the database open: it
    // would go on writing to the file this replaces, and what people did there would be lost.
    // (Its lock file only looked at if one ever ran: made here, by root, no workspace could
    // open it after.)
    let serving = crate::shell::store::serving_path(database);
    let _serving = match serving
        .exists()
        .then(|| crate::shell::store::serving_lock(database, true))
    {
        None => None,
        Some(Ok(Some(held))) => Some(held),
        Some(Ok(None)) => return Err(BackupError::Serving(database.display().to_string())),
        Some(Err(source)) => {
            return Err(BackupError::Write {
                path: serving.display().to_string(),
                source,
            });
        }
    };
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
    let ready = async {
        let contents = prepare(backup, &staged, now).await?;
        give_to(&staged, owner, database)?;
        Ok::<_, BackupError>(contents)
    }
    .await;
    let contents = match ready {
        Ok(c) => c,
        Err(e) => {
            let _ = std::fs::remove_file(&staged);
            return Err(e);
        }
    };
    for suffix in ["-wal", "-shm"] {
        let f = format!("{}{suffix}", database.display());
        if Path::new(&f).exists() {
            std::fs::remove_file(&f).map_err(write(Path::new(&f)))?;
        }
    }
    std::fs::rename(&staged, database).map_err(write(database))?;
    Ok(contents)
}

/// The staged copy of `backup` brought to this schema, checked whole, and marked restored.
async fn prepare(
    backup: &Path,
    staged: &Path,
    now: DateTime<Utc>,
) -> Result<Contents, BackupError> {
    let store = Store::open(staged).await.map_err(|e| unusable(backup, e))?;
    let store = whole(store, backup).await?;
    store
        .set_meta(RESTORED_AT, &crate::shell::store::ts(now))
        .await?;
    contents_of(store).await
}

/// The owner (user, group) of `database`, or, none yet, of the nearest folder above it that
/// exists: the user the daemon runs as.
fn owner_of(database: &Path) -> Result<(u32, u32), BackupError> {
    use std::os::unix::fs::MetadataExt;
    let nearest = database
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .unwrap_or(Path::new("."));
    std::fs::metadata(nearest)
        .map(|m| (m.uid(), m.gid()))
        .map_err(|source| BackupError::Write {
            path: database.display().to_string(),
            source,
        })
}

/// Give `staged` to `owner` (the database's: [`owner_of`]), as the daemon that opens it runs as
/// that user. A no-op for the owner themselves; refused (and said so) for anyone else but root.
fn give_to(staged: &Path, (uid, gid): (u32, u32), database: &Path) -> Result<(), BackupError> {
    std::os::unix::fs::chown(staged, Some(uid), Some(gid)).map_err(|source| BackupError::Write {
        path: format!(
            "{} (to give it the owner of {}: restore as that user, e.g. `sudo -u caseclerk \
             caseclerk restore …`, or as root)",
            staged.display(),
            database.display()
        ),
        source,
    })
}

/// The first bytes of every file `age` writes (its binary format).
const AGE_HEADER: &[u8] = b"age-encryption.org/v1";

/// An `age` problem: what went wrong and what to do.
fn age_error(why: String) -> BackupError {
    unusable(Path::new("age"), why)
}

/// Run `age args…` with `input` on stdin and stdout into `output` (already opened owner-only).
async fn run_age(
    args: &[&std::ffi::OsStr],
    input: &Path,
    output: std::fs::File,
) -> Result<(), BackupError> {
    let stdin = std::fs::File::open(input).map_err(|source| BackupError::Write {
        path: input.display().to_string(),
        source,
    })?;
    let out = tokio::process::Command::new("age")
        .args(args)
        .stdin(stdin)
        .stdout(output)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| {
            age_error(format!(
                "the `age` command cannot be run ({e}); install it (apt-get install age)"
            ))
        })?
        // (Not `output()`: tokio's would replace the file given as stdout with a pipe.)
        .wait_with_output()
        .await
        .map_err(|e| age_error(format!("`age` did not finish: {e}")))?;
    if !out.status.success() {
        return Err(age_error(format!(
            "`age` refused: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A new owner-only file, refused if it exists.
fn create_private(path: &Path) -> Result<std::fs::File, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::AlreadyExists => BackupError::Exists(path.display().to_string()),
            _ => BackupError::Write {
                path: path.display().to_string(),
                source,
            },
        })
}

/// A private scratch directory beside the database ([`Scratch`]).
fn scratch(database: &Path) -> Result<Scratch, BackupError> {
    let root = scratch_root(database);
    Scratch::under(&root).map_err(|source| BackupError::Write {
        path: root.display().to_string(),
        source,
    })
}

/// A backup of `database` encrypted with `age` to `recipients` (public keys, `age1…`), in the
/// new file `dest`. The plaintext copy is made and checked in a scratch directory beside the
/// database — never beside `dest`, which may be a backup store that must hold nothing readable
/// — then removed whatever happens (and, if this command is stopped first, by the next).
pub async fn backup_encrypted(
    database: &Path,
    dest: &Path,
    recipients: &[String],
) -> Result<Contents, BackupError> {
    if dest.exists() {
        return Err(BackupError::Exists(dest.display().to_string()));
    }
    let scratch = scratch(database)?;
    let plain = scratch.path("plaintext.db");
    let result = async {
        let contents = backup(database, &plain).await?;
        let output = create_private(dest)?;
        let mut args: Vec<&std::ffi::OsStr> = Vec::new();
        for r in recipients {
            args.push("--recipient".as_ref());
            args.push(r.as_ref());
        }
        if let Err(e) = run_age(&args, &plain, output).await {
            let _ = std::fs::remove_file(dest);
            return Err(e);
        }
        Ok(contents)
    }
    .await;
    drop(scratch);
    result
}

/// Whether the file at `path` is an `age`-encrypted file (an encrypted backup).
pub fn is_encrypted(path: &Path) -> bool {
    starts_with(path, AGE_HEADER)
}

/// Whether the file at `path` begins with `magic` (a file format's first bytes).
fn starts_with(path: &Path, magic: &[u8]) -> bool {
    use std::io::Read;
    let mut head = vec![0u8; magic.len()];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|()| head == magic)
}

/// Restore an `age`-encrypted backup with the private key in `identity`: decrypted into an
/// owner-only temporary file beside the database, restored from there, the temporary removed.
pub async fn restore_encrypted(
    backup: &Path,
    identity: &Path,
    database: &Path,
    now: DateTime<Utc>,
) -> Result<Contents, BackupError> {
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::shell::private::create_dirs(dir).map_err(|source| BackupError::Write {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let scratch = scratch(database)?;
    let plain = scratch.path("decrypted.db");
    let result = async {
        let output = create_private(&plain)?;
        run_age(
            &[
                "--decrypt".as_ref(),
                "--identity".as_ref(),
                identity.as_os_str(),
            ],
            backup,
            output,
        )
        .await?;
        restore(&plain, database, now).await
    }
    .await;
    drop(scratch);
    result
}
