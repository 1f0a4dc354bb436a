//! The reading commands — `cases`, `case`, `digest`, `export`, `timeline` — work on a database
//! they cannot write: a backup copy in a read-only directory, read as a user who may not write it,
//! and the live database while the daemon holds its lock. They never write a byte of it.

use crate::review::Review;
use caseclerk::shell::store::Store;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

const NOW: &str = "2026-01-20T12:00:00Z";
const NOBODY: &str = "65534";

/// Run `caseclerk --config <config> <args>`, as root or (with `as_nobody`) as nobody.
fn caseclerk(config: &Path, args: &[&str], as_nobody: bool) -> Output {
    let bin = env!("CARGO_BIN_EXE_caseclerk");
    let mut cmd = if as_nobody {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups", bin]);
        c
    } else {
        Command::new(bin)
    };
    cmd.arg("--config").arg(config).args(args);
    cmd.env_remove("RUST_LOG").output().expect("caseclerk runs")
}

/// Every reading command, each succeeding, with the case's reference where it lists cases.
fn read_everything(config: &Path, reference: &str, as_nobody: bool) {
    let process = concat!(env!("CARGO_MANIFEST_DIR"), "/config/processes/bury.toml");
    let runs: [(&[&str], bool); 5] = [
        (&["cases", "--now", NOW], true),
        (&["case", reference, "--now", NOW], true),
        (&["export", "--format", "csv", "--now", NOW], true),
        (&["digest", "--now", NOW], false),
        (
            &["timeline", "--process", process, "--received", NOW],
            false,
        ),
    ];
    for (args, names_the_case) in runs {
        let out = caseclerk(config, args, as_nobody);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "`caseclerk {}` failed on a database it cannot write: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!stdout.trim().is_empty(), "`{}` printed nothing", args[0]);
        if names_the_case {
            assert!(stdout.contains(reference), "`{}`: {stdout}", args[0]);
        }
    }
}

/// The names in a directory, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// A backup of the review's database (`VACUUM INTO`, as `sqlite3 .backup` would make one, then put
/// in WAL mode as a `cp` of a stopped daemon's database is) with a configuration pointing at it,
/// owned by nobody, the file 0400 and its directory 0500.
async fn read_only_backup(review: &Review) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("caseclerk-readonly-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("backup.db");
    Store::copy_to(&review.engine.cfg.database, &db)
        .await
        .unwrap();
    Store::open(&db).await.unwrap().close().await;
    let text = std::fs::read_to_string(&review.engine.cfg.file).unwrap();
    let mut cfg: toml::Table = text.parse().unwrap();
    cfg["storage"]["database"] = toml::Value::String(db.display().to_string());
    let config = dir.join("caseclerk.toml");
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();
    assert_eq!(
        std::fs::read(&db).unwrap()[18..20],
        [2, 2],
        "a WAL-mode database"
    );
    assert_eq!(
        listing(&dir),
        ["backup.db", "caseclerk.toml"],
        "closed cleanly"
    );
    for (path, mode) in [(&config, 0o400), (&db, 0o400), (&dir, 0o500)] {
        std::os::unix::fs::chown(path, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    (dir, config)
}

#[tokio::test]
async fn a_backup_copy_in_a_read_only_directory_is_read_by_every_reading_command_and_never_written()
{
    let mut review = Review::of("bury").await;
    let reference = review.referral_at("2026-01-05 10:00").await;
    review.at("2026-01-07 10:00").await;
    let (dir, config) = read_only_backup(&review).await;
    let db = dir.join("backup.db");
    let bytes = std::fs::read(&db).unwrap();
    let mtime = modified(&db);
    let before = listing(&dir);

    // As a user who cannot write the file or the directory: any write, lock or migration fails.
    read_everything(&config, &reference, true);
    // As root, who could write: the file and its directory are still exactly as they were.
    read_everything(&config, &reference, false);
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "not a byte written");
    assert_eq!(modified(&db), mtime);
    assert_eq!(
        listing(&dir),
        before,
        "no -wal, -shm or lock file beside it"
    );

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_live_database_is_read_while_the_daemon_holds_its_lock() {
    let mut review = Review::of("bury").await;
    let reference = review.referral_at("2026-01-05 10:00").await;
    // The engine is open: it holds the one-daemon lock, and its WAL holds the latest commits.
    read_everything(&review.engine.cfg.file.clone(), &reference, false);
    review.at("2026-01-07 10:00").await;
}
