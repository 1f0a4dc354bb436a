//! `caseclerk health`: what the daemon recorded, read from the database, for monitoring.
//!
//! Owns gathering [`Facts`] — the `mailbox_state` rows of the watched folder, the watcher, the
//! SMTP login, the access token, the credential's expiry and Sent Items filing,
//! the outbox's counts, the bank-holiday data's last date, the free space on the database's file
//! system — from a database opened read-only (no lock: it runs beside the daemon, as the
//! daemon's user, from Nagios/Icinga/Zabbix/SCOM or by hand), and printing the monitoring
//! plugin's answer. What counts as WARNING or CRITICAL is [`crate::core::health`]'s.
//!
//! Must not: write to the database, reach the mail servers (a broken login must not hide the
//! rest; `check --connect` is for that), or print addresses, names or subjects.

use crate::core::health::{self, Connection, Facts, Level, Thresholds};
use crate::shell::config::Config;
use crate::shell::mailbox::WATCH_HEALTH_KEY;
use crate::shell::oauth::{OAUTH2_EXPIRY_KEY, OAUTH2_HEALTH_KEY};
use crate::shell::outbox::SMTP_HEALTH_KEY;
use crate::shell::sentfolder::SENT_FOLDER_HEALTH_KEY;
use crate::shell::store::{MailboxState, Store, StoreError};
use chrono::{DateTime, Utc};
use std::path::Path;

/// Gather the facts at `now` from `store` (opened read-only) and the configuration; "recent"
/// means within `t.undelivered_window`, the window the rules judge by.
pub async fn gather(
    cfg: &Config,
    store: &Store,
    now: DateTime<Utc>,
    t: &Thresholds,
) -> Result<Facts, StoreError> {
    let outbox = store.outbox_health(now, now - t.undelivered_window).await?;
    let installed_at = crate::shell::firstrun::load(store)
        .await?
        .map(|r| r.started);
    Ok(Facts {
        now,
        installed_at,
        mailbox: store.mailbox_state(&cfg.imap.folder).await?.map(connection),
        watcher: store.mailbox_state(WATCH_HEALTH_KEY).await?.map(connection),
        smtp: store.mailbox_state(SMTP_HEALTH_KEY).await?.map(connection),
        token: store
            .mailbox_state(OAUTH2_HEALTH_KEY)
            .await?
            .map(connection),
        credential_expiry: store
            .mailbox_state(OAUTH2_EXPIRY_KEY)
            .await?
            .map(connection),
        sent_folder: store
            .mailbox_state(SENT_FOLDER_HEALTH_KEY)
            .await?
            .map(connection),
        web: store
            .mailbox_state(crate::shell::web::command::WEB_HEALTH_KEY)
            .await?
            .map(connection),
        notices: store
            .mailbox_state(crate::shell::store::NOTICE_HEALTH_KEY)
            .await?
            .map(connection),
        set_aside: store
            .mailbox_state(crate::shell::store::SET_ASIDE_HEALTH_KEY)
            .await?
            .map(connection),
        unfetched: store
            .mailbox_state(crate::shell::mailbox::UNFETCHED_HEALTH_KEY)
            .await?
            .map(connection),
        retention: store
            .mailbox_state(crate::shell::store::RETENTION_HEALTH_KEY)
            .await?
            .map(connection),
        pass: store
            .mailbox_state(crate::shell::store::PASS_HEALTH_KEY)
            .await?
            .map(connection),
        unprepared: store
            .mailbox_state(crate::shell::store::PREPARE_HEALTH_KEY)
            .await?
            .map(connection),
        pending_due: outbox.pending_due,
        oldest_pending_due: outbox.oldest_pending_due,
        retrying: outbox.retrying,
        undelivered_recent: outbox.undelivered_since,
        in_flight_since: outbox.in_flight_since,
        in_doubt_recent: outbox.in_doubt_since,
        undecided_since: outbox.undecided_since,
        last_sent_at: outbox.last_sent_at,
        holidays_until: cfg.calendar.coverage().1,
        disk_free: disk_free(&cfg.database),
        last_backup: store
            .meta(crate::shell::backup::LAST_BACKUP)
            .await?
            .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
            .map(|t| t.with_timezone(&Utc)),
        database_writable: Some(
            nix::unistd::access(&cfg.database, nix::unistd::AccessFlags::W_OK).is_ok(),
        ),
    })
}

fn connection(s: MailboxState) -> Connection {
    Connection {
        last_ok_at: s.last_ok_at,
        last_error_at: s.last_error_at,
        failures: s.failures,
        last_error: s.last_error,
    }
}

/// Free bytes for an unprivileged writer on the file system holding `database` (its folder, so
/// a database not yet created still measures), or `None` when it cannot be measured.
pub fn disk_free(database: &Path) -> Option<u64> {
    let dir = database.parent().filter(|p| !p.as_os_str().is_empty())?;
    let s = nix::sys::statvfs::statvfs(dir).ok()?;
    Some(s.blocks_available().saturating_mul(s.fragment_size()))
}

/// The plugin's answer for a configuration and database that could be read: its text and level.
pub async fn check(
    cfg: &Config,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<(String, Level), StoreError> {
    let thresholds = Thresholds::for_intervals(cfg.imap.fetch_interval, cfg.imap.check_interval);
    let facts = gather(cfg, store, now, &thresholds).await?;
    let findings = health::assess(&facts, &thresholds);
    Ok((
        health::plugin_line(&facts, &findings),
        health::level(&findings),
    ))
}

/// The plugin's answer when the facts could not be read at all (UNKNOWN): what failed, and what
/// to do.
pub fn unknown(what: &str) -> String {
    format!(
        "CASECLERK UNKNOWN - {what} (run `caseclerk health` as the daemon's user, with the daemon's \
         configuration)"
    )
}
