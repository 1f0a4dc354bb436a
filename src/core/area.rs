//! The area (borough) a referral belongs to, where a partnership covers several (BHR: Barking and
//! Dagenham, Havering, Redbridge).
//!
//! Owns deciding the one area a referral belongs to: the borough its form (or body) gives under
//! a label, else the one its subject, body and attachment names name.
//!
//! Must not: guess: a referral naming no area, or more than one, has none, and a person decides.

use crate::core::intake;
use crate::core::particulars::{Field, Particular};
use crate::core::text;

/// The area of a referral, from what was read from it. A labelled borough (BHR's form asks for
/// it: "Borough:") is the referrer's answer and decides alone: the one area it names, or none
/// when it names none or several — never the free text around it, where a signature names the
/// referrer's own borough. Without such a label, the one area the text names ([`detect_area`]).
pub fn of_referral(
    msg: &intake::Message,
    particulars: &[Particular],
    areas: &[String],
) -> Option<String> {
    match particulars.iter().find(|p| p.field == Field::Borough) {
        Some(labelled) => areas.iter().find(|a| **a == labelled.value).cloned(),
        None => detect_area(msg, areas),
    }
}

/// The one area named in a referral, if exactly one is (BHR: cases belong to one). Names are
/// compared as names (see [`text::fold_name`]): ignoring case, punctuation and "&" versus "and",
/// word by word.
pub fn detect_area(msg: &intake::Message, areas: &[String]) -> Option<String> {
    let mut texts = vec![msg.subject.as_str(), msg.body_text.as_str()];
    texts.extend(msg.attachments.iter().map(|a| a.filename.as_str()));
    match text::names_in(&texts, areas).as_slice() {
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
