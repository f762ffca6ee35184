//! The rules of the collaboration resources, as plain functions: what a
//! valid body is, which status a poll, quiz or question is in and which
//! transitions it may take, what a valid answer is. No IO, no HTTP: the REST
//! handlers (`routes`), the store (inside its write transactions) and the
//! server's signaling all call these, so a rule is written once.
//!
//! Errors are typed: [`Invalid`] for bodies (a per-field map), and one
//! refusal enum per resource for state transitions and answers.

pub mod chat;
pub mod fields;
pub mod polls;
pub mod questions;
pub mod quizzes;
pub mod restream;

pub use fields::{FieldErrors, Invalid};
