//! The layout is the architecture: these tests read the source tree and fail when the functional
//! core (`src/core/`) reaches into the imperative shell, the dev stack or any I/O, when two modules
//! import each other, when a date for people is written outside `core::calendar`, when `unsafe`
//! code appears outside the allocator's one call, or when a function in `src/` or `tests/` runs
//! past 150 lines. No server.

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

/// The one file allowed `unsafe` code: `malloc_trim`, which nothing safe offers.
const UNSAFE_ALLOWED: &[&str] = &["shell/allocator.rs"];

/// Every line of code (comments aside, unit tests included) under `dir` that is `unsafe` or lets
/// it in, outside [`UNSAFE_ALLOWED`].
fn unsafe_code(dir: &Path) -> Vec<String> {
    // Spelled in pieces so this file's own text is not a finding.
    let kw = ["uns", "afe"].concat();
    let marks = [
        format!("{kw} {{"),
        format!("{kw} fn "),
        format!("{kw} impl "),
        format!("{kw} extern"),
        format!("({kw}_code)"),
    ];
    let mut out = Vec::new();
    for path in sources(dir) {
        let name = relative(dir, &path);
        if UNSAFE_ALLOWED.contains(&name.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("source readable");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            if marks.iter().any(|m| code.contains(m.as_str())) {
                out.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    out
}

#[test]
fn unsafe_code_is_in_the_allocators_one_call_and_nowhere_else() {
    let mut found = unsafe_code(&root().join("src"));
    found.extend(unsafe_code(&root().join("tests")));
    assert!(
        found.is_empty(),
        "unsafe code outside {UNSAFE_ALLOWED:?} (Cargo.toml denies it; only the allocator's \
         malloc_trim may allow it):\n{}",
        found.join("\n")
    );
    let allocator = std::fs::read_to_string(root().join("src/shell/allocator.rs")).unwrap();
    let kw = ["uns", "afe"].concat();
    assert_eq!(
        allocator.matches(&format!("{kw} {{")).count(),
        1,
        "the allocator holds one {kw} block"
    );
}

#[test]
fn the_unsafe_check_catches_an_allowed_block_in_another_file() {
    let scratch = std::env::temp_dir().join(format!("caseclerk-unsafe-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("shell")).unwrap();
    let kw = ["uns", "afe"].concat();
    std::fs::write(
        scratch.join("shell/other.rs"),
        format!(
            "// {kw} {{ in a comment is fine\n#[allow({kw}_code)]\nfn f() {{ {kw} {{ g() }} }}\n"
        ),
    )
    .unwrap();
    std::fs::write(
        scratch.join("shell/allocator.rs"),
        format!("#[allow({kw}_code)]\nfn t() {{ {kw} {{ h() }} }}\n"),
    )
    .unwrap();
    let found = unsafe_code(&scratch);
    std::fs::remove_dir_all(&scratch).unwrap();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("shell/other.rs:2:"), "{found:#?}");
    assert!(found[1].starts_with("shell/other.rs:3:"), "{found:#?}");
}

/// `path` under `dir`, with forward slashes (`shell/report.rs`).
fn relative(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Files allowed to format a day or month name themselves, and why.
const OWN_DATE_FORMATS: &[(&str, &str)] = &[
    (
        "core/calendar.rs",
        "the one place London dates are written for people",
    ),
    (
        "shell/sentfolder.rs",
        "IMAP's APPEND date-time (`26-Nov-2026 09:00:00 +0000`), a protocol format",
    ),
];

/// Where product code outside `core::calendar` converts to a time zone itself (`chrono_tz`) or
/// writes a day or month name with chrono (`%a`, `%A`, `%b`, `%B` in a `.format(`): dates people
/// read come from the calendar's named formats only (`long_date`, `short_day`, …).
fn own_london_dates(src: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for path in sources(src) {
        let file = relative(src, &path);
        if file.starts_with("dev/") || OWN_DATE_FORMATS.iter().any(|(f, _)| *f == file) {
            continue;
        }
        for line in product_code(&path).lines() {
            // The text of each `.format("…")` on the line.
            let names_a_day_or_month = line.split(".format(\"").skip(1).any(|rest| {
                let pattern = rest.split('"').next().unwrap_or("");
                ["%a", "%A", "%b", "%B"].iter().any(|n| pattern.contains(n))
            });
            if line.contains("chrono_tz") || names_a_day_or_month {
                found.push(format!("src/{file}: {}", line.trim()));
            }
        }
    }
    found
}

#[test]
fn london_dates_are_written_and_converted_by_the_calendar_only() {
    let found = own_london_dates(&root().join("src"));
    assert!(
        found.is_empty(),
        "use core::calendar (london_date, long_date, short_day, …) instead:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_date_check_catches_a_day_name_formatted_outside_the_calendar() {
    let scratch = std::env::temp_dir().join(format!("caseclerk-dates-{}", std::process::id()));
    std::fs::create_dir_all(scratch.join("shell")).unwrap();
    std::fs::write(
        scratch.join("shell/report.rs"),
        "//! chrono_tz in a doc is fine.\nfn a(t: T) -> String { t.format(\"%A %-d %B\").to_string() }\nfn b(t: T) -> D { t.with_timezone(&chrono_tz::Europe::London).date_naive() }\nfn c(t: T) { tracing::info!(at = %at, \"fine\"); t.format(\"%Y-%m-%d\"); }\n",
    )
    .unwrap();
    std::fs::write(
        scratch.join("shell/sentfolder.rs"),
        "fn d(t: T) -> String { t.format(\"%d-%b-%Y\").to_string() }\n",
    )
    .unwrap();
    let found = own_london_dates(&scratch);
    std::fs::remove_dir_all(&scratch).unwrap();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].contains("%A %-d %B"), "{found:#?}");
    assert!(found[1].contains("chrono_tz"), "{found:#?}");
}

/// The longest a function may be, in lines from its `fn` line to its closing brace.
const MAX_FUNCTION_LINES: usize = 150;

/// Functions still longer than that: (file from the repository root, function name). None: keep it
/// so.
const LONG_FUNCTIONS_ALLOWED: &[(&str, &str)] = &[];

/// The folders whose functions are held to the limit: the product and its integration tests (a
/// test scenario reads as sentences about behaviour only when it is split into named phases).
const HELD_TO_THE_LIMIT: &[&str] = &["src", "tests"];

/// One function found in a source file.
#[derive(Debug)]
struct Function {
    name: String,
    /// 1-based line of its `fn`.
    line: usize,
    lines: usize,
}

/// The name on a line that starts a function (`fn`, `pub fn`, `pub(crate) async fn`, …).
fn function_name(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    loop {
        let next = ["pub ", "const ", "async ", "unsafe ", "extern \"C\" "]
            .iter()
            .find_map(|q| rest.strip_prefix(q))
            .or_else(|| {
                rest.strip_prefix("pub(")
                    .and_then(|r| r.split_once(") ").map(|(_, r)| r))
            });
        match next {
            Some(r) => rest = r.trim_start(),
            None => break,
        }
    }
    let name = rest.strip_prefix("fn ")?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    (end > 0).then(|| &name[..end])
}

/// Every function with a body in rustfmt'd source: from its `fn` line to the first `}` at the
/// same indentation (or the same line, for a one-line function). Declarations without a body
/// (trait methods ending in `;`) are skipped.
fn functions(source: &str) -> Vec<Function> {
    let lines: Vec<&str> = source.lines().collect();
    let mut found = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(name) = function_name(line) else {
            continue;
        };
        let indent = &line[..line.len() - line.trim_start().len()];
        // Where the signature ends: the first line with `{` (a body) or ending in `;` (none).
        let Some(open) = (i..lines.len())
            .find(|&j| lines[j].contains('{') || lines[j].trim_end().ends_with(';'))
        else {
            continue;
        };
        if !lines[open].contains('{') {
            continue;
        }
        let one_line = lines[open].matches('{').count() == lines[open].matches('}').count();
        let end = if one_line {
            Some(open)
        } else {
            (open + 1..lines.len()).find(|&j| {
                lines[j]
                    .strip_prefix(indent)
                    .is_some_and(|rest| rest.starts_with('}'))
            })
        };
        if let Some(end) = end {
            found.push(Function {
                name: name.to_string(),
                line: i + 1,
                lines: end - i + 1,
            });
        }
    }
    found
}

/// Every function in the folders `under` the repository `root` longer than the limit and not
/// allowed, as `path/from/root.rs:line fn name (N lines)`.
fn long_functions(root: &Path, under: &[&str], allowed: &[(&str, &str)]) -> Vec<String> {
    let mut long = Vec::new();
    for path in under.iter().flat_map(|dir| sources(&root.join(dir))) {
        let file = relative(root, &path);
        let text = std::fs::read_to_string(&path).expect("source readable");
        for f in functions(&text) {
            if f.lines > MAX_FUNCTION_LINES
                && !allowed.iter().any(|(a, n)| *a == file && *n == f.name)
            {
                long.push(format!(
                    "{file}:{} fn {} ({} lines)",
                    f.line, f.name, f.lines
                ));
            }
        }
    }
    long
}

#[test]
fn no_function_is_longer_than_150_lines() {
    let long = long_functions(&root(), HELD_TO_THE_LIMIT, LONG_FUNCTIONS_ALLOWED);
    assert!(
        long.is_empty(),
        "split these into well-named functions (at most {MAX_FUNCTION_LINES} lines each):\n{}",
        long.join("\n")
    );
}

#[test]
fn the_length_check_catches_a_long_function_and_only_that() {
    // A scratch source with one function a line too long, one exactly at the limit, a
    // multi-line signature, a one-liner, a trait declaration and `fn` in a comment and a string.
    let body = |n: usize| "        let _ = 1;\n".repeat(n);
    let source = format!(
        "//! fn in a doc comment {{\n\
         pub(crate) async fn too_long() {{\n{}}}\n\
         fn at_the_limit() {{\n{}}}\n\
         impl X {{\n    pub fn wrapped(\n        a: u8,\n    ) -> u8 {{\n{}    }}\n}}\n\
         fn one_liner() -> u8 {{ 1 }}\n\
         trait T {{\n    fn declared(&self);\n}}\n\
         const S: &str = \"fn not_a_function() {{\";\n",
        body(MAX_FUNCTION_LINES - 1),
        body(MAX_FUNCTION_LINES - 2),
        body(3),
    );
    let found: Vec<(String, usize)> = functions(&source)
        .into_iter()
        .map(|f| (f.name, f.lines))
        .collect();
    assert_eq!(
        found,
        [
            ("too_long".to_string(), MAX_FUNCTION_LINES + 1),
            ("at_the_limit".to_string(), MAX_FUNCTION_LINES),
            ("wrapped".to_string(), 7),
            ("one_liner".to_string(), 1),
        ]
    );

    // The same source as product code, as an integration test, and in a folder not held to the
    // limit: the first two are named by their path from the root, the third is not read.
    let scratch = std::env::temp_dir().join(format!("caseclerk-fnlen-{}", std::process::id()));
    for dir in ["src/shell", "tests/it", "target/debug"] {
        std::fs::create_dir_all(scratch.join(dir)).unwrap();
    }
    std::fs::write(scratch.join("src/shell/long.rs"), &source).unwrap();
    std::fs::write(scratch.join("tests/it/scenario.rs"), &source).unwrap();
    std::fs::write(scratch.join("target/debug/built.rs"), &source).unwrap();
    let caught = long_functions(&scratch, HELD_TO_THE_LIMIT, &[]);
    let allowed = long_functions(
        &scratch,
        HELD_TO_THE_LIMIT,
        &[
            ("src/shell/long.rs", "too_long"),
            ("tests/it/scenario.rs", "too_long"),
        ],
    );
    std::fs::remove_dir_all(&scratch).unwrap();
    assert_eq!(
        caught,
        [
            format!(
                "src/shell/long.rs:2 fn too_long ({} lines)",
                MAX_FUNCTION_LINES + 1
            ),
            format!(
                "tests/it/scenario.rs:2 fn too_long ({} lines)",
                MAX_FUNCTION_LINES + 1
            ),
        ]
    );
    assert!(allowed.is_empty(), "{allowed:#?}");
}

/// The module a source file belongs to: `core::react` for `src/core/react.rs`, and for a file in
/// a module's own folder (`src/core/classify/automated.rs`) that module.
fn module_of(src: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(src).ok()?;
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [layer, module, ..] if module != "mod" => Some(format!("{layer}::{module}")),
        _ => None,
    }
}

/// Which modules each module's product code names (`crate::core::x`, `crate::shell::{a, b}`).
fn imports(src: &Path) -> std::collections::BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for path in sources(src) {
        let Some(from) = module_of(src, &path) else {
            continue;
        };
        let code = product_code(&path);
        let edges = graph.entry(from.clone()).or_default();
        for layer in ["core", "shell", "dev"] {
            let prefix = format!("crate::{layer}::");
            for (i, _) in code.match_indices(&prefix) {
                let rest = &code[i + prefix.len()..];
                let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
                    group[..group.find('}').unwrap_or(0)]
                        .split(',')
                        .map(|n| n.trim().split([' ', ':']).next().unwrap_or(""))
                        .collect()
                } else {
                    vec![
                        rest.split(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .next()
                            .unwrap_or(""),
                    ]
                };
                for n in names.into_iter().filter(|n| !n.is_empty()) {
                    let to = format!("{layer}::{n}");
                    if to != from {
                        edges.insert(to);
                    }
                }
            }
        }
    }
    graph
}

/// A cycle in the graph, if there is one (as the list of modules around it).
fn cycle(
    graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut std::collections::BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            return Some(path[i..].to_vec());
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = std::collections::BTreeSet::new();
    for node in graph.keys() {
        if let Some(c) = visit(node, graph, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn no_two_modules_import_each_other_even_through_others() {
    let graph = imports(&root().join("src"));
    assert!(
        graph.len() > 20,
        "the modules were read: {:?}",
        graph.keys()
    );
    assert!(graph["shell::engine"].contains("core::react"), "{graph:?}");
    if let Some(c) = cycle(&graph) {
        panic!("an import cycle: {} → {}", c.join(" → "), c[0]);
    }
}

#[test]
fn the_cycle_check_finds_a_cycle_of_three() {
    let edges = [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")];
    let mut graph: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
        Default::default();
    for (from, to) in edges {
        graph.entry(from.into()).or_default().insert(to.into());
    }
    assert_eq!(cycle(&graph).map(|c| c.len()), Some(3));
    graph.get_mut("c").unwrap().remove("a");
    assert_eq!(cycle(&graph), None);
}
