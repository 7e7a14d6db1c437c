//! GitHub REST client (placeholder).
