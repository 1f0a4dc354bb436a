//! caseclerk's one integration-test binary.
//!
//! Tests that need a mail server start a real Dovecot + Postfix on loopback through
//! `caseclerk::dev::devstack` (installed by `scripts/install-mailstack.sh`; a missing server fails the
//! test loudly, it never skips), and drive the real `caseclerk` binary against it.

mod agency_round;
mod architecture;
mod automated;
mod automated_stack;
mod backup;
mod chaos;
mod config_check;
mod copies;
mod decisions;
mod delivery;
mod digest;
mod export_case;
mod first_run;
mod fresh_mail;
mod full_disk;
mod full_reviews;
mod health;
mod history;
mod memory;
mod microsoft365;
mod one_daemon;
mod open_referral;
mod operator;
mod outbox_intent;
mod package;
mod particulars;
mod process_pathways;
mod readonly;
mod retention;
mod review;
mod review_dates;
mod sent_copy;
mod skeleton;
mod smtp_conversation;
mod smtp_login;
mod smtp_tls;
mod stall;
mod stopped_deciding;
mod support;
mod systemd_unit;
mod templates_render;
mod timeline_golden;
mod trace_log;
mod tracker;
mod trust;
mod two_calendars;
mod unfetched;
mod upgrade;
mod votes;
mod web;
