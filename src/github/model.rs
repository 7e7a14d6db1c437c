//! GitHub wire models (placeholder).
