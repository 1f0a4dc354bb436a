//! Text as the rules compare it: a reply cut from its quoted history, and words folded so that
//! case, punctuation and spacing do not matter.
//!
//! Owns the one quoted-history cutter ([`own_text`], used by the classifier and the vote reader)
//! and the one comparison folding ([`fold`], [`fold_name`], [`words`], used for vote keywords,
//! classifier vocabularies, process keywords, agency names and areas), so two rules never disagree
//! about where a reply ends or whether two words are the same.
//!
//! Must not: decide what the text means (that is [`crate::core::classify`] and
//! [`crate::core::decisions`]), or change text anyone reads (these forms are for comparing only).

/// The reply's own text: everything before the quoted history. The history starts at the first
/// line (ignoring surrounding spaces and case) that
/// - starts with `>` (a quoted line);
/// - starts with `-----` and says `original message` (Outlook: `-----Original Message-----`,
///   Notes: `----- Original Message -----`);
/// - starts with ten or more underscores (Outlook's rule above the quoted header);
/// - starts with `From:` (a quoted or forwarded header block), even as the very first line;
/// - is an `On … wrote:` attribution, also when a long attribution wraps onto a second line
///   (`On Tue, 3 Mar 2026 at 10:00, Jo Bloggs` / `<jo@x.test> wrote:`): then the cut is before
///   its first line.
///
/// The result is a slice of `body`, ending with the line break before the history.
///
/// Two cutters used to disagree: the vote reader's did not cut at `----- Original Message -----`
/// written with spaces, at a wrapped `On … wrote:` attribution, or at a `From:` header on the
/// first line (a vote forwarded without a word of one's own). This one cuts at all of them, the
/// stricter choice for votes: a decision is never taken on words someone only quoted or
/// forwarded; if the cut takes too much, the reply reads as "not a vote" and a person is asked,
/// which is the safe failure.
pub fn own_text(body: &str) -> &str {
    let mut offset = 0;
    let mut previous_start: Option<(usize, bool)> = None; // (start, line starts with "On ")
    for line in body.split_inclusive('\n') {
        let trimmed = line.trim();
        let lower = trimmed.to_lowercase();
        let cut = trimmed.starts_with('>')
            || (lower.starts_with("-----") && lower.contains("original message"))
            || trimmed.starts_with("__________")
            || lower.starts_with("from:");
        if cut {
            return &body[..offset];
        }
        if lower.ends_with("wrote:") {
            if lower.starts_with("on ") {
                return &body[..offset];
            }
            if let Some((start, true)) = previous_start {
                return &body[..start];
            }
        }
        if !trimmed.is_empty() {
            previous_start = Some((offset, lower.starts_with("on ")));
        }
        offset += line.len();
    }
    body
}

/// Text folded for comparison: lowercase, every run of anything but letters and digits one
/// space, no space at either end. `"Does NOT meet -- see below."` → `"does not meet see below"`.
pub fn fold(s: &str) -> String {
    fold_with(s, false)
}

/// A name folded for comparison: as [`fold`], and also an apostrophe joins rather than splits
/// (`St Mary's` = `St Marys`) and `&` reads as `and` (`Barking & Dagenham` = `Barking and
/// Dagenham`).
pub fn fold_name(s: &str) -> String {
    fold_with(s, true)
}

/// The folded words of `s`, in order (see [`fold`]).
pub fn words(s: &str) -> Vec<String> {
    fold(s)
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

fn fold_with(s: &str, name: bool) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    let mut push = |out: &mut String, c: char| {
        if c.is_alphanumeric() {
            if space && !out.is_empty() {
                out.push(' ');
            }
            space = false;
            out.push(c);
        } else {
            space = true;
        }
    };
    for c in s.chars() {
        if name && (c == '\'' || c == '’') {
            continue;
        }
        if name && c == '&' {
            for c in " and ".chars() {
                push(&mut out, c);
            }
            continue;
        }
        for c in c.to_lowercase() {
            push(&mut out, c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_text_stops_at_quoted_history() {
        assert_eq!(own_text("Nil.\n> quoted\n"), "Nil.\n");
        assert_eq!(
            own_text("Nil.\n\nOn Tue, 3 Mar 2026 at 10:00, Jo <j@x.test> wrote:\n> q"),
            "Nil.\n\n"
        );
        assert_eq!(
            own_text("Nil.\nOn Tue, 3 Mar 2026 at 10:00, Jo Bloggs\n<j@x.test> wrote:\n> q"),
            "Nil.\n"
        );
        assert_eq!(own_text("Nil.\n-----Original Message-----\nx"), "Nil.\n");
        assert_eq!(
            own_text("Nil.\n________________________________\nx"),
            "Nil.\n"
        );
        assert_eq!(own_text("Nil.\nFrom: Someone\nSent: today"), "Nil.\n");
        assert_eq!(own_text("no quote at all"), "no quote at all");
    }

    #[test]
    fn the_reply_s_own_text_stops_at_the_quoted_history() {
        // The vote reader's cases (it used to drop the last line break; the lines are the same).
        let body = "MEETS\nClear serious harm.\n\nOn Tue, 22 Dec 2026, BSP wrote:\n> NFA - does not meet\n";
        assert_eq!(own_text(body), "MEETS\nClear serious harm.\n\n");
        let outlook = "NFA\n-----Original Message-----\nFrom: bsp\nMEETS";
        assert_eq!(own_text(outlook), "NFA\n");
        let crlf = "NFA\r\n\r\nOn Tue, 22 Dec 2026, BSP wrote:\r\n> MEETS\r\n";
        assert_eq!(own_text(crlf), "NFA\r\n\r\n");
    }

    #[test]
    fn quoted_or_forwarded_words_are_cut_where_the_two_old_cutters_disagreed() {
        // Notes writes the separator with spaces.
        assert_eq!(
            own_text("MEETS\n----- Original Message -----\nSent: today\nNFA\n"),
            "MEETS\n"
        );
        // A long attribution wrapped onto two lines.
        assert_eq!(
            own_text("MEETS\nOn Tue, 22 Dec 2026 at 10:00, Jo Bloggs\n<jo@x.test> wrote:\nNFA\n"),
            "MEETS\n"
        );
        // Forwarded with nothing of one's own: nothing is one's own.
        assert_eq!(
            own_text("From: Jo Bloggs <jo@x.test>\nSent: today\n\nNFA\n"),
            ""
        );
    }

    #[test]
    fn folding_ignores_case_punctuation_and_spacing() {
        assert_eq!(
            fold("  Does NOT meet -- see below.  "),
            "does not meet see below"
        );
        assert_eq!(fold("SCSI-1\tform\r\n"), "scsi 1 form");
        assert_eq!(fold("doesn't"), "doesn t");
        assert_eq!(fold("R&D"), "r d");
        assert_eq!(fold("...!"), "");
        assert_eq!(fold("Ärztin ÉCOLE"), "ärztin école");
    }

    #[test]
    fn a_name_folds_apostrophes_away_and_reads_ampersand_as_and() {
        assert_eq!(fold_name("St Mary's Primary"), "st marys primary");
        assert_eq!(fold_name("St Mary’s  primary."), "st marys primary");
        assert_eq!(fold_name("Barking & Dagenham"), "barking and dagenham");
        assert_eq!(fold_name("Barking&Dagenham"), "barking and dagenham");
        assert_eq!(fold_name("&"), "and");
    }

    #[test]
    fn words_are_the_folded_words_in_order() {
        assert_eq!(
            words("Preferral of referrals; SCSI - 1 form"),
            ["preferral", "of", "referrals", "scsi", "1", "form"]
        );
        assert!(words(" -- ").is_empty());
    }
}
