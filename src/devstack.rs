//! devstack (placeholder).
