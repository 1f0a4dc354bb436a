//! The configuration file: raw TOML → a resolved [`Config`], every problem reported at once.
//!
//! Owns reading `caseclerk.toml` (see `config/example.toml`), resolving relative paths against the
//! config file's own directory, loading the partnership's process file and calendar, checking that
//! every role the process writes to has people, and reading passwords from the environment or a
//! file (never from the config itself).
//!
//! Must not: open network connections, touch the database, or log secrets or personal data.
//! [`Secret`] prints as `***`.

use crate::core::calendar::Calendar;
pub use crate::core::directory::{Agency, Contact, Directory};
use crate::core::process::{self, Process};
use crate::shell::oauth::{Credential, OAuth2Settings, SecretSource, TokenSource};
use chrono::{NaiveDate, NaiveTime};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

mod toml_read;
mod web;

pub use web::{TrustedProxy, WebSettings, default_listen as web_default_listen};

pub use crate::shell::secret::Secret;

/// How a connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (IMAPS 993, SMTPS 465).
    Implicit,
    /// Plain, then STARTTLS, which must succeed (IMAP 143, submission 587).
    Starttls,
    /// No TLS at all: only allowed to a loopback address.
    None,
}

/// The watcher's liveness check by default: GitLab's mail_room cut its IDLE timeout to 60 s for the
/// same reason. One DONE + IDLE (two short round trips) a minute is nothing to a server, and with
/// the answer awaited for at most as long again, a stalled server is noticed within two minutes.
pub const DEFAULT_CHECK_SECONDS: u64 = 60;
/// Beyond ten minutes a stalled server goes unnoticed too long to be worth calling a check.
pub const MAX_CHECK_SECONDS: u64 = 600;
/// The safety-net fetch by default: every five minutes, so mail the watcher failed to signal waits
/// at most that long (a connection, a login and one UID SEARCH: cheap).
pub const DEFAULT_FETCH_SECONDS: u64 = 300;
/// At least hourly: the safety net is the last thing standing between new mail and nobody.
pub const MAX_FETCH_SECONDS: u64 = 3600;

/// IMAP settings.
#[derive(Debug, Clone)]
pub struct ImapSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub password: Option<Secret>,
    pub folder: String,
    pub ca_file: Option<PathBuf>,
    /// `auth = "oauth2"`: log in with XOAUTH2 and a token from this client (shared with SMTP).
    pub oauth2: Option<Arc<TokenSource>>,
    /// The shared mailbox's sent folder: `sent_folder`, default "Sent Items"; `None` with
    /// `sent_copy = "none"` (or the older `file_sent = false`).
    pub sent_folder: Option<String>,
    /// Who puts a copy of each sent letter in the sent folder (`sent_copy`).
    pub sent_copy: SentCopy,
    /// With `sent_copy = "server"`: how long after its intent a letter in doubt is looked up in
    /// the sent folder (`in_doubt_grace_seconds`, default 120): long enough for the server's copy
    /// of an accepted letter to arrive.
    pub in_doubt_grace: Duration,
    /// IDLE is re-issued after this long at most (RFC 2177 asks for < 29 minutes); the liveness
    /// check below re-issues it sooner.
    pub idle_refresh: Duration,
    /// Polling interval when the server has no IDLE.
    pub poll_interval: Duration,
    /// Every network command is abandoned after this long (a dead link must not hang the daemon).
    pub command_timeout: Duration,
    /// How often the watcher proves its connection alive (DONE + IDLE, or NOOP when polling),
    /// and how long it waits for that answer at most (with `command_timeout`, whichever is
    /// shorter): a server that stops answering is noticed within twice this (two minutes by
    /// default). See [`crate::shell::mailbox::watch`].
    pub check_interval: Duration,
    /// The daemon fetches at least this often even if the watcher never signals (a safety net for
    /// a watcher that is reconnecting, or a server whose IDLE goes quiet).
    pub fetch_interval: Duration,
}

impl ImapSettings {
    /// The sent folder that holds a copy of every letter sent, by the server or by caseclerk's
    /// own filing; none with `sent_copy = "none"`.
    pub fn copies_folder(&self) -> Option<&str> {
        match self.sent_copy {
            SentCopy::None => None,
            SentCopy::Server | SentCopy::Caseclerk => self.sent_folder.as_deref(),
        }
    }
}

/// SMTP settings.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    pub username: String,
    pub password: Option<Secret>,
    /// Where the password came from, when from a file: read again for every connection, so a
    /// rotated password written there is used without a restart.
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    /// `auth = "oauth2"`: AUTH XOAUTH2 with a token from this client (shared with IMAP).
    pub oauth2: Option<Arc<TokenSource>>,
    pub timeout: Duration,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: PathBuf,
    pub partnership_name: String,
    pub short_name: String,
    pub reference_prefix: String,
    /// The shared mailbox's address: the From of every letter.
    pub address: String,
    /// The shared mailbox and its aliases (lowercase): mail from these is ours.
    pub own_addresses: Vec<String>,
    /// The domain of Message-IDs we mint.
    pub id_domain: String,
    pub imap: ImapSettings,
    pub smtp: SmtpSettings,
    pub database: PathBuf,
    pub templates_dir: PathBuf,
    pub process: Process,
    pub calendar: Calendar,
    /// Referrals received at or after this London time start on the next working day.
    pub cutoff: Option<NaiveTime>,
    /// The people in each role (and each area's own) and the agency directory.
    pub directory: Directory,
    pub attachments: BTreeMap<String, PathBuf>,
    /// The receiving mail server's `authserv-id`: when set, a vote counts only if the topmost
    /// Authentication-Results header comes from it and shows DMARC (or aligned DKIM/SPF) pass.
    pub authserv_id: Option<String>,
    /// The daily digest to the business unit; `None` when `[digest]` is absent (no digest).
    pub digest: Option<DigestSettings>,
    /// Who may open a case (`[senders]` and `[decisions] authserv_id`): see `core::trust`.
    pub trust: crate::core::trust::Policy,
    /// `[first_run] late_letters_days`: overdue letters that fell due on this many working days
    /// before the first run still go, late; older ones are imported — not sent
    /// ([`crate::core::firstrun`]).
    pub first_run_late_days: u32,
    /// External-sender banners beyond the built-in list (`[mail] banners`), removed before a
    /// vote or an `Agencies:` line is read.
    pub banners: Vec<String>,
    /// The caps on answers and cases (`[limits]`).
    pub limits: crate::core::limits::Limits,
    /// How long each class of content is kept (`[retention]`, see [`crate::core::retention`]).
    pub retention: crate::core::retention::Schedule,
    /// `[letters]`: protective marking, signing officer, the meeting's place.
    pub paperwork: crate::core::letters::Paperwork,
    /// The web workspace (`[web]`); `None`: the daemon serves none (`caseclerk serve` listens on
    /// [`web::DEFAULT_LISTEN`]).
    pub web: Option<WebSettings>,
}

/// The daily digest (`[digest]`): one email each working morning to the business unit.
///
/// The section is optional and there is no digest without it: an email every morning is a thing a
/// partnership turns on, not a surprise. `config/example.toml` turns it on. `caseclerk check` says
/// whether it is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestSettings {
    /// London wall-clock time it is sent on working days (`at = "08:00"`, the default).
    pub at: NaiveTime,
    /// The directory role it goes to (`to = "business_unit"`, the default): one email, to the
    /// first person in the role, copied to the others.
    pub to: String,
}

impl Config {
    /// The people in a role for a case in `area` (the area's own list first, else the partnership's).
    pub fn people(&self, role: &str, area: Option<&str>) -> &[Contact] {
        self.directory.people(role, area)
    }

    pub fn agency(&self, id: &str) -> Option<&Agency> {
        self.directory.agency(id)
    }
}

/// Every problem found in a configuration.
#[derive(Debug, thiserror::Error)]
#[error("configuration {file} has {} problem(s):\n{}", problems.len(), problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
pub struct ConfigError {
    pub file: String,
    pub problems: Vec<String>,
}

/// Attachment names the engine fills itself: the referral (its text and files) and the agencies'
/// returns (for the collation pack). Every other name comes from `[attachments]`.
pub const RESERVED_ATTACHMENTS: &[&str] = &["referral", "returns"];

/// What a command needs resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// What `caseclerk check` asks: everything, and the files the daemon only reads when a letter
    /// needs them (`[attachments]`) there too.
    Check,
    /// Everything, including passwords (run, tick, demo). A file in `[attachments]` need not be
    /// there: the daemon reads it when a letter needs it and raises one that is gone
    /// (`letters_unprepared`, CRITICAL, naming it), while mail is still read and every other
    /// letter still goes — one missing file must not stop a restarted daemon reading referrals.
    Everything,
    /// Everything but passwords (cases, timeline, health), and no `[attachments]` file checked.
    NoSecrets,
}

// ---- raw form ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    partnership: RawPartnership,
    mailbox: RawImap,
    smtp: RawSmtp,
    #[serde(default)]
    storage: RawStorage,
    #[serde(default)]
    calendar: RawCalendar,
    #[serde(default)]
    templates: RawTemplates,
    #[serde(default)]
    roles: BTreeMap<String, Vec<Contact>>,
    #[serde(default)]
    areas: BTreeMap<String, RawArea>,
    #[serde(default, rename = "agency")]
    agencies: Vec<Agency>,
    #[serde(default)]
    attachments: BTreeMap<String, String>,
    #[serde(default)]
    decisions: RawDecisions,
    #[serde(default)]
    digest: Option<RawDigest>,
    #[serde(default)]
    senders: RawSenders,
    #[serde(default)]
    first_run: RawFirstRun,
    #[serde(default)]
    mail: RawMail,
    #[serde(default)]
    limits: RawLimits,
    #[serde(default)]
    oauth2: Option<RawOAuth2>,
    #[serde(default)]
    retention: RawRetention,
    #[serde(default)]
    letters: RawLetters,
    #[serde(default)]
    web: Option<web::RawWeb>,
}

/// `[letters]`: what official correspondence carries (see [`crate::core::letters::Paperwork`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLetters {
    #[serde(default)]
    marking: Option<String>,
    #[serde(default)]
    signature: Option<RawSignature>,
    #[serde(default)]
    meeting_location: Option<String>,
    #[serde(default)]
    meeting_link: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSignature {
    name: String,
    #[serde(default)]
    title: Option<String>,
    phone: String,
}

/// Who files a copy of each sent letter in the shared mailbox's sent folder (`[mailbox] sent_copy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SentCopy {
    /// caseclerk appends it after the server's `250` (servers that keep no copy, e.g. Postfix
    /// alone). Its absence proves nothing, so a letter in doubt is sent again at once.
    #[default]
    Caseclerk,
    /// The server files it itself, as part of accepting the letter (Exchange Online's Sent
    /// Items for SMTP AUTH client submission; Postfix's `sender_bcc_maps` into the sent folder):
    /// caseclerk appends nothing, and settles a letter in doubt by looking for the copy.
    Server,
    /// Nobody (as far as caseclerk knows): no filing, no look-up; a letter in doubt is resent.
    None,
}

/// How a server is logged in to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum AuthKind {
    #[default]
    Password,
    Oauth2,
}

/// `[oauth2]`: the app registration (Microsoft 365 app-only login).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOAuth2 {
    authority: Option<String>,
    tenant: String,
    client_id: String,
    client_secret: Option<toml::Value>,
    client_secret_file: Option<String>,
    client_secret_env: Option<String>,
    certificate_file: Option<String>,
    private_key_file: Option<String>,
    scope: Option<String>,
    secret_expires: Option<String>,
    ca_file: Option<String>,
    proxy: Option<String>,
    timeout_seconds: Option<u64>,
}

/// `[senders]`: who may open a case (see `core::trust` and the README).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawSenders {
    #[serde(default)]
    trusted_domains: Vec<String>,
    spam_flag: Option<OneOrMany<RawSpamFlag>>,
    spam_score: Option<OneOrMany<RawSpamScore>>,
}

/// One table or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpamFlag {
    header: String,
    value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpamScore {
    header: String,
    above: Option<f64>,
    at_least: Option<f64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFirstRun {
    late_letters_days: Option<u32>,
}

/// `[mail]`: how incoming mail is read.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawMail {
    #[serde(default)]
    banners: Vec<String>,
}

/// `[limits]`: the caps that end any mail loop (see [`crate::core::limits`]).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    answers_per_address_per_day: Option<i64>,
    cases_per_sender_per_day: Option<i64>,
}

/// `[retention]`: how long content is kept (see [`crate::core::retention`]).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawRetention {
    closed_case_years: Option<i64>,
    letter_days: Option<i64>,
    triage_days: Option<i64>,
    other_mail_days: Option<i64>,
    signin_days: Option<i64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDecisions {
    authserv_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDigest {
    at: Option<String>,
    to: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartnership {
    name: String,
    #[serde(default)]
    short_name: Option<String>,
    /// A process id (`config/processes/<id>.toml` next to this file) or a path to a process file.
    process: String,
    #[serde(default)]
    reference_prefix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImap {
    address: String,
    #[serde(default)]
    aliases: Vec<String>,
    host: String,
    port: Option<u16>,
    tls: TlsMode,
    username: String,
    password: Option<toml::Value>,
    password_env: Option<String>,
    password_file: Option<String>,
    #[serde(default)]
    folder: Option<String>,
    ca_file: Option<String>,
    idle_refresh_minutes: Option<u64>,
    poll_seconds: Option<u64>,
    timeout_seconds: Option<u64>,
    check_seconds: Option<u64>,
    fetch_seconds: Option<u64>,
    id_domain: Option<String>,
    #[serde(default)]
    auth: AuthKind,
    sent_folder: Option<String>,
    file_sent: Option<bool>,
    sent_copy: Option<SentCopy>,
    in_doubt_grace_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    host: String,
    port: Option<u16>,
    tls: TlsMode,
    username: String,
    password: Option<toml::Value>,
    password_env: Option<String>,
    password_file: Option<String>,
    ca_file: Option<String>,
    timeout_seconds: Option<u64>,
    #[serde(default)]
    auth: AuthKind,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    database: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    holidays_file: Option<String>,
    cutoff: Option<String>,
    #[serde(default)]
    closures: Vec<RawClosure>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClosure {
    date: String,
    reason: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTemplates {
    dir: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArea {
    #[serde(default)]
    roles: BTreeMap<String, Vec<Contact>>,
}

/// Load and resolve a configuration file.
pub fn load(path: &Path, needs: Needs) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let fail = |p: String| ConfigError {
        file: file.clone(),
        problems: vec![p],
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        fail(format!(
            "cannot read it: {e} (pass --config or set CASECLERK_CONFIG)"
        ))
    })?;
    // Every syntax error, unknown key and wrong type at once, each with its line; the keys that
    // are right still go through the checks below, whose problems get their lines too.
    let (raw, mut early, lines) = toml_read::read::<RawConfig>(&text);
    let Some(raw) = raw else {
        return Err(ConfigError {
            file,
            problems: early,
        });
    };
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let resolved = Resolver {
        base,
        problems: Vec::new(),
        needs,
    }
    .resolve(&file, raw);
    match resolved {
        Ok(config) if early.is_empty() => Ok(config),
        Ok(_) => Err(ConfigError {
            file,
            problems: early,
        }),
        Err(later) => {
            early.extend(later.problems.iter().map(|p| lines.locate(p)));
            Err(ConfigError {
                file,
                problems: early,
            })
        }
    }
}

/// Where `<dir>/processes/<id>.toml` or a path given as `process` lives.
pub fn process_path(base: &Path, process: &str) -> PathBuf {
    if process.ends_with(".toml") || process.contains('/') {
        base.join(process)
    } else {
        base.join("processes").join(format!("{process}.toml"))
    }
}

/// Does `dir` hold all three parts (`.subject.hbs`, `.text.hbs`, `.html.hbs`) of template `name`?
pub fn template_exists(dir: &Path, name: &str) -> bool {
    ["subject", "text", "html"]
        .iter()
        .all(|part| dir.join(format!("{name}.{part}.hbs")).is_file())
}

/// Load one process file, checking its templates against `templates_dir`.
pub fn load_process(path: &Path, templates_dir: &Path) -> Result<Process, process::ProcessError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| process::ProcessError {
        file: file.clone(),
        problems: vec![format!("cannot read it: {e}")],
    })?;
    let has = |name: &str| template_exists(templates_dir, name);
    process::parse(&file, &text, &process::Environment { has_template: &has })
}

/// Load the calendar: the bundled GOV.UK data or `holidays_file`, plus closure days.
pub fn load_calendar(
    holidays_file: Option<&Path>,
    closures: Vec<(NaiveDate, String)>,
) -> Result<Calendar, String> {
    let cal = match holidays_file {
        None => Calendar::bundled(),
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                format!(
                    "calendar.holidays_file {}: cannot read it: {e}",
                    p.display()
                )
            })?;
            Calendar::from_govuk_json(&text)
                .map_err(|e| format!("calendar.holidays_file {}: {e}", p.display()))?
        }
    };
    Ok(cal.with_closures(closures))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

fn valid_email(e: &str) -> bool {
    let Some((local, domain)) = e.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && (domain.contains('.') || domain == "localhost")
        && !e
            .chars()
            .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
}

struct Resolver {
    base: PathBuf,
    problems: Vec<String>,
    needs: Needs,
}

impl Resolver {
    fn path(&self, p: &str) -> PathBuf {
        let expanded = expand_credentials(p, std::env::var_os("CREDENTIALS_DIRECTORY"));
        let p = Path::new(&expanded);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    fn secret(
        &mut self,
        section: &str,
        inline: &Option<toml::Value>,
        env: &Option<String>,
        file: &Option<String>,
    ) -> Option<Secret> {
        if inline.is_some() {
            self.problems.push(format!(
                "[{section}] password: passwords never go in the config file; use password_env = \"VAR\" or \
                 password_file = \"/path\" (readable only by caseclerk's user)"
            ));
        }
        match (env, file) {
            (Some(_), Some(_)) => {
                self.problems.push(format!(
                    "[{section}]: give password_env or password_file, not both"
                ));
                None
            }
            (None, None) => {
                self.problems.push(format!(
                    "[{section}]: needs password_env = \"VAR\" or password_file = \"/path\""
                ));
                None
            }
            _ if self.needs == Needs::NoSecrets => None,
            (Some(var), None) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Some(Secret::new(v)),
                _ => {
                    self.problems.push(format!(
                        "[{section}] password_env: environment variable {var} is not set or empty"
                    ));
                    None
                }
            },
            (None, Some(f)) => {
                let path = self.path(f);
                if let Some(problem) = secret_file_problem(&path) {
                    self.problems
                        .push(format!("[{section}] password_file {problem}"));
                    return None;
                }
                match std::fs::read_to_string(&path) {
                    Ok(v) if !v.trim_end_matches(['\n', '\r']).is_empty() => {
                        Some(Secret::new(v.trim_end_matches(['\n', '\r'])))
                    }
                    Ok(_) => {
                        self.problems.push(format!(
                            "[{section}] password_file {}: the file is empty",
                            path.display()
                        ));
                        None
                    }
                    Err(e) => {
                        self.problems.push(format!(
                            "[{section}] password_file {}: cannot read it: {e}",
                            path.display()
                        ));
                        None
                    }
                }
            }
        }
    }

    /// A server's login: a password (as before), or the shared OAuth2 client (`auth = "oauth2"`,
    /// which needs `[oauth2]`, TLS, and no password settings).
    fn login(
        &mut self,
        section: &str,
        auth: AuthKind,
        tls: TlsMode,
        password: (&Option<toml::Value>, &Option<String>, &Option<String>),
        oauth2: &Option<Arc<TokenSource>>,
    ) -> (Option<Secret>, Option<Arc<TokenSource>>) {
        match auth {
            AuthKind::Password => (
                self.secret(section, password.0, password.1, password.2),
                None,
            ),
            AuthKind::Oauth2 => {
                if password.0.is_some() || password.1.is_some() || password.2.is_some() {
                    self.problems.push(format!(
                        "[{section}] auth = \"oauth2\" logs in with a token: remove password, password_env and password_file"
                    ));
                }
                if tls == TlsMode::None {
                    self.problems.push(format!(
                        "[{section}] auth = \"oauth2\" sends a bearer token: it needs tls = \"implicit\" or \"starttls\""
                    ));
                }
                if oauth2.is_none() && !self.problems.iter().any(|p| p.starts_with("[oauth2]")) {
                    self.problems.push(format!(
                        "[{section}] auth = \"oauth2\" needs an [oauth2] section (tenant, client_id, and a client secret or certificate; see config/microsoft365.example.toml)"
                    ));
                }
                (None, oauth2.clone())
            }
        }
    }

    /// `[oauth2]`: the app registration, every problem recorded. `None` when absent or wrong.
    fn oauth2(&mut self, raw: &RawConfig) -> Option<Arc<TokenSource>> {
        let o = raw.oauth2.as_ref()?;
        let before = self.problems.len();
        let mut problem = |p: String| self.problems.push(format!("[oauth2] {p}"));
        let authority = o
            .authority
            .clone()
            .unwrap_or_else(|| crate::shell::oauth::DEFAULT_AUTHORITY.into())
            .trim_end_matches('/')
            .to_string();
        if crate::shell::oauth::split_https(&authority).is_none() {
            problem(format!(
                "authority `{authority}` must be an https:// address (default {})",
                crate::shell::oauth::DEFAULT_AUTHORITY
            ));
        }
        let plain = |v: &str| !v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() && b != b'/');
        if !plain(o.tenant.trim()) {
            problem("tenant must be the Directory (tenant) ID or the tenant's domain, e.g. \"contoso.onmicrosoft.com\"".into());
        }
        if !plain(o.client_id.trim()) {
            problem(
                "client_id must be the Application (client) ID from the app registration".into(),
            );
        }
        let scope = o
            .scope
            .clone()
            .unwrap_or_else(|| crate::shell::oauth::DEFAULT_SCOPE.into());
        if !scope.ends_with("/.default") {
            problem(format!(
                "scope `{scope}` must end in /.default for an app-only token (default {})",
                crate::shell::oauth::DEFAULT_SCOPE
            ));
        }
        if o.client_secret.is_some() {
            problem("client_secret: secrets never go in the config file; use client_secret_file = \"/path\" or client_secret_env = \"VAR\"".into());
        }
        let secret_expires = o.secret_expires.as_deref().and_then(|d| {
            NaiveDate::parse_from_str(d, "%Y-%m-%d").ok().or_else(|| {
                problem(format!(
                    "secret_expires `{d}` is not a date like \"2027-06-30\""
                ));
                None
            })
        });
        let credential = match (
            &o.client_secret_file,
            &o.client_secret_env,
            &o.certificate_file,
            &o.private_key_file,
        ) {
            (Some(f), None, None, None) => {
                Some(Credential::Secret(SecretSource::File(self.path(f))))
            }
            (None, Some(v), None, None) => Some(Credential::Secret(SecretSource::Env(v.clone()))),
            (None, None, Some(c), Some(k)) => Some(Credential::Certificate {
                cert_file: self.path(c),
                key_file: self.path(k),
            }),
            _ => {
                self.problems.push("[oauth2] give exactly one credential: client_secret_file, client_secret_env, or certificate_file with private_key_file".into());
                None
            }
        };
        if self.needs != Needs::NoSecrets {
            self.check_credential(credential.as_ref());
        }
        let ca_file = self.ca("oauth2", &o.ca_file);
        let proxy = o.proxy.as_deref().and_then(|p| {
            crate::shell::oauth::split_proxy(p).or_else(|| {
                self.problems.push(format!(
                    "[oauth2] proxy `{p}` must be the web proxy's address as http://host:port (no \
                     path, no user or password: caseclerk sends none)"
                ));
                None
            })
        });
        if self.problems.len() > before {
            return None;
        }
        Some(Arc::new(TokenSource::new(OAuth2Settings {
            authority,
            tenant: o.tenant.trim().to_string(),
            client_id: o.client_id.trim().to_string(),
            credential: credential?,
            scope,
            secret_expires,
            ca_file,
            proxy,
            timeout: Duration::from_secs(self.seconds(
                "[oauth2] timeout_seconds",
                o.timeout_seconds,
                30,
                120,
                "how long the identity provider may take to answer a token request",
            )),
        })))
    }

    /// The credential's files are readable and its variable set (it is read again at each
    /// token request, so a rotation needs no restart).
    fn check_credential(&mut self, credential: Option<&Credential>) {
        let files: Vec<(&str, &PathBuf)> = match credential {
            Some(Credential::Secret(SecretSource::File(f))) => vec![("client_secret_file", f)],
            Some(Credential::Secret(SecretSource::Env(v))) => {
                if std::env::var(v).map(|s| s.is_empty()).unwrap_or(true) {
                    self.problems.push(format!(
                        "[oauth2] client_secret_env: environment variable {v} is not set or empty"
                    ));
                }
                vec![]
            }
            Some(Credential::Certificate {
                cert_file,
                key_file,
            }) => vec![
                ("certificate_file", cert_file),
                ("private_key_file", key_file),
            ],
            None => vec![],
        };
        for (key, f) in files {
            if key != "certificate_file"
                && let Some(problem) = secret_file_problem(f)
            {
                self.problems.push(format!("[oauth2] {key} {problem}"));
                continue;
            }
            if let Err(e) = std::fs::metadata(f).and_then(|_| std::fs::File::open(f)) {
                self.problems.push(format!(
                    "[oauth2] {key} {}: cannot read it: {e}",
                    f.display()
                ));
            }
        }
    }

    fn check_tls(&mut self, section: &str, host: &str, tls: TlsMode) {
        if tls == TlsMode::None && !is_loopback(host) {
            self.problems.push(format!(
                "[{section}] tls = \"none\" is only allowed to a loopback host; {host} needs \"implicit\" or \"starttls\""
            ));
        }
    }

    fn ca(&mut self, section: &str, ca: &Option<String>) -> Option<PathBuf> {
        let p = self.path(ca.as_ref()?);
        // The demo's CA is created when the local mail stack starts, so only warn-free check here
        // when it should exist already.
        if self.needs != Needs::NoSecrets && !p.is_file() {
            self.problems
                .push(format!("[{section}] ca_file {}: no such file", p.display()));
        }
        Some(p)
    }

    fn contacts(&mut self, owner: &str, list: &[Contact]) {
        for c in list {
            if !valid_email(&c.email) {
                self.problems
                    .push(format!("{owner}: `{}` is not an email address", c.email));
            }
            if let Some(p) = &c.partner
                && !matches!(p.as_str(), "la" | "police" | "icb")
            {
                self.problems.push(format!(
                    "{owner}: partner `{p}` is not one of la, police, icb"
                ));
            }
        }
    }

    fn resolve(mut self, file: &str, raw: RawConfig) -> Result<Config, ConfigError> {
        let (address, own_addresses, id_domain) = self.addresses(&raw.mailbox);
        let oauth2 = self.oauth2(&raw);
        let imap = self.imap(&raw.mailbox, &oauth2);
        let smtp = self.smtp(&raw.smtp, &oauth2);

        let database = self.path(raw.storage.database.as_deref().unwrap_or("caseclerk.db"));
        let templates_dir = self.path(raw.templates.dir.as_deref().unwrap_or("../mail-templates"));
        if !templates_dir.is_dir() {
            self.problems.push(format!(
                "[templates] dir {}: no such directory",
                templates_dir.display()
            ));
        }
        let (calendar, cutoff) = self.calendar(&raw.calendar);

        // Process.
        let process_file = process_path(&self.base, &raw.partnership.process);
        let process = match load_process(&process_file, &templates_dir) {
            Ok(p) => Some(p),
            Err(e) => {
                self.problems.extend(
                    e.problems
                        .into_iter()
                        .map(|p| format!("process {}: {p}", process_file.display())),
                );
                None
            }
        };

        let area_roles = self.roles(&raw, process.as_ref());
        let attachments = self.attachments(&raw.attachments);
        self.agencies(&raw.agencies);
        let digest = raw
            .digest
            .as_ref()
            .map(|d| self.digest(d, &raw.roles, &templates_dir));
        let authserv_id = raw
            .decisions
            .authserv_id
            .clone()
            .filter(|s| !s.trim().is_empty());
        let trust = self.senders(raw.senders, authserv_id.clone());

        let prefix = raw
            .partnership
            .reference_prefix
            .clone()
            .unwrap_or_else(|| "RR".into());
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_uppercase()) {
            self.problems.push(format!(
                "[partnership] reference_prefix `{prefix}` must be capital letters (e.g. \"RR\")"
            ));
        }

        let limits = self.limits(&raw.limits);
        let banners = self.banners(&raw.mail);
        let mut retention = self.retention(&raw.retention);
        retention.sent_letters_filed =
            imap.sent_copy == SentCopy::Caseclerk && imap.sent_folder.is_some();
        let paperwork = self.paperwork(&raw.letters);
        let web = raw.web.as_ref().map(|w| self.web(w));

        if !self.problems.is_empty() {
            return Err(ConfigError {
                file: file.to_string(),
                problems: self.problems,
            });
        }
        let (Some(process), Some(calendar)) = (process, calendar) else {
            unreachable!("a missing process or calendar always records a problem")
        };
        let lower = |list: Vec<Agency>| {
            list.into_iter()
                .map(|mut a| {
                    a.contact.email = a.contact.email.to_lowercase();
                    a.domains = a.domains.iter().map(|d| d.to_lowercase()).collect();
                    a
                })
                .collect()
        };
        Ok(Config {
            file: PathBuf::from(file),
            short_name: raw
                .partnership
                .short_name
                .clone()
                .unwrap_or_else(|| raw.partnership.name.clone()),
            partnership_name: raw.partnership.name,
            reference_prefix: prefix,
            address,
            own_addresses,
            id_domain,
            imap,
            smtp,
            database,
            templates_dir,
            process,
            calendar,
            cutoff,
            directory: Directory {
                roles: raw.roles,
                area_roles,
                agencies: lower(raw.agencies),
            },
            attachments,
            authserv_id,
            digest,
            trust,
            first_run_late_days: raw
                .first_run
                .late_letters_days
                .unwrap_or(crate::core::firstrun::DEFAULT_LATE_LETTERS_DAYS),
            banners,
            limits,
            retention,
            paperwork,
            web,
        })
    }

    /// `[retention]`: each value a whole number, none below its floor
    /// ([`crate::core::retention::Schedule::problems`]); every problem reported.
    fn retention(&mut self, raw: &RawRetention) -> crate::core::retention::Schedule {
        use crate::core::retention::Schedule;
        let d = Schedule::default();
        let mut whole = |key: &str, value: Option<i64>, default: u32| match value {
            None => default,
            Some(n) => u32::try_from(n).unwrap_or_else(|_| {
                self.problems.push(format!(
                    "[retention] {key} = {n} must be a whole number (the default is {default})"
                ));
                default
            }),
        };
        let s = Schedule {
            closed_case_years: whole(
                "closed_case_years",
                raw.closed_case_years,
                d.closed_case_years,
            ),
            letter_days: whole("letter_days", raw.letter_days, d.letter_days),
            triage_days: whole("triage_days", raw.triage_days, d.triage_days),
            other_mail_days: whole("other_mail_days", raw.other_mail_days, d.other_mail_days),
            signin_days: whole("signin_days", raw.signin_days, d.signin_days),
            sent_letters_filed: d.sent_letters_filed,
        };
        for (_, problem) in s.problems() {
            self.problems.push(format!("[retention] {problem}"));
        }
        s
    }

    /// `[limits]`: each cap a whole number from 1 to 100 (0 would silence caseclerk; a cap in
    /// the hundreds is no backstop against a loop).
    fn limits(&mut self, raw: &RawLimits) -> crate::core::limits::Limits {
        let d = crate::core::limits::Limits::default();
        let mut cap = |key: &str, value: Option<i64>, default: u32| match value {
            None => default,
            Some(n @ 1..=100) => n as u32,
            Some(n) => {
                self.problems.push(format!(
                    "[limits] {key} = {n} must be a whole number from 1 to 100 (the default is {default})"
                ));
                default
            }
        };
        crate::core::limits::Limits {
            answers_per_address_per_day: cap(
                "answers_per_address_per_day",
                raw.answers_per_address_per_day,
                d.answers_per_address_per_day,
            ),
            cases_per_sender_per_day: cap(
                "cases_per_sender_per_day",
                raw.cases_per_sender_per_day,
                d.cases_per_sender_per_day,
            ),
        }
    }

    /// `[mail] banners`: each a phrase with at least one letter or digit (it is compared folded).
    fn banners(&mut self, raw: &RawMail) -> Vec<String> {
        let mut out = Vec::new();
        for (i, b) in raw.banners.iter().enumerate() {
            if crate::core::text::fold(b).is_empty() {
                self.problems.push(format!(
                    "[mail] banners[{i}] has no letters or digits: write the banner's first words, e.g. \"CAUTION: This email originated\""
                ));
            } else {
                out.push(b.clone());
            }
        }
        out
    }

    /// `[senders]`: trusted domain patterns and the spam headers, every problem recorded.
    fn senders(
        &mut self,
        raw: RawSenders,
        authserv_id: Option<String>,
    ) -> crate::core::trust::Policy {
        use crate::core::trust::{SpamRule, check_pattern};
        let mut trusted_domains = Vec::new();
        for d in raw.trusted_domains {
            let d = d.trim().to_ascii_lowercase();
            match check_pattern(&d) {
                Ok(()) => trusted_domains.push(d),
                Err(e) => self
                    .problems
                    .push(format!("[senders] trusted_domains: {e}")),
            }
        }
        let header_ok =
            |h: &str| !h.is_empty() && h.bytes().all(|b| b.is_ascii_graphic() && b != b':');
        let mut spam = Vec::new();
        for f in raw.spam_flag.map(OneOrMany::into_vec).unwrap_or_default() {
            let header = f.header.trim().to_string();
            if !header_ok(&header) {
                self.problems.push(format!(
                    "[senders] spam_flag: header `{header}` is not a header name (e.g. \"X-Spam-Flag\")"
                ));
            }
            if f.value.trim().is_empty() {
                self.problems.push(format!(
                    "[senders] spam_flag for {header}: value is empty (e.g. value = \"YES\")"
                ));
            }
            spam.push(SpamRule::Flag {
                header,
                value: f.value.trim().to_string(),
            });
        }
        for sc in raw.spam_score.map(OneOrMany::into_vec).unwrap_or_default() {
            let header = sc.header.trim().to_string();
            if !header_ok(&header) {
                self.problems.push(format!(
                    "[senders] spam_score: header `{header}` is not a header name (e.g. \"X-Spam-Score\")"
                ));
            }
            let (threshold, inclusive) = match (sc.above, sc.at_least) {
                (Some(a), None) => (a, false),
                (None, Some(a)) => (a, true),
                _ => {
                    self.problems.push(format!(
                        "[senders] spam_score for {header}: give exactly one of `above` (spam when \
                         the score is over it) or `at_least` (spam from it up)"
                    ));
                    (0.0, false)
                }
            };
            if !threshold.is_finite() {
                self.problems.push(format!(
                    "[senders] spam_score for {header}: the threshold must be a number"
                ));
            }
            spam.push(SpamRule::Score {
                header,
                threshold,
                inclusive,
            });
        }
        crate::core::trust::Policy {
            authserv_id,
            spam,
            trusted_domains,
        }
    }

    /// The mailbox's own address (lower case), every address that is ours, and the Message-ID
    /// domain.
    fn addresses(&mut self, m: &RawImap) -> (String, Vec<String>, String) {
        let address = m.address.trim().to_lowercase();
        if !valid_email(&address) {
            self.problems.push(format!(
                "[mailbox] address `{}` is not an email address",
                m.address
            ));
        }
        let mut own_addresses = vec![address.clone()];
        for a in &m.aliases {
            if !valid_email(a) {
                self.problems
                    .push(format!("[mailbox] alias `{a}` is not an email address"));
            }
            own_addresses.push(a.trim().to_lowercase());
        }
        let id_domain = m.id_domain.clone().unwrap_or_else(|| {
            address
                .split_once('@')
                .map(|(_, d)| d.to_string())
                .unwrap_or_else(|| "caseclerk.invalid".into())
        });
        (address, own_addresses, id_domain)
    }

    /// `[mailbox] sent_copy`, or what the older `file_sent` meant (`false`: nothing filed, as
    /// `"none"`); both at once is a problem, as is a grace of zero.
    fn sent_copy(&mut self, m: &RawImap) -> SentCopy {
        if m.in_doubt_grace_seconds == Some(0) {
            self.problems.push(
                "[mailbox] in_doubt_grace_seconds must be at least 1 (the server's copy needs time to arrive; default 120)".into(),
            );
        }
        match (m.sent_copy, m.file_sent) {
            (Some(_), Some(_)) => {
                self.problems.push(
                    "[mailbox] has both sent_copy and file_sent: keep sent_copy only (file_sent = true is sent_copy = \"caseclerk\", file_sent = false is sent_copy = \"none\")".into(),
                );
                SentCopy::Caseclerk
            }
            (Some(c), None) => c,
            (None, Some(false)) => SentCopy::None,
            (None, _) => SentCopy::Caseclerk,
        }
    }

    /// `[mailbox]`: the IMAP connection.
    fn imap(&mut self, m: &RawImap, oauth2: &Option<Arc<TokenSource>>) -> ImapSettings {
        self.check_tls("mailbox", &m.host, m.tls);
        let (imap_password, oauth2) = self.login(
            "mailbox",
            m.auth,
            m.tls,
            (&m.password, &m.password_env, &m.password_file),
            oauth2,
        );
        let sent_copy = self.sent_copy(m);
        let sent_folder = match (sent_copy, &m.sent_folder) {
            (SentCopy::None, _) => None,
            (_, Some(f)) if f.trim().is_empty() => {
                self.problems.push(
                    "[mailbox] sent_folder is empty: name the folder (e.g. \"Sent Items\") or set sent_copy = \"none\"".into(),
                );
                None
            }
            (_, f) => Some(f.clone().unwrap_or_else(|| "Sent Items".into())),
        };
        let poll = self.seconds(
            "[mailbox] poll_seconds",
            m.poll_seconds,
            60,
            3600,
            "how often a server without IDLE is polled",
        );
        let timeout = self.seconds(
            "[mailbox] timeout_seconds",
            m.timeout_seconds,
            60,
            3600,
            "how long one IMAP command may take",
        );
        let check = self.seconds(
            "[mailbox] check_seconds",
            m.check_seconds,
            DEFAULT_CHECK_SECONDS,
            MAX_CHECK_SECONDS,
            "how often the watcher proves its connection alive; 60 notices a stalled server within two minutes",
        );
        let fetch = self.seconds(
            "[mailbox] fetch_seconds",
            m.fetch_seconds,
            DEFAULT_FETCH_SECONDS,
            MAX_FETCH_SECONDS,
            "the safety-net fetch, whether or not the watcher signals",
        );
        let imap = ImapSettings {
            host: m.host.clone(),
            port: m.port.unwrap_or(match m.tls {
                TlsMode::Implicit => 993,
                _ => 143,
            }),
            tls: m.tls,
            username: m.username.clone(),
            password: imap_password,
            folder: m.folder.clone().unwrap_or_else(|| "INBOX".into()),
            ca_file: self.ca("mailbox", &m.ca_file),
            oauth2,
            sent_folder,
            sent_copy,
            in_doubt_grace: Duration::from_secs(m.in_doubt_grace_seconds.unwrap_or(120)),
            idle_refresh: Duration::from_secs(60 * m.idle_refresh_minutes.unwrap_or(25)),
            poll_interval: Duration::from_secs(poll),
            command_timeout: Duration::from_secs(timeout),
            check_interval: Duration::from_secs(check),
            fetch_interval: Duration::from_secs(fetch),
        };
        if m.idle_refresh_minutes.is_some_and(|v| v == 0 || v >= 29) {
            self.problems.push(
                "[mailbox] idle_refresh_minutes must be between 1 and 28 (servers drop IDLE after 29-30 minutes)"
                    .into(),
            );
        }
        imap
    }

    /// `[smtp]`: the submission connection.
    fn smtp(&mut self, s: &RawSmtp, oauth2: &Option<Arc<TokenSource>>) -> SmtpSettings {
        self.check_tls("smtp", &s.host, s.tls);
        let (smtp_password, oauth2) = self.login(
            "smtp",
            s.auth,
            s.tls,
            (&s.password, &s.password_env, &s.password_file),
            oauth2,
        );
        SmtpSettings {
            host: s.host.clone(),
            port: s.port.unwrap_or(match s.tls {
                TlsMode::Implicit => 465,
                _ => 587,
            }),
            tls: s.tls,
            username: s.username.clone(),
            password: smtp_password,
            password_file: s.password_file.as_deref().map(|f| self.path(f)),
            ca_file: self.ca("smtp", &s.ca_file),
            oauth2,
            timeout: Duration::from_secs(self.seconds(
                "[smtp] timeout_seconds",
                s.timeout_seconds,
                60,
                300,
                "how long the mail server may take over one letter, beyond its upload (allowed \
                 at 64 KB/s); a pass stops at a server that does not answer",
            )),
        }
    }

    /// A number of seconds between 1 and `high` (`default` when absent); a problem otherwise.
    fn seconds(
        &mut self,
        key: &str,
        value: Option<u64>,
        default: u64,
        high: u64,
        what: &str,
    ) -> u64 {
        match value {
            None => default,
            Some(v) if (1..=high).contains(&v) => v,
            Some(v) => {
                self.problems
                    .push(format!("{key} = {v} must be between 1 and {high} ({what})"));
                default
            }
        }
    }

    /// `[calendar]`: closure days, the day's cut-off and the bank holiday data.
    fn calendar(&mut self, raw: &RawCalendar) -> (Option<Calendar>, Option<NaiveTime>) {
        let mut closures = Vec::new();
        for c in &raw.closures {
            match NaiveDate::parse_from_str(&c.date, "%Y-%m-%d") {
                Ok(d) => closures.push((d, c.reason.clone())),
                Err(_) => self.problems.push(format!(
                    "[calendar] closure date `{}` is not a date like \"2026-12-29\"",
                    c.date
                )),
            }
        }
        let cutoff = raw.cutoff.as_deref().and_then(|t| {
            NaiveTime::parse_from_str(t, "%H:%M").ok().or_else(|| {
                self.problems.push(format!(
                    "[calendar] cutoff `{t}` is not a time like \"17:00\""
                ));
                None
            })
        });
        let holidays = raw.holidays_file.as_deref().map(|p| self.path(p));
        let calendar = match load_calendar(holidays.as_deref(), closures) {
            Ok(c) => Some(c),
            Err(e) => {
                self.problems.push(e);
                None
            }
        };
        (calendar, cutoff)
    }

    /// `[roles]` and `[areas]`: every contact checked, every area known to the process, and
    /// somebody in every role the process writes to. Returns the roles by area.
    fn roles(
        &mut self,
        raw: &RawConfig,
        process: Option<&Process>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<Contact>>> {
        for (role, list) in &raw.roles {
            self.contacts(&format!("[roles] {role}"), list);
        }
        let mut area_roles = BTreeMap::new();
        for (area, a) in &raw.areas {
            for (role, list) in &a.roles {
                self.contacts(&format!("[areas.\"{area}\".roles] {role}"), list);
            }
            area_roles.insert(area.clone(), a.roles.clone());
        }
        let Some(p) = process else {
            return area_roles;
        };
        let declared: BTreeSet<&String> = p.areas.iter().collect();
        for area in raw.areas.keys() {
            if !declared.contains(area) {
                self.problems.push(format!(
                    "[areas.\"{area}\"]: the process {} has no such area (it has: {})",
                    p.id,
                    if p.areas.is_empty() {
                        "none".into()
                    } else {
                        p.areas.join(", ")
                    }
                ));
            }
        }
        for role in p.directory_roles() {
            let default = raw.roles.get(&role).is_some_and(|l| !l.is_empty());
            if default {
                continue;
            }
            if p.areas.is_empty() {
                self.problems.push(format!(
                    "[roles] {role}: the process writes to this role but nobody is listed"
                ));
            } else {
                for area in &p.areas {
                    let listed = raw
                        .areas
                        .get(area)
                        .and_then(|a| a.roles.get(&role))
                        .is_some_and(|l| !l.is_empty());
                    if !listed {
                        self.problems.push(format!(
                            "role {role}: the process writes to it but nobody is listed in [roles] or [areas.\"{area}\".roles]"
                        ));
                    }
                }
            }
        }
        for name in p.attachment_names() {
            if !RESERVED_ATTACHMENTS.contains(&name.as_str())
                && !raw.attachments.contains_key(&name)
            {
                self.problems.push(format!(
                    "[attachments] {name}: the process attaches it but no file is named"
                ));
            }
        }
        area_roles
    }

    /// `[attachments]`: each named file exists (asked by `caseclerk check` only: see
    /// [`Needs::Everything`]).
    fn attachments(&mut self, raw: &BTreeMap<String, String>) -> BTreeMap<String, PathBuf> {
        let mut attachments = BTreeMap::new();
        for (name, p) in raw {
            let path = self.path(p);
            if !path.is_file() && self.needs == Needs::Check {
                self.problems.push(format!(
                    "[attachments] {name}: {} is not a file",
                    path.display()
                ));
            }
            attachments.insert(name.clone(), path);
        }
        attachments
    }

    /// `[[agency]]`: each listed once, its contact, lead and deputy checked.
    fn agencies(&mut self, agencies: &[Agency]) {
        let mut ids = BTreeSet::new();
        for a in agencies {
            if !ids.insert(a.id.clone()) {
                self.problems
                    .push(format!("[[agency]] `{}` is listed twice", a.id));
            }
            self.contacts(
                &format!("[[agency]] {}", a.id),
                std::slice::from_ref(&a.contact),
            );
            if let Some(l) = &a.lead {
                self.contacts(
                    &format!("[[agency]] {} lead", a.id),
                    std::slice::from_ref(l),
                );
            }
            if let Some(d) = &a.deputy {
                self.contacts(
                    &format!("[[agency]] {} deputy", a.id),
                    std::slice::from_ref(d),
                );
            }
        }
    }

    /// `[letters]`: a marking of capital letters, digits, spaces and hyphens on one line (it
    /// opens every subject); a signature with a name and a phone number; a meeting link that is
    /// an https address. Blank values are as if unset.
    fn paperwork(&mut self, raw: &RawLetters) -> crate::core::letters::Paperwork {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let marking = given(&raw.marking);
        if let Some(m) = &marking
            && (m.len() > 40
                || !m
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == ' '))
        {
            self.problems.push(format!(
                "[letters] marking = \"{m}\": use capital letters, digits, spaces and hyphens, at \
                 most 40 (e.g. \"OFFICIAL-SENSITIVE\")"
            ));
        }
        let signature = raw.signature.as_ref().map(|s| {
            if s.name.trim().is_empty() || s.phone.trim().is_empty() {
                self.problems.push(
                    "[letters] signature needs the officer's name and phone number \
                     (signature = { name = \"…\", title = \"…\", phone = \"…\" })"
                        .into(),
                );
            }
            crate::core::letters::Signature {
                name: s.name.trim().to_string(),
                title: given(&s.title),
                phone: s.phone.trim().to_string(),
            }
        });
        let meeting_link = given(&raw.meeting_link);
        if let Some(l) = &meeting_link
            && (!l.starts_with("https://") || l.chars().any(char::is_whitespace))
        {
            self.problems.push(format!(
                "[letters] meeting_link = \"{l}\": give the online meeting's https:// address"
            ));
        }
        crate::core::letters::Paperwork {
            marking,
            signature,
            meeting_location: given(&raw.meeting_location),
            meeting_link,
        }
    }

    /// `[digest]`: a time like "08:00", a role with people in `[roles]`, and the digest's
    /// templates in the templates folder.
    fn digest(
        &mut self,
        raw: &RawDigest,
        roles: &BTreeMap<String, Vec<Contact>>,
        templates_dir: &Path,
    ) -> DigestSettings {
        let at = match raw.at.as_deref() {
            None => NaiveTime::from_hms_opt(8, 0, 0).expect("valid time"),
            Some(t) => NaiveTime::parse_from_str(t, "%H:%M").unwrap_or_else(|_| {
                self.problems.push(format!(
                    "[digest] at = \"{t}\" is not a London time like \"08:00\""
                ));
                NaiveTime::from_hms_opt(8, 0, 0).expect("valid time")
            }),
        };
        let to = raw.to.clone().unwrap_or_else(|| "business_unit".into());
        if roles.get(&to).is_none_or(Vec::is_empty) {
            self.problems.push(format!(
                "[digest] to = \"{to}\": nobody is listed in [roles] {to} (list the business unit there, or name another role)"
            ));
        }
        let template = crate::core::digest::TEMPLATE;
        if templates_dir.is_dir() && !template_exists(templates_dir, template) {
            self.problems.push(format!(
                "[digest]: the templates folder {} has no {template}.subject.hbs, {template}.text.hbs and {template}.html.hbs (the digest is laid out by them)",
                templates_dir.display()
            ));
        }
        DigestSettings { at, to }
    }
}

/// `$CREDENTIALS_DIRECTORY/…` or `${CREDENTIALS_DIRECTORY}/…` at the start of a path becomes
/// systemd's credentials folder (`LoadCredential=`), when the daemon runs with one.
fn expand_credentials(p: &str, dir: Option<std::ffi::OsString>) -> String {
    let rest = p
        .strip_prefix("${CREDENTIALS_DIRECTORY}")
        .or_else(|| p.strip_prefix("$CREDENTIALS_DIRECTORY"));
    match (rest, dir) {
        (Some(rest), Some(dir)) => format!("{}{rest}", dir.to_string_lossy()),
        _ => p.to_string(),
    }
}

/// What is wrong with a secret's file before it is read: a credentials path outside systemd, or
/// a file every user on the server may read (then the command that fixes it). `None` when fine
/// (or missing: reading it says so).
fn secret_file_problem(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let shown = path.display();
    if shown.to_string().starts_with("$CREDENTIALS_DIRECTORY")
        || shown.to_string().starts_with("${CREDENTIALS_DIRECTORY}")
    {
        return Some(format!(
            "{shown}: $CREDENTIALS_DIRECTORY is not set — systemd sets it for a unit with \
             LoadCredential=; check under the unit's credentials with `systemd-run -P --wait \
             -p LoadCredential=<name>:<file> caseclerk check`, or name the file itself"
        ));
    }
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o007 != 0).then(|| {
        format!(
            "{shown}: every user on this server may read it (mode {:04o}); run `chmod 600 {shown}` \
             (and `chown` it to caseclerk's user), or load it with systemd's LoadCredential=",
            mode & 0o7777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_file_every_user_may_read_is_refused_with_the_command_that_fixes_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir =
            std::env::temp_dir().join(format!("caseclerk-secret-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("password");
        std::fs::write(&f, "pw").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let problem = secret_file_problem(&f).expect("refused");
        assert!(problem.contains("mode 0644"), "{problem}");
        assert!(
            problem.contains(&format!("chmod 600 {}", f.display())),
            "{problem}"
        );
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(
            secret_file_problem(&f),
            None,
            "the daemon's group may read it"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_credentials_path_is_systemds_folder_when_it_has_one() {
        let dir = Some(std::ffi::OsString::from(
            "/run/credentials/caseclerk.service",
        ));
        assert_eq!(
            expand_credentials("${CREDENTIALS_DIRECTORY}/mailbox-password", dir.clone()),
            "/run/credentials/caseclerk.service/mailbox-password"
        );
        assert_eq!(
            expand_credentials("$CREDENTIALS_DIRECTORY/x", dir),
            "/run/credentials/caseclerk.service/x"
        );
        assert_eq!(
            expand_credentials("$CREDENTIALS_DIRECTORY/x", None),
            "$CREDENTIALS_DIRECTORY/x"
        );
        let outside = secret_file_problem(Path::new("$CREDENTIALS_DIRECTORY/x")).unwrap();
        assert!(outside.contains("LoadCredential="), "{outside}");
    }

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "***");
    }

    #[test]
    fn plain_text_is_refused_away_from_loopback() {
        assert!(is_loopback("127.0.0.1"));
        assert!(is_loopback("::1"));
        assert!(is_loopback("localhost"));
        assert!(!is_loopback("imap.example.org"));
    }

    #[test]
    fn process_names_and_paths_resolve_next_to_the_config() {
        let base = Path::new("/etc/caseclerk");
        assert_eq!(
            process_path(base, "bury"),
            PathBuf::from("/etc/caseclerk/processes/bury.toml")
        );
        assert_eq!(
            process_path(base, "custom/mine.toml"),
            PathBuf::from("/etc/caseclerk/custom/mine.toml")
        );
    }

    #[test]
    fn addresses_are_checked_loosely_but_reject_obvious_mistakes() {
        assert!(valid_email("bsp@bury.gov.uk"));
        assert!(!valid_email("bsp at bury"));
        assert!(!valid_email("A <a@b.c>"));
        assert!(!valid_email("@bury.gov.uk"));
    }
}
