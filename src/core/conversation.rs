//! Outlook conversations: the `Thread-Index` our case letters carry, and the conversation id a
//! reply's `Thread-Index` names.
//!
//! Outlook and Exchange keep a conversation together by `Thread-Index` (base64): a 22-byte header
//! block — a reserved byte, five bytes of time, a 16-byte GUID — to which every reply or forward
//! appends five bytes. A colleague who forwards one of our letters and whose colleague answers the
//! forward keeps the first 22 bytes even when she edits the subject and the In-Reply-To chain
//! no longer names a message we know. Every letter of one case carries the same header block,
//! derived from the case reference and our id domain (no clock, no store), so the conversation of
//! any of our letters is known without storing it; the conversations of mail filed on a case
//! (e.g. a referral written in Outlook) are stored by the engine.
//!
//! Must not: read the clock, the store or the mail; log.

use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The 22-byte header block of every letter of case `reference` sent from `id_domain`.
fn header_block(id_domain: &str, reference: &str) -> [u8; 22] {
    let digest = Sha256::digest(
        format!(
            "caseclerk-conversation:{}:{}",
            id_domain.trim().to_ascii_lowercase(),
            reference.trim().to_ascii_uppercase()
        )
        .as_bytes(),
    );
    let mut block = [0u8; 22];
    // byte 0 is reserved (Outlook writes 0x01); bytes 1..6 are a time we do not use.
    block[0] = 0x01;
    block[1..22].copy_from_slice(&digest[..21]);
    block
}

/// The `Thread-Index` header value of a letter on case `reference`.
pub fn thread_index(id_domain: &str, reference: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(header_block(id_domain, reference))
}

/// The conversation id (as [`crate::core::intake::thread_conversation`] gives it) of every
/// letter on case `reference`.
pub fn case_conversation(id_domain: &str, reference: &str) -> String {
    hex::encode(header_block(id_domain, reference))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::intake::thread_conversation;

    #[test]
    fn a_reply_that_extends_our_thread_index_names_the_case_conversation() {
        let ours = thread_index("caseclerk.bury.test", "RR-2026-0001");
        let mut bytes = base64::engine::general_purpose::STANDARD
            .decode(&ours)
            .unwrap();
        bytes.extend_from_slice(&[9, 8, 7, 6, 5]);
        let reply = base64::engine::general_purpose::STANDARD.encode(bytes);
        assert_eq!(
            thread_conversation(&reply),
            Some(case_conversation("caseclerk.bury.test", "RR-2026-0001"))
        );
        assert_ne!(
            case_conversation("caseclerk.bury.test", "RR-2026-0001"),
            case_conversation("caseclerk.bury.test", "RR-2026-0002")
        );
    }

    #[test]
    fn a_thread_index_that_is_not_base64_or_too_short_names_no_conversation() {
        assert_eq!(thread_conversation("not base64 !!"), None);
        assert_eq!(thread_conversation("AQID"), None);
    }
}
