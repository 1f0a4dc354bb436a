//! The daily digest and the tracker report through the real mail stack, with `caseclerk tick
//! --now` stepping across late August 2026: the digest goes once per working day at its time,
//! never on a weekend or the Summer bank holiday (Mon 31 Aug 2026); the monthly tracker report
//! goes once, with its spreadsheet.
//!
//! The referral reaches the shared mailbox with a past INTERNALDATE (IMAP APPEND), so the dates are
//! fixed whatever day the tests run.

use crate::support::{Harness, REFERRER, SHARED, header, referral};
use caseclerk::core::intake::Message;

/// The business unit is `bsp@bury.test` (the shared mailbox itself, in To) and this officer (Cc).
const OFFICER: &str = "officer@bury.test";
const SUBJECT: &str = "SCSI-1 referral: baby admitted with a head injury";

async fn append(h: &Harness, raw: &[u8], at: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    h.stack.append(SHARED, raw, t).await.expect("append");
}

fn with_digest(cfg: &mut toml::Table) {
    let mut d = toml::Table::new();
    d.insert("at".into(), toml::Value::String("08:00".into()));
    d.insert("to".into(), toml::Value::String("business_unit".into()));
    cfg.insert("digest".into(), toml::Value::Table(d));
}

fn digests(ms: &[Message]) -> Vec<&Message> {
    ms.iter()
        .filter(|m| m.subject.contains("daily digest"))
        .collect()
}

#[tokio::test]
async fn the_digest_goes_once_each_working_morning_and_never_on_a_weekend_or_bank_holiday() {
    let h = Harness::start_with("bury", with_digest).await;
    before_its_time_no_digest_goes_but_the_daemon_will_wake_for_it(&h).await;
    the_first_digest_names_the_new_case_and_nothing_personal(&h).await;
    a_second_pass_the_same_morning_sends_nothing_more(&h).await;
    thursday_s_digest_lists_the_letters_sent_since_wednesday_s(&h).await;
    no_digest_on_a_weekend_or_bank_holiday_and_one_on_the_next_working_day(&h).await;
    the_preview_prints_the_text_part_as_of_any_instant(&h);
    the_tracker_is_exported_from_the_same_database(&h);
}

/// Wed 19 Aug 2026, 07:30 BST: before the digest's time, nothing.
async fn before_its_time_no_digest_goes_but_the_daemon_will_wake_for_it(h: &Harness) {
    let out = h.tick(Some("2026-08-19T06:30:00Z"));
    assert!(out.contains("queued 0"), "{out}");
    assert!(
        out.contains("next due Wed 19 Aug 2026 08:00"),
        "the daemon wakes for the digest: {out}"
    );
    assert_eq!(h.settled_count(OFFICER).await, 0);
}

/// A referral arrives at 09:00; at 09:05 the case opens and the (late) digest goes, naming it.
async fn the_first_digest_names_the_new_case_and_nothing_personal(h: &Harness) {
    append(
        h,
        &referral("digest-1@hospital.test", SUBJECT),
        "2026-08-19T09:00:00+01:00",
    )
    .await;
    let out = h.tick(Some("2026-08-19T08:05:00Z"));
    assert!(out.contains("opened RR-2026-0001"), "{out}");
    let got = h.wait_inbox(OFFICER, 1).await;
    let first = digests(&got);
    assert_eq!(
        first.len(),
        1,
        "{:?}",
        got.iter().map(|m| &m.subject).collect::<Vec<_>>()
    );
    let d = first[0];
    assert_eq!(
        d.subject,
        "BSP daily digest, Wed 19 Aug 2026: new referrals"
    );
    assert_eq!(d.auto_submitted.as_deref(), Some("auto-generated"));
    assert_eq!(d.from.as_ref().unwrap().email, SHARED);
    let id = d.message_id.clone().expect("our own Message-ID");
    assert!(
        id.starts_with("caseclerk.") && id.ends_with("@bury.test"),
        "{id}"
    );
    assert!(
        d.body_text
            .contains("Bury Safeguarding Partnership: daily digest for Wednesday 19 August 2026"),
        "{}",
        d.body_text
    );
    assert!(
        d.body_text.contains("NEW REFERRALS SINCE THE LAST DIGEST"),
        "{}",
        d.body_text
    );
    assert!(d.body_text.contains("RR-2026-0001"), "{}", d.body_text);
    for secret in [REFERRER, "head injury", "Please consider this referral"] {
        assert!(
            !d.body_text.contains(secret),
            "{secret} leaked: {}",
            d.body_text
        );
    }
    let raw = h.last_raw(OFFICER).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("text/html") && text.contains("text/plain"));
    assert!(
        header(&raw, "To").is_some_and(|to| to.contains(SHARED)),
        "the business unit's first person is in To"
    );
}

/// A second pass the same morning sends nothing more.
async fn a_second_pass_the_same_morning_sends_nothing_more(h: &Harness) {
    let out = h.tick(Some("2026-08-19T08:30:00Z"));
    assert!(out.contains("queued 0"), "{out}");
    assert_eq!(
        h.settled_count(OFFICER).await,
        1,
        "once a day, however often caseclerk looks"
    );
}

/// Thursday 08:00: the next one, with the letters sent since Wednesday's.
async fn thursday_s_digest_lists_the_letters_sent_since_wednesday_s(h: &Harness) {
    h.tick(Some("2026-08-20T07:00:00Z"));
    let got = h.wait_inbox(OFFICER, 2).await;
    let thursday = digests(&got)[1];
    assert_eq!(
        thursday.subject.split(':').next(),
        Some("BSP daily digest, Thu 20 Aug 2026")
    );
    assert!(
        thursday
            .body_text
            .contains("LETTERS SENT SINCE THE LAST DIGEST")
            && thursday
                .body_text
                .contains("Acknowledge the referral to the referrer"),
        "{}",
        thursday.body_text
    );
    assert!(
        !thursday.body_text.contains("NEW REFERRALS"),
        "Wednesday's referral was in Wednesday's digest: {}",
        thursday.body_text
    );
}

/// No digest on a weekend or a bank holiday; one on the next working day.
async fn no_digest_on_a_weekend_or_bank_holiday_and_one_on_the_next_working_day(h: &Harness) {
    // Saturday, Sunday, and the Summer bank holiday: nothing (and the next is Tuesday's).
    let out = h.tick(Some("2026-08-31T07:00:00Z"));
    assert!(out.contains("next due Tue 1 Sep 2026 08:00"), "{out}");
    for now in [
        "2026-08-22T07:00:00Z",
        "2026-08-23T09:00:00Z",
        "2026-08-31T07:00:00Z",
        "2026-08-31T12:00:00Z",
    ] {
        h.tick(Some(now));
    }
    assert_eq!(
        h.settled_count(OFFICER).await,
        2,
        "no digest on a weekend or bank holiday"
    );

    // Tuesday 1 September: the next working day, one digest.
    h.tick(Some("2026-09-01T07:00:00Z"));
    h.tick(Some("2026-09-01T07:10:00Z"));
    assert_eq!(h.settled_count(OFFICER).await, 3);
    let got = h.inbox(OFFICER).await;
    assert_eq!(
        digests(&got)[2].subject.split(':').next(),
        Some("BSP daily digest, Tue 1 Sep 2026")
    );
}

/// The preview prints the text part, as of any instant.
fn the_preview_prints_the_text_part_as_of_any_instant(h: &Harness) {
    let preview = h.ok(&["digest", "--now", "2026-09-01T07:30:00Z"]);
    assert!(
        preview.starts_with(
            "Bury Safeguarding Partnership: daily digest for Tuesday 1 September 2026"
        ),
        "{preview}"
    );
    assert!(preview.contains("RR-2026-0001"), "{preview}");
}

/// The tracker from the same database: CSV to standard output, XLSX to a file readable by its
/// writer only; a date it cannot read is refused; `check` describes the digest.
fn the_tracker_is_exported_from_the_same_database(h: &Harness) {
    let csv = h.ok(&["export", "--format", "csv", "--now", "2026-09-01T07:30:00Z"]);
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("Reference,Borough or area,Status,Next step,Next step due,")
    );
    let first = lines.next().unwrap();
    assert!(first.starts_with("RR-2026-0001,,"), "{csv}");
    assert!(first.contains(",2026-08-19,"), "received on day 0: {csv}");
    let none = h.ok(&["export", "--format", "csv", "--since", "2026-08-20"]);
    assert_eq!(none.lines().count(), 1, "only the header: {none}");
    let file = h.dir.join("tracker.xlsx");
    h.ok(&[
        "export",
        "--format",
        "xlsx",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(std::fs::read(&file).unwrap().starts_with(b"PK\x03\x04"));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&file).unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "the tracker is readable by its writer only"
    );
    let bad = h.caseclerk(&["export", "--format", "csv", "--since", "last week"]);
    assert_eq!(bad.status.code(), Some(2));
    let check = h.ok(&["check"]);
    assert!(
        check.contains("daily digest: each working day at 08:00 (London) to business_unit"),
        "{check}"
    );
}

#[tokio::test]
async fn the_bhr_tracker_report_goes_once_a_month_with_the_tracker_attached() {
    let h = Harness::start("bhr").await;
    const STRATEGIC: &str = "strategic@bury.test";
    const SCRUTINEER: &str = "scrutineer@bury.test";
    append(
        &h,
        &referral(
            "tracker-1@hospital.test",
            "Referral for a rapid review: a child in Havering",
        ),
        "2026-08-20T10:00:00+01:00",
    )
    .await;
    // Thu 20 Aug: the case opens; August's report (due Mon 3 Aug) goes, late, on this first run.
    h.tick(Some("2026-08-20T09:05:00Z"));
    let got = h.wait_inbox(STRATEGIC, 1).await;
    assert_eq!(got.len(), 1);
    let m = &got[0];
    assert_eq!(m.subject, "BSP rapid review tracker: August 2026");
    assert_eq!(m.auto_submitted.as_deref(), Some("auto-generated"));
    let sheet = m
        .attachments
        .iter()
        .find(|a| a.filename.ends_with(".xlsx"))
        .expect("the tracker is attached");
    assert!(sheet.data.starts_with(b"PK\x03\x04"), "an XLSX (zip) file");
    // In words, in the letter and the sheet: where the open case stands.
    assert!(
        m.body_text.contains("Where the open cases stand:")
            && m.body_text.contains("- Awaiting the screening decision: 1"),
        "{}",
        m.body_text
    );
    let mut wb: calamine::Xlsx<_> =
        calamine::open_workbook_from_rs(std::io::Cursor::new(sheet.data.clone())).unwrap();
    let cases = calamine::Reader::worksheet_range(&mut wb, "Cases").unwrap();
    assert_eq!(
        cases.get((1, 2)),
        Some(&calamine::Data::String(
            "Awaiting the screening decision".into()
        ))
    );
    let scrutineer = h.wait_inbox(SCRUTINEER, 1).await;
    assert_eq!(scrutineer.len(), 1, "the scrutineer is copied");

    // Later in August: nothing more. Tue 1 Sep 10:05 BST (after 09:00): September's.
    h.tick(Some("2026-08-27T09:05:00Z"));
    assert_eq!(h.settled_count(STRATEGIC).await, 1);
    h.tick(Some("2026-09-01T07:59:00Z"));
    assert_eq!(h.settled_count(STRATEGIC).await, 1, "not before 09:00");
    h.tick(Some("2026-09-01T09:05:00Z"));
    h.tick(Some("2026-09-01T09:06:00Z"));
    assert_eq!(h.settled_count(STRATEGIC).await, 2);
    let got = h.inbox(STRATEGIC).await;
    assert!(
        got[1].subject.ends_with("September 2026"),
        "{}",
        got[1].subject
    );
}
