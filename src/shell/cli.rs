//! The command line: `run`, `tick`, `cases`, `case`, `timeline`, `agencies`, `decide`, `triage`,
//! `digest`, `export`, `check`, `demo`, `verify`, `export-case`.
//!
//! Owns parsing arguments, installing logging ([`crate::shell::logging`]), choosing the clock
//! (`--now` gives a fixed one), and turning errors into one clear message and an exit code:
//! 0 done, 1 something failed while working, 2 bad configuration or arguments.
//!
//! Must not: contain business rules; every command is a thin call into the library.

use crate::core::calendar;
use crate::core::timeline;
use crate::core::views::SmtpHold;
use crate::shell::clock::{FixedClock, SharedClock, SystemClock};
use crate::shell::config::{self, Needs};
use crate::shell::engine::{self, Engine};
use crate::shell::mailbox::ExistingMail;
use crate::shell::operator;
use crate::shell::progress::Progress;
use crate::shell::store::Store;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

/// The exit codes, in `--help` and the man page.
const EXIT_CODES: &str = "Exit codes:\n  \
    0  done\n  \
    1  something failed while working (e.g. the mailbox could not be read)\n  \
    2  bad configuration, or a command that makes no sense (the reason is printed)\n\n\
    `caseclerk health` exits as a monitoring plugin: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n\
    `caseclerk verify` exits 4 when the history fails its check (an event changed or missing).";

#[derive(Parser, Debug)]
#[command(
    name = "caseclerk",
    version,
    about = "The clerical half of a safeguarding partnership's rapid reviews, run from its shared mailbox",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The configuration file [env: CASECLERK_CONFIG] [default: /etc/caseclerk/caseclerk.toml, or
    /// config/example.toml in the source tree]
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// How log lines are written to stderr: text (a terminal's, plain, or journald's with
    /// priorities and no second timestamp, detected) or json (one object per line).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Watch the mailbox (IMAP IDLE) and send letters as they fall due, until stopped.
    Run {
        /// Process mail already in the folder the first time (default: leave it for people).
        #[arg(long)]
        process_existing: bool,
        /// With --process-existing: only mail received (IMAP INTERNALDATE, London date) on or
        /// after this date, e.g. 2026-11-01; older mail is left for people.
        #[arg(long, requires = "process_existing")]
        since: Option<String>,
    },
    /// One pass at one instant: fetch new mail, decide, send what is due; then exit.
    Tick {
        /// The instant to act at, RFC 3339 (e.g. 2027-01-05T09:30:00Z); default: now.
        #[arg(long)]
        now: Option<String>,
        /// Process mail already in the folder the first time (default: leave it for people).
        #[arg(long)]
        process_existing: bool,
        /// With --process-existing: only mail received (IMAP INTERNALDATE, London date) on or
        /// after this date, e.g. 2026-11-01; older mail is left for people.
        #[arg(long, requires = "process_existing")]
        since: Option<String>,
        /// Print what the pass would open and send (references, letters, dates; no addresses)
        /// without writing to the database or sending anything.
        #[arg(long)]
        dry_run: bool,
    },
    /// Monitoring: is the daemon reading mail and sending letters? One plugin line (Nagios,
    /// Icinga, Zabbix, SCOM) from the database alone; exit 0 OK, 1 WARNING, 2 CRITICAL,
    /// 3 UNKNOWN. Run it as the daemon's user.
    Health {
        /// Judge as of this instant (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Retention and legal hold: `retention [--dry-run]`, `hold`, `release`.
    #[command(flatten)]
    Retention(RetentionCommand),
    /// The web workspace: `serve`, `user add | disable | list | signins`.
    #[command(flatten)]
    Web(crate::shell::web::command::WebCommand),
    /// Copy the database into a new file while the daemon runs: one consistent snapshot, checked,
    /// readable by you only. Restore it with `caseclerk restore`.
    Backup {
        /// The new backup file (never overwritten).
        file: PathBuf,
        /// Encrypt the backup with `age` to this public key (age1…; repeat for several): only
        /// the matching private key opens it (`caseclerk restore --age-identity`, or
        /// `age -d -i key.txt`). Needs the `age` command.
        #[arg(long = "age-recipient", value_name = "AGE1…")]
        age_recipients: Vec<String>,
    },
    /// Put a backup in place of the database (the daemon stopped first); the backup is checked
    /// before anything is replaced.
    Restore {
        /// The backup file made by `caseclerk backup`.
        file: PathBuf,
        /// The `age` private key file that opens an encrypted backup (made with --age-recipient).
        #[arg(long = "age-identity", value_name = "KEY_FILE")]
        age_identity: Option<PathBuf>,
    },
    /// Check the tamper-evident history: every event's hash and its link to the one before, and
    /// every recorded chain head. Prints OK with the counts and the head's hash, or names the
    /// first broken link (event, case reference, what is wrong) and exits 4. Read-only: works on
    /// a backup or a read-only copy.
    Verify {
        /// Also check a head kept outside the database — the "History check" line of a digest,
        /// or a logged chain head — given as EVENT:SHA256 (repeatable).
        #[arg(long = "head", value_name = "EVENT:SHA256")]
        heads: Vec<String>,
    },
    /// Write everything held about one case into a new folder, for a subject access or disclosure
    /// decision: every message linked to it (as received, attachments extracted), every letter
    /// (the bytes sent), its history with hashes, its particulars, and a README with a SHA-256 of
    /// each file. Readable by you only; never overwrites.
    ExportCase {
        /// The case reference, e.g. RR-2026-0001.
        reference: String,
        /// The new folder to write (must not exist).
        dir: PathBuf,
    },
    /// List the cases with their working-day numbers.
    Cases {
        /// Count day numbers at this instant (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Show one case: its history, agencies, letters and what falls due next.
    Case {
        /// The case reference, e.g. RR-2026-0001.
        reference: String,
        /// Show what is due as of this instant (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Print the planned schedule of a process for a referral received at a given time.
    Timeline {
        /// A process id (config/processes/<id>.toml beside the config) or a path to a process file.
        #[arg(long)]
        process: String,
        /// When the referral arrived, RFC 3339 (e.g. 2026-12-22T10:15:00Z).
        #[arg(long)]
        received: String,
    },
    /// Add or remove agencies involved in a case.
    Agencies {
        #[command(subcommand)]
        action: AgenciesAction,
    },
    /// Record a decision taken outside the mailbox (in a meeting, by phone).
    Decide {
        /// The case reference, e.g. RR-2026-0001.
        case: String,
        /// The decision's id in the process file (e.g. screening, sign_off).
        decision: String,
        /// One of the decision's outcomes (e.g. meets, nfa, single_agency, query).
        outcome: String,
        /// Why, for the case history.
        #[arg(long)]
        reason: String,
        /// Correct a decision already taken.
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        who: Who,
    },
    /// Record the planned publication date of a case's LCSPR report.
    Publication {
        /// The case reference.
        case: String,
        /// The planned publication date, YYYY-MM-DD.
        date: String,
        /// Why, for the case history.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Close a case: nothing more is planned or sent for it.
    Close {
        case: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Reopen a closed case.
    Reopen {
        case: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Attach a message from the triage list to a case (as a note, or as an agency's return).
    Attach {
        case: String,
        /// The stored message id (from `caseclerk triage`).
        message: i64,
        /// The message is this agency's return.
        #[arg(long, conflicts_with = "nil_return")]
        r#return: Option<String>,
        /// The message is this agency's nil return.
        #[arg(long)]
        nil_return: Option<String>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Confirm a held reply as a member's vote, with the outcome you read from it.
    Confirm {
        case: String,
        /// The held reply's stored message id (from `caseclerk case`).
        message: i64,
        /// The outcome it votes for.
        outcome: String,
        /// The decision it is a vote on, for a reply held naming none (its reason in `caseclerk
        /// case` says which it could be).
        #[arg(long)]
        decision: Option<String>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Dismiss a held reply: it counts as no vote (too late, overtaken by the member's later
    /// answer, from before a reopening, or no vote at all) and leaves the Held list.
    Dismiss {
        case: String,
        /// The held reply's stored message id (from `caseclerk case`).
        message: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Send a letter again, to its recipient or another address.
    Resend {
        case: String,
        /// The letter's id (from `caseclerk case`).
        letter: i64,
        /// Another address to send it to.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Move (adjourn or extend) a step, a return deadline, a decision, a deadline or the meeting.
    #[command(alias = "extend", alias = "adjourn")]
    Reschedule {
        case: String,
        /// step:<id>, return_by:<agency request id>, decision:<id>, deadline:<id> or meeting.
        what: String,
        /// The new time: RFC 3339, or "YYYY-MM-DD HH:MM" London time, or YYYY-MM-DD (at the
        /// process's default hour).
        to: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Cancel the case's meeting: everyone who was sent the invitation is sent a cancellation.
    CancelMeeting {
        case: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Name the person who leads a case's review, for the tracker's "Reviewer" column.
    SetReviewer {
        case: String,
        /// The reviewer's name as the tracker shows it, e.g. "Jo Bloggs (independent reviewer)".
        name: String,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Show a case's particulars read from the referral (child, dates, type, agencies, borough,
    /// referrer's agency) with where each came from; with --confirm or --set, check them.
    Particulars {
        case: String,
        /// Confirm particulars as read: field ids separated by commas, or `all`.
        #[arg(long, value_delimiter = ',')]
        confirm: Vec<String>,
        /// Correct (or give) a particular: `field=value`, e.g. `date_of_birth=2019-03-12`.
        #[arg(long = "set", value_name = "FIELD=VALUE")]
        set: Vec<String>,
        /// Why (required with --confirm or --set).
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// List messages waiting for a person (unmatched, unreadable, secure-portal notices).
    Triage,
    /// Take a message off the triage list as not case business (a newsletter, a misdirected
    /// email): kept, on no case, with who and why; retention treats it as other mail.
    NotCaseBusiness {
        message: i64,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Open a case from a message in triage: a referral the daemon did not recognise (day 0 from
    /// when it reached the mailbox, as for any referral; its letters go on the next pass).
    OpenReferral {
        message: i64,
        /// The area the child lives in, when the message names none of the process's areas.
        #[arg(long)]
        area: Option<String>,
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Print the text of the business unit's daily digest as it would be sent at an instant.
    Digest {
        /// Build it as of this instant (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Write the tracker: one row per case (and, in XLSX, a sheet of agency returns).
    Export {
        /// xlsx or csv.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// Only cases received (day 0) on or after this date, e.g. 2026-04-01.
        #[arg(long)]
        since: Option<String>,
        /// Write to this file (default: standard output; an XLSX needs a file or a pipe).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Work out "next step" and "on time" as of this instant (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Check the configuration and process file and report every problem.
    Check {
        /// Also log in to every server once (access token or passwords, IMAP and the folder,
        /// SMTP without sending, the sent folder): one line each; exit 1 if any fails.
        #[arg(long)]
        connect: bool,
        /// Judge how far the bank-holiday data reaches as of this instant (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Measure ingest and classification against a throwaway local mail stack (numbers for the
    /// README; needs the same packages and root as the demo).
    #[command(hide = true)]
    Bench {
        /// How many messages (10 % with a 200 KB attachment).
        #[arg(long, default_value_t = 1000)]
        messages: usize,
        /// Instead: the peak memory of `caseclerk tick --process-existing` over a backlog of this
        /// many messages (the same mix), with the backlog's size as the reference.
        #[arg(long)]
        first_run: Option<usize>,
        /// With --first-run: this many first runs over the one backlog, each from an empty
        /// database with its own bare fetch just before it; each is printed, and their median.
        #[arg(long, default_value_t = 1)]
        repeat: usize,
        /// Instead (or as well as --first-run): the peak memory of `caseclerk run` when this many
        /// large referrals arrive at once, with its memory before them as the reference.
        #[arg(long)]
        burst: Option<usize>,
        /// The size of each --burst referral, in MB (0.03 for the scale bench's 30 KB referral).
        #[arg(long, default_value_t = 20.0)]
        burst_mb: f64,
        /// Measure this caseclerk binary instead of this one (--first-run, --burst).
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Instead: create this many cases through the real ingest path and time planning,
        /// digest, export and `case <ref>` after the first 1,000 and after the last.
        #[arg(long)]
        cases: Option<usize>,
        /// Instead: hand this many letters to the local Postfix with lettre's own transport (the
        /// reference) and with caseclerk's outbox client, and print letters a second for each.
        #[arg(long)]
        letters: Option<usize>,
        /// With --cases: the size of each referral in KB, its attached form most of it (the
        /// database's size per referral is read against this raw mail).
        #[arg(long, default_value_t = 3)]
        form_kb: usize,
    },
    /// Kill the daemon (`kill -9`) at random while it sends letters on a throwaway local mail
    /// stack, and count the letters lost and sent twice from the recipients' mailboxes (numbers
    /// for the README; needs the same packages and root as the demo).
    Chaos {
        /// How many kills.
        #[arg(long, default_value_t = 1000)]
        kills: usize,
        /// Seeds the random delays (the same seed, the same delays).
        #[arg(long, default_value_t = 11)]
        seed: u64,
        /// caseclerk files its own copy (`sent_copy = "caseclerk"`): a letter in doubt is sent
        /// again at once (the behaviour before the server's copy settled doubt), to compare.
        #[arg(long)]
        without_server_copy: bool,
    },
    /// Start the bundled local mail stack, run the daemon against it, send a sample referral and
    /// show the acknowledgement arriving.
    #[command(hide = true)]
    Demo {
        /// Exit after the acknowledgement arrives instead of running until Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Write the man pages (`caseclerk.1`, `caseclerk-<command>.1`) and shell completions (bash, zsh, fish) into a folder,
    /// generated from this command line's own definition (the package build runs it).
    #[command(hide = true)]
    Generate {
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

/// The tracker's file formats.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ExportFormat {
    Xlsx,
    Csv,
}

#[derive(Subcommand, Debug)]
enum AgenciesAction {
    /// Add agencies (directory ids, names or aliases) to a case; they are asked at once if the
    /// request day has passed.
    Add {
        case: String,
        #[arg(required = true)]
        agencies: Vec<String>,
        /// Why, for the case history.
        #[arg(long)]
        reason: Option<String>,
        #[command(flatten)]
        who: Who,
    },
    /// Remove an agency from a case: it is no longer asked or chased.
    Remove {
        case: String,
        agency: String,
        /// Why, for the case history.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Take a return out of the collation pack (the wrong child's, or the one a correction
    /// replaces); it stays filed on the case.
    Withdraw {
        case: String,
        /// The return's stored message id (from `caseclerk case`).
        message: i64,
        /// Why, for the case history.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
}

/// The retention commands (`shell::retention`), at the top level of the command line.
#[derive(clap::Subcommand, Debug)]
enum RetentionCommand {
    /// Erase what the retention schedule ([retention] in the configuration) says has been kept
    /// long enough, and record each erasure; the daemon does this once a day. Nothing of an open
    /// case or a case under legal hold is ever erased.
    Retention {
        /// List what would go (grouped by rule, with counts and bytes; ids and case references
        /// only) and erase nothing.
        #[arg(long)]
        dry_run: bool,
        /// Apply the schedule as of this instant (RFC 3339); default: now.
        #[arg(long)]
        now: Option<String>,
    },
    /// Place a legal hold on a case (an inquest, a trial, a subject access request): nothing of
    /// it is erased until it is released. Shown in `case`, the tracker and the digest.
    Hold {
        case: String,
        /// Why, for the case history.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
    /// Release a case's legal hold: the retention schedule applies to it again.
    Release {
        case: String,
        /// Why, for the case history.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        who: Who,
    },
}

/// Who is acting and when, for operator commands.
#[derive(clap::Args, Debug)]
struct Who {
    /// Your name for the case history (default: your login name).
    #[arg(long)]
    by: Option<String>,
    /// Record the change at this instant (RFC 3339); default: now.
    #[arg(long)]
    now: Option<String>,
}

/// Run the command line; the binary's whole `main`.
pub fn main() -> ExitCode {
    crate::shell::allocator::ensure_fixed_threshold();
    let cli = Cli::parse();
    crate::shell::logging::init(cli.log_format == LogFormat::Json);
    crate::shell::logging::withhold_panic_messages();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Work(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(1)
        }
        Err(Failure::Status(code)) => ExitCode::from(code),
    }
}

enum Failure {
    /// Bad configuration or arguments: exit 2.
    Usage(String),
    /// Something failed while working: exit 1.
    Work(String),
    /// Already reported on stdout; exit with this code (`health`'s monitoring levels).
    Status(u8),
}

fn work(e: impl std::fmt::Display) -> Failure {
    Failure::Work(e.to_string())
}

/// An operator command that makes no sense is a usage error (exit 2); a database failure is not.
fn refused(e: operator::OperatorError) -> Failure {
    match e {
        operator::OperatorError::Store(_) => Failure::Work(e.to_string()),
        _ => Failure::Usage(e.to_string()),
    }
}

fn parse_instant(flag: &str, s: &str) -> Result<DateTime<Utc>, Failure> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            Failure::Usage(format!(
                "{flag} `{s}` is not an RFC 3339 time like 2027-01-05T09:30:00Z ({e})"
            ))
        })
}

/// What every operator command needs: the configuration, the store, the instant and who acts.
struct Desk {
    cfg: config::Config,
    store: Store,
    now: DateTime<Utc>,
    actor: String,
}

async fn desk(cli_config: &Option<PathBuf>, who: &Who) -> Result<Desk, Failure> {
    let cfg = load(cli_config, Needs::NoSecrets)?;
    let store = Store::open(&cfg.database).await.map_err(work)?;
    Ok(Desk {
        now: clock(who.now.as_deref())?.now(),
        actor: operator::actor(who.by.as_deref()),
        cfg,
        store,
    })
}

/// RFC 3339, or "YYYY-MM-DD HH:MM" London time, or a date at the process's default hour.
fn parse_when(s: &str, default_at: chrono::NaiveTime) -> Result<DateTime<Utc>, Failure> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M") {
        return Ok(calendar::london_instant(t.date(), t.time()));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(calendar::london_instant(d, default_at));
    }
    Err(Failure::Usage(format!(
        "`{s}` is not a time: use 2027-01-05T14:00:00Z, \"2027-01-05 14:00\" (London) or 2027-01-05"
    )))
}

fn clock(now: Option<&str>) -> Result<SharedClock, Failure> {
    Ok(match now {
        Some(s) => Arc::new(FixedClock(parse_instant("--now", s)?)),
        None => Arc::new(SystemClock),
    })
}

fn load(cli_config: &Option<PathBuf>, needs: Needs) -> Result<config::Config, Failure> {
    let path = cli_config
        .clone()
        .unwrap_or_else(engine::default_config_path);
    config::load(&path, needs).map_err(|e| Failure::Usage(e.to_string()))
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    let config = &cli.config;
    match &cli.command {
        Command::Run {
            process_existing,
            since,
        } => run(config, existing_mail(*process_existing, since.as_deref())?).await,
        Command::Tick {
            now,
            process_existing,
            since,
            dry_run,
        } => {
            let existing = existing_mail(*process_existing, since.as_deref())?;
            if *dry_run {
                dry_run_tick(config, now.as_deref(), existing).await
            } else {
                tick(config, now.as_deref(), existing).await
            }
        }
        Command::Cases { now } => cases(config, now.as_deref()).await,
        Command::Case { reference, now } => case(config, reference, now.as_deref()).await,
        Command::Timeline { process, received } => print_timeline(config, process, received),
        Command::Agencies { action } => agencies(config, action).await,
        Command::Decide {
            case,
            decision,
            outcome,
            reason,
            replace,
            who,
        } => decide(config, case, decision, outcome, reason, *replace, who).await,
        Command::Publication {
            case,
            date,
            reason,
            who,
        } => publication(config, case, date, reason, who).await,
        Command::Close { case, reason, who } => set_status(config, case, true, reason, who).await,
        Command::Reopen { case, reason, who } => set_status(config, case, false, reason, who).await,
        Command::Attach {
            case,
            message,
            r#return,
            nil_return,
            reason,
            who,
        } => {
            let how = match (r#return, nil_return) {
                (Some(a), _) => operator::AttachAs::Return {
                    agency: a.clone(),
                    nil: false,
                },
                (None, Some(a)) => operator::AttachAs::Return {
                    agency: a.clone(),
                    nil: true,
                },
                (None, None) => operator::AttachAs::Note,
            };
            attach(config, case, *message, how, reason, who).await
        }
        Command::Confirm {
            case,
            message,
            outcome,
            decision,
            reason,
            who,
        } => confirm(config, case, *message, (decision, outcome), reason, who).await,
        c @ Command::Dismiss { .. } => dismiss(config, c).await,
        Command::Resend {
            case,
            letter,
            to,
            reason,
            who,
        } => resend(config, case, *letter, to.as_deref(), reason, who).await,
        Command::Reschedule {
            case,
            what,
            to,
            reason,
            who,
        } => reschedule(config, case, what, to, reason, who).await,
        c @ Command::CancelMeeting { .. } => cancel_meeting(config, c).await,
        c @ Command::SetReviewer { .. } => set_reviewer(config, c).await,
        c @ Command::Particulars { .. } => particulars(config, c).await,
        Command::Triage => triage(config).await,
        c @ (Command::NotCaseBusiness { .. } | Command::OpenReferral { .. }) => {
            triage_action(config, c).await
        }
        Command::Digest { now } => digest(config, now.as_deref()).await,
        Command::Health { now } => health(config, now.as_deref()).await,
        Command::Retention(c) => retention(config, c).await,
        Command::Web(c) => web(config, c).await,
        cmd @ (Command::Backup { .. }
        | Command::Restore { .. }
        | Command::Verify { .. }
        | Command::ExportCase { .. }) => data_protection(config, cmd).await,
        Command::Export {
            format,
            since,
            output,
            now,
        } => {
            export(
                config,
                *format,
                since.as_deref(),
                output.as_deref(),
                now.as_deref(),
            )
            .await
        }
        Command::Check { connect, now } => {
            check(config, now.as_deref())?;
            if *connect {
                check_connect(config).await?;
            }
            Ok(())
        }
        Command::Bench {
            messages,
            first_run,
            repeat,
            burst,
            burst_mb,
            binary,
            cases,
            letters,
            form_kb,
        } => {
            if let Some(n) = letters {
                return send_bench(config, *n).await;
            }
            let memory = ((*first_run, *repeat), *burst, *burst_mb, binary.clone());
            bench(config, *messages, memory, (*cases, *form_kb)).await
        }
        Command::Chaos {
            kills,
            seed,
            without_server_copy,
        } => chaos(*kills, *seed, !*without_server_copy).await,
        Command::Demo { once } => crate::dev::demo::run(config.clone(), *once)
            .await
            .map_err(work),
        Command::Generate { out } => generate(out),
    }
}

fn existing_mail(process_existing: bool, since: Option<&str>) -> Result<ExistingMail, Failure> {
    Ok(match (process_existing, since) {
        (false, _) => ExistingMail::Leave,
        (true, None) => ExistingMail::Process,
        (true, Some(s)) => ExistingMail::Since(
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| {
                Failure::Usage(format!("--since `{s}` is not a date like 2026-11-01"))
            })?,
        ),
    })
}

/// `caseclerk run`: the daemon, until stopped.
async fn run(config: &Option<PathBuf>, existing: ExistingMail) -> Result<(), Failure> {
    let cfg = load(config, Needs::Everything)?;
    let engine = Engine::open(cfg, Arc::new(SystemClock), existing)
        .await
        .map_err(work)?
        .with_progress(Progress::on_terminal());
    tracing::info!(process = %engine.cfg.process.id, "caseclerk running");
    let (cfg, store, clock) = (
        engine.cfg.clone(),
        engine.store.clone(),
        engine.clock.clone(),
    );
    crate::shell::web::command::beside_daemon(cfg, store, clock, engine.run(shutdown_signal()))
        .await
        .map_err(Failure::Work)
}

/// `caseclerk serve` and `caseclerk user …`: the web workspace ([`crate::shell::web::command`]).
async fn web(
    config: &Option<PathBuf>,
    command: &crate::shell::web::command::WebCommand,
) -> Result<(), Failure> {
    use crate::shell::web::command::{Outcome, run};
    let cfg = load(config, Needs::NoSecrets)?;
    run(cfg, clock(None)?, command, shutdown_signal())
        .await
        .map_err(|o| match o {
            Outcome::Usage(m) => Failure::Usage(m),
            Outcome::Work(m) => Failure::Work(m),
        })
}

/// `caseclerk tick`: one pass, and a line saying what it did.
async fn tick(
    config: &Option<PathBuf>,
    now: Option<&str>,
    existing: ExistingMail,
) -> Result<(), Failure> {
    let cfg = load(config, Needs::Everything)?;
    let engine = Engine::open(cfg, clock(now)?, existing)
        .await
        .map_err(work)?
        .with_progress(Progress::on_terminal());
    let ticked = engine.tick().await;
    engine.note_pass(ticked.is_err(), engine.clock.now()).await;
    let r = ticked.map_err(work)?;
    match r.fetch.as_ref() {
        Some(f) if f.first_run => println!(
            "first look at the mailbox: {} message(s) there, {} left for people",
            f.seen, f.left
        ),
        Some(_) if existing != ExistingMail::Leave => println!(
            "not the first look at the mailbox: --process-existing and --since change nothing now"
        ),
        _ => {}
    }
    println!(
        "fetched {} new, processed {}, opened {}, queued {}, sent {}, retrying {}, undelivered {}{}",
        r.fetch.as_ref().map_or(0, |f| f.stored),
        r.processed,
        if r.opened.is_empty() {
            "none".to_string()
        } else {
            r.opened.join(" ")
        },
        r.queued,
        r.sent.sent,
        r.sent.retrying,
        r.sent.undelivered,
        r.next_wake
            .map(|w| format!("; next due {}", calendar::short_instant(w)))
            .unwrap_or_default()
    );
    if let Some(e) = r.fetch_error {
        return Err(Failure::Work(format!("the mailbox could not be read: {e}")));
    }
    match r.sent.held {
        Some(SmtpHold::LoginRefused) => {
            let what = if engine.cfg.smtp.oauth2.is_some() {
                "the [oauth2] app registration (the log says which part) and the mailbox's permissions"
            } else {
                "the [smtp] user and password file"
            };
            return Err(Failure::Work(format!(
                "the mail server refused caseclerk's SMTP login: check {what}. No letter was marked \
                 undelivered; every due letter goes on the next pass that can log in"
            )));
        }
        Some(SmtpHold::CertificateNotTrusted) => {
            return Err(Failure::Work(
                "the SMTP server's certificate is not trusted, so caseclerk did not log in: set \
                 [smtp] ca_file to the certificate of the CA that signs it, or renew the server's \
                 certificate (`caseclerk check --connect` says why). No letter was marked \
                 undelivered; every due letter goes on the next pass that trusts the server"
                    .into(),
            ));
        }
        Some(SmtpHold::SenderRefused) => {
            return Err(Failure::Work(
                "the mail server refuses to send as caseclerk's address: check that the account \
                 caseclerk logs in as may send as the shared mailbox (Exchange Online: its Send As \
                 permission) and [mailbox] address. No letter was marked undelivered; every due \
                 letter goes on the next pass the server takes one"
                    .into(),
            ));
        }
        Some(SmtpHold::ConnectionRefused) => {
            return Err(Failure::Work(
                "the mail server refuses caseclerk's connection before any letter (at its \
                 greeting or EHLO: this host's address blocked, or not on its relay's access \
                 list): ask IT to let this host send through it (`caseclerk check --connect` \
                 shows the refusal). No letter was marked undelivered; every due letter goes on \
                 the next pass the server takes one"
                    .into(),
            ));
        }
        Some(SmtpHold::MailboxRefused) => {
            return Err(Failure::Work(
                "the mail server will not send from the shared mailbox now: it is full (Exchange \
                 keeps every letter in its Sent Items), over its daily recipient limit, or \
                 throttled for repeated errors. Free space in the mailbox or wait for the limit. \
                 No letter was marked undelivered; every due letter goes on the next pass the \
                 server takes one"
                    .into(),
            ));
        }
        None => {}
    }
    if r.unprepared > 0 {
        return Err(Failure::Work(format!(
            "{} letter(s) could not be prepared (the log says which and why; `caseclerk health` \
             names the first): a planned letter is tried again at every pass, a notice is not",
            r.unprepared
        )));
    }
    Ok(())
}

/// `caseclerk tick --dry-run`: the same pass against a throwaway copy of the database, sending
/// nothing ([`crate::shell::dryrun`]); prints the plan.
async fn dry_run_tick(
    config: &Option<PathBuf>,
    now: Option<&str>,
    existing: ExistingMail,
) -> Result<(), Failure> {
    let cfg = load(config, Needs::Everything)?;
    let plan = crate::shell::dryrun::run(cfg, clock(now)?, existing, Progress::on_terminal())
        .await
        .map_err(work)?;
    print!("{}", plan.render());
    if let Some(e) = &plan.report.fetch_error {
        return Err(Failure::Work(format!("the mailbox could not be read: {e}")));
    }
    Ok(())
}

/// `caseclerk cases`: one line per case with its working-day number.
async fn cases(config: &Option<PathBuf>, now: Option<&str>) -> Result<(), Failure> {
    let cfg = load(config, Needs::NoSecrets)?;
    let now = clock(now)?.now();
    let store = Store::open_read_only(&cfg.database).await.map_err(work)?;
    let cases = store.cases().await.map_err(work)?;
    if cases.is_empty() {
        println!("no cases");
        return Ok(());
    }
    println!(
        "{:<14} {:<10} {:<8} {:<24} {:<18} today",
        "reference", "process", "status", "received", "day 0"
    );
    let today = calendar::london_date(now);
    for c in cases {
        let day = if today < c.day0 {
            "before day 0".to_string()
        } else {
            match cfg.calendar.statutory().working_day_number(c.day0, today) {
                Ok(n) => format!("day {n}"),
                Err(e) => format!("? ({e})"),
            }
        };
        println!(
            "{:<14} {:<10} {:<8} {:<24} {:<18} {day}",
            c.reference,
            c.process,
            c.status,
            calendar::short_instant(c.received_at),
            calendar::short_date(c.day0),
        );
    }
    Ok(())
}

/// `caseclerk generate`: the man page and completions, from the command line's definition.
/// `caseclerk chaos`: the kill -9 measurement (see [`crate::dev::chaos`]).
async fn chaos(kills: usize, seed: u64, server_copy: bool) -> Result<(), Failure> {
    let binary = std::env::current_exe().map_err(|e| work(e.to_string()))?;
    let opts = crate::dev::chaos::ChaosOptions {
        seed,
        server_copy,
        ..crate::dev::chaos::ChaosOptions::new(kills, binary)
    };
    let report = crate::dev::chaos::run(&opts).await.map_err(work)?;
    print!("{}", report.render());
    Ok(())
}

fn generate(out: &std::path::Path) -> Result<(), Failure> {
    use clap::CommandFactory;
    let fail = |what: &str, e: std::io::Error| {
        Failure::Work(format!(
            "cannot write the {what} into {}: {e}",
            out.display()
        ))
    };
    std::fs::create_dir_all(out).map_err(|e| fail("folder", e))?;
    let cmd = Cli::command();
    // caseclerk.1 and a page per visible command (caseclerk-health.1, …), as its SEE ALSO names.
    clap_mangen::generate_to(cmd.clone(), out).map_err(|e| fail("man pages", e))?;
    for shell in [
        clap_complete::Shell::Bash,
        clap_complete::Shell::Zsh,
        clap_complete::Shell::Fish,
    ] {
        clap_complete::generate_to(shell, &mut cmd.clone(), "caseclerk", out)
            .map_err(|e| fail("completions", e))?;
    }
    Ok(())
}

/// The commands about the data held: backups, the history's check, a case's export (one arm in
/// [`dispatch`], which is near the function length limit).
async fn data_protection(config: &Option<PathBuf>, cmd: &Command) -> Result<(), Failure> {
    match cmd {
        Command::Backup {
            file,
            age_recipients,
        } => backup(config, file, age_recipients).await,
        Command::Restore { file, age_identity } => {
            restore(config, file, age_identity.as_deref()).await
        }
        Command::Verify { heads } => verify(config, heads).await,
        Command::ExportCase { reference, dir } => export_case(config, reference, dir).await,
        other => Err(Failure::Work(format!(
            "{other:?} is not a data protection command"
        ))),
    }
}

/// `caseclerk backup`: a checked, owner-only copy of the database while the daemon runs,
/// encrypted with `age` when recipients are given.
async fn backup(
    config: &Option<PathBuf>,
    file: &std::path::Path,
    age_recipients: &[String],
) -> Result<(), Failure> {
    let cfg = load(config, Needs::NoSecrets)?;
    if let Some(bad) = age_recipients.iter().find(|r| !r.starts_with("age1")) {
        return Err(Failure::Usage(format!(
            "--age-recipient `{bad}` is not an age public key (age1…; `age-keygen -y key.txt` prints one)"
        )));
    }
    let found = if age_recipients.is_empty() {
        crate::shell::backup::backup(&cfg.database, file).await
    } else {
        crate::shell::backup::backup_encrypted(&cfg.database, file, age_recipients).await
    }
    .map_err(work)?;
    // Recorded in the live database, so monitoring sees a backup job that stops.
    let now = crate::shell::clock::Clock::now(&SystemClock);
    let store = Store::open(&cfg.database).await.map_err(work)?;
    store
        .set_meta(crate::shell::backup::LAST_BACKUP, &now.to_rfc3339())
        .await
        .map_err(work)?;
    store.close().await;
    let how = if age_recipients.is_empty() {
        ""
    } else {
        ", encrypted with age"
    };
    println!(
        "backup written to {}{how} and checked: {found}",
        file.display()
    );
    Ok(())
}

/// `caseclerk restore`: a checked backup in place of the database, the daemon stopped.
async fn restore(
    config: &Option<PathBuf>,
    file: &std::path::Path,
    age_identity: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let cfg = load(config, Needs::NoSecrets)?;
    let now = crate::shell::clock::Clock::now(&crate::shell::clock::SystemClock);
    let encrypted = crate::shell::backup::is_encrypted(file);
    let found = match (encrypted, age_identity) {
        (true, None) => {
            return Err(Failure::Usage(format!(
                "{} is encrypted with age: give --age-identity <private key file> (or decrypt it \
                 first: age -d -i key.txt -o plain.db {})",
                file.display(),
                file.display()
            )));
        }
        (true, Some(key)) => {
            crate::shell::backup::restore_encrypted(file, key, &cfg.database, now).await
        }
        (false, _) => crate::shell::backup::restore(file, &cfg.database, now).await,
    }
    .map_err(work)?;
    println!(
        "{} restored from {}: {found}; start the daemon again",
        cfg.database.display(),
        file.display()
    );
    // What went after the backup was taken is not in it.
    let looked = match cfg.imap.copies_folder() {
        None => {
            "WARNING: with no sent folder ([mailbox] sent_copy = \"none\") nothing can tell which \
             letters went after the backup was taken: they go again"
        }
        Some(_) => {
            "each letter the backup has as unsent and due before now is looked for in the sent \
             folder first, and goes only if it is not there"
        }
    };
    println!(
        "{looked}; mail that came after the backup is read again. Changes made by hand since \
         the backup (decisions, agencies, holds) are not in it: make them again"
    );
    Ok(())
}

/// `caseclerk verify`: the history's chain checked, read-only; exit 4 when it is broken.
async fn verify(config: &Option<PathBuf>, heads: &[String]) -> Result<(), Failure> {
    let given = heads
        .iter()
        .map(|h| {
            h.split_once(':')
                .and_then(|(id, hash)| Some((id.trim().parse::<i64>().ok()?, hash.trim().to_lowercase())))
                .filter(|(_, hash)| hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
                .ok_or_else(|| {
                    Failure::Usage(format!(
                        "--head {h}: give it as EVENT:SHA256, e.g. 1234:{} (the digest's History check line)",
                        "0".repeat(64)
                    ))
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let cfg = load(config, Needs::NoSecrets)?;
    let store = Store::open_read_only(&cfg.database).await.map_err(work)?;
    let finding = crate::shell::verify::verify_against(&store, &given)
        .await
        .map_err(work)?;
    store.close().await;
    println!("{}", finding.render());
    match finding {
        crate::shell::verify::Finding::Intact { .. } => Ok(()),
        crate::shell::verify::Finding::Broken(_) => Err(Failure::Status(4)),
    }
}

/// `caseclerk export-case`: everything held about one case, into a new owner-only folder.
async fn export_case(
    config: &Option<PathBuf>,
    reference: &str,
    dir: &std::path::Path,
) -> Result<(), Failure> {
    let cfg = load(config, Needs::NoSecrets)?;
    let now = clock(None)?.now();
    let store = Store::open_read_only(&cfg.database).await.map_err(work)?;
    let written = crate::shell::export_case::export(&cfg, &store, reference, dir, now)
        .await
        .map_err(|e| match e {
            crate::shell::export_case::ExportError::NoCase(_)
            | crate::shell::export_case::ExportError::Exists(_) => Failure::Usage(e.to_string()),
            other => Failure::Work(other.to_string()),
        })?;
    store.close().await;
    println!(
        "{reference} exported to {}: {written}; see README.txt there",
        dir.display()
    );
    Ok(())
}

/// `caseclerk health`: the monitoring plugin. Everything it cannot read is UNKNOWN (exit 3), so a
/// monitoring system never mistakes a broken check for a healthy daemon.
async fn health(config: &Option<PathBuf>, now: Option<&str>) -> Result<(), Failure> {
    let answer = async {
        let cfg = load(config, Needs::NoSecrets).map_err(|e| match e {
            Failure::Usage(m) | Failure::Work(m) => m,
            Failure::Status(c) => format!("exit {c}"),
        })?;
        let now = clock(now)
            .map_err(|_| "--now is not an instant like 2026-11-26T09:00:00Z".to_string())?
            .now();
        let store = Store::open_read_only(&cfg.database)
            .await
            .map_err(|e| e.to_string())?;
        crate::shell::health::check(&cfg, &store, now)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    let (text, level) = answer.unwrap_or_else(|e| {
        (
            crate::shell::health::unknown(&e),
            crate::core::health::Level::Unknown,
        )
    });
    println!("{text}");
    match level.exit_code() {
        0 => Ok(()),
        code => Err(Failure::Status(code)),
    }
}

/// `caseclerk case`: one case's history.
async fn case(config: &Option<PathBuf>, reference: &str, now: Option<&str>) -> Result<(), Failure> {
    let cfg = load(config, Needs::NoSecrets)?;
    let now = clock(now)?.now();
    let store = Store::open_read_only(&cfg.database).await.map_err(work)?;
    let text = crate::shell::report::case_report(&cfg, &store, reference, now)
        .await
        .map_err(|e| match e {
            crate::shell::report::ReportError::NoCase(_) => Failure::Usage(e.to_string()),
            other => Failure::Work(other.to_string()),
        })?;
    print!("{text}");
    Ok(())
}

/// `caseclerk timeline`: a process's planned schedule for a referral received at an instant.
fn print_timeline(config: &Option<PathBuf>, process: &str, received: &str) -> Result<(), Failure> {
    let cfg = load(config, Needs::NoSecrets)?;
    let received = parse_instant("--received", received)?;
    let base = cfg
        .file
        .parent()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    let path = if std::path::Path::new(process).is_file() {
        PathBuf::from(process)
    } else {
        config::process_path(&base, process)
    };
    let p = config::load_process(&path, &cfg.templates_dir)
        .map_err(|e| Failure::Usage(e.to_string()))?;
    let (day0, lines) =
        timeline::schedule(&p, &cfg.calendar, received, cfg.cutoff).map_err(work)?;
    print!("{}", timeline::render_schedule(&p, received, &day0, &lines));
    Ok(())
}

/// `caseclerk agencies add|remove`.
async fn agencies(config: &Option<PathBuf>, action: &AgenciesAction) -> Result<(), Failure> {
    match action {
        AgenciesAction::Add {
            case,
            agencies,
            reason,
            who,
        } => {
            let d = desk(config, who).await?;
            let added = operator::add_agencies(
                &d.cfg,
                &d.store,
                case,
                agencies,
                reason.as_deref(),
                &d.actor,
                d.now,
            )
            .await
            .map_err(refused)?;
            println!("{case}: added {}", added.join(", "));
        }
        AgenciesAction::Remove {
            case,
            agency,
            reason,
            who,
        } => {
            let d = desk(config, who).await?;
            let removed =
                operator::remove_agency(&d.cfg, &d.store, case, agency, reason, &d.actor, d.now)
                    .await
                    .map_err(refused)?;
            println!("{case}: removed {removed}");
        }
        AgenciesAction::Withdraw {
            case,
            message,
            reason,
            who,
        } => {
            let d = desk(config, who).await?;
            let agency =
                operator::withdraw_return(&d.store, case, *message, reason, &d.actor, d.now)
                    .await
                    .map_err(refused)?;
            println!("{case}: {agency}'s return (message {message}) taken out of the pack");
        }
    }
    Ok(())
}

/// `caseclerk decide`: a decision taken outside the mailbox.
async fn decide(
    config: &Option<PathBuf>,
    case: &str,
    decision: &str,
    outcome: &str,
    reason: &str,
    replace: bool,
    who: &Who,
) -> Result<(), Failure> {
    let d = desk(config, who).await?;
    operator::decide(
        &d.cfg, &d.store, case, decision, outcome, reason, replace, &d.actor, d.now,
    )
    .await
    .map_err(refused)?;
    println!("{case}: {decision} recorded as {outcome}");
    Ok(())
}

/// `caseclerk attach`: a triage message onto a case.
async fn attach(
    config: &Option<PathBuf>,
    case: &str,
    message: i64,
    how: operator::AttachAs,
    reason: &str,
    who: &Who,
) -> Result<(), Failure> {
    let d = desk(config, who).await?;
    operator::attach(
        &d.cfg, &d.store, case, message, how, reason, &d.actor, d.now,
    )
    .await
    .map_err(refused)?;
    println!("{case}: message {message} attached");
    Ok(())
}

/// `caseclerk dismiss`: a held reply that counts as no vote.
async fn dismiss(config: &Option<PathBuf>, c: &Command) -> Result<(), Failure> {
    let Command::Dismiss {
        case,
        message,
        reason,
        who,
    } = c
    else {
        return Ok(());
    };
    let d = desk(config, who).await?;
    operator::dismiss_held(&d.store, case, *message, reason, &d.actor, d.now)
        .await
        .map_err(refused)?;
    println!("{case}: held reply {message} dismissed");
    Ok(())
}

/// `caseclerk confirm`: a held reply as a vote — the decision (for a reply held naming none) and
/// the outcome a person read from it.
async fn confirm(
    config: &Option<PathBuf>,
    case: &str,
    message: i64,
    (decision, outcome): (&Option<String>, &str),
    reason: &str,
    who: &Who,
) -> Result<(), Failure> {
    let d = desk(config, who).await?;
    let decision = decision.as_deref();
    operator::confirm_held(
        &d.cfg, &d.store, case, message, decision, outcome, reason, &d.actor, d.now,
    )
    .await
    .map_err(refused)?;
    println!("{case}: held reply {message} confirmed as {outcome}");
    Ok(())
}

/// `caseclerk resend`: a letter again, to its recipient or another address.
async fn resend(
    config: &Option<PathBuf>,
    case: &str,
    letter: i64,
    to: Option<&str>,
    reason: &str,
    who: &Who,
) -> Result<(), Failure> {
    let d = desk(config, who).await?;
    let id = operator::resend(&d.cfg, &d.store, case, letter, to, reason, &d.actor, d.now)
        .await
        .map_err(refused)?;
    println!("{case}: letter {letter} queued again as letter {id}");
    Ok(())
}

/// `caseclerk publication`: the planned publication date of a case's report.
async fn publication(
    config: &Option<PathBuf>,
    case: &str,
    date: &str,
    reason: &str,
    who: &Who,
) -> Result<(), Failure> {
    let d = desk(config, who).await?;
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|_| Failure::Usage(format!("`{date}` is not a date like 2027-06-30")))?;
    operator::plan_publication(&d.cfg, &d.store, case, date, reason, &d.actor, d.now)
        .await
        .map_err(refused)?;
    println!(
        "{case}: publication planned for {}",
        calendar::short_date(date)
    );
    Ok(())
}

/// `caseclerk close` and `caseclerk reopen`.
async fn set_status(
    config: &Option<PathBuf>,
    case: &str,
    close: bool,
    reason: &str,
    who: &Who,
) -> Result<(), Failure> {
    let d = desk(config, who).await?;
    operator::set_status(&d.store, case, close, reason, &d.actor, d.now)
        .await
        .map_err(refused)?;
    println!("{case}: {}", if close { "closed" } else { "reopened" });
    Ok(())
}

/// The retention commands, each to its own function (dispatch has one arm for them).
async fn retention(config: &Option<PathBuf>, command: &RetentionCommand) -> Result<(), Failure> {
    match command {
        RetentionCommand::Retention { dry_run, now } => {
            apply_retention(config, *dry_run, now).await
        }
        RetentionCommand::Hold { case, reason, who } => hold(config, case, true, reason, who).await,
        RetentionCommand::Release { case, reason, who } => {
            hold(config, case, false, reason, who).await
        }
    }
}

/// `caseclerk retention [--dry-run]`.
async fn apply_retention(
    config: &Option<PathBuf>,
    dry_run: bool,
    now: &Option<String>,
) -> Result<(), Failure> {
    use crate::shell::retention as r;
    let cfg = load(config, Needs::NoSecrets)?;
    let now = clock(now.as_deref())?.now();
    if dry_run {
        // Read-only: nothing written, no lock taken, works beside the running daemon.
        let store = Store::open_read_only(&cfg.database).await.map_err(work)?;
        let groups = r::plan(&store, &cfg.retention, now).await.map_err(work)?;
        let refs = r::references(&store).await.map_err(work)?;
        print!("{}", r::listing(&groups, &refs, false));
        return Ok(());
    }
    let store = Store::open(&cfg.database).await.map_err(work)?;
    let applied = r::apply(&store, &cfg.retention, now).await.map_err(work)?;
    let refs = r::references(&store).await.map_err(work)?;
    print!("{}", r::listing(&applied.groups, &refs, true));
    if applied.signins > 0 {
        println!(
            "{} web sign-in record(s) older than {} days erased",
            applied.signins, cfg.retention.signin_days
        );
    }
    if applied.particulars > 0 {
        println!(
            "{} particular(s) typed in after their case's mail had gone erased",
            applied.particulars
        );
    }
    let erased = !applied.groups.is_empty() || applied.particulars > 0 || applied.signins > 0;
    if erased || applied.reclaimed.wal_busy {
        println!(
            "{} free page(s) given back to the file system; {}",
            applied.reclaimed.pages,
            if applied.reclaimed.wal_busy {
                "the WAL could not be emptied (a reader was busy): `caseclerk retention` (or the daemon's next daily run) tries again"
            } else {
                "the WAL is emptied"
            }
        );
    }
    Ok(())
}

/// `caseclerk hold` (`place`) and `caseclerk release`.
async fn hold(
    config: &Option<PathBuf>,
    case: &str,
    place: bool,
    reason: &str,
    who: &Who,
) -> Result<(), Failure> {
    use crate::shell::retention::{HoldError, set_hold};
    let d = desk(config, who).await?;
    set_hold(&d.store, case, place, reason, &d.actor, d.now)
        .await
        .map_err(|e| match e {
            HoldError::Store(_) => work(e),
            _ => Failure::Usage(e.to_string()),
        })?;
    println!(
        "{case}: {}",
        if place {
            "under legal hold: nothing of it is erased until it is released"
        } else {
            "legal hold released: the retention schedule applies again"
        }
    );
    Ok(())
}

/// `caseclerk reschedule` (alias `extend`, `adjourn`).
async fn reschedule(
    config: &Option<PathBuf>,
    case: &str,
    what: &str,
    to: &str,
    reason: &str,
    who: &Who,
) -> Result<(), Failure> {
    let d = desk(config, who).await?;
    let at = parse_when(to, d.cfg.process.default_at)?;
    operator::reschedule(&d.cfg, &d.store, case, what, at, reason, &d.actor, d.now)
        .await
        .map_err(refused)?;
    println!("{case}: {what} moved to {}", calendar::short_instant(at));
    Ok(())
}

/// `caseclerk not-case-business` and `caseclerk open-referral`: what becomes of a message in triage.
async fn triage_action(config: &Option<PathBuf>, command: &Command) -> Result<(), Failure> {
    match command {
        Command::NotCaseBusiness {
            message,
            reason,
            who,
        } => {
            let d = desk(config, who).await?;
            operator::not_case_business(&d.store, *message, reason, &d.actor, d.now)
                .await
                .map_err(refused)?;
            println!("message {message} is off the triage list: not case business");
        }
        Command::OpenReferral {
            message,
            area,
            reason,
            who,
        } => {
            let d = desk(config, who).await?;
            let area = area.as_deref();
            let opened =
                operator::open_referral(&d.cfg, &d.store, *message, area, reason, &d.actor, d.now);
            let reference = opened.await.map_err(refused)?;
            println!(
                "message {message} opened case {reference}; its acknowledgement and screening letters are planned on the daemon's next pass (`caseclerk case {reference}`)"
            );
        }
        _ => return Err(Failure::Work("not a triage command".into())),
    }
    Ok(())
}

/// `caseclerk cancel-meeting`.
async fn cancel_meeting(config: &Option<PathBuf>, command: &Command) -> Result<(), Failure> {
    let Command::CancelMeeting { case, reason, who } = command else {
        return Ok(());
    };
    let d = desk(config, who).await?;
    operator::cancel_meeting(&d.cfg, &d.store, case, reason, &d.actor, d.now)
        .await
        .map_err(refused)?;
    println!("{case}: meeting cancelled; the attendees who were invited are sent a cancellation");
    Ok(())
}

/// `caseclerk set-reviewer`.
async fn set_reviewer(config: &Option<PathBuf>, command: &Command) -> Result<(), Failure> {
    let Command::SetReviewer {
        case,
        name,
        reason,
        who,
    } = command
    else {
        return Ok(());
    };
    let d = desk(config, who).await?;
    operator::set_reviewer(&d.store, case, name, reason, &d.actor, d.now)
        .await
        .map_err(refused)?;
    println!("{case}: reviewer recorded; the tracker shows it from the next export");
    Ok(())
}

/// `caseclerk particulars`: show a case's particulars, or confirm and correct them.
async fn particulars(config: &Option<PathBuf>, command: &Command) -> Result<(), Failure> {
    let Command::Particulars {
        case,
        confirm,
        set,
        reason,
        who,
    } = command
    else {
        return Ok(());
    };
    let d = desk(config, who).await?;
    if !confirm.is_empty() || !set.is_empty() {
        let mut checks = operator::ParticularChecks {
            confirm: confirm.clone(),
            set: Vec::new(),
        };
        for s in set {
            let (f, v) = s
                .split_once('=')
                .ok_or_else(|| Failure::Usage(format!("--set `{s}`: write it as field=value")))?;
            checks
                .set
                .push((f.trim().to_string(), v.trim().to_string()));
        }
        let reason = reason.as_deref().unwrap_or("");
        let done = operator::check_particulars(&d.store, case, &checks, reason, &d.actor, d.now)
            .await
            .map_err(refused)?;
        let names: Vec<&str> = done.iter().map(|f| f.as_str()).collect();
        println!("{case}: checked {}", names.join(", "));
    }
    let row = d
        .store
        .case_by_ref(case)
        .await
        .map_err(work)?
        .ok_or_else(|| refused(operator::OperatorError::NoCase(case.clone())))?;
    let ps = d.store.particulars(row.id).await.map_err(work)?;
    print!("{}", crate::core::particulars::listing(&ps));
    Ok(())
}

/// `caseclerk triage`: messages waiting for a person.
async fn triage(config: &Option<PathBuf>) -> Result<(), Failure> {
    let cfg = load(config, Needs::NoSecrets)?;
    let store = Store::open(&cfg.database).await.map_err(work)?;
    let rows = store.triage().await.map_err(work)?;
    if rows.is_empty() {
        println!("nothing waiting for a person");
    }
    for r in rows {
        println!(
            "message {:<6} received {}  rule {}  {} bytes",
            r.id,
            calendar::short_instant(r.internal_date),
            r.rule.as_deref().unwrap_or("-"),
            r.size
        );
        // The classifier's reasons name header facts and rules, never text or addresses.
        for why in &r.reasons {
            println!("    {why}");
        }
    }
    Ok(())
}

/// `caseclerk bench`: ingest ([`crate::dev::bench`]), peak memory (`--first-run`, `--burst`:
/// [`crate::dev::membench`]) or scale (`--cases`: [`crate::dev::scalebench`]).
async fn bench(
    config: &Option<PathBuf>,
    messages: usize,
    ((first_run, repeat), burst, burst_mb, binary): (
        (Option<usize>, usize),
        Option<usize>,
        f64,
        Option<PathBuf>,
    ),
    (cases, form_kb): (Option<usize>, usize),
) -> Result<(), Failure> {
    if let Some(cases) = cases {
        return scale_bench(config, cases, form_kb).await;
    }
    if first_run.is_some() || burst.is_some() {
        let opts = crate::dev::membench::MemoryOptions {
            config: config.clone().unwrap_or_else(engine::default_config_path),
            binary,
            first_run,
            repeat,
            burst,
            burst_mb,
        };
        let report = crate::dev::membench::run(&opts).await.map_err(work)?;
        print!("{}", report.render());
        return Ok(());
    }
    let report = crate::dev::bench::run(messages).await.map_err(work)?;
    print!("{}", report.render());
    Ok(())
}

/// `caseclerk bench --letters N`: letters a second to a local Postfix
/// ([`crate::dev::sendbench`]).
async fn send_bench(config: &Option<PathBuf>, letters: usize) -> Result<(), Failure> {
    let config = config.clone().unwrap_or_else(engine::default_config_path);
    let report = crate::dev::sendbench::run(config, letters)
        .await
        .map_err(work)?;
    print!("{}", report.render());
    Ok(())
}

/// `caseclerk bench --cases N`: the scale benchmark ([`crate::dev::scalebench`]).
async fn scale_bench(
    config: &Option<PathBuf>,
    cases: usize,
    form_kb: usize,
) -> Result<(), Failure> {
    let opts = crate::dev::scalebench::ScaleOptions {
        config: config.clone().unwrap_or_else(engine::default_config_path),
        cases,
        slice: 1000,
        form_bytes: form_kb * 1000,
    };
    let report = crate::dev::scalebench::run(&opts).await.map_err(work)?;
    print!("{}", report.render());
    Ok(())
}

/// `caseclerk digest`: the text of the daily digest as it would be sent at an instant, rendered
/// through the digest templates like the one the daemon queues.
async fn digest(config: &Option<PathBuf>, now: Option<&str>) -> Result<(), Failure> {
    let cfg = load(config, Needs::NoSecrets)?;
    let now = clock(now)?.now();
    let store = Store::open_read_only(&cfg.database).await.map_err(work)?;
    let key = crate::core::timeline::periodic::digest_key(calendar::london_date(now));
    let since =
        crate::shell::snapshot::since_last(&store, crate::core::views::DIGEST_STEP, &key, now)
            .await
            .map_err(work)?;
    let snap = crate::shell::snapshot::gather(&cfg, &store, now, since)
        .await
        .map_err(work)?;
    let templates = crate::shell::templates::load(&cfg.templates_dir).map_err(work)?;
    let d = crate::core::digest::build(&snap, &cfg.calendar)
        .and_then(|d| crate::core::digest::render(&d, &templates))
        .map_err(work)?;
    print!("{}", d.text);
    Ok(())
}

/// `caseclerk export`: the tracker as XLSX or CSV.
async fn export(
    config: &Option<PathBuf>,
    format: ExportFormat,
    since: Option<&str>,
    output: Option<&std::path::Path>,
    now: Option<&str>,
) -> Result<(), Failure> {
    let cfg = load(config, Needs::NoSecrets)?;
    let now = clock(now)?.now();
    let since = since
        .map(|s| {
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|_| Failure::Usage(format!("--since `{s}` is not a date like 2026-04-01")))
        })
        .transpose()?;
    if format == ExportFormat::Xlsx
        && output.is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stdout())
    {
        return Err(Failure::Usage(
            "an XLSX file is binary: give --output tracker.xlsx (or pipe it)".into(),
        ));
    }
    let store = Store::open_read_only(&cfg.database).await.map_err(work)?;
    let snap = crate::shell::snapshot::gather(&cfg, &store, now, now)
        .await
        .map_err(work)?;
    let tracker = crate::core::export::rows(&snap, &cfg.process, since);
    let bytes = match format {
        ExportFormat::Csv => crate::core::export::csv(&tracker).into_bytes(),
        ExportFormat::Xlsx => {
            let heading = crate::shell::periodic::tracker_heading(&cfg, now);
            crate::core::export::xlsx(&tracker, &heading, now).map_err(work)?
        }
    };
    match output {
        // The tracker names children's cases: readable by the one who wrote it only (0600, also
        // when it replaces a file that was more open).
        Some(path) => crate::shell::private::write(path, &bytes)
            .map_err(|e| Failure::Work(format!("cannot write {}: {e}", path.display())))?,
        None => std::io::Write::write_all(&mut std::io::stdout(), &bytes)
            .map_err(|e| Failure::Work(format!("cannot write the tracker: {e}")))?,
    }
    Ok(())
}

/// `caseclerk check`: the configuration is valid, and what it will send periodically.
/// `check`'s line on what names the child in a letter to an agency (the process file's
/// `identify_child`, sent only over SMTP that requires TLS).
fn identify_child_summary(cfg: &config::Config) -> String {
    let chosen: Vec<&str> = cfg
        .process
        .identify_child
        .iter()
        .map(|f| f.as_str())
        .collect();
    match (
        chosen.is_empty(),
        cfg.smtp.tls == crate::shell::config::TlsMode::None,
    ) {
        (true, _) => {
            "letters to agencies: name no particulars of the child (identify_child is empty)".into()
        }
        (false, false) => format!(
            "letters to agencies: name the child by {} once the business unit has confirmed them (SMTP requires TLS)",
            chosen.join(", ")
        ),
        (false, true) => format!(
            "WARNING: identify_child names {} but [smtp] tls = \"none\": letters to agencies will not name the child (set tls = \"starttls\" or \"implicit\")",
            chosen.join(", ")
        ),
    }
}

fn check(config: &Option<PathBuf>, now: Option<&str>) -> Result<(), Failure> {
    let cfg = load(config, Needs::Check)?;
    let now = match now {
        Some(s) => parse_instant("--now", s)?,
        None => crate::shell::clock::Clock::now(&SystemClock),
    };
    println!(
        "{}: configuration is valid (process {}, {} steps, {} agencies)",
        cfg.file.display(),
        cfg.process.id,
        cfg.process.steps.len(),
        cfg.directory.agencies.len()
    );
    match &cfg.digest {
        Some(d) => println!(
            "daily digest: each working day at {} (London) to {}",
            d.at.format("%H:%M"),
            d.to
        ),
        None => println!("daily digest: off (no [digest] section)"),
    }
    println!("who may open a case: {}", senders_summary(&cfg.trust));
    println!("{}", holidays_summary(&cfg, now));
    println!("{}", login_summary(&cfg));
    println!("{}", identify_child_summary(&cfg));
    if let Some(t) = &cfg.process.tracker_report {
        println!(
            "tracker report: {} at {} to {}",
            match t.every {
                crate::core::process::Every::Month { working_day } =>
                    format!("working day {working_day} of each month"),
                crate::core::process::Every::Weeks { weeks, weekday } =>
                    format!("every {weeks} week(s) on {weekday}"),
            },
            t.at.format("%H:%M"),
            t.to.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// `caseclerk check`'s bank-holiday line: how far the data reaches, and the health rule
/// `holiday_data_ending`'s warning from six months before it runs out.
fn holidays_summary(cfg: &config::Config, now: DateTime<Utc>) -> String {
    let until = cfg.calendar.coverage().1;
    let t = crate::core::health::Thresholds::default();
    match crate::core::health::holiday_data(until, now, &t) {
        Some(f) => format!("{}: {}", f.level.as_str(), f.text),
        None => format!(
            "bank holidays: England & Wales data until {}",
            calendar::short_date(until)
        ),
    }
}

/// `caseclerk check --connect`: one line per connection, the failures marked.
async fn check_connect(config: &Option<PathBuf>) -> Result<(), Failure> {
    let cfg = load(config, Needs::Everything)?;
    let lines = crate::shell::connect::check(&cfg).await;
    for l in &lines {
        println!("{} {}", if l.ok { "ok    " } else { "FAILED" }, l.text);
    }
    match lines.iter().filter(|l| !l.ok).count() {
        0 => Ok(()),
        n => Err(Failure::Work(format!(
            "{n} connection check(s) failed (see the FAILED lines)"
        ))),
    }
}

/// One line for `caseclerk check`: how each server is logged in to, and the sent folder.
fn login_summary(cfg: &crate::shell::config::Config) -> String {
    let how = |oauth: bool| {
        if oauth {
            "OAuth2 (XOAUTH2)"
        } else {
            "password"
        }
    };
    let token = cfg
        .imap
        .oauth2
        .as_ref()
        .or(cfg.smtp.oauth2.as_ref())
        .map(|t| {
            let credential = match &t.settings.credential {
                crate::shell::oauth::Credential::Secret(_) => "client secret",
                crate::shell::oauth::Credential::Certificate { .. } => "certificate",
            };
            format!(
                "; app {} in tenant {} with a {credential}, tokens from {}",
                t.settings.client_id,
                t.settings.tenant,
                t.settings.token_url()
            )
        })
        .unwrap_or_default();
    let sent = match &cfg.imap.sent_folder {
        Some(f) => format!("letters filed in {f:?}"),
        None => "letters not filed (file_sent = false)".into(),
    };
    format!(
        "login: mailbox by {}, SMTP by {}{token}; {sent}",
        how(cfg.imap.oauth2.is_some()),
        how(cfg.smtp.oauth2.is_some())
    )
}

/// One line for `caseclerk check`: what decides who may open a case.
fn senders_summary(p: &crate::core::trust::Policy) -> String {
    let auth = match &p.authserv_id {
        Some(id) => format!("Authentication-Results from {id}"),
        None => "no server verdict (no [decisions] authserv_id)".to_string(),
    };
    let spam = match p.spam.len() {
        0 => "no spam header".to_string(),
        n => format!("{n} spam header rule(s)"),
    };
    let senders = if p.trusted_domains.is_empty() {
        "any sender (no [senders] trusted_domains)".to_string()
    } else {
        format!(
            "trusted domains {} and the agency directory; others only when authenticated",
            p.trusted_domains.join(", ")
        )
    };
    format!("{auth}; {spam}; {senders}")
}

/// SIGTERM or SIGINT, as a future — the handlers installed at once, when this is called, not
/// when the future is first polled: the daemon polls it only between passes, and until then a
/// signal's default action would kill the first pass (the one that decides a backlog and sends
/// what fell due while it was stopped) mid-send.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
