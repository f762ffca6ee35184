//! The secure channel between two nodes: a TCP connection, a Noise
//! `NNpsk0` handshake keyed by the cluster secret (a node without the secret
//! cannot complete it, and every later message is authenticated and
//! encrypted with ChaCha20-Poly1305), then length-prefixed messages.
//!
//! On the wire a message is one or more Noise transport messages, each
//! `[u16 big-endian length][ciphertext]`; the first plaintext byte of each
//! says whether more parts follow. A message is at most [`MAX_MESSAGE`].
//! Nonces count up per direction (the transport is "stateless" so that the
//! reading and the writing thread each keep their own counter).

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use snow::StatelessTransportState;

const PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Largest Noise message (the protocol's limit).
const NOISE_MAX: usize = 65_535;
const TAG: usize = 16;
/// Plaintext bytes per part: the Noise limit less the tag and the flag.
const PART: usize = NOISE_MAX - TAG - 1;
/// Largest message either side accepts (an SDP offer of a large room is
/// far less).
pub const MAX_MESSAGE: usize = 1 << 20;
/// How long a handshake may take.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The prologue both sides hash into the handshake: a node of another
/// protocol version cannot complete it.
const PROLOGUE: &[u8] = b"convene node link v1";

/// The pre-shared key: a hash of the cluster secret.
pub fn psk(secret: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"convene node link psk\n");
    h.update(secret.as_bytes());
    h.finalize().into()
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

fn write_part(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(bytes.len()).map_err(io_err)?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(bytes)
}

fn read_part<'a>(r: &mut impl Read, buf: &'a mut [u8; NOISE_MAX]) -> std::io::Result<&'a [u8]> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len)?;
    let len = usize::from(u16::from_be_bytes(len));
    r.read_exact(&mut buf[..len])?;
    Ok(&buf[..len])
}

/// Runs the handshake on a fresh connection and tells the peer our node
/// id (inside the encrypted handshake); returns both directions and the
/// peer's node id. A wrong secret fails here (`Decrypt`).
pub fn handshake(
    stream: TcpStream,
    initiator: bool,
    psk: &[u8; 32],
    node_id: &str,
) -> std::io::Result<(LinkWriter, LinkReader, String)> {
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_write_timeout(Some(HANDSHAKE_TIMEOUT))?;
    stream.set_nodelay(true)?;
    let params = PARAMS.parse().map_err(io_err)?;
    let builder = snow::Builder::new(params)
        .psk(0, psk)
        .map_err(io_err)?
        .prologue(PROLOGUE)
        .map_err(io_err)?;
    let mut hs = if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
    .map_err(io_err)?;
    let mut s = &stream;
    let mut out = vec![0u8; NOISE_MAX];
    let mut inbuf = Box::new([0u8; NOISE_MAX]);
    let mut payload = vec![0u8; NOISE_MAX];
    let remote = if initiator {
        let n = hs
            .write_message(node_id.as_bytes(), &mut out)
            .map_err(io_err)?;
        write_part(&mut s, &out[..n])?;
        let m = read_part(&mut s, &mut inbuf)?;
        let n = hs.read_message(m, &mut payload).map_err(io_err)?;
        payload[..n].to_vec()
    } else {
        let m = read_part(&mut s, &mut inbuf)?;
        let n = hs.read_message(m, &mut payload).map_err(io_err)?;
        let remote = payload[..n].to_vec();
        let n = hs
            .write_message(node_id.as_bytes(), &mut out)
            .map_err(io_err)?;
        write_part(&mut s, &out[..n])?;
        remote
    };
    let remote = String::from_utf8(remote).map_err(io_err)?;
    if remote.is_empty() || remote.len() > 64 {
        return Err(io_err("the other node sent no usable node id"));
    }
    let state = Arc::new(hs.into_stateless_transport_mode().map_err(io_err)?);
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let read_half = stream.try_clone()?;
    Ok((
        LinkWriter {
            state: state.clone(),
            nonce: 0,
            w: BufWriter::with_capacity(64 * 1024, stream),
            out: vec![0u8; NOISE_MAX],
            part: Vec::with_capacity(NOISE_MAX),
        },
        LinkReader {
            state,
            nonce: 0,
            r: BufReader::with_capacity(64 * 1024, read_half),
            inbuf,
            plain: vec![0u8; NOISE_MAX],
            msg: Vec::with_capacity(4096),
        },
        remote,
    ))
}

/// The sending direction: messages are encrypted into a buffered writer;
/// `flush` puts them on the wire.
pub struct LinkWriter {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    w: BufWriter<TcpStream>,
    out: Vec<u8>,
    part: Vec<u8>,
}

impl LinkWriter {
    /// Encrypts and queues one message (split into parts when large).
    pub fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
        if msg.len() > MAX_MESSAGE {
            return Err(io_err("node link message too large"));
        }
        let mut chunks = msg.chunks(PART).peekable();
        if msg.is_empty() {
            return self.send_part(&[], false);
        }
        while let Some(c) = chunks.next() {
            let more = chunks.peek().is_some();
            self.send_part(c, more)?;
        }
        Ok(())
    }

    fn send_part(&mut self, data: &[u8], more: bool) -> std::io::Result<()> {
        self.part.clear();
        self.part.push(u8::from(more));
        self.part.extend_from_slice(data);
        let n = self
            .state
            .write_message(self.nonce, &self.part, &mut self.out)
            .map_err(io_err)?;
        self.nonce += 1;
        write_part(&mut self.w, &self.out[..n])
    }

    pub fn flush(&mut self) -> std::io::Result<()> {
        self.w.flush()
    }

    /// Ends the connection both ways (the reader sees the end).
    pub fn shutdown(&self) {
        let _ = self.w.get_ref().shutdown(std::net::Shutdown::Both);
    }
}

/// The receiving direction.
pub struct LinkReader {
    state: Arc<StatelessTransportState>,
    nonce: u64,
    r: BufReader<TcpStream>,
    inbuf: Box<[u8; NOISE_MAX]>,
    plain: Vec<u8>,
    msg: Vec<u8>,
}

impl LinkReader {
    /// Sets how long `recv` waits before it fails (the peer's pings come
    /// more often).
    pub fn set_timeout(&self, t: Duration) -> std::io::Result<()> {
        self.r.get_ref().set_read_timeout(Some(t))
    }

    /// The next whole message. Fails on a closed connection, a timeout, a
    /// part that does not decrypt (a forged or replayed one), or a message
    /// over [`MAX_MESSAGE`].
    pub fn recv(&mut self) -> std::io::Result<&[u8]> {
        self.msg.clear();
        loop {
            let part = read_part(&mut self.r, &mut self.inbuf)?;
            let n = self
                .state
                .read_message(self.nonce, part, &mut self.plain)
                .map_err(|_| io_err("a node link message did not decrypt"))?;
            self.nonce += 1;
            let Some((&more, data)) = self.plain[..n].split_first() else {
                return Err(io_err("an empty node link part"));
            };
            if self.msg.len() + data.len() > MAX_MESSAGE {
                return Err(io_err("node link message too large"));
            }
            self.msg.extend_from_slice(data);
            if more == 0 {
                return Ok(&self.msg);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn pair(
        a: &str,
        b: &str,
    ) -> std::io::Result<((LinkWriter, LinkReader), (LinkWriter, LinkReader))> {
        let l = TcpListener::bind("127.0.0.1:0")?;
        let addr = l.local_addr()?;
        let (pa, pb) = (psk(a), psk(b));
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept()?;
            handshake(s, false, &pb, "responder")
        });
        let ini = handshake(TcpStream::connect(addr)?, true, &pa, "initiator");
        let resp = t.join().unwrap();
        let (iw, ir, iname) = ini?;
        let (rw, rr, rname) = resp?;
        assert_eq!(iname, "responder");
        assert_eq!(rname, "initiator");
        Ok(((iw, ir), (rw, rr)))
    }

    #[test]
    fn messages_of_any_size_cross_both_ways() {
        let ((mut iw, mut ir), (mut rw, mut rr)) =
            pair("s3cret-s3cret-s3cret", "s3cret-s3cret-s3cret").unwrap();
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        for m in [&b"hello"[..], &[], &big[..]] {
            iw.send(m).unwrap();
            iw.flush().unwrap();
            assert_eq!(rr.recv().unwrap(), m);
        }
        rw.send(b"back").unwrap();
        rw.flush().unwrap();
        assert_eq!(ir.recv().unwrap(), b"back");
        assert!(iw.send(&vec![0; MAX_MESSAGE + 1]).is_err());
    }

    #[test]
    fn another_secret_cannot_complete_the_handshake() {
        assert!(pair("s3cret-s3cret-s3cret", "other-other-other-other").is_err());
    }

    #[test]
    fn a_tampered_part_is_refused() {
        // A writer whose bytes are altered on the way: the reader fails.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let p = psk("s3cret-s3cret-s3cret");
        let t = std::thread::spawn(move || {
            let (s, _) = l.accept().unwrap();
            handshake(s, false, &p, "b").unwrap()
        });
        let raw = TcpStream::connect(addr).unwrap();
        let (mut w, _r, _) = handshake(raw.try_clone().unwrap(), true, &p, "a").unwrap();
        let (_bw, mut br, _) = t.join().unwrap();
        w.send(b"first").unwrap();
        w.flush().unwrap();
        assert_eq!(br.recv().unwrap(), b"first");
        // A part of the right length but forged bytes.
        let mut s = &raw;
        s.write_all(&[0, 20]).unwrap();
        s.write_all(&[7u8; 20]).unwrap();
        assert!(br.recv().is_err());
    }
}
