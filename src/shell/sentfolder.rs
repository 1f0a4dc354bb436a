//! The sent folder: every letter caseclerk sends is also in the shared mailbox's sent folder
//! (`[mailbox] sent_folder`, default "Sent Items"), so the business unit sees the whole
//! correspondence in Outlook, where they already work. Who puts it there is `[mailbox]
//! sent_copy`: `"caseclerk"` (the default; filed here, below), `"server"` (the server files its
//! own copy as part of accepting the letter — Exchange Online does for SMTP AUTH client
//! submission — so nothing is filed here, and the outbox uses the copy to settle a letter in
//! doubt: [`has_copy`]), or `"none"` (the older `file_sent = false`).
//!
//! Owns filing once: after a pass has sent letters, the sent-but-unfiled outbox rows are each
//! looked for in the folder by Message-ID (`UID SEARCH HEADER Message-ID`) and appended (`\Seen`,
//! with the instant it was sent as INTERNALDATE) only when absent; then `filed_at` is recorded. A
//! crash between sending and filing leaves the row unfiled, and the next pass files it; a crash
//! between APPEND and recording finds the copy on the next pass and appends nothing. A failure
//! (the folder missing, the server down) is logged and kept as the `<sent-folder>` health row; it
//! never holds up a letter.
//!
//! Must not: send, change a letter's bytes, or log anything but ids and counts.

use crate::shell::config::{ImapSettings, SentCopy};
use crate::shell::mailbox::{self, MailboxError};
use crate::shell::store::Store;
use chrono::{DateTime, Utc};

/// Where the filing's health is kept (a `mailbox_state` row, as `<smtp>`).
pub const SENT_FOLDER_HEALTH_KEY: &str = "<sent-folder>";

/// Letters filed per pass at most (a backlog after a long outage is worked off over passes).
const PER_PASS: i64 = 200;

/// File every sent, unfiled letter. Returns how many were filed (appended or found there).
/// Nothing to file: no connection is made.
pub async fn file_sent(
    settings: &ImapSettings,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<usize, MailboxError> {
    let Some(folder) = settings.sent_folder.as_deref() else {
        return Ok(0);
    };
    if settings.sent_copy != SentCopy::Caseclerk {
        return Ok(0); // the server files its own copy
    }
    let letters = store.unfiled_sent(PER_PASS).await?;
    if letters.is_empty() {
        return Ok(0);
    }
    let result = file(settings, store, folder, &letters, now).await;
    match &result {
        Ok(n) => {
            store.record_mailbox_ok(SENT_FOLDER_HEALTH_KEY, now).await?;
            tracing::info!(filed = n, "letters filed in the sent folder");
        }
        Err(e) => {
            let advice = format!(
                "{e} (letters are sent; filing them in the sent folder is retried each pass; \
                 check [mailbox] sent_folder, or set file_sent = false if the server keeps a copy)"
            );
            store
                .record_mailbox_error(SENT_FOLDER_HEALTH_KEY, &advice, now)
                .await?;
            tracing::warn!(error = %e, "letters not filed in the sent folder; retrying next pass");
        }
    }
    result
}

/// Whether the sent folder holds a letter with this Message-ID (`UID SEARCH HEADER Message-ID`),
/// on a connection of its own. Only ids and the answer's size are logged.
pub async fn has_copy(settings: &ImapSettings, message_id: &str) -> Result<bool, MailboxError> {
    let Some(folder) = settings.sent_folder.as_deref() else {
        return Err(MailboxError::Command {
            command: "UID SEARCH",
            detail: "no sent folder is configured".into(),
        });
    };
    let mut session = mailbox::connect(settings).await?;
    let t = settings.command_timeout;
    let within = |command: &'static str| MailboxError::Timeout {
        command,
        seconds: t.as_secs(),
    };
    let command = |command: &'static str| {
        move |e: async_imap::error::Error| MailboxError::Command {
            command,
            detail: e.to_string(),
        }
    };
    // EXAMINE: read-only, so looking never changes a flag in the folder.
    tokio::time::timeout(t, session.examine(folder))
        .await
        .map_err(|_| within("EXAMINE sent folder"))?
        .map_err(command("EXAMINE sent folder"))?;
    let query = format!("HEADER Message-ID \"<{}>\"", message_id.replace('"', ""));
    let found = tokio::time::timeout(t, session.uid_search(&query))
        .await
        .map_err(|_| within("UID SEARCH"))?
        .map_err(command("UID SEARCH"))?;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), session.logout()).await;
    Ok(!found.is_empty())
}

async fn file(
    settings: &ImapSettings,
    store: &Store,
    folder: &str,
    letters: &[crate::shell::store::UnfiledLetter],
    now: DateTime<Utc>,
) -> Result<usize, MailboxError> {
    let mut session = mailbox::connect(settings).await?;
    let command = |command: &'static str| {
        move |e: async_imap::error::Error| MailboxError::Command {
            command,
            detail: e.to_string(),
        }
    };
    let within = |command: &'static str| MailboxError::Timeout {
        command,
        seconds: settings.command_timeout.as_secs(),
    };
    let t = settings.command_timeout;
    tokio::time::timeout(t, session.select(folder))
        .await
        .map_err(|_| within("SELECT sent folder"))?
        .map_err(command("SELECT sent folder"))?;
    let mut filed = 0;
    for l in letters {
        let query = format!("HEADER Message-ID \"<{}>\"", l.message_id.replace('"', ""));
        let found = tokio::time::timeout(t, session.uid_search(&query))
            .await
            .map_err(|_| within("UID SEARCH"))?
            .map_err(command("UID SEARCH"))?;
        if found.is_empty() {
            // The letter's bytes are read now, one letter at a time, and let go once appended.
            let Some(letter) = store.letter(l.id).await? else {
                continue; // gone meanwhile: nothing to file
            };
            let date = l.sent_at.format("\"%d-%b-%Y %H:%M:%S +0000\"").to_string();
            tokio::time::timeout(
                t,
                session.append(folder, Some("(\\Seen)"), Some(&date), &letter.raw),
            )
            .await
            .map_err(|_| within("APPEND"))?
            .map_err(command("APPEND"))?;
        }
        store.mark_filed(l.id, now).await?;
        tracing::debug!(
            outbox = l.id,
            already_there = !found.is_empty(),
            "letter filed"
        );
        filed += 1;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), session.logout()).await;
    Ok(filed)
}
