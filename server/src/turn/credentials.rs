//! Ephemeral TURN credentials (the "TURN REST API" scheme shared with coturn's `use-auth-secret`).
//!
//! The username is `<expiry unix seconds>:<room id>.<participant id>` and the
//! password is `base64(HMAC-SHA1(secret, username))`. The room in the username
//! makes a credential room-scoped: the relay records which room an allocation
//! belongs to and the media plane refuses ICE from that relay for any other
//! room (`rtc::RelayRooms`). Nothing here does IO or reads a clock.

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde::Serialize;
use sha1::Sha1;
use subtle::ConstantTimeEq;

type HmacSha1 = Hmac<Sha1>;

/// Longest username accepted (STUN allows 513 bytes; ours are far shorter).
pub const MAX_USERNAME: usize = 256;

/// The shared secret credentials are derived from.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretError {
    #[error("the TURN secret must be at least 16 characters")]
    TooShort,
}

impl Secret {
    /// A configured secret (e.g. coturn's `static-auth-secret`).
    pub fn new(secret: &str) -> Result<Secret, SecretError> {
        if secret.len() < 16 {
            return Err(SecretError::TooShort);
        }
        Ok(Secret(secret.as_bytes().to_vec()))
    }

    /// A random secret for this process (single node, built-in TURN).
    pub fn random() -> Secret {
        use rand::RngCore as _;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        // Hex so that the same secret could be given to coturn verbatim.
        Secret(hex::encode(bytes).into_bytes())
    }

    /// The password of a username: base64(HMAC-SHA1(secret, username)).
    pub fn password(&self, username: &str) -> String {
        let mut mac = match HmacSha1::new_from_slice(&self.0) {
            Ok(m) => m,
            // HMAC takes keys of any length; unreachable, but no panic.
            Err(_) => return String::new(),
        };
        mac.update(username.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Whether `password` is the password of `username`, in constant time.
    pub fn verify(&self, username: &str, password: &str) -> bool {
        let expected = self.password(username);
        expected.as_bytes().ct_eq(password.as_bytes()).into()
    }
}

/// What a username says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims<'a> {
    /// Unix seconds after which the credential no longer opens allocations.
    pub expiry: u64,
    pub room_id: &'a str,
    pub participant_id: &'a str,
}

impl Claims<'_> {
    pub fn expired(&self, now_unix: u64) -> bool {
        self.expiry <= now_unix
    }
}

fn id_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Reads a username of ours; `None` for anything else.
pub fn parse_username(username: &str) -> Option<Claims<'_>> {
    if username.len() > MAX_USERNAME {
        return None;
    }
    let (expiry, rest) = username.split_once(':')?;
    if expiry.is_empty() || expiry.len() > 20 || !expiry.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let expiry = expiry.parse().ok()?;
    let (room_id, participant_id) = rest.split_once('.')?;
    (id_ok(room_id) && id_ok(participant_id)).then_some(Claims {
        expiry,
        room_id,
        participant_id,
    })
}

/// One entry of `RTCConfiguration.iceServers`, as sent to clients.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IceServer {
    pub urls: Vec<String>,
    pub username: String,
    pub credential: String,
}

impl IceServer {
    /// The `Link` header values of a WHIP/WHEP answer (RFC 9725 §4.6), one per URL.
    pub fn link_headers(&self) -> Vec<String> {
        self.urls
            .iter()
            .map(|u| {
                format!(
                    "<{u}>; rel=\"ice-server\"; username=\"{}\"; credential=\"{}\"; credential-type=\"password\"",
                    self.username, self.credential
                )
            })
            .collect()
    }
}

/// Mints the ICE servers of a join: the TURN URLs (built-in or external)
/// with a fresh credential for this room and participant.
#[derive(Debug, Clone)]
pub struct IceServers {
    pub urls: Vec<String>,
    pub secret: Secret,
    pub ttl_secs: u64,
}

impl IceServers {
    pub fn for_join(&self, room_id: &str, participant_id: &str, now_unix: u64) -> Vec<IceServer> {
        if self.urls.is_empty() || !id_ok(room_id) || !id_ok(participant_id) {
            return Vec::new();
        }
        let username = format!(
            "{}:{room_id}.{participant_id}",
            now_unix.saturating_add(self.ttl_secs)
        );
        let credential = self.secret.password(&username);
        vec![IceServer {
            urls: self.urls.clone(),
            username,
            credential,
        }]
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_coturn_rest_api() {
        // Computed with: printf %s '1700000000:r1.p1' | openssl dgst -sha1 -hmac 'averyverysecretsecret' -binary | base64
        let s = Secret::new("averyverysecretsecret").unwrap();
        let p = s.password("1700000000:r1.p1");
        assert_eq!(p, "bm6640qmTS1+ElsLpfIUkSi8VYI=");
        assert!(s.verify("1700000000:r1.p1", &p));
        assert!(!s.verify("1700000000:r1.p2", &p));
        assert!(!s.verify("1700000000:r1.p1", "AAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    }

    #[test]
    fn short_secret_refused() {
        assert_eq!(Secret::new("short").unwrap_err(), SecretError::TooShort);
    }

    #[test]
    fn usernames_parse() {
        let c = parse_username("1700000000:0b7c-aa.p-1").unwrap();
        assert_eq!(c.expiry, 1_700_000_000);
        assert_eq!(c.room_id, "0b7c-aa");
        assert_eq!(c.participant_id, "p-1");
        assert!(c.expired(1_700_000_000));
        assert!(!c.expired(1_699_999_999));
        for bad in [
            "",
            "abc",
            "1700000000",
            ":r.p",
            "17x:r.p",
            "1700000000:r",
            "1700000000:.p",
            "1700000000:r.",
            "1700000000:r:x.p",
            "1700000000:r.p.q",
            "99999999999999999999999:r.p",
        ] {
            assert!(parse_username(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn minted_credentials_verify_and_carry_the_room() {
        let ice = IceServers {
            urls: vec!["turn:127.0.0.2:3478?transport=udp".into()],
            secret: Secret::random(),
            ttl_secs: 60,
        };
        let servers = ice.for_join("room-1", "part-1", 1000);
        assert_eq!(servers.len(), 1);
        let s = &servers[0];
        assert_eq!(s.username, "1060:room-1.part-1");
        assert!(ice.secret.verify(&s.username, &s.credential));
        let c = parse_username(&s.username).unwrap();
        assert_eq!(c.room_id, "room-1");
        assert!(ice.for_join("bad room", "p", 0).is_empty());
        let links = s.link_headers();
        assert_eq!(links.len(), 1);
        assert_eq!(
            links[0],
            format!(
                "<turn:127.0.0.2:3478?transport=udp>; rel=\"ice-server\"; username=\"1060:room-1.part-1\"; credential=\"{}\"; credential-type=\"password\"",
                s.credential
            )
        );
    }
}
