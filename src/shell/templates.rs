//! Reads the letter templates folder (`mail-templates/`) into the core's [`Templates`].
//!
//! Owns walking the folder: every `*.hbs` file, named by its path without `.hbs`
//! (`nelincs/scsi2.subject.hbs` → `nelincs/scsi2.subject`). Rendering is the core's.
//!
//! Must not: render or decide anything.

use crate::core::letters::{LetterError, Templates};
use std::path::Path;

/// Load every `*.hbs` under `dir`.
pub fn load(dir: &Path) -> Result<Templates, LetterError> {
    let unreadable = |e: std::io::Error| LetterError::Read {
        dir: dir.display().to_string(),
        reason: e.to_string(),
    };
    let mut sources = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(unreadable)? {
            let path = entry.map_err(unreadable)?.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let Some(rel) = path
                .strip_prefix(dir)
                .ok()
                .and_then(|p| p.to_str())
                .and_then(|p| p.strip_suffix(".hbs"))
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(unreadable)?;
            sources.push((rel.replace('\\', "/"), text));
        }
    }
    sources.sort();
    Templates::from_sources(&dir.display().to_string(), &sources)
}
