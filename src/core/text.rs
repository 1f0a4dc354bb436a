//! Text as the rules compare it: a reply cut from its quoted history, and words folded so that
//! case, punctuation and spacing do not matter.
//!
//! Owns the one quoted-history cutter ([`own_text`], used by the classifier), the one cutter a
//! vote and an `Agencies:` line are read through ([`reply_text`]: external-sender banners
//! ([`BUILTIN_BANNERS`] plus the configured ones) and quoted history removed), and the one
//! comparison folding ([`fold`], [`fold_name`], [`words`], used for vote keywords,
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

/// External-sender banners as mail systems put them on top of (or under) mail from outside the
/// organisation, folded ([`fold`]) prefixes of a line: Exchange transport rules ("CAUTION: This
/// email originated from outside of the organisation…", "[EXTERNAL]", "EXTERNAL EMAIL"),
/// Outlook's first-contact tip ("You don't often get email from … Learn why this is important"),
/// Mimecast ("This message originated outside your organisation", "This email originated from
/// outside of the organization") and Proofpoint ("CAUTION: External email", "This Message Is From
/// an External Sender"). A partnership adds its own with `[mail] banners`.
pub const BUILTIN_BANNERS: &[&str] = &[
    "caution this email originated from outside",
    "caution this e mail originated from outside",
    "caution this message originated from outside",
    "caution external email",
    "caution external e mail",
    "caution external sender",
    "external email",
    "external e mail",
    "external sender",
    "external",
    "this email originated from outside",
    "this e mail originated from outside",
    "this message originated outside",
    "this message originated from outside",
    "this email originated outside",
    "this message is from an external sender",
    "this message came from outside",
    "you don t often get email from",
    "some people who received this message don t often get email from",
    "warning this email originated from outside",
    "warning external email",
    "notice this email originated from outside",
];

/// Words that continue a banner wrapped onto more lines (folded): such a line right after a
/// banner line is part of the banner.
const BANNER_TAILS: &[&str] = &[
    "do not click",
    "don t click",
    "unless you recognise",
    "unless you recognize",
    "know the content is safe",
    "learn why this is important",
    "report phishing",
    "be cautious",
    "use caution",
    "exercise caution",
    "the organisation",
    "the organization",
    "your organisation",
    "your organization",
    "links or open attachments",
    "this is important",
];

/// Is this line (folded) a banner's first line? `extra` are configured banners, folded.
fn is_banner(folded: &str, extra: &[String]) -> bool {
    let starts = |b: &str| !b.is_empty() && (folded == b || folded.starts_with(&format!("{b} ")));
    // A bare "external" is a banner only on its own ("[EXTERNAL]"), never "External agencies: …".
    BUILTIN_BANNERS.iter().any(|b| {
        if *b == "external" {
            folded == *b
        } else {
            starts(b)
        }
    }) || extra.iter().any(|b| starts(b))
}

/// The text a vote or an `Agencies:` line is read from: external-sender banners removed (the
/// built-in [`BUILTIN_BANNERS`] and `extra`, the configured ones; a banner line and the lines of
/// the same banner wrapped after it, anywhere in the reply), then the quoted history cut by
/// [`own_text`]. The one cutter for both readers, so a banner or a quote never stalls one and
/// not the other.
///
/// `extra` may be written as people write them; they are folded here.
pub fn reply_text(body: &str, extra: &[String]) -> String {
    let extra: Vec<String> = extra.iter().map(|b| fold(b)).collect();
    let mut kept = String::with_capacity(body.len());
    let mut in_banner = false;
    for line in body.split_inclusive('\n') {
        let folded = fold(line);
        if is_banner(&folded, &extra) {
            in_banner = true;
            continue;
        }
        if in_banner
            && !folded.is_empty()
            && BANNER_TAILS.iter().any(|t| contains_phrase(&folded, t))
        {
            continue;
        }
        in_banner = false;
        kept.push_str(line);
    }
    let own = own_text(&kept).len();
    kept.truncate(own);
    kept
}

/// Does folded `text` contain folded `phrase` as whole words?
fn contains_phrase(text: &str, phrase: &str) -> bool {
    format!(" {text} ").contains(&format!(" {phrase} "))
}

/// Tags external-sender rules put in front of a subject (lowercase): `[EXTERNAL] RE: …`.
pub const SUBJECT_BANNERS: &[&str] = &[
    "[external]",
    "[ext]",
    "[external email]",
    "[external sender]",
    "[caution: external]",
    "[caution external]",
    "*external*",
    "**external**",
    "external:",
    "external email:",
    "[external]:",
];

/// A subject without the external-sender tags in front of it (any number, any case), so rules
/// that read the start of a subject (`Automatic reply:`) see it as the sender wrote it. Case
/// references and vote codes are found anywhere in a subject and need no such help.
pub fn without_subject_banners(subject: &str) -> &str {
    let mut rest = subject.trim_start();
    'strip: loop {
        for tag in SUBJECT_BANNERS {
            if rest.len() >= tag.len()
                && rest.is_char_boundary(tag.len())
                && rest[..tag.len()].eq_ignore_ascii_case(tag)
            {
                rest = rest[tag.len()..].trim_start();
                continue 'strip;
            }
        }
        return rest;
    }
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

    #[test]
    fn a_banner_on_top_is_removed_before_the_vote_is_read() {
        let exchange = "CAUTION: This email originated from outside of the organisation. Do not click links or open attachments unless you recognise the sender and know the content is safe.\n\nMEETS\nClear harm.\n";
        assert_eq!(
            reply_text(exchange, &[]).trim_start(),
            "MEETS\nClear harm.\n"
        );
        let wrapped = "CAUTION: This email originated from outside of the organisation.\nDo not click links or open attachments unless you recognise the sender\nand know the content is safe.\nMEETS\n";
        assert_eq!(reply_text(wrapped, &[]), "MEETS\n");
        let tag = "[EXTERNAL]\r\nNFA\r\n\r\nOn Tue, 22 Dec 2026, BSP wrote:\r\n> MEETS\r\n";
        assert_eq!(reply_text(tag, &[]), "NFA\r\n\r\n");
        let tip = "You don't often get email from jo@police.test. Learn why this is important<https://aka.ms/LearnAboutSenderIdentification>\nSINGLE\n";
        assert_eq!(reply_text(tip, &[]), "SINGLE\n");
    }

    #[test]
    fn a_configured_banner_is_removed_and_ordinary_words_are_kept() {
        let body = "** Message from an external partner - think before you click **\nMEETS\n";
        assert_eq!(
            reply_text(body, &["** Message from an external partner".into()]),
            "MEETS\n"
        );
        assert_eq!(reply_text(body, &[]), body);
        let agencies = "External agencies: police\nAgencies: school\n";
        assert_eq!(reply_text(agencies, &[]), agencies);
    }

    #[test]
    fn external_tags_in_front_of_a_subject_are_removed() {
        assert_eq!(
            without_subject_banners("[EXTERNAL] Automatic reply: RR-2026-0001"),
            "Automatic reply: RR-2026-0001"
        );
        assert_eq!(without_subject_banners("EXTERNAL: [Ext] RE: x"), "RE: x");
        assert_eq!(
            without_subject_banners("Externally sourced"),
            "Externally sourced"
        );
        assert_eq!(without_subject_banners("é"), "é");
    }
}
