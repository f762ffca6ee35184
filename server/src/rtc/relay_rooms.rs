//! Which room each built-in TURN relay address serves: written by the TURN server when it opens or closes an allocation, read by a media worker only when a new remote address first passes ICE (never per packet).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};

/// A relay address → room map shared by the TURN server and the media workers.
#[derive(Debug, Default)]
pub struct RelayRooms {
    map: RwLock<HashMap<SocketAddr, Arc<str>>>,
}

/// What the map says about a remote address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayCheck {
    /// Not one of our relay addresses.
    NotARelay,
    /// Our relay, opened with a credential of this room.
    SameRoom,
    /// Our relay, opened with a credential of another room: refuse.
    OtherRoom,
}

impl RelayRooms {
    pub fn insert(&self, relay: SocketAddr, room_id: Arc<str>) {
        if let Ok(mut m) = self.map.write() {
            m.insert(relay, room_id);
        }
    }

    pub fn remove(&self, relay: SocketAddr) {
        if let Ok(mut m) = self.map.write() {
            m.remove(&relay);
        }
    }

    pub fn check(&self, from: SocketAddr, room_id: &str) -> RelayCheck {
        let Ok(m) = self.map.read() else {
            // A poisoned map cannot vouch for anything.
            return RelayCheck::OtherRoom;
        };
        match m.get(&from) {
            None => RelayCheck::NotARelay,
            Some(r) if &**r == room_id => RelayCheck::SameRoom,
            Some(_) => RelayCheck::OtherRoom,
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_of_another_room_is_refused() {
        let r = RelayRooms::default();
        let a: SocketAddr = "127.0.0.2:50000".parse().unwrap();
        let b: SocketAddr = "127.0.0.2:50001".parse().unwrap();
        r.insert(a, Arc::from("room-a"));
        assert_eq!(r.check(a, "room-a"), RelayCheck::SameRoom);
        assert_eq!(r.check(a, "room-b"), RelayCheck::OtherRoom);
        assert_eq!(r.check(b, "room-b"), RelayCheck::NotARelay);
        r.remove(a);
        assert_eq!(r.check(a, "room-b"), RelayCheck::NotARelay);
        assert!(r.is_empty());
    }
}
