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
/// read to its end and dropped ([`BodyRest::drain`]) before the 413 goes
/// out: a connection closed with unread request bytes is reset by the
/// kernel, and a client still sending its body then saw a reset where the
/// 413 should have been (a body a little over the limit is the common
/// case: a client that does not know it).
pub(crate) async fn read_body<S: Send + Sync>(
    req: Request,
    state: &S,
) -> Result<Bytes, axum::extract::rejection::BytesRejection> {
    let (req, rest) = keep_rest(req);
    let read = Bytes::from_request(req, state).await;
    if let Err(rejection) = &read
        && rejection.status() == StatusCode::PAYLOAD_TOO_LARGE
    {
        rest.drain().await;
    }
    read
}

/// A request body read whole under the router's `DefaultBodyLimit`, as
/// axum's `Bytes` (same rejection, same answer), except that a body
/// refused as too large is read to its end first (see [`read_body`]): for
/// handlers outside the JSON API that take raw bytes (WHIP and WHEP
/// offers, the console's forms).
#[derive(Debug, Clone)]
pub struct DrainedBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for DrainedBytes {
    type Rejection = axum::extract::rejection::BytesRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        read_body(req, state).await.map(DrainedBytes)
    }
}

/// Reads a request's body of at most `limit` bytes, for handlers that set
/// their own limit. A longer body is refused with [`ReadRefused::TooLarge`] after
/// its rest was read and dropped ([`BodyRest::drain`]).
pub async fn read_at_most(req: Request, limit: usize) -> Result<Bytes, ReadRefused> {
    use futures_util::StreamExt;
    let (req, rest) = keep_rest(req);
    let mut stream = req.into_body().into_data_stream();
    let mut read: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else {
            return Err(ReadRefused::Failed);
        };
        if read.len() + chunk.len() > limit {
            drop(stream);
            rest.drain().await;
            return Err(ReadRefused::TooLarge);
        }
        read.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(read))
}

/// Why [`read_at_most`] gave no body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadRefused {
    /// Longer than the limit.
    TooLarge,
    /// The client stopped sending it, or the connection failed.
    Failed,
}

/// Most bytes of a refused body read and dropped before the answer.
const DRAIN_BYTES: usize = 1024 * 1024;
/// Longest wait for them.
const DRAIN_TIME: Duration = Duration::from_secs(2);

/// Gives `req` a body that whoever reads it reads through, and the right
/// to take back what they left unread: a handler that refuses a body part
/// way (too large, of the wrong type) calls [`BodyRest::drain`] before it
/// answers.
pub fn keep_rest(req: Request) -> (Request, BodyRest) {
    let expects_continue = req
        .headers()
        .get(axum::http::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = req.into_parts();
    let slot = Arc::new(Mutex::new(Slot {
        body: Some(body),
        polled: false,
    }));
    let req = Request::from_parts(parts, Body::new(Shared(slot.clone())));
    (
        req,
        BodyRest {
            slot,
            expects_continue,
        },
    )
}

/// What [`keep_rest`] kept of a request's body.
pub struct BodyRest {
    slot: Arc<Mutex<Slot>>,
    expects_continue: bool,
}

struct Slot {
    body: Option<Body>,
    /// Whether anything asked for the body yet: hyper answers `Expect:
    /// 100-continue` when the body is first polled, and a client that
    /// asked is not sending what nobody polled for.
    polled: bool,
}

impl BodyRest {
    /// Reads what is left of the body and drops it: up to [`DRAIN_BYTES`]
    /// more, for at most [`DRAIN_TIME`]. Larger rests (the length the
    /// client declared says so) are not read: the connection closes, as it
    /// would have. A client that sent `Expect: 100-continue` and whose body
    /// nobody read yet is not asked for it.
    pub async fn drain(self) {
        let rest = match self.slot.lock() {
            Ok(mut slot) if slot.polled || !self.expects_continue => slot.body.take(),
            _ => None,
        };
        let Some(rest) = rest else {
            return;
        };
        if http_body::Body::size_hint(&rest)
            .exact()
            .is_some_and(|left| left > DRAIN_BYTES as u64)
        {
            return;
        }
        use futures_util::StreamExt;
        let mut stream = rest.into_data_stream();
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
}

/// A request body read through a [`Slot`] that [`BodyRest`] can take
/// back.
struct Shared(Arc<Mutex<Slot>>);

impl http_body::Body for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        match self.0.lock() {
            Ok(mut slot) => {
                slot.polled = true;
                match slot.body.as_mut() {
                    Some(body) => Pin::new(body).poll_frame(cx),
                    None => Poll::Ready(None),
                }
            }
            Err(_) => Poll::Ready(None),
        }
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0
            .lock()
            .ok()
            .and_then(|s| s.body.as_ref().map(http_body::Body::size_hint))
            .unwrap_or_default()
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .ok()
            .is_none_or(|s| s.body.as_ref().is_none_or(http_body::Body::is_end_stream))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A body of `chunks` chunks of `size` bytes that counts the chunks
    /// taken from it.
    struct Counted {
        left: usize,
        size: usize,
        taken: Arc<AtomicUsize>,
    }

    impl http_body::Body for Counted {
        type Data = Bytes;
        type Error = std::convert::Infallible;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
            if self.left == 0 {
                return Poll::Ready(None);
            }
            self.left -= 1;
            self.taken.fetch_add(1, Ordering::SeqCst);
            Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(vec![
                b'x';
                self.size
            ])))))
        }

        fn size_hint(&self) -> http_body::SizeHint {
            http_body::SizeHint::with_exact((self.left * self.size) as u64)
        }
    }

    fn request(chunks: usize, size: usize, expect: bool) -> (Request, Arc<AtomicUsize>) {
        let taken = Arc::new(AtomicUsize::new(0));
        let mut b = Request::builder().method("POST").uri("/");
        if expect {
            b = b.header("expect", "100-continue");
        }
        let body = Body::new(Counted {
            left: chunks,
            size,
            taken: taken.clone(),
        });
        (b.body(body).unwrap_or_default(), taken)
    }

    #[tokio::test]
    async fn the_rest_of_a_body_read_in_part_is_drained() {
        use futures_util::StreamExt;
        let (req, taken) = request(10, 1000, false);
        let (req, rest) = keep_rest(req);
        let mut stream = req.into_body().into_data_stream();
        assert!(stream.next().await.is_some());
        drop(stream);
        assert_eq!(taken.load(Ordering::SeqCst), 1);
        rest.drain().await;
        assert_eq!(taken.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn a_body_nobody_asked_for_under_expect_100_continue_is_not_asked_for() {
        let (req, taken) = request(10, 1000, true);
        let (_req, rest) = keep_rest(req);
        rest.drain().await;
        assert_eq!(taken.load(Ordering::SeqCst), 0);
        // Once it was read from, the client was told to go on: drained.
        let (req, taken) = request(10, 1000, true);
        let _ = read_at_most(req, 1500).await;
        assert_eq!(taken.load(Ordering::SeqCst), 10);
    }

    #[tokio::test]
    async fn a_rest_longer_than_the_drain_is_left_alone() {
        let (req, taken) = request(2 * DRAIN_BYTES / 1000, 1000, false);
        let (_req, rest) = keep_rest(req);
        rest.drain().await;
        assert_eq!(taken.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn read_at_most_takes_a_body_to_its_limit_and_refuses_a_longer_one() {
        let (req, _) = request(3, 1000, false);
        assert_eq!(read_at_most(req, 3000).await.map(|b| b.len()), Ok(3000));
        let (req, taken) = request(5, 1000, false);
        assert_eq!(read_at_most(req, 2999).await, Err(ReadRefused::TooLarge));
        // Refused at the third chunk, the other two drained.
        assert_eq!(taken.load(Ordering::SeqCst), 5);
    }
}
