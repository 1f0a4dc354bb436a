//! Reads what a letter attaches: the referral (its text and its files, and what the referrer
//! added later), the agencies' returns, and files named in the configuration.
//!
//! Owns the reads only; which attachments a letter has is the process file's, and the letter is
//! composed by `core::letters`.
//!
//! Must not: decide or render letters; log names, file names or contents.

use crate::core::case::CaseState;
use crate::core::intake;
use crate::core::letters::{
    LetterError, OutAttachment, content_type_for, forwardable, referral_text,
};
use crate::shell::config::Config;
use crate::shell::store::{Store, StoreError};

/// Why a letter's attachments could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Letter(#[from] LetterError),
}

/// The attachments named `names` (a step's `attach`) for a letter on this case.
pub async fn read(
    cfg: &Config,
    store: &Store,
    state: &CaseState,
    names: &[String],
) -> Result<Vec<OutAttachment>, AttachmentError> {
    let mut out = Vec::new();
    for name in names {
        match name.as_str() {
            "referral" => referral(store, state, &mut out).await?,
            "returns" => returns(store, state, &mut out).await?,
            other => {
                if let Some(path) = cfg.attachments.get(other) {
                    let data =
                        tokio::fs::read(path)
                            .await
                            .map_err(|e| LetterError::Attachment {
                                name: other.to_string(),
                                path: path.display().to_string(),
                                reason: e.to_string(),
                            })?;
                    let filename = path
                        .file_name()
                        .map(|f| f.to_string_lossy().into_owned())
                        .unwrap_or_else(|| other.to_string());
                    out.push(OutAttachment {
                        content_type: content_type_for(&filename),
                        filename,
                        data,
                    });
                }
            }
        }
    }
    Ok(out)
}

/// What of the content a letter attaches (`names`: a step's `attach`) was erased under the
/// retention schedule: "the referral", "N agency return(s)"; empty when nothing was
/// ([`crate::core::retention::unsendable_after_erasure`] says what then happens to the letter).
pub async fn erased(
    store: &Store,
    state: &CaseState,
    names: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut out = Vec::new();
    if names.iter().any(|n| n == "referral") && store.message_erased(state.referral_message).await?
    {
        out.push("the referral".to_string());
    }
    if names.iter().any(|n| n == "returns") {
        let mut gone = 0;
        for id in state.active_agencies().flat_map(|(_, a)| a.returns.iter()) {
            if store.message_erased(*id).await? {
                gone += 1;
            }
        }
        match gone {
            0 => {}
            1 => out.push("an agency's return".to_string()),
            n => out.push(format!("{n} agency returns")),
        }
    }
    Ok(out)
}

/// What the letter's attachments leave out: the unsafe files of the referral (when `names` has
/// "referral") and of the returns (when it has "returns"), counted by kind
/// ([`crate::core::trust::withheld_summary`]); `None` when nothing was left out.
pub async fn withheld(
    store: &Store,
    state: &CaseState,
    names: &[String],
) -> Result<Option<String>, StoreError> {
    let mut ids = Vec::new();
    if names.iter().any(|n| n == "referral") {
        ids.push(state.referral_message);
    }
    if names.iter().any(|n| n == "returns") {
        ids.extend(
            state
                .active_agencies()
                .flat_map(|(_, a)| a.returns.iter().copied()),
        );
    }
    let mut files = Vec::new();
    for id in ids {
        if let Some(raw) = store.message_raw(id).await? {
            files.extend(intake::parse(&raw).attachments);
        }
    }
    Ok(crate::core::trust::withheld_summary(&files))
}

/// The referral email as text, its files, and what the referrer added later (an answer to a
/// query travels with the referral).
async fn referral(
    store: &Store,
    state: &CaseState,
    out: &mut Vec<OutAttachment>,
) -> Result<(), StoreError> {
    if let Some(raw) = store.message_raw(state.referral_message).await? {
        let m = intake::parse(&raw);
        out.push(OutAttachment {
            filename: format!("{}-referral-email.txt", state.reference),
            content_type: "text/plain; charset=utf-8".into(),
            data: referral_text(&m).into_bytes(),
        });
        // Programs, scripts, web pages… never travel (core::letters::forwardable decides).
        out.extend(forwardable(m, ""));
    }
    let mut n = 0;
    for id in state.messages.iter().skip(1) {
        let Some(raw) = store.message_raw(*id).await? else {
            continue;
        };
        let m = intake::parse(&raw);
        let from = m.from.as_ref().map(|a| a.email.to_lowercase());
        if from.is_some() && from == state.referrer {
            n += 1;
            out.push(OutAttachment {
                filename: format!("{}-referrer-reply-{n}.txt", state.reference),
                content_type: "text/plain; charset=utf-8".into(),
                data: referral_text(&m).into_bytes(),
            });
        }
    }
    Ok(())
}

/// The files of every full return on the case, named by agency.
async fn returns(
    store: &Store,
    state: &CaseState,
    out: &mut Vec<OutAttachment>,
) -> Result<(), StoreError> {
    for (id, a) in state.active_agencies() {
        for message in &a.returns {
            if let Some(raw) = store.message_raw(*message).await? {
                out.extend(forwardable(intake::parse(&raw), &format!("{id} - ")));
            }
        }
    }
    Ok(())
}
