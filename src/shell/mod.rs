//! The imperative shell: it moves bytes and state, and decides nothing a rule could decide.
//!
//! - [`config`]: raw TOML → a resolved configuration, every problem reported at once.
//! - [`connect`]: `check --connect`, every connection tried once, one line each.
//! - [`dial`]: reaching a server over TCP, IPv6 and IPv4 side by side (Happy Eyeballs).
//! - [`store`]: the SQLite database (raw messages, cases, events, outbox).
//! - [`mailbox`]: IMAP fetch and IDLE; stores raw bytes and the UID watermark.
//! - [`oauth`]: the OAuth2 token client (Microsoft 365 app-only login), one cached token.
//! - [`backup`]: `backup` and `restore`, a consistent copy of the database while the daemon runs.
//! - [`attachments`]: reads what a letter attaches (the referral, returns, configured files).
//! - [`dryrun`]: `tick --dry-run`, the real pass against a throwaway copy of the database.
//! - [`firstrun`]: the first look at a full mailbox (`--since`, the first run's record).
//! - [`private`]: owner-only files (an exported tracker, a password).
//! - [`progress`]: a long pass's progress on a terminal (never in logs).
//! - [`engine`]: one pass (`tick`) and the daemon loop (`run`): loads, calls the core, stores.
//! - [`outbox`]: sends queued letters over SMTP and records the result.
//! - [`sentfolder`]: files every letter sent in the shared mailbox's sent folder, once.
//! - [`operator`]: corrections a person records by hand, with who and why.
//! - [`periodic`]: queues the daily digest and the tracker report when they fall due.
//! - [`planmemo`]: what the planning pass remembers between passes (which cases have nothing to do).
//! - [`snapshot`]: reads every case from the store into the core's views.
//! - [`health`]: `caseclerk health`, the facts the daemon recorded, read-only, for monitoring.
//! - [`secret`]: a password or token in memory, never printed.
//! - [`sdnotify`]: systemd's ready, status and watchdog notifications (`Type=notify`).
//! - [`report`]: `caseclerk case`, one case's history as text.
//! - [`retention`]: the retention schedule applied (daily, `caseclerk retention`), real erasure,
//!   and legal hold (`caseclerk hold` / `release`).
//! - [`export_case`]: `caseclerk export-case`, everything held about one case, into a folder.
//! - [`verify`]: `caseclerk verify`, the tamper-evident history checked; the daily chain head.
//! - [`web`]: the business unit's web workspace (`caseclerk serve`): accounts, sessions, pages, actions.
//! - [`templates`]: reads the letter templates folder.
//! - [`cli`]: the command line; [`logging`]: the log, wire-level libraries capped whatever
//!   `RUST_LOG` says.
//! - [`clock`]: the one clock; [`tls`]: TLS client configuration.
//! - [`allocator`]: glibc's large buffers go back to the system when freed (a re-execution).
//!
//! Must not: decide what a message is, what it does to a case, or what is due (that is
//! [`crate::core`]); log names, subjects, bodies or addresses.

pub mod allocator;
pub mod attachments;
pub mod backup;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect;
pub mod dial;
pub mod dryrun;
pub mod engine;
pub mod export_case;
pub mod firstrun;
pub mod health;
pub mod logging;
pub mod mailbox;
pub mod oauth;
pub mod operator;
pub mod outbox;
pub mod periodic;
pub mod planmemo;
pub mod private;
pub mod progress;
pub mod report;
pub mod retention;
pub mod sdnotify;
pub mod secret;
pub mod sentfolder;
pub mod snapshot;
pub mod store;
pub mod templates;
pub mod tls;
pub mod verify;
pub mod web;
