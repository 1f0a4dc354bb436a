//! `caseclerk export-case`, for a subject access request: a reviewed case exports its referral and
//! its returns as received (attachments extracted), every letter as sent, its history with the
//! chain hashes and a README whose manifest matches every file; nothing of another case is in
//! it; the folder is its maker's only and an existing one is never overwritten.

use crate::full_reviews::POLICE;
use crate::review::Reply;
use crate::support::{cli as caseclerk, said};
use sha2::{Digest, Sha256};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A Word document's first bytes ("PK…return content"), base64.
const DOCX_B64: &str = "UEsDBBQAAAAIAHJldHVybiBjb250ZW50";

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(
                files(&p)
                    .into_iter()
                    .map(|f| Path::new(p.file_name().unwrap()).join(f)),
            );
        } else {
            out.push(PathBuf::from(p.file_name().unwrap()));
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn a_reviewed_case_exports_its_referral_returns_letters_and_history_and_nothing_else() {
    let (mut review, reference) = crate::history::a_review().await;
    let request = review.last_to(POLICE, "agency-request");
    let ret = Reply::to(&request, POLICE, "Please find our return attached.")
        .attach("police return.docx", DOCX_B64)
        .raw();
    review.receive(&ret, "2026-08-25 11:00").await;
    let other = review
        .referral_from(
            "Dr Other <other@hospital.test>",
            "Referral about Zebedee Quince",
            "2026-08-26 10:00",
        )
        .await;
    assert_ne!(other, reference);

    // A particular the business unit gave by hand (the referral's form had none to read).
    caseclerk::shell::operator::check_particulars(
        &review.engine.store,
        &reference,
        &caseclerk::shell::operator::ParticularChecks {
            confirm: Vec::new(),
            set: vec![("child_name".into(), "Ada Lovelock".into())],
        },
        "from the referrer by phone",
        "operator:jo",
        review.now(),
    )
    .await
    .unwrap();

    let config = review.engine.cfg.file.clone();
    let out_dir = config.parent().unwrap().join("sar");
    let out = caseclerk(
        &config,
        &["export-case", &reference, out_dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", said(&out));
    assert!(said(&out).contains("see README.txt"), "{}", said(&out));

    let store = &review.engine.store;
    let case = store.case_by_ref(&reference).await.unwrap().unwrap();
    let letters = store.letters(Some(case.id)).await.unwrap();
    let events = store.events(case.id).await.unwrap();
    let listed = files(&out_dir);
    let names: Vec<String> = listed.iter().map(|p| p.display().to_string()).collect();

    // The referral and the return, as received, with their attachments decoded.
    let referral = std::fs::read(out_dir.join("messages/message-1.eml")).unwrap();
    assert_eq!(
        referral,
        store.message_raw(1).await.unwrap().unwrap(),
        "the referral exactly as received"
    );
    assert!(names.contains(&"messages/message-1-attachments/1-Referral_form.docx".into()));
    let returned = names
        .iter()
        .find(|n| n.ends_with("-police_return.docx"))
        .unwrap_or_else(|| panic!("the police return's attachment: {names:#?}"));
    assert!(
        std::fs::read(out_dir.join(returned))
            .unwrap()
            .starts_with(b"PK")
    );
    // Every letter of the case, exactly as sent.
    for l in &letters {
        let file = out_dir.join(format!("letters/letter-{}-{}.eml", l.id, l.step));
        assert_eq!(std::fs::read(&file).unwrap(), l.raw, "{}", file.display());
    }
    assert!(
        letters.len() >= 5,
        "acknowledge, screening, agency request…"
    );
    // The history, with hashes.
    let history: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("history.json")).unwrap()).unwrap();
    assert_eq!(history.as_array().unwrap().len(), events.len());
    assert_eq!(history[0]["hash"].as_str().unwrap().len(), 64);
    assert!(
        std::fs::read_to_string(out_dir.join("case.txt"))
            .unwrap()
            .contains(&reference)
    );

    // The particulars, with who gave them.
    let particulars: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.join("particulars.json")).unwrap()).unwrap();
    let name = particulars
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["field"] == "child_name")
        .expect("the child's name");
    assert_eq!(name["value"], "Ada Lovelock");
    assert_eq!(name["decided_by"], "operator:jo");

    // The manifest names every other file with its SHA-256.
    let readme = std::fs::read_to_string(out_dir.join("README.txt")).unwrap();
    for name in names.iter().filter(|n| *n != "README.txt") {
        let sha = hex::encode(Sha256::digest(std::fs::read(out_dir.join(name)).unwrap()));
        assert!(
            readme
                .lines()
                .any(|l| l.starts_with(&sha) && l.ends_with(name.as_str())),
            "{name} is in the manifest:\n{readme}"
        );
    }

    // Nothing of the other case: not its reference, not its referral.
    for name in &names {
        let bytes = std::fs::read(out_dir.join(name)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(&other) && !text.contains("Zebedee"),
            "{name} holds something of {other}"
        );
    }

    // Owner-only, and never overwritten.
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out_dir), 0o700);
    assert!(listed.iter().all(|f| mode(&out_dir.join(f)) == 0o600));
    let again = caseclerk(
        &config,
        &["export-case", &reference, out_dir.to_str().unwrap()],
    );
    assert_eq!(again.status.code(), Some(2), "{}", said(&again));
    assert!(
        said(&again).contains("never overwrites"),
        "{}",
        said(&again)
    );
    let none = caseclerk(
        &config,
        &[
            "export-case",
            "RR-2026-0099",
            out_dir.with_file_name("none").to_str().unwrap(),
        ],
    );
    assert_eq!(none.status.code(), Some(2), "{}", said(&none));
    assert!(!out_dir.with_file_name("none").exists());
}
