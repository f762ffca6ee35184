//! Admin console sessions: a random id kept server-side in a bounded map
//! (chosen over a signed cookie so that sign-out and a restart really end a
//! session, with no server secret to manage). The map is keyed by the
//! id's SHA-256, so a lookup reveals nothing about the id, and the stored
//! id is then compared in constant time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a session lasts after sign-in (no sliding renewal).
pub const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; at the cap the oldest is dropped.
pub const MAX_SESSIONS: usize = 1024;

/// Who signed a console in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// The team's developer key; holds its SHA-256 at sign-in, so that a
    /// rotated key ends the session.
    Key([u8; 32]),
    /// A fleet account (its id and token version at sign-in): a changed
    /// password or role, or a deleted account, ends the session; the role
    /// is read again on every request.
    Fleet { user_id: String, version: i64 },
}

impl Principal {
    /// The principal of a developer-key sign-in.
    pub fn key(developer_key: &str) -> Principal {
        Principal::Key(digest(developer_key))
    }
}

/// One signed-in console.
#[derive(Debug, Clone)]
struct Session {
    id: String,
    team_id: String,
    principal: Principal,
    created: Instant,
}

/// The live sessions (see the module doc).
#[derive(Debug, Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// What a valid session grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub team_id: String,
    pub principal: Principal,
}

impl Sessions {
    /// A new session of `principal` for `team_id`; returns its id (the
    /// cookie value).
    pub fn create(&self, team_id: &str, principal: Principal, now: Instant) -> String {
        use rand::RngCore;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| now.saturating_duration_since(s.created) < SESSION_LIFETIME);
        if map.len() >= MAX_SESSIONS
            && let Some(oldest) = map.iter().min_by_key(|(_, s)| s.created).map(|(k, _)| *k)
        {
            map.remove(&oldest);
        }
        map.insert(
            digest(&id),
            Session {
                id: id.clone(),
                team_id: team_id.to_string(),
                principal,
                created: now,
            },
        );
        id
    }

    /// The grant of a presented session id, when it is live.
    pub fn check(&self, presented: &str, now: Instant) -> Option<Grant> {
        let map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        let s = map.get(&digest(presented))?;
        let same = s.id.len() == presented.len()
            && bool::from(s.id.as_bytes().ct_eq(presented.as_bytes()));
        if !same || now.saturating_duration_since(s.created) >= SESSION_LIFETIME {
            return None;
        }
        Some(Grant {
            team_id: s.team_id.clone(),
            principal: s.principal.clone(),
        })
    }

    /// Ends a session (sign-out); true when it existed.
    pub fn remove(&self, presented: &str) -> bool {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&digest(presented)).is_some()
    }

    /// Whether a developer key still matches the one a key session signed
    /// in with (never for a fleet account's session).
    pub fn same_key(grant: &Grant, developer_key: &str) -> bool {
        match &grant.principal {
            Principal::Key(hash) => bool::from(hash.ct_eq(&digest(developer_key))),
            Principal::Fleet { .. } => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_check_remove_expire() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let id = s.create("team", Principal::key("key-0123456789abcdef"), t0);
        let g = s.check(&id, t0).unwrap();
        assert_eq!(g.team_id, "team");
        assert!(Sessions::same_key(&g, "key-0123456789abcdef"));
        assert!(!Sessions::same_key(&g, "another-key-456789"));
        assert!(s.check("nope", t0).is_none());
        assert!(s.check(&id, t0 + SESSION_LIFETIME).is_none());
        assert!(s.remove(&id));
        assert!(s.check(&id, t0).is_none());
        let fleet = Principal::Fleet {
            user_id: "u1".into(),
            version: 3,
        };
        let id = s.create("team", fleet.clone(), t0);
        let g = s.check(&id, t0).unwrap();
        assert_eq!(g.principal, fleet);
        assert!(!Sessions::same_key(&g, "key-0123456789abcdef"));
    }

    #[test]
    fn bounded() {
        let s = Sessions::default();
        let t0 = Instant::now();
        let first = s.create("t", Principal::key("k"), t0);
        for i in 0..MAX_SESSIONS {
            s.create(
                "t",
                Principal::key("k"),
                t0 + Duration::from_millis(i as u64 + 1),
            );
        }
        assert!(s.by_hash.lock().unwrap().len() <= MAX_SESSIONS);
        assert!(s.check(&first, t0 + Duration::from_secs(1)).is_none());
    }
}
