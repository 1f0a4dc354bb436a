//! The web workspace's optional second factor: time-based one-time codes (TOTP, RFC 6238 over
//! HOTP, RFC 4226) as every authenticator app makes them — HMAC-SHA-1, 6 digits, a 30-second
//! step — and the base32 text and `otpauth://` address a person types or scans to enrol.
//!
//! Owns the arithmetic and the rule for accepting a code: the step the instant falls in, or one
//! either side (a phone's clock a little off, a code typed as it changed), and never a step at or
//! before the last one accepted for the account, so a code that signed someone in — or a code
//! seen over a shoulder — is refused if typed again.
//!
//! Must not: read the clock (the shell passes the instant), keep or log a secret or a code, or
//! know where the secret is stored.

use chrono::{DateTime, Utc};

/// Seconds in one step: a code changes every 30 seconds.
pub const STEP_SECONDS: i64 = 30;
/// Digits in a code.
pub const DIGITS: u32 = 6;
/// Steps either side of now whose code is still accepted.
pub const WINDOW: i64 = 1;
/// Bytes of a new secret (160 bits, the HMAC-SHA-1 block RFC 4226 recommends).
pub const SECRET_BYTES: usize = 20;

/// The HOTP value of `secret` at `counter`, `digits` long (RFC 4226 section 5.3: HMAC-SHA-1,
/// dynamic truncation, modulo 10^digits).
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> u32 {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret);
    let mac = ring::hmac::sign(&key, &counter.to_be_bytes());
    let h = mac.as_ref();
    let offset = usize::from(h[h.len() - 1] & 0x0f);
    let binary =
        u32::from_be_bytes([h[offset], h[offset + 1], h[offset + 2], h[offset + 3]]) & 0x7fff_ffff;
    binary % 10u32.pow(digits)
}

/// The step an instant falls in (RFC 6238's T, with T0 = 0).
pub fn step(at: DateTime<Utc>) -> i64 {
    at.timestamp().div_euclid(STEP_SECONDS)
}

/// The 6-digit code of `secret` at step `step`, as typed (leading zeros kept).
pub fn code_at(secret: &[u8], step: i64) -> String {
    let value = hotp(secret, u64::try_from(step).unwrap_or(0), DIGITS);
    format!("{value:0width$}", width = DIGITS as usize)
}

/// Check a typed code at `now`: the step it belongs to when it is right and newer than
/// `last_used` (the step of the last code accepted for this account), else `None`. Spaces in
/// the typed code are ignored ("123 456"); anything else but six digits is wrong.
pub fn check(
    secret: &[u8],
    typed: &str,
    now: DateTime<Utc>,
    last_used: Option<i64>,
) -> Option<i64> {
    let typed: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if typed.len() != DIGITS as usize || !typed.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step(now);
    (now - WINDOW..=now + WINDOW)
        .filter(|s| last_used.is_none_or(|last| *s > last))
        .find(|s| same(&code_at(secret, *s), &typed))
}

/// Equal, in time that does not depend on where they differ.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 base32 without padding, as authenticator apps take a setup key.
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for b in bytes {
        buffer = (buffer << 8) | u32::from(*b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Base32 back to bytes (case, spaces and padding ignored), or `None` if a character is not
/// base32.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = BASE32
            .iter()
            .position(|b| char::from(*b) == c.to_ascii_uppercase())?;
        buffer = (buffer << 5) | v as u32;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

/// The `otpauth://` address an authenticator app scans (the Key Uri Format every app reads):
/// issuer and account name, the secret, and the parameters spelled out.
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    char::from(b).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 key.
    const RFC_KEY: &[u8] = b"12345678901234567890";

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn hotp_gives_the_values_of_rfc_4226_appendix_d() {
        let expected = [
            755224, 287082, 359152, 969429, 338314, 254676, 287922, 162583, 399871, 520489,
        ];
        for (counter, want) in expected.iter().enumerate() {
            assert_eq!(hotp(RFC_KEY, counter as u64, 6), *want, "count {counter}");
        }
    }

    #[test]
    fn totp_gives_the_sha1_values_of_rfc_6238_appendix_b_and_six_digits_are_their_tail() {
        for (secs, want) in [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            let counter = u64::try_from(step(at(secs))).unwrap();
            assert_eq!(
                format!("{:08}", hotp(RFC_KEY, counter, 8)),
                want,
                "T = {secs}"
            );
            assert_eq!(code_at(RFC_KEY, step(at(secs))), want[2..], "T = {secs}");
        }
    }

    #[test]
    fn a_code_is_accepted_one_step_either_side_and_not_two() {
        let now = at(1_111_111_111);
        let s = step(now);
        for near in [s - 1, s, s + 1] {
            assert_eq!(
                check(RFC_KEY, &code_at(RFC_KEY, near), now, None),
                Some(near)
            );
        }
        for far in [s - 2, s + 2] {
            assert_eq!(check(RFC_KEY, &code_at(RFC_KEY, far), now, None), None);
        }
    }

    #[test]
    fn a_code_once_used_or_older_than_the_last_used_is_refused() {
        let now = at(1_111_111_111);
        let s = step(now);
        let code = code_at(RFC_KEY, s);
        assert_eq!(check(RFC_KEY, &code, now, Some(s - 1)), Some(s));
        assert_eq!(check(RFC_KEY, &code, now, Some(s)), None, "used once");
        assert_eq!(
            check(RFC_KEY, &code_at(RFC_KEY, s - 1), now, Some(s)),
            None,
            "an older code after a newer one"
        );
        assert_eq!(
            check(RFC_KEY, &code_at(RFC_KEY, s + 1), now, Some(s)),
            Some(s + 1),
            "the next step's code still works"
        );
    }

    #[test]
    fn only_six_digits_count_and_spaces_are_ignored() {
        let now = at(59);
        let code = code_at(RFC_KEY, step(now));
        assert_eq!(code, "287082");
        assert!(check(RFC_KEY, "287 082", now, None).is_some());
        for wrong in ["", "28708", "2870822", "28708a", "-87082", "287083"] {
            assert_eq!(check(RFC_KEY, wrong, now, None), None, "{wrong:?}");
        }
    }

    #[test]
    fn base32_is_rfc_4648_and_reads_back_whatever_the_case_and_spacing() {
        for (bytes, text) in [
            (&b""[..], ""),
            (b"f", "MY"),
            (b"fo", "MZXQ"),
            (b"foo", "MZXW6"),
            (b"foob", "MZXW6YQ"),
            (b"fooba", "MZXW6YTB"),
            (b"foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(bytes), text);
            assert_eq!(from_base32(text).unwrap(), bytes);
        }
        assert_eq!(
            from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq").unwrap(),
            RFC_KEY
        );
        assert_eq!(from_base32("MZ1W"), None, "1 is not base32");
    }

    #[test]
    fn the_otpauth_address_names_the_issuer_account_and_parameters() {
        assert_eq!(
            otpauth_uri("caseclerk Bury", "casey", RFC_KEY),
            "otpauth://totp/caseclerk%20Bury:casey?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=caseclerk%20Bury&algorithm=SHA1&digits=6&period=30"
        );
    }
}
