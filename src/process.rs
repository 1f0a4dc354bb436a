//! process (placeholder).
