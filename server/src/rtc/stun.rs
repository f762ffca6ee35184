//! Just enough STUN to route a first datagram: is it a binding request, and
//! which of our ICE usernames does it name. Survives arbitrary bytes.

/// The STUN magic cookie (RFC 5389).
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
const ATTR_USERNAME: u16 = 0x0006;

/// RFC 7983 demultiplexing by the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketClass {
    Stun,
    Dtls,
    Rtp,
    Other,
}

pub fn classify(datagram: &[u8]) -> PacketClass {
    match datagram.first() {
        Some(0..=3) => PacketClass::Stun,
        Some(20..=63) => PacketClass::Dtls,
        Some(128..=191) => PacketClass::Rtp,
        _ => PacketClass::Other,
    }
}

/// The local (our) ufrag of a STUN binding request's `USERNAME`
/// (`local:remote`), when the datagram is one.
pub fn binding_request_ufrag(datagram: &[u8]) -> Option<&str> {
    if datagram.len() < 20 || datagram[4..8] != MAGIC_COOKIE {
        return None;
    }
    let msg_type = u16::from_be_bytes([datagram[0], datagram[1]]);
    if msg_type != 0x0001 {
        return None;
    }
    let declared = usize::from(u16::from_be_bytes([datagram[2], datagram[3]]));
    let end = 20usize.checked_add(declared)?.min(datagram.len());
    let mut at = 20usize;
    while at + 4 <= end {
        let attr = u16::from_be_bytes([datagram[at], datagram[at + 1]]);
        let len = usize::from(u16::from_be_bytes([datagram[at + 2], datagram[at + 3]]));
        let value_start = at + 4;
        let value_end = value_start.checked_add(len)?;
        if value_end > end {
            return None;
        }
        if attr == ATTR_USERNAME {
            let username = std::str::from_utf8(&datagram[value_start..value_end]).ok()?;
            return username.split(':').next();
        }
        at = value_start + len.div_ceil(4) * 4;
    }
    None
}

/// The media worker encoded in one of our ufrags (`w<2 hex digits>...`).
pub fn worker_of_ufrag(ufrag: &str) -> Option<super::WorkerId> {
    let hex = ufrag.strip_prefix('w')?.get(..2)?;
    u8::from_str_radix(hex, 16)
        .ok()
        .map(super::WorkerId::from_u8)
}

/// Where a binding request's ufrag is routed. Ours name their worker
/// (`w<2 hex digits>...`); when a client restarts ICE, str0m answers with
/// credentials of its own choosing, whose ufrags never start with `w` (its
/// alphabet has no `w`), and the worker records those here. Only such
/// ufrags are looked up (a binding request from a restarted peer, a few a
/// second at most), never a media packet.
#[derive(Debug, Default)]
pub struct UfragRoutes {
    restarted: std::sync::RwLock<std::collections::HashMap<String, super::WorkerId>>,
}

impl UfragRoutes {
    /// The worker a binding request's ufrag belongs to.
    pub fn route(&self, ufrag: &str) -> Option<super::WorkerId> {
        worker_of_ufrag(ufrag).or_else(|| self.restarted.read().ok()?.get(ufrag).copied())
    }

    /// A restarted peer's new ufrag belongs to `worker`.
    pub fn insert(&self, ufrag: &str, worker: super::WorkerId) {
        if let Ok(mut m) = self.restarted.write() {
            m.insert(ufrag.to_string(), worker);
        }
    }

    /// Forgets a ufrag (its peer left or restarted again).
    pub fn remove(&self, ufrag: &str) {
        if worker_of_ufrag(ufrag).is_none()
            && let Ok(mut m) = self.restarted.write()
        {
            m.remove(ufrag);
        }
    }

    /// How many restarted ufrags are routed (tests, metrics).
    pub fn restarted(&self) -> usize {
        self.restarted.read().map(|m| m.len()).unwrap_or(0)
    }
}

/// A STUN binding request with `username` (tests of the receive path).
#[cfg(test)]
pub(crate) fn binding(username: &str) -> Vec<u8> {
    let mut attr = Vec::new();
    attr.extend_from_slice(&ATTR_USERNAME.to_be_bytes());
    attr.extend_from_slice(&(username.len() as u16).to_be_bytes());
    attr.extend_from_slice(username.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let mut m = vec![0x00, 0x01];
    m.extend_from_slice(&(attr.len() as u16).to_be_bytes());
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(&[7u8; 12]);
    m.extend_from_slice(&attr);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restarted_ufrags_route_through_the_table_ours_by_their_name() {
        let r = UfragRoutes::default();
        let w3 = super::super::WorkerId::from_u8(3);
        // Ours name their worker.
        assert_eq!(r.route("w03abcdef"), Some(w3));
        // str0m's own (after a client's ICE restart) only once recorded.
        assert_eq!(r.route("Q3rFeBnUkTBz6FQJ"), None);
        r.insert("Q3rFeBnUkTBz6FQJ", w3);
        assert_eq!(r.route("Q3rFeBnUkTBz6FQJ"), Some(w3));
        assert_eq!(r.restarted(), 1);
        // Removing one of ours leaves the table alone; removing it empties it.
        r.remove("w03abcdef");
        assert_eq!(r.restarted(), 1);
        r.remove("Q3rFeBnUkTBz6FQJ");
        assert_eq!(r.route("Q3rFeBnUkTBz6FQJ"), None);
        assert_eq!(r.restarted(), 0);
    }

    #[test]
    fn finds_local_ufrag() {
        let m = binding("w03abcdef:remote1");
        assert_eq!(classify(&m), PacketClass::Stun);
        assert_eq!(binding_request_ufrag(&m), Some("w03abcdef"));
        assert_eq!(worker_of_ufrag("w03abcdef").map(|w| w.index()), Some(3));
        assert_eq!(worker_of_ufrag("x03"), None);
        assert_eq!(worker_of_ufrag("w"), None);
    }

    #[test]
    fn survives_arbitrary_bytes() {
        let mut state = 0x2545F4914F6CDD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let valid = binding("w01abcd:efgh");
        for len in 0..200 {
            for _ in 0..50 {
                let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                // Keep a valid header sometimes so attribute parsing is reached.
                if len >= 20 && next() % 2 == 0 {
                    d[..20].copy_from_slice(&valid[..20]);
                }
                let _ = classify(&d);
                let _ = binding_request_ufrag(&d);
            }
            let truncated = &valid[..len.min(valid.len())];
            let _ = binding_request_ufrag(truncated);
        }
    }
}
