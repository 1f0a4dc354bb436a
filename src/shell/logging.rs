//! Logging: what may reach the log, whatever `RUST_LOG` says.
//!
//! Owns the tracing subscriber the binary installs (stderr; `RUST_LOG` to tune, `caseclerk=info`
//! when unset; the line [`Style`] — a terminal's, plain, journald's with syslog priorities and no
//! second timestamp, or JSON) and the one rule no `RUST_LOG` can change: the libraries that see the wire are
//! capped at [`LIBRARY_CAP`]. At `debug` lettre writes every SMTP line it sends — `AUTH PLAIN`
//! with the base64 of the password, `RCPT TO` with every recipient, and the whole letter between
//! `DATA` and `.` (a referral with a child's name); async-imap and imap-proto trace every IMAP
//! line (whole messages as they are fetched); rustls, tokio-rustls, sqlx and any HTTP client
//! log below `warn` what nobody needs in production. The web workspace's server stack (hyper,
//! axum, tower) is capped too: built as it is (axum without its `tracing` feature, hyper without
//! its unstable one) it writes nothing, but axum with `tracing` traces every rejected request
//! (a form that did not parse, with its reason) — the cap keeps that out should a feature ever
//! be switched on. Their warnings and errors still show.
//!
//! How the cap holds: `RUST_LOG` becomes an `EnvFilter`, and a second, independent filter (a
//! [`Targets`] list: [`CAPPED`] at `warn`, everything else let through) is layered beside it, so an
//! event is written only when **both** let it through. Appending `lettre=warn` to the `EnvFilter`
//! itself would not be enough: `EnvFilter` tries the *most specific* directive first (longest
//! target, then span and field filters), and only a directive of exactly the same target and
//! specificity replaces an earlier one — so `RUST_LOG=lettre::transport::smtp=trace` or
//! `RUST_LOG=lettre[send]=trace` would win over an appended `lettre=warn`. A separate filter
//! cannot be outranked.
//!
//! async-imap and rustls write through the `log` crate; no `log` bridge is installed, so those
//! lines are dropped before they reach this filter at all. They are capped here as well, so
//! adding a bridge later cannot open them.
//!
//! It also owns what a panic writes ([`withhold_panic_messages`]): Rust's default hook prints the
//! panic's message to stderr — the journal — even for a panic the mail and form parsers catch,
//! and a library's message can quote the text it was reading (a slice out of bounds quotes up to
//! 256 characters of it). The binary's hook logs where the panic happened, never what it said.
//!
//! Must not: be bypassed — the binary installs exactly [`subscriber`]; no other module installs a
//! subscriber or writes to stderr for logging.

use tracing::Level;
use tracing::Subscriber;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, Writer, format};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::layer::{Layered, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The most a wire-level library may log.
pub const LIBRARY_CAP: Level = Level::WARN;

/// Targets (crate names as tracing sees them, matched as prefixes of the event's target) whose
/// output is capped at [`LIBRARY_CAP`]: the SMTP and IMAP clients, TLS, the database, the web
/// workspace's HTTP server stack, and HTTP clients should one ever be added.
pub const CAPPED: &[&str] = &[
    "lettre",
    "async_imap",
    "imap_proto",
    "rustls",
    "tokio_rustls",
    "sqlx",
    "sqlx_core",
    "sqlx_sqlite",
    "hyper",
    "hyper_util",
    "reqwest",
    "h2",
    "axum",
    "axum_core",
    "tower",
    "tower_http",
];

/// The filter `RUST_LOG` sets, `caseclerk=info` when it is unset or cannot be read.
fn env_filter(rust_log: Option<&str>) -> EnvFilter {
    rust_log
        .and_then(|s| EnvFilter::try_new(s).ok())
        .unwrap_or_else(|| EnvFilter::new("caseclerk=info"))
}

/// The cap: [`CAPPED`] at [`LIBRARY_CAP`], every other target let through (to the `EnvFilter`).
pub fn cap() -> Targets {
    CAPPED
        .iter()
        .fold(Targets::new().with_default(LevelFilter::TRACE), |t, c| {
            t.with_target(*c, LIBRARY_CAP)
        })
}

/// How lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A terminal: timestamps and colours.
    Terminal,
    /// A file or a pipe: timestamps, no colours.
    Plain,
    /// journald (stderr is its stream): no timestamp — journald adds its own, and two on a line
    /// are noise — and each line prefixed with its syslog priority (`<3>` error, `<4>` warning,
    /// `<6>` info, `<7>` debug and trace), which journald reads as the entry's priority.
    Journald,
    /// One JSON object per line (`--log-format json`), for a log shipper: time, level, message
    /// and fields — still ids and hashes only.
    Json,
}

impl Style {
    /// The style for this process: JSON when asked for, journald when stderr is journald's
    /// stream (`$JOURNAL_STREAM` names stderr's device and inode, as systemd documents), a
    /// terminal's, or plain.
    pub fn detect(json: bool) -> Style {
        if json {
            return Style::Json;
        }
        let stderr = std::io::stderr();
        if std::io::IsTerminal::is_terminal(&stderr) {
            return Style::Terminal;
        }
        let stream = std::env::var("JOURNAL_STREAM").ok();
        let ours = nix::sys::stat::fstat(&stderr)
            .ok()
            .map(|st| (st.st_dev, st.st_ino));
        match (stream.as_deref().and_then(journal_stream), ours) {
            (Some(named), Some(found)) if named == found => Style::Journald,
            _ => Style::Plain,
        }
    }
}

/// `$JOURNAL_STREAM`'s `device:inode`.
fn journal_stream(v: &str) -> Option<(u64, u64)> {
    let (dev, ino) = v.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// The syslog priority journald reads from a `<N>` prefix.
fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        Level::DEBUG | Level::TRACE => 7,
    }
}

/// The default line format behind a `<priority>` prefix.
struct Prioritised<F>(F);

impl<S, N, F> FormatEvent<S, N> for Prioritised<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

/// The subscriber for a `RUST_LOG` value, writing to `writer` in `style`.
pub fn subscriber<W>(
    rust_log: Option<&str>,
    writer: W,
    style: Style,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    type Boxed = Box<dyn Layer<Layered<Targets, Layered<EnvFilter, Registry>>> + Send + Sync>;
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_target(false);
    let lines: Boxed = match style {
        Style::Terminal => Box::new(fmt.with_ansi(true)),
        Style::Plain => Box::new(fmt.with_ansi(false)),
        Style::Journald => Box::new(
            fmt.with_ansi(false)
                .event_format(Prioritised(format().without_time().with_target(false))),
        ),
        Style::Json => Box::new(fmt.with_ansi(false).json().flatten_event(true)),
    };
    tracing_subscriber::registry()
        .with(env_filter(rust_log))
        .with(cap())
        .with(lines)
}

/// Install the subscriber for this process: stderr, `RUST_LOG` from the environment, JSON lines
/// when `json` (`--log-format json`).
pub fn init(json: bool) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let subscriber = subscriber(rust_log.as_deref(), std::io::stderr, Style::detect(json));
    // Only fails when a subscriber is already installed (never in the binary).
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Replace Rust's panic hook with one that logs where a panic happened (file and line) and
/// never its message, which may quote mail or a form. A caught panic (the parsers') is then a
/// line at `error` in the log; an uncaught one still ends the thread as before.
pub fn withhold_panic_messages() {
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        tracing::error!(at = %at, "a panic (its message is withheld: it may quote mail or a form)");
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// What is written under `rust_log` when lettre, async-imap and sqlx log their wire lines and
    /// caseclerk logs its own.
    fn written(rust_log: &str) -> String {
        written_as(rust_log, Style::Plain)
    }

    fn written_as(rust_log: &str, style: Style) -> String {
        let buffer = Buffer::default();
        let sub = subscriber(Some(rust_log), buffer.clone(), style);
        tracing::subscriber::with_default(sub, || {
            tracing::debug!(target: "lettre::transport::smtp::client::async_connection", "Wrote: AUTH PLAIN c2VjcmV0");
            tracing::trace!(target: "async_imap::imap_stream", "decode: input: Jane Doe");
            tracing::debug!(target: "sqlx::query", "summary");
            tracing::info!(target: "tokio_rustls", "handshake");
            tracing::trace!(target: "axum::rejection", "Failed to deserialize form body: csrf=");
            tracing::debug!(target: "hyper::proto::h1::io", "parsed Cookie: caseclerk_session");
            tracing::warn!(target: "lettre::transport::smtp::client::async_connection", "lettre warning kept");
            tracing::debug!(target: "caseclerk::shell::engine", "our own debug line");
        });
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn no_rust_log_opens_the_wire_libraries_below_warn_and_ours_still_follow_it() {
        for rust_log in [
            "trace",
            "debug",
            "lettre=trace,async_imap=trace,sqlx=trace,tokio_rustls=trace,caseclerk=debug",
            "lettre::transport::smtp::client=trace,caseclerk=debug",
            "lettre::transport::smtp::client::async_connection=trace,caseclerk=trace",
            "[{password}]=trace,trace",
            "caseclerk=debug,lettre=warn,lettre=trace",
        ] {
            let out = written(rust_log);
            for leaked in [
                "AUTH PLAIN",
                "Jane Doe",
                "summary",
                "handshake",
                "csrf=",
                "caseclerk_session",
            ] {
                assert!(
                    !out.contains(leaked),
                    "RUST_LOG={rust_log} let `{leaked}` through:\n{out}"
                );
            }
            assert!(
                out.contains("lettre warning kept"),
                "RUST_LOG={rust_log}:\n{out}"
            );
            assert!(
                out.contains("our own debug line"),
                "RUST_LOG={rust_log}:\n{out}"
            );
        }
    }

    #[test]
    fn under_journald_each_line_carries_its_priority_and_no_timestamp_of_its_own() {
        let out = written_as("warn,caseclerk=debug", Style::Journald);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines,
            [
                "<4> WARN lettre warning kept",
                "<7>DEBUG our own debug line"
            ],
            "{out}"
        );
        let plain = written_as("warn,caseclerk=debug", Style::Plain);
        assert!(
            plain.lines().all(|l| l.starts_with("20")),
            "plain lines start with their time: {plain}"
        );
    }

    #[test]
    fn json_lines_are_objects_with_level_and_message_and_the_cap_still_holds() {
        let out = written_as("trace", Style::Json);
        let objects: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        let messages: Vec<(&str, &str)> = objects
            .iter()
            .map(|o| (o["level"].as_str().unwrap(), o["message"].as_str().unwrap()))
            .collect();
        assert_eq!(
            messages,
            [
                ("WARN", "lettre warning kept"),
                ("DEBUG", "our own debug line")
            ],
            "{out}"
        );
        assert!(objects.iter().all(|o| o["timestamp"].is_string()), "{out}");
    }

    #[test]
    fn journal_stream_is_read_as_device_and_inode() {
        assert_eq!(journal_stream("8:123456"), Some((8, 123456)));
        assert_eq!(journal_stream("8"), None);
        assert_eq!(journal_stream("x:1"), None);
    }

    #[test]
    fn rust_log_still_chooses_our_own_level() {
        let out = written("caseclerk=info");
        assert!(!out.contains("our own debug line"), "{out}");
    }

    #[test]
    fn an_unreadable_rust_log_means_caseclerk_at_info() {
        let out = written("caseclerk=loud");
        assert!(!out.contains("our own debug line"), "{out}");
        assert!(!out.contains("AUTH PLAIN"), "{out}");
    }
}
