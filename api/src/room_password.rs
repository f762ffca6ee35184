//! Room passwords: the write-only `password` field of a room (4..=128
//! characters; null or "" clears it), hashed with argon2id off the async
//! threads; joins without a token verify against the hash.

use serde_json::{Map, Value};

use crate::error::{ApiError, ApiResult};

/// Shortest and longest accepted room password, in characters.
pub const MIN_CHARS: usize = 4;
pub const MAX_CHARS: usize = 128;

/// The `password` field of a room body: `None` when absent, `Some(None)` to
/// clear (null or ""), `Some(Some(plain))` to set.
pub fn field(body: &Map<String, Value>) -> Result<Option<Option<String>>, String> {
    match body.get("password") {
        None => Ok(None),
        Some(Value::Null) => Ok(Some(None)),
        Some(Value::String(s)) if s.is_empty() => Ok(Some(None)),
        Some(Value::String(s)) => {
            let n = s.chars().count();
            if (MIN_CHARS..=MAX_CHARS).contains(&n) {
                Ok(Some(Some(s.clone())))
            } else {
                Err(format!(
                    "must be {MIN_CHARS} to {MAX_CHARS} characters, or null/\"\" to clear"
                ))
            }
        }
        Some(_) => Err("must be a string or null".into()),
    }
}

/// Validates and hashes the body's `password` (on a blocking thread: argon2
/// is slow on purpose). `None`: the body does not touch the password.
pub async fn hashed_change(body: &Map<String, Value>) -> ApiResult<Option<Option<String>>> {
    match field(body).map_err(|m| ApiError::field("password", m))? {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(plain)) => {
            let hash =
                tokio::task::spawn_blocking(move || crate::fleet::auth::hash_password(&plain))
                    .await
                    .map_err(ApiError::internal)?
                    .map_err(ApiError::internal)?;
            Ok(Some(Some(hash)))
        }
    }
}

/// Whether `password` matches the stored argon2 `hash` (constant-time
/// comparison inside argon2's verify). Slow: call it off the async threads.
pub fn verify(hash: &str, password: &str) -> bool {
    crate::fleet::auth::verify_password(hash, password)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Map<String, Value> {
        json!({ "password": v }).as_object().unwrap().clone()
    }

    #[test]
    fn lengths_and_clearing() {
        assert_eq!(field(&Map::new()), Ok(None));
        assert_eq!(field(&body(Value::Null)), Ok(Some(None)));
        assert_eq!(field(&body(json!(""))), Ok(Some(None)));
        assert!(field(&body(json!("abc"))).is_err());
        assert!(field(&body(json!("x".repeat(129)))).is_err());
        assert!(field(&body(json!(1234))).is_err());
        assert_eq!(field(&body(json!("abcd"))), Ok(Some(Some("abcd".into()))));
    }

    #[test]
    fn hashes_verify_and_are_salted() {
        let a = crate::fleet::auth::hash_password("secret pw").unwrap();
        let b = crate::fleet::auth::hash_password("secret pw").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("$argon2id$"));
        assert!(verify(&a, "secret pw"));
        assert!(!verify(&a, "secret pX"));
    }
}
