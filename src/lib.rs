//! caseclerk: the clerical half of a safeguarding children partnership's rapid reviews.
//!
//! Agencies email the partnership's shared inbox; caseclerk watches it, recognises referrals and
//! agency returns, opens a case with a working-day timeline, sends each letter on the right working
//! day, chases late agencies, takes decisions from email replies and keeps the tracker.
//!
//! # Where things live
//! - [`core`]: the functional core. Plain functions over data: what a message is, what it does to
//!   a case, which letters are due, what a letter says, what the digest and the tracker show. No
//!   I/O, no clock reads, no database, no network; tested without any server.
//! - [`shell`]: the imperative shell. Configuration files, the database, IMAP, SMTP, the daemon
//!   loop and the command line: it loads, calls the core, stores and sends.
//! - [`dev`]: not the product. A throwaway local Dovecot + Postfix for the tests, the demo and the
//!   benchmark.
//!
//! The core never imports the shell; `tests/it/architecture.rs` checks it.

pub mod core;
pub mod dev;
pub mod shell;
