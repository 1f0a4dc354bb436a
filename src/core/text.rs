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
    let mut history = HistoryCut::default();
    for line in body.split_inclusive('\n') {
        if let Some(cut) = history.line(line) {
            return &body[..cut];
        }
    }
    body
}

/// [`own_text`]'s rules, a line at a time: fed the lines of a text in order (each with its line
/// break), it says where the quoted history starts as soon as a line shows it. Every line seen
/// before that is the reply's own, so a reader can stop at the cut.
///
/// The markers are compared ignoring ASCII case on the line as written, which is the same as
/// comparing the lowercased line: the only characters whose lowercase holds an ASCII letter are
/// `İ` (`i` and a combining dot, which no marker can match) and the Kelvin sign (`k`, in no
/// marker).
#[derive(Default)]
struct HistoryCut {
    /// Bytes of the lines seen so far (all of them the reply's own).
    offset: usize,
    /// Where the last non-blank line started, and whether it starts with `On `.
    previous: Option<(usize, bool)>,
}

impl HistoryCut {
    /// The next line; `Some(cut)` when the history starts at byte `cut` of the text.
    fn line(&mut self, line: &str) -> Option<usize> {
        let trimmed = line.trim();
        let cut = trimmed.starts_with('>')
            || (starts_ignoring_case(trimmed, "-----")
                && contains_ignoring_case(trimmed, "original message"))
            || trimmed.starts_with("__________")
            || starts_ignoring_case(trimmed, "from:");
        if cut {
            return Some(self.offset);
        }
        if ends_ignoring_case(trimmed, "wrote:") {
            if starts_ignoring_case(trimmed, "on ") {
                return Some(self.offset);
            }
            if let Some((start, true)) = self.previous {
                return Some(start);
            }
        }
        if !trimmed.is_empty() {
            self.previous = Some((self.offset, starts_ignoring_case(trimmed, "on ")));
        }
        self.offset += line.len();
        None
    }

    /// Where the last non-blank line seen started: a later line can cut the history no earlier
    /// than there (a wrapped `On … wrote:` attribution), so what comes before it is settled.
    fn settled(&self) -> usize {
        self.previous.map_or(self.offset, |(start, _)| start)
    }
}

/// `s` starts with ASCII `prefix`, ignoring ASCII case.
pub fn starts_ignoring_case(s: &str, prefix: &str) -> bool {
    s.len() >= prefix.len() && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// `s` ends with ASCII `suffix`, ignoring ASCII case.
pub fn ends_ignoring_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// `s` contains ASCII `needle`, ignoring ASCII case.
fn contains_ignoring_case(s: &str, needle: &str) -> bool {
    s.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
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

/// Is this line a banner's first line? `folded` is the line folded ([`fold`]), or only the start
/// of it when `whole` is false — then at least [`banner_prefix_bytes`] bytes of it, which is all a
/// banner's test reads. `extra` are configured banners, folded.
fn is_banner(folded: &str, whole: bool, extra: &[String]) -> bool {
    let is = |b: &str| whole && folded == b;
    let starts = |b: &str| {
        !b.is_empty()
            && (is(b) || (folded.starts_with(b) && folded.as_bytes().get(b.len()) == Some(&b' ')))
    };
    // A bare "external" is a banner only on its own ("[EXTERNAL]"), never "External agencies: …".
    BUILTIN_BANNERS
        .iter()
        .any(|b| if *b == "external" { is(b) } else { starts(b) })
        || extra.iter().any(|b| starts(b))
}

/// How much of a folded line [`is_banner`] needs: one byte more than the longest banner, so that
/// a line folding longer than that is no banner by equality and its start shows any banner
/// followed by a space.
fn banner_prefix_bytes(extra: &[String]) -> usize {
    BUILTIN_BANNERS
        .iter()
        .copied()
        .chain(extra.iter().map(String::as_str))
        .map(str::len)
        .max()
        .unwrap_or(0)
        + 1
}

/// The text a vote or an `Agencies:` line is read from: external-sender banners removed (the
/// built-in [`BUILTIN_BANNERS`] and `extra`, the configured ones; a banner line and the lines of
/// the same banner wrapped after it, anywhere in the reply), then the quoted history cut by
/// [`own_text`]. The one cutter for both readers, so a banner or a quote never stalls one and
/// not the other.
///
/// `extra` may be written as people write them; they are folded here.
pub fn reply_text(body: &str, extra: &[String]) -> String {
    reply_lines(body, extra, None)
}

/// The start of [`reply_text`], for a reader that looks only at the first `chars` characters of
/// the reply and at its first line with a letter or digit: a prefix of `reply_text(body, extra)`
/// that is all of it, or holds at least its first `chars` characters and, whole, every line up
/// to the first with a letter or digit. The body is read only as far as that takes (banners and
/// the quoted history are found as [`reply_text`] finds them), not to its end.
pub fn reply_text_start(body: &str, extra: &[String], chars: usize) -> String {
    reply_lines(body, extra, Some(chars))
}

/// [`reply_text`] and [`reply_text_start`]: the body's lines, banners dropped, until the quoted
/// history starts (nothing after it can be the reply's own) or, with `enough`, until the settled
/// part ([`HistoryCut::settled`]) holds that many characters and a line with a letter or digit.
fn reply_lines(body: &str, extra: &[String], enough: Option<usize>) -> String {
    let extra: Vec<String> = extra.iter().map(|b| fold(b)).collect();
    let prefix = banner_prefix_bytes(&extra);
    let mut kept = String::with_capacity(if enough.is_some() { 0 } else { body.len() });
    let mut history = HistoryCut::default();
    // The settled part of `kept` counted so far: its bytes, characters, and whether a line of it
    // has a letter or digit.
    let (mut counted, mut chars, mut letter) = (0, 0, false);
    let mut in_banner = false;
    for line in body.split_inclusive('\n') {
        let (folded, whole) = fold_until(line, |out| out.len() > prefix);
        if is_banner(&folded, whole, &extra) {
            in_banner = true;
            continue;
        }
        if in_banner && !folded.is_empty() {
            let folded = if whole { folded } else { fold(line) };
            if BANNER_TAILS.iter().any(|t| contains_phrase(&folded, t)) {
                continue;
            }
        }
        in_banner = false;
        if let Some(cut) = history.line(line) {
            kept.truncate(cut);
            return kept;
        }
        kept.push_str(line);
        let Some(enough) = enough else { continue };
        let settled = history.settled();
        let newly = &kept[counted..settled];
        chars += newly.chars().count();
        letter = letter || newly.chars().any(folds_to_a_word);
        counted = settled;
        if chars >= enough && letter {
            kept.truncate(settled);
            return kept;
        }
    }
    kept
}

/// Does folded `text` contain folded `phrase` as whole words?
fn contains_phrase(text: &str, phrase: &str) -> bool {
    find_phrase(text, phrase, |_| true)
}

/// Whether folded `phrase` occurs in folded `text` as whole words at a byte offset `accept`
/// takes. Occurrences may overlap; a phrase that folds to nothing occurs nowhere.
fn find_phrase(text: &str, phrase: &str, mut accept: impl FnMut(usize) -> bool) -> bool {
    if phrase.is_empty() {
        return false;
    }
    let b = text.as_bytes();
    let mut from = 0;
    while let Some(found) = text[from..].find(phrase) {
        let at = from + found;
        let end = at + phrase.len();
        let whole = (at == 0 || b[at - 1] == b' ') && (end == b.len() || b[end] == b' ');
        if whole && accept(at) {
            return true;
        }
        // The next occurrence can only start at a later word.
        match text[at..].find(' ') {
            Some(space) => from = at + space + 1,
            None => return false,
        }
    }
    false
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

/// Which of `names` the `texts` name, as whole words and compared as names ([`fold_name`]),
/// in the order of `names`. Each text is its own run of words: a name never spans two.
pub fn names_in<'a>(texts: &[&str], names: &'a [String]) -> Vec<&'a String> {
    let padded = |s: &str| format!(" {} ", fold_name(s));
    let haystack: String = texts.iter().map(|t| padded(t)).collect();
    names
        .iter()
        .filter(|n| haystack.contains(&padded(n)))
        .collect()
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
    fold_until_with(s, name, |_| false).0
}

/// [`fold`] of `s`, stopped as soon as `stop` says the folded text so far is enough: `(folded,
/// true)` when all of `s` was folded, else `(start, false)` where `start` is where [`fold`]`(s)`
/// starts (the folded text only grows, a space going in only before the next word), at least as
/// far as `stop` asked.
pub fn fold_until(s: &str, stop: impl FnMut(&str) -> bool) -> (String, bool) {
    fold_until_with(s, false, stop)
}

/// Does this character fold into a word (its lowercase has a letter or digit)?
pub fn folds_to_a_word(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric()
    } else {
        c.to_lowercase().any(char::is_alphanumeric)
    }
}

fn fold_until_with(s: &str, name: bool, mut stop: impl FnMut(&str) -> bool) -> (String, bool) {
    let mut out = String::with_capacity(s.len().min(4096));
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
        if c.is_ascii() {
            // ASCII folds as `char::to_lowercase` and `char::is_alphanumeric` would fold it.
            if c.is_ascii_alphanumeric() {
                push(&mut out, c.to_ascii_lowercase());
            } else if name && c == '&' {
                for c in " and ".chars() {
                    push(&mut out, c);
                }
            } else if !(name && c == '\'') {
                push(&mut out, ' ');
            }
        } else if name && c == '’' {
            continue;
        } else {
            for c in c.to_lowercase() {
                push(&mut out, c);
            }
        }
        if stop(&out) {
            return (out, false);
        }
    }
    (out, true)
}

/// Text folded once ([`fold`]) and cut into its words, to look for many phrases in. A phrase is
/// found where its folded words follow each other in the text as whole words: `"SCSI-1"` in
/// `"an SCSI 1 form"`, not `"referral"` in `"referrals"`.
///
/// No `Debug`: it holds the text of a message.
#[derive(Clone, Default)]
pub struct Words {
    folded: String,
    /// Byte offset in `folded` where each word starts.
    starts: Vec<usize>,
}

impl Words {
    /// The words of `s`.
    pub fn new(s: &str) -> Words {
        let folded = fold(s);
        let mut starts = Vec::new();
        if !folded.is_empty() {
            starts.push(0);
            starts.extend(folded.match_indices(' ').map(|(at, _)| at + 1));
        }
        Words { folded, starts }
    }

    /// How many words.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Word `i` (from 0).
    pub fn get(&self, i: usize) -> Option<&str> {
        let start = *self.starts.get(i)?;
        let end = self
            .starts
            .get(i + 1)
            .map_or(self.folded.len(), |next| next - 1);
        Some(&self.folded[start..end])
    }

    /// The words, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    /// Whether `phrase` (as written: it is folded here) occurs as whole words.
    pub fn contains(&self, phrase: &str) -> bool {
        self.contains_where(phrase, |_| true)
    }

    /// Whether `phrase` occurs as whole words starting at a word `accept` takes (given the
    /// index of the occurrence's first word). A phrase that folds to nothing occurs nowhere.
    pub fn contains_where(&self, phrase: &str, mut accept: impl FnMut(usize) -> bool) -> bool {
        find_phrase(&self.folded, &folded_form(phrase), |at| {
            self.starts.binary_search(&at).is_ok_and(&mut accept)
        })
    }
}

/// A fixed list of phrases, looked for in [`Words`] all at once: one pass over the text finds
/// every phrase of the list ([`Words::found`]), where looking for each phrase in turn passed over
/// the text once per phrase (most of classifying a message's time, at a few hundred phrases).
/// The search is built the first time the list is used.
pub struct Vocabulary {
    phrases: &'static [&'static str],
    search: std::sync::OnceLock<Option<PhraseSearch>>,
}

/// A vocabulary's phrases, folded, in one automaton; `owners[p]` are the vocabulary's places of
/// the automaton's pattern `p` (two entries can fold to the same words). A phrase that folds to
/// nothing is left out: it occurs nowhere.
struct PhraseSearch {
    automaton: aho_corasick::AhoCorasick,
    owners: Vec<Vec<usize>>,
}

impl Vocabulary {
    pub const fn new(phrases: &'static [&'static str]) -> Vocabulary {
        Vocabulary {
            phrases,
            search: std::sync::OnceLock::new(),
        }
    }

    /// The automaton, built once; `None` only if it could not be built (then each phrase is
    /// looked for in turn, as [`Words::contains_where`] does).
    fn search(&self) -> Option<&PhraseSearch> {
        self.search
            .get_or_init(|| {
                let mut patterns: Vec<String> = Vec::new();
                let mut owners: Vec<Vec<usize>> = Vec::new();
                for (i, phrase) in self.phrases.iter().enumerate() {
                    let folded = folded_form(phrase);
                    if folded.is_empty() {
                        continue;
                    }
                    match patterns.iter().position(|p| *p == folded) {
                        Some(p) => owners[p].push(i),
                        None => {
                            patterns.push(folded.into_owned());
                            owners.push(vec![i]);
                        }
                    }
                }
                aho_corasick::AhoCorasick::builder()
                    .match_kind(aho_corasick::MatchKind::Standard)
                    .build(&patterns)
                    .ok()
                    .map(|automaton| PhraseSearch { automaton, owners })
            })
            .as_ref()
    }
}

impl Words {
    /// Every phrase of `vocabulary` that occurs as whole words, in the vocabulary's order.
    pub fn found(&self, vocabulary: &Vocabulary) -> Vec<&'static str> {
        self.found_where(vocabulary, |_| true)
    }

    /// Every phrase of `vocabulary` that occurs as whole words starting at a word `accept` takes
    /// (given the index of the occurrence's first word), in the vocabulary's order: exactly the
    /// phrases for which [`Words::contains_where`] is true, found in one pass.
    pub fn found_where(
        &self,
        vocabulary: &Vocabulary,
        mut accept: impl FnMut(usize) -> bool,
    ) -> Vec<&'static str> {
        let phrases = vocabulary.phrases;
        let Some(search) = vocabulary.search() else {
            return phrases
                .iter()
                .copied()
                .filter(|p| self.contains_where(p, &mut accept))
                .collect();
        };
        let b = self.folded.as_bytes();
        let mut found = vec![false; phrases.len()];
        for m in search.automaton.find_overlapping_iter(&self.folded) {
            let owners = &search.owners[m.pattern().as_usize()];
            if owners.iter().all(|i| found[*i]) {
                continue;
            }
            let (at, end) = (m.start(), m.end());
            let whole = (at == 0 || b[at - 1] == b' ') && (end == b.len() || b[end] == b' ');
            if whole && self.starts.binary_search(&at).is_ok_and(&mut accept) {
                for i in owners {
                    found[*i] = true;
                }
            }
        }
        phrases
            .iter()
            .zip(found)
            .filter_map(|(p, f)| f.then_some(*p))
            .collect()
    }
}

/// `phrase` as [`fold`] gives it: itself when it is already folded (lowercase ASCII letters and
/// digits, words one space apart, as every built-in vocabulary entry nearly is), else folded.
fn folded_form(phrase: &str) -> std::borrow::Cow<'_, str> {
    let b = phrase.as_bytes();
    let folded = b.first() != Some(&b' ')
        && b.last() != Some(&b' ')
        && !phrase.contains("  ")
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b' ');
    if folded {
        std::borrow::Cow::Borrowed(phrase)
    } else {
        std::borrow::Cow::Owned(fold(phrase))
    }
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

    /// The start of a reply holds what a reader of its first `n` characters and first line
    /// needs: checked against the whole [`reply_text`] on bodies built from banners, quoted
    /// history, attributions (also wrapped onto a second line right at the bound), blank and
    /// punctuation lines and long lines.
    #[test]
    fn the_start_of_a_reply_is_the_whole_reply_read_only_as_far_as_needed() {
        let pieces = [
            "MEETS",
            "Thank you for your email.",
            "",
            "  ",
            "* * * *",
            "CAUTION: This email originated from outside of the organisation.",
            "Do not click links unless you recognise the sender",
            "[EXTERNAL]",
            "** Message from an external partner",
            "On Tue, 3 Mar 2026 at 10:00, Jo Bloggs",
            "<jo@x.test> wrote:",
            "On Tue, Jo <jo@x.test> wrote:",
            "> quoted",
            "-----Original Message-----",
            "From: Someone",
            "on monday we met",
            "Ärztin İstanbul",
        ];
        let extra = ["** Message from an external partner".to_string()];
        let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        for _ in 0..3000 {
            let mut body = String::new();
            for _ in 0..next(12) {
                let piece = pieces[next(pieces.len())];
                body.push_str(&piece.repeat(1 + next(3) * next(40)));
                body.push_str(["\n", "\r\n"][next(2)]);
            }
            let whole = reply_text(&body, &extra);
            for n in [0, 1, 30, 120] {
                let start = reply_text_start(&body, &extra, n);
                assert!(whole.starts_with(&start), "{body:?} {n}");
                if start != whole {
                    assert!(start.chars().count() >= n, "{body:?} {n}");
                    let first = |t: &str| t.lines().find(|l| !fold(l).is_empty()).map(String::from);
                    assert!(first(&start).is_some(), "{body:?} {n}");
                    assert_eq!(first(&start), first(&whole), "{body:?} {n}");
                }
            }
        }
        // An attribution wrapped onto two lines right where the start has enough characters:
        // the start must stop before its first line, as the whole reply does.
        let own = "word ".repeat(20);
        let body =
            format!("{own}\nOn Tue, 3 Mar 2026 at 10:00, Jo Bloggs\n<jo@x.test> wrote:\n> NFA\n");
        assert_eq!(reply_text(&body, &[]), format!("{own}\n"));
        assert_eq!(reply_text_start(&body, &[], 100), format!("{own}\n"));
        // Past the start, the rest of the body is not read: a later banner or quote changes
        // nothing in it.
        let long = format!("{own}\n{own}\nmore\n");
        let start = reply_text_start(&format!("{long}[EXTERNAL]\n> quoted\n"), &[], 100);
        assert!(long.starts_with(&start) && start.chars().count() >= 100);
    }

    #[test]
    fn a_vocabulary_finds_in_one_pass_what_looking_for_each_phrase_finds() {
        static LIST: &[&str] = &["a b a", "SCSI-1", "scsi 1", "", " - ", "b", "form", "a b a"];
        let v = Vocabulary::new(LIST);
        let w = Words::new("Not a b a b a; SCSI - 1 form.");
        assert_eq!(
            w.found(&v),
            ["a b a", "SCSI-1", "scsi 1", "b", "form", "a b a"]
        );
        // Only the occurrence of "a b a" at word 3 is taken, and "b" at word 2 or 4.
        assert_eq!(
            w.found_where(&v, |i| i == 3 || i == 4),
            ["a b a", "b", "a b a"]
        );
        assert!(Words::new("").found(&v).is_empty());
    }

    proptest::proptest! {
        /// The automaton against the phrase-by-phrase search it replaced, on texts and lists
        /// drawn from a few words (so that phrases overlap, repeat and fold alike).
        #[test]
        fn a_vocabulary_agrees_with_each_phrase_looked_for_in_turn(
            text in proptest::collection::vec(
                proptest::sample::select(vec!["a", "b", "A-b", "ab", " ", "-", "c."]), 0..24),
            phrases in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(vec!["a", "b", "ab", "A", "-", " "]), 0..4),
                0..8),
            taken in 0usize..4,
        ) {
            let text = text.join(" ");
            let list: Vec<&'static str> = phrases
                .into_iter()
                .map(|p| &*Box::leak(p.join(" ").into_boxed_str()))
                .collect();
            let list: &'static [&'static str] = Box::leak(list.into_boxed_slice());
            let w = Words::new(&text);
            let accept = |i: usize| i % 4 != taken;
            let one_by_one: Vec<&str> = list
                .iter()
                .copied()
                .filter(|p| w.contains_where(p, accept))
                .collect();
            proptest::prop_assert_eq!(w.found_where(&Vocabulary::new(list), accept), one_by_one);
        }
    }

    #[test]
    fn a_phrase_is_found_where_its_words_follow_each_other_even_overlapping_another() {
        let w = Words::new("Not a b a b a; SCSI - 1 form.");
        assert_eq!(w.len(), 9);
        assert_eq!(w.get(6), Some("scsi"));
        assert_eq!(w.iter().last(), Some("form"));
        assert!(w.contains("SCSI-1") && w.contains("1 FORM") && !w.contains("scsi1"));
        assert!(!w.contains("b a b a b") && !w.contains("") && !w.contains(" - "));
        // "a b a" at word 1 follows "not"; the one at word 3 overlaps it and is the one taken.
        assert!(w.contains_where("a b a", |i| i == 3));
        assert!(!Words::new("sca b").contains("a b"), "whole words only");
        assert!(Words::new("").is_empty());
    }

    #[test]
    fn folding_can_stop_early_and_says_whether_it_read_everything() {
        assert_eq!(
            fold_until("Does NOT meet -- see below.", |out| out.len() >= 8),
            ("does not".to_string(), false)
        );
        assert_eq!(
            fold_until("MEETS!", |out| out.len() > 10),
            ("meets".to_string(), true)
        );
        assert!(folds_to_a_word('İ') && folds_to_a_word('7') && !folds_to_a_word('-'));
    }
}
