//! Who may join a room: a join's token, room, name and role checked
//! against the store, before the room actor admits it. Shared by the
//! WebSocket `join` and WHIP's `POST` (`whip.rs`).

use convene_api::guest_links::{self, Unusable};
use convene_api::store::guest_links::GuestLinkRecord;
use convene_api::tokens::{self, TokenError};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::outbox::Outbox;
use super::room::JoinRequest;
use super::{Signaling, wire};
use convene_api::store::rooms::RoomRecord;

/// Why a join was refused: a protocol error code and a message.
pub(super) type Refusal = (&'static str, String);

/// A refused join as the client is told it: the code and message, and for
/// `PASSWORD_RATE_LIMITED` the seconds to wait (`retry_after`).
#[derive(Debug)]
pub(super) struct JoinRefusal {
    pub(super) code: &'static str,
    pub(super) message: String,
    pub(super) retry_after: Option<u64>,
}

impl From<Refusal> for JoinRefusal {
    fn from((code, message): Refusal) -> Self {
        JoinRefusal {
            code,
            message,
            retry_after: None,
        }
    }
}

fn refuse(code: &'static str, message: String) -> JoinRefusal {
    (code, message).into()
}

fn token_refusal(e: TokenError) -> Refusal {
    match e {
        TokenError::Expired => ("TOKEN_EXPIRED", "your room token has expired".into()),
        TokenError::NotYetValid => (
            "TOKEN_NOT_YET_VALID",
            "your room token is not valid yet".into(),
        ),
        TokenError::WrongRoom => ("TOKEN_INVALID", "your token is for another room".into()),
        TokenError::MissingExp => ("TOKEN_INVALID", "your token has no expiry (exp)".into()),
        e => {
            tracing::debug!(error = %e, "room token refused");
            ("TOKEN_INVALID", NOT_VALID.into())
        }
    }
}

/// The one answer to a token that is not ours: a forged signature and a
/// token naming a room (or team) that does not exist read the same, so a
/// forged token tells nobody which rooms exist.
const NOT_VALID: &str = "your room token is not valid";

/// What a successful authentication yields.
pub(super) struct Admission {
    pub(super) room: RoomRecord,
    pub(super) req: JoinRequest,
}

/// Authenticates a join (a WebSocket `join`, or a WHIP POST): the room,
/// the token, the name and the role; what the room actor then admits.
#[allow(clippy::too_many_arguments)]
pub(super) async fn admit(
    sig: &Signaling,
    out: Outbox,
    conn: u64,
    room_key: Option<String>,
    token: Option<String>,
    name: Option<String>,
    resume: Option<String>,
    client: Option<wire::ClientInfo>,
    password: Option<String>,
    guest: Option<String>,
    ip: Option<std::net::IpAddr>,
) -> Result<Admission, JoinRefusal> {
    let db = &sig.db;
    let internal = |e: convene_api::store::StoreError| {
        tracing::error!(error = %e, "signaling store error");
        (
            "INTERNAL",
            "the server could not look up the room".to_string(),
        )
    };
    let peeked = token.as_deref().and_then(tokens::peek);
    if token.is_some() && peeked.is_none() {
        return Err(refuse(
            "TOKEN_INVALID",
            "the room token is malformed".into(),
        ));
    }
    let room_key = room_key
        .filter(|r| !r.is_empty())
        .or_else(|| peeked.as_ref().and_then(|c| c.rd.clone()))
        .ok_or(("ROOM_NOT_FOUND", "no room given".to_string()))?;
    // Find the room: within the token's team when there is one.
    let room = match peeked.as_ref().and_then(|c| c.td.clone()) {
        Some(td) => db.room(&td, &room_key).await.map_err(internal)?,
        None => {
            let mut found = db.room_by_public_key(&room_key).await.map_err(internal)?;
            if found.len() == 1 { found.pop() } else { None }
        }
    };
    let room = match room {
        Some(r) => r,
        // With a token, an unknown room is answered as a bad signature
        // would be (before any signature could be checked).
        None if token.is_some() => return Err(refuse("TOKEN_INVALID", NOT_VALID.into())),
        None => {
            return Err(refuse(
                "ROOM_NOT_FOUND",
                format!("there is no room '{room_key}'"),
            ));
        }
    };
    let settings = &room.settings;
    let (claims, fingerprint) = match &token {
        Some(t) => {
            let team = db
                .team_by_id(&room.team_id)
                .await
                .map_err(internal)?
                .ok_or(("TOKEN_INVALID", NOT_VALID.to_string()))?;
            let claims = tokens::verify(
                t,
                &team.developer_key,
                &team.id,
                &room.id,
                &room.friendly_url,
            )
            .map_err(token_refusal)?;
            (
                Some(claims),
                Some(hex::encode(Sha256::digest(t.as_bytes()))),
            )
        }
        None => (None, None),
    };
    // A guest link (without a token) is the invitation: it stands in for
    // the room token of a private room and for the room password.
    let guest_link = match guest.filter(|g| !g.is_empty()) {
        Some(secret) if claims.is_none() => Some(check_guest(sig, &room.id, &secret, ip).await?),
        _ => None,
    };
    let private = settings.get("privacy").and_then(Value::as_str) == Some("private");
    if private && claims.is_none() && guest_link.is_none() {
        return Err(refuse(
            "TOKEN_REQUIRED",
            "this room is private: a room token is required to join".into(),
        ));
    }
    // A room token (minted by the backend) stands in for the password.
    if claims.is_none()
        && guest_link.is_none()
        && let Some(hash) = room.password_hash.clone()
    {
        check_password(sig, &room.id, hash, password, ip).await?;
    }
    let display = claims
        .as_ref()
        .and_then(|c| c.u.clone())
        .or(name)
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());
    let name = match display {
        Some(n) if n.chars().count() <= 100 => n,
        Some(_) => {
            return Err(refuse(
                "BAD_MESSAGE",
                "the name is longer than 100 characters".into(),
            ));
        }
        None => {
            return Err(refuse(
                "NAME_REQUIRED",
                "a display name is required to join".into(),
            ));
        }
    };
    let room_roles: Vec<&str> = settings
        .get("roles")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let role = claims
        .as_ref()
        .and_then(|c| c.role.clone())
        .or_else(|| guest_link.as_ref().map(|l| l.role.clone()))
        .or_else(|| {
            settings
                .get("default_role")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| "attendee".into());
    if !room_roles.contains(&role.as_str()) {
        return Err(refuse(
            "TOKEN_INVALID",
            format!("role '{role}' is not one of this room's roles"),
        ));
    }
    let permissions: Map<String, Value> = db
        .role(&room.team_id, &role)
        .await
        .map_err(internal)?
        .map(|r| r.permissions)
        .ok_or(("TOKEN_INVALID", format!("role '{role}' does not exist")))?;
    let client = client.unwrap_or(wire::ClientInfo {
        kind: None,
        user_agent: None,
        device_id: None,
    });
    let client_kind = match client.kind.as_deref() {
        Some(k @ ("browser" | "appliance" | "bot")) => k.to_string(),
        _ => "browser".into(),
    };
    // A room appliance has no frame encryption: in an E2EE room its
    // camera and microphone would leave in clear (docs/e2ee.md).
    if client_kind == "appliance" && convene_api::settings::e2ee_enabled(settings) {
        return Err(refuse(
            "E2EE_UNSUPPORTED",
            "this room is end-to-end encrypted (e2ee_enabled) and a room appliance cannot \
             encrypt its media: it would leave in clear"
                .into(),
        ));
    }
    Ok(Admission {
        req: JoinRequest {
            name,
            external_id: claims.as_ref().and_then(|c| c.ud.clone()),
            role,
            permissions,
            token_fingerprint: fingerprint,
            token_exp: claims.as_ref().map(|c| c.exp),
            resume: resume.filter(|r| !r.is_empty()),
            client_kind,
            view: None,
            user_agent: client.user_agent.map(|u| u.chars().take(512).collect()),
            device_id: client.device_id.map(|u| u.chars().take(128).collect()),
            out,
            conn,
            // Its use is counted by the room when it admits the join
            // (`spend_guest_use`), so a join refused here or there (room
            // full, lobby declined) does not consume one.
            guest_link: guest_link.map(|l| l.id),
            breakout: claims.as_ref().and_then(|c| c.breakout_id.clone()),
            via: None,
        },
        room,
    })
}

/// Counts one use of the guest link `link_id` as the room admits a join
/// (atomically with the check of its uses left); `GUEST_LINK_USED_UP` when
/// none is left.
pub(super) async fn spend_guest_use(
    db: &convene_api::store::Db,
    link_id: &str,
) -> Result<(), (&'static str, String)> {
    match db
        .count_guest_link_use(link_id, &convene_api::store::now())
        .await
    {
        Ok(true) => Ok(()),
        Ok(false) => {
            let r = guest_refusal(Unusable::UsedUp);
            Err((r.code, r.message))
        }
        Err(e) => {
            tracing::error!(error = %e, "counting a guest link use failed");
            Err(("INTERNAL", "the server could not admit you".into()))
        }
    }
}

/// A name-only join of a room with a password: the password must be given
/// and match, and the room and address must not be rate limited
/// (`password.rs`). argon2's verify is slow on purpose and compares in
/// constant time: it runs on a blocking thread.
async fn check_password(
    sig: &Signaling,
    room_id: &str,
    hash: String,
    password: Option<String>,
    ip: Option<std::net::IpAddr>,
) -> Result<(), JoinRefusal> {
    let Some(password) = password.filter(|p| !p.is_empty()) else {
        return Err(refuse(
            "PASSWORD_REQUIRED",
            "this room has a password: enter it to join".into(),
        ));
    };
    let now = std::time::Instant::now();
    if let Err(wait) = sig.passwords.check(room_id, ip, now) {
        return Err(JoinRefusal {
            code: "PASSWORD_RATE_LIMITED",
            message: format!("too many wrong passwords: try again in {wait} s"),
            retry_after: Some(wait),
        });
    }
    let ok =
        tokio::task::spawn_blocking(move || convene_api::room_password::verify(&hash, &password))
            .await
            .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        sig.passwords.failed(room_id, ip, now);
        Err(refuse(
            "PASSWORD_INVALID",
            "the room password is wrong".into(),
        ))
    }
}

fn guest_refusal(u: Unusable) -> JoinRefusal {
    match u {
        Unusable::Expired => refuse("GUEST_LINK_EXPIRED", "this guest link has expired".into()),
        Unusable::UsedUp => refuse(
            "GUEST_LINK_USED_UP",
            "this guest link has been used as often as it allows".into(),
        ),
    }
}

/// A join with a guest link's secret: the link must exist, be this room's,
/// not be expired or used up. Unknown secrets count against the room and
/// address in the wrong-password limiter (`password.rs`). Lookup is by the
/// SHA-256 of a 128-bit random secret, so its timing tells nothing useful.
async fn check_guest(
    sig: &Signaling,
    room_id: &str,
    secret: &str,
    ip: Option<std::net::IpAddr>,
) -> Result<GuestLinkRecord, JoinRefusal> {
    let now = std::time::Instant::now();
    if let Err(wait) = sig.passwords.check(room_id, ip, now) {
        return Err(JoinRefusal {
            code: "GUEST_LINK_RATE_LIMITED",
            message: format!("too many invalid guest links or passwords: try again in {wait} s"),
            retry_after: Some(wait),
        });
    }
    let link = sig
        .db
        .guest_link_by_hash(&guest_links::secret_hash(secret))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "signaling store error");
            refuse(
                "INTERNAL",
                "the server could not look up the guest link".into(),
            )
        })?;
    let Some(link) = link.filter(|l| l.room_id == room_id) else {
        sig.passwords.failed(room_id, ip, now);
        return Err(refuse(
            "GUEST_LINK_INVALID",
            "this guest link is not valid for this room (unknown or revoked)".into(),
        ));
    };
    guest_links::usable(&link, chrono::Utc::now()).map_err(guest_refusal)?;
    Ok(link)
}
