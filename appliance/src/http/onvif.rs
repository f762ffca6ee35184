//! The camera API's ONVIF routes (Rotoclear seed): `GET /api/onvif/discover`
//! (WS-Discovery on the LAN, `onvif::discovery`) and
//! `POST /api/onvif/{device_id}/{service}` (a SOAP request relayed to one
//! discovered camera with its credentials added, `onvif::soap`). Same guard
//! and rate limits as the rest of the camera API ("api" class).

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;

use super::{ApiError, ApiResult, AppState};
use crate::onvif::{self, soap};

/// Largest body the route accepts before the configured limit is checked
/// (the configuration's own limit is at most 4 MiB).
const ROUTE_BODY_LIMIT: usize = 4 * 1024 * 1024;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/onvif/discover", get(discover))
        .route(
            "/api/onvif/{device_id}/{service}",
            post(proxy).layer(DefaultBodyLimit::max(ROUTE_BODY_LIMIT)),
        )
}

async fn discover(State(st): State<Arc<AppState>>) -> ApiResult {
    let cfg = st.config().onvif;
    let _one = st.onvif.running.lock().await;
    let found = onvif::discovery::discover(&cfg).await.map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "DISCOVERY_FAILED",
            "ONVIF discovery could not run",
        )
        .details(json!(e.to_string()))
    })?;
    st.onvif.record(&found);
    Ok(Json(json!({ "devices": found })))
}

/// A client for cameras: no redirects (a camera cannot send the appliance
/// elsewhere), the appliance's TLS trust.
fn camera_client(st: &AppState) -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .use_preconfigured_tls((*st.outbound.tls).clone())
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("convene-appliance/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default()
    })
}

/// The URL of `service` on `dev`: an announced service URL whose last path
/// segment is `service`, else the first one with its last segment replaced
/// (cameras serve `/onvif/<service>` side by side; same host and port).
fn service_url(dev: &onvif::DiscoveredDevice, service: &str) -> Option<String> {
    let valid = !service.is_empty()
        && service.len() <= 64
        && service
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return None;
    }
    let last = |u: &str| u.rsplit('/').next().map(str::to_string);
    if let Some(u) = dev
        .services
        .iter()
        .find(|u| last(u).as_deref() == Some(service))
    {
        return Some(u.clone());
    }
    let mut u = reqwest::Url::parse(dev.services.first()?).ok()?;
    u.path_segments_mut().ok()?.pop().push(service);
    u.set_query(None);
    Some(u.to_string())
}

async fn proxy(
    State(st): State<Arc<AppState>>,
    p: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Path((device_id, service)) =
        p.map_err(|e| ApiError::validation(format!("bad path: {e}")))?;
    let cfg = st.config().onvif;
    if body.len() > cfg.max_body_bytes {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!(
                "the SOAP request is larger than {} bytes",
                cfg.max_body_bytes
            ),
        ));
    }
    let ctype = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let media = ctype
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !matches!(media.as_str(), "application/soap+xml" | "text/xml") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "INVALID_FORMAT",
            "Content-Type must be application/soap+xml (SOAP 1.2) or text/xml (SOAP 1.1)",
        ));
    }
    let dev = st.onvif.get(&device_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "no discovered ONVIF device `{device_id}` (run GET /api/onvif/discover first)"
        ))
    })?;
    let url = service_url(&dev, &service).ok_or_else(|| {
        ApiError::validation(format!(
            "`{service}` is not a service name (letters, digits, `_` and `-`)"
        ))
    })?;
    let cred = cfg.credential_for(&dev);
    let token = cred.map(|c| soap::token(&c.username, &c.password));
    let request = soap::prepare(&body, token.as_ref()).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "INVALID_FORMAT",
            "the body is not a SOAP envelope",
        )
        .details(json!(e.to_string()))
    })?;
    let unreachable = |detail: String| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "CAMERA_NOT_CONNECTED",
            format!("ONVIF device {} did not answer", dev.uuid),
        )
        .details(json!(detail))
    };
    let sent = camera_client(&st)
        .post(&url)
        .header(header::CONTENT_TYPE, &ctype)
        .timeout(cfg.request_timeout())
        .body(request)
        .send()
        .await
        .map_err(|e| unreachable(without_url(e)))?;
    let status = sent.status();
    let rtype = sent.headers().get(header::CONTENT_TYPE).cloned();
    // A redirect is relayed to the client as it is, never followed.
    let location = sent.headers().get(header::LOCATION).cloned();
    let answer = read_capped(sent, cfg.max_body_bytes)
        .await
        .map_err(unreachable)?;
    let mut resp = (
        StatusCode::from_u16(status.as_u16()).unwrap_or(StatusCode::BAD_GATEWAY),
        answer,
    )
        .into_response();
    if let Some(t) = rtype {
        resp.headers_mut().insert(header::CONTENT_TYPE, t);
    }
    if let Some(l) = location {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    resp.headers_mut().insert(
        "x-onvif-credentials",
        header::HeaderValue::from_static(if cred.is_some() { "configured" } else { "none" }),
    );
    Ok(resp)
}

fn without_url(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection refused or unreachable".into()
    } else {
        e.without_url().to_string()
    }
}

/// The answer's body, refused when it is larger than `max`.
async fn read_capped(mut r: reqwest::Response, max: usize) -> Result<Bytes, String> {
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(without_url)? {
        if out.len() + chunk.len() > max {
            return Err(format!("the answer is larger than {max} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn services_are_found_by_name_or_placed_beside_the_announced_one() {
        let dev = onvif::DiscoveredDevice {
            uuid: "urn:uuid:x".into(),
            name: String::new(),
            hardware: String::new(),
            location: "10.0.0.5".into(),
            address: "10.0.0.5".parse().unwrap(),
            services: vec![
                "http://10.0.0.5:8080/onvif/device_service".into(),
                "http://10.0.0.5/onvif/Media2".into(),
            ],
            scopes: vec![],
            types: vec![],
        };
        assert_eq!(
            service_url(&dev, "Media2").unwrap(),
            "http://10.0.0.5/onvif/Media2"
        );
        assert_eq!(
            service_url(&dev, "ptz_service").unwrap(),
            "http://10.0.0.5:8080/onvif/ptz_service"
        );
        for bad in ["", "../x", "a/b", "a?b", "%2e%2e", &"a".repeat(65)] {
            assert!(service_url(&dev, bad).is_none(), "{bad}");
        }
    }
}
