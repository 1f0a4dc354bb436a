//! Decisions by email reply: vote codes, reading a vote, checking who sent it, and the quorum.
//!
//! Owns the pure rules that make a reply count as a vote — and make a forged one fail:
//! - **Vote codes**: every request letter carries a per-case, per-decision, per-member code in its
//!   subject (`[code K7X2M9QP]`), an HMAC of those three under a key only this installation holds.
//!   A reply counts only if it carries the code for *its* sender, case and decision, so a forged
//!   From without the code fails, and a code replayed from another case or member fails too.
//! - **Reading a vote**: the first line of the reply's own text (quoted history removed) starts with
//!   one outcome's keyword ("MEETS", "NO LCSPR"); a first line naming two outcomes, or another
//!   outcome standing alone on a later line, is ambiguous and never guessed. Some decisions (the
//!   National Panel's prose answers) are read anywhere in the text, longest phrase first. A
//!   negation that turns the keyword round ("Meets threshold: no", "LCSPR not required", "no
//!   reason to disagree": `negation_beside`), or a first line that asks ("Meets threshold?"),
//!   makes the reply ambiguous too.
//! - **Authentication-Results**: when the receiving server's `authserv-id` is configured, the
//!   *topmost* Authentication-Results header must come from it and show DMARC pass for the sender's
//!   domain, or aligned DKIM or SPF pass. Headers further down (which a sender can forge) are never
//!   read.
//! - **The quorum**: all voters agreeing; a majority (with a tie-breaker when there is none); or at
//!   least N agreeing including M statutory partners.
//!
//! Must not: touch the store, send anything, or log. The engine applies the result, one reply at a
//! time, and records the evidence on the case.

use crate::core::directory::{Contact, Directory};
use crate::core::process::{Decision, Quorum};
use crate::core::text;
use std::collections::BTreeMap;

const CODE_ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// Whether a vote from `who` counts on `d` for a case in `area`: one of its voters, or its
/// tie-breaker. Counting passes over anyone else's vote, so a person confirming a held reply by
/// hand is refused for anyone else.
pub fn counts_on(directory: &Directory, d: &Decision, area: Option<&str>, who: &str) -> bool {
    let tie: &[Contact] = match &d.quorum {
        Quorum::Majority {
            tie_breaker: Some(role),
        } => directory.people(role, area),
        _ => &[],
    };
    directory
        .people(&d.voters, area)
        .iter()
        .chain(tie)
        .any(|c| c.email.eq_ignore_ascii_case(who))
}

/// The vote code for one member on one decision of one case (8 characters, 40 bits).
pub fn vote_code(key: &[u8], case_ref: &str, decision: &str, voter: &str) -> String {
    let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let msg = format!(
        "caseclerk vote\0{}\0{}\0{}",
        case_ref,
        decision,
        voter.trim().to_lowercase()
    );
    let tag = ring::hmac::sign(&k, msg.as_bytes());
    let bits = tag.as_ref();
    let mut n: u64 = 0;
    for b in &bits[..5] {
        n = (n << 8) | u64::from(*b);
    }
    (0..8)
        .map(|i| CODE_ALPHABET[((n >> (35 - 5 * i)) & 31) as usize] as char)
        .collect()
}

/// Does `candidate` equal the code for this member, case and decision? (Constant time.)
pub fn code_matches(
    key: &[u8],
    case_ref: &str,
    decision: &str,
    voter: &str,
    candidate: &str,
) -> bool {
    let expected = vote_code(key, case_ref, decision, voter);
    let candidate = candidate.to_ascii_uppercase();
    expected.len() == candidate.len()
        && expected
            .bytes()
            .zip(candidate.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// How the code appears in a subject.
pub fn code_tag(code: &str) -> String {
    format!("[code {code}]")
}

/// Every `[code XXXXXXXX]` in a subject (any case).
pub fn find_codes(subject: &str) -> Vec<String> {
    let lower = subject.to_lowercase();
    let mut out = Vec::new();
    let mut rest = lower.as_str();
    while let Some(i) = rest.find("[code ") {
        let after = &rest[i + 6..];
        if let Some(end) = after.find(']') {
            let code = after[..end].trim().to_ascii_uppercase();
            if code.len() == 8 && code.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
                out.push(code);
            }
            rest = &after[end..];
        } else {
            break;
        }
    }
    out
}

/// The reply's own text (the one cutter, shared with the classifier).
pub use crate::core::text::own_text;

/// What a reply says about a decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reading {
    /// One outcome, clearly.
    Clear(String),
    /// More than one outcome, or a keyword where it should not be: ask again, never guess.
    Ambiguous(String),
    /// No keyword at all: not a vote (a question, a thank-you).
    NotAVote,
}

/// The words that may turn an outcome round: "Meets threshold: no", "LCSPR not required", "no
/// reason to disagree". `t` is what folding leaves of "n't".
const NEGATIONS: &[&str] = &["no", "not", "never", "t"];

/// What a "not" right after a keyword says of it when it turns it round ("LCSPR not required",
/// "national review isn't needed"); "MEETS, not previously known" does not.
const NOT_WANTED: &[&str] = &[
    "required",
    "needed",
    "necessary",
    "met",
    "appropriate",
    "warranted",
    "justified",
];

/// How many words before a keyword, where a reply is read anywhere, are looked at for a negation
/// ("no reason to disagree"), and how many after it ("Meets threshold: no"): words of other
/// keywords are not counted ("NFA - no further action").
const NEGATION_REACH: usize = 3;
const NEGATION_REACH_AFTER: usize = 2;

/// One keyword found in a run of folded words.
struct Found {
    at: usize,
    len: usize,
    outcome: String,
}

/// Keyword phrases found in `words`, longest first, each word taken by one phrase at most so
/// "does not agree" is not also read as "agree"; in the order they stand.
fn found_in(words: &[&str], keywords: &[(String, String)]) -> Vec<Found> {
    let mut sorted: Vec<&(String, String)> = keywords.iter().collect();
    sorted.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let mut taken = vec![false; words.len()];
    let mut found = Vec::new();
    for (kw, outcome) in sorted {
        let phrase: Vec<&str> = kw.split(' ').filter(|w| !w.is_empty()).collect();
        let n = phrase.len();
        if n == 0 || n > words.len() {
            continue;
        }
        for at in 0..=words.len() - n {
            if words[at..at + n] == phrase[..] && !taken[at..at + n].iter().any(|t| *t) {
                taken[at..at + n].iter_mut().for_each(|t| *t = true);
                found.push(Found {
                    at,
                    len: n,
                    outcome: outcome.clone(),
                });
            }
        }
    }
    found.sort_by_key(|f| f.at);
    found
}

/// The outcomes of `found`, each once, in first-occurrence order.
fn outcomes_of(found: &[Found]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in found {
        if !out.contains(&f.outcome) {
            out.push(f.outcome.clone());
        }
    }
    out
}

/// Find keyword phrases in normalised text ([`found_in`]). Returns the outcomes found, in
/// first-occurrence order.
fn outcomes_in(text: &str, keywords: &[(String, String)]) -> Vec<String> {
    let words: Vec<&str> = text.split(' ').filter(|w| !w.is_empty()).collect();
    outcomes_of(&found_in(&words, keywords))
}

/// The first keyword of `all` (found in `words`) that a negation turns round, and the negation.
/// - within [`NEGATION_REACH_AFTER`] words after it, a "no" that ends the sentence ("Meets threshold: no") or a
///   "not"/"n't"/"never" before a [`NOT_WANTED`] word ("LCSPR not required", "a national review
///   is not required") — unless the keyword is itself a negative one ("NO LCSPR - not
///   required"); what else follows is its object ("agrees with your decision not to commission
///   an LCSPR"), never read as turning it round;
/// - and, `before` (a reply read anywhere: the National Panel's prose), a negation within
///   [`NEGATION_REACH`] words before it ("no reason to disagree", "does not disagree").
fn negation_beside(words: &[&str], all: &[Found], before: bool) -> Option<(String, String)> {
    let free = |i: &usize| !all.iter().any(|g| (g.at..g.at + g.len).contains(i));
    let said = |f: &Found, i: usize| Some((f.outcome.clone(), words[i].to_string()));
    all.iter().find_map(|f| {
        if before {
            let mut ahead = (0..f.at).rev().filter(free).take(NEGATION_REACH);
            if let Some(i) = ahead.find(|i| NEGATIONS.contains(&words[*i])) {
                return said(f, i);
            }
        }
        if words[f.at..f.at + f.len]
            .iter()
            .any(|w| NEGATIONS.contains(w))
        {
            return None;
        }
        let mut after = (f.at + f.len..words.len())
            .filter(free)
            .take(NEGATION_REACH_AFTER);
        after.find_map(|i| {
            let last = i + 1 == words.len();
            let next = words.get(i + 1).copied().unwrap_or("");
            match words[i] {
                "no" if last => said(f, i),
                "not" | "t" | "never" if NOT_WANTED.contains(&next) => said(f, i),
                _ => None,
            }
        })
    })
}

/// Why a reply is not read when a negation stands beside an outcome's keyword.
fn turned_round(outcome: &str, negation: &str) -> Reading {
    let said = if negation == "t" { "n't" } else { negation };
    Reading::Ambiguous(format!(
        "the reply says {outcome} with \"{said}\" close beside it, which may turn it round"
    ))
}

/// The sentences of `text`, ended by any of `ends`, each folded ([`text::fold`]); a sentence may
/// run over lines.
fn sentences(text: &str, ends: &[char]) -> Vec<String> {
    let joined = text.lines().collect::<Vec<_>>().join(" ");
    joined
        .split(ends)
        .map(text::fold)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The (normalised keyword, outcome) pairs of a decision.
pub fn keyword_pairs(d: &Decision) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (outcome, words) in &d.keywords {
        for w in words {
            out.push((text::fold(w), outcome.clone()));
        }
    }
    out
}

/// Read a reply's own text as a vote on decision `d`.
pub fn read_vote(own: &str, d: &Decision) -> Reading {
    let keywords = keyword_pairs(d);
    let lines: Vec<String> = own
        .lines()
        .map(text::fold)
        .filter(|l| !l.is_empty())
        .collect();
    if d.read_anywhere {
        let mut all: Vec<String> = Vec::new();
        for sentence in sentences(own, &['.', '!', '?', ';']) {
            let words: Vec<&str> = sentence.split(' ').collect();
            let found = found_in(&words, &keywords);
            if let Some((outcome, negation)) = negation_beside(&words, &found, true) {
                return turned_round(&outcome, &negation);
            }
            for o in outcomes_of(&found) {
                if !all.contains(&o) {
                    all.push(o);
                }
            }
        }
        return match all.as_slice() {
            [] => Reading::NotAVote,
            [one] => Reading::Clear(one.clone()),
            many => Reading::Ambiguous(format!(
                "the reply names more than one outcome ({})",
                many.join(", ")
            )),
        };
    }
    let Some(first) = lines.first() else {
        return Reading::NotAVote;
    };
    let on_first = outcomes_in(first, &keywords);
    // Which outcome does the first line *start* with (longest keyword first)?
    let mut starts: Vec<&(String, String)> = keywords
        .iter()
        .filter(|(k, _)| first == k || first.starts_with(&format!("{k} ")))
        .collect();
    starts.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    let standalone_later: Vec<String> = lines[1..]
        .iter()
        .filter_map(|l| {
            keywords
                .iter()
                .find(|(k, _)| l == k)
                .map(|(_, o)| o.clone())
        })
        .collect();
    match starts.first() {
        Some((_, outcome)) => {
            if on_first.len() > 1 {
                return Reading::Ambiguous(format!(
                    "the first line names more than one outcome ({})",
                    on_first.join(", ")
                ));
            }
            if let Some(other) = standalone_later.iter().find(|o| *o != outcome) {
                return Reading::Ambiguous(format!(
                    "the first line says {outcome} but a later line says {other}"
                ));
            }
            // Within the first line's first sentence: "Meets threshold: no" is not a vote for
            // meets, while "MEETS. Not known to services before." is. A first sentence that asks
            // ("Meets threshold?") answers nothing: its answer may be the next line's "No".
            let first_sentence = own
                .lines()
                .flat_map(|l| l.split(['.', '!']))
                .map(|s| (s, text::fold(s)))
                .find(|(_, folded)| !folded.is_empty());
            let Some((raw, folded)) = first_sentence else {
                return Reading::Clear(outcome.clone());
            };
            if raw.contains('?') {
                return Reading::Ambiguous(format!(
                    "the first line asks about {outcome} rather than answering"
                ));
            }
            let words: Vec<&str> = folded.split(' ').collect();
            let found = found_in(&words, &keywords);
            if let Some((said, negation)) = negation_beside(&words, &found, false) {
                return turned_round(&said, &negation);
            }
            Reading::Clear(outcome.clone())
        }
        None => {
            let anywhere = outcomes_in(&lines.join(" "), &keywords);
            if anywhere.is_empty() {
                Reading::NotAVote
            } else {
                Reading::Ambiguous(format!(
                    "an outcome is mentioned ({}) but the first line does not start with one",
                    anywhere.join(", ")
                ))
            }
        }
    }
}

/// Check the topmost Authentication-Results header (raw values, topmost first) for `sender`.
/// `Ok` carries the evidence; `Err` why it fails.
pub fn check_authentication(
    results: &[String],
    authserv_id: &str,
    sender: &str,
) -> Result<String, String> {
    let domain = sender
        .rsplit_once('@')
        .map(|(_, d)| d.trim().to_lowercase())
        .ok_or_else(|| "the sender has no domain".to_string())?;
    let Some(top) = results.first() else {
        return Err("no Authentication-Results header".into());
    };
    let mut parts = top.split(';');
    let id = parts
        .next()
        .unwrap_or("")
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_lowercase();
    if id != authserv_id.to_lowercase() {
        return Err(format!(
            "the topmost Authentication-Results header is not from {authserv_id} (it names `{id}`)"
        ));
    }
    let aligned = |d: &str| {
        let d = d.trim().trim_start_matches('@').to_lowercase();
        let d = d.rsplit_once('@').map(|(_, x)| x.to_string()).unwrap_or(d);
        d == domain || domain.ends_with(&format!(".{d}")) || d.ends_with(&format!(".{domain}"))
    };
    let mut evidence = Vec::new();
    for method in parts {
        let words: Vec<&str> = method.split_whitespace().collect();
        let Some((name, result)) = words.first().and_then(|w| w.split_once('=')) else {
            continue;
        };
        let prop = |key: &str| {
            words.iter().find_map(|w| {
                w.split_once('=')
                    .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                    .map(|(_, v)| v)
            })
        };
        let pass = result.eq_ignore_ascii_case("pass");
        match name.to_lowercase().as_str() {
            "dmarc" if pass && prop("header.from").is_some_and(aligned) => {
                evidence.push("DMARC pass".to_string())
            }
            "dkim" if pass && prop("header.d").or(prop("header.i")).is_some_and(aligned) => {
                evidence.push("aligned DKIM pass".to_string())
            }
            "spf" if pass && prop("smtp.mailfrom").is_some_and(aligned) => {
                evidence.push("aligned SPF pass".to_string())
            }
            "dmarc" if !pass => return Err(format!("DMARC {result} for {domain}")),
            _ => {}
        }
    }
    if evidence.is_empty() {
        Err(format!(
            "no DMARC, aligned DKIM or aligned SPF pass for {domain} from {authserv_id}"
        ))
    } else {
        Ok(format!("{} ({authserv_id})", evidence.join(", ")))
    }
}

/// A counted vote, for the tally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counted {
    pub outcome: String,
    /// The voter's statutory partner (`la`, `police`, `icb`), if any.
    pub partner: Option<String>,
}

/// Where a decision stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tally {
    /// Not enough votes yet; these voters have not voted.
    Waiting { missing: Vec<String> },
    /// Decided.
    Decided { outcome: String, how: String },
    /// Everyone voted and no rule gives an outcome: the tie-breaker is asked (majority), or a
    /// person must resolve it (all must agree).
    Disagreement {
        how: String,
        tie_breaker: Option<String>,
    },
}

impl Tally {
    /// The same, with `note` added to how it was decided or why the voters disagree.
    pub fn with_note(self, note: &str) -> Tally {
        match self {
            Tally::Decided { outcome, how } => Tally::Decided {
                outcome,
                how: how + note,
            },
            Tally::Disagreement { how, tie_breaker } => Tally::Disagreement {
                how: how + note,
                tie_breaker,
            },
            waiting => waiting,
        }
    }
}

/// The tally of `votes` (by voter address) on decision `d`, whose voters are `voters`.
/// `tie_break` is the tie-breaker's vote, if any.
pub fn tally(
    d: &Decision,
    voters: &[Contact],
    votes: &BTreeMap<String, Counted>,
    tie_break: Option<&str>,
) -> Tally {
    let voted = |c: &Contact| votes.contains_key(&c.email.to_lowercase());
    let missing: Vec<String> = voters
        .iter()
        .filter(|c| !voted(c))
        .map(|c| c.email.to_lowercase())
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in votes.values() {
        *counts.entry(v.outcome.as_str()).or_default() += 1;
    }
    let describe = || {
        votes
            .iter()
            .map(|(who, v)| format!("{who}: {}", v.outcome))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match &d.quorum {
        Quorum::All => {
            if !missing.is_empty() {
                return Tally::Waiting { missing };
            }
            if counts.len() == 1 {
                let outcome = counts
                    .keys()
                    .next()
                    .map(|s| s.to_string())
                    .unwrap_or_default();
                Tally::Decided {
                    how: format!(
                        "all {} voters agreed by reply ({})",
                        votes.len(),
                        describe()
                    ),
                    outcome,
                }
            } else {
                Tally::Disagreement {
                    how: format!("the voters disagree ({})", describe()),
                    tie_breaker: None,
                }
            }
        }
        Quorum::Majority { tie_breaker } => {
            let needed = voters.len() / 2 + 1;
            if let Some((o, n)) = counts.iter().max_by_key(|(_, n)| **n)
                && *n >= needed
            {
                let disagreement = counts.len() > 1;
                return Tally::Decided {
                    outcome: o.to_string(),
                    how: format!(
                        "majority {n} of {} by reply ({}){}",
                        voters.len(),
                        describe(),
                        if disagreement {
                            "; the voters disagreed"
                        } else {
                            ""
                        }
                    ),
                };
            }
            if !missing.is_empty() {
                return Tally::Waiting { missing };
            }
            match (tie_break, tie_breaker) {
                (Some(o), Some(tb)) => Tally::Decided {
                    outcome: o.to_string(),
                    how: format!("no majority ({}); decided by the {tb}", describe()),
                },
                _ => Tally::Disagreement {
                    how: format!("no majority ({})", describe()),
                    tie_breaker: tie_breaker.clone(),
                },
            }
        }
        Quorum::AtLeast {
            min_votes,
            min_partners,
        } => {
            let mut quorate = counts.iter().filter_map(|(o, n)| {
                let partners: std::collections::BTreeSet<&str> = votes
                    .values()
                    .filter(|v| v.outcome == *o)
                    .filter_map(|v| v.partner.as_deref())
                    .collect();
                (*n as u32 >= *min_votes && partners.len() as u32 >= *min_partners).then_some((
                    o,
                    n,
                    partners.len(),
                ))
            });
            match (quorate.next(), quorate.next()) {
                (Some((o, n, partners)), None) => {
                    return Tally::Decided {
                        outcome: o.to_string(),
                        how: format!(
                            "{n} agreeing including {partners} statutory partners, by reply ({})",
                            describe()
                        ),
                    };
                }
                // Counted together (held replies confirmed at once), two outcomes can each have
                // the quorum: neither is the panel's decision, whichever sorts first.
                (Some(_), Some(_)) => {
                    return Tally::Disagreement {
                        how: format!("more than one outcome has the quorum ({})", describe()),
                        tie_breaker: None,
                    };
                }
                _ => {}
            }
            if missing.is_empty() {
                Tally::Disagreement {
                    how: format!(
                        "everyone voted but no outcome has the quorum ({})",
                        describe()
                    ),
                    tie_breaker: None,
                }
            } else {
                Tally::Waiting { missing }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::process::{Anchor, Roll, When};

    fn decision(quorum: Quorum, keywords: &[(&str, &[&str])], anywhere: bool) -> Decision {
        Decision {
            id: "screening".into(),
            name: "Screening".into(),
            voters: "screening_panel".into(),
            quorum,
            outcomes: keywords.iter().map(|(o, _)| o.to_string()).collect(),
            provisional: None,
            due: When {
                anchor: Anchor::Referral,
                months: 0,
                weeks: 0,
                working_days: 1,
                hours: 0,
                at: None,
                roll: Roll::Next,
            },
            keywords: keywords
                .iter()
                .map(|(o, ws)| (o.to_string(), ws.iter().map(|w| w.to_string()).collect()))
                .collect(),
            read_anywhere: anywhere,
        }
    }

    fn screening() -> Decision {
        decision(
            Quorum::All,
            &[
                ("meets", &["meets", "meets threshold"]),
                ("nfa", &["nfa", "no further action"]),
                ("single_agency", &["single", "single agency"]),
                ("query", &["query"]),
            ],
            false,
        )
    }

    fn signoff() -> Decision {
        decision(
            Quorum::All,
            &[
                ("lcspr", &["lcspr"]),
                ("no_lcspr", &["no lcspr"]),
                ("national_review", &["national"]),
            ],
            false,
        )
    }

    #[test]
    fn codes_are_stable_per_member_case_and_decision_and_differ_otherwise() {
        let key = b"0123456789abcdef0123456789abcdef";
        let a = vote_code(key, "RR-2026-0001", "screening", "la.rep@bury.test");
        assert_eq!(a.len(), 8);
        assert_eq!(
            a,
            vote_code(key, "RR-2026-0001", "screening", "LA.Rep@Bury.test ")
        );
        assert_ne!(
            a,
            vote_code(key, "RR-2026-0002", "screening", "la.rep@bury.test"),
            "another case"
        );
        assert_ne!(
            a,
            vote_code(key, "RR-2026-0001", "screening", "police.rep@police.test"),
            "another member"
        );
        assert_ne!(
            a,
            vote_code(key, "RR-2026-0001", "sign_off", "la.rep@bury.test"),
            "another decision"
        );
        assert_ne!(
            a,
            vote_code(
                b"another key another key another!",
                "RR-2026-0001",
                "screening",
                "la.rep@bury.test"
            )
        );
        assert!(code_matches(
            key,
            "RR-2026-0001",
            "screening",
            "la.rep@bury.test",
            &a.to_lowercase()
        ));
        assert!(!code_matches(
            key,
            "RR-2026-0001",
            "screening",
            "la.rep@bury.test",
            "AAAAAAAA"
        ));
    }

    #[test]
    fn codes_are_found_behind_an_external_banner_in_the_subject() {
        let s = "[EXTERNAL] RE: RR-2026-0001 Screening decision needed [code K7M2Q9XP]";
        assert_eq!(find_codes(s), ["K7M2Q9XP"]);
        assert_eq!(
            crate::core::classify::find_case_ref(s).as_deref(),
            Some("RR-2026-0001")
        );
    }

    #[test]
    fn codes_are_found_in_reply_subjects() {
        let s = format!(
            "RE: [RR-2026-0001] Screening decision needed {}",
            code_tag("K7X2M9QP")
        );
        assert_eq!(find_codes(&s), ["K7X2M9QP"]);
        assert_eq!(find_codes("AW: Re: x [Code k7x2m9qp]"), ["K7X2M9QP"]);
        assert!(find_codes("[code 01OI]").is_empty());
    }

    #[test]
    fn a_vote_only_quoted_or_forwarded_is_not_read_as_a_vote() {
        let d = screening();
        let forwarded = "From: Jo Bloggs <jo@x.test>\nSent: today\nSubject: screening\n\nNFA\n";
        assert_eq!(read_vote(own_text(forwarded), &d), Reading::NotAVote);
        let notes = "----- Original Message -----\nSent: today\nMEETS\n";
        assert_eq!(read_vote(own_text(notes), &d), Reading::NotAVote);
        let own_then_quoted = "NFA\n----- Original Message -----\nMEETS\n";
        assert_eq!(
            read_vote(own_text(own_then_quoted), &d),
            Reading::Clear("nfa".into())
        );
    }

    #[test]
    fn a_keyword_on_the_first_line_is_a_clear_vote() {
        let d = screening();
        assert_eq!(
            read_vote("MEETS\nserious harm, neglect", &d),
            Reading::Clear("meets".into())
        );
        assert_eq!(read_vote("  meets.  ", &d), Reading::Clear("meets".into()));
        assert_eq!(
            read_vote("No further action - known to services only", &d),
            Reading::Clear("nfa".into())
        );
        assert_eq!(
            read_vote("SINGLE\nAgencies: school", &d),
            Reading::Clear("single_agency".into())
        );
        let s = signoff();
        assert_eq!(
            read_vote("NO LCSPR\nall learning captured", &s),
            Reading::Clear("no_lcspr".into())
        );
        assert_eq!(read_vote("LCSPR", &s), Reading::Clear("lcspr".into()));
    }

    #[test]
    fn a_reply_naming_two_outcomes_or_contradicting_itself_is_never_guessed() {
        let d = screening();
        assert!(matches!(
            read_vote("MEETS / NFA", &d),
            Reading::Ambiguous(_)
        ));
        assert!(matches!(
            read_vote("MEETS\nsome thoughts\nNFA", &d),
            Reading::Ambiguous(_)
        ));
        assert!(matches!(
            read_vote("I think it meets the threshold", &d),
            Reading::Ambiguous(_)
        ));
        assert_eq!(
            read_vote("Thanks, I will look tomorrow.", &d),
            Reading::NotAVote
        );
        assert_eq!(read_vote("", &d), Reading::NotAVote);
    }

    #[test]
    fn an_answer_turned_round_by_a_no_or_not_beside_it_is_never_read_as_that_answer() {
        let d = screening();
        let s = signoff();
        for (reply, decision) in [
            ("Meets threshold: no", &d),
            ("MEETS? No, I do not think so", &d),
            ("Meets threshold?\nNo - I do not think it does", &d),
            ("LCSPR not required - agree with the group", &s),
            ("LCSPR: no", &s),
            ("National review not required", &s),
            ("LCSPR isn't needed", &s),
        ] {
            assert!(
                matches!(read_vote(reply, decision), Reading::Ambiguous(_)),
                "{reply}: {:?}",
                read_vote(reply, decision)
            );
        }
        // A negation that is part of a keyword, or beyond the first sentence, or further off.
        for (reply, decision, outcome) in [
            ("NFA - no further action", &d, "nfa"),
            ("No further action. Not known to services.", &d, "nfa"),
            ("MEETS. Not known to services before.", &d, "meets"),
            ("MEETS - the child was not known before", &d, "meets"),
            ("NO LCSPR", &s, "no_lcspr"),
            ("NO LCSPR - not required", &s, "no_lcspr"),
            ("NFA - not a serious incident", &d, "nfa"),
            ("NFA, no abuse or neglect suspected", &d, "nfa"),
            ("MEETS, not previously known to CSC", &d, "meets"),
        ] {
            assert_eq!(
                read_vote(reply, decision),
                Reading::Clear(outcome.into()),
                "{reply}"
            );
        }
    }

    #[test]
    fn a_prose_answer_with_a_negation_beside_its_phrase_is_held_not_read_the_other_way() {
        let np = decision(
            Quorum::All,
            &[
                (
                    "agree",
                    &["agrees with", "agree with", "agreed with", "agrees that"],
                ),
                (
                    "disagree",
                    &[
                        "does not agree",
                        "do not agree",
                        "disagrees",
                        "disagree with",
                    ],
                ),
                ("national_review", &["national review"]),
            ],
            true,
        );
        for reply in [
            "The Panel has no reason to disagree with your decision.",
            "The Panel agrees with your decision not to hold a national review.",
            "The Panel agrees; a national\nreview is not required.",
        ] {
            assert!(
                matches!(read_vote(reply, &np), Reading::Ambiguous(_)),
                "{reply}: {:?}",
                read_vote(reply, &np)
            );
        }
        assert_eq!(
            read_vote(
                "The Panel agreed with your decision.\nNo further information is needed.",
                &np
            ),
            Reading::Clear("agree".into()),
            "a negation in another sentence is not beside it"
        );
        for reply in [
            "The Panel agrees with your decision not to commission an LCSPR.",
            "The Panel agrees that no LCSPR is needed.",
        ] {
            assert_eq!(
                read_vote(reply, &np),
                Reading::Clear("agree".into()),
                "{reply}"
            );
        }
    }

    #[test]
    fn prose_answers_are_read_anywhere_longest_phrase_first() {
        let np = decision(
            Quorum::All,
            &[
                ("agree", &["agrees with", "agree with"]),
                ("disagree", &["does not agree", "do not agree", "disagrees"]),
                ("national_review", &["national review"]),
            ],
            true,
        );
        assert_eq!(
            read_vote(
                "Dear colleagues,\nThe Panel agrees with the partnership's decision.",
                &np
            ),
            Reading::Clear("agree".into())
        );
        assert_eq!(
            read_vote(
                "The Panel does not agree with the decision not to hold a review.",
                &np
            ),
            Reading::Clear("disagree".into())
        );
        assert!(matches!(
            read_vote(
                "The Panel agrees with the decision and will hold a national review.",
                &np
            ),
            Reading::Ambiguous(_)
        ));
    }

    #[test]
    fn only_the_topmost_authentication_results_from_our_server_counts() {
        let ours = "mx.bury.test; dmarc=pass (p=reject) header.from=police.test; dkim=pass header.d=police.test".to_string();
        let forged = "mx.bury.test; dmarc=pass header.from=police.test".to_string();
        let failing =
            "mx.bury.test; dmarc=fail header.from=police.test; spf=fail smtp.mailfrom=x@evil.test"
                .to_string();
        assert!(
            check_authentication(
                std::slice::from_ref(&ours),
                "mx.bury.test",
                "rep@police.test"
            )
            .is_ok()
        );
        // A passing header placed below a failing one by the sender is never read.
        assert!(
            check_authentication(
                &[failing.clone(), forged.clone()],
                "mx.bury.test",
                "rep@police.test"
            )
            .is_err()
        );
        // A header from another server on top is not ours.
        let theirs = "mail.evil.test; dmarc=pass header.from=police.test".to_string();
        assert!(
            check_authentication(&[theirs, forged], "mx.bury.test", "rep@police.test").is_err()
        );
        // No header at all fails closed.
        assert!(check_authentication(&[], "mx.bury.test", "rep@police.test").is_err());
        // DKIM for another domain is not aligned.
        let other =
            "mx.bury.test; dkim=pass header.d=evil.test; spf=pass smtp.mailfrom=a@evil.test"
                .to_string();
        assert!(check_authentication(&[other], "mx.bury.test", "rep@police.test").is_err());
        // Aligned SPF alone passes.
        let spf = "mx.bury.test; spf=pass smtp.mailfrom=rep@police.test".to_string();
        assert!(check_authentication(&[spf], "mx.bury.test", "rep@police.test").is_ok());
    }

    fn contact(email: &str, partner: Option<&str>) -> Contact {
        Contact {
            name: email.into(),
            email: email.into(),
            phone: None,
            partner: partner.map(String::from),
        }
    }

    fn votes(list: &[(&str, &str, Option<&str>)]) -> BTreeMap<String, Counted> {
        list.iter()
            .map(|(who, o, p)| {
                (
                    who.to_string(),
                    Counted {
                        outcome: o.to_string(),
                        partner: p.map(String::from),
                    },
                )
            })
            .collect()
    }

    #[test]
    fn all_three_partners_must_agree_when_the_quorum_is_all() {
        let d = screening();
        let panel = [
            contact("la@x", Some("la")),
            contact("police@x", Some("police")),
            contact("icb@x", Some("icb")),
        ];
        let two = votes(&[("la@x", "meets", None), ("police@x", "meets", None)]);
        assert_eq!(
            tally(&d, &panel, &two, None),
            Tally::Waiting {
                missing: vec!["icb@x".into()]
            }
        );
        let three = votes(&[
            ("la@x", "meets", None),
            ("police@x", "meets", None),
            ("icb@x", "meets", None),
        ]);
        assert!(
            matches!(tally(&d, &panel, &three, None), Tally::Decided { outcome, .. } if outcome == "meets")
        );
        let split = votes(&[
            ("la@x", "meets", None),
            ("police@x", "nfa", None),
            ("icb@x", "meets", None),
        ]);
        assert!(matches!(
            tally(&d, &panel, &split, None),
            Tally::Disagreement { .. }
        ));
    }

    #[test]
    fn a_majority_decides_and_a_three_way_split_goes_to_the_tie_breaker() {
        let mut d = screening();
        d.quorum = Quorum::Majority {
            tie_breaker: Some("executive_chair".into()),
        };
        let panel = [
            contact("la@x", None),
            contact("police@x", None),
            contact("icb@x", None),
        ];
        let two = votes(&[
            ("la@x", "meets", None),
            ("police@x", "nfa", None),
            ("icb@x", "meets", None),
        ]);
        match tally(&d, &panel, &two, None) {
            Tally::Decided { outcome, how } => {
                assert_eq!(outcome, "meets");
                assert!(
                    how.contains("majority 2 of 3") && how.contains("disagreed"),
                    "{how}"
                );
            }
            other => panic!("{other:?}"),
        }
        let three_ways = votes(&[
            ("la@x", "meets", None),
            ("police@x", "nfa", None),
            ("icb@x", "single_agency", None),
        ]);
        assert!(matches!(
            tally(&d, &panel, &three_ways, None),
            Tally::Disagreement { tie_breaker: Some(t), .. } if t == "executive_chair"
        ));
        assert!(matches!(
            tally(&d, &panel, &three_ways, Some("nfa")),
            Tally::Decided { outcome, .. } if outcome == "nfa"
        ));
        let one = votes(&[("la@x", "meets", None)]);
        assert!(matches!(
            tally(&d, &panel, &one, None),
            Tally::Waiting { .. }
        ));
    }

    #[test]
    fn three_representatives_including_two_partners_make_a_buckinghamshire_quorum() {
        let mut d = screening();
        d.quorum = Quorum::AtLeast {
            min_votes: 3,
            min_partners: 2,
        };
        let group = [
            contact("la@x", Some("la")),
            contact("police@x", Some("police")),
            contact("school@x", None),
            contact("health@x", None),
        ];
        let one_partner = votes(&[
            ("la@x", "meets", Some("la")),
            ("school@x", "meets", None),
            ("health@x", "meets", None),
        ]);
        assert!(matches!(
            tally(&d, &group, &one_partner, None),
            Tally::Waiting { .. }
        ));
        let two_partners = votes(&[
            ("la@x", "meets", Some("la")),
            ("police@x", "meets", Some("police")),
            ("school@x", "meets", None),
        ]);
        assert!(
            matches!(tally(&d, &group, &two_partners, None), Tally::Decided { outcome, .. } if outcome == "meets")
        );
    }

    #[test]
    fn two_outcomes_each_with_the_quorum_are_a_disagreement_not_the_first_alphabetically() {
        let mut d = screening();
        d.quorum = Quorum::AtLeast {
            min_votes: 3,
            min_partners: 2,
        };
        let group: Vec<Contact> = [
            ("la@x", Some("la")),
            ("police@x", Some("police")),
            ("icb@x", Some("icb")),
            ("health@x", Some("health")),
            ("school@x", None),
            ("other@x", None),
        ]
        .into_iter()
        .map(|(e, p)| contact(e, p))
        .collect();
        let split = votes(&[
            ("la@x", "meets", Some("la")),
            ("police@x", "meets", Some("police")),
            ("school@x", "meets", None),
            ("icb@x", "nfa", Some("icb")),
            ("health@x", "nfa", Some("health")),
            ("other@x", "nfa", None),
        ]);
        assert!(
            matches!(tally(&d, &group, &split, None), Tally::Disagreement { .. }),
            "{:?}",
            tally(&d, &group, &split, None)
        );
    }
}
