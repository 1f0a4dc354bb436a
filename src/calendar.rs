//! calendar (placeholder).
