//! The test-side mail client: a few lines of SMTP (what an agency's server does when it hands
//! mail to the partnership's MX), plain IMAP on loopback through async-imap, and the readiness
//! probes used while starting the stack. Deliberately simple; not the production mail path.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpStream, UnixStream};
use tokio_rustls::rustls::{self, ClientConfig};

/// One SMTP reply: its code and all its text lines joined by newlines.
#[derive(Debug)]
pub(super) struct Reply {
    pub code: u16,
    pub text: String,
}

impl std::fmt::Display for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.code, self.text)
    }
}

/// Where an SMTP conversation stopped.
#[derive(Debug)]
pub(super) enum SmtpFailure {
    /// Connection or protocol trouble.
    Io(String),
    /// The server refused `command` with `reply`.
    Rejected { command: String, reply: Reply },
}

async fn read_reply<R: AsyncRead + Unpin>(r: &mut BufReader<R>) -> Result<Reply, String> {
    let mut text = Vec::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).await.map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed by the server".into());
        }
        let line = line.trim_end_matches(['\r', '\n']);
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| format!("not an SMTP reply: {line:?}"))?;
        text.push(line.get(4..).unwrap_or("").to_string());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(Reply {
                code,
                text: text.join("\n"),
            });
        }
    }
}

/// Sends `command` (without CRLF) and expects a reply in `ok` (e.g. 2 for 2xx, 3 for 3xx).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut BufReader<S>,
    command: &str,
    ok: u16,
) -> Result<Reply, SmtpFailure> {
    s.get_mut()
        .write_all(format!("{command}\r\n").as_bytes())
        .await
        .map_err(|e| SmtpFailure::Io(format!("sending {command}: {e}")))?;
    let reply = read_reply(s)
        .await
        .map_err(|e| SmtpFailure::Io(format!("after {command}: {e}")))?;
    if reply.code / 100 != ok {
        return Err(SmtpFailure::Rejected {
            command: command.to_string(),
            reply,
        });
    }
    Ok(reply)
}

/// Delivers `raw` over plain SMTP: EHLO, MAIL FROM, one RCPT TO per recipient (stopping at the
/// first refusal), DATA with dot-stuffing, QUIT. An empty `from` is the null sender `<>`.
pub(super) async fn smtp_deliver(
    port: u16,
    from: &str,
    to: &[&str],
    raw: &[u8],
) -> Result<(), SmtpFailure> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| SmtpFailure::Io(format!("connecting to 127.0.0.1:{port}: {e}")))?;
    let mut s = BufReader::new(tcp);
    let greeting = read_reply(&mut s)
        .await
        .map_err(|e| SmtpFailure::Io(format!("reading the greeting: {e}")))?;
    if greeting.code != 220 {
        return Err(SmtpFailure::Rejected {
            command: "(greeting)".into(),
            reply: greeting,
        });
    }
    let result = converse(&mut s, from, to, raw).await;
    if !matches!(result, Err(SmtpFailure::Io(_))) {
        let _ = exchange(&mut s, "QUIT", 2).await;
    }
    result
}

async fn converse(
    s: &mut BufReader<TcpStream>,
    from: &str,
    to: &[&str],
    raw: &[u8],
) -> Result<(), SmtpFailure> {
    exchange(s, "EHLO agency.devstack.invalid", 2).await?;
    exchange(s, &format!("MAIL FROM:<{from}>"), 2).await?;
    for rcpt in to {
        exchange(s, &format!("RCPT TO:<{rcpt}>"), 2).await?;
    }
    exchange(s, "DATA", 3).await?;
    s.get_mut()
        .write_all(&dot_stuff(raw))
        .await
        .map_err(|e| SmtpFailure::Io(format!("sending the message: {e}")))?;
    let reply = read_reply(s)
        .await
        .map_err(|e| SmtpFailure::Io(format!("after the message data: {e}")))?;
    if reply.code / 100 != 2 {
        return Err(SmtpFailure::Rejected {
            command: "end of DATA".into(),
            reply,
        });
    }
    Ok(())
}

/// The message as SMTP DATA: CRLF line ends, leading dots doubled, ended by `.` CRLF.
pub(super) fn dot_stuff(raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len() + 64);
    let mut at_line_start = true;
    let mut i = 0;
    while i < raw.len() {
        let b = raw[i];
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        match b {
            b'\r' if raw.get(i + 1) == Some(&b'\n') => {
                out.extend_from_slice(b"\r\n");
                i += 1;
                at_line_start = true;
            }
            b'\n' | b'\r' => {
                out.extend_from_slice(b"\r\n");
                at_line_start = true;
            }
            _ => {
                out.push(b);
                at_line_start = false;
            }
        }
        i += 1;
    }
    if !at_line_start {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
    out
}

/// A logged-in IMAP session over plain TCP (loopback only).
pub(super) type ImapSession = async_imap::Session<TcpStream>;

/// Connects to the plain IMAP port, reads the greeting and logs in.
pub(super) async fn imap_login(
    port: u16,
    user: &str,
    password: &str,
) -> Result<ImapSession, String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connecting to 127.0.0.1:{port}: {e}"))?;
    // APPEND waits for the server's `+` before the literal: without NODELAY each message waits
    // out a delayed ACK (40 ms), and a thousand-message mailbox takes ten seconds to build.
    tcp.set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY on 127.0.0.1:{port}: {e}"))?;
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .map_err(|e| format!("reading the greeting: {e}"))?
        .ok_or("the server closed the connection before its greeting")?;
    client
        .login(user, password)
        .await
        .map_err(|(e, _)| format!("LOGIN: {e}"))
}

/// `APPEND INBOX (\Seen)? "dd-Mon-yyyy hh:mm:ss +zzzz" {n}`.
pub(super) async fn imap_append(
    session: &mut ImapSession,
    raw: &[u8],
    internal_date: chrono::DateTime<chrono::FixedOffset>,
) -> Result<(), String> {
    let date = format!("\"{}\"", internal_date.format("%d-%b-%Y %H:%M:%S %z"));
    session
        .append("INBOX", None, Some(&date), raw)
        .await
        .map_err(|e| format!("APPEND: {e}"))
}

/// Every message in INBOX (EXAMINE, so nothing is changed), sorted by UID.
pub(super) async fn imap_fetch_all(
    session: &mut ImapSession,
) -> Result<Vec<super::Fetched>, String> {
    let mailbox = session
        .examine("INBOX")
        .await
        .map_err(|e| format!("EXAMINE INBOX: {e}"))?;
    if mailbox.exists == 0 {
        return Ok(Vec::new());
    }
    let fetches: Vec<_> = session
        .uid_fetch("1:*", "(UID INTERNALDATE BODY.PEEK[])")
        .await
        .map_err(|e| format!("UID FETCH: {e}"))?
        .try_collect()
        .await
        .map_err(|e| format!("UID FETCH: {e}"))?;
    let mut out: Vec<super::Fetched> = fetches
        .iter()
        .filter_map(|f| {
            Some(super::Fetched {
                uid: f.uid?,
                internal_date: f.internal_date(),
                raw: f.body().unwrap_or_default().to_vec(),
            })
        })
        .collect();
    out.sort_by_key(|f| f.uid);
    Ok(out)
}

/// Every message in `folder` with its flags (EXAMINE: nothing changes).
pub(super) async fn imap_fetch_folder(
    session: &mut ImapSession,
    folder: &str,
) -> Result<Vec<(super::Fetched, Vec<String>)>, String> {
    let mailbox = session
        .examine(folder)
        .await
        .map_err(|e| format!("EXAMINE {folder}: {e}"))?;
    if mailbox.exists == 0 {
        return Ok(Vec::new());
    }
    let fetches: Vec<_> = session
        .uid_fetch("1:*", "(UID FLAGS INTERNALDATE BODY.PEEK[])")
        .await
        .map_err(|e| format!("UID FETCH: {e}"))?
        .try_collect()
        .await
        .map_err(|e| format!("UID FETCH: {e}"))?;
    let mut out: Vec<_> = fetches
        .iter()
        .filter_map(|f| {
            let flags = f.flags().map(|fl| format!("{fl:?}")).collect();
            Some((
                super::Fetched {
                    uid: f.uid?,
                    internal_date: f.internal_date(),
                    raw: f.body().unwrap_or_default().to_vec(),
                },
                flags,
            ))
        })
        .collect();
    out.sort_by_key(|(f, _)| f.uid);
    Ok(out)
}

/// Probe: a TCP connect that yields an SMTP/LMTP `220` greeting (then QUIT).
pub(super) async fn probe_smtp_tcp(port: u16) -> Result<(), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    probe_smtp_greeting(tcp).await
}

/// Probe: a TCP connect that yields an SMTP `220` greeting over implicit TLS for "localhost".
pub(super) async fn probe_smtp_tls(port: u16, tls: Arc<ClientConfig>) -> Result<(), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    probe_smtp_greeting(tls_to_localhost(tls, tcp).await?).await
}

/// TLS on `tcp`, the server's certificate checked for "localhost" (the stack's own name).
async fn tls_to_localhost(
    config: Arc<ClientConfig>,
    tcp: TcpStream,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("valid name");
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// Probe: a unix socket that yields an LMTP `220` greeting (then QUIT).
pub(super) async fn probe_lmtp_unix(path: &Path) -> Result<(), String> {
    let s = UnixStream::connect(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    probe_smtp_greeting(s).await
}

async fn probe_smtp_greeting<S: AsyncRead + AsyncWrite + Unpin>(s: S) -> Result<(), String> {
    let mut s = BufReader::new(s);
    let reply = read_reply(&mut s).await?;
    if reply.code != 220 {
        return Err(format!("greeting {reply}"));
    }
    let _ = s.get_mut().write_all(b"QUIT\r\n").await;
    Ok(())
}

/// Probe: a unix socket that accepts a connection.
pub(super) async fn probe_unix(path: &Path) -> Result<(), String> {
    UnixStream::connect(path)
        .await
        .map(drop)
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Probe: an IMAP `* OK` greeting, over plain TCP or (with `tls`) implicit TLS for "localhost".
pub(super) async fn probe_imap(port: u16, tls: Option<Arc<ClientConfig>>) -> Result<(), String> {
    let tcp = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let line = match tls {
        None => first_line(tcp).await?,
        Some(config) => first_line(tls_to_localhost(config, tcp).await?).await?,
    };
    if line.starts_with("* OK") {
        Ok(())
    } else {
        Err(format!("unexpected greeting {line:?}"))
    }
}

async fn first_line<S: AsyncRead + Unpin>(s: S) -> Result<String, String> {
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .await
        .map_err(|e| e.to_string())?;
    Ok(line.trim_end().to_string())
}

/// Runs `fut` with a time limit, turning expiry into an error string.
pub(super) async fn limit<T>(
    what: &str,
    d: Duration,
    fut: impl Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(d, fut)
        .await
        .unwrap_or_else(|_| Err(format!("{what}: no answer within {d:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_stuffing_doubles_leading_dots_and_normalises_line_ends() {
        assert_eq!(dot_stuff(b"a\n.b\r\n..c"), b"a\r\n..b\r\n...c\r\n.\r\n");
        assert_eq!(dot_stuff(b"x\r\n"), b"x\r\n.\r\n");
        assert_eq!(dot_stuff(b""), b".\r\n");
    }
}
