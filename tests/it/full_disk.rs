//! A really full disk under the database, through the real mail stack: a letter the server
//! accepted while the database could not record it is delivered once, the outbox stops and says
//! so, a read-only reader sees the letter "being sent", and when space returns the daemon records
//! it and sends the rest — each once — without a restart.
//!
//! The database lives on a small tmpfs mounted by the test (we are root) and unmounted by a guard.
//! The letter is held between our intent and the server's `250` by freezing Postfix (SIGSTOP)
//! while the daemon connects; the disk is filled meanwhile, then Postfix is let go.

use crate::support::{Harness, REFERRER, SHARED, header, referral};
use caseclerk::shell::clock::{Clock, SystemClock};
use caseclerk::shell::store::{OutboxState, Store};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LA: &str = "la.rep@bury.test";
const POLICE: &str = "police.rep@police.test";
const ICB: &str = "icb.rep@icb.test";

/// A tmpfs of `size` mounted at `dir` until dropped.
struct SmallDisk {
    dir: PathBuf,
}

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount runs");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk {
            dir: dir.to_path_buf(),
        }
    }

    /// Write a file until the disk refuses (ENOSPC).
    fn fill(&self) {
        let mut f = std::fs::File::create(self.dir.join("filler")).unwrap();
        let block = vec![0u8; 64 * 1024];
        loop {
            match f.write_all(&block) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        // The last partial block, byte by byte, so not a page is left.
        while f.write_all(&[0u8]).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.dir.join("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// Point the harness's configuration at a database on `dir`.
fn database_on(h: &Harness, dir: &Path) -> PathBuf {
    let db = dir.join("caseclerk.db");
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    cfg["storage"].as_table_mut().unwrap().insert(
        "database".into(),
        toml::Value::String(db.display().to_string()),
    );
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
    db
}

/// How many copies of the letter with this Message-ID `user` has (after Postfix settles).
async fn copies(h: &Harness, user: &str, message_id: &str) -> usize {
    h.stack
        .wait_queue_empty(Duration::from_secs(20))
        .await
        .unwrap();
    h.stack
        .fetch_all(user)
        .await
        .unwrap()
        .iter()
        .filter(|m| {
            header(&m.raw, "Message-ID").as_deref() == Some(format!("<{message_id}>").as_str())
        })
        .count()
}

/// The letters as a read-only reader sees them, and the ids "being sent" (intent older than now).
async fn read_only(db: &Path) -> (Vec<caseclerk::shell::store::OutboxRow>, Vec<i64>) {
    let store = Store::open_read_only(db).await.unwrap();
    let rows = store.letters(None).await.unwrap();
    let sending = store
        .sending_since(SystemClock.now() + chrono::Duration::minutes(1))
        .await
        .unwrap();
    store.close().await;
    (rows, sending)
}

#[tokio::test]
async fn a_letter_accepted_on_a_full_disk_is_delivered_once_and_the_outbox_waits_for_space_then_carries_on()
 {
    let h = Harness::start("bury").await;
    let disk = SmallDisk::mount(&h.dir.join("small-disk"), "16m");
    let db = database_on(&h, &disk.dir);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("full-disk@hospital.test", "Referral for a rapid review"),
    )
    .await;

    h.stack.freeze_smtp(true);
    let mut daemon = h.daemon_with(&["--process-existing"]);
    // Wait for the intent of the first letter: the daemon is now waiting for the frozen server.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let first = loop {
        // (A reader can come before the daemon's migrations: that is "not yet".)
        if let Ok(store) = Store::open_read_only(&db).await
            && let Ok(sending) = store
                .sending_since(SystemClock.now() + chrono::Duration::minutes(1))
                .await
            && let [id] = sending[..]
        {
            break id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no letter was marked as being sent:\n{}",
            daemon.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    disk.fill();
    h.stack.freeze_smtp(false);
    daemon
        .wait_log(&["recording it failed", &format!("outbox={first}")], 1)
        .await;

    let (rows, sending) = read_only(&db).await;
    assert_eq!(
        rows.len(),
        4,
        "an acknowledgement and three screening requests"
    );
    assert_eq!(sending, vec![first], "a reader sees the letter being sent");
    let letter = rows.iter().find(|r| r.id == first).unwrap();
    assert_eq!(letter.state, OutboxState::Pending);
    let mut delivered = 0;
    for r in &rows {
        for user in &r.envelope_to {
            delivered += copies(&h, user, &r.message_id).await;
        }
    }
    assert_eq!(
        delivered, 1,
        "the accepted letter, once; the outbox stopped after it"
    );
    let log = daemon.log();
    for address in [REFERRER, LA, POLICE, ICB] {
        assert!(!log.contains(address), "{log}");
    }

    disk.free();
    daemon
        .wait_log_within(
            &["recorded as sent at last", &format!("outbox={first}")],
            1,
            Duration::from_secs(90),
        )
        .await;
    daemon.wait_log(&["letter sent"], 3).await;
    let log = daemon.stop().await;
    assert!(!log.contains("in doubt"), "{log}");

    let (rows, sending) = read_only(&db).await;
    assert!(sending.is_empty());
    for r in &rows {
        assert_eq!(r.state, OutboxState::Sent, "letter {}", r.id);
        for user in &r.envelope_to {
            assert_eq!(
                copies(&h, user, &r.message_id).await,
                1,
                "letter {} to {user}, once",
                r.id
            );
        }
    }
}

fn t0() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-12-01T09:00:00Z")
        .unwrap()
        .to_utc()
}

fn letter(n: usize, size: usize) -> caseclerk::shell::store::NewLetter {
    let message_id = format!("letter.{n}@full-disk.test");
    caseclerk::shell::store::NewLetter {
        dedupe_key: format!("test/{n}"),
        case_id: None,
        step: "digest".into(),
        recipient: "someone@example.test".into(),
        replies_as: "someone@example.test".into(),
        message_id,
        due_at: t0(),
        envelope_from: "bsp@bury.test".into(),
        envelope_to: vec!["someone@example.test".into()],
        raw: vec![b'x'; size],
    }
}

/// The daemon stayed stuck on "database is locked" after space returned (issue 11): a commit
/// refused for lack of space left a pool connection inside a transaction, holding SQLite's write
/// lock, and it was handed out again. (Without `store::release_only_if_idle` write 1 below fails
/// with "database is locked".)
#[tokio::test]
async fn a_write_that_fails_on_a_full_disk_leaves_no_connection_holding_the_database() {
    let dir = std::env::temp_dir().join(format!("caseclerk-full-{}", std::process::id()));
    let disk = SmallDisk::mount(&dir, "8m");
    let store = Store::open(&disk.dir.join("caseclerk.db")).await.unwrap();
    let mut failures = 0;
    for round in 0..4 {
        let mut tx = store.begin().await.unwrap();
        let big = letter(100 + round, 3 * 1024 * 1024);
        let queued = caseclerk::shell::outbox::enqueue(&mut tx, &big, t0()).await;
        disk.fill();
        let committed = match queued {
            Ok(_) => Store::commit(tx).await.is_ok(),
            Err(_) => false,
        };
        failures += usize::from(!committed);
        disk.free();
    }
    assert_eq!(failures, 4, "every commit with the disk full fails");
    for n in 0..8 {
        let write = async {
            let mut tx = store.begin().await?;
            caseclerk::shell::outbox::enqueue(&mut tx, &letter(n, 100), t0()).await?;
            Store::commit(tx).await
        };
        tokio::time::timeout(Duration::from_secs(40), write)
            .await
            .unwrap_or_else(|_| panic!("write {n} hung"))
            .unwrap_or_else(|e| panic!("write {n} after space returned: {e}"));
    }
    store.close().await;
    drop(disk);
    let _ = std::fs::remove_dir(&dir);
}
