//! Reading a TOML file so that every problem in it is found in one run, each with its line.
//!
//! Owns turning a file's text into a raw configuration while collecting, instead of stopping at
//! the first: every syntax error (the parser recovers and goes on), every unknown key (with the
//! nearest known name when one is close: `idle_refresh_minuts` → `idle_refresh_minutes`) and
//! every value of the wrong type. After each such error the offending key is set aside and the
//! rest is read again, so the keys that are right still reach the semantic checks, whose
//! problems get their line too ([`Lines::locate`]). A required key that is missing ends the
//! reading (nothing can stand in for it); what was found so far is still reported.
//!
//! Must not: decide what a key means (that is the resolver in [`super`]). A wrong-type problem
//! may quote the value written (serde's message); these problems go to the operator's terminal
//! from `check`/start-up, never to the log. Passwords are never in the file (only their files).

use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use toml::Spanned;
use toml::de::{DeTable, DeValue, Deserializer};

/// How many faulty keys are set aside before giving up (a file that is mostly wrong).
const MAX_PROBLEMS: usize = 50;

/// Where each `[table] key` of the file is (1-based lines), for problems found after reading.
#[derive(Debug, Default)]
pub struct Lines {
    keys: BTreeMap<(String, String), usize>,
}

impl Lines {
    /// `problem` with its line in front, when it starts with `[table] key` and that key is in
    /// the file (`line 23: [mailbox] port …`).
    pub fn locate(&self, problem: &str) -> String {
        let line = problem
            .strip_prefix('[')
            .and_then(|rest| rest.split_once("] "))
            .and_then(|(table, rest)| {
                let key = rest.split([' ', ':']).next()?;
                self.keys.get(&(table.to_string(), key.to_string()))
            });
        match line {
            Some(n) => format!("line {n}: {problem}"),
            None => problem.to_string(),
        }
    }
}

/// Read `text` as a `T`: the value when one could be built (with the faulty keys set aside), the
/// problems (each with its line), and where each key is.
pub fn read<T: DeserializeOwned>(text: &str) -> (Option<T>, Vec<String>, Lines) {
    let (mut table, syntax) = DeTable::parse_recoverable(text);
    table.get_mut().make_owned();
    let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
    let mut problems: Vec<String> = syntax
        .iter()
        .map(|e| match e.span() {
            Some(s) => format!("line {}: {}", line_of(s.start), e.message().trim()),
            None => e.message().trim().to_string(),
        })
        .collect();
    // A line with a syntax error holds the parser's guess, not what was written: a type error
    // about that guess would only repeat the syntax error, so it is set aside without a word.
    let broken: Vec<usize> = syntax
        .iter()
        .filter_map(|e| e.span().map(|s| line_of(s.start)))
        .collect();
    let lines = Lines {
        keys: key_lines(table.get_ref(), &line_of),
    };
    for _ in 0..MAX_PROBLEMS {
        let attempt = table.clone();
        match T::deserialize(Deserializer::from(attempt)) {
            Ok(value) => return (Some(value), problems, lines),
            Err(e) => {
                let at = e.span();
                let line = at.as_ref().map(|s| line_of(s.start));
                let removed = at.and_then(|s| set_aside(table.get_mut(), s.start));
                if !(removed.is_some() && line.is_some_and(|l| broken.contains(&l))) {
                    problems.push(format!(
                        "{}{}{}",
                        line.map(|l| format!("line {l}: ")).unwrap_or_default(),
                        removed
                            .as_deref()
                            .map(|k| format!("`{k}`: "))
                            .unwrap_or_default(),
                        explain(e.message())
                    ));
                }
                if removed.is_none() {
                    return (None, problems, lines);
                }
            }
        }
    }
    problems.push(format!(
        "more than {MAX_PROBLEMS} problems: fix these and run `caseclerk check` again"
    ));
    (None, problems, lines)
}

/// The line of each `[table] key` (one level deep, as the resolver's problems name them).
fn key_lines(
    root: &DeTable<'_>,
    line_of: &dyn Fn(usize) -> usize,
) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for (table, value) in root.iter() {
        if let DeValue::Table(t) = value.get_ref() {
            for (key, _) in t.iter() {
                out.insert(
                    (table.get_ref().to_string(), key.get_ref().to_string()),
                    line_of(key.span().start),
                );
            }
        }
    }
    out
}

/// Remove the innermost key whose name, or whose plain value, covers `offset`; its dotted path.
/// Searched depth first: a `[table]`'s own span covers only its header, not its keys.
fn set_aside(table: &mut DeTable<'_>, offset: usize) -> Option<String> {
    let here = table
        .iter()
        .find(|(k, v)| {
            covers(k.span(), offset) || (!nested(v.get_ref()) && covers(v.span(), offset))
        })
        .map(|(k, _)| k.clone());
    if let Some(key) = here {
        let name = key.get_ref().to_string();
        table.remove(&key);
        return Some(name);
    }
    table
        .iter_mut()
        .find_map(|(k, v)| set_aside_in(v, offset).map(|path| format!("{}.{path}", k.get_ref())))
}

fn nested(v: &DeValue<'_>) -> bool {
    matches!(v, DeValue::Table(_) | DeValue::Array(_))
}

/// Within a value: a table's key, or an array item's key (`agency[2].email`).
fn set_aside_in(value: &mut Spanned<DeValue<'_>>, offset: usize) -> Option<String> {
    match value.get_mut() {
        DeValue::Table(t) => set_aside(t, offset),
        DeValue::Array(items) => items
            .iter_mut()
            .enumerate()
            .find_map(|(i, item)| set_aside_in(item, offset).map(|p| format!("[{}].{p}", i + 1))),
        _ => None,
    }
}

fn covers(span: std::ops::Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

/// serde's message made an operator's: an unknown key gets the nearest known one.
fn explain(message: &str) -> String {
    let message = message.trim();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((name, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let known: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    match nearest(name, &known) {
        Some(k) => format!("unknown key `{name}`; did you mean `{k}`?"),
        None if known.is_empty() => format!("unknown key `{name}`"),
        None => format!("unknown key `{name}` (known here: {})", known.join(", ")),
    }
}

/// The known name within a small edit distance of `name` (a typo, not another word).
fn nearest<'a>(name: &str, known: &[&'a str]) -> Option<&'a str> {
    let limit = (name.chars().count() / 4).clamp(1, 3);
    known
        .iter()
        .map(|k| (distance(name, k), *k))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, k)| k)
}

/// Edit distance over characters, a swap of two neighbours counting once (`hots` → `host`).
fn distance(a: &str, b: &str) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        mailbox: Mailbox,
        #[serde(default)]
        agency: Vec<Agency>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Mailbox {
        host: String,
        port: Option<u16>,
        idle_refresh_minutes: Option<u64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Agency {
        id: String,
    }

    #[test]
    fn an_unknown_key_and_a_wrong_type_are_both_reported_with_lines_and_the_rest_is_read() {
        let text = "[mailbox]\nhost = \"imap.test\"\nidle_refresh_minuts = 5\nport = \"993\"\n";
        let (raw, problems, _) = read::<Raw>(text);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert_eq!(
            problems[0],
            "line 3: `mailbox.idle_refresh_minuts`: unknown key `idle_refresh_minuts`; did you mean `idle_refresh_minutes`?"
        );
        assert!(
            problems[1].starts_with("line 4: `mailbox.port`: invalid type"),
            "{problems:?}"
        );
        let raw = raw.expect("the rest is read");
        assert_eq!(raw.mailbox.host, "imap.test");
        assert_eq!(raw.mailbox.port, None, "set aside");
        assert_eq!(raw.mailbox.idle_refresh_minutes, None);
    }

    #[test]
    fn a_syntax_error_does_not_hide_the_problems_after_it() {
        let text = "[mailbox]\nhost = \"imap.test\nport = 993\nidle_refresh_minuts = 5\n";
        let (_, problems, _) = read::<Raw>(text);
        assert!(problems[0].starts_with("line 2: "), "{problems:?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("did you mean `idle_refresh_minutes`")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_key_inside_an_array_of_tables_is_named_by_its_position() {
        let text = "[mailbox]\nhost = \"h\"\n\n[[agency]]\nid = \"a\"\n\n[[agency]]\nid = \"b\"\nemial = \"x\"\n";
        let (raw, problems, _) = read::<Raw>(text);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("line 9: `agency.[2].emial`: unknown key `emial`"),
            "{problems:?}"
        );
        let ids: Vec<String> = raw.unwrap().agency.into_iter().map(|a| a.id).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn a_missing_required_key_ends_the_reading_with_what_was_found() {
        let text = "[mailbox]\nport = 993\nidle_refresh_minuts = 5\n";
        let (raw, problems, _) = read::<Raw>(text);
        assert!(raw.is_none());
        assert!(
            problems.iter().any(|p| p.contains("did you mean")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("missing field `host`")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_later_problem_about_a_key_gets_that_keys_line() {
        let text = "[mailbox]\nhost = \"h\"\n\nport = 0\n";
        let (_, _, lines) = read::<Raw>(text);
        assert_eq!(
            lines.locate("[mailbox] port 0 is not a port"),
            "line 4: [mailbox] port 0 is not a port"
        );
        assert_eq!(
            lines.locate("[mailbox] nothing: else"),
            "[mailbox] nothing: else"
        );
        assert_eq!(lines.locate("no table"), "no table");
    }

    #[test]
    fn only_a_close_name_is_suggested() {
        assert_eq!(
            nearest("idle_refresh_minuts", &["idle_refresh_minutes", "host"]),
            Some("idle_refresh_minutes")
        );
        assert_eq!(nearest("hots", &["host", "port"]), Some("host"));
        assert_eq!(nearest("colour", &["host", "port"]), None);
        assert_eq!(distance("kitten", "sitting"), 3);
    }
}
