//! Room tokens: HS256 JWTs signed with the team's developer key.
//!
//! [`mint`] builds the claims the token endpoint and the CLI hand out;
//! [`verify`] is what the signaling layer calls before admitting anyone: the
//! algorithm is pinned to HS256, `exp` is required, `nbf` is honoured, and the
//! token's team and room must be those of the room being joined. Backends may
//! mint tokens themselves with the developer key; they are verified the same way.

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::auth::Team;
use crate::domain::{FieldErrors, Invalid};
use crate::store::rooms::RoomRecord;

/// Lifetime of a token whose request names no `exp`: 24 hours.
pub const DEFAULT_LIFETIME_SECS: i64 = 24 * 3600;
/// Allowed clock skew when checking `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// Numbers below this given as `exp` are minutes from now, not unix seconds.
pub const MINUTES_THRESHOLD: i64 = 1_000_000_000;

/// The claims of a room token (Digital Samba's names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoomClaims {
    /// Team id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub td: Option<String>,
    /// Room id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rd: Option<String>,
    /// External user id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ud: Option<String>,
    /// Display name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub u: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initials: Option<String>,
    /// Role name; the room's default_role applies when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    #[serde(
        rename = "breakoutId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub breakout_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub exp: i64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's signature is not valid for this room")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token has no expiry (exp is required)")]
    MissingExp,
    #[error("the token was signed with an algorithm other than HS256")]
    WrongAlgorithm,
    #[error("the token is for another room")]
    WrongRoom,
    #[error("could not sign the token")]
    Signing,
}

fn optional_string(
    body: &Map<String, Value>,
    field: &str,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
        Some(Value::String(_)) => {
            errors.insert(
                field.into(),
                vec![format!("must be at most {max} characters")],
            );
            None
        }
        Some(Value::Number(n)) if field == "ud" => Some(n.to_string()),
        Some(_) => {
            errors.insert(field.into(), vec!["must be a string".into()]);
            None
        }
    }
}

/// The claims of a token request (the token endpoint's body, or the CLI's)
/// for `room` of `team`: names and ids within their lengths, `exp` in the
/// future (24 h when absent), `nbf` before it, `role` one of the room's roles.
pub fn claims_from_request(
    team: &Team,
    room: &RoomRecord,
    body: &Map<String, Value>,
) -> Result<RoomClaims, Invalid> {
    let mut errors = FieldErrors::new();
    let now = Utc::now();
    let ud = optional_string(body, "ud", 256, &mut errors);
    let mut u = optional_string(body, "u", 100, &mut errors);
    if u.is_none() {
        u = optional_string(body, "name", 100, &mut errors);
    }
    let initials = optional_string(body, "initials", 8, &mut errors);
    let role = optional_string(body, "role", 64, &mut errors);
    let avatar = optional_string(body, "avatar", 2048, &mut errors)
        .or_else(|| optional_string(body, "avatar_url", 2048, &mut errors));
    let breakout_id = optional_string(body, "breakoutId", 64, &mut errors);
    let exp = match body.get("exp") {
        None | Some(Value::Null) => now.timestamp() + DEFAULT_LIFETIME_SECS,
        Some(v) => parse_exp(v, now).unwrap_or_else(|m| {
            errors.insert("exp".into(), vec![m]);
            0
        }),
    };
    let nbf = match body.get("nbf") {
        None | Some(Value::Null) => None,
        Some(v) => match parse_nbf(v) {
            Ok(n) => Some(n),
            Err(m) => {
                errors.insert("nbf".into(), vec![m]);
                None
            }
        },
    };
    if !errors.contains_key("exp") && exp <= now.timestamp() {
        errors.insert("exp".into(), vec!["must be in the future".into()]);
    }
    if let Some(n) = nbf
        && !errors.contains_key("exp")
        && n >= exp
    {
        errors.insert("nbf".into(), vec!["must be before exp".into()]);
    }
    if let Some(r) = &role {
        let roles: Vec<&str> = room
            .settings
            .get("roles")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        if !roles.contains(&r.as_str()) {
            errors.insert(
                "role".into(),
                vec![format!(
                    "'{r}' is not one of this room's roles ({})",
                    roles.join(", ")
                )],
            );
        }
    }
    if !errors.is_empty() {
        return Err(Invalid(errors));
    }
    Ok(RoomClaims {
        td: Some(team.id.clone()),
        rd: Some(room.id.clone()),
        ud,
        u,
        initials,
        role,
        avatar,
        breakout_id,
        iat: Some(now.timestamp()),
        nbf,
        exp,
    })
}

/// Signs `claims` with `key` (HS256).
pub fn mint(claims: &RoomClaims, key: &str) -> Result<String, TokenError> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .map_err(|_| TokenError::Signing)
}

/// Reads the claims without checking anything: only for routing a token to
/// the team whose key will then verify it.
pub fn peek(token: &str) -> Option<RoomClaims> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Verifies a token for the room `(room_id, friendly_url)` of team `team_id`,
/// signed with that team's `key`.
pub fn verify(
    token: &str,
    key: &str,
    team_id: &str,
    room_id: &str,
    friendly_url: &str,
) -> Result<RoomClaims, TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
    if header.alg != Algorithm::HS256 {
        return Err(TokenError::WrongAlgorithm);
    }
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    validation.validate_exp = true;
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<RoomClaims>(
        token,
        &DecodingKey::from_secret(key.as_bytes()),
        &validation,
    )
    .map_err(|e| {
        use jsonwebtoken::errors::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidSignature => TokenError::BadSignature,
            ErrorKind::ExpiredSignature => TokenError::Expired,
            ErrorKind::ImmatureSignature => TokenError::NotYetValid,
            ErrorKind::MissingRequiredClaim(c) if c == "exp" => TokenError::MissingExp,
            ErrorKind::InvalidAlgorithm => TokenError::WrongAlgorithm,
            _ => TokenError::Malformed,
        }
    })?;
    let claims = data.claims;
    if let Some(td) = &claims.td
        && td != team_id
    {
        return Err(TokenError::WrongRoom);
    }
    match &claims.rd {
        Some(rd) if rd == room_id || rd == friendly_url => Ok(claims),
        _ => Err(TokenError::WrongRoom),
    }
}

/// Interprets an `exp` value: unix seconds, minutes from now (numbers below
/// [`MINUTES_THRESHOLD`]), or a date-time string.
pub fn parse_exp(value: &serde_json::Value, now: DateTime<Utc>) -> Result<i64, String> {
    match value {
        serde_json::Value::Number(n) => {
            let n = number(n)?;
            if n <= 0 {
                Err("must be a positive number".into())
            } else if n < MINUTES_THRESHOLD {
                n.checked_mul(60)
                    .and_then(|s| now.timestamp().checked_add(s))
                    .ok_or_else(|| "is too large".to_string())
            } else {
                Ok(n)
            }
        }
        serde_json::Value::String(s) => parse_datetime(s),
        _ => Err("must be unix seconds, minutes from now, or a date-time string".into()),
    }
}

/// Interprets an `nbf` value: unix seconds or a date-time string.
pub fn parse_nbf(value: &serde_json::Value) -> Result<i64, String> {
    match value {
        serde_json::Value::Number(n) => {
            let n = number(n)?;
            if n < 0 {
                Err("must not be negative".into())
            } else {
                Ok(n)
            }
        }
        serde_json::Value::String(s) => parse_datetime(s),
        _ => Err("must be unix seconds or a date-time string".into()),
    }
}

fn number(n: &serde_json::Number) -> Result<i64, String> {
    if let Some(i) = n.as_i64() {
        Ok(i)
    } else if let Some(f) = n.as_f64()
        && f.is_finite()
        && f.abs() < 1e15
    {
        Ok(f.trunc() as i64)
    } else {
        Err("is out of range".into())
    }
}

/// RFC 3339 (any fraction), or `YYYY-MM-DD HH:MM:SS` / `YYYY-MM-DDTHH:MM:SS` as UTC.
pub fn parse_datetime(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.timestamp());
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S%.f",
    ] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc().timestamp());
        }
    }
    Err(format!(
        "{s:?} is not a date-time (use RFC 3339, e.g. 2030-01-15T10:30:00Z)"
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn claims(exp: i64) -> RoomClaims {
        RoomClaims {
            td: Some("team".into()),
            rd: Some("room".into()),
            ud: None,
            u: Some("Ann".into()),
            initials: None,
            role: Some("moderator".into()),
            avatar: None,
            breakout_id: None,
            iat: None,
            nbf: None,
            exp,
        }
    }

    #[test]
    fn round_trip_and_room_check() {
        let exp = Utc::now().timestamp() + 600;
        let t = mint(&claims(exp), "k1").unwrap();
        assert_eq!(
            verify(&t, "k1", "team", "room", "fu").unwrap().u.as_deref(),
            Some("Ann")
        );
        assert_eq!(
            verify(&t, "k2", "team", "room", "fu"),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            verify(&t, "k1", "team", "other", "fu"),
            Err(TokenError::WrongRoom)
        );
        assert_eq!(
            verify(&t, "k1", "team2", "room", "fu"),
            Err(TokenError::WrongRoom)
        );
    }

    #[test]
    fn expired_and_unsigned_refused() {
        let t = mint(&claims(Utc::now().timestamp() - 3600), "k").unwrap();
        assert_eq!(
            verify(&t, "k", "team", "room", "fu"),
            Err(TokenError::Expired)
        );
        // alg "none"
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&claims(Utc::now().timestamp() + 60)).unwrap());
        let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
        assert!(verify(&none, "k", "team", "room", "fu").is_err());
    }

    #[test]
    fn exp_forms() {
        let now = Utc::now();
        assert_eq!(parse_exp(&json!(30), now).unwrap(), now.timestamp() + 1800);
        assert_eq!(
            parse_exp(&json!(1_900_000_000), now).unwrap(),
            1_900_000_000
        );
        assert_eq!(
            parse_exp(&json!("2030-01-15T10:30:00Z"), now).unwrap(),
            1_894_703_400
        );
        assert_eq!(
            parse_exp(&json!("2030-01-15T10:30:00.123456789+00:00"), now).unwrap(),
            1_894_703_400
        );
        assert!(parse_exp(&json!("tomorrow"), now).is_err());
        assert!(parse_exp(&json!(true), now).is_err());
        assert!(parse_exp(&json!(-5), now).is_err());
    }
}
