//! classify (placeholder).
