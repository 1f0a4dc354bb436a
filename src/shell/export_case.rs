//! `caseclerk export-case`: everything held about one case written into a new folder, for a
//! subject access request or a disclosure decision.
//!
//! Owns gathering the case's rows from the store (read-only), asking
//! [`crate::core::case_export::files`] what to write, and writing it owner-only: the folder is
//! made 0700 under a temporary name beside the target, every file 0600, and renamed to the name
//! asked for only when complete (an interrupted export leaves no half folder under that name). A
//! target that exists is refused, never overwritten or merged into.
//!
//! Must not: change the database; log names, file names or content (it logs nothing).

use crate::core::case::{self};
use crate::core::case_export::{Held, HeldLetter, files};
use crate::shell::config::Config;
use crate::shell::store::{Store, StoreError};
use chrono::{DateTime, Utc};
use std::path::Path;

/// Why a case could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("there is no case {0} (see `caseclerk cases`)")]
    NoCase(String),
    #[error("{0} exists already: export-case never overwrites; name a new folder")]
    Exists(String),
    #[error("cannot write {path}: {source} (check the folder's permissions and free space)")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("the case's history cannot be read: {0}")]
    Case(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What an export wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub files: usize,
    pub messages: usize,
    pub letters: usize,
    pub events: usize,
}

impl std::fmt::Display for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} file(s): {} message(s), {} letter(s), {} event(s)",
            self.files, self.messages, self.letters, self.events
        )
    }
}

/// Gather everything held about case `reference`, as of `now`.
pub async fn gather(
    cfg: &Config,
    store: &Store,
    reference: &str,
    now: DateTime<Utc>,
) -> Result<Held, ExportError> {
    let row = store
        .case_by_ref(reference)
        .await?
        .ok_or_else(|| ExportError::NoCase(reference.to_string()))?;
    let state = case::fold_rows(&store.events(row.id).await?)
        .map_err(|e| ExportError::Case(e.to_string()))?;
    let report = crate::shell::report::case_report(cfg, store, reference, now)
        .await
        .map_err(|e| ExportError::Case(e.to_string()))?;
    let events = store.held_events(row.id).await?;
    let particulars = store.particulars(row.id).await?;
    let messages = store.held_messages(row.id, &state.messages).await?;
    let letters = store
        .letters(Some(row.id))
        .await?
        .into_iter()
        .map(|l| HeldLetter {
            id: l.id,
            step: l.step,
            recipient: l.recipient,
            message_id: l.message_id,
            state: l.state.to_string(),
            due_at: l.due_at,
            sent_at: l.sent_at,
            raw: l.raw,
        })
        .collect();
    Ok(Held {
        case: row,
        report,
        events,
        messages,
        letters,
        particulars,
        made_at: now,
    })
}

/// Export case `reference` into the new folder `dir`.
pub async fn export(
    cfg: &Config,
    store: &Store,
    reference: &str,
    dir: &Path,
    now: DateTime<Utc>,
) -> Result<Written, ExportError> {
    if dir.exists() {
        return Err(ExportError::Exists(dir.display().to_string()));
    }
    let held = gather(cfg, store, reference, now).await?;
    let out = files(&held);
    let staging = dir.with_file_name(format!(
        ".{}.partial",
        dir.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "export".into())
    ));
    if let Err(e) = write_all(&staging, &out) {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    std::fs::rename(&staging, dir).map_err(|source| ExportError::Write {
        path: dir.display().to_string(),
        source,
    })?;
    Ok(Written {
        files: out.len(),
        messages: held.messages.len(),
        letters: held.letters.len(),
        events: held.events.len(),
    })
}

/// Write `files` under a new owner-only folder `root`.
fn write_all(root: &Path, files: &[crate::core::case_export::File]) -> Result<(), ExportError> {
    use std::os::unix::fs::DirBuilderExt;
    let fail = |p: &Path| {
        let path = p.display().to_string();
        move |source| ExportError::Write { path, source }
    };
    let mut dirs = std::fs::DirBuilder::new();
    dirs.mode(0o700);
    dirs.create(root).map_err(fail(root))?;
    for f in files {
        let path = root.join(&f.path);
        if let Some(parent) = path.parent()
            && !parent.exists()
        {
            dirs.recursive(true);
            dirs.create(parent).map_err(fail(parent))?;
        }
        crate::shell::private::write(&path, &f.bytes).map_err(fail(&path))?;
    }
    Ok(())
}
