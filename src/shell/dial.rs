//! Reaching a server over TCP: every address its name resolves to, IPv6 and IPv4 alternating,
//! each attempt started [`STAGGER`] after the one before while none has answered (at once when
//! the one before failed), and the first connection made kept — RFC 8305's "Happy Eyeballs".
//!
//! Why: `outlook.office365.com` and `login.microsoftonline.com` have IPv6 addresses, and a
//! council server with a global IPv6 address whose IPv6 traffic is dropped (a firewall, a broken
//! route) gets no refusal, only silence. Connecting to one address after another, the first
//! IPv6 attempt took the whole connect timeout, and the IPv4 address that works was never
//! tried: the mailbox, the SMTP server and the token endpoint were all "unreachable".
//!
//! Used by the mailbox, the outbox and the token request for every connection they open. Must
//! not: log addresses at more than debug level (they are servers', never people's, but the log
//! stays quiet), or hold a socket it did not keep.

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;

/// How long an attempt has before the next address is tried beside it (RFC 8305 recommends
/// 250 ms).
pub const STAGGER: Duration = Duration::from_millis(250);

/// Resolve `host` and connect to `port` on the first of its addresses to answer.
pub async fn dial(host: &str, port: u16) -> std::io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    first_to_answer(interleaved(addrs), STAGGER).await
}

/// The addresses with IPv6 and IPv4 alternating, starting with the family the resolver put
/// first, each family in the resolver's order (RFC 8305, section 4).
pub fn interleaved(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let first_v6 = addrs.first().is_some_and(SocketAddr::is_ipv6);
    let (mut same, mut other): (Vec<_>, Vec<_>) =
        addrs.into_iter().partition(|a| a.is_ipv6() == first_v6);
    same.reverse();
    other.reverse();
    let mut out = Vec::with_capacity(same.len() + other.len());
    while let Some(a) = same.pop() {
        out.push(a);
        if let Some(b) = other.pop() {
            out.push(b);
        }
    }
    out.extend(other.into_iter().rev());
    out
}

/// Connect to `addrs` in order, a new attempt each `stagger` while none has answered, or at once
/// when every attempt so far has failed; the first connection made is returned (the others are
/// dropped). When every address fails, the last error.
pub async fn first_to_answer(
    addrs: Vec<SocketAddr>,
    stagger: Duration,
) -> std::io::Result<TcpStream> {
    let mut waiting = addrs.into_iter();
    let mut trying = FuturesUnordered::new();
    let mut last = std::io::Error::new(
        std::io::ErrorKind::NotFound,
        "the server's name has no address",
    );
    loop {
        if trying.is_empty() {
            match waiting.next() {
                Some(a) => trying.push(TcpStream::connect(a)),
                None => return Err(last),
            }
        }
        tokio::select! {
            Some(done) = trying.next() => match done {
                Ok(stream) => return Ok(stream),
                Err(e) => {
                    tracing::debug!(error = %e, "one of the server's addresses failed");
                    last = e;
                }
            },
            () = tokio::time::sleep(stagger), if waiting.len() > 0 => {
                if let Some(a) = waiting.next() {
                    trying.push(TcpStream::connect(a));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! A silent address never holds up one that answers; refusals end in the last error; the
    //! families alternate.
    use super::*;

    /// A listening address that never answers a new connection: its accept queue (of one) is
    /// full and never emptied, so the kernel drops further SYNs, as a firewall does.
    async fn silent() -> (tokio::net::TcpListener, TcpStream, SocketAddr) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(0).unwrap();
        let addr = listener.local_addr().unwrap();
        let filler = TcpStream::connect(addr).await.unwrap();
        (listener, filler, addr)
    }

    #[tokio::test]
    async fn a_silent_first_address_does_not_hold_up_the_next_one() {
        let (_silent, _filler, quiet) = silent().await;
        let good = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let answers = good.local_addr().unwrap();
        let got = tokio::time::timeout(
            Duration::from_secs(10),
            first_to_answer(vec![quiet, answers], Duration::from_millis(50)),
        )
        .await
        .expect("not held up by the silent address")
        .unwrap();
        assert_eq!(got.peer_addr().unwrap(), answers);
    }

    #[tokio::test]
    async fn every_address_refusing_gives_the_last_refusal_at_once() {
        let closed = |_| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let addrs: Vec<SocketAddr> = (0..2).map(closed).collect();
        let e = tokio::time::timeout(
            Duration::from_secs(10),
            first_to_answer(addrs, Duration::from_secs(60)),
        )
        .await
        .expect("a refusal does not wait for the stagger")
        .unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
        let none = first_to_answer(Vec::new(), STAGGER).await.unwrap_err();
        assert_eq!(none.kind(), std::io::ErrorKind::NotFound);
    }

    #[test]
    fn the_families_alternate_starting_with_the_resolvers_first() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let got = interleaved(vec![
            a("[2001:db8::1]:993"),
            a("[2001:db8::2]:993"),
            a("[2001:db8::3]:993"),
            a("192.0.2.1:993"),
        ]);
        assert_eq!(
            got,
            [
                a("[2001:db8::1]:993"),
                a("192.0.2.1:993"),
                a("[2001:db8::2]:993"),
                a("[2001:db8::3]:993"),
            ]
        );
        let v4_first = interleaved(vec![
            a("192.0.2.1:993"),
            a("192.0.2.2:993"),
            a("[2001:db8::1]:993"),
        ]);
        assert_eq!(
            v4_first,
            [
                a("192.0.2.1:993"),
                a("[2001:db8::1]:993"),
                a("192.0.2.2:993"),
            ]
        );
    }
}
