//! Request extractors with the fleet API's error shape: JSON object bodies
//! (bounded; 413 and 400 as `{"error": ...}`), query parameters, and the
//! caller's address for the per-address failure limit.

use std::net::IpAddr;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap, StatusCode};
use serde_json::{Map, Value};

use super::FleetState;
use super::error::FleetError;

/// Largest request body the fleet API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON object body. An empty body counts as `{}`; anything but an
/// object is refused.
#[derive(Debug, Clone, Default)]
pub struct FleetJson(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for FleetJson {
    type Rejection = FleetError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = crate::extract::read_body(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    FleetError::PayloadTooLarge(MAX_BODY_BYTES)
                } else {
                    FleetError::BadBody(format!("could not read the request body: {rejection}"))
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(FleetJson(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(FleetJson(map)),
            Ok(_) => Err(FleetError::BadBody(
                "the request body must be a JSON object".into(),
            )),
            Err(e) => Err(FleetError::BadBody(format!("invalid JSON body: {e}"))),
        }
    }
}

/// The query parameters of a request (the first value of each name).
#[derive(Debug, Clone, Default)]
pub struct FleetQuery(pub Vec<(String, String)>);

impl FleetQuery {
    pub fn get(&self, key: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for FleetQuery {
    type Rejection = FleetError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map(|q| FleetQuery(q.0))
            .map_err(|e| FleetError::BadBody(format!("malformed query string: {e}")))
    }
}

/// The caller's address (`X-Forwarded-For`'s last entry with `--trust-proxy`).
pub fn client_ip(state: &FleetState, headers: &HeaderMap, ext: &Extensions) -> Option<IpAddr> {
    let peer = ext
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    crate::limits::client_ip(headers, peer, state.config.trust_proxy)
}

/// The caller's address as an extractor (None when unknown).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<FleetState> for ClientIp {
    type Rejection = FleetError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &FleetState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(
            state,
            &parts.headers,
            &parts.extensions,
        )))
    }
}
