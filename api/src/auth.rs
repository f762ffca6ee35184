//! Developer-key authentication and per-key rate limiting for `/api/v1`.
//!
//! The middleware runs before any handler, so no lookup happens for an
//! unauthenticated caller. Keys are found by their SHA-256 (an index that
//! reveals nothing about the key) and then compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::ApiState;
use crate::error::ApiError;
use crate::store::teams::{TeamRecord, key_hash};

/// The authenticated team of a request (a request extension).
#[derive(Debug, Clone)]
pub struct Team {
    pub id: String,
    pub name: String,
    pub developer_key: String,
}

impl From<TeamRecord> for Team {
    fn from(t: TeamRecord) -> Self {
        Team {
            id: t.id,
            name: t.name,
            developer_key: t.developer_key,
        }
    }
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Team {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Team>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthorized("authentication required".into()))
    }
}

fn keys_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// What an `Authorization` header presents to the room API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials<'a> {
    /// `Bearer <developer key>` (never empty, trimmed).
    Bearer(&'a str),
    /// HTTP Basic `<team id>:<developer key>`; the team id is a UUID.
    Basic { team_id: String, key: String },
}

/// Why an `Authorization` header presents no usable credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialsError {
    /// No credentials (an unknown scheme, an empty Bearer).
    Missing,
    /// Malformed credentials.
    Invalid,
}

/// Reads an `Authorization` header value (no lookups: arbitrary bytes give
/// an answer, never a panic; fuzzed by `fuzz/fuzz_targets/rest_auth.rs`).
pub fn parse_authorization(value: &[u8]) -> Result<Credentials<'_>, CredentialsError> {
    use CredentialsError::{Invalid, Missing};
    let value = std::str::from_utf8(value).map_err(|_| Invalid)?.trim();
    let (scheme, rest) = value.split_once(' ').ok_or(Invalid)?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        if rest.is_empty() {
            return Err(Missing);
        }
        Ok(Credentials::Bearer(rest))
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| Invalid)?;
        let decoded = String::from_utf8(decoded).map_err(|_| Invalid)?;
        let (team_id, key) = decoded.split_once(':').ok_or(Invalid)?;
        if uuid::Uuid::parse_str(team_id).is_err() {
            return Err(Invalid);
        }
        Ok(Credentials::Basic {
            team_id: team_id.to_string(),
            key: key.to_string(),
        })
    } else {
        Err(Missing)
    }
}

/// Resolves the `Authorization` header to a team.
pub async fn authenticate(state: &ApiState, headers: &HeaderMap) -> Result<Team, ApiError> {
    let missing = || {
        ApiError::Unauthorized(
            "missing credentials: send `Authorization: Bearer <developer key>` or HTTP Basic `<team id>:<developer key>`"
                .into(),
        )
    };
    let invalid = || ApiError::Unauthorized("invalid developer key".into());
    let value = headers.get(header::AUTHORIZATION).ok_or_else(missing)?;
    let credentials = parse_authorization(value.as_bytes()).map_err(|e| match e {
        CredentialsError::Missing => missing(),
        CredentialsError::Invalid => invalid(),
    })?;
    let (team, key) = match credentials {
        Credentials::Bearer(key) => {
            let team = state
                .db
                .team_by_key_hash(&key_hash(key))
                .await
                .map_err(ApiError::internal)?;
            (team, key.to_string())
        }
        Credentials::Basic { team_id, key } => {
            let team = state
                .db
                .team_by_id(&team_id)
                .await
                .map_err(ApiError::internal)?;
            (team, key)
        }
    };
    let team = team.ok_or_else(invalid)?;
    if keys_equal(&team.developer_key, &key) {
        return Ok(team.into());
    }
    Err(invalid())
}

/// Fixed one-minute windows per team.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: Mutex<HashMap<String, (u64, u32)>>,
}

/// The state of a caller's window after counting a request.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds at which the window resets.
    pub reset: u64,
    pub allowed: bool,
}

impl RateLimiter {
    pub fn check(&self, key: &str, limit: u32, now_secs: u64) -> Quota {
        let window = now_secs / 60;
        let reset = (window + 1) * 60;
        let mut windows = match self.windows.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if windows.len() > 10_000 {
            windows.retain(|_, (w, _)| *w == window);
        }
        let entry = windows.entry(key.to_string()).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        let allowed = entry.1 < limit;
        if allowed {
            entry.1 += 1;
        }
        Quota {
            limit,
            remaining: limit.saturating_sub(entry.1),
            reset,
            allowed,
        }
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn set_quota_headers(headers: &mut HeaderMap, q: &Quota) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(q.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(q.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(q.reset));
}

/// Middleware: authenticate, count against the key's quota, run the handler.
pub async fn require_team(
    State(state): State<ApiState>,
    mut request: Request,
    next: Next,
) -> Response {
    let now = unix_now();
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let ip = crate::limits::client_ip(request.headers(), peer, state.config.trust_proxy);
    // An address that keeps failing is turned away before any lookup.
    if let Some(ip) = ip
        && let Some(wait) = state.ip_limits.blocked(ip, now)
    {
        return ApiError::RateLimited {
            retry_after_secs: wait,
        }
        .into_response();
    }
    let team = match authenticate(&state, request.headers()).await {
        Ok(t) => t,
        Err(e) => {
            if let (Some(ip), ApiError::Unauthorized(_)) = (ip, &e) {
                state.ip_limits.failed(ip, now);
            }
            return e.into_response();
        }
    };
    let quota = state
        .limiter
        .check(&team.id, state.config.rate_limit_per_minute, now);
    if !quota.allowed {
        let mut response = ApiError::RateLimited {
            retry_after_secs: quota.reset.saturating_sub(now).max(1),
        }
        .into_response();
        set_quota_headers(response.headers_mut(), &quota);
        return response;
    }
    request.extensions_mut().insert(team);
    let mut response = next.run(request).await;
    set_quota_headers(response.headers_mut(), &quota);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_counts_and_resets() {
        let rl = RateLimiter::default();
        for i in 0..3 {
            let q = rl.check("t", 3, 120);
            assert!(q.allowed);
            assert_eq!(q.remaining, 2 - i);
        }
        let q = rl.check("t", 3, 130);
        assert!(!q.allowed);
        assert_eq!(q.reset, 180);
        assert!(rl.check("other", 3, 130).allowed);
        assert!(rl.check("t", 3, 180).allowed);
    }

    #[test]
    fn constant_time_compare_needs_equal_length() {
        assert!(keys_equal("abc", "abc"));
        assert!(!keys_equal("abc", "abd"));
        assert!(!keys_equal("abc", "abcd"));
    }
}
