//! letters (placeholder).
