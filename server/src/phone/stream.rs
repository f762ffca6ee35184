//! SIP over streams: TCP on the SIP port and TLS on `--sip-tls-addr`. Each
//! connection is its own task; messages are framed by `Content-Length`,
//! answers go back in order through a writer task ([`Reply::Tcp`]), and
//! every message is handled as a datagram is (`sip::message`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use convene_api::Db;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::PhoneBridge;
use super::sip::{InviteLimit, Reply, message};

/// The largest message taken over TCP (header and body).
pub const MAX_MESSAGE: usize = 65_536;
/// TCP connections at once.
pub const MAX_TCP: usize = 256;
/// Answers queued for one TCP connection before it is closed.
const TCP_QUEUE: usize = 32;
/// A TCP connection that sends nothing for this long is closed.
const TCP_IDLE: Duration = Duration::from_secs(300);
/// How long a SIP over TLS client has for its handshake.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);

/// Accepts connections until the process ends: TCP on the SIP port, or
/// SIP over TLS (SIPS, RFC 3261 26.2) with `tls`'s certificate (the HTTPS
/// one, reloaded on SIGHUP), whose handshake runs on the connection's own
/// task bounded by [`TLS_HANDSHAKE`]; then the same framing and handling.
pub async fn run(
    bridge: Arc<PhoneBridge>,
    listener: TcpListener,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
    db: Db,
    limit: Arc<Mutex<InviteLimit>>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_TCP));
    let kind = if tls.is_some() { "TLS" } else { "TCP" };
    loop {
        let Ok((stream, src)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::info!(%src, kind, "SIP connection refused: too many");
            continue;
        };
        let (bridge, db, limit) = (bridge.clone(), db.clone(), limit.clone());
        let Some(certs) = &tls else {
            tokio::spawn(async move {
                connection(&bridge, &db, &limit, stream, src, false).await;
                drop(slot);
            });
            continue;
        };
        let mut config = (*certs.get_inner()).clone();
        // SIP, not HTTP: whatever ALPN a client offers (or none).
        config.alpn_protocols.clear();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        tokio::spawn(async move {
            match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => connection(&bridge, &db, &limit, tls, src, true).await,
                _ => {
                    metrics::counter!("convene_sip_refused_total", "reason" => "tls").increment(1);
                    tracing::debug!(%src, "SIP TLS handshake failed");
                }
            }
            drop(slot);
        });
    }
}

/// Where a message's header ends and how long its body is, once the
/// header is complete (`Content-Length`, or its compact form `l`).
pub fn framing(buf: &[u8]) -> Option<(usize, usize)> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = std::str::from_utf8(&buf[..end]).ok()?;
    let len = head
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| {
            let k = k.trim();
            k.eq_ignore_ascii_case("content-length") || k.eq_ignore_ascii_case("l")
        })
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0);
    Some((end, len))
}

/// One TCP connection: messages framed by `Content-Length`, answers
/// written in order by a writer task; a message that does not parse, one
/// larger than [`MAX_MESSAGE`] or [`TCP_IDLE`] of silence closes it.
async fn connection<S>(
    bridge: &Arc<PhoneBridge>,
    db: &Db,
    limit: &Mutex<InviteLimit>,
    stream: S,
    src: SocketAddr,
    tls: bool,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (out, mut queued) = mpsc::channel::<Vec<u8>>(TCP_QUEUE);
    tokio::spawn(async move {
        while let Some(m) = queued.recv().await {
            if wr.write_all(&m).await.is_err() {
                break;
            }
        }
    });
    let reply = Reply::Tcp { out, tls };
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 4096];
    loop {
        loop {
            // CRLF keep-alives (RFC 5626) between messages.
            let blank = buf
                .iter()
                .take_while(|b| **b == b'\r' || **b == b'\n')
                .count();
            buf.drain(..blank);
            let Some((head, body)) = framing(&buf) else {
                break;
            };
            if head + body > MAX_MESSAGE {
                return;
            }
            if buf.len() < head + body {
                break;
            }
            let msg: Vec<u8> = buf.drain(..head + body).collect();
            if !message(bridge, db, limit, &msg, src, &reply).await {
                return;
            }
        }
        if buf.len() > MAX_MESSAGE {
            return;
        }
        match tokio::time::timeout(TCP_IDLE, rd.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return,
        }
    }
}
