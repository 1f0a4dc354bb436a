//! `caseclerk health`, run as a monitoring system runs it: the real binary against the daemon's
//! database (live, with the engine open), judged as of an instant. A healthy daemon is OK (exit 0);
//! a daemon that stopped reading mail, a refused mail login with letters piling up, and a database
//! that is not there are each reported at the monitoring level that fits, on one first line with
//! perfdata, never naming anyone.

use crate::review::{Review, london};
use crate::support::{Harness, REFERRER, SHARED, referral};
use caseclerk::core::case::Event;
use caseclerk::shell::store::{Store, record_event};
use std::path::Path;
use std::process::Command;

/// `caseclerk health --now <when>` (London); its exit code and stdout.
pub(crate) fn health(config: &Path, when: &str) -> (i32, String) {
    let now = london(when).to_rfc3339();
    let out = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .arg("--config")
        .arg(config)
        .args(["health", "--now", &now])
        .env_remove("RUST_LOG")
        .output()
        .expect("caseclerk runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        !stdout.contains('@'),
        "health names no one, not even a mailbox: {stdout}"
    );
    (out.status.code().expect("exited"), stdout)
}

#[tokio::test]
async fn a_daemon_reading_mail_and_sending_letters_is_ok_and_one_stopped_for_an_hour_is_critical() {
    let mut review = Review::of("bury").await;
    review.referral_at("2026-01-05 10:00").await;
    let config = review.engine.cfg.file.clone();

    let (code, out) = health(&config, "2026-01-05 10:01");
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("CASECLERK OK - "), "{out}");
    assert!(
        out.contains("last_fetch_age=60s;last_send_age=60s;letters_due=0"),
        "the acknowledgement went at 10:00: {out}"
    );

    let (code, out) = health(&config, "2026-01-05 10:20");
    assert_eq!(
        code, 1,
        "ten minutes without a fetch is worth a look: {out}"
    );
    let (code, out) = health(&config, "2026-01-05 11:30");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("CASECLERK CRITICAL - the mailbox was last read 90 min ago"),
        "{out}"
    );
    assert!(out.contains("[mailbox_stale]"), "{out}");
}

#[tokio::test]
async fn a_mailbox_fetched_hourly_as_configured_is_raised_only_once_fetches_are_missed() {
    let mut review = Review::of("bury").await;
    review.referral_at("2026-01-05 10:00").await;
    let config = review.engine.cfg.file.clone();
    let mut cfg: toml::Table = std::fs::read_to_string(&config)
        .expect("the configuration")
        .parse()
        .expect("TOML");
    let mailbox = cfg["mailbox"].as_table_mut().expect("[mailbox]");
    mailbox.insert("fetch_seconds".into(), toml::Value::Integer(3600));
    let hourly = config.with_file_name("hourly.toml");
    std::fs::write(&hourly, toml::to_string(&cfg).expect("TOML")).expect("written");

    let (code, out) = health(&hourly, "2026-01-05 10:50");
    assert_eq!(code, 0, "the next hourly fetch is not due yet: {out}");
    let (code, out) = health(&hourly, "2026-01-05 12:30");
    assert_eq!(code, 1, "two hourly fetches missed: {out}");
    let (code, out) = health(&hourly, "2026-01-05 13:30");
    assert_eq!(code, 2, "three missed: {out}");
    assert!(out.contains("[mailbox_stale]"), "{out}");
}

#[tokio::test]
async fn a_refused_mail_login_is_critical_at_once_and_the_held_letters_are_counted() {
    let mut review = Review::of("bury").await;
    review.mail.refuse_login(true);
    review.referral_at("2026-01-05 10:00").await;
    let config = review.engine.cfg.file.clone();

    let (code, out) = health(&config, "2026-01-05 10:01");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[smtp_login_refused]"), "{out}");
    let held = out
        .split("letters_due=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .expect("a letters_due figure");
    assert!(held > 0, "the acknowledgement is held: {out}");

    review.mail.refuse_login(false);
    review.at("2026-01-05 10:05").await;
    let (code, out) = health(&config, "2026-01-05 10:06");
    assert_eq!(code, 0, "the login works again and the letters went: {out}");
}

#[tokio::test]
async fn a_letter_whose_attachment_file_is_gone_is_critical_and_in_the_digest_until_it_is_back() {
    let template = std::env::temp_dir().join(format!(
        "caseclerk-health-template-{}.docx",
        std::process::id()
    ));
    std::fs::write(&template, b"agency summary and chronology").unwrap();
    let named = template.display().to_string();
    let mut review = Review::with("bury", |cfg| {
        let mut a = toml::Table::new();
        a.insert("agency_template".into(), named.clone().into());
        cfg.insert("attachments".into(), a.into());
    })
    .await;
    let case = review.referral_at("2026-01-05 10:00").await;
    review
        .decide(&case, "screening", "meets", "2026-01-05 15:00")
        .await;
    review
        .add_agencies(&case, &["police", "gp"], "2026-01-05 15:30")
        .await;
    let config = review.engine.cfg.file.clone();

    // The file is moved away before the agencies' requests fall due (Wed 7 Jan 10:00).
    std::fs::remove_file(&template).unwrap();
    // A restarted daemon still starts (mail is still read; the letter that needs the file is
    // raised), and `caseclerk check` names the file.
    use caseclerk::shell::config::{self, Needs};
    config::load(&config, Needs::Everything).unwrap_or_else(|e| panic!("{e}"));
    let checked = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .arg("--config")
        .arg(&config)
        .arg("check")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(checked.status.code(), Some(2), "{said}");
    assert!(
        said.contains(&format!(
            "[attachments] agency_template: {named} is not a file"
        )),
        "{said}"
    );
    review.at("2026-01-07 10:00").await;
    assert!(review.for_step("agency-request").is_empty(), "not sent");
    let (code, out) = health(&config, "2026-01-07 10:01");
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("[letters_unprepared]"), "{out}");
    assert!(
        out.contains("attachment agency_template") && out.contains(&named),
        "what to fix is named: {out}"
    );
    let digest = review.digest_text().await;
    assert!(
        digest.contains("SOME LETTERS CANNOT BE PREPARED")
            && digest
                .contains("letters could not be prepared; the first: RR-2026-0001 agency-request"),
        "{digest}"
    );

    // Put back, the requests go at the next pass, and the alarm clears.
    std::fs::write(&template, b"agency summary and chronology").unwrap();
    review.at("2026-01-07 10:05").await;
    assert_eq!(review.for_step("agency-request").len(), 2);
    let (_, out) = health(&config, "2026-01-07 10:06");
    assert!(!out.contains("letters_unprepared"), "{out}");
    assert!(!review.digest_text().await.contains("CANNOT BE PREPARED"));
    std::fs::remove_file(&template).unwrap();
}

#[tokio::test]
async fn an_agency_no_longer_in_the_directory_is_raised_at_every_pass_while_its_letter_cannot_go() {
    let mut review = Review::of("bury").await;
    let case = review.referral_at("2026-01-05 10:00").await;
    review
        .decide(&case, "screening", "meets", "2026-01-05 15:00")
        .await;
    review
        .add_agencies(&case, &["police"], "2026-01-05 15:30")
        .await;
    // An agency the case names that the directory no longer has (the configuration changed).
    let store = review.engine.store.clone();
    let id = store.case_by_ref(&case).await.unwrap().unwrap().id;
    let mut tx = store.begin().await.unwrap();
    let gone = Event::AgencyAdded {
        agency: "old-agency".into(),
        source: "panel list".into(),
    };
    record_event(&mut tx, id, london("2026-01-05 15:40"), "test", &gone)
        .await
        .unwrap();
    Store::commit(tx).await.unwrap();
    let config = review.engine.cfg.file.clone();

    review.at("2026-01-07 10:00").await;
    assert_eq!(review.for_step("agency-request").len(), 1, "the police's");
    for (pass, check) in [
        ("2026-01-07 10:00", "2026-01-07 10:01"),
        ("2026-01-07 10:30", "2026-01-07 10:31"),
    ] {
        review.at(pass).await;
        let (code, out) = health(&config, check);
        assert_eq!(code, 2, "{pass}: {out}");
        assert!(
            out.contains("[letters_unprepared]")
                && out.contains("RR-2026-0001: agency `old-agency` is not in the directory"),
            "{pass}: {out}"
        );
    }
}

#[tokio::test]
async fn a_case_whose_history_cannot_be_read_stops_no_other_case_and_is_raised() {
    let mut review = Review::of("bury").await;
    let broken = review.referral_at("2026-01-05 10:00").await;
    // An event caseclerk cannot read (written by a newer version, or around it).
    let store = review.engine.store.clone();
    let id = store.case_by_ref(&broken).await.unwrap().unwrap().id;
    let mut tx = store.begin().await.unwrap();
    let unknown = serde_json::json!({ "from_a_newer_version": true });
    Store::add_event(
        &mut tx,
        id,
        london("2026-01-05 10:30"),
        "mystery",
        "test",
        &unknown,
    )
    .await
    .unwrap();
    Store::commit(tx).await.unwrap();
    let config = review.engine.cfg.file.clone();
    // The referrer writes about it: the pass goes on (it used to fail here, at every pass), and
    // the message waits for a person.
    let ack = review.last_about(&broken, REFERRER, "acknowledge");
    review
        .reply(
            &ack,
            REFERRER,
            "One more thing about the child.",
            "2026-01-05 10:45",
        )
        .await;
    let triage = review.engine.store.triage().await.unwrap();
    assert_eq!(triage.len(), 1, "{triage:?}");

    let other = review.referral_at("2026-01-05 11:00").await;
    assert_ne!(other, broken);
    review
        .decide(&other, "screening", "meets", "2026-01-05 15:00")
        .await;
    let told = review.for_step("outcome-meets");
    assert_eq!(told.len(), 1, "the other case's letters still go");
    let (code, out) = health(&config, "2026-01-05 15:01");
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("[letters_unprepared]") && out.contains("its history cannot be read"),
        "{out}"
    );
}

#[tokio::test]
async fn passes_that_fail_after_the_fetch_are_critical_and_clear_when_one_works() {
    let h = Harness::start("bury").await;
    h.tick(None); // the database is made, the empty mailbox looked at
    let db = h.dir.join("caseclerk.db");
    crate::history::sqlite3(
        &db,
        "CREATE TRIGGER refuse BEFORE INSERT ON events \
         BEGIN SELECT RAISE(ABORT, 'refused by a test'); END;",
    );
    h.deliver(
        REFERRER,
        SHARED,
        &referral("refused@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let failed = h.caseclerk(&["tick", "--process-existing"]);
    assert!(!failed.status.success(), "the pass cannot record the case");
    let run = |args: &[&str]| {
        let out = h.caseclerk(args);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, out) = run(&["health"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("[pass_failing]"), "{out}");
    assert!(!out.contains('@'), "{out}");

    crate::history::sqlite3(&db, "DROP TRIGGER refuse;");
    assert!(h.tick(None).contains("opened RR-"));
    let (_, out) = run(&["health"]);
    assert!(!out.contains("pass_failing"), "{out}");
}

/// A copy of the templates with `name`'s plain text asking for a value no letter has.
fn templates_breaking(name: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("mail-templates");
    let copy = std::env::temp_dir().join(format!(
        "caseclerk-health-templates-{}-{name}",
        std::process::id()
    ));
    let copied = Command::new("cp")
        .arg("-r")
        .arg(&root)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(copied.success());
    std::fs::write(copy.join(format!("{name}.text.hbs")), "{{no_such_value}}\n").unwrap();
    copy
}

#[tokio::test]
async fn a_notice_made_once_that_cannot_be_prepared_is_spoken_of_for_a_day_not_a_pass() {
    let templates = templates_breaking("vote-confirmed");
    let dir = templates.display().to_string();
    let mut review = Review::with("bury", |cfg| {
        let mut t = toml::Table::new();
        t.insert("dir".into(), dir.clone().into());
        cfg.insert("templates".into(), t.into());
    })
    .await;
    let case = review.referral_at("2026-01-05 10:00").await;
    let member = crate::full_reviews::SCREENING_PANEL[0];
    let ask = review.last_about(&case, member, "screening-request");
    review
        .reply(&ask, member, "MEETS", "2026-01-05 11:00")
        .await;
    assert!(review.for_step("notice-vote-confirmed").is_empty());
    assert!(review.state(&case).await.votes["screening"].contains_key(member));
    let config = review.engine.cfg.file.clone();
    // Later passes make nothing again, and must not clear it.
    review.at("2026-01-05 11:05").await;
    review.at("2026-01-05 12:00").await;
    let (_, out) = health(&config, "2026-01-05 12:01");
    assert!(
        out.contains("[notices_unprepared]") && out.contains("RR-2026-0001 notice-vote-confirmed"),
        "{out}"
    );
    let digest = review.digest_text().await;
    assert!(
        digest.contains("SOME LETTERS CANNOT BE PREPARED")
            && digest.contains("send what it should have said by hand"),
        "{digest}"
    );
    let (_, out) = health(&config, "2026-01-06 12:30");
    assert!(!out.contains("notices_unprepared"), "a day later: {out}");
    // The case's history keeps it for good.
    let report = review.report(&case).await;
    assert!(
        report.contains("note: the notice-vote-confirmed letter to")
            && report.contains("send what it should have said by hand"),
        "{report}"
    );
    std::fs::remove_dir_all(&templates).unwrap();
}

#[tokio::test]
async fn a_one_off_tick_that_could_not_prepare_a_letter_fails_and_says_so() {
    let h = Harness::start("bury").await;
    let templates = templates_breaking("acknowledge");
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    cfg["templates"].as_table_mut().unwrap().insert(
        "dir".into(),
        toml::Value::String(templates.display().to_string()),
    );
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
    h.deliver(
        REFERRER,
        SHARED,
        &referral("unprepared@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let out = h.caseclerk(&["tick", "--process-existing"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("opened RR-"), "{stdout}");
    assert!(
        stderr.contains("1 letter(s) could not be prepared"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&templates).unwrap();
}

#[tokio::test]
async fn a_missing_database_is_unknown_never_ok() {
    let review = Review::of("bury").await;
    let text = std::fs::read_to_string(&review.engine.cfg.file).unwrap();
    let mut cfg: toml::Table = text.parse().unwrap();
    let missing = review
        .engine
        .cfg
        .file
        .with_file_name("nowhere/caseclerk.db");
    cfg["storage"]["database"] = toml::Value::String(missing.display().to_string());
    let config = review.engine.cfg.file.with_file_name("elsewhere.toml");
    std::fs::write(&config, toml::to_string(&cfg).unwrap()).unwrap();

    let (code, out) = health(&config, "2026-01-05 10:01");
    assert_eq!(code, 3, "{out}");
    assert!(out.starts_with("CASECLERK UNKNOWN - "), "{out}");
}
