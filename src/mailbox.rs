//! mailbox (placeholder).
