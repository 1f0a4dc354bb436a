//! A refused SMTP login (a rotated password) is not an undeliverable letter: every due letter
//! stays pending, nothing is raised as undelivered, the digest's first section says letters
//! cannot be sent, and the letters go by themselves — once each — when the login works again.

use crate::review::Review;
use crate::support::{Harness, PASSWORD, REFERRER, SHARED, referral};
use caseclerk::core::views::SmtpHold;

const LA: &str = "la.rep@bury.test";
const POLICE: &str = "police.rep@police.test";
const ICB: &str = "icb.rep@icb.test";

#[tokio::test]
async fn a_refused_login_keeps_every_letter_pending_and_they_go_once_each_when_it_works() {
    let mut r = Review::of("bury").await;
    r.mail.refuse_login(true);
    let case = r.referral_at("2026-08-20 10:00").await;
    assert_eq!(
        r.last.sent.held,
        Some(SmtpHold::LoginRefused),
        "{:?}",
        r.last.sent
    );
    assert_eq!(r.last.sent.undelivered, 0, "{:?}", r.last.sent);
    assert!(r.mail.sent().is_empty());
    r.at("2026-08-20 10:30").await;
    assert_eq!(r.last.sent.undelivered, 0, "{:?}", r.last.sent);
    assert!(r.mail.sent().is_empty());
    let report = r.report(&case).await;
    assert!(!report.to_lowercase().contains("undelivered"), "{report}");
    let digest = r.digest_text().await;
    assert!(digest.contains("LETTERS CANNOT BE SENT"), "{digest}");
    assert!(digest.contains("refused caseclerk's login"), "{digest}");

    r.mail.refuse_login(false);
    r.at("2026-08-20 11:00").await;
    assert_eq!(r.last.sent.held, None, "{:?}", r.last.sent);
    for member in [LA, POLICE, ICB] {
        assert_eq!(
            r.sent_to_for(member, "screening-request").len(),
            1,
            "{member}"
        );
    }
    assert_eq!(r.sent_to(REFERRER).len(), 1, "the acknowledgement, once");
    let mut keys: Vec<&str> = r.letters().iter().map(|l| l.key.as_str()).collect();
    let all = keys.len();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), all, "no letter went twice");
    let digest = r.digest_text().await;
    assert!(!digest.contains("refused caseclerk's login"), "{digest}");
    let report = r.report(&case).await;
    assert!(!report.to_lowercase().contains("undelivered"), "{report}");
}

#[tokio::test]
async fn a_letter_held_over_a_day_gets_its_own_day_of_retries_before_it_is_given_up() {
    let mut r = Review::of("bury").await;
    // A first temporary failure, then the login refused for more than a day.
    r.mail.busy(true);
    let case = r.referral_at("2026-08-20 10:00").await;
    assert!(r.last.sent.retrying > 0, "{:?}", r.last.sent);
    r.mail.busy(false);
    r.mail.refuse_login(true);
    r.at("2026-08-21 10:59").await;
    assert!(r.mail.sent().is_empty());
    // The login is put right after a day, and the server is then busy for a while: a temporary
    // refusal, the first these letters have had, is retried.
    r.mail.refuse_login(false);
    r.mail.busy(true);
    r.at("2026-08-21 11:00").await;
    assert_eq!(r.last.sent.undelivered, 0, "{:?}", r.last.sent);
    assert!(r.last.sent.retrying > 0, "{:?}", r.last.sent);
    r.mail.busy(false);
    r.at("2026-08-21 11:30").await;
    assert_eq!(r.sent_to_for(LA, "screening-request").len(), 1);
    assert_eq!(r.sent_to(REFERRER).len(), 1, "the acknowledgement, once");
    let report = r.report(&case).await;
    assert!(!report.to_lowercase().contains("undelivered"), "{report}");

    // A day of temporary refusals, counted from the first of them, and a letter is given up.
    r.mail.busy(true);
    r.decide(&case, "screening", "nfa", "2026-08-21 12:00")
        .await;
    assert!(r.last.sent.retrying > 0, "{:?}", r.last.sent);
    r.at("2026-08-22 11:55").await;
    let report = r.report(&case).await;
    assert!(!report.contains("could not be sent for a day"), "{report}");
    r.at("2026-08-22 13:05").await;
    let report = r.report(&case).await;
    assert!(report.contains("could not be sent for a day"), "{report}");
}

/// The harness with the SMTP password in a file of its own (so only sending is affected), holding
/// a wrong password; that file.
fn with_wrong_smtp_password(h: &Harness) -> std::path::PathBuf {
    let smtp_password = h.dir.join("smtp-password");
    crate::support::write_secret(&smtp_password, "not-the-password");
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    cfg["smtp"].as_table_mut().unwrap().insert(
        "password_file".into(),
        toml::Value::String(smtp_password.display().to_string()),
    );
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
    smtp_password
}

#[tokio::test]
async fn a_rotated_smtp_password_holds_the_letters_until_it_is_put_right() {
    let h = Harness::start("bury").await;
    let smtp_password = with_wrong_smtp_password(&h);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("rotated@hospital.test", "Referral for a rapid review"),
    )
    .await;

    let out = h.caseclerk(&["tick", "--process-existing"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("opened RR-"), "{stdout}");
    assert!(
        stdout.contains("sent 0") && stdout.contains("undelivered 0"),
        "{stdout}"
    );
    assert!(
        stderr.contains("refused caseclerk's SMTP login"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(PASSWORD) && !stderr.contains("not-the-password"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(REFERRER) && !stderr.contains(LA),
        "{stderr}"
    );
    let digest = h.ok(&["digest"]);
    assert!(digest.contains("LETTERS CANNOT BE SENT"), "{digest}");
    assert!(!digest.contains("UNDELIVERED"), "{digest}");
    assert_eq!(h.settled_count(REFERRER).await, 0);

    std::fs::write(&smtp_password, PASSWORD).unwrap();
    let again = h.tick(None);
    assert!(again.contains("undelivered 0"), "{again}");
    assert!(!h.ok(&["digest"]).contains("LETTERS CANNOT BE SENT"));
    h.tick(None);
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "the acknowledgement, once"
    );
    for member in [LA, POLICE, ICB] {
        assert_eq!(h.settled_count(member).await, 1, "{member}");
    }
}

#[tokio::test]
async fn the_daemon_sends_the_held_letters_once_the_password_file_is_put_right_without_a_restart() {
    let h = Harness::start("bury").await;
    let smtp_password = with_wrong_smtp_password(&h);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("held-1@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let first = h.caseclerk(&["tick", "--process-existing"]);
    assert!(!first.status.success(), "the login is refused");
    let mut daemon = h.daemon();
    daemon.wait_log(&["refused our login"], 1).await;

    std::fs::write(&smtp_password, PASSWORD).unwrap();
    // New mail wakes the daemon for its next pass.
    h.deliver(
        REFERRER,
        SHARED,
        &referral("held-2@hospital.test", "Rapid review referral"),
    )
    .await;
    daemon.wait_log(&["letter sent"], 8).await;
    let log = daemon.stop().await;
    assert!(!log.contains("letter undelivered"), "{log}");
    assert!(
        !log.contains("not-the-password") && !log.contains(PASSWORD),
        "{log}"
    );
    assert_eq!(
        h.settled_count(REFERRER).await,
        2,
        "one acknowledgement per referral"
    );
    for member in [LA, POLICE, ICB] {
        assert_eq!(h.settled_count(member).await, 2, "{member}");
    }
}

#[tokio::test]
async fn a_refused_mailbox_login_is_raised_without_naming_the_account() {
    // The account may be a person's own: its name is not for the journal, the health row or
    // the business unit's digest, which all carry the failure.
    let h = Harness::start("bury").await;
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    let account = cfg["mailbox"]["username"].as_str().unwrap().to_string();
    let wrong = h.dir.join("mailbox-password");
    crate::support::write_secret(&wrong, "not-the-password");
    let mailbox = cfg["mailbox"].as_table_mut().unwrap();
    mailbox.remove("password_env");
    mailbox.insert(
        "password_file".into(),
        toml::Value::String(wrong.display().to_string()),
    );
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();

    let out = h.caseclerk(&["tick"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("IMAP login failed"), "{stderr}");
    let health = h.caseclerk(&["health"]);
    let health = String::from_utf8_lossy(&health.stdout);
    let digest = h.ok(&["digest"]);
    assert!(digest.contains("login failed"), "{digest}");
    for (what, text) in [
        ("log", &*stderr),
        ("health", &*health),
        ("digest", &*digest),
    ] {
        assert!(
            !text.contains(&account),
            "{what} names the account:\n{text}"
        );
    }
}
