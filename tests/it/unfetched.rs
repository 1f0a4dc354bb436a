//! A server that lists a message and will not hand it over (Exchange Online is reported to do so
//! now and then on busy mailboxes), played by a proxy in front of the stack's plain IMAP port that
//! drops the response carrying one message's body: the message is not passed over — it is asked
//! for again at every pass, health is CRITICAL and the digest says so until it arrives, and the
//! mail after it is read as usual meanwhile.

use crate::support::{Harness, REFERRER, SHARED, referral};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// A loopback proxy to `upstream` that, while `hide` holds a UID (0: none), drops the server's
/// `FETCH` response carrying that message's body (a line with a literal, the literal, and the
/// rest of the response); while `mute` is set, every `* SEARCH` answer (a search the IMAP
/// library then reads as finding nothing, as it reads a `NO` or a dropped connection); and while
/// `stall` holds n > 0, nothing more is passed on from a connection's n-th `* SEARCH` answer
/// (caseclerk's command times out).
struct Hiding {
    port: u16,
    hide: Arc<AtomicU32>,
    mute: Arc<AtomicU32>,
    stall: Arc<AtomicU32>,
}

/// What the proxy does to the server's answers.
struct Tampering {
    hide: Arc<AtomicU32>,
    mute: Arc<AtomicU32>,
    stall: Arc<AtomicU32>,
}

async fn hiding_proxy(upstream: u16) -> Hiding {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (hide, mute, stall) = (
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
        Arc::new(AtomicU32::new(0)),
    );
    let tampering = Arc::new(Tampering {
        hide: hide.clone(),
        mute: mute.clone(),
        stall: stall.clone(),
    });
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let server = TcpStream::connect(("127.0.0.1", upstream)).await.unwrap();
            let (mut client_read, mut client_write) = client.into_split();
            let (server_read, mut server_write) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
            });
            let t = tampering.clone();
            tokio::spawn(async move {
                let from = BufReader::new(server_read);
                let _ = filter(from, &mut client_write, &t).await;
            });
        }
    });
    Hiding {
        port,
        hide,
        mute,
        stall,
    }
}

/// Copy the server's responses, leaving out the `FETCH` that carries the hidden UID's body.
async fn filter(
    mut from: BufReader<tokio::net::tcp::OwnedReadHalf>,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    t: &Tampering,
) -> std::io::Result<()> {
    let mut searches = 0;
    loop {
        let mut line = Vec::new();
        if from.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&line).into_owned();
        if text.starts_with("* SEARCH") {
            searches += 1;
            if t.stall.load(Ordering::SeqCst) == searches {
                std::future::pending::<()>().await;
            }
            if t.mute.load(Ordering::SeqCst) != 0 {
                continue;
            }
        }
        let literal = text
            .trim_end()
            .strip_suffix('}')
            .and_then(|t| t.rsplit_once('{'))
            .and_then(|(_, n)| n.parse::<usize>().ok());
        let Some(n) = literal.filter(|_| text.starts_with("* ") && text.contains(" FETCH ("))
        else {
            to.write_all(&line).await?;
            continue;
        };
        let mut body = vec![0; n];
        from.read_exact(&mut body).await?;
        let mut rest = Vec::new();
        from.read_until(b'\n', &mut rest).await?;
        let hidden = t.hide.load(Ordering::SeqCst);
        if hidden != 0 && text.contains(&format!("UID {hidden} ")) {
            continue;
        }
        to.write_all(&line).await?;
        to.write_all(&body).await?;
        to.write_all(&rest).await?;
    }
}

/// A stack whose mailbox caseclerk reads through [`hiding_proxy`] (plain IMAP on loopback), each
/// IMAP command given `timeout` seconds; the empty folder looked at once.
async fn behind_proxy(timeout: i64) -> (Harness, Hiding) {
    let h = Harness::start("bury").await;
    let proxy = hiding_proxy(h.stack.ports.imap).await;
    let mut cfg: toml::Table = std::fs::read_to_string(&h.config).unwrap().parse().unwrap();
    let mailbox = cfg["mailbox"].as_table_mut().unwrap();
    mailbox.insert("port".into(), toml::Value::Integer(proxy.port.into()));
    mailbox.insert("tls".into(), toml::Value::String("none".into()));
    mailbox.insert("timeout_seconds".into(), toml::Value::Integer(timeout));
    std::fs::write(&h.config, toml::to_string(&cfg).unwrap()).unwrap();
    h.tick(None);
    (h, proxy)
}

// Multi-threaded: the proxy's tasks run while the test waits for `caseclerk` to finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_server_lists_and_will_not_hand_over_is_asked_for_until_it_comes() {
    let (h, proxy) = behind_proxy(60).await;

    // The first referral (UID 1) is listed but not handed over.
    proxy.hide.store(1, Ordering::SeqCst);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("hidden@hospital.test", "Referral for a rapid review"),
    )
    .await;
    let first = h.tick(None);
    assert!(!first.contains("opened RR-"), "{first}");
    let health = h.caseclerk(&["health"]);
    let said = String::from_utf8_lossy(&health.stdout);
    assert_eq!(health.status.code(), Some(2), "{said}");
    assert!(
        said.contains("[messages_unfetched]") && said.contains("UID 1)"),
        "{said}"
    );
    let digest = h.ok(&["digest"]);
    assert!(digest.contains("one may be a referral"), "{digest}");

    // A search whose answer goes missing is no proof that the message left the folder.
    proxy.mute.store(1, Ordering::SeqCst);
    h.tick(None);
    proxy.mute.store(0, Ordering::SeqCst);
    let health = h.caseclerk(&["health"]);
    assert!(
        String::from_utf8_lossy(&health.stdout).contains("[messages_unfetched]"),
        "still kept after an answer that cannot be trusted"
    );

    // Mail after it is read meanwhile; it is still asked for.
    h.deliver(
        REFERRER,
        SHARED,
        &referral("after@hospital.test", "Rapid review referral"),
    )
    .await;
    let second = h.tick(None);
    assert!(second.contains("opened RR-2026-0001"), "{second}");
    let health = h.caseclerk(&["health"]);
    assert!(
        String::from_utf8_lossy(&health.stdout).contains("[messages_unfetched]"),
        "still missing"
    );

    // Handed over at last: read, and the alarm clears.
    proxy.hide.store(0, Ordering::SeqCst);
    let third = h.tick(None);
    assert!(third.contains("opened RR-2026-0002"), "{third}");
    let health = h.caseclerk(&["health"]);
    let said = String::from_utf8_lossy(&health.stdout);
    assert!(!said.contains("messages_unfetched"), "{said}");
    assert!(!h.ok(&["digest"]).contains("one may be a referral"));
    assert_eq!(h.tick(None).matches("opened RR-").count(), 0, "each once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_cut_off_after_a_batch_came_without_a_message_still_asks_for_it_again() {
    let (h, proxy) = behind_proxy(1).await;
    // UID 1 is not handed over, and the search that would have settled it (the pass's second)
    // times out, after the batch's watermark has moved past it: the pass fails there.
    proxy.hide.store(1, Ordering::SeqCst);
    proxy.stall.store(2, Ordering::SeqCst);
    h.deliver(
        REFERRER,
        SHARED,
        &referral("cut-off@hospital.test", "Referral for a rapid review"),
    )
    .await;
    h.deliver(
        REFERRER,
        SHARED,
        &referral("handed-over@hospital.test", "Rapid review referral"),
    )
    .await;
    let cut = h.caseclerk(&["tick", "--process-existing"]);
    assert!(
        String::from_utf8_lossy(&cut.stderr).contains("timed out"),
        "{}",
        String::from_utf8_lossy(&cut.stderr)
    );
    let health = h.caseclerk(&["health"]);
    assert!(
        String::from_utf8_lossy(&health.stdout).contains("[messages_unfetched]"),
        "raised though the pass never settled its list"
    );
    proxy.hide.store(0, Ordering::SeqCst);
    proxy.stall.store(0, Ordering::SeqCst);
    let next = h.tick(None);
    assert!(next.contains("opened RR-"), "asked for again: {next}");
    assert_eq!(
        h.tick(None).matches("opened RR-").count(),
        0,
        "both read, once each"
    );
    assert_eq!(h.settled_count(REFERRER).await, 2, "two acknowledgements");
}
