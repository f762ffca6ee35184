//! The SIP phone bridge (docs/phone.md): a SIP endpoint on UDP and TCP (`--sip-addr`)
//! that answers calls to a connected room's extension, takes the room's PIN
//! by DTMF and keeps the call until either side hangs up.
//!
//! `sip.rs` is the endpoint (one task owning the SIP socket: parsing with
//! `rsip`, the trunk allow-list, the per-source INVITE limit, the
//! transactions of INVITE/ACK/BYE/CANCEL/OPTIONS); `call.rs` one task per
//! call owning its RTP socket (answer retransmission until the ACK, the
//! PIN, hang-ups); `pin.rs` the PIN entry and RFC 4733 events, `sdp.rs` the
//! offer/answer. [`PhoneBridge`] is the calls' table, and what REST reaches
//! through [`PhoneCalls`]. Nothing runs without `--sip-addr`.

pub mod auth;
pub mod call;
pub mod dtmf;
pub mod media;
pub mod outgoing;
pub mod pin;
pub mod prompts;
pub mod sdp;
pub mod sip;
pub mod srtp;
pub mod stream;
pub mod trunks;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use convene_api::Db;
use convene_api::live::Later;
use convene_api::phone::{CallRefusal, PhoneCall, PhoneCalls};
use tokio::sync::mpsc;

/// The operator's SIP settings.
#[derive(Debug, Clone)]
pub struct PhoneConfig {
    /// Where the SIP endpoint listens (UDP).
    pub addr: SocketAddr,
    /// The address put in Contact headers and SDP answers.
    pub public_ip: IpAddr,
    /// The trunks whose requests are served (by source address, with
    /// their credentials); none: every request is refused.
    pub trunks: Vec<trunks::Trunk>,
    /// INVITEs taken from one source address per minute.
    pub invites_per_minute: u32,
    /// Calls at once over all rooms.
    pub max_calls: usize,
    /// Refuse calls that do not offer SRTP.
    pub require_srtp: bool,
}

/// Whether a call is still waiting for its PIN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    Pin,
    Joined,
}

impl CallState {
    fn name(self) -> &'static str {
        match self {
            CallState::Pin => "pin",
            CallState::Joined => "joined",
        }
    }
}

/// What the SIP endpoint or REST tells a call's task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// The caller acknowledged the answer.
    Acked,
    /// The caller hung up (its BYE was answered).
    Bye,
    /// End the call from this side (a BYE is sent).
    Hangup,
    /// A key the caller pressed, sent by SIP INFO (RFC 4733 events come
    /// with the RTP instead).
    Key(char),
    /// The API unmuted the call: a moderator's mute is lifted too (a phone
    /// has no unmute button of its own).
    Unmute,
}

/// One call in the table.
#[derive(Debug)]
pub(crate) struct CallEntry {
    pub id: String,
    pub room_id: String,
    pub name: String,
    pub state: CallState,
    pub muted: Arc<AtomicBool>,
    pub control: mpsc::Sender<Control>,
    /// This side's tag and SDP answer, to answer a retransmitted or
    /// repeated INVITE the same way.
    pub to_tag: String,
    pub answer: String,
}

impl CallEntry {
    fn view(&self) -> PhoneCall {
        PhoneCall {
            call_id: self.id.clone(),
            name: self.name.clone(),
            state: self.state.name(),
            muted: self.muted.load(Ordering::Relaxed),
        }
    }
}

/// The SIP endpoint's calls, keyed by SIP Call-ID.
#[derive(Debug)]
pub struct PhoneBridge {
    pub config: PhoneConfig,
    /// The bound SIP address (the port resolved).
    pub local: SocketAddr,
    /// The bound SIP over TLS address, when served.
    pub tls_local: Option<SocketAddr>,
    pub(crate) calls: Mutex<HashMap<String, CallEntry>>,
    /// How joined calls reach their rooms.
    pub(crate) access: Option<media::RoomAccess>,
    /// The nonces of digest challenges.
    pub(crate) digest: auth::Digest,
}

impl PhoneBridge {
    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<String, CallEntry>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks a call joined (its PIN was right).
    pub(crate) fn joined(&self, sip_call_id: &str) {
        if let Some(c) = self.table().get_mut(sip_call_id) {
            c.state = CallState::Joined;
        }
    }

    /// Forgets an ended call.
    pub(crate) fn remove(&self, sip_call_id: &str) {
        self.table().remove(sip_call_id);
    }
}

impl PhoneBridge {
    /// The SIP URI callers dial for `extension` on this node.
    pub fn sip_uri_here(&self, extension: &str) -> String {
        let host = match self.config.public_ip {
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        format!("sip:{extension}@{host}:{}", self.local.port())
    }

    /// The room's calls on this node.
    pub fn calls_here(&self, room_id: &str) -> Vec<PhoneCall> {
        let mut out: Vec<PhoneCall> = self
            .table()
            .values()
            .filter(|c| c.room_id == room_id)
            .map(CallEntry::view)
            .collect();
        out.sort_by(|a, b| a.call_id.cmp(&b.call_id));
        out
    }

    /// Ends the room's calls on this node; how many.
    pub fn end_room_here(&self, room_id: &str) -> usize {
        let t = self.table();
        let mut n = 0;
        for c in t.values().filter(|c| c.room_id == room_id) {
            // A full queue means the task is already ending the call.
            let _ = c.control.try_send(Control::Hangup);
            n += 1;
        }
        n
    }

    /// Mutes or unmutes a call of the room held on this node.
    pub fn set_muted_here(
        &self,
        room_id: &str,
        call_id: &str,
        muted: bool,
    ) -> Result<PhoneCall, CallRefusal> {
        let t = self.table();
        let c = t
            .values()
            .find(|c| c.id == call_id && c.room_id == room_id)
            .ok_or(CallRefusal::NotFound)?;
        c.muted.store(muted, Ordering::Relaxed);
        if !muted {
            // A full queue means the task is already ending the call.
            let _ = c.control.try_send(Control::Unmute);
        }
        Ok(c.view())
    }
}

/// A single node's calls (no cluster; `cluster::ClusterPhone` asks the
/// other nodes too).
impl PhoneCalls for PhoneBridge {
    fn sip_uri(&self, extension: &str) -> Option<String> {
        Some(self.sip_uri_here(extension))
    }

    fn calls<'a>(&'a self, room_id: &'a str) -> Later<'a, Vec<PhoneCall>> {
        Box::pin(async move { self.calls_here(room_id) })
    }

    fn end_room<'a>(&'a self, room_id: &'a str) -> Later<'a, usize> {
        Box::pin(async move { self.end_room_here(room_id) })
    }

    fn set_muted<'a>(
        &'a self,
        room_id: &'a str,
        call_id: &'a str,
        muted: bool,
    ) -> Later<'a, Result<PhoneCall, CallRefusal>> {
        Box::pin(async move { self.set_muted_here(room_id, call_id, muted) })
    }
}

/// SIP over TLS: where, and the certificate (the HTTPS one).
pub struct SipTls {
    pub addr: SocketAddr,
    pub certs: axum_server::tls_rustls::RustlsConfig,
}

/// Binds the SIP socket and starts the endpoint.
pub async fn start(
    config: PhoneConfig,
    db: Db,
    access: Option<media::RoomAccess>,
    tls: Option<SipTls>,
) -> anyhow::Result<Arc<PhoneBridge>> {
    if config.public_ip.is_unspecified() {
        anyhow::bail!(
            "--sip-addr {} listens on every address: set --sip-public-ip to the one \
             trunks reach",
            config.addr
        );
    }
    // UDP and TCP on one port (with port 0, one both can take).
    let (socket, tcp) = crate::net::bind_udp_and_tcp_tokio(config.addr)
        .with_context(|| format!("binding the SIP address {} (UDP and TCP)", config.addr))?;
    let local = socket.local_addr()?;
    let tls = match tls {
        Some(t) => {
            let listener = tokio::net::TcpListener::bind(t.addr)
                .await
                .with_context(|| format!("binding the SIP over TLS address {}", t.addr))?;
            Some((listener.local_addr()?, listener, t.certs))
        }
        None => None,
    };
    let bridge = Arc::new(PhoneBridge {
        local,
        tls_local: tls.as_ref().map(|t| t.0),
        digest: auth::Digest::new(),
        calls: Mutex::new(HashMap::new()),
        access,
        config,
    });
    let limit = Arc::new(Mutex::new(sip::InviteLimit::new(
        bridge.config.invites_per_minute,
    )));
    tokio::spawn(stream::run(
        bridge.clone(),
        tcp,
        None,
        db.clone(),
        limit.clone(),
    ));
    if let Some((_, listener, certs)) = tls {
        tokio::spawn(stream::run(
            bridge.clone(),
            listener,
            Some(certs),
            db.clone(),
            limit.clone(),
        ));
    }
    tokio::spawn(sip::run(bridge.clone(), Arc::new(socket), db, limit));
    Ok(bridge)
}
