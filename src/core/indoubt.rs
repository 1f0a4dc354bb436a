//! A letter in doubt: what to do with a letter whose intent was recorded but whose outcome never
//! was (the daemon died between handing it to the server and recording the answer).
//!
//! Owns one decision, [`decide`]: the letter's intent, the instant now, how the mailbox keeps sent
//! letters ([`CopyPolicy`]) and — once asked for — what a look in the sent folder found
//! ([`Lookup`]) → [`Doubt`]: wait, look, record it sent (the server's copy proves it was
//! accepted), or send it again.
//!
//! Why the server's copy settles it: when the mail server itself files what is submitted through
//! it (Exchange Online keeps a copy of what a mailbox sends by SMTP AUTH client submission in its
//! Sent Items; the local stack's Postfix adds a copy for the shared mailbox's sent folder to the
//! queue file before it answers `250`), "accepted" implies "a copy will appear in the sent
//! folder". So once the copy has had time to arrive (the grace), a copy found means the letter
//! went (record it, do not send it again), and none found means it did not (send it). Without
//! such a copy (caseclerk files the copy itself, after the `250`, or nothing is filed) its
//! absence proves nothing, and the letter is sent again at once, as before.
//!
//! If the folder cannot be searched (the IMAP server is down), the letter waits — a possible
//! duplicate of a statutory letter about a child is a worse failure for the business unit than
//! the same letter an hour late, when its deadlines are counted in working days — but at most
//! [`CopyPolicy::give_up_looking`] after its intent; then it is sent again (a late letter must
//! not become a lost one).
//!
//! Must not: read anything itself, or know what a letter says.

use chrono::{DateTime, Duration, Utc};

/// How the mailbox keeps sent letters, as far as a letter in doubt is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyPolicy {
    /// No copy caseclerk can trust to settle the doubt (caseclerk files its own copy after the
    /// `250`, or none is filed): a letter in doubt is sent again at once.
    NoServerCopy,
    /// The server files a copy of every letter it accepts.
    ServerCopy {
        /// How long after the intent the copy is surely there if the server accepted the letter.
        grace: Duration,
        /// How long after the intent a folder that cannot be searched stops holding the letter.
        give_up_looking: Duration,
    },
}

impl CopyPolicy {
    /// A server copy with the default bound on waiting for an unsearchable folder.
    pub fn server_copy(grace: Duration) -> CopyPolicy {
        CopyPolicy::ServerCopy {
            grace,
            give_up_looking: GIVE_UP_LOOKING_AFTER.max(grace),
        }
    }
}

/// How long a letter in doubt waits for a sent folder that cannot be searched (from its intent).
pub const GIVE_UP_LOOKING_AFTER: Duration = Duration::hours(1);

/// What a look in the sent folder for the letter's Message-ID found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found,
    Absent,
    /// The folder could not be searched (server down, login refused, folder missing).
    Failed,
}

/// What to do with a letter in doubt now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doubt {
    /// Not yet: leave it pending and come back at this instant.
    WaitUntil(DateTime<Utc>),
    /// Look its Message-ID up in the sent folder, then decide again with what was found.
    LookUp,
    /// The server's copy is there: the letter was accepted. Record it sent; do not send it.
    RecordSent,
    /// Send it again (same Message-ID), counted in doubt.
    Resend,
}

/// The decision for a letter whose intent was recorded at `intent` and never followed by an
/// outcome, at `now`; `lookup` is what the sent folder showed (None: not looked yet).
pub fn decide(
    policy: CopyPolicy,
    intent: DateTime<Utc>,
    now: DateTime<Utc>,
    lookup: Option<Lookup>,
) -> Doubt {
    let CopyPolicy::ServerCopy {
        grace,
        give_up_looking,
    } = policy
    else {
        return Doubt::Resend;
    };
    let age = now - intent;
    if age < grace {
        return Doubt::WaitUntil(intent + grace);
    }
    match lookup {
        None => Doubt::LookUp,
        Some(Lookup::Found) => Doubt::RecordSent,
        Some(Lookup::Absent) => Doubt::Resend,
        Some(Lookup::Failed) if age >= give_up_looking => Doubt::Resend,
        // Try again at the next look-up interval, but never past the bound.
        Some(Lookup::Failed) => {
            Doubt::WaitUntil((now + LOOK_AGAIN_AFTER).min(intent + give_up_looking))
        }
    }
}

/// How soon a failed look in the sent folder is tried again.
pub const LOOK_AGAIN_AFTER: Duration = Duration::minutes(1);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 10, m, s).unwrap()
    }

    fn server() -> CopyPolicy {
        CopyPolicy::server_copy(Duration::minutes(2))
    }

    #[test]
    fn without_a_server_copy_a_letter_in_doubt_is_sent_again_at_once() {
        let d = decide(CopyPolicy::NoServerCopy, at(0, 0), at(0, 1), None);
        assert_eq!(d, Doubt::Resend);
    }

    #[test]
    fn with_a_server_copy_a_letter_in_doubt_waits_out_the_grace_before_anything_is_done() {
        assert_eq!(
            decide(server(), at(0, 0), at(1, 59), None),
            Doubt::WaitUntil(at(2, 0))
        );
        // A look that somehow happened early changes nothing: the copy may still be on its way.
        assert_eq!(
            decide(server(), at(0, 0), at(1, 0), Some(Lookup::Absent)),
            Doubt::WaitUntil(at(2, 0))
        );
    }

    #[test]
    fn after_the_grace_the_sent_folder_is_looked_at() {
        assert_eq!(decide(server(), at(0, 0), at(2, 0), None), Doubt::LookUp);
    }

    #[test]
    fn a_copy_in_the_sent_folder_means_the_letter_went_and_is_not_sent_again() {
        assert_eq!(
            decide(server(), at(0, 0), at(3, 0), Some(Lookup::Found)),
            Doubt::RecordSent
        );
    }

    #[test]
    fn no_copy_after_the_grace_means_the_server_never_took_it_and_it_is_sent() {
        assert_eq!(
            decide(server(), at(0, 0), at(3, 0), Some(Lookup::Absent)),
            Doubt::Resend
        );
    }

    #[test]
    fn a_sent_folder_that_cannot_be_searched_holds_the_letter_for_an_hour_at_most() {
        assert_eq!(
            decide(server(), at(0, 0), at(3, 0), Some(Lookup::Failed)),
            Doubt::WaitUntil(at(4, 0)),
            "looked at again a minute later"
        );
        assert_eq!(
            decide(server(), at(0, 0), at(59, 30), Some(Lookup::Failed)),
            Doubt::WaitUntil(Utc.with_ymd_and_hms(2026, 11, 26, 11, 0, 0).unwrap()),
            "never waits past the bound"
        );
        let an_hour_on = at(0, 0) + Duration::hours(1);
        assert_eq!(
            decide(server(), at(0, 0), an_hour_on, Some(Lookup::Failed)),
            Doubt::Resend,
            "a late letter must not become a lost one"
        );
    }

    #[test]
    fn a_grace_longer_than_the_bound_raises_the_bound() {
        let long = CopyPolicy::server_copy(Duration::hours(2));
        assert_eq!(
            decide(
                long,
                at(0, 0),
                at(0, 0) + Duration::hours(2),
                Some(Lookup::Failed)
            ),
            Doubt::Resend
        );
    }
}
