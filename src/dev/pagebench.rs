//! The web workspace's pages timed over HTTP, for `caseclerk bench --cases N`
//! ([`crate::dev::scalebench`]): each page the business unit opens, asked of the real server
//! (`shell::web`, on a loopback port of its own, on the bench's database) by a signed-in account,
//! from the connection to the last byte of the answer.
//!
//! Owns the measurement: an account and its session made for the run, a minimal HTTP/1.1 client
//! (one connection per request, as a browser's first visit), the best of three of each page, and
//! the first list page after the server starts (its per-case summaries not yet read).
//!
//! Must not: be used against anything but the bench's own throwaway database.

use crate::core::access::Role;
use crate::dev::bench::BenchError;
use crate::shell::engine::Engine;
use crate::shell::web::{self, App, accounts};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn other(e: impl std::fmt::Display) -> BenchError {
    BenchError::Other(e.to_string())
}

/// One GET with the session's cookie: its status and body length, timed by the caller.
async fn get(addr: std::net::SocketAddr, cookie: &str, path: &str) -> Result<usize, BenchError> {
    let mut s = tokio::net::TcpStream::connect(addr).await.map_err(other)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: bench\r\nCookie: {}={cookie}\r\nConnection: close\r\n\r\n",
        web::SESSION_COOKIE
    );
    s.write_all(request.as_bytes()).await.map_err(other)?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).await.map_err(other)?;
    if !answer.starts_with(b"HTTP/1.1 200") {
        let head = String::from_utf8_lossy(&answer[..answer.len().min(200)]).into_owned();
        return Err(other(format!("GET {path} answered {head}")));
    }
    Ok(answer.len())
}

/// The pages timed, by name, in words: the first list page after the server started (timed
/// once), then each GET's best of three, then the summaries' size in memory (estimated from
/// their contents, [`crate::core::workspace::Summary::approx_bytes`]).
pub async fn pages(engine: &Engine) -> Result<Vec<(String, String)>, BenchError> {
    let store = &engine.store;
    let now = engine.clock.now();
    let user = format!("bench{}", now.timestamp_micros());
    let password = "a bench password of some length";
    accounts::add_user(store, &user, "Bench", Role::ReadOnly, password, now)
        .await
        .map_err(other)?;
    let session = accounts::sign_in(store, &user, password, "127.0.0.1", now)
        .await
        .map_err(other)?;
    let accounts::SignIn::Session(session) = session else {
        return Err(other("the bench account could not sign in"));
    };
    let refs = store.case_refs().await?;
    let newest = refs.last().ok_or_else(|| other("no case was opened"))?;
    let case = store
        .case_by_ref(newest)
        .await?
        .ok_or_else(|| other("the newest case is gone"))?;
    let letter = store
        .letter_summaries(Some(case.id))
        .await?
        .first()
        .map(|l| l.id)
        .ok_or_else(|| other("the newest case has no letter"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(other)?;
    let addr = listener.local_addr().map_err(other)?;
    let app = App {
        cfg: engine.cfg.clone(),
        store: store.clone(),
        clock: engine.clock.clone(),
        https: false,
        pages: Default::default(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(web::serve_on(listener, None, app, async {
        let _ = stopped.await;
    }));
    let paths = [
        ("/cases".to_string(), "cases (open, page 1 of 50)"),
        ("/cases?status=overdue".into(), "cases, overdue filter"),
        (
            format!("/cases?status=all&q={newest}"),
            "cases, search by reference",
        ),
        (format!("/cases/{newest}"), "a case"),
        (format!("/cases/{newest}/letters/{letter}"), "a letter"),
        ("/triage".into(), "triage"),
        ("/held".into(), "held replies"),
        ("/undelivered".into(), "undelivered letters"),
        ("/coming".into(), "next 15 working days (page 1)"),
        ("/tracker".into(), "tracker table (page 1 of 50)"),
    ];
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);
    let mut out = Vec::new();
    let started = Instant::now();
    get(addr, &session.token, "/cases").await?;
    out.push((
        "cases, first after a start".to_string(),
        ms(started.elapsed()),
    ));
    for (path, name) in &paths {
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let started = Instant::now();
            std::hint::black_box(get(addr, &session.token, path).await?);
            best = best.min(started.elapsed());
        }
        out.push((name.to_string(), ms(best)));
    }
    // The same summaries the server keeps, read again here to be weighed.
    let kept = web::memo::PageMemo::default();
    let memo = kept.at(&engine.cfg, store, engine.clock.now()).await?;
    let bytes = memo.approx_bytes() as f64;
    out.push((
        "summaries in memory (estimated)".to_string(),
        format!("{:.1} MB", bytes / 1e6),
    ));
    drop(memo);
    let _ = stop.send(());
    let _ = server.await;
    Ok(out)
}
