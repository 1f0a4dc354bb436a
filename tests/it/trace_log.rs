//! `RUST_LOG=trace` over a whole review through the real mail stack: the screening (as in
//! `skeleton.rs`), the agency round — agencies added by an `Agencies:` line, their request
//! letters with the template attached, a return with an attachment and its receipt, the chaser
//! copied to the named nurse, the escalation, the collation with the return attached, the
//! invitation — the partners' sign-off by reply, the letter to the National Panel on day 15 and
//! the Panel's answer. The log must carry no password, address, name, subject or body text.

use crate::support::{Harness, PASSWORD, REFERRER, SHARED, referral, reply};
use std::process::Output;

const PANEL: [&str; 3] = [
    "la.rep@bury.test",
    "police.rep@police.test",
    "icb.rep@icb.test",
];
/// The agencies the `Agencies:` line names (`config/example.toml`), and their leads.
const PPU: &str = "ppu@police.test";
const HV: &str = "hv@nhs.test";
const POLICE_LEAD: &str = "safeguarding@police.test";
const NAMED_NURSE: &str = "named.nurse@nhs.test";
const PARTNERS: [&str; 3] = [
    "la.lead@bury.test",
    "police.lead@police.test",
    "icb.lead@icb.test",
];
const PANEL_ADDRESS: &str = "panel@education.test";

async fn arrive(h: &Harness, raw: &[u8], at: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    h.stack.append(SHARED, raw, t).await.expect("append");
}

fn traced_tick(h: &Harness, now: &str) -> Output {
    h.caseclerk_logging(&["tick", "--process-existing", "--now", now], "trace")
}

#[tokio::test]
async fn with_rust_log_at_trace_a_whole_review_logs_no_secret_or_content() {
    let h = Harness::start("bury").await;
    let mut outputs = the_screening_by_reply_names_jane_doe_and_the_agencies(&h).await;
    the_agency_round_with_a_return_and_a_chaser(&h, &mut outputs).await;
    the_sign_off_and_the_national_panel_by_reply(&h, &mut outputs).await;
    let logs = every_traced_tick_succeeded(&outputs);
    the_review_ran_to_the_panel_s_answer(&h, &logs);
    the_log_carries_no_secret_address_name_subject_or_body(&logs);
}

/// A referral about Jane Doe, and the panel's votes (the first naming the agencies): the traced
/// ticks so far.
async fn the_screening_by_reply_names_jane_doe_and_the_agencies(h: &Harness) -> Vec<Output> {
    let raw = String::from_utf8(referral(
        "trace-round@hospital.test",
        "Referral about Jane Doe, aged 3",
    ))
    .unwrap()
    .replace(
        "Please consider this referral",
        "Jane Doe was seriously harmed at home; please consider this referral",
    );
    arrive(h, raw.as_bytes(), "2026-08-20T10:00:00+01:00").await;
    let mut outputs = vec![traced_tick(h, "2026-08-20T09:01:00Z")];
    for (i, member) in PANEL.iter().enumerate() {
        let request = h.request_with_code(member).await;
        let body = if i == 0 {
            "MEETS\nJane Doe's injuries are unexplained; neglect suspected.\nAgencies: police, health visiting"
        } else {
            "MEETS"
        };
        let vote = reply(
            member,
            request.message_id.as_deref().unwrap(),
            &format!("RE: {}", request.subject),
            body,
            None,
        );
        arrive(h, &vote, &format!("2026-08-20T10:{}0:00+01:00", 3 + i)).await;
    }
    outputs.push(traced_tick(h, "2026-08-20T12:00:00Z"));
    outputs
}

/// The agency round: the requests go out (Bury: by Mon 24 Aug), the police return its form.
async fn the_agency_round_with_a_return_and_a_chaser(h: &Harness, outputs: &mut Vec<Output>) {
    outputs.push(traced_tick(h, "2026-08-24T09:00:00Z"));
    let request = h.wait_inbox(PPU, 1).await.remove(0);
    assert!(
        request
            .attachments
            .iter()
            .any(|a| a.filename.contains("chronology")),
        "the request carries the template: {:?}",
        request
            .attachments
            .iter()
            .map(|a| &a.filename)
            .collect::<Vec<_>>()
    );
    assert!(h.wait_inbox(HV, 1).await.len() == 1);
    let ret = reply(
        PPU,
        request.message_id.as_deref().unwrap(),
        &format!("RE: {}", request.subject),
        "Please find attached our chronology for Jane Doe; officers attended the home twice.",
        Some((
            "Chronology Jane Doe.docx",
            "UEsDBBQAAAAIAHJldHVybiBjb250ZW50",
        )),
    );
    arrive(h, &ret, "2026-08-25T11:00:00+01:00").await;
    outputs.push(traced_tick(h, "2026-08-25T10:05:00Z"));
    assert_eq!(h.wait_inbox(PPU, 2).await.len(), 2, "the return's receipt");
    // Day 7 (Tue 1 Sep, after the bank holiday): health visiting is chased, copied to its lead;
    // then the escalation and the collation (Fri 4 Sep), the sign-off request (Wed 9 Sep).
    outputs.push(traced_tick(h, "2026-09-01T09:05:00Z"));
    assert!(
        h.wait_inbox(NAMED_NURSE, 1).await.len() == 1,
        "the chaser's copy"
    );
    outputs.push(traced_tick(h, "2026-09-04T11:05:00Z"));
    outputs.push(traced_tick(h, "2026-09-09T08:05:00Z"));
}

/// The partners sign off by reply; day 15, Fri 11 Sep: the National Panel's letter; a fortnight
/// later, its answer.
async fn the_sign_off_and_the_national_panel_by_reply(h: &Harness, outputs: &mut Vec<Output>) {
    for (i, partner) in PARTNERS.iter().enumerate() {
        let request = h.request_with_code(partner).await;
        let vote = reply(
            partner,
            request.message_id.as_deref().unwrap(),
            &format!("RE: {}", request.subject),
            "LCSPR\nJane Doe's case holds clear learning for the partnership.",
            None,
        );
        arrive(h, &vote, &format!("2026-09-10T11:{}0:00+01:00", 1 + i)).await;
    }
    outputs.push(traced_tick(h, "2026-09-10T10:05:00Z"));
    outputs.push(traced_tick(h, "2026-09-11T14:05:00Z"));
    let to_panel = h.wait_inbox(PANEL_ADDRESS, 1).await.remove(0);
    let answer = reply(
        PANEL_ADDRESS,
        to_panel.message_id.as_deref().unwrap(),
        &format!("RE: {}", to_panel.subject),
        "The Panel agrees with the partnership's decision about Jane Doe.",
        None,
    );
    arrive(h, &answer, "2026-09-25T09:00:00+01:00").await;
    outputs.push(traced_tick(h, "2026-09-25T08:05:00Z"));
}

/// Every traced tick's stderr, each tick having succeeded.
fn every_traced_tick_succeeded(outputs: &[Output]) -> String {
    let mut logs = String::new();
    for out in outputs {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        logs.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    logs
}

/// The review really happened (so the log had something to leak), and the log is at DEBUG and
/// below.
fn the_review_ran_to_the_panel_s_answer(h: &Harness, logs: &str) {
    let report = h.ok(&["case", "RR-2026-0001", "--now", "2026-09-25T12:00:00Z"]);
    assert!(report.contains("decision screening: meets"), "{report}");
    assert!(
        report.contains("agency police added") && report.contains("agency health-visiting added"),
        "{report}"
    );
    assert!(report.contains("agency-request"), "{report}");
    assert!(report.contains("return-receipt"), "{report}");
    assert!(
        report.contains("police: returned Tue 25 Aug 2026"),
        "{report}"
    );
    for step in [
        "chase",
        "circulate-papers",
        "invite",
        "signoff-request",
        "panel-submission",
    ] {
        assert!(report.contains(step), "{step}: {report}");
    }
    assert!(report.contains("decision sign_off: lcspr"), "{report}");
    assert!(
        report.contains("decision panel_response: agree"),
        "{report}"
    );
    assert!(
        logs.contains("letter decided") && logs.contains("DEBUG"),
        "{logs}"
    );
}

/// No password (plain or as SMTP AUTH encodes it), protocol line, header, name, address, subject,
/// body text or attachment in the log.
fn the_log_carries_no_secret_address_name_subject_or_body(logs: &str) {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let mut secrets = vec![
        PASSWORD.to_string(),
        engine.encode(format!("\0{SHARED}\0{PASSWORD}")),
        engine.encode(PASSWORD),
        "AUTH".into(),
        "RCPT TO".into(),
        "MAIL FROM".into(),
        "Subject:".into(),
        "Content-Type:".into(),
        "Content-Disposition".into(),
        "Jane".into(),
        "Doe".into(),
        "aged 3".into(),
        "seriously harmed".into(),
        "neglect suspected".into(),
        "officers attended".into(),
        "Chronology".into(),
        "chronology".into(),
        "Test Referrer".into(),
        "Referral form".into(),
        "Public Protection Unit".into(),
        "Health Visiting Team Manager".into(),
        "agency-summary-and-chronology".into(),
        "Agencies:".into(),
        "health visiting".into(),
        "Information request".into(),
        "UEsDBBQ".into(),
        REFERRER.into(),
        SHARED.into(),
        "hospital.test".into(),
        "police.test".into(),
        "nhs.test".into(),
        PPU.into(),
        HV.into(),
        POLICE_LEAD.into(),
        NAMED_NURSE.into(),
    ];
    secrets.extend(PANEL.iter().map(|p| p.to_string()));
    secrets.extend(PARTNERS.iter().map(|p| p.to_string()));
    secrets.extend(
        [
            PANEL_ADDRESS,
            "education.test",
            "clear learning",
            "The Panel agrees",
            "review.group@bury.test",
            "chair@bury.test",
            "manager@bury.test",
        ]
        .map(String::from),
    );
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "`{secret}` leaked into the RUST_LOG=trace log:\n{logs}"
        );
    }
    // The log's hashes are keyed with the installation's secret: hashing the directory's
    // addresses (which the `caseclerk` group can read) does not name a letter's recipient.
    use sha2::Digest as _;
    for address in secrets.iter().filter(|s| s.contains('@')) {
        let plain = hex::encode(&sha2::Sha256::digest(address.as_bytes())[..6]);
        assert!(
            !logs.contains(&plain),
            "the plain hash of {address} is in the log:\n{logs}"
        );
    }
}

/// In a child process of this test binary (below): logging as the binary sets it up, its panic
/// hook, and a panic quoting a child's name caught as the parsers catch theirs.
#[test]
fn a_caught_panic_logs_where_it_happened_and_never_what_it_said() {
    const CHILD: &str = "CASECLERK_PANIC_HOOK_CHILD";
    if std::env::var_os(CHILD).is_some() {
        caseclerk::shell::logging::init(false);
        caseclerk::shell::logging::withhold_panic_messages();
        let caught = std::panic::catch_unwind(|| {
            panic!("byte index 9 is out of bounds of `Jane Planted, born 12/03/2019`")
        });
        assert!(caught.is_err());
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "trace_log::a_caught_panic_logs_where_it_happened_and_never_what_it_said",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .env("RUST_LOG", "caseclerk=info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("a panic (its message is withheld") && stderr.contains("trace_log.rs:"),
        "the panic is logged with where it happened:\n{stderr}"
    );
    assert!(!stderr.contains("Jane Planted"), "{stderr}");
    assert!(!stderr.contains("12/03/2019"), "{stderr}");
}
