//! HTTP handlers: extract -> call the store -> respond. One module per resource.

pub mod defaults;
pub mod live;
pub mod roles;
pub mod rooms;
