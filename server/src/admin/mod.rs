//! The admin console: the page at `/admin`, sign-in with the team's
//! developer key or a fleet account for a session cookie (`session.rs`;
//! a fleet account signs in to the default team, and the viewer role may
//! only read), the live WebSocket
//! (`live.rs`), the server's five-minute history (`history.rs`), the
//! recent WARN/ERROR log events (`errors.rs`), and cookie-authenticated
//! proxies to the REST live moderation.
//!
//! Every `/admin/api/*` route but sign-in needs a live session (401
//! otherwise); every state-changing request must also carry
//! `X-Convene-Admin: 1` or a same-origin `Origin` (403 otherwise), on top
//! of the cookie's `SameSite=Strict`.

pub mod errors;
pub mod history;
pub mod live;
pub mod session;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use convene_api::auth::Team;
use convene_api::fleet::FleetState;
use convene_api::fleet::domain::FleetRole;
use convene_api::routes::{defaults, live as api_live, moderation, recordings, sessions, webhooks};
use convene_api::store::teams::key_hash;
use convene_api::{ApiError, ApiState};
use serde::{Deserialize, Serialize};

use crate::signaling::Signaling;
use session::{Grant, Principal, Sessions};

/// The session cookie's name.
pub const COOKIE: &str = "convene_admin";
/// The header a state-changing request carries (value `1`).
pub const CSRF_HEADER: &str = "x-convene-admin";

/// Everything the console's handlers need.
#[derive(Clone)]
pub struct AdminState {
    pub api: ApiState,
    /// For fleet accounts' sign-in (the bounded password checks).
    pub fleet: FleetState,
    pub sig: Arc<Signaling>,
    pub sessions: Arc<Sessions>,
    pub history: Arc<history::ServerHistory>,
    /// Mark the cookie `Secure` (the server or its public URL is HTTPS).
    pub secure: bool,
    /// Live consoles open now (at most `live::MAX_CONSOLES`).
    pub consoles: Arc<std::sync::atomic::AtomicUsize>,
}

/// The console's routes: `/admin` and `/admin/api/*`.
pub fn router(state: AdminState) -> Router {
    let guarded = Router::new()
        .route("/admin/api/session", get(whoami).delete(sign_out))
        .route("/admin/api/live", get(live::handler))
        .route("/admin/api/errors", get(recent_errors))
        .route(
            "/admin/api/rooms/live/participants",
            get(api_live::live_rooms_participants),
        )
        .route(
            "/admin/api/rooms/{room}/live/participants/{participant}/mute",
            post(moderation::mute_participant),
        )
        .route(
            "/admin/api/rooms/{room}/live/participants/{participant}/remove",
            post(moderation::remove_participant),
        )
        .route(
            "/admin/api/sessions/{session}/end",
            post(sessions::end_session),
        )
        // History: sessions with statistics, recordings with download
        // links, webhook deliveries with redelivery.
        .route("/admin/api/sessions", get(sessions::list_sessions))
        .route(
            "/admin/api/sessions/{session}/statistics",
            get(sessions::session_statistics),
        )
        .route("/admin/api/recordings", get(recordings::list_recordings))
        .route(
            "/admin/api/recordings/{recording}/download",
            get(recordings::download_link),
        )
        .route(
            "/admin/api/webhooks/{webhook}/deliveries",
            get(webhooks::list_deliveries),
        )
        .route(
            "/admin/api/webhooks/{webhook}/deliveries/{delivery}/redeliver",
            post(webhooks::redeliver),
        )
        // Settings: team defaults and webhooks.
        .route(
            "/admin/api/defaults",
            get(defaults::get_defaults).patch(defaults::patch_defaults),
        )
        .route(
            "/admin/api/webhooks",
            get(webhooks::list_webhooks).post(webhooks::create_webhook),
        )
        .route(
            "/admin/api/webhooks/{webhook}",
            axum::routing::delete(webhooks::delete_webhook),
        )
        .route("/admin/api/key/rotate", post(rotate_key))
        .route(
            "/admin/api/{*rest}",
            axum::routing::any(admin_api_not_found),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .route("/admin/api/session", post(sign_in))
        .merge(guarded)
        .with_state(state.api.clone())
        .layer(axum::extract::Extension(state.clone()))
        .layer(axum::middleware::map_response(no_challenge))
        .route("/admin", get(page))
        .route("/admin/", get(page))
}

/// The console never asks the browser for HTTP credentials: the API's
/// `WWW-Authenticate` challenge would open a Basic-auth dialog.
async fn no_challenge(mut r: Response) -> Response {
    r.headers_mut().remove(header::WWW_AUTHENTICATE);
    r
}

async fn admin_api_not_found() -> ApiError {
    ApiError::NotFound("no such admin route".into())
}

/// `GET /admin`: the console page (it signs in itself).
async fn page() -> Response {
    match crate::web::asset_bytes("admin/index.html") {
        Some(b) => {
            let mut r = Html(b).into_response();
            r.headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            r
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// The session id a request presents in its `Cookie` header.
fn presented_session(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim().to_string())
}

/// The `Origin` is this server (same scheme-less authority as `Host`).
fn same_origin(headers: &HeaderMap) -> Option<bool> {
    let origin = headers.get(header::ORIGIN)?.to_str().ok()?;
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    Some(matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h)))
}

/// CSRF: a foreign `Origin` is always refused; otherwise the custom
/// header or a same-origin `Origin` must be there.
fn csrf_ok(headers: &HeaderMap) -> bool {
    match same_origin(headers) {
        Some(false) => false,
        Some(true) => true,
        None => headers
            .get(CSRF_HEADER)
            .is_some_and(|v| v.as_bytes() == b"1"),
    }
}

fn forbidden_csrf() -> Response {
    ApiError::Forbidden(format!(
        "cross-site request refused: send the `{CSRF_HEADER}: 1` header from this server's own page"
    ))
    .into_response()
}

fn unauthorized() -> Response {
    ApiError::Unauthorized("sign in to the admin console first".into()).into_response()
}

/// What a console session may do and who it is (a request extension of
/// every guarded route).
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    /// `developer_key` or `fleet_account`.
    pub principal: &'static str,
    /// The fleet account's email (absent for a developer key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// `admin` (a developer key or a fleet admin) or `viewer`.
    pub role: &'static str,
    /// Only GET requests (and sign-out) are allowed.
    pub read_only: bool,
}

/// The session's team and access, with what it signed in with still
/// current: the same developer key, or the same fleet account at the same
/// token version (a changed password or role, or a deleted account, ends
/// the session; the role is read now).
async fn team_of(state: &AdminState, grant: &Grant) -> Result<Option<(Team, Access)>, ApiError> {
    let db = &state.api.db;
    let team = db
        .team_by_id(&grant.team_id)
        .await
        .map_err(ApiError::internal)?;
    let Some(team) = team else {
        return Ok(None);
    };
    let access = match &grant.principal {
        Principal::Key(_) => {
            if !Sessions::same_key(grant, &team.developer_key) {
                return Ok(None);
            }
            Access {
                principal: "developer_key",
                email: None,
                role: "admin",
                read_only: false,
            }
        }
        Principal::Fleet { user_id, version } => {
            let user = db
                .fleet_user_by_id(user_id)
                .await
                .map_err(ApiError::internal)?;
            match user {
                Some(u) if u.token_version == *version => Access {
                    principal: "fleet_account",
                    email: Some(u.email),
                    role: u.role.as_str(),
                    read_only: u.role != FleetRole::Admin,
                },
                _ => return Ok(None),
            }
        }
    };
    Ok(Some((Team::from(team), access)))
}

/// Middleware of every guarded route: session (401), CSRF for
/// state-changing methods (403), then the team as the API's extension.
async fn require_session(
    State(state): State<AdminState>,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(grant) = presented_session(request.headers())
        .and_then(|id| state.sessions.check(&id, Instant::now()))
    else {
        return unauthorized();
    };
    let safe = matches!(*request.method(), Method::GET | Method::HEAD);
    if !safe && !csrf_ok(request.headers()) {
        return forbidden_csrf();
    }
    match team_of(&state, &grant).await {
        Ok(Some((_, access))) if access.read_only && !safe && !is_sign_out(&request) => {
            ApiError::Forbidden(format!(
                "the {} role may only look; {} needs a fleet admin or the developer key",
                access.role,
                request.method()
            ))
            .into_response()
        }
        Ok(Some((team, access))) => {
            request.extensions_mut().insert(team);
            request.extensions_mut().insert(access);
            next.run(request).await
        }
        Ok(None) => unauthorized(),
        Err(e) => e.into_response(),
    }
}

/// Signing out is allowed to every session, the read-only ones included.
fn is_sign_out(request: &Request) -> bool {
    *request.method() == Method::DELETE && request.uri().path() == "/admin/api/session"
}

/// The sign-in body: the developer key, or a fleet account.
#[derive(Debug, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum SignIn {
    Key { key: String },
    Account { email: String, password: String },
}

/// The longest email and password a sign-in may send.
const MAX_EMAIL: usize = 254;
const MAX_PASSWORD: usize = 1024;

/// Who is signed in.
#[derive(Debug, Serialize)]
struct Whoami {
    team_id: String,
    team_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in: Option<u64>,
    #[serde(flatten)]
    access: Access,
}

fn cookie(state: &AdminState, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.secure { "; Secure" } else { "" };
    let c = format!(
        "{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Largest sign-in body read.
const MAX_SIGN_IN_BYTES: usize = 4096;

/// `POST /admin/api/session` `{"key": "<developer key>"}` or
/// `{"email": …, "password": …}` (a fleet account): a session cookie for
/// the key's team, or for the default team. A wrong key or password is a
/// 401 that says nothing more and counts against the address like other
/// authentication failures.
async fn sign_in(
    axum::extract::Extension(state): axum::extract::Extension<AdminState>,
    request: Request,
) -> Response {
    if !csrf_ok(request.headers()) {
        return forbidden_csrf();
    }
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let ip = convene_api::limits::client_ip(request.headers(), peer, state.api.config.trust_proxy);
    if let Some(ip) = ip
        && let Some(wait) = state.api.ip_limits.blocked(ip, now_secs)
    {
        return ApiError::RateLimited {
            retry_after_secs: wait,
        }
        .into_response();
    }
    let body = match convene_api::extract::read_at_most(request, MAX_SIGN_IN_BYTES).await {
        Ok(b) => b,
        Err(convene_api::extract::ReadRefused::TooLarge) => {
            return ApiError::PayloadTooLarge(format!(
                "the body is too large: a sign-in is at most {MAX_SIGN_IN_BYTES} bytes"
            ))
            .into_response();
        }
        Err(convene_api::extract::ReadRefused::Failed) => {
            return ApiError::BadRequest("could not read the request body".into()).into_response();
        }
    };
    let mut refused = "invalid developer key";
    let signed = match serde_json::from_slice::<SignIn>(&body) {
        Ok(SignIn::Key { key }) => key_sign_in(&state, &key).await,
        Ok(SignIn::Account { email, password })
            if email.len() <= MAX_EMAIL && password.chars().count() <= MAX_PASSWORD =>
        {
            refused = "invalid email or password";
            account_sign_in(&state, email.trim(), password).await
        }
        Ok(SignIn::Account { .. }) => Err(ApiError::field(
            "email",
            format!(
                "the email may have at most {MAX_EMAIL} bytes and the password {MAX_PASSWORD} characters"
            ),
        )),
        Err(_) => Err(ApiError::field(
            "key",
            "send {\"key\": \"<developer key>\"} or {\"email\": \"…\", \"password\": \"…\"}",
        )),
    };
    let (team, principal, access) = match signed {
        Ok(Some(s)) => s,
        Ok(None) => {
            if let Some(ip) = ip {
                state.api.ip_limits.failed(ip, now_secs);
            }
            return ApiError::Unauthorized(refused.into()).into_response();
        }
        Err(e) => return e.into_response(),
    };
    let id = state.sessions.create(&team.id, principal, Instant::now());
    let mut r = axum::Json(Whoami {
        team_id: team.id,
        team_name: team.name,
        expires_in: Some(session::SESSION_LIFETIME.as_secs()),
        access,
    })
    .into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        cookie(&state, &id, session::SESSION_LIFETIME.as_secs()),
    );
    r
}

/// A signed-in team, who signed in, and what the session may do.
type SignedIn = (convene_api::store::teams::TeamRecord, Principal, Access);

/// The team a developer key belongs to (compared in constant time).
async fn key_sign_in(state: &AdminState, key: &str) -> Result<Option<SignedIn>, ApiError> {
    let team = state
        .api
        .db
        .team_by_key_hash(&key_hash(key))
        .await
        .map_err(ApiError::internal)?;
    Ok(team
        .filter(|t| {
            t.developer_key.len() == key.len()
                && bool::from(subtle::ConstantTimeEq::ct_eq(
                    t.developer_key.as_bytes(),
                    key.as_bytes(),
                ))
        })
        .map(|t| {
            let principal = Principal::key(&t.developer_key);
            let access = Access {
                principal: "developer_key",
                email: None,
                role: "admin",
                read_only: false,
            };
            (t, principal, access)
        }))
}

/// A fleet account's sign-in: the default team, read-only unless the
/// account is an admin.
async fn account_sign_in(
    state: &AdminState,
    email: &str,
    password: String,
) -> Result<Option<SignedIn>, ApiError> {
    let user = convene_api::fleet::auth::check_credentials(&state.fleet, email, password)
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user else {
        return Ok(None);
    };
    let team = state
        .api
        .db
        .default_team()
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::internal("the server has no default team"))?;
    let access = Access {
        principal: "fleet_account",
        email: Some(user.email.clone()),
        role: user.role.as_str(),
        read_only: user.role != FleetRole::Admin,
    };
    let principal = Principal::Fleet {
        user_id: user.id,
        version: user.token_version,
    };
    Ok(Some((team, principal, access)))
}

/// `GET /admin/api/session`: the signed-in team, who signed in and
/// whether the session may only read.
async fn whoami(
    team: Team,
    axum::extract::Extension(access): axum::extract::Extension<Access>,
) -> axum::Json<Whoami> {
    axum::Json(Whoami {
        team_id: team.id,
        team_name: team.name,
        expires_in: None,
        access,
    })
}

/// `GET /admin/api/errors`: the process's last WARN/ERROR log events,
/// newest first (at most [`errors::RECENT_ERRORS`]).
async fn recent_errors() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({
        "capacity": errors::RECENT_ERRORS,
        "data": errors::RECENT.newest_first(),
    }))
}

/// The key rotation body: the confirmation the page asks for.
#[derive(Debug, Deserialize)]
struct RotateKey {
    confirm: String,
}

/// What must be typed to confirm a key rotation.
const ROTATE_CONFIRMATION: &str = "rotate";

/// `POST /admin/api/key/rotate` `{"confirm": "rotate"}`: a new developer
/// key for the team, shown once in the answer. The old key, the tokens
/// it signed and every console session of the team (this one included)
/// stop working at once.
async fn rotate_key(
    State(state): State<ApiState>,
    team: Team,
    convene_api::extract::DrainedBytes(body): convene_api::extract::DrainedBytes,
) -> Result<axum::Json<serde_json::Value>, ApiError> {
    let confirmed =
        serde_json::from_slice::<RotateKey>(&body).is_ok_and(|b| b.confirm == ROTATE_CONFIRMATION);
    if !confirmed {
        return Err(ApiError::field(
            "confirm",
            "send {\"confirm\": \"rotate\"} to rotate the developer key",
        ));
    }
    let key = crate::random_key();
    state
        .db
        .set_team_key(&team.id, &key)
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(team = %team.id, "developer key rotated from the admin console");
    Ok(axum::Json(
        serde_json::json!({"team_id": team.id, "developer_key": key, "signed_out": true}),
    ))
}

/// `DELETE /admin/api/session`: signs out (the session ends server-side).
async fn sign_out(
    axum::extract::Extension(state): axum::extract::Extension<AdminState>,
    headers: HeaderMap,
) -> Response {
    if let Some(id) = presented_session(&headers) {
        state.sessions.remove(&id);
    }
    let mut r = StatusCode::NO_CONTENT.into_response();
    r.headers_mut()
        .insert(header::SET_COOKIE, cookie(&state, "", 0));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn reads_the_session_cookie() {
        let h = headers(&[("cookie", "a=b; convene_admin=xyz ;c=d")]);
        assert_eq!(presented_session(&h).as_deref(), Some("xyz"));
        assert_eq!(presented_session(&headers(&[("cookie", "a=b")])), None);
    }

    #[test]
    fn csrf_rules() {
        assert!(!csrf_ok(&headers(&[])));
        assert!(csrf_ok(&headers(&[("x-convene-admin", "1")])));
        assert!(csrf_ok(&headers(&[
            ("origin", "http://h:1"),
            ("host", "h:1")
        ])));
        assert!(!csrf_ok(&headers(&[
            ("origin", "http://evil"),
            ("host", "h:1"),
            ("x-convene-admin", "1")
        ])));
    }
}
