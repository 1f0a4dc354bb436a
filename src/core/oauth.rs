//! OAuth2 app-only login (Microsoft 365), the decisions: what a token endpoint's refusal means
//! and what a person must do about it, when a token is renewed, when an IMAP session must end,
//! the XOAUTH2 string, and when a credential's expiry is warned about.
//!
//! The shell ([`crate::shell::oauth`]) moves the bytes; every "what does this mean" is here, as a
//! pure function with its own tests.
//!
//! Must not: do I/O, read the clock (times are passed in), or hold a secret longer than a call.

use chrono::{DateTime, NaiveDate, Utc};

/// Which part of the set-up a refusal points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Culprit {
    /// The tenant id (directory id) is wrong.
    Tenant,
    /// The application (client) id is wrong, or the app is not in that tenant.
    Client,
    /// The client secret is wrong or has expired.
    Secret,
    /// The certificate (or its private key) is not the one registered, or has expired.
    Certificate,
    /// The app has no permission on the mailbox (API permission, admin consent, service
    /// principal, Add-MailboxPermission, SMTP AUTH for the mailbox).
    Permission,
    /// caseclerk's request itself (the scope, a parameter): a configuration or program fault.
    Request,
    /// Microsoft's side, or the network: try again later.
    Service,
}

/// A refusal explained: which part is wrong and what to do. `retry` says whether trying again
/// later may help without a person changing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub culprit: Culprit,
    pub advice: &'static str,
    pub retry: bool,
}

/// What a token endpoint refusal means, from the HTTP status, the OAuth `error` field and the
/// first `AADSTS` code (`error_codes[0]`, when the body had one). Branches on codes and the error
/// field, never on the description's text.
pub fn diagnose(status: u16, error: &str, code: Option<u64>) -> Diagnosis {
    let d = |culprit, advice, retry| Diagnosis {
        culprit,
        advice,
        retry,
    };
    match code {
        Some(7000215) => d(
            Culprit::Secret,
            "the client secret is wrong: put the secret's Value (not its Secret ID) from Entra ID > App registrations > Certificates & secrets in the file named by [oauth2] client_secret_file",
            false,
        ),
        Some(7000222) => d(
            Culprit::Secret,
            "the client secret has expired: add a new secret to the app registration and write its Value to [oauth2] client_secret_file (and update secret_expires)",
            false,
        ),
        Some(7000218) => d(
            Culprit::Secret,
            "no client secret or certificate was accepted: set client_secret_file/client_secret_env or certificate_file + private_key_file in [oauth2]",
            false,
        ),
        Some(700024) => d(
            Culprit::Certificate,
            "the certificate assertion is outside its valid time: this machine's clock is wrong \
             (check `timedatectl`: NTP synchronised, the right time zone), or the certificate is \
             not yet valid",
            false,
        ),
        Some(700027 | 5002723) => d(
            Culprit::Certificate,
            "the certificate assertion was refused: upload this certificate (certificate_file) to the app registration's Certificates & secrets, check private_key_file is its key, and that it has not expired",
            false,
        ),
        Some(700016) => d(
            Culprit::Client,
            "no application with this client_id in this tenant: copy the Application (client) ID from the app registration's Overview page into [oauth2] client_id",
            false,
        ),
        Some(90002 | 90023 | 900023) => d(
            Culprit::Tenant,
            "the tenant was not found: copy the Directory (tenant) ID from the app registration's Overview page into [oauth2] tenant",
            false,
        ),
        Some(7000112 | 700025) => d(
            Culprit::Client,
            "the application is disabled in this tenant: ask the tenant's administrator to enable it (Enterprise applications > Properties)",
            false,
        ),
        Some(65001 | 500011 | 501051) => d(
            Culprit::Permission,
            "the app has no consented permission for Exchange Online: grant IMAP.AccessAsApp and SMTP.SendAsApp (Office 365 Exchange Online) with admin consent",
            false,
        ),
        Some(1002012 | 70011) => d(
            Culprit::Request,
            "the scope was refused: [oauth2] scope must end in /.default (default https://outlook.office365.com/.default)",
            false,
        ),
        _ => match (status, error) {
            (429, _) | (500..=599, _) | (_, "temporarily_unavailable") => d(
                Culprit::Service,
                "Microsoft's sign-in service is busy or unavailable: caseclerk tries again; letters stay pending",
                true,
            ),
            (_, "invalid_client") => d(
                Culprit::Secret,
                "the client credential was refused: check client_secret_file (or the certificate) in [oauth2]",
                false,
            ),
            (_, "unauthorized_client") => d(
                Culprit::Client,
                "the application was not recognised: check client_id and tenant in [oauth2]",
                false,
            ),
            (_, "invalid_scope") => d(
                Culprit::Request,
                "the scope was refused: [oauth2] scope must end in /.default",
                false,
            ),
            _ => d(
                Culprit::Request,
                "the sign-in service refused the request: check every value in [oauth2] against the app registration",
                false,
            ),
        },
    }
}

/// What a refused login with a freshly obtained token means: the token is fine as far as Entra ID
/// is concerned, so the mailbox does not let this app in.
pub const REFUSED_TOKEN_ADVICE: &str = "the mail server refused the access token: give the app access to this one mailbox (Exchange Online PowerShell: New-ServicePrincipal, then Add-MailboxPermission -AccessRights FullAccess), check the API permissions IMAP.AccessAsApp / SMTP.SendAsApp have admin consent, that SMTP AUTH is enabled for the mailbox (Set-CASMailbox -SmtpClientAuthenticationDisabled $false), and that username is the mailbox's address";

/// What an IMAP command's refusal after a good login means, when it is Exchange Online's own
/// words for a mailbox the app may not open: "User is authenticated but not connected" answers
/// the first command after an XOAUTH2 login that Exchange accepted for an app without access to
/// that mailbox (or for the wrong address). `None` for anything else.
pub fn after_login_advice(detail: &str) -> Option<&'static str> {
    detail
        .to_ascii_lowercase()
        .contains("authenticated but not connected")
        .then_some(NOT_CONNECTED_ADVICE)
}

/// [`after_login_advice`]'s advice.
pub const NOT_CONNECTED_ADVICE: &str = "Exchange accepted the login but will not open the mailbox for it: give the app access to this one mailbox (Exchange Online PowerShell: New-ServicePrincipal, then Add-MailboxPermission -AccessRights FullAccess) and check that [mailbox] username is the shared mailbox's address";

/// When a token obtained at `obtained`, valid for `lifetime_s` seconds, is renewed: after three
/// quarters of its life (45 minutes of Microsoft's hour), so a renewal that fails has a quarter
/// of the life left to succeed before anything stops. Never renewed per connection.
pub fn renew_at(obtained: DateTime<Utc>, lifetime_s: i64) -> DateTime<Utc> {
    obtained + chrono::Duration::milliseconds(lifetime_s.max(0) * 750)
}

/// After a failed renewal, when the still-valid token is tried again: in a minute, or at its
/// expiry if sooner. (Retrying at every connection would hammer the endpoint; an IMAP session
/// ends at this instant too, so it must not be in the past while the token is valid.)
pub fn retry_renewal_at(now: DateTime<Utc>, expires: DateTime<Utc>) -> DateTime<Utc> {
    (now + chrono::Duration::seconds(60)).min(expires)
}

/// The XOAUTH2 SASL string (before base64): `user=…^Aauth=Bearer …^A^A`.
pub fn xoauth2(user: &str, token: &str) -> String {
    format!("user={user}\x01auth=Bearer {token}\x01\x01")
}

/// The warning for a credential that expires on `expires`, when `today` is within 30 days of it
/// (or past it); `None` otherwise. `what` names it ("client secret", "certificate").
pub fn expiry_warning(what: &str, expires: NaiveDate, today: NaiveDate) -> Option<String> {
    let days = (expires - today).num_days();
    match days {
        d if d < 0 => Some(format!(
            "the {what} expired on {expires}: sign-in will fail; add a new one to the app registration and configure it"
        )),
        0..=30 => Some(format!(
            "the {what} expires on {expires} ({days} day(s)): add a new one to the app registration and configure it before then"
        )),
        _ => None,
    }
}

/// Whether an untagged `BYE` text means the server ended the session because its token expired
/// (Exchange: `Session invalidated - AccessTokenExpired`).
pub fn bye_is_token_expiry(text: &str) -> bool {
    text.contains("AccessTokenExpired")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_secret_names_the_secret_and_says_value_not_id() {
        let d = diagnose(401, "invalid_client", Some(7000215));
        assert_eq!(d.culprit, Culprit::Secret);
        assert!(
            d.advice.contains("Value (not its Secret ID)"),
            "{}",
            d.advice
        );
        assert!(!d.retry);
    }

    #[test]
    fn each_part_of_the_set_up_is_named_by_its_code() {
        assert_eq!(
            diagnose(400, "invalid_request", Some(90002)).culprit,
            Culprit::Tenant
        );
        assert_eq!(
            diagnose(400, "unauthorized_client", Some(700016)).culprit,
            Culprit::Client
        );
        assert_eq!(
            diagnose(401, "invalid_client", Some(700027)).culprit,
            Culprit::Certificate
        );
        assert_eq!(
            diagnose(400, "invalid_scope", Some(1002012)).culprit,
            Culprit::Request
        );
        assert_eq!(
            diagnose(400, "invalid_grant", Some(65001)).culprit,
            Culprit::Permission
        );
        assert_eq!(
            diagnose(401, "invalid_client", Some(7000222)).culprit,
            Culprit::Secret
        );
    }

    #[test]
    fn an_assertion_outside_its_time_points_at_the_clock() {
        let d = diagnose(401, "invalid_client", Some(700024));
        assert!(d.advice.contains("clock"), "{}", d.advice);
        assert!(
            !diagnose(401, "invalid_client", Some(700027))
                .advice
                .contains("clock")
        );
    }

    #[test]
    fn without_a_known_code_the_status_and_error_decide() {
        assert_eq!(
            diagnose(401, "invalid_client", None).culprit,
            Culprit::Secret
        );
        assert_eq!(
            diagnose(400, "unauthorized_client", Some(1)).culprit,
            Culprit::Client
        );
        let busy = diagnose(503, "", None);
        assert_eq!(busy.culprit, Culprit::Service);
        assert!(busy.retry);
        assert!(diagnose(429, "", None).retry);
    }

    #[test]
    fn a_token_is_renewed_after_three_quarters_of_its_life() {
        let t = DateTime::UNIX_EPOCH;
        assert_eq!(renew_at(t, 3600), t + chrono::Duration::minutes(45));
        assert_eq!(renew_at(t, 4), t + chrono::Duration::seconds(3));
        assert_eq!(renew_at(t, -5), t);
    }

    #[test]
    fn a_failed_renewal_is_retried_in_a_minute_but_never_after_expiry() {
        let t = DateTime::UNIX_EPOCH;
        let hour = t + chrono::Duration::hours(1);
        assert_eq!(retry_renewal_at(t, hour), t + chrono::Duration::seconds(60));
        let soon = t + chrono::Duration::seconds(10);
        assert_eq!(retry_renewal_at(t, soon), soon);
    }

    #[test]
    fn the_xoauth2_string_is_user_then_bearer_with_ctrl_a_separators() {
        assert_eq!(
            xoauth2("bsp@bury.test", "abc"),
            "user=bsp@bury.test\x01auth=Bearer abc\x01\x01"
        );
    }

    #[test]
    fn an_expiry_is_warned_about_from_thirty_days_ahead() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            expiry_warning("client secret", day("2027-03-01"), day("2027-01-01")),
            None
        );
        let w = expiry_warning("client secret", day("2027-01-31"), day("2027-01-01")).unwrap();
        assert!(w.contains("30 day(s)"), "{w}");
        let gone = expiry_warning("certificate", day("2026-12-31"), day("2027-01-01")).unwrap();
        assert!(gone.contains("expired"), "{gone}");
    }

    #[test]
    fn only_an_access_token_bye_is_a_token_expiry() {
        assert!(bye_is_token_expiry(
            "Session invalidated - AccessTokenExpired"
        ));
        assert!(!bye_is_token_expiry("Server shutting down."));
    }
}
