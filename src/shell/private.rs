//! Files caseclerk writes that hold personal data or secrets: owner-only, whatever the umask.
//!
//! Owns the one way such a file is written (the tracker an operator exports, the throwaway
//! stack's password): mode 0600, set again when the file already existed with a more open mode.
//! And the scratch space for a plaintext copy of the database ([`Scratch`]: an encrypted
//! backup's copy before `age`, a decrypted backup before it is restored, a dry run's copy).
//!
//! Must not: decide what goes in the file.

/// Write a file readable by its owner only (0600, also when it replaces a more open one): the
/// throwaway stack's password (caseclerk refuses a password file every user may read).
pub fn write(path: &std::path::Path, text: impl AsRef<[u8]>) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    f.write_all(text.as_ref())
}

/// Create `dir` and any missing parents owner-only (0700): the directory a database is made in
/// holds the children's records. Directories that already exist are left as they are.
pub fn create_dirs(dir: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// A private directory (0700) for one command's plaintext copies of the database, removed when
/// dropped. It lives under a root shared by every such command (`.caseclerk-scratch` beside the
/// database, never a backup's destination), next to a lock file held while it is in use. A
/// command stopped before it could clean up (Ctrl-C, a timeout, a reboot) leaves its copy
/// there, and the next command to open a scratch directory under the same root removes every
/// one whose lock nobody holds: a copy of the children's records does not outlive, unseen, the
/// command that made it, and is never left in a backup store.
#[derive(Debug)]
pub struct Scratch {
    dir: std::path::PathBuf,
    lock: std::path::PathBuf,
    _held: std::fs::File,
}

/// The root of the scratch directories for the database at `database`.
pub fn scratch_root(database: &std::path::Path) -> std::path::PathBuf {
    database
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."))
        .join(".caseclerk-scratch")
}

impl Scratch {
    /// A new scratch directory under `root` (made 0700 if missing), after removing what earlier
    /// commands left there.
    pub fn under(root: &std::path::Path) -> std::io::Result<Scratch> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)?;
        private_to_us(root)?;
        sweep(root);
        let nanos = std::time::SystemTime::UNIX_EPOCH
            .elapsed()
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        let name = format!("{}-{nanos}", std::process::id());
        let lock = root.join(format!("{name}.lock"));
        let held = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)?;
        held.lock()?;
        // A sweep between the creation and the lock may have taken the file for a stale one and
        // removed it: then this lock guards nothing, so refuse rather than leave a copy no
        // sweep would find.
        if !same_file(&held, &lock) {
            return Err(std::io::Error::other(format!(
                "{} was removed while it was being locked; try again",
                lock.display()
            )));
        }
        let dir = root.join(name);
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        Ok(Scratch {
            dir,
            lock,
            _held: held,
        })
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // The lock file goes only with the copy: a copy that could not be removed keeps its
        // lock file, for the next sweep to find.
        if std::fs::remove_dir_all(&self.dir).is_ok() || !self.dir.exists() {
            let _ = std::fs::remove_file(&self.lock);
        }
    }
}

/// Whether the open file `f` is the file at `path` (not one removed and replaced, or gone).
fn same_file(f: &std::fs::File, path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (f.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// The user this process runs as (the owner of `/proc/self`).
pub fn our_uid() -> std::io::Result<u32> {
    use std::os::unix::fs::MetadataExt;
    Ok(std::fs::metadata("/proc/self")?.uid())
}

/// `root` must be a directory (not a link to one) that only this user can enter: one made by
/// someone else in a shared temporary directory is refused, never written into.
fn private_to_us(root: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::symlink_metadata(root)?;
    if m.is_dir() && m.uid() == our_uid()? && m.mode() & 0o077 == 0 {
        return Ok(());
    }
    Err(std::io::Error::other(format!(
        "{} is not a directory private to this user (mode 0700, owned by it); remove it",
        root.display()
    )))
}

/// Remove every scratch directory under `root` whose lock nobody holds (its command ended
/// without cleaning up). Best effort: what cannot be removed now is tried again next time.
fn sweep(root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "lock") {
            continue;
        }
        let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else {
            continue;
        };
        if file.try_lock().is_ok() {
            let dir = path.with_extension("");
            if std::fs::remove_dir_all(&dir).is_ok() || !dir.exists() {
                let _ = std::fs::remove_file(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(name: &str) -> std::path::PathBuf {
        let r = std::env::temp_dir().join(format!(
            "caseclerk-scratch-test-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&r);
        r
    }

    fn entries(root: &std::path::Path) -> usize {
        std::fs::read_dir(root).map(|d| d.count()).unwrap_or(0)
    }

    #[test]
    fn a_scratch_directory_is_private_and_gone_once_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let root = root("dropped");
        let s = Scratch::under(&root).unwrap();
        std::fs::write(s.path("copy.db"), b"plaintext").unwrap();
        let mode = std::fs::metadata(s.path("")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let mode = std::fs::metadata(&root).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(s);
        assert_eq!(entries(&root), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn what_a_stopped_command_left_is_removed_by_the_next_and_a_running_ones_is_kept() {
        let root = root("sweep");
        let running = Scratch::under(&root).unwrap();
        std::fs::write(running.path("copy.db"), b"in use").unwrap();
        // What a command killed before its clean-up leaves: its lock file, no longer locked
        // (the lock went with its process), and its directory with the copy in it.
        let (dir, lock) = (root.join("4242-1"), root.join("4242-1.lock"));
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("copy.db"), b"left behind").unwrap();
        std::fs::write(&lock, b"").unwrap();
        let next = Scratch::under(&root).unwrap();
        assert!(!dir.exists(), "the stopped command's copy is removed");
        assert!(!lock.exists());
        assert!(
            running.path("copy.db").exists(),
            "a running command's copy is kept"
        );
        drop((next, running));
        assert_eq!(entries(&root), 0);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
