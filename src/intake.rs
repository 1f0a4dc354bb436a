//! SHIM — replaced by the real intake on merge.
#![allow(dead_code, unused_variables)]
#[derive(Clone, PartialEq, Eq, serde::Serialize, Debug)]
pub struct Address {
    pub name: Option<String>,
    pub email: String,
}
#[derive(Clone, serde::Serialize, Debug)]
pub struct Attachment {
    pub filename: String,
    pub content_type: String,
    pub size: usize,
    pub sha256: String,
    #[serde(skip)]
    pub data: Vec<u8>,
}
#[derive(Clone, serde::Serialize, Debug)]
pub struct Dsn {
    pub original_message_ids: Vec<String>,
    pub failed_recipients: Vec<String>,
    pub status: Option<String>,
    pub action: Option<String>,
}
#[derive(Clone, serde::Serialize, Debug)]
pub struct Message {
    pub parsed: bool,
    pub message_id: Option<String>,
    pub in_reply_to: Vec<String>,
    pub references: Vec<String>,
    pub from: Option<Address>,
    pub sender: Option<Address>,
    pub reply_to: Vec<Address>,
    pub to: Vec<Address>,
    pub cc: Vec<Address>,
    pub return_path: Option<String>,
    pub subject: String,
    pub date: Option<chrono::DateTime<chrono::Utc>>,
    pub auto_submitted: Option<String>,
    pub precedence: Option<String>,
    pub x_auto_response_suppress: Option<String>,
    pub autoreply_header: bool,
    pub content_type: String,
    pub report_type: Option<String>,
    pub body_text: String,
    pub attachments: Vec<Attachment>,
    pub authentication_results: Vec<String>,
    pub dsn: Option<Dsn>,
    pub raw_sha256: String,
}
impl Message {
    pub fn dedupe_key(&self) -> String {
        todo!()
    }
}
pub fn parse(raw: &[u8]) -> Message {
    todo!()
}
