//! Agency names as people write them → agencies in the directory.
//!
//! Owns reading an `Agencies:` line ("Agencies: police, health visiting, St Mary's primary") and
//! matching each name against the directory's ids, names and aliases, ignoring case, punctuation,
//! "&" versus "and" and a leading "the". A name that matches nothing, or more than one agency, is returned as
//! unmatched so it can be reported back to its sender — never dropped, never guessed.
//!
//! Must not: touch the store, or decide anything about a case.

use crate::core::directory::Agency;
use crate::core::text;

/// What a list of names resolved to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matched {
    /// Directory ids, in the order written, without repeats.
    pub ids: Vec<String>,
    /// Names that matched no agency, or several.
    pub unmatched: Vec<String>,
}

/// A name folded for comparison, without a leading "the" (see [`text::fold_name`]).
fn normalise(s: &str) -> String {
    let folded = text::fold_name(s);
    match folded.strip_prefix("the ") {
        Some(rest) => rest.to_string(),
        None => folded,
    }
}

/// The text after `Agencies:` on the first line that starts with it (any case), if any.
pub fn agencies_line(body: &str) -> Option<&str> {
    body.lines().find_map(|l| {
        let t = l.trim_start_matches(['>', ' ', '\t', '*', '-']);
        let (head, rest) = t.split_once(':')?;
        matches!(
            head.trim().to_lowercase().as_str(),
            "agencies" | "agency" | "agencies involved"
        )
        .then_some(rest.trim())
    })
}

/// Split a written list: commas, semicolons, slashes, line breaks and a final "and".
pub fn split_names(list: &str) -> Vec<String> {
    list.split([',', ';', '/', '\n'])
        .flat_map(|part| {
            let p = part.trim();
            match p.to_lowercase().strip_prefix("and ") {
                Some(_) => vec![p[4..].trim().to_string()],
                None => p
                    .split(" and ")
                    .map(|s| s.trim().to_string())
                    .collect::<Vec<_>>(),
            }
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Match written names against the directory.
pub fn resolve(names: &[String], directory: &[Agency]) -> Matched {
    let mut out = Matched::default();
    for name in names {
        let n = normalise(name);
        if n.is_empty() {
            continue;
        }
        let hits: Vec<&Agency> = directory
            .iter()
            .filter(|a| {
                normalise(&a.id) == n
                    || normalise(&a.id.replace('-', " ")) == n
                    || normalise(&a.name) == n
                    || a.aliases.iter().any(|al| normalise(al) == n)
            })
            .collect();
        match hits.as_slice() {
            [one] => {
                if !out.ids.contains(&one.id) {
                    out.ids.push(one.id.clone());
                }
            }
            _ => out.unmatched.push(name.trim().to_string()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::directory::Contact;

    fn agency(id: &str, name: &str, aliases: &[&str]) -> Agency {
        Agency {
            id: id.into(),
            name: name.into(),
            aliases: aliases.iter().map(|s| s.to_string()).collect(),
            contact: Contact {
                name: "c".into(),
                email: format!("{id}@x.test"),
                phone: None,
                partner: None,
            },
            lead: None,
            deputy: None,
            domains: vec![],
        }
    }

    fn directory() -> Vec<Agency> {
        vec![
            agency("police", "Greater Manchester Police", &["GMP"]),
            agency(
                "health-visiting",
                "Health Visiting Service",
                &["health visiting", "health visitors"],
            ),
            agency(
                "st-marys-primary",
                "St Mary's Primary School",
                &["St Mary's primary"],
            ),
            agency("gp", "GP Practice", &[]),
        ]
    }

    #[test]
    fn an_agencies_line_is_found_and_split_into_names() {
        let body = "MEETS\nClear serious harm.\nAgencies: police, health visiting and St Mary's primary\nThanks";
        let line = agencies_line(body).unwrap();
        assert_eq!(
            split_names(line),
            ["police", "health visiting", "St Mary's primary"]
        );
        assert_eq!(agencies_line("> agencies: GMP; GP"), Some("GMP; GP"));
        assert_eq!(agencies_line("No list here"), None);
    }

    #[test]
    fn names_match_ids_names_and_aliases_whatever_their_case_and_punctuation() {
        let names = split_names("GMP, Health Visitors, st marys primary, the gp, Police");
        let m = resolve(&names, &directory());
        assert_eq!(
            m.ids,
            ["police", "health-visiting", "st-marys-primary", "gp"]
        );
        assert!(m.unmatched.is_empty(), "{:?}", m.unmatched);
    }

    #[test]
    fn a_name_that_matches_nothing_is_reported_not_dropped() {
        let m = resolve(&split_names("police, Little Acorns Nursery"), &directory());
        assert_eq!(m.ids, ["police"]);
        assert_eq!(m.unmatched, ["Little Acorns Nursery"]);
    }

    #[test]
    fn a_name_that_matches_two_agencies_is_not_guessed() {
        let mut dir = directory();
        dir.push(agency("gp-2", "Second GP", &["gp"]));
        let m = resolve(&split_names("GP"), &dir);
        assert!(m.ids.is_empty());
        assert_eq!(m.unmatched, ["GP"]);
    }

    #[test]
    fn an_ampersand_in_a_name_reads_as_and() {
        let directory = vec![agency(
            "cafcass",
            "Children and Family Court Advisory",
            &["children and families"],
        )];
        let m = resolve(&["Children & Families".to_string()], &directory);
        assert_eq!(m.ids, ["cafcass"]);
    }
}
