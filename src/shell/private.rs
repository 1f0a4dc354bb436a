//! Files caseclerk writes that hold personal data or secrets: owner-only, whatever the umask.
//!
//! Owns the one way such a file is written (the tracker an operator exports, the throwaway
//! stack's password): mode 0600, set again when the file already existed with a more open mode.
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
