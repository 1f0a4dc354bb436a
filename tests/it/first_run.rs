//! The first run on a full mailbox, through the real mail stack: `--since` leaves old mail for
//! people, `--dry-run` writes and sends nothing, and letters that fell due long before the run are
//! imported — not sent.

use crate::support::{Harness, REFERRER, SHARED, referral, reply};
use caseclerk::shell::store::Store;
use chrono::{DateTime, Duration, FixedOffset};

const PANEL: [&str; 3] = [
    "la.rep@bury.test",
    "police.rep@police.test",
    "icb.rep@icb.test",
];

/// The first run: Wednesday 25 November 2026, 10:00 London.
const NOW: &str = "2026-11-25T10:00:00Z";

fn at(s: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(s).unwrap()
}

/// A shared mailbox as it is on the day caseclerk arrives: 1,000 messages of this year before
/// November (one of them a referral from March), and in November twenty messages, a referral from
/// the 3rd and one from yesterday.
async fn full_mailbox(h: &Harness) {
    let mut mail: Vec<(Vec<u8>, DateTime<FixedOffset>)> = (0..1000)
        .map(|i| {
            let day = at("2026-01-05T09:00:00Z") + Duration::hours(7 * i as i64);
            (caseclerk::dev::bench::sample(i), day)
        })
        .collect();
    mail.push((
        referral("march@hospital.test", "Referral for a rapid review"),
        at("2026-03-10T11:00:00Z"),
    ));
    for i in 0..20 {
        let day = at("2026-11-02T09:00:00Z") + Duration::hours(10 * i as i64);
        mail.push((caseclerk::dev::bench::sample(5000 + i), day));
    }
    mail.push((
        referral("november@hospital.test", "Referral for a rapid review"),
        at("2026-11-03T11:00:00Z"),
    ));
    mail.push((
        referral("yesterday@hospital.test", "Referral for a rapid review"),
        at("2026-11-24T09:30:00Z"),
    ));
    h.stack.append_many(SHARED, &mail).await.expect("appended");
}

fn run(h: &Harness, args: &[&str]) -> (String, String) {
    let out = h.caseclerk(args);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?}:\n{stdout}\n{stderr}");
    (stdout, stderr)
}

/// The first run's command: read the mail already there, from 1 November.
const FIRST_RUN: [&str; 6] = [
    "tick",
    "--process-existing",
    "--since",
    "2026-11-01",
    "--now",
    NOW,
];

#[tokio::test]
async fn a_first_run_over_a_thousand_old_messages_reads_only_mail_since_the_date_and_sends_no_stale_letter()
 {
    let h = Harness::start("bury").await;
    full_mailbox(&h).await;
    since_needs_process_existing_and_a_date(&h);
    the_dry_run_prints_the_plan_and_leaves_no_database_and_no_letter(&h).await;
    on_a_terminal_the_dry_run_shows_its_progress(&h);
    the_real_run_opens_the_two_november_cases_and_leaves_march_to_people(&h);
    let old = letters_due_long_before_the_run_are_imported_not_sent(&h).await;
    the_next_pass_sends_nothing_more(&h).await;
    a_dry_run_on_a_working_database_changes_nothing(&h).await;
    an_operator_can_send_an_imported_letter_deliberately(&h, &old).await;
}

/// --since only makes sense with --process-existing, and must be a date.
fn since_needs_process_existing_and_a_date(h: &Harness) {
    let alone = h.caseclerk(&["tick", "--since", "2026-11-01"]);
    assert_eq!(alone.status.code(), Some(2));
    let bad = h.caseclerk(&["tick", "--process-existing", "--since", "1 November"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a date like 2026-11-01"));
}

/// The dry run prints the plan and leaves no database and no letter behind.
async fn the_dry_run_prints_the_plan_and_leaves_no_database_and_no_letter(h: &Harness) {
    let mut dry = FIRST_RUN.to_vec();
    dry.push("--dry-run");
    let (plan, stderr) = run(h, &dry);
    assert!(plan.starts_with("dry run: nothing was written"), "{plan}");
    assert!(
        plan.contains("1023 new message(s); 22 read, 1001 left for people"),
        "{plan}"
    );
    assert!(plan.contains("open 2 case(s)"), "{plan}");
    assert!(
        plan.contains("RR-2026-0001  would open, received"),
        "{plan}"
    );
    assert!(
        plan.contains("RR-2026-0002  would open, received"),
        "{plan}"
    );
    assert!(plan.contains("imported — not sent"), "{plan}");
    assert!(plan.contains("  send  "), "{plan}");
    assert!(!plan.contains('@'), "no addresses in the plan:\n{plan}");
    assert!(!plan.contains("Referral for"), "no subjects in the plan");
    assert!(
        !h.dir.join("caseclerk.db").exists(),
        "the dry run wrote no database"
    );
    let scratch = h.dir.join(".caseclerk-scratch");
    assert!(
        scratch.is_dir(),
        "its copy was made beside the database, not in the system's temporary directory"
    );
    assert!(
        !walk(&scratch).iter().any(|f| f.ends_with(".db")),
        "and removed: {:?}",
        walk(&scratch)
    );
    assert_eq!(
        h.settled_count(REFERRER).await,
        0,
        "the dry run sent nothing"
    );
    assert!(
        !stderr.contains("messages ("),
        "no progress line off a terminal:\n{stderr}"
    );
}

/// On a terminal (a pseudo-terminal from util-linux `script`), the same dry run shows its
/// progress on stderr: messages done of the total, and the rate.
fn on_a_terminal_the_dry_run_shows_its_progress(h: &Harness) {
    let command = format!(
        "{} --config {} {} --dry-run",
        env!("CARGO_BIN_EXE_caseclerk"),
        h.config.display(),
        FIRST_RUN.join(" ")
    );
    let tty = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("RUST_LOG", "off")
        .output()
        .expect("script (util-linux) runs");
    let screen = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{screen}");
    assert!(
        screen.contains("reading the mailbox: 22/22 messages ("),
        "{screen}"
    );
    assert!(screen.contains("deciding: 22/22 messages ("), "{screen}");
    assert!(screen.contains("/s)"), "{screen}");
    assert!(!h.dir.join("caseclerk.db").exists());
}

/// The real run: the same plan, done.
fn the_real_run_opens_the_two_november_cases_and_leaves_march_to_people(h: &Harness) {
    let out = h.ok(&FIRST_RUN);
    assert!(
        out.contains("first look at the mailbox: 1023 message(s) there, 1001 left for people"),
        "{out}"
    );
    assert!(out.contains("opened RR-2026-0001 RR-2026-0002"), "{out}");
    let cases = h.ok(&["cases", "--now", NOW]);
    assert_eq!(
        cases.matches("RR-2026-").count(),
        2,
        "March stays with people:\n{cases}"
    );
}

/// Yesterday's referral is acknowledged (late) and goes to the panel; the one from the 3rd,
/// whose letters fell due three weeks ago, is imported — not sent. Its case report.
async fn letters_due_long_before_the_run_are_imported_not_sent(h: &Harness) -> String {
    let acks = h.wait_inbox(REFERRER, 1).await;
    assert_eq!(h.settled_count(REFERRER).await, 1);
    assert!(acks[0].subject.contains("RR-2026-0002"), "the recent one");
    for member in PANEL {
        assert_eq!(h.settled_count(member).await, 1, "{member}");
    }
    let old = h.ok(&["case", "RR-2026-0001", "--now", NOW]);
    assert!(old.contains("imported — not sent"), "{old}");
    let digest = h.ok(&["digest", "--now", "2026-11-25T10:05:00Z"]);
    let imported = digest
        .split("IMPORTED, NOT SENT")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .unwrap_or_else(|| panic!("the digest lists imported letters:\n{digest}"));
    assert_eq!(imported.matches("RR-2026-0001").count(), 4, "{imported}");
    assert!(!imported.contains("RR-2026-0002"), "{imported}");

    old
}

/// The next pass sends nothing more, and the mail left for people stays left.
async fn the_next_pass_sends_nothing_more(h: &Harness) {
    let again = h.ok(&[
        "tick",
        "--process-existing",
        "--now",
        "2026-11-25T10:10:00Z",
    ]);
    assert!(
        again.starts_with("not the first look at the mailbox")
            && again.contains("\nfetched 0 new, processed 0"),
        "{again}"
    );
    assert_eq!(h.settled_count(REFERRER).await, 1);
}

/// A dry run on a working database: it shows a new referral's case and letters, and the
/// database and the mailboxes are as they were.
async fn a_dry_run_on_a_working_database_changes_nothing(h: &Harness) {
    h.stack
        .append(
            SHARED,
            &referral("today@hospital.test", "Referral for a rapid review"),
            at("2026-11-25T10:12:00Z"),
        )
        .await
        .expect("appended");
    let files = || {
        ["caseclerk.db", "caseclerk.db-wal"]
            .map(|f| std::fs::read(h.dir.join(f)).unwrap_or_default())
    };
    let before = files();
    let (plan, _) = run(h, &["tick", "--now", "2026-11-25T10:13:00Z", "--dry-run"]);
    assert!(plan.contains("RR-2026-0003  would open"), "{plan}");
    assert!(plan.contains("send 4 letter(s) now; 0 imported"), "{plan}");
    assert!(before == files(), "the dry run changed the database");
    assert_eq!(
        h.ok(&["cases", "--now", NOW]).matches("RR-2026-").count(),
        2
    );
    assert_eq!(h.settled_count(REFERRER).await, 1);
}

/// An operator can send an imported letter (found in the `old` case's report) deliberately.
async fn an_operator_can_send_an_imported_letter_deliberately(h: &Harness, old: &str) {
    let ack_line = old
        .lines()
        .find(|l| l.contains("imported — not sent") && l.contains("hospital.test"))
        .expect("the imported acknowledgement");
    let id = ack_line.split_whitespace().next().unwrap();
    h.ok(&[
        "resend",
        "RR-2026-0001",
        id,
        "--reason",
        "the referrer asked for it",
        "--now",
        "2026-11-25T10:20:00Z",
    ]);
    h.ok(&["tick", "--now", "2026-11-25T10:21:00Z"]);
    // The resent acknowledgement, and the new referral's own.
    assert_eq!(h.settled_count(REFERRER).await, 3);
}

/// Without a server: a case opened on a first run from a referral of three weeks ago gets none of
/// the letters that fell due then, and every letter that falls due after the run.
#[tokio::test]
async fn a_case_opened_from_an_old_referral_on_the_first_run_still_gets_its_future_letters() {
    use crate::review::Review;
    let mut review = Review::of("bury").await;
    review
        .stored(
            &referral("november@hospital.test", "Referral for a rapid review"),
            "2026-11-03 11:00",
        )
        .await;
    review.first_run_at("2026-11-25 10:00").await;
    assert_eq!(review.last.opened, ["RR-2026-0001"]);
    assert!(
        review.letters().is_empty(),
        "the acknowledgement and the screening request of 3 November are imported, not sent"
    );
    let report = review.report("RR-2026-0001").await;
    assert_eq!(report.matches("imported — not sent").count(), 4, "{report}");

    review
        .decide("RR-2026-0001", "screening", "meets", "2026-11-26 09:00")
        .await;
    review.at("2026-11-26 10:30").await;
    assert!(
        !review.for_step("outcome-meets").is_empty(),
        "the outcome, due after the run, goes: {:?}",
        review.timeline()
    );
    assert!(review.for_step("acknowledge").is_empty());
}

/// A backlog of several of the deciding loop's batches (over a hundred messages and over 8 MB):
/// every message is decided once, and a reply in a later batch finds the case its referral opened
/// in the first — the batches are decided in the order the mail arrived, each seeing what the
/// ones before it recorded.
#[tokio::test]
async fn a_backlog_of_several_batches_is_decided_once_and_a_reply_in_a_later_batch_finds_its_case()
{
    let h = Harness::start("bury").await;
    let start = at("2026-11-20T09:00:00Z");
    let n = 300;
    let mail: Vec<(Vec<u8>, DateTime<FixedOffset>)> = (0..n)
        .map(|i| {
            let raw = match i {
                3 => referral("early@hospital.test", "Referral for a rapid review"),
                290 => reply(
                    REFERRER,
                    "early@hospital.test",
                    "RE: Referral for a rapid review",
                    "The school's chronology, as promised.",
                    None,
                ),
                _ => caseclerk::dev::bench::sample(i),
            };
            (raw, start + Duration::minutes(i as i64))
        })
        .collect();
    let bytes: usize = mail.iter().map(|(m, _)| m.len()).sum();
    assert!(bytes > 8 * 1024 * 1024, "{bytes}");
    h.stack.append_many(SHARED, &mail).await.expect("appended");
    let out = h.tick(Some(NOW));
    assert!(out.contains("opened RR-2026-0001"), "{out}");
    assert!(
        !out.contains("RR-2026-0002"),
        "one case, the reply on it: {out}"
    );
    let store = Store::open_read_only(&h.dir.join("caseclerk.db"))
        .await
        .unwrap();
    let states = store.message_states().await.unwrap();
    let stored: i64 = states.iter().map(|(_, _, k)| k).sum();
    assert_eq!(stored, n as i64, "{states:?}");
    assert!(
        states.iter().all(|(state, _, _)| state != "new"),
        "every message decided: {states:?}"
    );
    // Stored in the order fetched: the referral is message 4, the reply message 291.
    // Decided in the order the mail arrived (the referral 4th, the reply 291st, two batches
    // later): the referral opened the case and the reply was filed on it by its thread; the rest
    // is the bench's unmatched mail, listed for a person.
    let count = |state: &str, rule: &str| count_of(&states, state, rule);
    assert_eq!(count("filed", "referral"), 1, "{states:?}");
    assert_eq!(count("filed", "thread"), 1, "{states:?}");
    assert_eq!(count("triage", "unmatched"), n as i64 - 2, "{states:?}");
    assert!(
        h.ok(&["tick", "--process-existing", "--now", NOW])
            .contains("processed 0"),
        "nothing is decided twice"
    );
}

/// The mail is decided while the fetch is still storing it, but never ahead of the order it
/// arrived in: here the referral arrived first yet sits last in the folder (a mailbox migrated
/// into Exchange numbers its mail in any order), in the fetch's last batch, and the reply to it
/// is the folder's first message. The reply waits for the referral, finds its case, and
/// nothing else changes.
#[tokio::test]
async fn mail_is_decided_in_the_order_it_arrived_even_when_the_folder_holds_it_in_another() {
    let h = Harness::start("bury").await;
    let start = at("2026-11-20T09:00:00Z");
    let n = 300;
    let mail: Vec<(Vec<u8>, DateTime<FixedOffset>)> = (0..n)
        .map(|i| match i {
            0 => (
                reply(
                    REFERRER,
                    "early@hospital.test",
                    "RE: Referral for a rapid review",
                    "The school's chronology, as promised.",
                    None,
                ),
                start + Duration::minutes(600),
            ),
            _ if i == n - 1 => (
                referral("early@hospital.test", "Referral for a rapid review"),
                start - Duration::minutes(10),
            ),
            _ => (
                caseclerk::dev::bench::sample(i),
                start + Duration::minutes(i as i64),
            ),
        })
        .collect();
    let bytes: usize = mail.iter().map(|(m, _)| m.len()).sum();
    assert!(bytes > 8 * 1024 * 1024, "several batches: {bytes}");
    h.stack.append_many(SHARED, &mail).await.expect("appended");
    let out = h.tick(Some(NOW));
    assert!(out.contains("opened RR-2026-0001"), "{out}");
    let store = Store::open_read_only(&h.dir.join("caseclerk.db"))
        .await
        .unwrap();
    let states = store.message_states().await.unwrap();
    let count = |state: &str, rule: &str| count_of(&states, state, rule);
    assert_eq!(count("filed", "referral"), 1, "{states:?}");
    assert_eq!(
        count("filed", "thread"),
        1,
        "the reply found its case: {states:?}"
    );
    assert_eq!(count("triage", "unmatched"), n as i64 - 2, "{states:?}");
}

/// How many messages were filed in `state` by `rule`, from [`Store::message_states`].
fn count_of(states: &[(String, Option<String>, i64)], state: &str, rule: &str) -> i64 {
    states
        .iter()
        .find(|(s, r, _)| s == state && r.as_deref() == Some(rule))
        .map_or(0, |(_, _, k)| *k)
}

/// The mailbox moved, restored or re-indexed after the first run (a new UIDVALIDITY): caseclerk
/// reads the folder again from its start, and neither the old referrals the first run left for
/// people nor the mail it has already decided opens a case again.
#[tokio::test]
async fn a_renumbered_mailbox_is_read_again_without_opening_the_referrals_the_first_run_left() {
    let h = Harness::start("bury").await;
    let old = [
        (
            referral("left.1@hospital.test", "Referral for a rapid review"),
            at("2026-11-02T09:00:00Z"),
        ),
        (
            referral("left.2@hospital.test", "Referral for a rapid review"),
            at("2026-11-03T09:00:00Z"),
        ),
    ];
    h.stack.append_many(SHARED, &old).await.expect("appended");
    let (first, _) = run(&h, &["tick", "--now", NOW]);
    assert!(!first.contains("opened RR-"), "{first}");
    let new = [(
        referral("after@hospital.test", "Referral for a rapid review"),
        at("2026-11-25T10:30:00Z"),
    )];
    h.stack.append_many(SHARED, &new).await.expect("appended");
    let (second, _) = run(&h, &["tick", "--now", "2026-11-25T10:40:00Z"]);
    assert!(second.contains("opened RR-2026-0001"), "{second}");

    h.stack.renumber(SHARED, "INBOX").await.expect("renumbered");
    let (third, _) = run(&h, &["tick", "--now", "2026-11-25T10:50:00Z"]);
    assert!(!third.contains("opened RR-"), "{third}");
    // After that pass, mail is read as usual whatever its date: an old referral a person moves
    // back into the inbox from a folder of their own is read, not left unseen.
    let moved_back = [(
        referral("moved.back@hospital.test", "Referral for a rapid review"),
        at("2026-11-04T09:00:00Z"),
    )];
    h.stack
        .append_many(SHARED, &moved_back)
        .await
        .expect("appended");
    let (fourth, _) = run(&h, &["tick", "--now", "2026-11-25T11:00:00Z"]);
    assert!(fourth.contains("opened RR-2026-0002"), "{fourth}");
    let store = Store::open_read_only(&h.dir.join("caseclerk.db"))
        .await
        .unwrap();
    assert_eq!(store.cases().await.unwrap().len(), 2);
}

/// Every file under `dir`, as paths.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}
