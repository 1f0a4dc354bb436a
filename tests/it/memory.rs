//! Memory bounded by bytes, through the real mail stack: a first run over more mail than one
//! fetch batch may hold reads it in several batches (a message larger than the budget alone) and
//! stores and decides every message exactly once. (The memory itself is measured by `caseclerk
//! bench --first-run/--burst`, not asserted here.)

use crate::support::{Harness, SHARED};
use caseclerk::shell::mailbox::FETCH_BUDGET;
use caseclerk::shell::store::Store;
use chrono::{DateTime, Duration, FixedOffset};

/// Wednesday 25 November 2026, 10:00 London.
const NOW: &str = "2026-11-25T10:00:00Z";

/// A message of about `bytes` bytes: a short note from an agency with one attached file.
fn large(i: usize, bytes: usize) -> Vec<u8> {
    use base64::Engine as _;
    let data: Vec<u8> = (0..bytes * 3 / 4)
        .map(|k| ((k * 7 + i) % 251) as u8)
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(data);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(76)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "From: Records <records@agency{i}.test>\r\nTo: {SHARED}\r\nSubject: Records {i}\r\n\
         Message-ID: <large.{i}@agency.test>\r\nDate: Mon, 23 Nov 2026 09:00:00 +0000\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\
         Content-Type: text/plain\r\n\r\nThe records are attached.\r\n--b\r\n\
         Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"records.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        lines.join("\r\n")
    )
    .into_bytes()
}

#[tokio::test]
async fn a_first_run_over_more_mail_than_one_batch_holds_reads_and_decides_every_message_exactly_once()
 {
    let h = Harness::start("bury").await;
    let day = DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z").unwrap();
    let budget = FETCH_BUDGET as usize;
    // 70 small messages, three of a third of the budget, and one larger than the budget.
    let mut mail: Vec<(Vec<u8>, DateTime<FixedOffset>)> = (0..70)
        .map(|i| {
            (
                caseclerk::dev::bench::sample(i),
                day + Duration::minutes(i as i64),
            )
        })
        .collect();
    for i in 0..3 {
        mail.push((large(i, budget / 3), day + Duration::hours(2 + i as i64)));
    }
    mail.push((large(9, budget + budget / 4), day + Duration::hours(6)));
    let total: usize = mail.iter().map(|(m, _)| m.len()).sum();
    assert!(
        total > 2 * budget,
        "the backlog is more than two batches' budget"
    );
    h.stack.append_many(SHARED, &mail).await.expect("appended");

    let out = h.caseclerk(&["tick", "--process-existing", "--now", NOW]);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{log}");
    let batches: Vec<(u64, u64)> = log
        .lines()
        .filter(|l| l.contains("fetching a batch"))
        .map(|l| (field(l, "messages"), field(l, "bytes")))
        .collect();
    assert!(
        batches.len() >= 3,
        "read in batches, not whole: {batches:?}"
    );
    assert_eq!(
        batches.iter().map(|(n, _)| n).sum::<u64>(),
        mail.len() as u64,
        "every message in one batch: {batches:?}"
    );
    for (n, bytes) in &batches {
        assert!(
            *bytes <= FETCH_BUDGET || *n == 1,
            "a batch over the budget is one message alone: {batches:?}"
        );
    }
    assert!(
        batches.iter().any(|(_, bytes)| *bytes > FETCH_BUDGET),
        "the large message was read: {batches:?}"
    );

    // A second pass finds nothing new: every message was stored and decided once.
    h.tick(Some(NOW));
    let store = Store::open_read_only(&h.dir.join("caseclerk.db"))
        .await
        .unwrap();
    let states = store.message_states().await.unwrap();
    let stored: i64 = states.iter().map(|(_, _, n)| n).sum();
    assert_eq!(stored, mail.len() as i64, "{states:?}");
    assert!(
        states.iter().all(|(state, _, _)| state != "new"),
        "every message decided: {states:?}"
    );
}

/// `name=value` of a log line, as a number.
fn field(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{name} in {line}"))
}
