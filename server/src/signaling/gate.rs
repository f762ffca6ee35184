//! The per-address gate in front of `/rtc` (see `convene_api::limits`): an
//! address that keeps presenting bad tokens, or holds many sockets that have
//! not joined, is answered 429 with `Retry-After` before the upgrade.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use convene_api::limits::{IpLimits, PreJoin, client_ip};

/// The TCP peer of a request, when the server was started with it
/// (`serve` does): `None` otherwise.
pub struct PeerAddr(pub Option<SocketAddr>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for PeerAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(PeerAddr(
            parts
                .extensions
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
        ))
    }
}

/// The caller's address and its pre-join place, or the 429 to answer.
pub fn admit(
    limits: &Arc<IpLimits>,
    trust_proxy: bool,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
) -> Result<(Option<IpAddr>, Option<PreJoin>), TooMany> {
    let Some(ip) = client_ip(headers, peer, trust_proxy) else {
        return Ok((None, None));
    };
    if let Some(wait) = limits.blocked(ip, unix_now()) {
        return Err(TooMany {
            wait,
            why: "too many failed join attempts from this address\n",
        });
    }
    match limits.open_socket(ip) {
        Some(place) => Ok((Some(ip), Some(place))),
        None => Err(TooMany {
            wait: 15,
            why: "too many connections from this address are waiting to join\n",
        }),
    }
}

/// A refused upgrade: 429, `Retry-After: wait`, and why.
#[derive(Debug)]
pub struct TooMany {
    wait: u64,
    why: &'static str,
}

impl IntoResponse for TooMany {
    fn into_response(self) -> Response {
        (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, self.wait.to_string())],
            self.why,
        )
            .into_response()
    }
}

pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
