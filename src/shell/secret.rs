//! A password, bearer token or client secret in memory: never printed.
//!
//! Owns the one wrapper every secret travels in (the configuration's passwords, the token
//! client's secret and tokens), whose `Debug` prints `***`, so no log line or error built with
//! `{:?}` can show one. Its own module so that the configuration and the token client share it
//! without importing each other.
//!
//! Must not: implement `Display` or `Serialize`; the only way to the text is [`Secret::expose`].

/// A secret value. `expose` is the only way to its text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}
