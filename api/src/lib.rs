//! Convene's REST API: the Digital Samba-compatible `/api/v1` surface, and
//! the Croom fleet management API in [`fleet`] (its own router and error shape).
//!
//! Layers: thin axum handlers in [`routes`] -> rules in [`domain`] (and
//! [`settings`] for rooms) -> SQL in [`store`], which applies the domain's
//! state rules inside its write transactions. Authentication and rate
//! limiting run as middleware ([`auth`]) before any handler or lookup. The
//! OpenAPI document is generated from the handlers' annotations by the same
//! router that serves them, so a served route cannot be missing from it.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod auth;
pub mod breakouts;
pub mod collab;
pub mod csv;
pub mod domain;
pub mod error;
pub mod extract;
pub mod files;
pub mod fleet;
pub mod guest_links;
pub mod libraries;
pub mod limits;
pub mod live;
pub mod live_events;
pub mod permissions;
pub mod phone;
pub mod room_password;
pub mod routes;
pub mod settings;
pub mod signed;
pub mod store;
pub mod summary;
pub mod tokens;
pub mod webhooks;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ApiResult};
pub use routes::rooms::RESERVED_PATHS;
pub use store::Db;

/// Settings of the API that come from the server's configuration.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Base of room URLs and token links, without a trailing slash.
    pub public_url: String,
    pub rate_limit_per_minute: u32,
    /// A caller's address is the last `X-Forwarded-For` entry (one trusted
    /// reverse proxy in front).
    pub trust_proxy: bool,
    pub max_body_bytes: usize,
    /// Webhook delivery and the SSRF guard.
    pub webhooks: webhooks::WebhookConfig,
    /// Where recordings are written (`<recordings-dir>/<recording id>/`).
    pub recordings_dir: std::path::PathBuf,
    /// Content libraries: where files are kept, limits, PDF conversion.
    pub libraries: libraries::LibraryConfig,
    /// Allow RTMP restream targets on loopback, private, link-local...
    /// addresses (`--restream-allow-private`; tests and closed networks).
    pub restream_allow_private: bool,
}

impl ApiConfig {
    pub fn room_url(&self, friendly_url: &str) -> String {
        format!("{}/{friendly_url}", self.public_url.trim_end_matches('/'))
    }
}

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub db: Db,
    pub config: Arc<ApiConfig>,
    pub limiter: Arc<auth::RateLimiter>,
    /// Per-address limits before authentication (shared with signaling).
    pub ip_limits: Arc<limits::IpLimits>,
    /// Delivery into live sessions (the server's signaling layer).
    pub live: Arc<dyn live::LiveRooms>,
    /// PDFs waiting for their conversion to slides ([`libraries::start`]
    /// runs the workers).
    pub library_jobs: Arc<libraries::Jobs>,
    /// The SIP endpoint's live calls (`phone::NoPhone` without `--sip-addr`).
    pub phone: Arc<dyn phone::PhoneCalls>,
}

impl ApiState {
    pub fn new(db: Db, config: ApiConfig) -> ApiState {
        let library_jobs = Arc::new(libraries::Jobs::new(config.libraries.queue));
        ApiState {
            library_jobs,
            db,
            config: Arc::new(config),
            limiter: Arc::new(auth::RateLimiter::default()),
            ip_limits: Arc::new(limits::IpLimits::default()),
            live: Arc::new(live::NoLiveRooms),
            phone: Arc::new(phone::NoPhone),
        }
    }

    /// Attaches the SIP endpoint's calls.
    pub fn with_phone(mut self, phone: Arc<dyn phone::PhoneCalls>) -> ApiState {
        self.phone = phone;
        self
    }

    /// Attaches the live-room delivery of the signaling layer.
    pub fn with_live(mut self, live: Arc<dyn live::LiveRooms>) -> ApiState {
        self.live = live;
        self
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Convene API",
        description = "Self-hosted video conferencing, compatible with Digital Samba's REST API.",
    ),
    modifiers(&SecuritySchemes),
    security(("bearer" = []), ("basic" = [])),
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The team's developer key"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("team id : developer key"))
                    .build(),
            ),
        );
    }
}

/// The authenticated `/api/v1` routes and their OpenAPI document.
fn api_routes() -> OpenApiRouter<ApiState> {
    use routes::{chat, defaults, live, messages, polls, questions, quizzes, roles, rooms};
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(defaults::get_defaults, defaults::patch_defaults))
        .routes(routes!(
            defaults::get_defaults_slash,
            defaults::patch_defaults_slash
        ))
        .routes(routes!(
            rooms::create_room,
            rooms::list_rooms,
            rooms::delete_rooms
        ))
        .routes(routes!(rooms::delete_rooms_by_tags))
        .routes(routes!(
            rooms::get_room,
            rooms::update_room,
            rooms::delete_room
        ))
        .routes(routes!(rooms::delete_room_resources))
        .routes(routes!(rooms::create_token))
        .routes(routes!(
            routes::guest_links::create_guest_link,
            routes::guest_links::list_guest_links
        ))
        .routes(routes!(routes::guest_links::delete_guest_link))
        .routes(routes!(
            routes::breakouts::create_breakouts,
            routes::breakouts::list_breakouts,
            routes::breakouts::delete_breakouts
        ))
        .routes(routes!(routes::breakouts::open_breakouts))
        .routes(routes!(routes::breakouts::close_breakouts))
        .routes(routes!(routes::breakouts::broadcast_to_breakouts))
        .routes(routes!(routes::breakouts::move_participant))
        .routes(routes!(roles::list_roles, roles::create_role))
        .routes(routes!(
            roles::get_role,
            roles::update_role,
            roles::delete_role
        ))
        .routes(routes!(roles::list_permissions))
        .routes(routes!(live::room_live_count))
        .routes(routes!(live::team_live_count))
        .routes(routes!(live::live_rooms))
        .routes(routes!(live::live_rooms_participants))
        .routes(routes!(live::room_live))
        .routes(routes!(live::room_live_participants))
        .routes(routes!(routes::moderation::mute_participant))
        .routes(routes!(routes::moderation::remove_participant))
        .routes(routes!(routes::moderation::set_participant_role))
        .routes(routes!(routes::sessions::list_sessions))
        .routes(routes!(routes::sessions::room_sessions))
        .routes(routes!(routes::sessions::get_session))
        .routes(routes!(routes::sessions::session_participants))
        .routes(routes!(routes::sessions::session_statistics))
        .routes(routes!(routes::sessions::end_session))
        .routes(routes!(routes::sessions::list_participants))
        .routes(routes!(routes::sessions::room_participants))
        .routes(routes!(routes::sessions::get_participant))
        .routes(routes!(routes::sessions::participant_sessions))
        .routes(routes!(routes::sessions::raise_hand))
        .routes(routes!(routes::sessions::lower_hand))
        .routes(routes!(routes::recordings::delete_session_recordings))
        .routes(routes!(routes::recordings::list_recordings))
        .routes(routes!(routes::recordings::list_archived))
        .routes(routes!(
            routes::recordings::get_recording,
            routes::recordings::delete_recording
        ))
        .routes(routes!(routes::recordings::download_link))
        .routes(routes!(routes::recordings::list_bookmarks))
        .routes(routes!(routes::recordings::archive_recording))
        .routes(routes!(routes::recordings::unarchive_recording))
        .routes(routes!(routes::recordings::delete_room_recordings))
        .routes(routes!(routes::recordings::start_recording))
        .routes(routes!(routes::recordings::stop_recording))
        .routes(routes!(routes::restreamers::start_restreaming))
        .routes(routes!(routes::restreamers::stop_restreaming))
        .routes(routes!(routes::phone::phone_connect))
        .routes(routes!(routes::phone::phone_disconnect))
        .routes(routes!(routes::phone::phone_participants))
        .routes(routes!(routes::phone::mute_phone_participant))
        .routes(routes!(routes::phone::unmute_phone_participant))
        .routes(routes!(
            routes::recordings::eyeson_start,
            routes::recordings::eyeson_stop
        ))
        .routes(routes!(
            routes::sessions::delete_session_transcripts,
            routes::transcripts::session_transcripts
        ))
        .routes(routes!(
            routes::transcripts::room_transcripts,
            routes::transcripts::delete_room_transcripts
        ))
        .routes(routes!(routes::transcripts::export_room_transcripts))
        .routes(routes!(routes::transcripts::export_session_transcripts))
        .routes(routes!(routes::sessions::delete_session_summaries))
        .routes(routes!(routes::summaries::session_summary))
        .routes(routes!(routes::summaries::delete_room_summaries))
        .routes(routes!(routes::sessions::delete_session_resources))
        .routes(routes!(routes::statistics::team_statistics))
        .routes(routes!(routes::statistics::rooms_statistics))
        .routes(routes!(routes::statistics::participants_statistics))
        .routes(routes!(routes::statistics::sessions_statistics))
        .routes(routes!(routes::statistics::recordings_statistics))
        .routes(routes!(routes::statistics::current_statistics))
        .routes(routes!(routes::statistics::team_current_statistics))
        .routes(routes!(routes::statistics::room_statistics))
        .routes(routes!(routes::statistics::room_current_statistics))
        .routes(routes!(routes::statistics::participant_statistics))
        .routes(routes!(chat::list_chat, chat::send_chat, chat::delete_chat))
        .routes(routes!(chat::export_chat))
        .routes(routes!(chat::delete_session_chat))
        .routes(routes!(messages::send_message))
        .routes(routes!(
            polls::list_polls,
            polls::create_poll,
            polls::delete_polls
        ))
        .routes(routes!(
            polls::get_poll,
            polls::update_poll,
            polls::delete_poll
        ))
        .routes(routes!(polls::poll_results))
        .routes(routes!(polls::export_polls))
        .routes(routes!(polls::poll_template))
        .routes(routes!(polls::import_polls))
        .routes(routes!(polls::publish_results))
        .routes(routes!(polls::delete_session_polls))
        .routes(routes!(
            questions::list_questions,
            questions::create_question,
            questions::delete_questions
        ))
        .routes(routes!(questions::export_questions))
        .routes(routes!(questions::delete_session_questions))
        .routes(routes!(
            questions::update_question,
            questions::delete_question
        ))
        .routes(routes!(questions::dismiss_question))
        .routes(routes!(questions::reopen_question))
        .routes(routes!(
            questions::vote_question,
            questions::unvote_question
        ))
        .routes(routes!(questions::create_answer))
        .routes(routes!(questions::update_answer, questions::delete_answer))
        .routes(routes!(questions::start_live_answer))
        .routes(routes!(questions::stop_live_answer))
        .routes(routes!(questions::cancel_live_answer))
        .routes(routes!(
            quizzes::list_quizzes,
            quizzes::create_quiz,
            quizzes::delete_quizzes
        ))
        .routes(routes!(
            quizzes::get_quiz,
            quizzes::update_quiz,
            quizzes::delete_quiz
        ))
        .routes(routes!(quizzes::quiz_results))
        .routes(routes!(quizzes::export_quizzes))
        .routes(routes!(quizzes::quiz_template))
        .routes(routes!(quizzes::import_quizzes))
        .routes(routes!(quizzes::delete_session_quizzes))
        .routes(routes!(
            routes::webhooks::list_webhooks,
            routes::webhooks::create_webhook
        ))
        .routes(routes!(
            routes::webhooks::get_webhook,
            routes::webhooks::update_webhook,
            routes::webhooks::delete_webhook
        ))
        .routes(routes!(routes::webhooks::list_events))
        .routes(routes!(routes::webhooks::list_deliveries))
        .routes(routes!(routes::webhooks::get_delivery))
        .routes(routes!(routes::webhooks::redeliver))
        .routes(routes!(
            routes::libraries::list_libraries,
            routes::libraries::create_library
        ))
        .routes(routes!(routes::libraries::get_library))
        .routes(routes!(
            routes::libraries::list_files,
            routes::libraries::upload_file
        ))
        .routes(routes!(
            routes::libraries::get_file,
            routes::libraries::delete_file
        ))
        .routes(routes!(routes::libraries::download_link))
}

/// The OpenAPI document of every `/api/v1` route.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api_routes().split_for_parts();
    doc.paths.paths.insert(
        "/api/v1/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This OpenAPI document (no authentication)"))
                .response("200", utoipa::openapi::Response::new("OpenAPI 3.1 JSON")),
        ),
    );
    doc.paths.paths.insert(
        "/api/v1/recordings/{recording}/media".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some(
                    "A signed download link (from .../download): the composite MP4, or the \
                     track file `file`; no other authentication; Range requests supported",
                ))
                .response("200", utoipa::openapi::Response::new("The file"))
                .response("206", utoipa::openapi::Response::new("Part of the file"))
                .response(
                    "403",
                    utoipa::openapi::Response::new("Invalid or expired link"),
                ),
        ),
    );
    doc.paths.paths.insert(
        "/api/v1/libraries/{library}/files/{file}/media".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some(
                    "A signed download link (from .../download): the file, or the slide \
                     `page` as a PNG; no other authentication; Range requests supported",
                ))
                .response("200", utoipa::openapi::Response::new("The file"))
                .response("206", utoipa::openapi::Response::new("Part of the file"))
                .response(
                    "403",
                    utoipa::openapi::Response::new("Invalid or expired link"),
                ),
        ),
    );
    doc
}

/// The full HTTP surface of the API crate: `/api/v1/...` and `/health`.
pub fn router(state: ApiState) -> Router {
    let (api, _) = api_routes().split_for_parts();
    let doc = Arc::new(openapi());
    let max_body = state.config.max_body_bytes;
    let api = api
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_team,
        ))
        .with_state(state.clone());
    Router::new()
        .merge(api)
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { Json(doc.as_ref().clone()) }
            }),
        )
        .route(
            "/api/v1/recordings/{recording}/media",
            get(routes::recordings::serve_media).with_state(state.clone()),
        )
        .route(
            "/api/v1/libraries/{library}/files/{file}/media",
            get(routes::libraries::serve_media).with_state(state.clone()),
        )
        .route("/health", get(health).with_state(state))
        .layer(DefaultBodyLimit::max(max_body))
        .method_not_allowed_fallback(method_not_allowed)
}

/// JSON 404 for unknown `/api` paths.
pub async fn route_not_found(method: Method, uri: Uri) -> Response {
    ApiError::NotFound(format!("no such endpoint: {method} {}", uri.path())).into_response()
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let mut r = ApiError::BadRequest(format!("method {method} is not allowed on {}", uri.path()))
        .into_response();
    *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    r
}

#[derive(serde::Serialize)]
struct Health {
    status: &'static str,
    checks: serde_json::Map<String, serde_json::Value>,
}

/// `GET /health`: 200 when every check passes, 503 naming the failing one.
async fn health(State(state): State<ApiState>) -> Response {
    let db_ok = tokio::time::timeout(std::time::Duration::from_secs(3), state.db.ping())
        .await
        .map(|r| r.is_ok())
        .unwrap_or(false);
    let mut checks = serde_json::Map::new();
    checks.insert(
        "database".into(),
        serde_json::Value::from(if db_ok { "ok" } else { "failing" }),
    );
    let (status, code) = if db_ok {
        ("healthy", StatusCode::OK)
    } else {
        ("unhealthy", StatusCode::SERVICE_UNAVAILABLE)
    };
    (code, Json(Health { status, checks })).into_response()
}
