//! Fleet users' authentication: argon2id password hashes, HS256 access
//! tokens signed with the server's fleet secret, the middleware that turns a
//! bearer token into a [`FleetUser`] (and counts it against the per-user
//! rate limit), and `POST /auth/token`.
//!
//! Tokens carry only the user's id: the role is read from the database on
//! every request, so a changed role or a deleted user takes effect at once.

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::FleetState;
use super::domain::{self, FleetRole};
use super::error::{FleetError, FleetResult};
use super::extract::{ClientIp, FleetJson};
use crate::auth::Quota;
use crate::store::fleet::FleetUserRecord;

/// Issuer and audience of fleet access tokens (a room token, signed with
/// another key anyway, never passes for one).
pub const ISSUER: &str = "convene";
pub const AUDIENCE: &str = "convene-fleet";
/// Allowed clock skew when checking `exp`.
pub const LEEWAY_SECS: u64 = 30;

/// The authenticated fleet user of a request (a request extension).
#[derive(Debug, Clone)]
pub struct FleetUser {
    pub id: String,
    pub email: String,
    pub role: FleetRole,
}

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for FleetUser {
    type Rejection = FleetError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<FleetUser>()
            .cloned()
            .ok_or_else(|| FleetError::Unauthorized("authentication required".into()))
    }
}

/// The argon2id hash (PHC string) of `password`, with a random salt.
/// Slow on purpose (tens of milliseconds): call it off the async threads.
pub fn hash_password(password: &str) -> Result<String, FleetError> {
    use rand::RngCore;
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(FleetError::internal)?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(FleetError::internal)
}

/// Whether `password` matches the PHC `hash` (the hash comparison inside
/// is constant-time). A malformed stored hash never matches.
pub fn verify_password(hash: &str, password: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash no password is known for: verified against when the email is
/// unknown, so an unknown email costs as much time as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        use rand::RngCore;
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        hash_password(&hex::encode(secret)).unwrap_or_default()
    })
}

/// The claims of a fleet access token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FleetClaims {
    /// The fleet user's id.
    pub sub: String,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
    /// The user's token version when it was issued (0 when absent); a
    /// password or role change makes older versions invalid.
    #[serde(default)]
    pub ver: i64,
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Signs an access token for `user_id` (at its token version `ver`)
/// valid for `ttl_secs`.
pub fn mint(secret: &[u8], user_id: &str, ver: i64, ttl_secs: u64) -> FleetResult<String> {
    let now = unix_now() as i64;
    let claims = FleetClaims {
        sub: user_id.to_string(),
        iss: ISSUER.into(),
        aud: AUDIENCE.into(),
        iat: now,
        exp: now + ttl_secs as i64,
        ver,
    };
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .map_err(FleetError::internal)
}

/// Checks a token: HS256 only (the header's `alg` must say so; `none` and
/// every other algorithm are refused), signed with `secret`, `exp` present
/// and not past, issuer and audience ours. The error says which check failed.
pub fn verify(secret: &[u8], token: &str) -> Result<FleetClaims, &'static str> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| "the token is malformed")?;
    if header.alg != Algorithm::HS256 {
        return Err("the token must be signed with HS256");
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
    validation.validate_exp = true;
    validation.leeway = LEEWAY_SECS;
    validation.set_audience(&[AUDIENCE]);
    validation.set_issuer(&[ISSUER]);
    // Decoded with every claim optional, so that a missing one is reported
    // by the validation (as missing) rather than as a malformed token.
    #[derive(Deserialize)]
    struct Received {
        sub: Option<String>,
        iss: Option<String>,
        aud: Option<String>,
        iat: Option<i64>,
        exp: Option<i64>,
        ver: Option<i64>,
    }
    let received =
        jsonwebtoken::decode::<Received>(token, &DecodingKey::from_secret(secret), &validation)
            .map(|d| d.claims)
            .map_err(|e| {
                use jsonwebtoken::errors::ErrorKind;
                match e.kind() {
                    ErrorKind::InvalidSignature => "the token's signature is not valid",
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                    ErrorKind::InvalidAlgorithm => "the token must be signed with HS256",
                    ErrorKind::InvalidAudience | ErrorKind::InvalidIssuer => {
                        "the token is not a fleet access token"
                    }
                    _ => "the token is malformed",
                }
            })?;
    match received {
        Received {
            sub: Some(sub),
            iss: Some(iss),
            aud: Some(aud),
            exp: Some(exp),
            iat,
            ver,
        } => Ok(FleetClaims {
            sub,
            iss,
            aud,
            iat: iat.unwrap_or(0),
            exp,
            ver: ver.unwrap_or(0),
        }),
        _ => Err("the token lacks a required claim"),
    }
}

fn bearer(headers: &HeaderMap) -> Result<&str, FleetError> {
    let missing = || {
        FleetError::Unauthorized(
            "missing credentials: send `Authorization: Bearer <access token>` (POST /auth/token)"
                .into(),
        )
    };
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(missing)?
        .to_str()
        .map_err(|_| missing())?
        .trim();
    match value.split_once(' ') {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("bearer") && !rest.trim().is_empty() =>
        {
            Ok(rest.trim())
        }
        _ => Err(missing()),
    }
}

/// Resolves the bearer token to the (still existing) user.
async fn authenticate(state: &FleetState, headers: &HeaderMap) -> FleetResult<FleetUser> {
    Ok(user_of_token(state, bearer(headers)?).await?.0)
}

/// Resolves an access token to the (still existing) user and the token's
/// expiry (unix seconds).
pub async fn user_of_token(state: &FleetState, token: &str) -> FleetResult<(FleetUser, i64)> {
    let claims = verify(&state.secret, token).map_err(|m| FleetError::Unauthorized(m.into()))?;
    let user = state
        .db
        .fleet_user_by_id(&claims.sub)
        .await?
        .ok_or_else(|| FleetError::Unauthorized("the token's user no longer exists".into()))?;
    if claims.ver != user.token_version {
        return Err(FleetError::Unauthorized(
            "the token was issued before the user's password or role changed; get a new one".into(),
        ));
    }
    Ok((
        FleetUser {
            id: user.id,
            email: user.email,
            role: user.role,
        },
        claims.exp,
    ))
}

fn set_quota_headers(headers: &mut HeaderMap, q: &Quota) {
    headers.insert("x-ratelimit-limit", HeaderValue::from(q.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(q.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(q.reset));
}

fn client_ip(state: &FleetState, request: &Request) -> Option<std::net::IpAddr> {
    super::extract::client_ip(state, request.headers(), request.extensions())
}

/// Middleware of every authenticated fleet route: an address that keeps
/// failing is turned away first; then the bearer token, then the user's
/// per-minute quota (`X-RateLimit-*` on every answer, 429 + `Retry-After`
/// over it); then the role: a viewer may only read (GET/HEAD).
pub async fn require_user(
    State(state): State<FleetState>,
    mut request: Request,
    next: Next,
) -> Response {
    let now = unix_now();
    let ip = client_ip(&state, &request);
    if let Err(e) = not_blocked(&state, ip, now) {
        return e.into_response();
    }
    let user = match authenticate(&state, request.headers()).await {
        Ok(u) => u,
        Err(e) => {
            if let (Some(ip), FleetError::Unauthorized(_)) = (ip, &e) {
                state.ip_limits.failed(ip, now);
            }
            return e.into_response();
        }
    };
    let quota = state
        .limiter
        .check(&user.id, state.config.rate_limit_per_minute, now);
    let mut response = if !quota.allowed {
        FleetError::RateLimited {
            retry_after_secs: quota.reset.saturating_sub(now).max(1),
        }
        .into_response()
    } else if user.role != FleetRole::Admin
        && !matches!(*request.method(), Method::GET | Method::HEAD)
        && !self_service(&request)
    {
        FleetError::Forbidden(format!(
            "the {} role may only read; {} needs the admin role",
            user.role.as_str(),
            request.method()
        ))
        .into_response()
    } else {
        request.extensions_mut().insert(user);
        next.run(request).await
    };
    set_quota_headers(response.headers_mut(), &quota);
    response
}

/// Changes any role may make to its own account: its password.
fn self_service(request: &Request) -> bool {
    *request.method() == Method::POST && request.uri().path().ends_with("/users/me/password")
}

/// The token endpoint's answer (the seed's fields).
#[derive(Debug, Serialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: u64,
}

/// `POST /auth/token`: email + password -> an access token. Wrong or
/// unknown credentials are one 401 (no hint which was wrong) and count as
/// a failure of the caller's address.
/// An address that keeps failing (bad logins, tokens or enrollment tokens)
/// is turned away before any lookup.
pub(super) fn not_blocked(
    state: &FleetState,
    ip: Option<std::net::IpAddr>,
    now: u64,
) -> FleetResult<()> {
    match ip.and_then(|ip| state.ip_limits.blocked(ip, now)) {
        Some(wait) => Err(FleetError::RateLimited {
            retry_after_secs: wait,
        }),
        None => Ok(()),
    }
}

/// The fleet user these credentials belong to, or `None` when the email is
/// unknown or the password wrong (an unknown email costs as much time as a
/// wrong password). Used by `POST /auth/token` and the admin console's
/// sign-in; the caller counts a `None` against the caller's address.
pub async fn check_credentials(
    state: &FleetState,
    email: &str,
    password: String,
) -> FleetResult<Option<FleetUserRecord>> {
    let user = state.db.fleet_user_by_email(email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    // Hashing is slow and takes ~19 MiB: a bounded number run at once, on
    // the blocking threads.
    let _slot = state
        .password_checks
        .acquire()
        .await
        .map_err(FleetError::internal)?;
    let matches = tokio::task::spawn_blocking(move || match hash {
        Some(hash) => verify_password(&hash, &password),
        None => {
            verify_password(decoy_hash(), &password);
            false
        }
    })
    .await
    .map_err(FleetError::internal)?;
    Ok(user.filter(|_| matches))
}

pub async fn token(
    State(state): State<FleetState>,
    ClientIp(ip): ClientIp,
    FleetJson(body): FleetJson,
) -> FleetResult<Response> {
    let now = unix_now();
    not_blocked(&state, ip, now)?;
    let (email, password) = domain::token_request(&body)?;
    let user = match check_credentials(&state, &email, password).await? {
        Some(u) => u,
        None => {
            if let Some(ip) = ip {
                state.ip_limits.failed(ip, now);
            }
            return Err(FleetError::Unauthorized("invalid email or password".into()));
        }
    };
    let ttl = state.config.token_ttl_secs;
    let access_token = mint(&state.secret, &user.id, user.token_version, ttl)?;
    let mut response = axum::Json(TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in: ttl,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    #[test]
    fn passwords_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "correct horsf"));
        assert!(!verify_password("not a hash", "x"));
    }

    #[test]
    fn tokens_are_checked() {
        let key = b"0123456789abcdef0123456789abcdef";
        let t = mint(key, "u1", 0, 60).unwrap();
        assert_eq!(verify(key, &t).unwrap().sub, "u1");
        assert!(verify(b"another key another key another k", &t).is_err());
        // alg none: header {"alg":"none"}, same claims, empty signature.
        let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let claims = t.split('.').nth(1).unwrap();
        let none = format!("{}.{claims}.", b64(r#"{"alg":"none","typ":"JWT"}"#));
        assert_eq!(verify(key, &none).unwrap_err(), "the token is malformed");
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &FleetClaims {
                sub: "u1".into(),
                iss: ISSUER.into(),
                aud: AUDIENCE.into(),
                iat: 0,
                ver: 0,
                exp: unix_now() as i64 - 120,
            },
            &EncodingKey::from_secret(key),
        )
        .unwrap();
        assert_eq!(verify(key, &expired).unwrap_err(), "the token has expired");
    }
}
