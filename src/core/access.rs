//! Who may use the web workspace, and for how long: roles, the lockout after failed sign-ins and
//! a session's life, as pure rules over instants the shell passes in.
//!
//! Owns the numbers and the decisions (is this account locked now? is this session still alive?
//! may this role change a case?) so they are tested without a server or a clock.
//!
//! Must not: read the store, the clock or a request; hash passwords (that is the shell's
//! [`crate::shell::web`]).

use chrono::{DateTime, Duration, Utc};

/// What a personal account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sees every page; changes nothing.
    ReadOnly,
    /// The business unit: sees everything and runs the operator commands.
    BusinessUnit,
}

impl Role {
    /// The stored and typed name: `read-only` or `business-unit`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::BusinessUnit => "business-unit",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "read-only" => Some(Role::ReadOnly),
            "business-unit" => Some(Role::BusinessUnit),
            _ => None,
        }
    }

    /// May this role record an operator command (attach, confirm, resend, …)?
    pub fn may_act(self) -> bool {
        self == Role::BusinessUnit
    }

    /// "read-only" / "business unit", for people.
    pub fn words(self) -> &'static str {
        match self {
            Role::ReadOnly => "read-only",
            Role::BusinessUnit => "business unit",
        }
    }
}

/// Failed sign-ins in a row that lock an account.
pub const LOCK_AFTER: u32 = 5;
/// How long a locked account stays locked.
pub const LOCK_MINUTES: i64 = 15;
/// A session not used for this long has ended.
pub const IDLE_MINUTES: i64 = 30;
/// A session ends this long after its sign-in, used or not.
pub const SESSION_HOURS: i64 = 10;

/// Is an account locked at `now`?
pub fn locked(locked_until: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    locked_until.is_some_and(|t| now < t)
}

/// After one more failed sign-in: the failures in a row, and until when the account is locked
/// (from the [`LOCK_AFTER`]th failure on, each further one locks it again from `now`).
pub fn after_failure(failures: u32, now: DateTime<Utc>) -> (u32, Option<DateTime<Utc>>) {
    let n = failures.saturating_add(1);
    let until = (n >= LOCK_AFTER).then(|| now + Duration::minutes(LOCK_MINUTES));
    (n, until)
}

/// When a session used at `last_seen`, signed in at `created`, ends: idle or absolute, whichever
/// comes first.
pub fn session_ends(created: DateTime<Utc>, last_seen: DateTime<Utc>) -> DateTime<Utc> {
    (last_seen + Duration::minutes(IDLE_MINUTES)).min(created + Duration::hours(SESSION_HOURS))
}

/// Is a session alive at `now`?
pub fn session_alive(created: DateTime<Utc>, last_seen: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    now < session_ends(created, last_seen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn an_account_locks_on_the_fifth_failure_in_a_row_for_fifteen_minutes() {
        let now = t("2026-11-26T09:00:00Z");
        assert_eq!(after_failure(3, now), (4, None));
        let (n, until) = after_failure(4, now);
        assert_eq!(n, 5);
        assert_eq!(until, Some(t("2026-11-26T09:15:00Z")));
        assert!(locked(until, t("2026-11-26T09:14:59Z")));
        assert!(!locked(until, t("2026-11-26T09:15:00Z")));
    }

    #[test]
    fn a_session_ends_after_thirty_idle_minutes_or_ten_hours_whatever_its_use() {
        let signed_in = t("2026-11-26T08:00:00Z");
        assert!(session_alive(
            signed_in,
            signed_in,
            t("2026-11-26T08:29:59Z")
        ));
        assert!(!session_alive(
            signed_in,
            signed_in,
            t("2026-11-26T08:30:00Z")
        ));
        let busy = t("2026-11-26T17:55:00Z");
        assert!(!session_alive(signed_in, busy, t("2026-11-26T18:00:00Z")));
    }

    #[test]
    fn only_the_business_unit_may_change_a_case() {
        assert!(Role::BusinessUnit.may_act());
        assert!(!Role::ReadOnly.may_act());
        assert_eq!(Role::parse("read-only"), Some(Role::ReadOnly));
        assert_eq!(Role::parse("admin"), None);
    }
}
