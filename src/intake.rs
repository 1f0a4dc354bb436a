//! intake (placeholder).
