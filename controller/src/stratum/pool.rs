//! pool placeholder
