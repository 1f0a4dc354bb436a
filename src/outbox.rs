//! outbox (placeholder).
