//! Is caseclerk healthy? Facts read from the database → findings at monitoring levels.
//!
//! Owns the rules that turn what the daemon has durably recorded (when it last read the
//! mailbox, whether the mail server refused its login, letters overdue or undelivered, how far
//! the bank-holiday data reaches, space left beside the database) into [`Finding`]s at the
//! monitoring-plugin levels Nagios, Icinga, Zabbix and SCOM understand (0 OK, 1 WARNING,
//! 2 CRITICAL, 3 UNKNOWN), and the one line such a plugin prints ([`plugin_line`]). The health
//! check must not depend on mail: the daemon's own alarms (the digest) travel through the same
//! login that may be broken, so `caseclerk health` reads the database and nothing else.
//!
//! The rules, in order (each a named [`Rule`], so a finding says which rule raised it):
//! 1. `mailbox_never_read` — no successful fetch is recorded: WARNING (a daemon that has just
//!    been installed), CRITICAL once the database is older than [`Thresholds::fetch_critical`].
//! 2. `mailbox_failing` — the last attempt to read the mailbox failed after the last success:
//!    WARNING, CRITICAL when the last success is older than `fetch_critical`.
//! 3. `mailbox_stale` — the last successful fetch is older than `fetch_warning` (WARNING) or
//!    `fetch_critical` (CRITICAL): the daemon is stopped, or its mailbox watcher is stuck.
//! 4. `watcher_failing` — the mailbox watcher (IDLE/NOOP every minute, `<imap-watch>`) cannot
//!    reach the server: WARNING while its last proof of life is recent, CRITICAL once it is
//!    older than `watch_critical`; a watcher that has gone quiet without an error (the daemon
//!    hung) is `watcher_silent`: WARNING after `watch_warning`, CRITICAL after `watch_critical`.
//!    No finding when the row is absent (a `tick` from cron has no watcher).
//!    `messages_unfetched` — the server lists messages in the folder that it did not hand over
//!    when asked: CRITICAL (one may be a referral; they are asked for at every pass).
//! 5. `pass_failing` — the daemon's passes fail after the fetch (nothing is planned, queued or
//!    sent): WARNING, CRITICAL once no pass has worked for 10 minutes (or none ever has).
//!    `smtp_login_refused` — the mail server refuses our login: CRITICAL (every letter is held);
//!    `smtp_certificate_untrusted` — its TLS certificate does not verify: CRITICAL (held too);
//!    `smtp_sender_refused` — it will not send as our address: CRITICAL (held too).
//!    `smtp_mailbox_refused` — it will not send from the shared mailbox now (full, over its
//!    daily limit, throttled): CRITICAL (held too). `smtp_connection_refused` — it refuses the
//!    connection itself before any letter (this host blocked): CRITICAL (held too).
//!    `token_failing` — no access token could be had (Microsoft 365, `<oauth2>`): WARNING, then
//!    CRITICAL after [`Thresholds::token_failures`] passes in a row (the old token runs out
//!    within the hour); `credential_expiring` — the client secret or certificate expires within
//!    30 days (WARNING) or has expired (CRITICAL); `sent_folder_failing` — letters go but cannot
//!    be filed in Sent Items (WARNING: the business unit does not see them in Outlook);
//!    `web_failing` — the web workspace could not start beside the daemon (WARNING: mail and
//!    letters go on).
//! 6. `letter_in_flight` — a letter handed to the server whose outcome was not recorded for
//!    over `flight_warning` (WARNING) / `flight_critical` (CRITICAL): the outbox has stopped on
//!    a database that will not take its records, or a daemon died mid-send and is not running,
//!    or — with `sent_copy = "server"` — a letter in doubt waits for its sent folder to be
//!    searchable (it waits an hour at most, so WARNING then CRITICAL before it is re-sent).
//!    `letters_in_doubt` — letters re-sent after a crash in the last 7 days (WARNING: each may
//!    have reached its recipient twice; a letter settled by the server's copy is not re-sent
//!    and not counted here). `messages_undecided` — mail fetched and not yet
//!    decided for over 15 min (WARNING) or an hour (CRITICAL): processing is stuck.
//!    `messages_set_aside` — a message was set aside unread in the last 7 days because caseclerk
//!    stopped twice while deciding it ([`crate::core::deciding`]): WARNING (it waits on the
//!    Triage page; the supplier needs the log).
//! 7. `letters_overdue` — letters that should have gone by now and have not: WARNING after
//!    `letter_warning`, CRITICAL after `letter_critical` (statutory letters are late).
//!    `letters_unprepared` — letters that fell due could not be prepared at the last pass (a
//!    template that will not render, a file in `[attachments]` gone or unreadable): CRITICAL at
//!    once — they are not in the outbox, so no other rule sees them, and they stay unsent until
//!    a person fixes what the finding names. `notices_unprepared` — a letter made once (a notice
//!    in answer to mail or to a count of votes, the digest, the tracker report) could not be
//!    prepared in the last 24 hours: WARNING (nothing makes it again; a person sends it).
//! 8. `letters_undelivered` — letters refused or given up on recently (the business unit must
//!    act on each): WARNING.
//! 9. `holiday_data_ending` — the bank-holiday data ends within `holidays_warning`: WARNING;
//!    already ended: CRITICAL (working days can no longer be counted).
//! 10. `disk_low` — free space beside the database under `disk_warning` / `disk_critical` bytes;
//!     `database_read_only` — the database file cannot be written by this user (run as the
//!     daemon's): CRITICAL, nothing can be recorded.
//! 11. `backup_stale` — once `caseclerk backup` has recorded a checked copy, the last one is
//!     over two days old: WARNING (the backup job has stopped).
//!
//! Levels combine by taking the worst; UNKNOWN is only for a check that could not read its facts
//! (the shell reports that), never mixed with rule findings.
//!
//! Must not: read anything itself (the shell gathers [`Facts`]); print addresses, names or
//! subjects — a finding names counts, instants and ids only.

use crate::core::calendar::{self, short_date, short_instant};
use crate::core::views::SmtpHold;
use chrono::{DateTime, Duration, NaiveDate, Utc};

/// A monitoring level; its exit code is the monitoring-plugin convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Ok,
    Warning,
    Critical,
    /// The check could not read its facts (no database, no configuration).
    Unknown,
}

impl Level {
    /// CRITICAL when `critical`, else WARNING: the two levels a finding has.
    pub fn critical_if(critical: bool) -> Level {
        if critical {
            Level::Critical
        } else {
            Level::Warning
        }
    }

    /// 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    pub fn exit_code(self) -> u8 {
        match self {
            Level::Ok => 0,
            Level::Warning => 1,
            Level::Critical => 2,
            Level::Unknown => 3,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "OK",
            Level::Warning => "WARNING",
            Level::Critical => "CRITICAL",
            Level::Unknown => "UNKNOWN",
        }
    }
}

/// The rules, by name (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    MailboxNeverRead,
    MailboxFailing,
    MailboxStale,
    WatcherFailing,
    MessagesUnfetched,
    WatcherSilent,
    PassFailing,
    SmtpLoginRefused,
    SmtpCertificateNotTrusted,
    SmtpSenderRefused,
    SmtpMailboxRefused,
    SmtpConnectionRefused,
    TokenFailing,
    CredentialExpiring,
    SentFolderFailing,
    WebFailing,
    LetterInFlight,
    LettersInDoubt,
    MessagesUndecided,
    MessagesSetAside,
    LettersOverdue,
    LettersUnprepared,
    NoticesUnprepared,
    LettersUndelivered,
    RetentionFailing,
    HolidayDataEnding,
    DiskLow,
    DatabaseReadOnly,
    BackupStale,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::MailboxNeverRead => "mailbox_never_read",
            Rule::MailboxFailing => "mailbox_failing",
            Rule::MailboxStale => "mailbox_stale",
            Rule::WatcherFailing => "watcher_failing",
            Rule::MessagesUnfetched => "messages_unfetched",
            Rule::WatcherSilent => "watcher_silent",
            Rule::PassFailing => "pass_failing",
            Rule::SmtpLoginRefused => "smtp_login_refused",
            Rule::SmtpCertificateNotTrusted => "smtp_certificate_untrusted",
            Rule::SmtpSenderRefused => "smtp_sender_refused",
            Rule::SmtpMailboxRefused => "smtp_mailbox_refused",
            Rule::SmtpConnectionRefused => "smtp_connection_refused",
            Rule::TokenFailing => "token_failing",
            Rule::CredentialExpiring => "credential_expiring",
            Rule::SentFolderFailing => "sent_folder_failing",
            Rule::WebFailing => "web_failing",
            Rule::LetterInFlight => "letter_in_flight",
            Rule::LettersInDoubt => "letters_in_doubt",
            Rule::MessagesUndecided => "messages_undecided",
            Rule::MessagesSetAside => "messages_set_aside",
            Rule::LettersOverdue => "letters_overdue",
            Rule::LettersUnprepared => "letters_unprepared",
            Rule::NoticesUnprepared => "notices_unprepared",
            Rule::LettersUndelivered => "letters_undelivered",
            Rule::RetentionFailing => "retention_failing",
            Rule::HolidayDataEnding => "holiday_data_ending",
            Rule::DiskLow => "disk_low",
            Rule::DatabaseReadOnly => "database_read_only",
            Rule::BackupStale => "backup_stale",
        }
    }
}

/// One connection's recorded state (a `mailbox_state` row).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Connection {
    pub last_ok_at: Option<DateTime<Utc>>,
    pub last_error_at: Option<DateTime<Utc>>,
    /// Failures since the last success.
    pub failures: i64,
    /// What the last failure said (read only where the row's writer keeps it free of personal
    /// data: the credential expiry warning, the outbox's [`SmtpHold::recorded`]).
    pub last_error: Option<String>,
}

impl Connection {
    /// Failing now: an error recorded and not cleared by a later success. The count says it,
    /// not the instants: every success clears it and every failure adds to it, while a clock set
    /// back (a machine that ran fast, corrected) leaves a success stamped after the failures that
    /// followed it — which compared by time would hide them.
    pub fn failing(&self) -> bool {
        self.failures > 0 && self.last_error_at.is_some()
    }
}

/// Everything the rules read, gathered by the shell from the database (read-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub now: DateTime<Utc>,
    /// When the database was created (its first migration), for "never read" on a new install.
    pub installed_at: Option<DateTime<Utc>>,
    /// The watched folder's row; `None` when it was never read.
    pub mailbox: Option<Connection>,
    /// The mailbox watcher's row (`<imap-watch>`); `None` when no daemon has watched.
    pub watcher: Option<Connection>,
    /// The SMTP login's row (`<smtp>`); `None` when nothing was ever sent or refused.
    pub smtp: Option<Connection>,
    /// The access token's row (`<oauth2>`), the credential expiry's (`<oauth2-expiry>`) and
    /// Sent Items filing's (`<sent-folder>`); `None` where not used.
    pub token: Option<Connection>,
    pub credential_expiry: Option<Connection>,
    pub sent_folder: Option<Connection>,
    /// The web workspace beside the daemon (`<web>`): failing while it could not start.
    pub web: Option<Connection>,
    /// Letters made once that could not be prepared (`<notices>`: never cleared; judged by the
    /// time of its last failure); `None` when none ever failed.
    pub notices: Option<Connection>,
    /// Messages set aside unread after caseclerk stopped twice deciding them (`<set-aside>`:
    /// the stored message's id only; never cleared, judged by the time of the last);
    /// `None` when it never happened.
    pub set_aside: Option<Connection>,
    /// Messages the server lists and did not hand over (`<imap-unfetched>`: what the fetch
    /// recorded, UIDs and the folder's name only); `None` when it never happened.
    pub unfetched: Option<Connection>,
    /// The daily retention run's row (`<retention>`); `None` when it never failed.
    pub retention: Option<Connection>,
    /// The passes' row (`<pass>`): failing when the last pass failed after its fetch; `None`
    /// when no pass has ever failed.
    pub pass: Option<Connection>,
    /// Due letters that could not be prepared (`<letters>`: what the pass recorded, free of
    /// personal data — a case reference, a step, a template or file name); `None` when none
    /// ever failed.
    pub unprepared: Option<Connection>,
    /// Letters pending whose time has come (`next_attempt_at <= now`) or which have been retried.
    pub pending_due: usize,
    /// The earliest due instant among letters still pending.
    pub oldest_pending_due: Option<DateTime<Utc>>,
    /// Letters failing and being retried.
    pub retrying: usize,
    /// Letters marked undelivered within `Thresholds::undelivered_window`.
    pub undelivered_recent: usize,
    /// Since when a letter has been with the server without its outcome recorded.
    pub in_flight_since: Option<DateTime<Utc>>,
    /// Letters re-sent in doubt after a crash within `undelivered_window`.
    pub in_doubt_recent: usize,
    /// Since when the oldest fetched message has waited to be decided.
    pub undecided_since: Option<DateTime<Utc>>,
    /// When the last letter went (shown, not judged: a quiet day sends nothing).
    pub last_sent_at: Option<DateTime<Utc>>,
    /// The last date the bank-holiday data covers.
    pub holidays_until: NaiveDate,
    /// Free bytes on the database's file system, when the shell could measure them.
    pub disk_free: Option<u64>,
    /// Whether this user may write the database file (`None`: not known).
    pub database_writable: Option<bool>,
    /// When `caseclerk backup` last wrote and checked a copy (`None`: it never has — backups
    /// may be taken otherwise, so that is no finding).
    pub last_backup: Option<DateTime<Utc>>,
}

/// When a fact becomes a warning or critical. [`Thresholds::default`] is what `health` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub fetch_warning: Duration,
    pub fetch_critical: Duration,
    pub watch_warning: Duration,
    pub watch_critical: Duration,
    pub token_failures: i64,
    pub flight_warning: Duration,
    pub flight_critical: Duration,
    pub undecided_warning: Duration,
    pub undecided_critical: Duration,
    pub letter_warning: Duration,
    pub letter_critical: Duration,
    pub undelivered_window: Duration,
    pub holidays_warning: Duration,
    pub disk_warning: u64,
    pub disk_critical: u64,
}

impl Default for Thresholds {
    /// The daemon reads the mailbox at least every five minutes (its safety-net fetch), so ten
    /// minutes without a fetch is already odd and thirty is an outage; its watcher proves the
    /// connection alive every minute, so three minutes of silence is late and five is dead; a letter an hour late is
    /// worth a look and four hours late (half a working day) is a statutory letter missed.
    fn default() -> Self {
        Thresholds {
            fetch_warning: Duration::minutes(10),
            fetch_critical: Duration::minutes(30),
            watch_warning: Duration::minutes(3),
            watch_critical: Duration::minutes(5),
            token_failures: 5,
            flight_warning: Duration::minutes(10),
            flight_critical: Duration::minutes(30),
            undecided_warning: Duration::minutes(15),
            undecided_critical: Duration::hours(1),
            letter_warning: Duration::hours(1),
            letter_critical: Duration::hours(4),
            undelivered_window: Duration::days(7),
            holidays_warning: Duration::days(183),
            disk_warning: 500 * 1024 * 1024,
            disk_critical: 50 * 1024 * 1024,
        }
    }
}

impl Thresholds {
    /// The default thresholds for a daemon that fetches at least every `fetch` and proves its
    /// watcher alive every `check` (`[mailbox] fetch_seconds`, `check_seconds`): the defaults,
    /// stretched for longer intervals so that a quiet mailbox read as configured is never
    /// raised. Staleness is late after two fetch intervals and an outage after three (never
    /// sooner than the defaults' 10 and 30 minutes); the watcher is late after three checks and
    /// silent after five (never sooner than 3 and 5 minutes). With the defaults (300 s, 60 s)
    /// these are [`Thresholds::default`].
    pub fn for_intervals(fetch: std::time::Duration, check: std::time::Duration) -> Thresholds {
        let d = Thresholds::default();
        let times = |interval: std::time::Duration, n: i64| {
            Duration::seconds(i64::try_from(interval.as_secs()).unwrap_or(i64::MAX / n) * n)
        };
        Thresholds {
            fetch_warning: d.fetch_warning.max(times(fetch, 2)),
            fetch_critical: d.fetch_critical.max(times(fetch, 3)),
            watch_warning: d.watch_warning.max(times(check, 3)),
            watch_critical: d.watch_critical.max(times(check, 5)),
            ..d
        }
    }
}

/// What one rule found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub level: Level,
    pub rule: Rule,
    /// One sentence for the operator: what is wrong and what to do. Counts and instants only.
    pub text: String,
}

/// Every finding at WARNING or worse, worst first; empty when all is well.
pub fn assess(f: &Facts, t: &Thresholds) -> Vec<Finding> {
    let mut out = Vec::new();
    mailbox(f, t, &mut out);
    watcher(f, t, &mut out);
    unfetched(f, &mut out);
    passes(f, &mut out);
    smtp(f, &mut out);
    microsoft(f, t, &mut out);
    stuck(f, t, &mut out);
    letters(f, t, &mut out);
    retention(f, &mut out);
    holidays(f, t, &mut out);
    disk(f, t, &mut out);
    web(f, &mut out);
    backup(f, &mut out);
    out.sort_by_key(|f| std::cmp::Reverse(f.level));
    out
}

/// The worst level among `findings` (OK when there are none).
pub fn level(findings: &[Finding]) -> Level {
    findings.iter().map(|f| f.level).max().unwrap_or(Level::Ok)
}

fn push(out: &mut Vec<Finding>, level: Level, rule: Rule, text: String) {
    out.push(Finding { level, rule, text });
}

fn age(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let minutes = (now - then).num_minutes().max(0);
    match minutes {
        0..=119 => format!("{minutes} min"),
        120..=2879 => format!("{} h", minutes / 60),
        _ => format!("{} days", minutes / 1440),
    }
}

fn mailbox(f: &Facts, t: &Thresholds, out: &mut Vec<Finding>) {
    let last_ok = f.mailbox.as_ref().and_then(|c| c.last_ok_at);
    let Some(ok) = last_ok else {
        let old = f.installed_at.is_some_and(|i| f.now - i > t.fetch_critical);
        let failing = f.mailbox.as_ref().is_some_and(Connection::failing);
        let level = Level::critical_if(old || failing);
        let why = if failing {
            "every attempt so far failed (see the daemon's log; `caseclerk check --connect` names the cause)"
        } else {
            "is the daemon running? (`systemctl status caseclerk`)"
        };
        push(
            out,
            level,
            Rule::MailboxNeverRead,
            format!("the mailbox has never been read: {why}"),
        );
        return;
    };
    let stale = f.now - ok;
    let critical = stale > t.fetch_critical;
    if f.mailbox.as_ref().is_some_and(Connection::failing) {
        let level = Level::critical_if(critical);
        push(
            out,
            level,
            Rule::MailboxFailing,
            format!(
                "reading the mailbox fails; last success {} ago ({}): see the daemon's log",
                age(f.now, ok),
                short_instant(ok)
            ),
        );
    } else if stale > t.fetch_warning {
        let level = Level::critical_if(critical);
        push(
            out,
            level,
            Rule::MailboxStale,
            format!(
                "the mailbox was last read {} ago ({}): is the daemon running?",
                age(f.now, ok),
                short_instant(ok)
            ),
        );
    }
}

fn watcher(f: &Facts, t: &Thresholds, out: &mut Vec<Finding>) {
    let Some(w) = &f.watcher else { return };
    let Some(alive) = w.last_ok_at.or(w.last_error_at) else {
        return;
    };
    let last_ok = w.last_ok_at.unwrap_or(alive);
    let quiet = f.now - last_ok;
    let level = Level::critical_if(quiet > t.watch_critical);
    if w.failing() {
        push(
            out,
            level,
            Rule::WatcherFailing,
            format!(
                "the mailbox watcher cannot reach the server ({} failed attempt(s)); last proof of \
                 life {} ago: new mail waits for the next fetch (see the daemon's log)",
                w.failures,
                age(f.now, last_ok)
            ),
        );
    } else if quiet > t.watch_warning {
        push(
            out,
            level,
            Rule::WatcherSilent,
            format!(
                "the mailbox watcher last proved its connection alive {} ago ({}): is the daemon \
                 running or hung?",
                age(f.now, last_ok),
                short_instant(last_ok)
            ),
        );
    }
}

fn unfetched(f: &Facts, out: &mut Vec<Finding>) {
    if let Some(u) = f.unfetched.as_ref().filter(|u| u.failing()) {
        push(
            out,
            Level::Critical,
            Rule::MessagesUnfetched,
            format!(
                "{} (last asked {}); caseclerk asks again at every pass — if it lasts, move them \
                 out of the folder and back in Outlook (they are then read as new mail)",
                u.last_error
                    .as_deref()
                    .unwrap_or("messages the mail server lists were not handed over"),
                u.last_error_at.map(short_instant).unwrap_or_default()
            ),
        );
    }
}

/// How long passes may fail in a row before it is CRITICAL: ten of them (a pass runs at least
/// every minute), past a blip and before a statutory letter's hour is lost.
const PASS_CRITICAL: Duration = Duration::minutes(10);

fn passes(f: &Facts, out: &mut Vec<Finding>) {
    let Some(p) = f.pass.as_ref().filter(|p| p.failing()) else {
        return;
    };
    let since_ok = p.last_ok_at.map(|ok| f.now - ok);
    let level = Level::critical_if(since_ok.is_none_or(|d| d > PASS_CRITICAL));
    push(
        out,
        level,
        Rule::PassFailing,
        format!(
            "the daemon's last {} pass(es) failed after reading the mail (the last at {}; the \
             last that worked {}): nothing is planned, queued or sent while they fail — see the \
             daemon's log",
            p.failures,
            p.last_error_at.map(short_instant).unwrap_or_default(),
            p.last_ok_at
                .map(|ok| format!("{} ago", age(f.now, ok)))
                .unwrap_or_else(|| "not recorded".into())
        ),
    );
}

/// How many passes in a row the retention run may fail before it is a finding: past a moment's
/// contention for the database, well inside the day it has to run in.
const RETENTION_FAILURES: i64 = 10;

fn retention(f: &Facts, out: &mut Vec<Finding>) {
    if let Some(r) = f
        .retention
        .as_ref()
        .filter(|r| r.failing() && r.failures >= RETENTION_FAILURES)
    {
        push(
            out,
            Level::Warning,
            Rule::RetentionFailing,
            format!(
                "the retention schedule could not run at the last {} pass(es) (the last at {}): \
                 content due to be erased is being kept — see the daemon's log",
                r.failures,
                r.last_error_at.map(short_instant).unwrap_or_default()
            ),
        );
    }
}

fn smtp(f: &Facts, out: &mut Vec<Finding>) {
    if let Some(c) = f.smtp.as_ref().filter(|c| c.failing()) {
        let since = c.last_error_at.map(short_instant).unwrap_or_default();
        let (rule, said) = match SmtpHold::of(c.last_error.as_deref()) {
            SmtpHold::LoginRefused => (
                Rule::SmtpLoginRefused,
                format!(
                    "the mail server refuses caseclerk's login (last refused {since}); every letter \
                     is held until it works: check the SMTP password or token"
                ),
            ),
            SmtpHold::CertificateNotTrusted => (
                Rule::SmtpCertificateNotTrusted,
                format!(
                    "the mail server's certificate is not trusted (last tried {since}); every \
                     letter is held until it is: set [smtp] ca_file to the CA that signs it, or \
                     renew the server's certificate (`caseclerk check --connect` says why)"
                ),
            ),
            SmtpHold::SenderRefused => (
                Rule::SmtpSenderRefused,
                format!(
                    "the mail server refuses to send as caseclerk's address (last refused \
                     {since}); every letter is held until it does: check the account's Send As \
                     permission on the shared mailbox and [mailbox] address"
                ),
            ),
            SmtpHold::MailboxRefused => (
                Rule::SmtpMailboxRefused,
                format!(
                    "the mail server will not send from the shared mailbox (last refused {since}): \
                     it is full (Exchange keeps every letter in Sent Items), over its daily \
                     recipient limit, or throttled; every letter is held until it sends: free \
                     space in the mailbox or wait for the limit"
                ),
            ),
            SmtpHold::ConnectionRefused => (
                Rule::SmtpConnectionRefused,
                format!(
                    "the mail server refuses caseclerk's connection before any letter (last \
                     refused {since}): this host's address is blocked or not on its relay's \
                     access list; every letter is held until it is let through: ask IT \
                     (`caseclerk check --connect` shows the refusal)"
                ),
            ),
        };
        push(out, Level::Critical, rule, said);
    }
}

fn microsoft(f: &Facts, t: &Thresholds, out: &mut Vec<Finding>) {
    if let Some(c) = f.token.as_ref().filter(|c| c.failing()) {
        let level = Level::critical_if(c.failures >= t.token_failures);
        push(
            out,
            level,
            Rule::TokenFailing,
            format!(
                "no access token for {} pass(es) in a row: sign-in will fail when the last token \
                 expires; `caseclerk check --connect` names what is wrong (tenant, client, secret, \
                 certificate or permission)",
                c.failures
            ),
        );
    }
    if let Some(c) = f.credential_expiry.as_ref().filter(|c| c.failing()) {
        let said = c.last_error.clone().unwrap_or_default();
        let level = Level::critical_if(said.contains("expired on"));
        push(out, level, Rule::CredentialExpiring, said);
    }
    if f.sent_folder.as_ref().is_some_and(Connection::failing) {
        push(
            out,
            Level::Warning,
            Rule::SentFolderFailing,
            "letters are sent but cannot be filed in the sent folder (see the daemon's log); \
             they are filed once it works again"
                .to_string(),
        );
    }
}

fn web(f: &Facts, out: &mut Vec<Finding>) {
    if f.web.as_ref().is_some_and(Connection::failing) {
        push(
            out,
            Level::Warning,
            Rule::WebFailing,
            "the web workspace could not start beside the daemon (its [web] listen address taken, \
             or its certificate or key unreadable: see the daemon's log); mail is read and letters \
             go as usual, and the next start tries again"
                .to_string(),
        );
    }
}

fn stuck(f: &Facts, t: &Thresholds, out: &mut Vec<Finding>) {
    if let Some((level, since)) = aged(
        f.now,
        f.in_flight_since,
        t.flight_warning,
        t.flight_critical,
    ) {
        let text = format!(
            "a letter handed to the mail server {} ago has no recorded outcome: the outbox is \
             stopped (is the disk full or the database read-only?), the daemon died while \
             sending, or (sent_copy = \"server\") the letter is in doubt and its server copy \
             cannot be looked up (can the daemon read the sent folder?); it records or re-sends \
             it by itself once it can",
            age(f.now, since)
        );
        push(out, level, Rule::LetterInFlight, text);
    }
    if f.in_doubt_recent > 0 {
        push(
            out,
            Level::Warning,
            Rule::LettersInDoubt,
            format!(
                "{} letter(s) re-sent after a crash in the last {} days may have reached their \
                 recipients twice (`caseclerk case` lists them)",
                f.in_doubt_recent,
                t.undelivered_window.num_days()
            ),
        );
    }
    if let Some((level, since)) = aged(
        f.now,
        f.undecided_since,
        t.undecided_warning,
        t.undecided_critical,
    ) {
        let text = format!(
            "mail fetched {} ago is still undecided: processing is stuck (see the log)",
            age(f.now, since)
        );
        push(out, level, Rule::MessagesUndecided, text);
    }
    if let Some(c) = f.set_aside.as_ref().filter(|c| c.failures > 0)
        && let Some(at) = c
            .last_error_at
            .filter(|at| f.now - *at <= t.undelivered_window)
    {
        push(
            out,
            Level::Warning,
            Rule::MessagesSetAside,
            format!(
                "{} ({}; {} in all): caseclerk stopped twice while deciding it, so it waits on                  the Triage page for a person while the rest goes on; send the daemon's log of                  that time to the supplier",
                c.last_error.as_deref().unwrap_or("a message was set aside"),
                short_instant(at),
                c.failures
            ),
        );
    }
}

/// The level of something waiting since `since`: none within `warning`, WARNING, then CRITICAL
/// after `critical`.
fn aged(
    now: DateTime<Utc>,
    since: Option<DateTime<Utc>>,
    warning: Duration,
    critical: Duration,
) -> Option<(Level, DateTime<Utc>)> {
    let since = since?;
    let long = now - since;
    (long > warning).then(|| (Level::critical_if(long > critical), since))
}

/// How long a notice that could not be prepared is spoken of: a day, so the next digest and
/// every monitoring round until then see it (nothing makes it again, so nothing clears it).
pub const NOTICE_SHOWN_FOR: Duration = Duration::hours(24);

fn letters(f: &Facts, t: &Thresholds, out: &mut Vec<Finding>) {
    if let Some(c) = f.notices.as_ref().filter(|c| c.failures > 0)
        && let Some(at) = c.last_error_at.filter(|at| f.now - *at <= NOTICE_SHOWN_FOR)
    {
        push(
            out,
            Level::Warning,
            Rule::NoticesUnprepared,
            format!(
                "{} ({}); a letter made once is not made again: send what it should have said \
                 by hand, and fix what it names",
                c.last_error
                    .as_deref()
                    .unwrap_or("a letter could not be prepared"),
                short_instant(at)
            ),
        );
    }
    if let Some(c) = f.unprepared.as_ref().filter(|c| c.failing()) {
        push(
            out,
            Level::Critical,
            Rule::LettersUnprepared,
            format!(
                "{} (last tried {}); such letters are not sent until it is fixed, and are tried \
                 again at every pass",
                c.last_error
                    .as_deref()
                    .unwrap_or("letters could not be prepared"),
                c.last_error_at.map(short_instant).unwrap_or_default()
            ),
        );
    }
    if let Some((level, due)) = aged(
        f.now,
        f.oldest_pending_due,
        t.letter_warning,
        t.letter_critical,
    ) {
        let text = format!(
            "{} letter(s) due and not sent ({} retrying); the oldest was due {} ago ({})",
            f.pending_due,
            f.retrying,
            age(f.now, due),
            short_instant(due)
        );
        push(out, level, Rule::LettersOverdue, text);
    }
    if f.undelivered_recent > 0 {
        push(
            out,
            Level::Warning,
            Rule::LettersUndelivered,
            format!(
                "{} letter(s) undelivered in the last {} days: the digest lists them; resend or \
                 correct the address (`caseclerk resend`)",
                f.undelivered_recent,
                t.undelivered_window.num_days()
            ),
        );
    }
}

fn holidays(f: &Facts, t: &Thresholds, out: &mut Vec<Finding>) {
    out.extend(holiday_data(f.holidays_until, f.now, t));
}

/// Rule `holiday_data_ending` on its own, for `caseclerk check` and the digest as well as
/// `health`: the bank-holiday data that ends on `until` is judged at `now` with
/// [`Thresholds::holidays_warning`] (183 days, six months): WARNING from that many days before
/// its last date, CRITICAL once it has ended; `None` before the warning starts.
pub fn holiday_data(until: NaiveDate, now: DateTime<Utc>, t: &Thresholds) -> Option<Finding> {
    let today = calendar::london_date(now);
    let left = until - today;
    let fix = "update data/bank-holidays.json (or the configured holidays file) from GOV.UK's bank-holidays.json";
    let (level, text) = if left < Duration::zero() {
        (
            Level::Critical,
            format!(
                "the bank-holiday data ended on {}: working days cannot be counted; {fix}",
                short_date(until)
            ),
        )
    } else if left <= t.holidays_warning {
        (
            Level::Warning,
            format!("the bank-holiday data ends on {}; {fix}", short_date(until)),
        )
    } else {
        return None;
    };
    Some(Finding {
        level,
        rule: Rule::HolidayDataEnding,
        text,
    })
}

/// How old the last checked backup may be: a daily backup job that missed a day is worth a look.
const BACKUP_WARNING: Duration = Duration::hours(49);

fn backup(f: &Facts, out: &mut Vec<Finding>) {
    if let Some(at) = f.last_backup.filter(|at| f.now - *at > BACKUP_WARNING) {
        push(
            out,
            Level::Warning,
            Rule::BackupStale,
            format!(
                "the last checked backup (`caseclerk backup`) was taken {} ago ({}): is the \
                 backup job still running?",
                age(f.now, at),
                short_instant(at)
            ),
        );
    }
}

fn disk(f: &Facts, t: &Thresholds, out: &mut Vec<Finding>) {
    if f.database_writable == Some(false) {
        push(
            out,
            Level::Critical,
            Rule::DatabaseReadOnly,
            "the database cannot be written by this user: nothing can be recorded (check its \
             owner and mode, the file system's mount, and that health runs as the daemon's user)"
                .to_string(),
        );
    }
    let Some(free) = f.disk_free else { return };
    let level = if free < t.disk_critical {
        Level::Critical
    } else if free < t.disk_warning {
        Level::Warning
    } else {
        return;
    };
    push(
        out,
        level,
        Rule::DiskLow,
        format!(
            "{} MB free beside the database: letters cannot be recorded on a full disk",
            free / (1024 * 1024)
        ),
    );
}

/// The monitoring plugin's output: the first line `CASECLERK <LEVEL> - <summary> | <perfdata>`,
/// then one line per finding. Perfdata are numbers only (seconds since the last fetch and the
/// last letter sent, letters due, retrying, undelivered).
pub fn plugin_line(f: &Facts, findings: &[Finding]) -> String {
    let level = level(findings);
    let summary = match findings.first() {
        None => "mailbox read, letters going".to_string(),
        Some(first) if findings.len() == 1 => first.text.clone(),
        Some(first) => format!("{} (and {} more)", first.text, findings.len() - 1),
    };
    let last_fetch = f
        .mailbox
        .as_ref()
        .and_then(|c| c.last_ok_at)
        .map(|ok| format!("last_fetch_age={}s;", (f.now - ok).num_seconds().max(0)))
        .unwrap_or_default();
    let last_send = f
        .last_sent_at
        .map(|t| format!("last_send_age={}s;", (f.now - t).num_seconds().max(0)))
        .unwrap_or_default();
    let mut text = format!(
        "CASECLERK {} - {summary} | {last_fetch}{last_send}letters_due={} retrying={} undelivered_7d={}",
        level.as_str(),
        f.pending_due,
        f.retrying,
        f.undelivered_recent
    );
    for finding in findings {
        text.push_str(&format!(
            "\n{}: {} [{}]",
            finding.level.as_str(),
            finding.text,
            finding.rule.name()
        ));
    }
    text
}

#[cfg(test)]
mod tests;
