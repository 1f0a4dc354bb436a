//! One daemon per database, whatever the path: while an engine works on a database, a second
//! engine reaching the same file through a symlink, a `./dir/../dir` path or a hard link is refused
//! with what to do; an engine on another database is not.

use crate::review::Review;
use caseclerk::shell::clock::ManualClock;
use caseclerk::shell::engine::{Engine, EngineError};
use caseclerk::shell::mailbox::ExistingMail;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Open a second engine with the first one's configuration, its database reached at `database`.
async fn second_engine(first: &Review, database: &Path) -> Result<Engine, EngineError> {
    let mut cfg = (*first.engine.cfg).clone();
    cfg.database = database.to_path_buf();
    let clock = Arc::new(ManualClock::new(first.now()));
    Engine::open(cfg, clock, ExistingMail::Process).await
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "caseclerk-one-daemon-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn assert_refused(opened: Result<Engine, EngineError>, how: &str) {
    match opened {
        Ok(_) => panic!("a second engine through {how} was let in"),
        Err(e) => {
            let text = e.to_string();
            assert!(matches!(e, EngineError::Locked { .. }), "{how}: {text}");
            assert!(text.contains("stop the daemon first"), "{text}");
        }
    }
}

#[tokio::test]
async fn a_second_engine_on_the_same_database_by_any_path_is_refused_and_another_database_is_not() {
    let review = Review::of("bury").await;
    let db = review.engine.cfg.database.clone();
    let dir = scratch("paths");

    let symlink = dir.join("symlinked.db");
    std::os::unix::fs::symlink(&db, &symlink).unwrap();
    assert_refused(second_engine(&review, &symlink).await, "a symlink");

    let parent = db.parent().unwrap();
    let name = parent.file_name().unwrap().to_str().unwrap();
    let dotted = parent
        .join(".")
        .join("..")
        .join(name)
        .join(db.file_name().unwrap());
    assert_refused(second_engine(&review, &dotted).await, "a ./dir/../dir path");

    // A hard link must live on the same file system as the database.
    let linked = parent.join("hard-linked.db");
    std::fs::hard_link(&db, &linked).unwrap();
    assert_refused(second_engine(&review, &linked).await, "a hard link");
    std::fs::remove_file(&linked).unwrap();

    let other = second_engine(&review, &dir.join("other.db")).await;
    assert!(
        other.is_ok(),
        "another database is its own: {:?}",
        other.err()
    );
    drop(other);
    std::fs::remove_dir_all(&dir).unwrap();
}
