//! `caseclerk backup` and `restore`, as an operator runs them: a backup taken while the daemon
//! holds the database holds every case, letter, event and message, is readable by its maker only
//! and never overwrites a file; restoring is refused while a daemon works on the database, and a
//! restored database has everything the backup had (`caseclerk case` finds the case again).

use crate::review::Review;
use crate::support::cli as caseclerk;
use caseclerk::shell::store::Store;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

async fn counts(db: &Path) -> (i64, i64, i64, i64) {
    let store = Store::open_read_only(db).await.unwrap();
    let c = store.row_counts().await.unwrap();
    store.close().await;
    c
}

#[tokio::test]
async fn a_backup_taken_beside_the_daemon_restores_every_case_letter_and_event() {
    let mut review = Review::of("bury").await;
    let reference = review.referral_at("2026-01-05 10:00").await;
    review.at("2026-01-07 10:00").await;
    let config = review.engine.cfg.file.clone();
    let live = review.engine.cfg.database.clone();
    let dir = config.parent().unwrap().to_path_buf();
    let backup = dir.join("backup.db");

    // The engine is open: it holds the daemon's lock and its WAL holds the latest commits.
    let out = caseclerk(&config, &["backup", backup.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = counts(&live).await;
    assert!(want.0 == 1 && want.1 > 3 && want.2 > 3, "{want:?}");
    assert_eq!(counts(&backup).await, want, "every row is in the backup");
    assert!(said.contains("and checked: 1 case(s)"), "{said}");
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "readable by its maker only");

    let again = caseclerk(&config, &["backup", backup.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("never overwrites"));

    let refused = caseclerk(&config, &["restore", backup.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("stop it first"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Restored on another server's configuration (same settings, another database file).
    let mut cfg: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let restored = dir.join("restored/caseclerk.db");
    cfg["storage"]["database"] = toml::Value::String(restored.display().to_string());
    let other = dir.join("other.toml");
    std::fs::write(&other, toml::to_string(&cfg).unwrap()).unwrap();
    // A backup copied about with a looser mode still restores owner-only.
    std::fs::set_permissions(&backup, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = caseclerk(&other, &["restore", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(counts(&restored).await, want);
    let mode = std::fs::metadata(&restored).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the restored database is owner-only");
    let case = caseclerk(
        &other,
        &["case", &reference, "--now", "2026-01-07T12:00:00Z"],
    );
    assert!(case.status.success());
    assert!(String::from_utf8_lossy(&case.stdout).contains(&reference));
}

#[tokio::test]
async fn a_file_that_is_not_a_caseclerk_database_is_never_restored() {
    let review = Review::of("bury").await;
    let config = review.engine.cfg.file.clone();
    let dir = config.parent().unwrap().to_path_buf();
    let junk = dir.join("junk.db");
    std::fs::write(&junk, b"not a database at all").unwrap();
    let mut cfg: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let target = dir.join("target/caseclerk.db");
    cfg["storage"]["database"] = toml::Value::String(target.display().to_string());
    let other = dir.join("other.toml");
    std::fs::write(&other, toml::to_string(&cfg).unwrap()).unwrap();
    let out = caseclerk(&other, &["restore", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a usable backup"));
    assert!(!target.exists(), "nothing was put in place");
}

/// `age-keygen`: a new private key file in `dir` and its public key.
fn age_key(dir: &Path) -> (std::path::PathBuf, String) {
    let key = dir.join("backup-key.txt");
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&key)
        .output()
        .expect("age is installed (scripts/install-mailstack.sh)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&key)
        .output()
        .unwrap();
    (
        key,
        String::from_utf8(public.stdout).unwrap().trim().to_string(),
    )
}

#[tokio::test]
async fn an_encrypted_backup_holds_no_plaintext_and_restores_only_with_its_key() {
    let mut review = Review::of("bury").await;
    let reference = review.referral_at("2026-01-05 10:00").await;
    review.at("2026-01-07 10:00").await;
    let config = review.engine.cfg.file.clone();
    let dir = config.parent().unwrap().to_path_buf();
    let (key, public) = age_key(&dir);
    let backups = dir.join("backups");
    std::fs::create_dir(&backups).unwrap();
    let backup = backups.join("caseclerk.db.age");

    let out = caseclerk(
        &config,
        &[
            "backup",
            backup.to_str().unwrap(),
            "--age-recipient",
            &public,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("encrypted with age and checked"));
    let bytes = std::fs::read(&backup).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1"));
    assert!(
        !bytes.windows(15).any(|w| w == b"SQLite format 3")
            && !bytes.windows(12).any(|w| w == reference.as_bytes()),
        "nothing readable in the encrypted file"
    );
    let mode = std::fs::metadata(&backup).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let left: Vec<_> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        ["caseclerk.db.age"],
        "the temporary plaintext is gone"
    );
    let bad = caseclerk(
        &config,
        &[
            "backup",
            backups.join("x").to_str().unwrap(),
            "--age-recipient",
            "not-a-key",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));

    let mut cfg: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let restored = dir.join("restored/caseclerk.db");
    cfg["storage"]["database"] = toml::Value::String(restored.display().to_string());
    let other = dir.join("other.toml");
    std::fs::write(&other, toml::to_string(&cfg).unwrap()).unwrap();
    let without = caseclerk(&other, &["restore", backup.to_str().unwrap()]);
    assert_eq!(without.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&without.stderr).contains("--age-identity"));
    assert!(!restored.exists());
    let out = caseclerk(
        &other,
        &[
            "restore",
            backup.to_str().unwrap(),
            "--age-identity",
            key.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        counts(&restored).await,
        counts(&review.engine.cfg.database).await
    );
    let left: Vec<_> = std::fs::read_dir(restored.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("decrypted"))
        .collect();
    assert!(left.is_empty(), "the decrypted temporary is gone: {left:?}");
    let verify = caseclerk(&other, &["verify"]);
    assert!(
        verify.status.success(),
        "the restored history verifies: {}",
        String::from_utf8_lossy(&verify.stdout)
    );
}

#[tokio::test]
async fn an_encrypted_backup_stopped_half_way_leaves_no_plaintext_in_the_backup_store() {
    let mut review = Review::of("bury").await;
    review.referral_at("2026-01-05 10:00").await;
    let config = review.engine.cfg.file.clone();
    let dir = config.parent().unwrap().to_path_buf();
    let (_, public) = age_key(&dir);
    let backups = dir.join("backups");
    std::fs::create_dir(&backups).unwrap();
    // An `age` that never finishes: the backup is stopped while it encrypts, as by a timer's
    // timeout or Ctrl-C, with its plaintext copy made.
    let slow = dir.join("slow-age");
    std::fs::create_dir(&slow).unwrap();
    std::fs::write(slow.join("age"), "#!/bin/sh\nexec sleep 61\n").unwrap();
    std::fs::set_permissions(slow.join("age"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!("{}:{}", slow.display(), std::env::var("PATH").unwrap());
    let dest = backups.join("stopped.db.age");
    let mut run = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .arg("--config")
        .arg(&config)
        .args(["backup", dest.to_str().unwrap(), "--age-recipient", &public])
        .env("PATH", &path)
        .spawn()
        .unwrap();
    let scratch = review
        .engine
        .cfg
        .database
        .parent()
        .unwrap()
        .join(".caseclerk-scratch");
    let plaintext = || -> Vec<std::path::PathBuf> {
        let Ok(entries) = std::fs::read_dir(&scratch) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .flat_map(|e| std::fs::read_dir(e.path()).unwrap().flatten())
            .map(|f| f.path())
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !dest.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the backup never reached `age`"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // caseclerk is stopped as a timeout would stop it; then its stalled `age`, by pid.
    let children = Command::new("pgrep")
        .args(["-P", &run.id().to_string()])
        .output()
        .unwrap();
    run.kill().unwrap();
    run.wait().unwrap();
    for pid in String::from_utf8_lossy(&children.stdout).split_whitespace() {
        let _ = Command::new("kill").arg(pid).status();
    }
    for f in std::fs::read_dir(&backups).unwrap().flatten() {
        let bytes = std::fs::read(f.path()).unwrap();
        assert!(
            !bytes.windows(15).any(|w| w == b"SQLite format 3"),
            "{} in the backup store is readable",
            f.path().display()
        );
    }
    assert_eq!(plaintext().len(), 1, "the copy is left beside the database");

    // The next backup removes it.
    std::fs::remove_file(&dest).unwrap();
    let out = caseclerk(
        &config,
        &["backup", dest.to_str().unwrap(), "--age-recipient", &public],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(plaintext().is_empty(), "{:?}", plaintext());
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
}

#[tokio::test]
async fn a_checked_backup_is_recorded_and_health_warns_when_the_job_stops() {
    let mut review = Review::of("bury").await;
    review.referral_at("2026-01-05 10:00").await;
    let config = review.engine.cfg.file.clone();
    let backup = config.parent().unwrap().join("nightly.db");
    let out = caseclerk(&config, &["backup", backup.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = review
        .engine
        .store
        .meta(caseclerk::shell::backup::LAST_BACKUP)
        .await
        .unwrap()
        .expect("the backup's time is recorded");
    let at = chrono::DateTime::parse_from_rfc3339(&recorded).unwrap();
    let health = |after: chrono::Duration| {
        let now = (at + after).to_rfc3339();
        let out = caseclerk(&config, &["health", "--now", &now]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(!health(chrono::Duration::hours(24)).contains("backup_stale"));
    let stale = health(chrono::Duration::hours(60));
    assert!(stale.contains("[backup_stale]"), "{stale}");
}

#[tokio::test]
async fn a_backup_restored_after_its_letters_went_finds_them_in_the_sent_folder_and_sends_none_twice()
 {
    use crate::support::{Harness, REFERRER, SHARED, referral};
    let h = Harness::start("bury").await;
    h.tick(None);
    // Last night's backup; then the day's referral, acknowledged and filed in the sent folder.
    let nightly = h.dir.join("nightly.db");
    h.ok(&["backup", nightly.to_str().unwrap()]);
    let raw = referral("restored@hospital.test", "Referral for a rapid review");
    h.deliver(REFERRER, SHARED, &raw).await;
    assert!(h.tick(None).contains("opened RR-"));
    let before = h.settled_count(REFERRER).await;
    assert!(before >= 1, "the referrer was acknowledged");
    // The database is damaged; last night's backup goes back. It has neither the case nor its
    // letters, and the referral is read again.
    let restored = h.ok(&["restore", nightly.to_str().unwrap()]);
    assert!(
        restored.contains("looked for in the sent folder"),
        "{restored}"
    );
    let again = h.tick(None);
    assert!(
        again.contains("opened RR-"),
        "the referral is read again: {again}"
    );
    assert_eq!(
        h.settled_count(REFERRER).await,
        before,
        "the acknowledgement found in the sent folder is not sent again"
    );
    let case = h.ok(&["cases"]);
    assert!(case.contains("RR-"), "{case}");
    // Recorded as sent on its day, not at the restore (an agency's return day counts from it).
    let db = h.dir.join("caseclerk.db");
    let out = Command::new("sqlite3")
        .arg(&db)
        .arg(
            "SELECT sent_at = due_at FROM outbox WHERE confirmed_by_copy = 1 \
             AND step = 'acknowledge'",
        )
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "1",
        "sent on its day"
    );
}

#[tokio::test]
async fn a_backup_from_before_an_upgrade_restored_by_root_is_brought_up_to_date_and_left_to_the_daemon_s_user()
 {
    use std::os::unix::fs::MetadataExt;
    let mut review = Review::of("bury").await;
    review.referral_at("2026-01-05 10:00").await;
    let config = review.engine.cfg.file.clone();
    let dir = config.parent().unwrap().to_path_buf();
    let old = dir.join("before-the-upgrade.db");
    assert!(
        caseclerk(&config, &["backup", old.to_str().unwrap()])
            .status
            .success()
    );
    // As the version before the last migration left it.
    crate::history::sqlite3(
        &old,
        "DROP TABLE web_reads; DELETE FROM schema_version WHERE version = 19;",
    );
    // The daemon's own folder and database, owned by its user (`nobody` here); the restore run
    // as root, as an operator who has just stopped the service would.
    let home = dir.join("var-lib-caseclerk");
    std::fs::create_dir_all(&home).unwrap();
    let nobody = 65534;
    std::os::unix::fs::chown(&home, Some(nobody), Some(nobody)).unwrap();
    let mut cfg: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let target = home.join("caseclerk.db");
    cfg["storage"]["database"] = toml::Value::String(target.display().to_string());
    let other = dir.join("restored.toml");
    std::fs::write(&other, toml::to_string(&cfg).unwrap()).unwrap();
    let out = caseclerk(&other, &["restore", old.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(&target).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (nobody, nobody),
        "the daemon's to open"
    );
    assert_eq!(meta.mode() & 0o777, 0o600);
    let store = Store::open_read_only(&target)
        .await
        .expect("this version's schema");
    assert_eq!(store.row_counts().await.unwrap().0, 1, "the case is there");
    store.close().await;
}

#[tokio::test]
async fn a_restore_is_refused_while_a_web_workspace_has_the_database_open() {
    let review = Review::of("bury").await;
    let config = review.engine.cfg.file.clone();
    let dir = config.parent().unwrap().to_path_buf();
    let backup = dir.join("backup.db");
    assert!(
        caseclerk(&config, &["backup", backup.to_str().unwrap()])
            .status
            .success()
    );
    let mut cfg: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let target = dir.join("elsewhere/caseclerk.db");
    cfg["storage"]["database"] = toml::Value::String(target.display().to_string());
    let other = dir.join("elsewhere.toml");
    std::fs::write(&other, toml::to_string(&cfg).unwrap()).unwrap();
    assert!(
        caseclerk(&other, &["restore", backup.to_str().unwrap()])
            .status
            .success()
    );
    // `caseclerk serve` holds this while it runs (beside a stopped daemon, say).
    let serving = caseclerk::shell::store::serving_lock(&target, false)
        .unwrap()
        .expect("shared");
    let refused = caseclerk(&other, &["restore", backup.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("web workspace (`caseclerk serve`)"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    drop(serving);
    assert!(
        caseclerk(&other, &["restore", backup.to_str().unwrap()])
            .status
            .success()
    );
}

#[tokio::test]
async fn a_database_the_daemon_has_not_started_on_since_an_upgrade_is_backed_up_and_restores_up_to_date()
 {
    let mut review = Review::of("bury").await;
    review.referral_at("2026-01-05 10:00").await;
    let config = review.engine.cfg.file.clone();
    let dir = config.parent().unwrap().to_path_buf();
    // The live database as the version before the last migration left it, the daemon stopped.
    let old = dir.join("stopped/caseclerk.db");
    std::fs::create_dir_all(old.parent().unwrap()).unwrap();
    let first = dir.join("first.db");
    assert!(
        caseclerk(&config, &["backup", first.to_str().unwrap()])
            .status
            .success()
    );
    std::fs::copy(&first, &old).unwrap();
    crate::history::sqlite3(
        &old,
        "DROP TABLE web_reads; DELETE FROM schema_version WHERE version = 19;",
    );
    let mut cfg: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    cfg["storage"]["database"] = toml::Value::String(old.display().to_string());
    let other = dir.join("stopped.toml");
    std::fs::write(&other, toml::to_string(&cfg).unwrap()).unwrap();
    let nightly = dir.join("nightly.db");
    let out = caseclerk(&other, &["backup", nightly.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        caseclerk(&other, &["restore", nightly.to_str().unwrap()])
            .status
            .success()
    );
    let store = Store::open_read_only(&old)
        .await
        .expect("brought up to date");
    assert_eq!(store.row_counts().await.unwrap().0, 1);
    store.close().await;
}
