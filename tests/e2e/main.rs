//! End-to-end tests against the real `convene` binary (one test binary, as the
//! architecture guide asks). Each test starts its own server on a free port
//! with its own data dir.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod admin;
mod api_auth;
mod api_chat;
mod api_defaults;
mod api_messages;
mod api_polls;
mod api_questions;
mod api_quizzes;
mod api_roles;
mod api_rooms;
mod api_sessions;
mod api_statistics;
mod api_tokens;
mod appliance;
mod browser;
mod captions;
mod client_a11y;
mod client_effects;
mod client_firefox;
mod client_rooms;
mod client_tiles;
mod client_ui;
mod collab_live;
mod crash;
mod display;
mod faults;
mod fleet;
mod fleet_appliance;
mod gstreamer;
mod guest_links;
mod ice;
mod interop;
mod libraries;
mod libraries_conversion;
mod limits;
mod media;
mod openapi;
mod packaging;
mod postgres;
mod recording;
mod reliability;
mod restream;
mod room_access;
mod room_defaults;
mod room_password;
mod server;
mod shard;
mod transcripts;
mod turn;
mod webhooks;
mod whep;
mod whip;
