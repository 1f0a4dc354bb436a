//! `caseclerk bench --letters N`: how fast letters are handed to a local Postfix.
//!
//! Owns one measurement, against its own throwaway local mail stack: N letters (an
//! acknowledgement-sized letter, ~2 KB) handed over one after another, as a send pass does, by
//! two clients with the same login, on the STARTTLS submission port and then on the
//! implicit-TLS one (`tls = "implicit"`, 465 in real life):
//! - the **reference**, lettre's own SMTP transport as the library comes (its pooled connection,
//!   its own socket: Nagle's algorithm on, and a letter's final `.` written apart from its
//!   bytes, so each letter waits for the server's delayed acknowledgement);
//! - **caseclerk's** outbox client ([`crate::shell::outbox::smtp`]: lettre's conversation on a
//!   `TCP_NODELAY` socket of our own, TLS started on it by us for implicit TLS, one connection
//!   for the pass).
//!
//! Each client's letters are counted in the recipient's mailbox before its figure is taken as
//! done (a letter Postfix took but never delivered would not count). Letters per second and the
//! median hand-over (one letter's `send`, from its first command to the server's `250`) are
//! printed, and a pass's first letter: the median of [`FIRST_LETTERS`] fresh clients' one letter
//! each, the connection's set-up (TCP, STARTTLS, AUTH) included. The numbers go in the README,
//! no test asserts on them.
//!
//! Must not: touch any mailbox but its own throwaway stack, or keep anything afterwards.

use crate::dev::bench::BenchError;
use crate::dev::membench::start_stack;
use crate::shell::config::{self, Needs};
use crate::shell::outbox::{self, Transport};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One client's figures.
#[derive(Debug, Clone)]
pub struct Sent {
    pub client: &'static str,
    /// `STARTTLS` or `implicit TLS`.
    pub tls: &'static str,
    pub letters: usize,
    pub took: Duration,
    pub median_hand_over: Duration,
    /// A pass's first letter, connecting included (the median of [`FIRST_LETTERS`] clients).
    pub first_letter: Duration,
}

/// How many fresh clients each send one letter for the first-letter figure.
pub const FIRST_LETTERS: usize = 5;

impl Sent {
    pub fn per_second(&self) -> f64 {
        self.letters as f64 / self.took.as_secs_f64().max(1e-9)
    }
}

/// What the measurement found: the reference first.
#[derive(Debug, Clone)]
pub struct SendReport {
    pub letter_bytes: usize,
    pub clients: Vec<Sent>,
}

impl SendReport {
    /// The report as the README shows it.
    pub fn render(&self) -> String {
        let mut out = format!(
            "letters of {} bytes handed one after another to the local Postfix (AUTH)\n",
            self.letter_bytes
        );
        for s in &self.clients {
            out.push_str(&format!(
                "  {:<12} {:<58} {:>4} letters in {:>6.2} s  {:>7.1} letters/s  median hand-over \
                 {:>5.1} ms  a pass's first letter {:>5.1} ms\n",
                s.tls,
                s.client,
                s.letters,
                s.took.as_secs_f64(),
                s.per_second(),
                s.median_hand_over.as_secs_f64() * 1e3,
                s.first_letter.as_secs_f64() * 1e3,
            ));
        }
        out
    }
}

/// The middle of `times` (of an even number, the upper middle: the slower of the two).
fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

/// A letter of about 2 KB from the shared mailbox to `to`, numbered `i`.
fn letter(from: &str, to: &str, i: usize) -> Vec<u8> {
    let body = "Thank you for your referral. It has been received and recorded, and the \
                partnership will write to you again once the screening decision is taken.\r\n"
        .repeat(12);
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Letter {i} of the send benchmark\r\n\
         Message-ID: <sendbench.{i}.{}@caseclerk.test>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\n{body}",
        std::process::id()
    )
    .into_bytes()
}

/// Hand `letters` to the stack through `client`, one after another, timing each hand-over.
async fn send_all(
    name: &'static str,
    client: &dyn Transport,
    letters: &[(lettre::address::Envelope, Vec<u8>)],
) -> Result<Sent, BenchError> {
    let mut hand_overs = Vec::with_capacity(letters.len());
    let started = Instant::now();
    for (envelope, raw) in letters {
        let one = Instant::now();
        client
            .send(envelope, raw)
            .await
            .map_err(|e| BenchError::Other(format!("{name}: {}", e.detail)))?;
        hand_overs.push(one.elapsed());
    }
    Ok(Sent {
        client: name,
        tls: "",
        letters: letters.len(),
        took: started.elapsed(),
        median_hand_over: median(hand_overs),
        first_letter: Duration::ZERO,
    })
}

/// Run the measurement with `n` letters per client.
pub async fn run(config: PathBuf, n: usize) -> Result<SendReport, BenchError> {
    crate::dev::devstack::MailStack::check_installed()?;
    let (stack, bench_config) = start_stack(&config, &[]).await?;
    let result = measure(&stack, &bench_config, n).await;
    let _ = stack.stop().await;
    result
}

async fn measure(
    stack: &crate::dev::devstack::MailStack,
    config: &std::path::Path,
    n: usize,
) -> Result<SendReport, BenchError> {
    let other = |e: String| BenchError::Other(e);
    let cfg = config::load(config, Needs::Everything).map_err(|e| other(e.to_string()))?;
    let from = cfg.smtp.username.clone();
    let to = crate::dev::demo::DEMO_REFERRER;
    let envelope = lettre::address::Envelope::new(
        Some(from.parse().map_err(|e| other(format!("{from}: {e}")))?),
        vec![to.parse().map_err(|e| other(format!("{to}: {e}")))?],
    )
    .map_err(|e| other(e.to_string()))?;
    let mut report = SendReport {
        letter_bytes: letter(&from, to, 0).len(),
        clients: Vec::new(),
    };
    let implicit = config::SmtpSettings {
        port: stack.ports.submissions,
        tls: config::TlsMode::Implicit,
        ..cfg.smtp.clone()
    };
    let (mut numbered, mut delivered) = (0, 0);
    for (tls, smtp) in [("STARTTLS", &cfg.smtp), ("implicit TLS", &implicit)] {
        let fresh = |ours: bool| -> Result<Box<dyn Transport>, BenchError> {
            if ours {
                outbox::smtp(smtp).map_err(|e| other(e.to_string()))
            } else {
                Ok(Box::new(
                    outbox::transport(smtp).map_err(|e| other(e.to_string()))?,
                ))
            }
        };
        let (reference, ours) = (fresh(false)?, fresh(true)?);
        let clients: [(&'static str, &dyn Transport, bool); 2] = [
            (
                "lettre's own transport (reference: its socket, Nagle on)",
                reference.as_ref(),
                false,
            ),
            (
                "caseclerk's outbox client (TCP_NODELAY)",
                ours.as_ref(),
                true,
            ),
        ];
        for (name, client, is_ours) in clients {
            // Every letter of the run numbered apart (its Message-ID).
            let mut next_letter = || {
                numbered += 1;
                (envelope.clone(), letter(&from, to, numbered))
            };
            let letters: Vec<_> = (0..n).map(|_| next_letter()).collect();
            let mut sent = send_all(name, client, &letters).await?;
            sent.tls = tls;
            // A pass's first letter: a fresh client each time, its connection set up by the
            // letter.
            let mut firsts = Vec::with_capacity(FIRST_LETTERS);
            for _ in 0..FIRST_LETTERS {
                let one = vec![next_letter()];
                firsts.push(send_all(name, fresh(is_ours)?.as_ref(), &one).await?.took);
            }
            sent.first_letter = median(firsts);
            report.clients.push(sent);
            // Taken by Postfix is not enough: every letter must reach the mailbox.
            delivered += n + FIRST_LETTERS;
            stack
                .wait_for(to, delivered, Duration::from_secs(120))
                .await
                .map_err(|e| other(e.to_string()))?;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_hand_over_is_the_middle_one_and_of_an_even_number_the_slower_middle() {
        let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect();
        assert_eq!(median(ms(&[40, 7, 9])), Duration::from_millis(9));
        assert_eq!(median(ms(&[40, 7, 9, 8])), Duration::from_millis(9));
        assert_eq!(median(Vec::new()), Duration::ZERO);
    }

    #[test]
    fn a_client_s_rate_is_its_letters_over_its_time() {
        let s = Sent {
            client: "x",
            tls: "STARTTLS",
            letters: 50,
            took: Duration::from_millis(2500),
            median_hand_over: Duration::ZERO,
            first_letter: Duration::from_micros(4_500),
        };
        assert!((s.per_second() - 20.0).abs() < 1e-9);
        let report = SendReport {
            letter_bytes: 2000,
            clients: vec![s],
        };
        assert!(
            report.render().contains("a pass's first letter   4.5 ms"),
            "{}",
            report.render()
        );
        assert!(
            report.render().contains("20.0 letters/s"),
            "{}",
            report.render()
        );
    }
}
