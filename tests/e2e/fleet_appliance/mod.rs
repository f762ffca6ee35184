//! Appliances in the fleet, end to end (docs/fleet.md): the real server and
//! real `convene-appliance` processes (test pattern + sine) that enroll with
//! a one-time token, keep one outbound WebSocket with heartbeats, and carry
//! out remote actions; the fleet WebSocket API reporting their status.

mod actions;
mod alert_rules;
mod connection;
mod credentials;
mod enrollment;
mod policies;
mod support;
mod tls;
mod updates;
mod users;
mod webhooks;
