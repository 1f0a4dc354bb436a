//! `caseclerk check` on a configuration with several kinds of mistake at once: a syntax error, an
//! unknown key (a typo), a value of the wrong type and a semantic problem are all reported in one
//! run, each with its line, the typo with the name it was meant to be; nothing stops at the first.

use crate::support::{PASSWORD, config_for};
use std::process::Command;

/// The 1-based line of the first line of `text` starting with `start`.
fn line_of(text: &str, start: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(start))
        .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
        + 1
}

/// An empty folder `caseclerk-config-<name>-<pid>` with the mailbox password in it, and a valid
/// configuration for Bury there.
fn fresh(name: &str) -> (std::path::PathBuf, toml::Table) {
    let dir = std::env::temp_dir().join(format!("caseclerk-config-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    crate::support::write_secret(&dir.join("password"), PASSWORD);
    let cfg = config_for("bury", &dir);
    (dir, cfg)
}

/// `caseclerk check` on the configuration at `path`: its exit code and what it said on stderr.
fn check(path: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_caseclerk"))
        .arg("--config")
        .arg(path)
        .arg("check")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_typo_a_wrong_type_a_syntax_error_and_a_bad_value_are_all_reported_with_their_lines() {
    let (dir, mut cfg) = fresh("check");
    cfg["calendar"]
        .as_table_mut()
        .unwrap()
        .insert("cutoff".into(), toml::Value::String("25:00".into()));
    let good = toml::to_string(&cfg).unwrap();
    let text = good
        .replacen("idle_refresh_minutes = 25", "idle_refresh_minuts = 25", 1)
        .replacen("port = 10587", "port = \"10587\"", 1)
        .replacen("late_letters_days = 2", "late_letters_days = 2 2", 1);
    assert_ne!(text, good);
    let path = dir.join("caseclerk.toml");
    std::fs::write(&path, &text).unwrap();

    let (code, said) = check(&path);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, Some(2), "{said}");
    for (line, part) in [
        (
            line_of(&text, "late_letters_days"),
            "string values must be quoted",
        ),
        (
            line_of(&text, "idle_refresh_minuts"),
            "`mailbox.idle_refresh_minuts`: unknown key `idle_refresh_minuts`; did you mean `idle_refresh_minutes`?",
        ),
        (
            line_of(&text, "port = \"10587\""),
            "`smtp.port`: invalid type",
        ),
        (
            line_of(&text, "cutoff = "),
            "[calendar] cutoff `25:00` is not a time",
        ),
    ] {
        let wanted = format!("line {line}: ");
        assert!(
            said.lines()
                .any(|l| l.contains(&wanted) && l.contains(part)),
            "no `{wanted}…{part}` in:\n{said}"
        );
    }
    assert!(said.contains("has 4 problem(s)"), "{said}");
}

#[test]
fn a_timeout_of_nothing_or_of_hours_is_refused_with_the_range_and_what_it_is_for() {
    // 0 failed every letter ("no answer within 0 s") for a day before each was given up; an hour
    // held a pass past the unit's watchdog.
    let (dir, mut cfg) = fresh("range");
    cfg["smtp"]
        .as_table_mut()
        .unwrap()
        .insert("timeout_seconds".into(), 0.into());
    let path = dir.join("caseclerk.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let (code, said) = check(&path);
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("[smtp] timeout_seconds = 0 must be between 1 and 300"),
        "{said}"
    );
    cfg["smtp"]
        .as_table_mut()
        .unwrap()
        .insert("timeout_seconds".into(), 3600.into());
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let (code, said) = check(&path);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("timeout_seconds = 3600"), "{said}");
    let _ = std::fs::remove_dir_all(&dir);
}
