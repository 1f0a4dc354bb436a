//! timeline (placeholder).
