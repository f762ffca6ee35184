//! HTTP handlers: extract -> domain rules -> store -> respond. One module per resource.

pub mod breakouts;
pub mod chat;
pub mod defaults;
pub mod guest_links;
pub mod libraries;
pub mod live;
pub mod messages;
pub mod moderation;
pub mod phone;
pub mod polls;
pub mod questions;
pub mod quizzes;
pub mod recordings;
pub mod restreamers;
pub mod roles;
pub mod rooms;
pub mod sessions;
pub mod statistics;
pub mod summaries;
pub mod transcripts;
pub mod webhooks;
