//! The area (borough) a referral belongs to, where a partnership covers several (BHR: Barking and
//! Dagenham, Havering, Redbridge).
//!
//! Owns reading the one area a referral names from its subject, body and attachment names.
//!
//! Must not: guess: a referral naming no area, or more than one, has none, and a person decides.

use crate::core::intake;
use crate::core::text;

/// The one area named in a referral, if exactly one is (BHR: cases belong to one). Names are
/// compared as names (see [`text::fold_name`]): ignoring case, punctuation and "&" versus "and",
/// word by word.
pub fn detect_area(msg: &intake::Message, areas: &[String]) -> Option<String> {
    let padded = |s: &str| format!(" {} ", text::fold_name(s));
    let mut haystack = padded(&msg.subject);
    haystack.push_str(&padded(&msg.body_text));
    for a in &msg.attachments {
        haystack.push_str(&padded(&a.filename));
    }
    let found: Vec<&String> = areas
        .iter()
        .filter(|a| haystack.contains(&padded(a)))
        .collect();
    match found.as_slice() {
        [one] => Some((*one).clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(subject: &str, body: &str) -> intake::Message {
        intake::parse(format!("Subject: {subject}\r\nFrom: a@b.test\r\n\r\n{body}\r\n").as_bytes())
    }

    fn bhr() -> Vec<String> {
        vec![
            "Barking and Dagenham".to_string(),
            "Havering".to_string(),
            "Redbridge".to_string(),
        ]
    }

    #[test]
    fn a_referral_naming_one_borough_belongs_to_it_however_it_is_written() {
        let areas = bhr();
        assert_eq!(
            detect_area(
                &msg("Referral", "Child lives in Barking & Dagenham."),
                &areas
            )
            .as_deref(),
            Some("Barking and Dagenham")
        );
        assert_eq!(
            detect_area(&msg("Referral - HAVERING", ""), &areas).as_deref(),
            Some("Havering")
        );
        assert_eq!(
            detect_area(&msg("Referral", "Moved from Havering to Redbridge"), &areas),
            None,
            "two boroughs: a person decides"
        );
        assert_eq!(detect_area(&msg("Referral", "no borough"), &areas), None);
    }

    #[test]
    fn an_area_is_matched_by_whole_words_only() {
        assert_eq!(
            detect_area(&msg("Referral", "Redbridgeshire"), &bhr()),
            None
        );
        assert_eq!(
            detect_area(&msg("Referral", "(redbridge)"), &bhr()).as_deref(),
            Some("Redbridge")
        );
    }
}
