//! The functional core: plain functions over data, tested without any server.
//!
//! - [`calendar`]: working days, bank holidays, day 0, explained dates, London date formats.
//! - [`process`]: a partnership's timeline as data (`config/processes/*.toml`), validated.
//! - [`directory`]: the people in each role and the agency directory, as data.
//! - [`identity`]: when two fetched messages are the same message (the de-duplication rule).
//! - [`indoubt`]: a letter whose outcome was never recorded: wait, look for the server's copy, record, or resend.
//! - [`packing`]: an email's bytes ⇄ a skeleton and its large encoded parts, stored once by SHA-256.
//! - [`intake`]: raw message bytes → a plain [`intake::Message`]; never panics.
//! - [`classify`]: ordered, named rules → a [`classify::Verdict`] with reasons.
//! - [`deciding`]: the guard against a message that stops caseclerk whenever it is decided.
//! - [`case`]: a case's events folded into its state.
//! - [`case_export`]: one case's messages, letters and history as the files of `export-case`.
//! - [`chain`]: the tamper-evident history: each event's hash chained to the one before.
//! - [`firstrun`]: the first run on a full mailbox: old mail left, stale letters imported — not sent.
//! - [`health`]: facts the daemon recorded → findings at monitoring levels (OK … CRITICAL).
//! - [`oauth`]: what a token endpoint's refusal means, when a token is renewed, XOAUTH2.
//! - [`limits`]: the caps on letters in answer and cases per sender that end any mail loop.
//! - [`reaction`]: what a reaction is made of (the types react returns and limits bounds).
//! - [`react`]: what a message does to a case, and what counting the votes does: named rules.
//! - [`decisions`]: vote codes, reading a vote from a reply, Authentication-Results, the quorum.
//! - [`agencies`]: agency names as people write them → directory ids (unknown names reported).
//! - [`trust`]: who may open a case (server verdict, trusted domains) and unsafe attachments.
//! - [`conversation`]: Outlook's Thread-Index on our letters and the conversation a reply names.
//! - [`text`]: a reply cut from its quoted history; text folded for comparison.
//! - [`tnef`]: the files inside a `winmail.dat` (Outlook's rich-text attachments).
//! - [`area`]: the one area (borough) a referral names.
//! - [`records`]: the rows the store hands over (a case, its events, a letter summary).
//! - [`retention`]: the retention schedule and the named rules that say what content goes, and why.
//! - [`timeline`]: process + case state + now → letters due and the next wake-up.
//! - [`upgrade`]: steps new to the installation apply to what falls due from then on.
//! - [`letters`]: a due letter → the data its template sees, rendered subject, text and HTML.
//! - [`views`]: a snapshot of every case for the business unit (labels, never addresses).
//! - [`digest`]: a snapshot → the business unit's daily digest as data, laid out by its templates.
//! - [`export`]: a snapshot → the tracker, one row per case (CSV, XLSX).
//! - [`workspace`]: what the web workspace shows of the views (case lines, votes by name, timeline).
//! - [`access`]: the web workspace's roles, lockout after failed sign-ins and session life.
//! - [`totp`]: the web workspace's optional second factor (RFC 6238 codes, base32, otpauth://).
//!
//! Must not: read the clock, the database, the network or the file system (templates and process
//! files arrive already loaded); log personal data; import anything from [`crate::shell`].

pub mod access;
pub mod agencies;
pub mod area;
pub mod calendar;
pub mod case;
pub mod case_export;
pub mod chain;
pub mod classify;
pub mod conversation;
pub mod deciding;
pub mod decisions;
pub mod digest;
pub mod directory;
pub mod export;
pub mod firstrun;
pub mod health;
pub mod identity;
pub mod indoubt;
pub mod intake;
pub mod letters;
pub mod limits;
pub mod oauth;
pub mod packing;
pub mod particulars;
pub mod process;
pub mod react;
pub mod reaction;
pub mod records;
pub mod retention;
pub mod text;
pub mod timeline;
pub mod tnef;
pub mod totp;
pub mod trust;
pub mod upgrade;
pub mod views;
pub mod workspace;
