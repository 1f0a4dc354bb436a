//! The sent folder: every letter caseclerk sends is also filed in the shared mailbox's sent
//! folder (`[mailbox] sent_folder`, default "Sent Items"; `file_sent = false` turns it off for
//! servers that keep a copy themselves), so the business unit sees the whole correspondence in
//! Outlook, where they already work.
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

use crate::shell::config::ImapSettings;
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
            let date = l.sent_at.format("\"%d-%b-%Y %H:%M:%S +0000\"").to_string();
            tokio::time::timeout(
                t,
                session.append(folder, Some("(\\Seen)"), Some(&date), &l.raw),
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
