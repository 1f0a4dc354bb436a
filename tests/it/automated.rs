//! Automated correspondents, caps and banners, without servers (see `review.rs`): machines that
//! answer every email are recorded, never answered; a loop in any form ends within the caps; a
//! banner on top of a vote does not stall it; an unclear vote is asked about once, in plain words.
//! (The real-mail-stack loop is in `automated_stack.rs`.)

use crate::full_reviews::{ICB_REP, LA_REP, POLICE_REP};
use crate::review::{Letter, Reply, Review};

/// The council's Children's Services front door: it refers, and it auto-acknowledges everything.
const FRONT_DOOR: &str = "frontdoor@bury.test";
/// What counts as a letter in answer to incoming mail (see `core::limits`).
const ANSWERS: &[&str] = &[
    "acknowledge",
    "notice-vote-confirmed",
    "notice-vote-unclear",
    "notice-agencies-unknown",
];
/// The default caps (`[limits]`).
const ANSWER_CAP: usize = 5;
const CASE_CAP: usize = 3;

fn answers_to(review: &Review, addr: &str) -> usize {
    review
        .sent_to(addr)
        .iter()
        .filter(|l| ANSWERS.contains(&l.step.as_str()))
        .count()
}

/// A fresh message from the front door: new subject, no threading, no RFC 3834 headers.
fn fresh(from: &str, subject: &str, body: &str, n: usize) -> Vec<u8> {
    format!(
        "From: Front Door <{from}>\r\nTo: bsp@bury.test\r\nSubject: {subject}\r\n\
         Message-ID: <fd.{n}.{}@frontdoor.bury.test>\r\nDate: Tue, 3 Mar 2026 09:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        subject.len()
    )
    .into_bytes()
}

/// Ten passes on one day (Tue 3 Mar 2026, 08:00 to 17:00): at each, `who` answers every letter
/// caseclerk sent them since the last pass with `answer`, and the engine runs.
async fn ten_passes(review: &mut Review, who: &str, answer: impl Fn(&Letter, usize) -> Vec<u8>) {
    let mut answered = 0;
    let mut n = 0;
    for hour in 8..18 {
        let when = format!("2026-03-03 {hour:02}:00");
        review.at(&when).await;
        let new: Vec<Letter> = review.sent_to(who)[answered..]
            .iter()
            .map(|l| (*l).clone())
            .collect();
        answered += new.len();
        for letter in new {
            n += 1;
            review.receive(&answer(&letter, n), &when).await;
        }
    }
}

async fn triage_rules(review: &Review) -> Vec<String> {
    review
        .engine
        .store
        .triage()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.rule.unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn an_auto_acknowledging_front_door_gets_one_acknowledgement_and_opens_one_case() {
    let mut review = Review::of("bury").await;
    review
        .referral_from(
            FRONT_DOOR,
            "Referral for a rapid review",
            "2026-03-02 10:00",
        )
        .await;
    ten_passes(&mut review, FRONT_DOOR, |_, n| {
        fresh(
            FRONT_DOOR,
            &format!("Thank you for your referral - Ref FD-2026-{n:05}"),
            &format!(
                "Thank you for your referral to Bury Children's Services Front Door.\r\n\r\n\
                 This is an automated response to confirm that your email has been received. \
                 We aim to respond within 3 working days.\r\n\r\nYour reference number is \
                 FD-2026-{n:05}.\r\n\r\nIf your concern is urgent, please call 0161 000 0000."
            ),
            n,
        )
    })
    .await;
    assert_eq!(
        answers_to(&review, FRONT_DOOR),
        1,
        "{:#?}",
        review.timeline()
    );
    assert_eq!(review.engine.store.case_refs().await.unwrap().len(), 1);
    let rules = triage_rules(&review).await;
    assert!(
        !rules.is_empty() && rules.iter().all(|r| r == "automated_wording"),
        "each auto-acknowledgement is listed for a person: {rules:?}"
    );
}

#[tokio::test]
async fn a_front_door_whose_receipts_read_as_referrals_is_stopped_by_the_caps() {
    let mut review = Review::of("bury").await;
    review
        .referral_from(
            FRONT_DOOR,
            "Referral for a rapid review",
            "2026-03-02 10:00",
        )
        .await;
    // Nothing in these receipts says "machine": each reads as a new referral.
    ten_passes(&mut review, FRONT_DOOR, |_, n| {
        fresh(
            FRONT_DOOR,
            &format!("Referral FD-2026-{n:05}"),
            &format!("Referral FD-2026-{n:05} logged."),
            n,
        )
    })
    .await;
    let cases = review.engine.store.case_refs().await.unwrap().len();
    assert!(cases <= CASE_CAP, "{cases} cases opened");
    assert!(answers_to(&review, FRONT_DOOR) <= ANSWER_CAP);
    // The loop ran into the cap, and the business unit is told in the triage list and the digest.
    assert!(
        triage_rules(&review)
            .await
            .contains(&"case_cap".to_string())
    );
    let digest = review.digest_text().await;
    assert!(digest.contains("case cap"), "{digest}");
    // The screening panel was copied once per case, no more.
    for member in [LA_REP, POLICE_REP, ICB_REP] {
        assert!(review.sent_to_for(member, "screening-request").len() <= CASE_CAP);
    }
}

/// Bury's screening request to `member` for the one case.
async fn screening_request(review: &mut Review, member: &str) -> Letter {
    review.referral_at("2026-03-02 10:00").await;
    review.at("2026-03-02 10:05").await;
    review.last_to(member, "screening-request")
}

#[tokio::test]
async fn a_panel_member_s_auto_acknowledgement_keeping_the_vote_code_is_not_an_unclear_vote() {
    let mut review = Review::of("bury").await;
    let request = screening_request(&mut review, LA_REP).await;
    let reference = caseclerk::core::classify::find_case_ref(&request.msg.subject).unwrap();
    ten_passes(&mut review, LA_REP, |letter, _| {
        Reply::to(
            letter,
            LA_REP,
            "Thank you for your email.\n\nI am working reduced hours this week and will reply as soon as I can. If your query is urgent, please contact the safeguarding team on 0161 000 0001.",
        )
        .raw()
    })
    .await;
    assert_eq!(answers_to(&review, LA_REP), 0, "{:#?}", review.timeline());
    let state = review.state(&reference).await;
    assert!(state.held.is_empty(), "{:?}", state.held);
}

#[tokio::test]
async fn a_panel_member_s_responder_that_reads_as_unclear_is_asked_once_in_plain_words() {
    let mut review = Review::of("bury").await;
    let request = screening_request(&mut review, LA_REP).await;
    let reference = caseclerk::core::classify::find_case_ref(&request.msg.subject).unwrap();
    ten_passes(&mut review, LA_REP, |letter, _| {
        Reply::to(letter, LA_REP, "MEETS or NFA: your message has been logged").raw()
    })
    .await;
    let asks = review.sent_to_for(LA_REP, "notice-vote-unclear");
    assert_eq!(asks.len(), 1, "{:#?}", review.timeline());
    let text = &asks[0].msg.body_text;
    assert!(
        text.contains("\"MEETS or NFA: your message has been logged\""),
        "the line it read is quoted: {text}"
    );
    assert!(
        text.contains("single agency: SINGLE or single agency"),
        "{text}"
    );
    assert!(text.contains("nfa: NFA or no further action"), "{text}");
    for internal in [
        "single_agency",
        "screening:",
        "(message",
        "message 1",
        "message 2",
    ] {
        assert!(
            !text.contains(internal),
            "no internal id ({internal}): {text}"
        );
    }
    assert!(answers_to(&review, LA_REP) <= ANSWER_CAP);
    let state = review.state(&reference).await;
    assert!(
        state.held.len() >= 2,
        "later unclear replies are held, not asked again"
    );
}

#[tokio::test]
async fn a_vote_under_an_external_sender_banner_counts() {
    let mut review = Review::of("bury").await;
    let request = screening_request(&mut review, POLICE_REP).await;
    let reference = caseclerk::core::classify::find_case_ref(&request.msg.subject).unwrap();
    let reply = Reply::to(
        &request,
        POLICE_REP,
        "CAUTION: This email originated from outside of the organisation. Do not click links or open attachments unless you recognise the sender and know the content is safe.\n\nMEETS\nClear evidence of serious harm.",
    )
    .subject(format!("[EXTERNAL] RE: {}", request.msg.subject));
    review.receive(&reply.raw(), "2026-03-02 11:00").await;
    let state = review.state(&reference).await;
    assert_eq!(
        state.votes["screening"][POLICE_REP].outcome, "meets",
        "{:?}",
        state.held
    );
    assert_eq!(
        review
            .sent_to_for(POLICE_REP, "notice-vote-confirmed")
            .len(),
        1
    );
}

#[test]
fn bad_limits_and_banners_are_refused_together_and_good_ones_are_read() {
    use caseclerk::shell::config::{self, Needs};
    let dir = std::env::temp_dir().join(format!("caseclerk-limits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    crate::support::write_secret(&dir.join("password"), crate::support::PASSWORD);
    let write = |limits: &str, banners: &str| {
        let mut cfg = crate::support::config_for("bury", &dir);
        cfg.insert("limits".into(), toml::Value::Table(limits.parse().unwrap()));
        cfg.insert("mail".into(), toml::Value::Table(banners.parse().unwrap()));
        let path = dir.join("caseclerk.toml");
        std::fs::write(&path, toml::to_string(&cfg).unwrap()).unwrap();
        config::load(&path, Needs::NoSecrets)
    };
    let Err(err) = write(
        "answers_per_address_per_day = 0\ncases_per_sender_per_day = 500",
        "banners = [\"--\"]",
    ) else {
        panic!("a cap of 0, a cap of 500 and an empty banner are refused");
    };
    let err = err.to_string();
    assert!(err.contains("answers_per_address_per_day = 0"), "{err}");
    assert!(err.contains("cases_per_sender_per_day = 500"), "{err}");
    assert!(err.contains("[mail] banners[0]"), "{err}");
    let cfg = write(
        "answers_per_address_per_day = 2",
        "banners = [\"Message from an external partner\"]",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.limits.answers_per_address_per_day, 2);
    assert_eq!(cfg.limits.cases_per_sender_per_day, CASE_CAP as u32);
    assert_eq!(cfg.banners, ["Message from an external partner"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_agency_s_out_of_office_without_headers_is_noted_never_answered_and_the_deputy_is_chased()
 {
    const HV: &str = "hv@nhs.test";
    const HV_DEPUTY: &str = "hv.deputy@nhs.test";
    let mut review = Review::of("bury").await;
    let reference = review.referral_at("2026-08-20 10:00").await;
    for (i, member) in [LA_REP, POLICE_REP, ICB_REP].iter().enumerate() {
        let ask = review.last_to(member, "screening-request");
        let body = if i == 0 {
            "MEETS\nAgencies: health visiting"
        } else {
            "MEETS"
        };
        review.reply(&ask, member, body, "2026-08-20 14:00").await;
    }
    review.at("2026-08-24 10:00").await;
    let request = review.last_to(HV, "agency-request");
    let before = review.sent_to(HV).len();
    review
        .reply(
            &request,
            HV,
            "Good morning,\n\nI am out of the office until Monday 7 September with limited access to email.\nFor urgent safeguarding matters please contact the duty desk.",
            "2026-08-24 10:30",
        )
        .await;
    let state = review.state(&reference).await;
    assert!(
        state.agencies["health-visiting"].out_of_office_at.is_some(),
        "AutoReplyNoted was recorded"
    );
    assert!(state.agencies["health-visiting"].returned_at.is_none());
    assert_eq!(review.sent_to(HV).len(), before, "never answered");
    review.at("2026-09-01 10:00").await;
    assert_eq!(
        review.sent_to_for(HV_DEPUTY, "chase").len(),
        1,
        "{:#?}",
        review.timeline()
    );
}

#[tokio::test]
async fn old_referrals_from_one_referrer_read_in_one_pass_are_not_taken_for_a_loop() {
    let mut review = Review::of("bury").await;
    let folder = review.engine.cfg.imap.folder.clone();
    // Five referrals from the same hospital, a week apart, waiting in the mailbox.
    let mut fetched = Vec::new();
    for week in 0..5u32 {
        let at = crate::review::london("2026-01-26 10:00") + chrono::Duration::weeks(week.into());
        let raw = crate::support::referral(
            &format!("old-{week}@hospital.test"),
            "Referral for a rapid review",
        );
        fetched.push(caseclerk::shell::mailbox::new_message(&raw, 900 + week, at));
    }
    let t = crate::review::london("2026-03-03 09:00");
    review
        .engine
        .store
        .store_fetched(&folder, 1, &fetched, 904, t)
        .await
        .unwrap();
    review.at("2026-03-03 09:00").await;
    assert_eq!(review.engine.store.case_refs().await.unwrap().len(), 5);
    assert!(
        !triage_rules(&review)
            .await
            .contains(&"case_cap".to_string())
    );
}

#[tokio::test]
async fn an_agencies_line_is_read_under_a_banner_and_never_from_quoted_history() {
    let mut review = Review::of("bury").await;
    let request = screening_request(&mut review, LA_REP).await;
    let reference = caseclerk::core::classify::find_case_ref(&request.msg.subject).unwrap();
    // Only quoted: not read.
    let quoted = "MEETS\n\nOn Mon, 2 Mar 2026, Jo <jo@bury.test> wrote:\n> Agencies: gp";
    review
        .reply(&request, LA_REP, quoted, "2026-03-02 11:00")
        .await;
    // Under a banner: read.
    let police = review.last_to(POLICE_REP, "screening-request");
    let body = "[EXTERNAL]\nMEETS\nAgencies: health visiting";
    let reply = Reply::to(&police, POLICE_REP, body)
        .subject(format!("[EXTERNAL] RE: {}", police.msg.subject));
    review.receive(&reply.raw(), "2026-03-02 11:05").await;
    let state = review.state(&reference).await;
    assert!(
        !state.agencies.contains_key("gp"),
        "a quoted line is not read"
    );
    assert!(
        state.agencies.contains_key("health-visiting"),
        "{:?}",
        state.agencies.keys()
    );
    assert_eq!(state.votes["screening"][LA_REP].outcome, "meets");
    assert_eq!(state.votes["screening"][POLICE_REP].outcome, "meets");
}

#[tokio::test]
async fn a_sixth_answer_to_one_address_in_a_day_is_not_sent_and_the_case_says_why() {
    let mut review = Review::of("bury").await;
    let mut cases = Vec::new();
    for i in 0..6 {
        let from = format!("Dr R{i} <r{i}@hospital.test>");
        cases.push(
            review
                .referral_from(
                    &from,
                    "Referral for a rapid review",
                    &format!("2026-03-02 09:{i:02}"),
                )
                .await,
        );
    }
    review.at("2026-03-02 10:00").await;
    for (i, case) in cases.iter().enumerate() {
        let ask = review.last_about(case, LA_REP, "screening-request");
        review
            .reply(&ask, LA_REP, "MEETS", &format!("2026-03-02 11:{i:02}"))
            .await;
    }
    assert_eq!(
        review.sent_to_for(LA_REP, "notice-vote-confirmed").len(),
        ANSWER_CAP
    );
    // The sixth vote still counts; only its confirmation is held back, and the case says why.
    let last = &cases[5];
    assert_eq!(
        review.state(last).await.votes["screening"][LA_REP].outcome,
        "meets"
    );
    let report = review.report(last).await;
    assert!(report.contains("answer cap"), "{report}");
    assert!(
        triage_rules(&review)
            .await
            .contains(&"answer_cap".to_string())
    );
}
