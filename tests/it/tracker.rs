//! The tracker a business manager adopts: a dozen BHR cases, a reviewer named with
//! `caseclerk set-reviewer`, exported with `caseclerk export` and read back (words, not codes),
//! then printed through LibreOffice (headless, XLSX → PDF): one page wide, every case on the page,
//! not spread over nine.
//!
//! LibreOffice is installed by `scripts/install-mailstack.sh` (`libreoffice-calc-nogui`); a missing
//! `soffice` fails the print test loudly, it never skips.

use crate::review::Review;
use crate::support::{REFERRER, cli, said};
use calamine::{Data, Reader, Xlsx};
use caseclerk::core::export::COLUMNS;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MARKING: &str = "OFFICIAL-SENSITIVE";
const NOW: &str = "2026-10-23T15:00:00Z";

/// Twelve referrals over the first three weeks of October 2026 under BHR's process, marked
/// OFFICIAL-SENSITIVE; two screened (one meets, one no further action). Their references.
async fn a_dozen_cases() -> (Review, Vec<String>) {
    let mut r = Review::with("bhr", |cfg| {
        let mut letters = toml::Table::new();
        letters.insert("marking".into(), toml::Value::String(MARKING.into()));
        cfg.insert("letters".into(), toml::Value::Table(letters));
    })
    .await;
    let mut refs = Vec::new();
    for i in 0..12 {
        let day = 5 + (i / 4) * 7 + i % 4;
        let when = format!("2026-10-{day:02} 10:{:02}", i * 3);
        refs.push(
            r.referral_from(REFERRER, &format!("Referral for a rapid review {i}"), &when)
                .await,
        );
    }
    r.decide(&refs[0], "screening", "meets", "2026-10-22 12:00")
        .await;
    r.decide(&refs[1], "screening", "nfa", "2026-10-22 12:30")
        .await;
    (r, refs)
}

fn run(r: &Review, args: &[&str]) -> std::process::Output {
    let mut all = args.to_vec();
    all.extend(["--now", NOW]);
    cli(&r.config_path(), &all)
}

/// `caseclerk export --format xlsx --output <file>` beside the review's configuration; the file.
fn export_xlsx(r: &Review) -> PathBuf {
    let file = r.config_path().with_file_name("tracker.xlsx");
    let out = run(
        r,
        &[
            "export",
            "--format",
            "xlsx",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", said(&out));
    file
}

#[tokio::test]
async fn a_reviewer_named_by_hand_is_on_the_tracker_with_plain_words_and_the_history_says_who_and_why()
 {
    let (r, refs) = a_dozen_cases().await;
    let case = refs[0].as_str();
    let name = "Jo Bloggs (independent reviewer)";
    let set = |args: &[&str]| {
        let mut all = vec!["set-reviewer"];
        all.extend(args);
        all.extend(["--by", "business.manager"]);
        run(&r, &all)
    };

    // Refused: no reason, a name a spreadsheet would read as a formula, an unknown case.
    for (args, says) in [
        (vec![case, name, "--reason", " "], "give a reason"),
        (
            vec![case, "=HYPERLINK(\"x\")", "--reason", "r"],
            "cannot go on the tracker",
        ),
        (
            vec!["RR-2099-0001", name, "--reason", "r"],
            "no case RR-2099-0001",
        ),
    ] {
        let out = set(&args);
        assert_eq!(out.status.code(), Some(2), "{}", said(&out));
        assert!(said(&out).contains(says), "{says}: {}", said(&out));
    }
    let out = set(&[case, name, "--reason", "chosen by the review group"]);
    assert!(out.status.success(), "{}", said(&out));
    let again = set(&[case, name, "--reason", "again"]);
    assert!(
        said(&again).contains("already the reviewer"),
        "{}",
        said(&again)
    );

    let history = said(&run(&r, &["case", case]));
    assert!(
        history.contains("operator:business.manager reviewer: Jo Bloggs (independent reviewer) (chosen by the review group)"),
        "{history}"
    );

    // The CSV says it in words: the reviewer, the screening outcome, where each case stands.
    let csv = said(&run(&r, &["export", "--format", "csv"]));
    let first = csv.lines().nth(1).unwrap();
    assert!(first.contains(name), "{first}");
    assert!(
        first.contains("Meets the criteria: rapid review"),
        "{first}"
    );
    assert!(first.contains("Rapid review in progress"), "{first}");
    let second = csv.lines().nth(2).unwrap();
    assert!(second.contains("No further action"), "{second}");
    for code in [",meets,", ",nfa,", ",rapid review,", ",screening,", "_"] {
        assert!(!csv.contains(code), "an internal code {code}: {csv}");
    }

    // The XLSX reads back the same.
    let mut wb: Xlsx<_> = calamine::open_workbook(export_xlsx(&r)).unwrap();
    let cases = wb.worksheet_range("Cases").unwrap();
    let col = |n: &str| COLUMNS.iter().position(|h| *h == n).unwrap();
    assert_eq!(cases.height(), 13, "a header and twelve cases");
    let row = cases
        .rows()
        .find(|row| row[0] == Data::String(case.into()))
        .unwrap();
    assert_eq!(row[col("Reviewer")], Data::String(name.into()));
    assert_eq!(
        row[col("Screening outcome")],
        Data::String("Meets the criteria: rapid review".into())
    );
    let awaiting = cases
        .rows()
        .find(|row| row[0] == Data::String(refs[5].clone()))
        .unwrap();
    assert_eq!(
        awaiting[col("Status")],
        Data::String("Awaiting the screening decision".into())
    );
}

/// Run `soffice` (headless) to turn `xlsx` into a PDF beside it, within two minutes; the PDF.
fn print_to_pdf(xlsx: &Path) -> PathBuf {
    let dir = xlsx.parent().unwrap();
    let mut child = Command::new("soffice")
        .arg(format!(
            "-env:UserInstallation=file://{}",
            dir.join("libreoffice-profile").display()
        ))
        .args([
            "--headless",
            "--norestore",
            "--convert-to",
            "pdf",
            "--outdir",
        ])
        .arg(dir)
        .arg(xlsx)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "LibreOffice (`soffice`) cannot be run ({e}): install it with \
                 `bash scripts/install-mailstack.sh` (it installs libreoffice-calc-nogui)"
            )
        });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "LibreOffice did not convert {} within two minutes",
                xlsx.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "soffice failed: {status}");
    xlsx.with_extension("pdf")
}

/// The pages of a PDF: its `/Type /Page` objects (LibreOffice writes them uncompressed).
fn pages(pdf: &[u8]) -> usize {
    let text = String::from_utf8_lossy(pdf);
    let mut n = 0;
    for (i, _) in text.match_indices("/Type") {
        let rest = text[i + "/Type".len()..].trim_start();
        if rest.starts_with("/Page") && !rest.starts_with("/Pages") {
            n += 1;
        }
    }
    n
}

#[tokio::test]
async fn a_dozen_cases_print_on_one_page_one_page_wide_and_the_agency_returns_on_another() {
    let (r, _) = a_dozen_cases().await;
    let pdf = std::fs::read(print_to_pdf(&export_xlsx(&r))).unwrap();
    assert!(pdf.starts_with(b"%PDF-"));
    assert_eq!(
        pages(&pdf),
        2,
        "the Cases sheet on one page (twelve rows, all 26 columns across) and the Agency \
         returns on one"
    );
}
