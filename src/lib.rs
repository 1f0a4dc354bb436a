//! caseclerk: the clerical half of a safeguarding children partnership's rapid reviews.
//!
//! Agencies email the partnership's shared inbox; caseclerk watches it, recognises referrals and
//! agency returns, opens a case with a working-day timeline, sends each letter on the right working
//! day, chases late agencies, takes decisions from email replies and keeps the tracker.
//!
//! # Where things live
//! The functional core is pure (no I/O, no clock reads, no logging of personal data):
//! - [`calendar`]: working days, bank holidays, day 0, explained dates.
//! - [`process`]: a partnership's timeline as data (`config/processes/*.toml`), validated.
//! - [`intake`]: raw message bytes → a plain [`intake::Message`]; never panics.
//! - [`classify`]: ordered, named rules → a [`classify::Verdict`] with reasons.
//! - [`case`]: a case's events folded into its state.
//! - [`timeline`]: process + case state + now → letters due and the next wake-up.
//! - [`letters`]: a due letter → rendered subject, text and HTML from `mail-templates/`.
//! - [`decisions`]: vote codes, reading a vote from a reply, Authentication-Results, the quorum.
//! - [`agencies`]: agency names as people write them → directory ids (unknown names reported).
//! - [`digest`]: a snapshot of every case → the business unit's daily digest (text and HTML).
//! - [`export`]: a snapshot → the tracker, one row per case (CSV, XLSX).
//!
//! The imperative shell moves bytes and state:
//! - [`config`]: raw TOML → a resolved configuration, every problem reported at once.
//! - [`store`]: the SQLite database (raw messages, cases, events, outbox).
//! - [`mailbox`]: IMAP fetch and IDLE; stores raw bytes and the UID watermark.
//! - [`outbox`]: sends decided letters over SMTP and records the result.
//! - [`engine`]: one pass (`tick`) and the daemon loop (`run`).
//! - [`operator`]: corrections a person records by hand (agencies, decisions), with who and why.
//! - [`views`]: read-only snapshots of every case for the business unit (no addresses, no content).
//! - [`periodic`]: when the daily digest and the tracker report are due; queues them.
//! - [`cli`]: the command line; [`demo`] and [`bench`] run against [`devstack`], a throwaway local
//!   Dovecot + Postfix.
//!
//! A letter is *decided* in [`timeline`], *rendered* in [`letters`], *queued* by [`engine`] and
//! *sent* by [`outbox`].

pub mod agencies;
pub mod bench;
pub mod calendar;
pub mod case;
pub mod classify;
pub mod cli;
pub mod clock;
pub mod config;
pub mod decisions;
pub mod demo;
pub mod devstack;
pub mod digest;
pub mod engine;
pub mod export;
pub mod intake;
pub mod letters;
pub mod mailbox;
pub mod operator;
pub mod outbox;
pub mod periodic;
pub mod process;
pub mod report;
pub mod store;
pub mod timeline;
pub mod tls;
pub mod views;
