//! TURN clients over TCP and TLS: accepting them, and a reader and a writer task per connection that turn the byte stream into whole STUN messages and ChannelData frames (RFC 8656 §12.5) for the TURN task, and write its answers back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum_server::tls_rustls::RustlsConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use super::policy::Refusal;
use super::pool::BufPool;
use super::service::{Inbound, MAX_FRAME, refused};

/// Frames waiting to be written to one TCP client.
pub(super) const TCP_WRITE_QUEUE: usize = 256;
/// Longest a TURN-over-TLS handshake may take.
const TLS_HANDSHAKE: Duration = Duration::from_secs(10);
/// A TCP client silent this long is closed (allocations refresh far more often).
const TCP_IDLE: Duration = Duration::from_secs(900);

/// Accepts TURN clients over TCP, or over TLS with `tls`'s current
/// certificate (the HTTPS one; a SIGHUP reload applies to new connections).
pub(super) async fn accept_loop(
    listener: TcpListener,
    inbound: mpsc::Sender<Inbound>,
    open: Arc<tokio::sync::Semaphore>,
    tls: Option<RustlsConfig>,
    pool: Arc<BufPool>,
) {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!(error = %e, "TURN TCP accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = open.clone().try_acquire_owned() else {
            refused(Refusal::Capacity);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let inbound = inbound.clone();
        let pool = pool.clone();
        match &tls {
            None => {
                let (read, write) = stream.into_split();
                if !serve_stream(read, write, client, inbound, permit, pool).await {
                    return;
                }
            }
            Some(certs) => {
                // The handshake runs on its own task so that a slow client
                // holds up no one else.
                let mut config = (*certs.get_inner()).clone();
                // TURN, not HTTP: whatever ALPN a client offers (or none).
                config.alpn_protocols.clear();
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
                tokio::spawn(async move {
                    let stream =
                        match tokio::time::timeout(TLS_HANDSHAKE, acceptor.accept(stream)).await {
                            Ok(Ok(s)) => s,
                            _ => {
                                refused(Refusal::Handshake);
                                return;
                            }
                        };
                    let (read, write) = tokio::io::split(stream);
                    serve_stream(read, write, client, inbound, permit, pool).await;
                });
            }
        }
    }
}

/// Starts the reader and writer of one stream client and announces it;
/// false when the service has stopped.
async fn serve_stream<R, W>(
    read: R,
    write: W,
    client: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    permit: tokio::sync::OwnedSemaphorePermit,
    pool: Arc<BufPool>,
) -> bool
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (wtx, wrx) = mpsc::channel(TCP_WRITE_QUEUE);
    tokio::spawn(write_loop(write, wrx, pool.clone()));
    let tx = inbound.clone();
    let reader = tokio::spawn(async move {
        read_loop(read, client, &tx, &pool).await;
        let _ = tx.send(Inbound::TcpClosed { client }).await;
        drop(permit);
    });
    inbound
        .send(Inbound::TcpOpen {
            client,
            writer: wtx,
            reader: reader.abort_handle(),
        })
        .await
        .is_ok()
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut w: W,
    mut rx: mpsc::Receiver<Vec<u8>>,
    pool: Arc<BufPool>,
) {
    while let Some(frame) = rx.recv().await {
        let written = w.write_all(&frame).await;
        pool.give(frame);
        if written.is_err() {
            return;
        }
    }
    let _ = w.shutdown().await;
}

/// Length of the frame at the start of `buf` (RFC 8656 §12.5: STUN
/// messages, or ChannelData padded to 4 bytes over TCP), if known yet.
fn frame_len(buf: &[u8]) -> Option<usize> {
    if buf.len() < 4 {
        return None;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    Some(if buf[0] & 0xC0 == 0 {
        20 + len
    } else {
        (4 + len + 3) & !3
    })
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    client: SocketAddr,
    inbound: &mpsc::Sender<Inbound>,
    pool: &BufPool,
) {
    let mut buf = vec![0u8; MAX_FRAME * 2];
    let mut filled = 0;
    loop {
        while let Some(n) = frame_len(&buf[..filled]) {
            if buf[0] & 0xC0 >= 0x80 || n > MAX_FRAME {
                return; // neither STUN (00) nor ChannelData (01): not a TURN client
            }
            if filled < n {
                break;
            }
            // ChannelData without its TCP padding (the protocol crate's
            // stream buffer would read the padding as the next message).
            let unpadded = if buf[0] & 0xC0 == 0x40 {
                4 + usize::from(u16::from_be_bytes([buf[2], buf[3]]))
            } else {
                n
            };
            let frame = pool.copy_of(&buf[..unpadded]);
            buf.copy_within(n..filled, 0);
            filled -= n;
            if inbound
                .send(Inbound::TcpFrame {
                    client,
                    data: frame,
                })
                .await
                .is_err()
            {
                return;
            }
        }
        match tokio::time::timeout(TCP_IDLE, read.read(&mut buf[filled..])).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
            Ok(Ok(n)) => filled += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_frames() {
        // STUN header: 20 bytes + length.
        let mut stun = [0u8; 4];
        stun[3] = 8;
        assert_eq!(frame_len(&stun), Some(28));
        // ChannelData 0x4000, 5 bytes: padded to 12.
        assert_eq!(frame_len(&[0x40, 0x00, 0x00, 0x05]), Some(12));
        assert_eq!(frame_len(&[0x40, 0x00]), None);
    }
}
