//! Two calendars. Statutory time — day N, every `[[deadline]]`, the National Panel's 15 working
//! days, the local authority's 5-day notification — counts England & Wales working days only
//! (weekends and bank holidays); the partnership's closure days (the example configuration's
//! Tue 29 Dec 2026, a Christmas shutdown) only decide when the office sends a letter: a letter
//! dated on one goes on the last open working day before it, and `case` / `timeline` say why.
//! `check` warns six months before the bank-holiday data runs out.

use crate::review::{Review, london};
use crate::support::{PASSWORD, config_for};
use std::path::PathBuf;
use std::process::Command;

/// The lines of `caseclerk case` about `name`: its heading and the explanation under it.
fn entry<'a>(report: &'a str, name: &str) -> (&'a str, &'a str) {
    let mut lines = report.lines();
    while let Some(line) = lines.next() {
        if line.contains(name) {
            return (line, lines.next().unwrap_or_default());
        }
    }
    panic!("no {name:?} in:\n{report}");
}

#[tokio::test]
async fn a_north_east_lincolnshire_referral_on_friday_18_december_2026_is_due_at_the_national_panel_on_wednesday_13_january()
 {
    let mut r = Review::of("nelincs").await;
    let case = r.referral_at("2026-12-18 10:00").await;
    r.at("2026-12-18 12:00").await;
    let report = r.report(&case).await;
    let (line, why) = entry(
        &report,
        "Signed SRG-8 and Letter-9 to the National Panel (15 working days):",
    );
    assert!(line.ends_with("Wed 13 Jan 2027 17:00"), "{line}");
    // The closure day on Tue 29 Dec counts: the law does not know the office's shutdown.
    assert_eq!(
        why.trim(),
        "day 15 = Wed 13 Jan 2027 (skipped Fri 25 Dec Christmas Day, Mon 28 Dec Boxing Day \
         (substitute day), Fri 1 Jan New Year’s Day, 4 weekends)"
    );
    // `caseclerk timeline` plans the signed SRG-8 for the same statutory day 15, at noon.
    let out = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .args([
            "--config",
            "config/example.toml",
            "timeline",
            "--process",
            "nelincs",
        ])
        .args(["--received", "2026-12-18T10:00:00Z"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("caseclerk runs");
    let timeline = String::from_utf8(out.stdout).unwrap();
    assert!(
        timeline.contains(
            "day 15  Wed 13 Jan 2027 12:00   Signed SRG-8 to the National Panel with Letter-9"
        ),
        "{timeline}"
    );
    assert!(
        timeline.contains(
            "day 15  Wed 13 Jan 2027 17:00   Signed SRG-8 and Letter-9 to the National Panel (15 working days)"
        ),
        "{timeline}"
    );
}

#[tokio::test]
async fn a_statutory_deadline_on_a_closure_day_stays_on_that_day() {
    let mut r = Review::of("nelincs").await;
    let case = r.referral_at("2026-12-18 10:00").await;
    r.at("2026-12-18 12:00").await;
    let report = r.report(&case).await;
    // Day 5 is the closure day itself: the local authority's five working days end then.
    let (line, why) = entry(
        &report,
        "Local authority notifies the National Panel (5 working days):",
    );
    assert!(line.ends_with("Tue 29 Dec 2026 17:00"), "{line}");
    assert_eq!(
        why.trim(),
        "day 5 = Tue 29 Dec 2026 (skipped Fri 25 Dec Christmas Day, Mon 28 Dec Boxing Day \
         (substitute day), 2 weekends)"
    );
}

#[tokio::test]
async fn a_letter_that_falls_on_a_closure_day_goes_on_the_last_open_working_day_before_it() {
    let mut r = Review::of("bury").await;
    let case = r.referral_at("2026-12-22 10:15").await;
    r.decide(&case, "screening", "meets", "2026-12-23 11:00")
        .await;
    let report = r.report(&case).await;
    // The invitations are due on day 3, Tue 29 Dec: the office is closed, so they go on Christmas
    // Eve, the last open working day before.
    let (line, why) = entry(&report, "Invitations to the rapid review meeting");
    assert!(
        line.trim_start().starts_with("Thu 24 Dec 2026 10:00"),
        "{line}"
    );
    assert_eq!(
        why.trim(),
        "day 3 = Tue 29 Dec 2026 (skipped Fri 25 Dec Christmas Day, Mon 28 Dec Boxing Day \
         (substitute day), a weekend); the office is closed Tue 29 Dec Christmas shutdown \
         (closure day), so it goes on the last open working day before: Thu 24 Dec 2026"
    );
    r.at("2026-12-31 12:00").await;
    let invites = r.for_step("invite");
    assert!(!invites.is_empty(), "{:#?}", r.timeline());
    assert!(
        invites.iter().all(|l| l.at == london("2026-12-24 10:00")),
        "{:#?}",
        r.timeline()
    );
}

#[tokio::test]
async fn a_pack_moved_back_by_a_closure_day_still_goes_after_the_returns_are_due() {
    let mut r = Review::of("nelincs").await;
    // Day 7 is Thu 24 Dec 2026 (returns due 17:00); day 8, the pack's day, is the closure day.
    let case = r.referral_at("2026-12-15 10:00").await;
    r.decide(&case, "screening", "meets", "2026-12-16 11:00")
        .await;
    r.add_agencies(&case, &["police"], "2026-12-16 11:30").await;
    let report = r.report(&case).await;
    let (line, why) = entry(&report, "SCSI-7 rapid review report");
    assert!(
        line.trim_start().starts_with("Thu 24 Dec 2026 17:00"),
        "{line}"
    );
    assert!(
        why.ends_with("not before the returns are due (Thu 24 Dec 2026 17:00)"),
        "{why}"
    );
    r.at("2026-12-31 12:00").await;
    let packs = r.for_step("scsi7-report");
    assert!(!packs.is_empty(), "{:#?}", r.timeline());
    assert!(
        packs.iter().all(|l| l.at == london("2026-12-24 17:00")),
        "{:#?}",
        r.timeline()
    );
}

fn check_at(now: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "caseclerk-holidays-check-{}-{}",
        std::process::id(),
        now.replace(':', "")
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    crate::support::write_secret(&dir.join("password"), PASSWORD);
    let path: PathBuf = dir.join("caseclerk.toml");
    std::fs::write(&path, toml::to_string(&config_for("bury", &dir)).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .arg("--config")
        .arg(&path)
        .args(["check", "--now", now])
        .output()
        .expect("caseclerk runs");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn check_warns_from_six_months_before_the_bank_holiday_data_runs_out() {
    // The bundled data ends on Sun 31 Dec 2028; Sat 1 Jul 2028 (London) is 183 days before.
    let before = check_at("2028-06-30T22:59:00Z");
    assert!(
        before.contains("bank holidays: England & Wales data until Sun 31 Dec 2028"),
        "{before}"
    );
    assert!(!before.contains("WARNING"), "{before}");
    let from = check_at("2028-06-30T23:00:00Z");
    assert!(
        from.contains(
            "WARNING: the bank-holiday data ends on Sun 31 Dec 2028; update data/bank-holidays.json"
        ),
        "{from}"
    );
}

// ---- paperwork: marking, signature, the meeting's place, updated and cancelled invitations ----

/// `[letters]` as a partnership would set it.
fn paperwork(cfg: &mut toml::Table) {
    let letters: toml::Table = toml::from_str(
        r#"
        marking = "OFFICIAL-SENSITIVE"
        signature = { name = "Jo Bloggs", title = "Business Manager", phone = "0161 000 0001" }
        meeting_location = "Bury Town Hall, Committee Room 2"
        meeting_link = "https://teams.example.test/l/meetup-join/rr"
        "#,
    )
    .unwrap();
    cfg.insert("letters".into(), toml::Value::Table(letters));
}

fn text(l: &crate::review::Letter) -> String {
    String::from_utf8_lossy(&l.raw)
        .replace("=\r\n", "")
        .replace("=3D", "=")
}

fn recipients(letters: &[&crate::review::Letter]) -> std::collections::BTreeSet<String> {
    letters.iter().map(|l| l.to.join(", ")).collect()
}

/// The meeting the digest and the tracker show for the review's one case.
async fn meeting(r: &Review) -> Option<chrono::DateTime<chrono::Utc>> {
    let snap = caseclerk::shell::snapshot::gather(&r.engine.cfg, &r.engine.store, r.now(), r.now())
        .await
        .unwrap();
    snap.cases[0].meeting
}

#[tokio::test]
async fn letters_carry_the_marking_and_the_officer_and_a_moved_or_cancelled_meeting_reaches_everyone_invited()
 {
    let mut r = Review::with("bury", paperwork).await;
    let case = r.referral_at("2026-12-22 10:15").await;
    r.decide(&case, "screening", "meets", "2026-12-23 11:00")
        .await;
    r.at("2026-12-24 12:00").await;
    let invites = r.for_step("invite");
    assert!(invites.len() > 1, "{:#?}", r.timeline());
    for l in &invites {
        let subject = &l.msg.subject;
        assert!(subject.starts_with("OFFICIAL-SENSITIVE: "), "{subject}");
        let t = text(l);
        assert!(t.contains("Jo Bloggs, Business Manager"), "{t}");
        assert!(t.contains("Telephone 0161 000 0001"), "{t}");
        assert!(t.contains("Where: Bury Town Hall, Committee Room 2"), "{t}");
        assert!(
            t.contains("LOCATION:Bury Town Hall\\, Committee Room 2"),
            "{t}"
        );
        assert!(
            t.contains("URL:https://teams.example.test/l/meetup-join/rr"),
            "{t}"
        );
        assert!(t.contains("SEQUENCE:0"), "{t}");
    }
    let invited = recipients(&invites);

    // Moved: every attendee who was invited gets the update, same UID, SEQUENCE 1.
    r.at("2026-12-31 09:00").await;
    caseclerk::shell::operator::reschedule(
        &r.engine.cfg,
        &r.engine.store,
        &case,
        "meeting",
        london("2027-01-13 14:00"),
        "the chair is ill",
        "test",
        r.now(),
    )
    .await
    .unwrap();
    r.at("2026-12-31 09:01").await;
    let moved = r.for_step("meeting-change");
    assert_eq!(recipients(&moved), invited, "{:#?}", r.timeline());
    for l in &moved {
        let t = text(l);
        assert!(t.contains(&format!("UID:{case}-meeting@")), "{t}");
        assert!(t.contains("SEQUENCE:1"), "{t}");
        assert!(t.contains("METHOD:REQUEST"), "{t}");
        assert!(
            t.contains("DTSTART;TZID=Europe/London:20270113T140000"),
            "{t}"
        );
        assert!(t.contains("Why: the chair is ill"), "{t}");
    }

    assert_eq!(meeting(&r).await, Some(london("2027-01-13 14:00")));

    // Cancelled: the same people get METHOD:CANCEL, SEQUENCE 2.
    caseclerk::shell::operator::cancel_meeting(
        &r.engine.cfg,
        &r.engine.store,
        &case,
        "the review is stood down",
        "test",
        r.now(),
    )
    .await
    .unwrap();
    r.at("2026-12-31 09:02").await;
    let changes = r.for_step("meeting-change");
    let cancelled: Vec<_> = changes
        .iter()
        .copied()
        .filter(|l| text(l).contains("METHOD:CANCEL"))
        .collect();
    assert_eq!(recipients(&cancelled), invited, "{:#?}", r.timeline());
    for l in &cancelled {
        let t = text(l);
        assert!(t.contains("SEQUENCE:2"), "{t}");
        assert!(t.contains("STATUS:CANCELLED"), "{t}");
        assert!(t.contains(&format!("UID:{case}-meeting@")), "{t}");
    }
    // The digest and the tracker no longer show a meeting.
    assert_eq!(meeting(&r).await, None);
    // Nothing more goes on later passes.
    let sent = changes.len();
    r.at("2027-01-05 09:00").await;
    assert_eq!(
        r.for_step("meeting-change").len(),
        sent,
        "{:#?}",
        r.timeline()
    );
}

#[test]
fn a_marking_in_lower_case_and_a_meeting_link_that_is_not_https_are_both_reported() {
    let dir = std::env::temp_dir().join(format!("caseclerk-letters-check-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    crate::support::write_secret(&dir.join("password"), PASSWORD);
    let mut cfg = config_for("bury", &dir);
    paperwork(&mut cfg);
    let letters = cfg["letters"].as_table_mut().unwrap();
    letters.insert("marking".into(), "official-sensitive".into());
    letters.insert("meeting_link".into(), "teams.example.test/rr".into());
    let path = dir.join("caseclerk.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let err = caseclerk::shell::config::load(&path, caseclerk::shell::config::Needs::NoSecrets)
        .expect_err("refused");
    let _ = std::fs::remove_dir_all(&dir);
    let text = err.to_string();
    assert!(
        text.contains("[letters] marking = \"official-sensitive\": use capital letters"),
        "{text}"
    );
    assert!(
        text.contains("[letters] meeting_link = \"teams.example.test/rr\": give the online meeting's https:// address"),
        "{text}"
    );
}
