//! SHIM — replaced by the real classify on merge.
#![allow(dead_code, unused_variables)]
use crate::intake;
pub struct Context {
    pub own_addresses: Vec<String>,
    pub own_id_domain: String,
    pub known: Vec<Known>,
    pub case_refs: Vec<String>,
    pub agencies: Vec<AgencyContact>,
}
pub struct Known {
    pub message_id: String,
    pub case_ref: String,
    pub letter: Option<LetterRef>,
}
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LetterRef {
    pub step: String,
    pub recipient: String,
}
pub struct AgencyContact {
    pub id: String,
    pub addresses: Vec<String>,
    pub domains: Vec<String>,
}
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Kind {
    OwnMessage,
    Bounce {
        original_ids: Vec<String>,
        failed_recipients: Vec<String>,
    },
    AutoReply {
        case_ref: Option<String>,
    },
    SecureNotice {
        case_ref: Option<String>,
    },
    Referral,
    CaseReply {
        case_ref: String,
        in_reply_to_letter: Option<LetterRef>,
        agency: Option<String>,
        reply: ReplyKind,
    },
    Unmatched,
}
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum ReplyKind {
    Return,
    NilReturn,
    Other,
}
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    pub kind: Kind,
    pub rule: &'static str,
    pub reasons: Vec<String>,
}
pub fn classify(msg: &intake::Message, ctx: &Context) -> Verdict {
    todo!()
}
pub fn find_case_ref(text: &str) -> Option<String> {
    todo!()
}
