//! What the built-in TURN server lets through, decided before `turn-server-proto` sees a request: credentials (TURN REST API scheme, expiry, integrity), the allocation cap per credential, and peers limited to the SFU's own media addresses. Pure: no IO, no clock.
//!
//! A credential's expiry bounds everything it holds: once expired, its
//! Allocate, Refresh (other than a deletion), CreatePermission and
//! ChannelBind requests get 401, and `expired_relays` names its allocations
//! so that the service closes them at the expiry rather than at the end of
//! their last granted lifetime.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use turn_server_proto::types::TransportType;
use turn_server_proto::types::attribute::{Lifetime, XorPeerAddress};
use turn_server_proto::types::message::{ALLOCATE, CHANNEL_BIND, CREATE_PERMISSION, REFRESH};
use turn_server_proto::types::stun::attribute::{
    AttributeStaticType, ErrorCode, MessageIntegritySha256, Username,
};
use turn_server_proto::types::stun::message::{
    IntegrityAlgorithm, LongTermKeyCredentials, Message, MessageClass, MessageIntegrityCredentials,
    MessageWriteVec,
};
use turn_server_proto::types::stun::prelude::{MessageWrite, MessageWriteExt};

use super::credentials::{Secret, parse_username};

/// A client's 5-tuple as the TURN server names it.
pub type Client = (TransportType, SocketAddr, SocketAddr);

/// Why a request or packet was refused (the `reason` label of
/// `convene_turn_refusals_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A username that is not ours, or a MESSAGE-INTEGRITY that does not match.
    BadCredential,
    /// A credential past its expiry asking for a new allocation, a
    /// refresh, a permission or a channel.
    Expired,
    /// The credential already holds its allowed allocations.
    Quota,
    /// A permission, channel or send to an address that is not the SFU's.
    ForbiddenPeer,
    /// Over the allocation's bandwidth.
    Bandwidth,
    /// The server holds its maximum number of allocations.
    Capacity,
    /// A TURN-over-TLS client whose TLS handshake failed or took too long.
    Handshake,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::BadCredential => "bad_credential",
            Refusal::Expired => "expired",
            Refusal::Quota => "quota",
            Refusal::ForbiddenPeer => "forbidden_peer",
            Refusal::Bandwidth => "bandwidth",
            Refusal::Capacity => "capacity",
            Refusal::Handshake => "tls_handshake",
        }
    }
}

/// What to do with a message from a client.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Hand it to the TURN server; `add_user` first when a new credential
    /// was proven (username, password).
    Pass {
        add_user: Option<(String, String)>,
        refused: Option<Refusal>,
    },
    /// Answer with this (signed) error response instead.
    Reply(Vec<u8>, Refusal),
}

#[derive(Debug)]
struct Credential {
    room_id: Arc<str>,
    allocations: usize,
    /// Unix seconds after which the credential is refused.
    expiry: u64,
}

/// The TURN policy state: credentials seen, allocations per credential.
#[derive(Debug)]
pub struct Policy {
    secret: Secret,
    realm: String,
    allowed_peers: Vec<SocketAddr>,
    max_per_credential: usize,
    max_allocations: usize,
    credentials: HashMap<String, Credential>,
    /// Authenticated Allocate requests waiting for their relay socket.
    pending: HashMap<Key, String>,
    /// Open relays: relay address → username.
    relays: HashMap<SocketAddr, String>,
}

/// `Client` as a map key (`TransportType` is not `Hash`).
type Key = (bool, SocketAddr, SocketAddr);

fn client_key((transport, listen, from): Client) -> Key {
    (transport == TransportType::Tcp, listen, from)
}

/// Most Allocate requests in flight at once (a bound on `pending`).
const MAX_PENDING: usize = 4096;

impl Policy {
    pub fn new(
        secret: Secret,
        realm: String,
        allowed_peers: Vec<SocketAddr>,
        max_per_credential: usize,
        max_allocations: usize,
    ) -> Policy {
        Policy {
            secret,
            realm,
            allowed_peers,
            max_per_credential: max_per_credential.max(1),
            max_allocations: max_allocations.max(1),
            credentials: HashMap::new(),
            pending: HashMap::new(),
            relays: HashMap::new(),
        }
    }

    /// Whether the relay may send to `peer` (exact address).
    pub fn peer_allowed(&self, peer: SocketAddr) -> bool {
        self.allowed_peers.contains(&peer)
    }

    fn peer_ip_allowed(&self, ip: IpAddr) -> bool {
        self.allowed_peers.iter().any(|a| a.ip() == ip)
    }

    pub fn allocations(&self) -> usize {
        self.relays.len()
    }

    /// Credentials known to the TURN server (it cannot forget one: see
    /// `service.rs`, which rebuilds it when idle).
    pub fn known_credentials(&self) -> usize {
        self.credentials.len()
    }

    /// Forgets every credential (the TURN server was rebuilt while idle).
    pub fn forget_credentials(&mut self) {
        self.credentials.retain(|_, c| c.allocations > 0);
        self.pending.clear();
    }

    /// Looks at one message from a client before the TURN server does.
    pub fn inspect(&mut self, data: &[u8], client: Client, now_unix: u64) -> Verdict {
        let pass = Verdict::Pass {
            add_user: None,
            refused: None,
        };
        // ChannelData (first two bits 01): the server checks the channel.
        if data.first().is_none_or(|b| b & 0xC0 != 0) {
            return pass;
        }
        let Ok(msg) = Message::from_bytes(data) else {
            return pass;
        };
        if !msg.has_class(MessageClass::Request) {
            return pass;
        }
        let Ok(username) = msg.attribute::<Username>() else {
            // Unauthenticated: the server answers 401 with a nonce.
            return pass;
        };
        let username = username.username();
        let Some(claims) = parse_username(username) else {
            return Verdict::Pass {
                add_user: None,
                refused: Some(Refusal::BadCredential),
            };
        };
        let password = self.secret.password(username);
        let key: MessageIntegrityCredentials =
            LongTermKeyCredentials::new(username.to_string(), password.clone(), self.realm.clone())
                .into();
        let algorithm = if msg.has_attribute(MessageIntegritySha256::TYPE) {
            IntegrityAlgorithm::Sha256
        } else {
            IntegrityAlgorithm::Sha1
        };
        let valid = match integrity_sha1_ok(data, username, &self.realm, &password) {
            Some(ok) => ok,
            // Only MESSAGE-INTEGRITY-SHA256: stun-types compares it in constant time.
            None => msg.validate_integrity(&key).is_ok(),
        };
        if !valid {
            // Answered here, so the protocol crate's own (not constant-time)
            // comparison never sees a wrong password.
            return unauthorized(&msg, &self.realm);
        }
        let method = msg.method();
        let mut add_user = None;
        if !self.credentials.contains_key(username) {
            if claims.expired(now_unix) {
                return Verdict::Pass {
                    add_user: None,
                    refused: Some(Refusal::Expired),
                };
            }
            self.credentials.insert(
                username.to_string(),
                Credential {
                    room_id: Arc::from(claims.room_id),
                    allocations: 0,
                    expiry: claims.expiry,
                },
            );
            add_user = Some((username.to_string(), password));
        }
        // An expired credential keeps nothing alive: no new allocation, no
        // refresh (only a Refresh with LIFETIME 0, a deletion), no new
        // permission or channel. 401, as for any credential that no longer
        // checks out: the client must get a fresh one (RFC 8656 §7.3,
        // TURN REST API).
        let deletion =
            method == REFRESH && msg.attribute::<Lifetime>().is_ok_and(|l| l.seconds() == 0);
        if claims.expired(now_unix)
            && !deletion
            && [ALLOCATE, REFRESH, CREATE_PERMISSION, CHANNEL_BIND].contains(&method)
        {
            return reply(
                &msg,
                ErrorCode::UNAUTHORIZED,
                &key,
                algorithm,
                Refusal::Expired,
            );
        }
        if method == ALLOCATE {
            let held = self.credentials.get(username).map_or(0, |c| c.allocations)
                + self
                    .pending
                    .iter()
                    .filter(|(c, u)| **c != client_key(client) && u.as_str() == username)
                    .count();
            if held >= self.max_per_credential {
                return reply(
                    &msg,
                    ErrorCode::ALLOCATION_QUOTA_REACHED,
                    &key,
                    algorithm,
                    Refusal::Quota,
                );
            }
            if self.relays.len() + self.pending.len() >= self.max_allocations
                || (self.pending.len() >= MAX_PENDING
                    && !self.pending.contains_key(&client_key(client)))
            {
                return reply(
                    &msg,
                    ErrorCode::INSUFFICIENT_CAPACITY,
                    &key,
                    algorithm,
                    Refusal::Capacity,
                );
            }
            self.pending
                .insert(client_key(client), username.to_string());
        } else if method == CREATE_PERMISSION || method == CHANNEL_BIND {
            let tid = msg.transaction_id();
            for (_, raw) in msg.iter_attributes() {
                if raw.header.get_type() != XorPeerAddress::TYPE {
                    continue;
                }
                let Ok(peer) = XorPeerAddress::try_from(&raw) else {
                    continue;
                };
                let peer = peer.addr(tid);
                let ok = if method == CHANNEL_BIND {
                    self.peer_allowed(peer)
                } else {
                    self.peer_ip_allowed(peer.ip())
                };
                if !ok {
                    return reply(
                        &msg,
                        ErrorCode::FORBIDDEN,
                        &key,
                        algorithm,
                        Refusal::ForbiddenPeer,
                    );
                }
            }
        }
        Verdict::Pass {
            add_user,
            refused: None,
        }
    }

    /// The TURN server asks for a relay socket for `client`: the room of
    /// the credential that asked, or `None` (refuse: no authenticated
    /// Allocate from that 5-tuple).
    pub fn relay_wanted(&self, client: Client) -> Option<Arc<str>> {
        let username = self.pending.get(&client_key(client))?;
        self.credentials.get(username).map(|c| c.room_id.clone())
    }

    /// A relay socket was opened for `client`.
    pub fn relay_opened(&mut self, client: Client, relay: SocketAddr) {
        if let Some(username) = self.pending.remove(&client_key(client)) {
            if let Some(c) = self.credentials.get_mut(&username) {
                c.allocations += 1;
            }
            self.relays.insert(relay, username);
        }
    }

    /// A relay socket could not be opened.
    pub fn relay_failed(&mut self, client: Client) {
        self.pending.remove(&client_key(client));
    }

    /// Open relays whose credential has expired at `now_unix` (the
    /// service closes them: an allocation does not outlive its credential).
    pub fn expired_relays(&self, now_unix: u64) -> Vec<SocketAddr> {
        self.relays
            .iter()
            .filter(|(_, user)| {
                self.credentials
                    .get(user.as_str())
                    .is_none_or(|c| c.expiry <= now_unix)
            })
            .map(|(relay, _)| *relay)
            .collect()
    }

    /// The earliest expiry (unix seconds) of a credential holding a relay.
    pub fn next_relay_expiry(&self) -> Option<u64> {
        self.relays
            .values()
            .filter_map(|user| self.credentials.get(user.as_str()).map(|c| c.expiry))
            .min()
    }

    /// A relay socket closed (allocation expired or deleted).
    pub fn relay_closed(&mut self, relay: SocketAddr) {
        if let Some(username) = self.relays.remove(&relay)
            && let Some(c) = self.credentials.get_mut(&username)
        {
            c.allocations = c.allocations.saturating_sub(1);
        }
    }
}

/// Checks MESSAGE-INTEGRITY (HMAC-SHA1 under the long-term key
/// MD5(username:realm:password)) in constant time; `None` when the message
/// has no MESSAGE-INTEGRITY attribute before any SHA256 one.
fn integrity_sha1_ok(data: &[u8], username: &str, realm: &str, password: &str) -> Option<bool> {
    use hmac::{Hmac, Mac};
    use md5::{Digest, Md5};
    use subtle::ConstantTimeEq;
    const HEADER: usize = 20;
    let mut at = HEADER;
    while at + 4 <= data.len() {
        let kind = u16::from_be_bytes([data[at], data[at + 1]]);
        let len = usize::from(u16::from_be_bytes([data[at + 2], data[at + 3]]));
        let value = at + 4;
        if value + len > data.len() {
            return Some(false);
        }
        match (kind, len) {
            (0x0008, 20) => {
                let key = Md5::new()
                    .chain_update(username.as_bytes())
                    .chain_update(b":")
                    .chain_update(realm.as_bytes())
                    .chain_update(b":")
                    .chain_update(password.as_bytes())
                    .finalize();
                let mut header = [0u8; HEADER];
                header.copy_from_slice(&data[..HEADER]);
                let covered = u16::try_from(at - HEADER + 24).ok()?;
                header[2..4].copy_from_slice(&covered.to_be_bytes());
                let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&key).ok()?;
                mac.update(&header);
                mac.update(&data[HEADER..at]);
                let computed = mac.finalize().into_bytes();
                return Some(computed.as_slice().ct_eq(&data[value..value + 20]).into());
            }
            (0x001C, _) => return None,
            (0x0008, _) => return Some(false),
            _ => {}
        }
        at = value + len.div_ceil(4) * 4;
    }
    Some(false)
}

/// A 401 to a request whose credential did not check out (unsigned: the
/// client's key is not trusted).
fn unauthorized(msg: &Message<'_>, realm: &str) -> Verdict {
    use turn_server_proto::types::stun::attribute::Realm;
    let build = || -> Result<Vec<u8>, turn_server_proto::types::stun::message::StunWriteError> {
        let mut b = Message::builder_error(msg, MessageWriteVec::new());
        b.add_attribute(&ErrorCode::builder(ErrorCode::UNAUTHORIZED).build()?)?;
        b.add_attribute(&Realm::new(realm)?)?;
        b.add_fingerprint()?;
        Ok(b.finish())
    };
    Verdict::Reply(build().unwrap_or_default(), Refusal::BadCredential)
}

/// A signed error response to `msg`.
fn reply(
    msg: &Message<'_>,
    code: u16,
    key: &MessageIntegrityCredentials,
    algorithm: IntegrityAlgorithm,
    why: Refusal,
) -> Verdict {
    let build = || -> Result<Vec<u8>, turn_server_proto::types::stun::message::StunWriteError> {
        let mut b = Message::builder_error(msg, MessageWriteVec::new());
        b.add_attribute(&ErrorCode::builder(code).build()?)?;
        b.add_message_integrity(key, algorithm)?;
        b.add_fingerprint()?;
        Ok(b.finish())
    };
    match build() {
        Ok(bytes) => Verdict::Reply(bytes, why),
        // Cannot build the answer: stay silent (the client times out).
        Err(_) => Verdict::Reply(Vec::new(), why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use turn_server_proto::types::stun::message::TransactionId;

    const REALM: &str = "convene";

    fn request(
        method: turn_server_proto::types::stun::message::Method,
        user: &str,
        pass: &str,
        peer: Option<SocketAddr>,
    ) -> Vec<u8> {
        let mut b = Message::builder_request(method, MessageWriteVec::new());
        let tid: TransactionId = b.transaction_id();
        b.add_attribute(&Username::new(user).unwrap()).unwrap();
        if let Some(p) = peer {
            b.add_attribute(&XorPeerAddress::new(p, tid)).unwrap();
        }
        let key: MessageIntegrityCredentials =
            LongTermKeyCredentials::new(user.into(), pass.into(), REALM.into()).into();
        b.add_message_integrity(&key, IntegrityAlgorithm::Sha1)
            .unwrap();
        b.finish()
    }

    fn client() -> Client {
        (
            TransportType::Udp,
            "127.0.0.2:3478".parse().unwrap(),
            "127.0.0.2:40000".parse().unwrap(),
        )
    }

    fn error_code(v: &Verdict) -> Option<u16> {
        match v {
            Verdict::Reply(b, _) => Message::from_bytes(b)
                .ok()?
                .attribute::<ErrorCode>()
                .ok()
                .map(|e| e.code()),
            Verdict::Pass { .. } => None,
        }
    }

    #[test]
    fn integrity_is_checked_against_the_minted_password() {
        let secret = Secret::new("0123456789abcdef0123").unwrap();
        let user = "2000000000:room-a.p1";
        let pass = secret.password(user);
        let good = request(ALLOCATE, user, &pass, None);
        assert_eq!(integrity_sha1_ok(&good, user, REALM, &pass), Some(true));
        assert_eq!(integrity_sha1_ok(&good, user, REALM, "other"), Some(false));
        let media: SocketAddr = "127.0.0.2:7882".parse().unwrap();
        let mut p = Policy::new(secret, REALM.into(), vec![media], 1, 10);
        // Forged password: 401, and the user is never added.
        let forged = request(ALLOCATE, user, "AAAA", None);
        let v = p.inspect(&forged, client(), 1_000);
        assert_eq!(error_code(&v), Some(401));
        // The real one: passed on, the user added once.
        let v = p.inspect(&good, client(), 1_000);
        assert!(
            matches!(
                v,
                Verdict::Pass {
                    add_user: Some(_),
                    refused: None
                }
            ),
            "{v:?}"
        );
        // Expired: 401.
        let v = p.inspect(&good, client(), 2_000_000_000);
        assert_eq!(error_code(&v), Some(401));
        // The cap (1): a second allocation from another 5-tuple is 486.
        p.relay_opened(client(), "127.0.0.2:50000".parse().unwrap());
        let mut other = client();
        other.2 = "127.0.0.2:40001".parse().unwrap();
        assert_eq!(error_code(&p.inspect(&good, other, 1_000)), Some(486));
        p.relay_closed("127.0.0.2:50000".parse().unwrap());
        assert!(matches!(
            p.inspect(&good, other, 1_000),
            Verdict::Pass { .. }
        ));
    }

    /// A Refresh with the given LIFETIME, signed like `request`.
    fn refresh(user: &str, pass: &str, lifetime: u32) -> Vec<u8> {
        let mut b = Message::builder_request(REFRESH, MessageWriteVec::new());
        b.add_attribute(&Username::new(user).unwrap()).unwrap();
        b.add_attribute(&Lifetime::new(lifetime)).unwrap();
        let key: MessageIntegrityCredentials =
            LongTermKeyCredentials::new(user.into(), pass.into(), REALM.into()).into();
        b.add_message_integrity(&key, IntegrityAlgorithm::Sha1)
            .unwrap();
        b.finish()
    }

    #[test]
    fn an_expired_credential_keeps_nothing_alive() {
        let secret = Secret::new("0123456789abcdef0123").unwrap();
        // Expires at unix second 5000.
        let user = "5000:room-a.p1";
        let pass = secret.password(user);
        let media: SocketAddr = "127.0.0.2:7882".parse().unwrap();
        let relay: SocketAddr = "127.0.0.2:50000".parse().unwrap();
        let mut p = Policy::new(secret, REALM.into(), vec![media], 4, 10);
        let allocate = request(ALLOCATE, user, &pass, None);
        assert!(matches!(
            p.inspect(&allocate, client(), 1_000),
            Verdict::Pass { refused: None, .. }
        ));
        p.relay_opened(client(), relay);
        assert_eq!(p.next_relay_expiry(), Some(5000));
        assert!(p.expired_relays(4_999).is_empty());

        // Before the expiry: refresh, permission and channel pass.
        let permission = request(CREATE_PERMISSION, user, &pass, Some(media));
        let channel = request(CHANNEL_BIND, user, &pass, Some(media));
        for (what, m) in [
            ("refresh", refresh(user, &pass, 600)),
            ("permission", permission.clone()),
            ("channel", channel.clone()),
        ] {
            let v = p.inspect(&m, client(), 4_999);
            assert!(
                matches!(v, Verdict::Pass { refused: None, .. }),
                "{what}: {v:?}"
            );
        }

        // From the expiry on: each is a signed 401 counted as "expired",
        // and the relay is named for closing.
        for (what, m) in [
            ("refresh", refresh(user, &pass, 600)),
            ("permission", permission),
            ("channel", channel),
            ("allocate", allocate),
        ] {
            let v = p.inspect(&m, client(), 5_000);
            assert_eq!(error_code(&v), Some(401), "{what}: {v:?}");
            assert!(
                matches!(v, Verdict::Reply(_, Refusal::Expired)),
                "{what}: {v:?}"
            );
            let Verdict::Reply(bytes, _) = v else {
                unreachable!()
            };
            let key: MessageIntegrityCredentials =
                LongTermKeyCredentials::new(user.into(), pass.clone(), REALM.into()).into();
            assert!(
                Message::from_bytes(&bytes)
                    .unwrap()
                    .validate_integrity(&key)
                    .is_ok(),
                "{what}: the 401 is signed"
            );
        }
        assert_eq!(p.expired_relays(5_000), vec![relay]);

        // A deletion (Refresh with LIFETIME 0) still passes: the client
        // may always give its allocation back.
        let v = p.inspect(&refresh(user, &pass, 0), client(), 9_000);
        assert!(matches!(v, Verdict::Pass { refused: None, .. }), "{v:?}");

        // Closed: nothing left to expire.
        p.relay_closed(relay);
        assert!(p.expired_relays(9_000).is_empty());
        assert_eq!(p.next_relay_expiry(), None);
    }

    #[test]
    fn peers_other_than_the_sfu_are_forbidden() {
        let secret = Secret::new("0123456789abcdef0123").unwrap();
        let user = "2000000000:room-a.p1";
        let pass = secret.password(user);
        let media: SocketAddr = "127.0.0.2:7882".parse().unwrap();
        let mut p = Policy::new(secret, REALM.into(), vec![media], 4, 10);
        let ok = request(CREATE_PERMISSION, user, &pass, Some(media));
        assert!(matches!(
            p.inspect(&ok, client(), 1_000),
            Verdict::Pass { .. }
        ));
        let elsewhere = request(
            CREATE_PERMISSION,
            user,
            &pass,
            Some("10.0.0.1:7882".parse().unwrap()),
        );
        assert_eq!(
            error_code(&p.inspect(&elsewhere, client(), 1_000)),
            Some(403)
        );
        let other_port = request(
            CHANNEL_BIND,
            user,
            &pass,
            Some("127.0.0.2:22".parse().unwrap()),
        );
        assert_eq!(
            error_code(&p.inspect(&other_port, client(), 1_000)),
            Some(403)
        );
        assert!(p.peer_allowed(media));
        assert!(!p.peer_allowed("127.0.0.2:22".parse().unwrap()));
    }
}
