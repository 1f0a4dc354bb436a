//! Logging: what may reach the log, whatever `RUST_LOG` says.
//!
//! Owns the tracing subscriber the binary installs (stderr; `RUST_LOG` to tune, `caseclerk=info`
//! when unset) and the one rule no `RUST_LOG` can change: the libraries that see the wire are
//! capped at [`LIBRARY_CAP`]. At `debug` lettre writes every SMTP line it sends — `AUTH PLAIN`
//! with the base64 of the password, `RCPT TO` with every recipient, and the whole letter between
//! `DATA` and `.` (a referral with a child's name); async-imap and imap-proto trace every IMAP
//! line (whole messages as they are fetched); rustls, tokio-rustls, sqlx and any HTTP client
//! log below `warn` what nobody needs in production. Their warnings and errors still show.
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
//! Must not: be bypassed — the binary installs exactly [`subscriber`]; no other module installs a
//! subscriber or writes to stderr for logging.

use tracing::Level;
use tracing::Subscriber;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// The most a wire-level library may log.
pub const LIBRARY_CAP: Level = Level::WARN;

/// Targets (crate names as tracing sees them, matched as prefixes of the event's target) whose
/// output is capped at [`LIBRARY_CAP`]: the SMTP and IMAP clients, TLS, the database, and HTTP
/// clients should one ever be added.
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

/// The subscriber for a `RUST_LOG` value, writing to `writer`.
pub fn subscriber<W>(rust_log: Option<&str>, writer: W, ansi: bool) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    tracing_subscriber::registry()
        .with(env_filter(rust_log))
        .with(cap())
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(writer)
                .with_ansi(ansi)
                .with_target(false),
        )
}

/// Install the subscriber for this process: stderr, `RUST_LOG` from the environment.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").ok();
    let subscriber = subscriber(
        rust_log.as_deref(),
        std::io::stderr,
        std::io::IsTerminal::is_terminal(&std::io::stderr()),
    );
    // Only fails when a subscriber is already installed (never in the binary).
    let _ = tracing::subscriber::set_global_default(subscriber);
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
        let buffer = Buffer::default();
        let sub = subscriber(Some(rust_log), buffer.clone(), false);
        tracing::subscriber::with_default(sub, || {
            tracing::debug!(target: "lettre::transport::smtp::client::async_connection", "Wrote: AUTH PLAIN c2VjcmV0");
            tracing::trace!(target: "async_imap::imap_stream", "decode: input: Jane Doe");
            tracing::debug!(target: "sqlx::query", "summary");
            tracing::info!(target: "tokio_rustls", "handshake");
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
            for leaked in ["AUTH PLAIN", "Jane Doe", "summary", "handshake"] {
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
