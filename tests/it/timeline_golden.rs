//! `caseclerk timeline` output for each partnership's process, pinned for a referral received just
//! before Christmas 2026. Regenerate with `UPDATE_GOLDEN=1 cargo test --test it timeline` after a
//! deliberate change, and read the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Run `caseclerk timeline` for a process and compare its output with the golden file.
pub fn check_timeline(process: &str, received: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .args([
            "--config",
            "config/example.toml",
            "timeline",
            "--process",
            process,
            "--received",
            received,
        ])
        .current_dir(root())
        .output()
        .expect("caseclerk runs");
    assert!(
        out.status.success(),
        "timeline for {process} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 output");
    let golden = root()
        .join("tests/golden")
        .join(format!("timeline-{process}.txt"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &text).expect("write golden file");
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            display(&golden)
        )
    });
    assert_eq!(
        text,
        expected,
        "timeline for {process} differs from {}",
        display(&golden)
    );
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn bury_schedule_for_a_referral_received_the_tuesday_before_christmas_2026() {
    check_timeline("bury", "2026-12-22T10:15:00Z");
}

#[test]
fn bhr_schedule_for_a_referral_received_the_tuesday_before_christmas_2026() {
    check_timeline("bhr", "2026-12-22T10:15:00Z");
}

#[test]
fn nelincs_schedule_for_a_referral_received_the_tuesday_before_christmas_2026() {
    check_timeline("nelincs", "2026-12-22T10:15:00Z");
}

#[test]
fn bucks_schedule_for_a_referral_received_the_tuesday_before_christmas_2026() {
    check_timeline("bucks", "2026-12-22T10:15:00Z");
}

#[test]
fn tameside_schedule_for_a_referral_received_the_tuesday_before_christmas_2026() {
    check_timeline("tameside", "2026-12-22T10:15:00Z");
}
