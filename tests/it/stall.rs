//! A stalled mailbox is noticed. A server that stops answering without closing anything (Dovecot's
//! processes SIGSTOPped by the test) shows as an error on the watcher's health row and on the
//! folder's row within a few check intervals; when it answers again the same daemon carries on —
//! a referral is acknowledged without a restart — with IDLE and when polling a server without it.
//! A connection dropped after a session that worked is retried after the shortest wait, however
//! many attempts failed before.
//!
//! The daemon runs on a short check interval set in the test's configuration; nothing is timed:
//! each step waits, with a generous bound, for the health rows a read-only reader of the database
//! sees.

use crate::support::*;
use caseclerk::shell::clock::{Clock, SystemClock};
use caseclerk::shell::mailbox::WATCH_HEALTH_KEY;
use caseclerk::shell::store::{MailboxState, Store};
use chrono::{DateTime, Utc};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use std::time::Duration;

/// Dovecot's whole process group stopped (SIGSTOP) until this is dropped (SIGCONT), so a failing
/// test never leaves it frozen.
struct Stalled(i32);

impl Stalled {
    fn imap(h: &Harness) -> Stalled {
        let group = h.stack.imap_process_group().expect("Dovecot is running");
        killpg(Pid::from_raw(group), Signal::SIGSTOP).expect("Dovecot is stopped");
        Stalled(group)
    }
}

impl Drop for Stalled {
    fn drop(&mut self) {
        let _ = killpg(Pid::from_raw(self.0), Signal::SIGCONT);
    }
}

/// The watcher checks its connection every 2 s and waits as long for the answer; the daemon
/// fetches every 2 s whatever the watcher says; a command may take 5 s.
fn quick_checks(cfg: &mut toml::Table) {
    let mailbox = cfg.get_mut("mailbox").unwrap().as_table_mut().unwrap();
    for (key, value) in [
        ("check_seconds", 2),
        ("fetch_seconds", 2),
        ("timeout_seconds", 5),
        ("poll_seconds", 1),
    ] {
        mailbox.insert(key.into(), toml::Value::Integer(value));
    }
}

fn now() -> DateTime<Utc> {
    SystemClock.now()
}

/// Wait (up to two minutes) until the health row `key`, read from the database opened read-only,
/// satisfies `ok`; the row as it was.
async fn wait_row(
    h: &Harness,
    key: &str,
    what: &str,
    ok: impl Fn(&MailboxState) -> bool,
) -> MailboxState {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let db = h.dir.join("caseclerk.db");
    let mut last = None;
    loop {
        if let Ok(store) = Store::open_read_only(&db).await {
            last = store.mailbox_state(key).await.ok().flatten();
            store.close().await;
            if let Some(row) = last.as_ref().filter(|r| ok(r)) {
                return row.clone();
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the {key} row never showed {what}: {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn failing_since(row: &MailboxState, t: DateTime<Utc>) -> bool {
    row.failures > 0 && row.last_error_at.is_some_and(|e| e > t)
}

fn alive_since(row: &MailboxState, t: DateTime<Utc>) -> bool {
    row.failures == 0 && row.last_ok_at.is_some_and(|ok| ok > t)
}

/// Stall Dovecot under a running daemon, see both health rows show it, resume it, and see a
/// referral delivered afterwards acknowledged by the same daemon.
async fn stall_then_recover(h: &Harness, started: &str) {
    let mut daemon = h.daemon();
    daemon.wait_log(&["first pass done"], 1).await;
    daemon.wait_log(&[started], 1).await;
    wait_row(h, WATCH_HEALTH_KEY, "a proof of life", |r| {
        r.last_ok_at.is_some()
    })
    .await;

    let stopped_at = now();
    let stalled = Stalled::imap(h);
    let watch = wait_row(h, WATCH_HEALTH_KEY, "the stall", |r| {
        failing_since(r, stopped_at)
    })
    .await;
    let error = watch.last_error.unwrap();
    assert!(error.contains("timed out"), "{error}");
    assert!(watch.last_ok_at.unwrap() < watch.last_error_at.unwrap());
    // The safety-net fetch fails too, and says so on the folder's row.
    wait_row(h, "INBOX", "the failed fetch", |r| {
        failing_since(r, stopped_at)
    })
    .await;

    let resumed_at = now();
    drop(stalled);
    wait_row(h, WATCH_HEALTH_KEY, "the watcher back", |r| {
        alive_since(r, resumed_at)
    })
    .await;
    wait_row(h, "INBOX", "a fetch that worked", |r| {
        alive_since(r, resumed_at)
    })
    .await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("after-stall@hospital.test", "Referral for rapid review"),
    )
    .await;
    let acks = h.wait_inbox(REFERRER, 1).await;
    assert_eq!(acks[0].in_reply_to, ["after-stall@hospital.test"]);
    let log = daemon.stop().await;
    assert_eq!(
        log.matches("caseclerk running").count(),
        1,
        "one daemon throughout:\n{log}"
    );
    assert!(log.contains("mailbox watcher lost its connection"), "{log}");
}

#[tokio::test]
async fn a_server_that_stops_answering_is_noticed_and_mail_flows_again_without_a_restart() {
    let h = Harness::start_with("bury", quick_checks).await;
    stall_then_recover(&h, "watching the mailbox with IDLE").await;
}

#[tokio::test]
async fn a_server_without_idle_that_stops_answering_is_noticed_the_same_way() {
    let h = Harness::start_without_idle("bury", quick_checks).await;
    stall_then_recover(&h, "no IDLE: polling").await;
}

#[tokio::test]
async fn after_a_session_that_worked_a_dropped_connection_is_retried_after_the_shortest_wait() {
    let mut h = Harness::start_with("bury", quick_checks).await;
    let mut daemon = h.daemon();
    daemon.wait_log(&["first pass done"], 1).await;
    for drop in 1..=2 {
        let up = now();
        let first = wait_row(&h, WATCH_HEALTH_KEY, "a session that worked", |r| {
            alive_since(r, up)
        })
        .await;
        // ... for more than a check interval (2 s here): one that ends sooner is a flapping
        // server, and the wait goes on doubling (`Backoff::after_session`).
        let steady = first.last_ok_at.unwrap() + chrono::Duration::milliseconds(2500);
        wait_row(&h, WATCH_HEALTH_KEY, "the session still working", |r| {
            alive_since(r, steady)
        })
        .await;
        // Dovecot crashes: the watcher's connection closes. While it is down, attempts fail and
        // the wait before the next one grows.
        h.stack.kill_imap();
        daemon
            .wait_log(&["mailbox watcher lost its connection"], drop)
            .await;
        h.stack.restart_imap().await.unwrap();
    }
    let back = now();
    wait_row(&h, WATCH_HEALTH_KEY, "the watcher back", |r| {
        alive_since(r, back)
    })
    .await;
    let log = daemon.stop().await;
    let drops: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mailbox watcher lost its connection"))
        .collect();
    assert_eq!(drops.len(), 2, "{log}");
    for line in drops {
        assert!(line.contains("retry_in_s=1"), "{line}\n{log}");
    }
}

#[tokio::test]
async fn with_nothing_arriving_and_the_watcher_quiet_the_mailbox_is_still_fetched_on_the_timer() {
    let h = Harness::start_with("bury", quick_checks).await;
    let mut daemon = h.daemon();
    daemon.wait_log(&["first pass done"], 1).await;
    daemon
        .wait_log(&["watching the mailbox with IDLE"], 1)
        .await;
    // The watcher signals once when it starts watching, and then only for news: two fetches
    // after this point are at least one the watcher never asked for.
    for _ in 0..2 {
        let since = now();
        wait_row(&h, "INBOX", "another fetch", |r| alive_since(r, since)).await;
    }
    let log = daemon.stop().await;
    assert!(
        !log.contains("mailbox watcher"),
        "the watcher was quiet:\n{log}"
    );
}

#[test]
fn the_liveness_settings_default_to_a_minute_and_five_minutes_and_bad_ones_are_refused_together() {
    use caseclerk::shell::config::{self, Needs};
    let dir = std::env::temp_dir().join(format!("caseclerk-liveness-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |settings: &[(&str, i64)]| {
        let mut cfg = config_for("bury", &dir);
        let mailbox = cfg.get_mut("mailbox").unwrap().as_table_mut().unwrap();
        // The example sets them: see what an unset value means.
        mailbox.remove("check_seconds");
        mailbox.remove("fetch_seconds");
        for (key, value) in settings {
            mailbox.insert(key.to_string(), toml::Value::Integer(*value));
        }
        let path = dir.join("caseclerk.toml");
        std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
        config::load(&path, Needs::NoSecrets)
    };
    let defaults = write(&[]).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(defaults.imap.check_interval, Duration::from_secs(60));
    assert_eq!(defaults.imap.fetch_interval, Duration::from_secs(300));
    let Err(err) = write(&[
        ("check_seconds", 0),
        ("fetch_seconds", 7200),
        ("poll_seconds", 0),
        ("timeout_seconds", 0),
    ]) else {
        panic!("a check of 0 s, a fetch every two hours, a poll of 0 s and no timeout are refused");
    };
    let err = err.to_string();
    let _ = std::fs::remove_dir_all(&dir);
    for part in [
        "[mailbox] check_seconds = 0 must be between 1 and 600",
        "[mailbox] fetch_seconds = 7200 must be between 1 and 3600",
        "[mailbox] poll_seconds = 0 must be between 1 and 3600",
        "[mailbox] timeout_seconds = 0 must be between 1 and 3600",
    ] {
        assert!(err.contains(part), "missing {part:?} in:\n{err}");
    }
}
