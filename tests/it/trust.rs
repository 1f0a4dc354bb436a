//! Who may open a case, which files travel, and replies that find their case without threading:
//! server-free reviews of the bury process (issue 10, items 2 and 6).

use crate::review::{Review, london};
use crate::support::{self, REFERRER, SHARED};
use base64::Engine as _;

const MX: &str = "mx.northdale-scp.test";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/mail")
            .join(name),
    )
    .expect("fixture readable")
}

/// The receiving server is trusted; SpamAssassin's flag and Exchange's SCL mark spam; referrals
/// come from the hospital, NHSmail and the police.
fn guarded(cfg: &mut toml::Table) {
    let mut d = toml::Table::new();
    d.insert("authserv_id".into(), MX.into());
    cfg.insert("decisions".into(), toml::Value::Table(d));
    let senders: toml::Table = toml::from_str(
        r#"
        trusted_domains = ["hospital.test", "*.nhs.test", "*.police.test"]
        spam_flag = { header = "X-Spam-Flag", value = "YES" }
        spam_score = [
            { header = "X-Spam-Score", above = 5.0 },
            { header = "X-MS-Exchange-Organization-SCL", at_least = 5 },
        ]
        "#,
    )
    .expect("valid TOML");
    cfg.insert("senders".into(), toml::Value::Table(senders));
}

async fn triage(review: &Review) -> Vec<caseclerk::shell::store::TriageRow> {
    review.engine.store.triage().await.unwrap()
}

#[tokio::test]
async fn a_phishing_referral_opens_no_case_sends_nothing_and_waits_for_a_person_with_the_reason() {
    let mut review = Review::with("bury", guarded).await;
    let report = review
        .receive(
            &fixture("60-phishing-shared-document.eml"),
            "2026-03-10 07:13",
        )
        .await;
    assert!(
        report.opened.is_empty(),
        "the lure opened {:?}",
        report.opened
    );
    review.at("2026-03-17 10:00").await;
    assert!(
        review.letters().is_empty(),
        "nothing is sent, not even to the phisher's Reply-To:\n{}",
        review.timeline().join("\n")
    );
    let listed = triage(&review).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].rule.as_deref(), Some("referral_trust"));
    assert!(
        listed[0].reasons.iter().any(|r| r.contains("spam")),
        "{:?}",
        listed[0].reasons
    );
    assert!(
        listed[0]
            .reasons
            .iter()
            .any(|r| r == "flag: 1 attached file withheld as unsafe: 1 web page (HTML)"),
        "the lure's HTML page is flagged in triage: {:?}",
        listed[0].reasons
    );
}

#[tokio::test]
async fn a_referral_failing_dmarc_or_from_an_untrusted_unverified_sender_is_listed_for_a_person() {
    let mut review = Review::with("bury", guarded).await;
    let spoof = review
        .receive(
            &fixture("61-referral-dmarc-fail-spoofed-police.eml"),
            "2026-03-10 09:03",
        )
        .await;
    assert!(spoof.opened.is_empty());
    let unknown = String::from_utf8(support::referral("u1@childminder.test", "Referral"))
        .unwrap()
        .replace(REFERRER, "office@childminder.test");
    let untrusted = review.receive(unknown.as_bytes(), "2026-03-10 10:00").await;
    assert!(untrusted.opened.is_empty());
    review.at("2026-03-11 10:00").await;
    assert!(review.letters().is_empty(), "{:?}", review.timeline());
    let listed = triage(&review).await;
    assert_eq!(listed.len(), 2);
    assert!(listed[0].reasons.iter().any(|r| r.contains("DMARC")));
    assert!(
        listed[1]
            .reasons
            .iter()
            .any(|r| r.contains("not in trusted_domains"))
    );
    // The trusted hospital still opens a case with no verdict at all.
    let opened = review.referral_at("2026-03-11 11:00").await;
    assert!(!opened.is_empty());
}

/// The standard referral with an HTML page and a program attached beside its form.
fn referral_with_unsafe_files() -> Vec<u8> {
    String::from_utf8(support::referral(
        "unsafe.1@hospital.test",
        "Referral for a rapid review",
    ))
    .unwrap()
    .replace(
        "--b1--\r\n",
        "--b1\r\nContent-Type: text/html; name=\"Shared document.html\"\r\n\
             Content-Disposition: attachment; filename=\"Shared document.html\"\r\n\r\n\
             <html><script>location='x'</script></html>\r\n\
             --b1\r\nContent-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"viewer.exe\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n--b1--\r\n",
    )
    .into_bytes()
}

#[tokio::test]
async fn a_referrals_html_page_and_program_never_reach_the_panel_and_the_letter_says_so() {
    let mut review = Review::with("bury", guarded).await;
    let report = review
        .receive(&referral_with_unsafe_files(), "2026-03-10 10:00")
        .await;
    let reference = report
        .opened
        .first()
        .cloned()
        .expect("a trusted referral opens a case");
    let copies = review.for_step("screening-request");
    assert!(!copies.is_empty(), "{:?}", review.timeline());
    for letter in copies {
        let names = letter.attachment_names();
        assert!(names.contains(&"Referral form.docx"), "{names:?}");
        assert!(
            !names
                .iter()
                .any(|n| n.ends_with(".html") || n.ends_with(".exe")),
            "unsafe files travelled: {names:?}"
        );
        let text = letter
            .msg
            .attachments
            .iter()
            .find(|a| a.filename.ends_with("-referral-email.txt"))
            .map(|a| String::from_utf8_lossy(&a.data).into_owned())
            .expect("the referral's text travels");
        assert!(
            text.contains("2 attached files withheld as unsafe: 1 program, 1 web page (HTML)"),
            "{text}"
        );
        assert!(!text.contains("Shared document.html") && !text.contains("viewer.exe"));
        assert!(
            letter.msg.body_text.starts_with(
                "Not forwarded: 2 attached files withheld as unsafe: 1 program, 1 web page (HTML)."
            ),
            "the letter itself says what was left out"
        );
    }
    let case = review.report(&reference).await;
    assert!(
        case.contains("flag: the referral's 2 attached files withheld"),
        "{case}"
    );
}

/// A colleague's Outlook reply on a forwarded letter: her own address, her own subject, no
/// In-Reply-To we know, only Thread-Index (our letter's conversation, extended twice) and a
/// Thread-Topic without the reference.
fn colleague_reply(letter: &crate::review::Letter) -> Vec<u8> {
    let conversation = letter
        .msg
        .thread_conversation
        .as_deref()
        .expect("our case letters carry a Thread-Index");
    let mut index = hex::decode(conversation).unwrap();
    index.extend_from_slice(&[0x01, 0x23, 0x45, 0x67, 0x89, 0x0a, 0xbc, 0xde, 0xf0, 0x12]);
    let index = base64::engine::general_purpose::STANDARD.encode(index);
    format!(
        "From: \"Haddad, Amira\" <amira.haddad@bury-council.test>\r\n\
         To: \"{SHARED}\" <{SHARED}>\r\n\
         Subject: Baby M - education and early help involvement\r\n\
         Thread-Topic: Baby M - education and early help involvement\r\n\
         Thread-Index: {index}\r\n\
         Date: Wed, 11 Mar 2026 14:03:21 +0000\r\n\
         Message-ID: <LO2P265MB563401A7F3C2D9E4@LO2P265MB5634.GBRP265.PROD.OUTLOOK.test>\r\n\
         In-Reply-To: <LO2P265MB5634C0FFEE1122@LO2P265MB5634.GBRP265.PROD.OUTLOOK.test>\r\n\
         Content-Language: en-GB\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=\"us-ascii\"\r\n\r\n\
         Hi,\r\n\r\nMy manager forwarded this to me. Early Help worked with the family; I will\r\n\
         send our chronology for the rapid review by Friday.\r\n\r\nAmira\r\n"
    )
    .into_bytes()
}

#[tokio::test]
async fn a_colleagues_outlook_reply_on_a_forwarded_letter_reaches_its_case_not_a_new_one() {
    let mut review = Review::of("bury").await;
    let reference = review.referral_at("2026-03-10 10:00").await;
    let letter = review.for_step("screening-request")[0].clone();
    let report = review
        .receive(&colleague_reply(&letter), "2026-03-11 14:05")
        .await;
    assert!(
        report.opened.is_empty(),
        "a reply opened a new case {:?}",
        report.opened
    );
    let state = review.state(&reference).await;
    assert_eq!(state.messages.len(), 2, "filed on {reference}");
    assert!(triage(&review).await.is_empty());
    assert_eq!(review.now(), london("2026-03-11 14:05"));
}

/// Through the real mail stack: the lure is delivered over SMTP to the shared mailbox, read over
/// IMAP by `caseclerk tick`, opens nothing, sends nothing, and `caseclerk triage` says why; a
/// genuine referral after it is answered as usual.
#[tokio::test]
async fn through_the_real_mail_stack_a_phishing_referral_sends_nothing_and_is_triaged_with_its_reason()
 {
    let h = support::Harness::start_with("bury", guarded).await;
    h.deliver(
        "bounce-7731@mailer.northdale-gov-portal.co.test",
        SHARED,
        &fixture("60-phishing-shared-document.eml"),
    )
    .await;
    let out = h.tick(None);
    assert!(
        out.contains("processed 1") && out.contains("queued 0, sent 0"),
        "{out}"
    );
    let listed = h.ok(&["triage"]);
    assert!(
        listed.contains("rule referral_trust")
            && listed.contains("the receiving server marked it as spam (X-Spam-Flag: YES)"),
        "{listed}"
    );
    assert!(
        h.ok(&["cases"]).lines().all(|l| !l.contains("RR-")),
        "no case"
    );
    h.deliver(
        REFERRER,
        SHARED,
        &support::referral("after-lure@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let out = h.tick(None);
    assert!(out.contains("opened"), "{out}");
    assert_eq!(
        h.settled_count(REFERRER).await,
        1,
        "the genuine referrer hears back"
    );
}

#[test]
fn caseclerk_check_lists_every_problem_in_the_senders_section_at_once() {
    let dir = std::env::temp_dir().join(format!("caseclerk-trust-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cfg = support::config_for("bury", &dir);
    let senders: toml::Table = toml::from_str(
        r#"
        trusted_domains = ["*.nhs.net", "police", "bury gov.uk"]
        spam_flag = { header = "X-Spam Flag", value = "" }
        spam_score = { header = "X-Spam-Score", above = 5.0, at_least = 4.0 }
        "#,
    )
    .unwrap();
    cfg.insert("senders".into(), toml::Value::Table(senders));
    let path = dir.join("caseclerk.toml");
    std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
    let err = caseclerk::shell::config::load(&path, caseclerk::shell::config::Needs::NoSecrets)
        .expect_err("refused")
        .to_string();
    let _ = std::fs::remove_dir_all(&dir);
    for part in [
        "`police` is not a domain pattern",
        "`bury gov.uk` is not a domain pattern",
        "header `X-Spam Flag` is not a header name",
        "spam_flag for X-Spam Flag: value is empty",
        "give exactly one of `above`",
    ] {
        assert!(err.contains(part), "missing {part:?} in:\n{err}");
    }
    assert!(
        err.contains("has 5 problem(s)"),
        "a good pattern is not a problem: {err}"
    );
}

/// A referral written in Outlook (it has its own Thread-Index), then a colleague's reply-all in
/// that conversation with her own subject and nothing else to go on.
/// A referral written in Outlook (it has its own Thread-Index).
fn outlook_referral() -> String {
    String::from_utf8(support::referral(
        "outlook.referral@hospital.test",
        "Referral for a rapid review",
    ))
    .unwrap()
    .replacen(
        "MIME-Version: 1.0\r\n",
        "Thread-Topic: Referral for a rapid review\r\nThread-Index: AdyyP0nQ8tW9c8ZkQ1mHc0v2kZp9Ag==\r\nMIME-Version: 1.0\r\n",
        1,
    )
}

/// A colleague's reply-all in the referral's conversation, with her own subject and nothing
/// else to go on.
fn ward_reply() -> String {
    format!(
        "From: Ward Sister <ward.sister@hospital.test>\r\nTo: {SHARED}\r\n\
         Subject: RE: the family we discussed\r\nThread-Topic: the family we discussed\r\n\
         Thread-Index: AdyyP0nQ8tW9c8ZkQ1mHc0v2kZp9AgABI0VniQ==\r\n\
         Message-ID: <ward.reply.1@hospital.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n\
         Adding the ward's notes for the rapid review: she was seen on 2 March.\r\n"
    )
}

#[tokio::test]
async fn a_reply_in_the_outlook_conversation_of_a_referral_reaches_the_case_it_opened() {
    let mut review = Review::of("bury").await;
    let opened = review
        .receive(outlook_referral().as_bytes(), "2026-03-10 10:00")
        .await;
    let reference = opened.opened.first().cloned().expect("a case");
    let report = review
        .receive(ward_reply().as_bytes(), "2026-03-10 15:00")
        .await;
    assert!(report.opened.is_empty(), "opened {:?}", report.opened);
    assert_eq!(review.state(&reference).await.messages.len(), 2);
}

#[tokio::test]
async fn a_referral_and_a_reply_in_its_conversation_read_in_one_pass_make_one_case() {
    let mut review = Review::of("bury").await;
    let t = london("2026-03-10 15:00");
    let folder = review.engine.cfg.imap.folder.clone();
    let both = [
        caseclerk::shell::mailbox::new_message(outlook_referral().as_bytes(), 1, t),
        caseclerk::shell::mailbox::new_message(ward_reply().as_bytes(), 2, t),
    ];
    review
        .engine
        .store
        .store_fetched(&folder, 1, &both, 2, t)
        .await
        .unwrap();
    let report = review.at("2026-03-10 15:00").await;
    assert_eq!(report.opened.len(), 1, "{:?}", report.opened);
    let reference = report.opened[0].clone();
    assert_eq!(review.state(&reference).await.messages.len(), 2);
}
