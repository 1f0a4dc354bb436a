//! case (placeholder).
