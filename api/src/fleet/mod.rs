//! The Croom fleet management API (docs/fleet.md): fleet users and their
//! access tokens, device enrollment, devices, groups and policies, in the
//! seed's shapes and error format (`{"error": {"code", "message", "details"}}`).
//!
//! [`router`] has the routes relative to the API base; the server mounts it
//! at `/fleet/api/v1` on the main listener and at `/api/v1` on the optional
//! fleet listener. Layers: handlers (`auth`, `devices`, `groups`,
//! `policies`, `webhooks`) -> rules in [`domain`] -> SQL in `store::fleet`.

pub mod actions;
pub mod alert_rules;
pub mod alerts;
pub mod analytics;
pub mod auth;
pub mod connect;
pub mod devices;
pub mod domain;
pub mod enrollment;
pub mod error;
pub mod extract;
pub mod groups;
pub mod hub;
pub mod policies;
pub mod policy_push;
pub mod rollout;
pub mod updates;
pub mod users;
pub mod webhook_events;
pub mod webhooks;
pub mod wire;
pub mod ws;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, OriginalUri};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use base64::Engine;
use chrono::Utc;

use crate::auth::RateLimiter;
use crate::limits::IpLimits;
use crate::store::fleet::{EnrollmentTokenRecord, FleetUserRecord};
use crate::store::teams::key_hash;
use crate::store::{Db, StoreError, timestamp};
pub use error::{FleetError, FleetResult};

/// Settings of the fleet API that come from the server's configuration.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// Requests per minute per fleet user.
    pub rate_limit_per_minute: u32,
    /// Lifetime of an access token, in seconds.
    pub token_ttl_secs: u64,
    /// A caller's address is the last `X-Forwarded-For` entry.
    pub trust_proxy: bool,
    /// A connected appliance with no heartbeat for this long is closed and
    /// marked `offline`.
    pub offline_after_secs: u64,
    /// How long a remote action waits for the device's answer.
    pub action_timeout_secs: u64,
    /// Alert rules (docs/fleet.md): offline for this many seconds, a
    /// temperature (°C) and a disk use (%) above these; `None`: rule off.
    pub alert_offline_after_secs: Option<u64>,
    pub alert_temperature: Option<f64>,
    pub alert_disk_percent: Option<f64>,
    /// Fleet webhooks may point at loopback, private, link-local...
    /// addresses (the room API's `--webhooks-allow-private`).
    pub webhooks_allow_private: bool,
    /// How long a device has to report an update's version (seconds).
    pub update_confirm_secs: u64,
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            rate_limit_per_minute: 1000,
            token_ttl_secs: 3600,
            trust_proxy: false,
            offline_after_secs: 90,
            action_timeout_secs: 30,
            alert_offline_after_secs: Some(300),
            alert_temperature: Some(80.0),
            alert_disk_percent: Some(90.0),
            webhooks_allow_private: false,
            update_confirm_secs: 900,
        }
    }
}

/// Shared state of the fleet handlers. (No `Debug`: it holds the signing secret.)
#[derive(Clone)]
pub struct FleetState {
    pub db: Db,
    pub config: Arc<FleetConfig>,
    /// Signs and verifies access tokens (`Db::fleet_signing_secret`).
    pub(crate) secret: Arc<[u8]>,
    pub limiter: Arc<RateLimiter>,
    /// Per-address failure limits, shared with the room API and signaling.
    pub ip_limits: Arc<IpLimits>,
    /// Password verifications running at once (each takes ~19 MiB).
    pub(crate) password_checks: Arc<tokio::sync::Semaphore>,
    /// Connected appliances and fleet events.
    pub hub: Arc<hub::Hub>,
}

/// Password verifications allowed at once.
const PASSWORD_CHECKS: usize = 4;

impl FleetState {
    /// Loads (creating on first start) the signing secret.
    pub async fn open(
        db: Db,
        config: FleetConfig,
        ip_limits: Arc<IpLimits>,
    ) -> Result<FleetState, StoreError> {
        let secret: Arc<[u8]> = db.fleet_signing_secret().await?.into();
        // No appliance is connected to a server that has just started.
        db.reset_fleet_connections().await?;
        db.close_dangling_fleet_meetings().await?;
        Ok(FleetState {
            db,
            config: Arc::new(config),
            secret,
            limiter: Arc::new(RateLimiter::default()),
            ip_limits,
            password_checks: Arc::new(tokio::sync::Semaphore::new(PASSWORD_CHECKS)),
            hub: Arc::new(hub::Hub::default()),
        })
    }
}

/// The fleet routes, relative to the API base (`/auth/token`, `/devices`, ...).
pub fn router(state: FleetState) -> Router {
    let authenticated = Router::new()
        .route("/devices", get(devices::list))
        .route(
            "/devices/{id}",
            get(devices::get_one)
                .patch(devices::update)
                .delete(devices::remove),
        )
        .route("/devices/{id}/policies", get(policies::for_device))
        .route("/devices/{id}/actions", post(actions::run))
        .route(
            "/devices/{id}/credential/rotate",
            post(actions::rotate_credential),
        )
        .route(
            "/enrollment-tokens",
            get(enrollment::list).post(devices::create_enrollment_token),
        )
        .route("/enrollment-tokens/{id}", delete(enrollment::revoke))
        .route("/groups", get(groups::list).post(groups::create))
        .route(
            "/groups/{id}",
            get(groups::get_one)
                .patch(groups::update)
                .delete(groups::remove),
        )
        .route(
            "/groups/{id}/devices",
            get(groups::devices).post(groups::add_devices),
        )
        .route(
            "/groups/{id}/devices/{device_id}",
            delete(groups::remove_device),
        )
        .route("/analytics/usage", get(analytics::usage_route))
        .route("/alerts", get(alerts::list))
        .route("/alerts/{id}/acknowledge", post(alerts::acknowledge))
        .route("/users", get(users::list).post(users::create))
        .route("/users/me", get(users::me))
        .route("/users/me/password", post(users::change_own_password))
        .route(
            "/users/{id}",
            get(users::get_one)
                .patch(users::update)
                .delete(users::remove),
        )
        .route("/updates", get(updates::list).post(updates::deploy))
        .route("/updates/releases", post(updates::publish))
        .route("/updates/deployments", get(updates::deployments))
        .route("/updates/deployments/{id}", get(updates::deployment))
        .route("/updates/deployments/{id}/cancel", post(updates::cancel))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route(
            "/webhooks/{id}",
            get(webhooks::get_one).delete(webhooks::remove),
        )
        .route("/webhooks/{id}/deliveries", get(webhooks::deliveries))
        .route("/policies", get(policies::list).post(policies::create))
        .route(
            "/policies/{id}",
            get(policies::get_one)
                .patch(policies::update)
                .delete(policies::remove),
        )
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_user,
        ));
    // Callers without a user token: the token endpoint itself, an
    // appliance enrolling with a one-time enrollment token or connecting
    // with its device credential, and the WebSocket API (whose first
    // message carries the token).
    let open = Router::new()
        .route("/auth/token", post(auth::token))
        .route("/devices/enroll", post(devices::enroll))
        .route("/devices/connect", get(connect::connect))
        .route("/ws", get(ws::upgrade));
    Router::new()
        .merge(authenticated)
        .merge(open)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .with_state(state)
}

/// 404 in the fleet error shape (unknown fleet paths).
pub async fn not_found(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    FleetError::NotFound(format!("no such endpoint: {method} {path}")).into_response()
}

async fn method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    let path: String = uri.path().chars().take(200).collect();
    FleetError::MethodNotAllowed(format!("method {method} is not allowed on {path}"))
        .into_response()
}

/// A random secret with a recognisable prefix: `<prefix>_<32 random bytes, base64url>`.
pub fn random_secret(prefix: &str) -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!(
        "{prefix}_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// Validates and creates a fleet user (the CLI's `fleet user create`).
pub async fn create_user(
    db: &Db,
    email: &str,
    password: &str,
    role: domain::FleetRole,
) -> FleetResult<FleetUserRecord> {
    let email = domain::email(email)
        .map_err(|m| FleetError::Validation(crate::domain::Invalid::field("email", m)))?;
    domain::password(password)
        .map_err(|m| FleetError::Validation(crate::domain::Invalid::field("password", m)))?;
    let password = password.to_string();
    let hash = tokio::task::spawn_blocking(move || auth::hash_password(&password))
        .await
        .map_err(FleetError::internal)??;
    Ok(db.create_fleet_user(&email, &hash, role).await?)
}

/// Issues a one-time enrollment token valid for `ttl_secs`; the token
/// itself is returned once and only its hash is stored.
pub async fn issue_enrollment_token(
    db: &Db,
    ttl_secs: i64,
    group: Option<&str>,
    created_by: Option<&str>,
) -> FleetResult<(EnrollmentTokenRecord, String)> {
    let token = random_secret("cve");
    let expires_at = timestamp(Utc::now() + chrono::Duration::seconds(ttl_secs));
    let record = db
        .create_enrollment_token(&key_hash(&token), group, created_by, &expires_at)
        .await?;
    Ok((record, token))
}
