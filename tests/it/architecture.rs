//! The layout is the architecture: these tests read the source tree and fail when the functional
//! core (`src/core/`) reaches into the imperative shell, the dev stack or any I/O. No server.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `.rs` file under `dir`, sorted.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("source folder readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// A file's code without its unit tests (a `#[cfg(test)]` module, by convention at the end) and
/// without comments, so a doc line that names the shell is not an import of it.
fn product_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("source readable");
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("#[cfg(test)]")
            && lines.peek().is_some_and(|next| {
                next.trim_start().starts_with("mod ")
                    || next.trim_start().starts_with("pub(crate) mod ")
                    || next.trim_start().starts_with("pub mod ")
            })
        {
            break;
        }
        if trimmed.starts_with("//") {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What the functional core must never name: the shell, the dev stack, and any I/O or clock.
const FORBIDDEN_IN_CORE: &[(&str, &str)] = &[
    ("crate::shell", "the core imports the shell"),
    ("crate::dev", "the core imports the dev stack"),
    ("sqlx", "the core touches the database"),
    ("tokio", "the core is async or does I/O"),
    ("std::fs", "the core reads or writes files"),
    ("std::net", "the core opens connections"),
    ("std::process", "the core runs processes"),
    ("std::env", "the core reads the environment"),
    ("lettre::transport", "the core sends mail"),
    ("AsyncSmtpTransport", "the core sends mail"),
    ("SystemTime::now", "the core reads the clock"),
    ("Utc::now", "the core reads the clock"),
    (
        "tracing::",
        "the core logs (logging is the shell's, with ids only)",
    ),
    (
        "register_templates_directory",
        "the core reads the template folder",
    ),
];

/// Where each forbidden name appears in the core's product code.
fn violations(core_dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for path in sources(core_dir) {
        let code = product_code(&path);
        for (needle, why) in FORBIDDEN_IN_CORE {
            for line in code.lines().filter(|l| l.contains(needle)) {
                found.push(format!(
                    "{}: `{needle}` ({why}): {}",
                    path.strip_prefix(root()).unwrap_or(&path).display(),
                    line.trim()
                ));
            }
        }
    }
    found
}

#[test]
fn the_functional_core_imports_nothing_from_the_shell_and_does_no_io() {
    let found = violations(&root().join("src/core"));
    assert!(
        found.is_empty(),
        "the functional core must stay pure:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_purity_check_catches_a_core_file_that_reaches_into_the_shell() {
    // The rule above, broken once on purpose in a scratch copy: it must say so.
    let scratch = std::env::temp_dir().join(format!("caseclerk-arch-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(
        scratch.join("leaky.rs"),
        "//! A module doc naming crate::shell is fine.\nuse crate::shell::store::Store;\nfn f() { let _ = std::fs::read(\"x\"); }\n#[cfg(test)]\nmod tests {\n    use crate::shell::config;\n}\n",
    )
    .unwrap();
    let found = violations(&scratch);
    std::fs::remove_dir_all(&scratch).unwrap();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains("crate::shell"), "{found:#?}");
    assert!(found[1].contains("std::fs"), "{found:#?}");
}
