//! Request extractors with the API's error shape: JSON object bodies and list queries.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldErrors};
use crate::store::{Order, Page};

/// A JSON object body. An empty body counts as `{}` (clients send
/// `Content-Type: application/json` with no body); anything but an object is refused.
#[derive(Debug, Clone, Default)]
pub struct JsonObject(pub Map<String, Value>);

/// The body of a request, read under the router's `DefaultBodyLimit` as
/// axum's `Bytes` extractor reads it. A body refused as too large is then
/// read to its end and dropped (up to [`DRAIN_BYTES`] more, for at most
/// [`DRAIN_TIME`]) before the 413 goes out: a connection closed with
/// unread request bytes is reset by the kernel, and a client still sending
/// its body then saw a reset where the 413 should have been (a body a
/// little over the limit is the common case: a client that does not know
/// it). Bodies larger than that still end in a closed connection.
pub(crate) async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Bytes, axum::extract::rejection::BytesRejection> {
    let (parts, body) = req.into_parts();
    let slot = Arc::new(Mutex::new(Some(body)));
    let req = Request::from_parts(parts, Body::new(Shared(slot.clone())));
    let read = Bytes::from_request(req, state).await;
    if let Err(rejection) = &read
        && rejection.status() == StatusCode::PAYLOAD_TOO_LARGE
    {
        let rest = slot.lock().ok().and_then(|mut b| b.take());
        if let Some(rest) = rest {
            drain(rest).await;
        }
    }
    read
}

/// Most bytes of a refused body read and dropped before the 413.
pub(crate) const DRAIN_BYTES: usize = 1024 * 1024;
/// Longest wait for them.
pub(crate) const DRAIN_TIME: Duration = Duration::from_secs(2);

async fn drain(body: Body) {
    use futures_util::StreamExt;
    let mut stream = body.into_data_stream();
    let _ = tokio::time::timeout(DRAIN_TIME, async {
        let mut left = DRAIN_BYTES;
        while let Some(Ok(chunk)) = stream.next().await {
            if chunk.len() > left {
                break;
            }
            left -= chunk.len();
        }
    })
    .await;
}

/// A request body axum's extractor reads through, while [`read_body`]
/// keeps the right to take back (and drain) what it left unread.
struct Shared(Arc<Mutex<Option<Body>>>);

impl http_body::Body for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        match self.0.lock() {
            Ok(mut guard) => match guard.as_mut() {
                Some(body) => Pin::new(body).poll_frame(cx),
                None => Poll::Ready(None),
            },
            Err(_) => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0
            .lock()
            .ok()
            .and_then(|b| b.as_ref().map(http_body::Body::size_hint))
            .unwrap_or_default()
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .ok()
            .is_none_or(|b| b.as_ref().is_none_or(http_body::Body::is_end_stream))
    }
}

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_body(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge("request body is too large".into())
            } else {
                ApiError::BadRequest(format!("could not read the request body: {rejection}"))
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(JsonObject(Map::new()));
        }
        match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Object(map)) => Ok(JsonObject(map)),
            Ok(_) => Err(ApiError::BadRequest(
                "the request body must be a JSON object".into(),
            )),
            Err(e) => Err(ApiError::BadRequest(format!("invalid JSON body: {e}"))),
        }
    }
}

/// The raw query pairs of a request, in order (repeated keys kept).
#[derive(Debug, Clone, Default)]
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(query)?;
        Ok(QueryPairs(pairs))
    }
}

fn serde_urlencoded_pairs(query: &str) -> Result<Vec<(String, String)>, ApiError> {
    axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
        &format!("/?{query}")
            .parse()
            .map_err(|_| ApiError::BadRequest("malformed query string".into()))?,
    )
    .map(|q| q.0)
    .map_err(|e| ApiError::BadRequest(format!("malformed query string: {e}")))
}

impl QueryPairs {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key` (also `key[]`), with comma-separated values split.
    pub fn all(&self, key: &str) -> Vec<String> {
        let bracket = format!("{key}[]");
        self.0
            .iter()
            .filter(|(k, _)| k == key || *k == bracket)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    }

    /// The pagination parameters of every list: `limit` 1..100 (default 100),
    /// `offset` >= 0, `order` asc|desc (default desc), `after` cursor.
    pub fn page(&self) -> Result<(Page, Option<String>), ApiError> {
        let mut errors = FieldErrors::new();
        let limit = match self.get("limit") {
            None | Some("") => 100,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    errors.insert(
                        "limit".into(),
                        vec!["must be an integer between 1 and 100".into()],
                    );
                    100
                }
            },
        };
        let offset = match self.get("offset") {
            None | Some("") => 0,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if n >= 0 => n,
                _ => {
                    errors.insert(
                        "offset".into(),
                        vec!["must be a non-negative integer".into()],
                    );
                    0
                }
            },
        };
        let order = match self.get("order").map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("desc") => Order::Desc,
            Some("asc") => Order::Asc,
            Some(_) => {
                errors.insert("order".into(), vec!["must be `asc` or `desc`".into()]);
                Order::Desc
            }
        };
        let after = self
            .get("after")
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if !errors.is_empty() {
            return Err(ApiError::fields(errors));
        }
        Ok((
            Page {
                limit,
                offset,
                order,
            },
            after,
        ))
    }
}

/// The shape of every list response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct List<T> {
    pub total_count: i64,
    pub data: Vec<T>,
}
