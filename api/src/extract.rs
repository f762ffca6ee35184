//! Request extractors with the API's error shape: JSON object bodies and list queries.

use axum::body::Bytes;
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

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
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
