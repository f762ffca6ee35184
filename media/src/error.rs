//! The error type shared by every payload parser in this crate.

use std::fmt;

/// Why a payload could not be parsed or rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PayloadError {
    /// The payload has no bytes at all.
    Empty,
    /// The payload ends before a field its header announces.
    Truncated {
        /// The field that is missing.
        field: &'static str,
    },
    /// A field holds a value the format does not allow.
    Invalid {
        /// The offending field.
        field: &'static str,
    },
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty payload"),
            Self::Truncated { field } => write!(f, "payload truncated before {field}"),
            Self::Invalid { field } => write!(f, "invalid {field} in payload"),
        }
    }
}

impl std::error::Error for PayloadError {}
