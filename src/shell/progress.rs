//! Progress of a long pass (a first run over a full mailbox) on a person's terminal.
//!
//! Owns one line on stderr — "reading the mailbox: 340/1200 messages (850/s)" — redrawn in place at
//! most five times a second and finished with a newline. It is shown only when stderr is a terminal
//! ([`std::io::IsTerminal`]); under systemd, in a pipe or in a test it is silent, so it never
//! reaches a log. It carries counts and rates only.
//!
//! Must not: write anything but counts, or write through `tracing` (a progress line is not a log).

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the line is redrawn at most.
const EVERY: Duration = Duration::from_millis(200);

/// A progress line, or nothing. Cheap to clone; clones draw the same line.
#[derive(Clone, Default)]
pub struct Progress {
    line: Option<Arc<Mutex<Line>>>,
}

struct Line {
    what: &'static str,
    started: Instant,
    drawn: Option<Instant>,
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.line.is_some() {
            "Progress(terminal)"
        } else {
            "Progress(off)"
        })
    }
}

impl Progress {
    /// Draws nothing.
    pub fn off() -> Progress {
        Progress::default()
    }

    /// Draws on stderr when it is a terminal, else nothing.
    pub fn on_terminal() -> Progress {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            Progress {
                line: Some(Arc::new(Mutex::new(Line {
                    what: "",
                    started: Instant::now(),
                    drawn: None,
                }))),
            }
        } else {
            Progress::off()
        }
    }

    /// `done` of `total` messages of the stage `what` ("reading the mailbox", "deciding").
    pub fn update(&self, what: &'static str, done: usize, total: usize) {
        let Some(line) = &self.line else { return };
        let Ok(mut l) = line.lock() else { return };
        let now = Instant::now();
        if l.what != what {
            *l = Line {
                what,
                started: now,
                drawn: None,
            };
        }
        let last = done >= total;
        if !last && l.drawn.is_some_and(|d| now - d < EVERY) {
            return;
        }
        l.drawn = Some(now);
        let text = progress_line(what, done, total, now - l.started);
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{text}\x1b[K{}", if last { "\n" } else { "" });
        let _ = err.flush();
    }
}

/// The text of a progress line: what, done / total, and the rate so far.
pub fn progress_line(what: &str, done: usize, total: usize, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        format!("{:.0}/s", done as f64 / secs)
    } else {
        "…/s".into()
    };
    format!("{what}: {done}/{total} messages ({rate})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_says_what_how_many_of_how_many_and_the_rate() {
        assert_eq!(
            progress_line("deciding", 340, 1200, Duration::from_millis(400)),
            "deciding: 340/1200 messages (850/s)"
        );
        assert_eq!(
            progress_line("reading the mailbox", 0, 10, Duration::ZERO),
            "reading the mailbox: 0/10 messages (…/s)"
        );
    }

    #[test]
    fn progress_that_is_off_draws_nothing_and_says_so() {
        let p = Progress::off();
        p.update("deciding", 1, 2);
        assert_eq!(format!("{p:?}"), "Progress(off)");
    }
}
