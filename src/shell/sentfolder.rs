//! The sent folder: every letter caseclerk sends is also in the shared mailbox's sent folder
//! (`[mailbox] sent_folder`, default "Sent Items"), so the business unit sees the whole
//! correspondence in Outlook, where they already work. Who puts it there is `[mailbox]
//! sent_copy`: `"caseclerk"` (the default; filed here, below), `"server"` (the server files its
//! own copy as part of accepting the letter — Exchange Online does for SMTP AUTH client
//! submission — so nothing is filed here, and the outbox uses the copy to settle a letter in
//! doubt: [`has_copy`]), or `"none"` (the older `file_sent = false`).
//!
//! Owns filing once: after a pass has sent letters, the sent-but-unfiled outbox rows are each
//! looked for in the folder by Message-ID (`UID SEARCH HEADER Message-ID`, checked so that a
//! refused search never reads as "absent": [`copy_in`]) and appended (`\Seen`,
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
    // EXAMINE: read-only, so looking never changes a flag in the folder.
    let examined = mailbox::timed_for(t, "EXAMINE sent folder", session.examine(folder)).await?;
    let found = copy_in(&mut session, t, message_id, examined.exists > 0).await?;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), session.logout()).await;
    Ok(found)
}

/// Whether the open folder holds the letter `message_id`, asked so that a refused or cut answer
/// can never pass for "no copy". The IMAP library hands back a `UID SEARCH` that the server
/// answered `NO` or `BAD`, or that a dropped connection ended, as an empty answer — and "no
/// copy" of a letter in doubt sends it again. So the search also asks for `UID *` (the folder's
/// newest message), which a folder holding mail (`may_hold_mail`) always lists: an answer
/// listing nothing is not trusted. And each message listed is then asked for its Message-ID
/// (`ENVELOPE`): "no copy" only when every one listed answered and none is the letter.
async fn copy_in(
    session: &mut mailbox::Session,
    t: std::time::Duration,
    message_id: &str,
    may_hold_mail: bool,
) -> Result<bool, MailboxError> {
    use futures::StreamExt;
    let untrusted = |detail: &str| MailboxError::Command {
        command: "UID SEARCH",
        detail: format!("the sent folder's answer cannot be trusted: {detail}"),
    };
    let wanted = format!("<{}>", message_id.replace('"', ""));
    let query = format!("OR HEADER Message-ID \"{wanted}\" UID *");
    let listed = mailbox::timed_for(t, "UID SEARCH", session.uid_search(&query)).await?;
    if listed.is_empty() {
        return if may_hold_mail {
            Err(untrusted("it listed nothing, not even the newest message"))
        } else {
            Ok(false)
        };
    }
    let set: Vec<String> = listed.iter().map(u32::to_string).collect();
    let mut answered = std::collections::HashSet::new();
    let mut found = false;
    let fetched = async {
        let mut stream = session.uid_fetch(set.join(","), "ENVELOPE").await?;
        while let Some(f) = stream.next().await {
            let f = f?;
            let id = f.envelope().and_then(|e| e.message_id.as_deref());
            found |= id.is_some_and(|id| id.trim_ascii() == wanted.as_bytes());
            answered.extend(f.uid);
        }
        Ok::<_, async_imap::error::Error>(())
    };
    mailbox::timed_for(t, "UID FETCH", fetched).await?;
    if found {
        Ok(true)
    } else if listed.iter().all(|u| answered.contains(u)) {
        Ok(false)
    } else {
        Err(untrusted("a message it listed was not handed over"))
    }
}

async fn file(
    settings: &ImapSettings,
    store: &Store,
    folder: &str,
    letters: &[crate::shell::store::UnfiledLetter],
    now: DateTime<Utc>,
) -> Result<usize, MailboxError> {
    let mut session = mailbox::connect(settings).await?;
    let t = settings.command_timeout;
    let selected = mailbox::timed_for(t, "SELECT sent folder", session.select(folder)).await?;
    let mut may_hold_mail = selected.exists > 0;
    let mut filed = 0;
    for l in letters {
        let found = copy_in(&mut session, t, &l.message_id, may_hold_mail).await?;
        if !found {
            // The letter's bytes are read now, one letter at a time, and let go once appended.
            let Some(letter) = store.letter(l.id).await? else {
                continue; // gone meanwhile: nothing to file
            };
            let date = l.sent_at.format("\"%d-%b-%Y %H:%M:%S +0000\"").to_string();
            mailbox::timed_for(
                t,
                "APPEND",
                session.append(folder, Some("(\\Seen)"), Some(&date), &letter.raw),
            )
            .await?;
        }
        may_hold_mail = true;
        store.mark_filed(l.id, now).await?;
        tracing::debug!(outbox = l.id, already_there = found, "letter filed");
        filed += 1;
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), session.logout()).await;
    Ok(filed)
}
