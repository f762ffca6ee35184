//! What a restream's ffmpeg child reads and runs: the SDP of the tracks it
//! composes, its command line (layout, encoders, the RTMP target), the RTP
//! packets re-sent to it, and the small readers around it (bound ports,
//! redaction of the stream key in its output).

use super::*;

/// One track in a running ffmpeg's SDP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdpTrack {
    pub key: TrackKey,
    pub codec: Codec,
    pub screen: bool,
    pub port: u16,
}

impl SdpTrack {
    pub(super) fn video(&self) -> bool {
        self.codec != Codec::Opus
    }
}

/// Whether the payload starts a keyframe of a video codec.
pub(super) fn starts_keyframe(codec: Codec, payload: &[u8]) -> bool {
    match codec {
        Codec::Vp8 => convene_media::vp8::is_keyframe(payload),
        Codec::Vp9 => convene_media::vp9::is_keyframe(payload),
        Codec::H264 => convene_media::h264::is_keyframe(payload),
        Codec::Av1 => convene_media::av1::is_keyframe(payload),
        Codec::Opus => false,
    }
}

/// The local ports of the bound UDP sockets (`/proc/net/udp` and `udp6`,
/// this network namespace), or `None` when neither can be read. Read rather
/// than probed with a bind of our own, which could make ffmpeg's bind fail.
pub(super) fn bound_udp_ports() -> Option<Vec<u16>> {
    let v4 = std::fs::read_to_string("/proc/net/udp").ok();
    let v6 = std::fs::read_to_string("/proc/net/udp6").ok();
    if v4.is_none() && v6.is_none() {
        return None;
    }
    let mut ports = parse_udp_table(v4.as_deref().unwrap_or(""));
    ports.extend(parse_udp_table(v6.as_deref().unwrap_or("")));
    Some(ports)
}

pub(super) fn parse_udp_table(table: &str) -> Vec<u16> {
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let local = l.split_whitespace().nth(1)?;
            let port = local.rsplit(':').next()?;
            u16::from_str_radix(port, 16).ok()
        })
        .collect()
}

pub(super) fn stderr_tail(t: &Mutex<VecDeque<String>>) -> String {
    let g = match t.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    g.iter().cloned().collect::<Vec<_>>().join("\n")
}

pub(super) fn last_line(s: &str) -> &str {
    s.trim().lines().last().unwrap_or("")
}

/// `text` with every occurrence of the stream key (raw or percent-encoded)
/// replaced.
pub fn redact(text: &str, key: &str) -> String {
    if key.is_empty() {
        return text.to_string();
    }
    let mut out = text.replace(key, "<stream key>");
    let encoded: String = key
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    if encoded != key {
        out = out.replace(&encoded, "<stream key>");
    }
    out
}

/// Whether ffmpeg 5.1 can depacketize the codec from RTP (not AV1).
pub(super) fn supported(c: Codec) -> bool {
    matches!(c, Codec::Vp8 | Codec::Vp9 | Codec::H264 | Codec::Opus)
}

pub(super) fn payload_type(c: Codec) -> u8 {
    match c {
        Codec::Vp8 => 96,
        Codec::Vp9 => 98,
        Codec::H264 => 102,
        Codec::Av1 => 45,
        Codec::Opus => 111,
    }
}

pub(super) fn ssrc_of(key: TrackKey) -> u32 {
    0x5253_0000 ^ (key.0 as u32)
}

/// Writes an RTP packet (no CSRC, no extensions) into `buf`.
pub(super) fn rtp_packet(
    buf: &mut Vec<u8>,
    pt: u8,
    marker: bool,
    seq: u16,
    ts: u32,
    ssrc: u32,
    payload: &[u8],
) {
    buf.clear();
    buf.push(0x80);
    buf.push(pt | if marker { 0x80 } else { 0 });
    buf.extend_from_slice(&seq.to_be_bytes());
    buf.extend_from_slice(&ts.to_be_bytes());
    buf.extend_from_slice(&ssrc.to_be_bytes());
    buf.extend_from_slice(payload);
}

/// An even local UDP port whose odd neighbour (ffmpeg's RTCP) is free too.
pub(super) fn free_port_pair() -> std::io::Result<u16> {
    for _ in 0..64 {
        let a = UdpSocket::bind("127.0.0.1:0")?;
        let p = a.local_addr()?.port();
        if p % 2 != 0 || p == u16::MAX {
            continue;
        }
        if UdpSocket::bind(("127.0.0.1", p + 1)).is_ok() {
            return Ok(p);
        }
    }
    Err(std::io::Error::other("no free port pair"))
}

/// The SDP ffmpeg reads the tracks from: videos first, then audios, in the
/// order given (the order of `0:v:N` / `0:a:N` in the filter graph).
pub fn sdp(tracks: &[SdpTrack]) -> String {
    let mut s = String::from(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=Convene restream\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n",
    );
    let videos = tracks.iter().filter(|t| t.video());
    let audios = tracks.iter().filter(|t| !t.video());
    for t in videos.chain(audios) {
        let pt = payload_type(t.codec);
        let (kind, map) = match t.codec {
            Codec::Vp8 => ("video", "VP8/90000"),
            Codec::Vp9 => ("video", "VP9/90000"),
            Codec::H264 => ("video", "H264/90000"),
            Codec::Av1 => ("video", "AV1/90000"),
            Codec::Opus => ("audio", "opus/48000/2"),
        };
        s.push_str(&format!(
            "m={kind} {} RTP/AVP {pt}\r\na=rtpmap:{pt} {map}\r\n",
            t.port
        ));
        if t.codec == Codec::H264 {
            s.push_str(&format!("a=fmtp:{pt} packetization-mode=1\r\n"));
        }
    }
    s
}

/// ffmpeg's arguments: the SDP input (when there are tracks), a paced
/// background and silence, the layout, H.264 + AAC, FLV to `url`.
/// `share_large`: a screen share (first in `tracks`) gets the large tile;
/// false lays every video out in a grid (the room's `grid` layout).
pub fn ffmpeg_args(
    tracks: &[SdpTrack],
    sdp: Option<&Path>,
    url: &str,
    share_large: bool,
) -> Vec<String> {
    let mut a: Vec<String> = [
        "-hide_banner",
        "-loglevel",
        "warning",
        "-nostats",
        "-progress",
        "pipe:1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let base = match sdp {
        Some(p) => {
            a.extend(
                [
                    "-protocol_whitelist",
                    "file,udp,rtp",
                    "-analyzeduration",
                    "3000000",
                    "-i",
                ]
                .iter()
                .map(|s| s.to_string()),
            );
            a.push(p.to_string_lossy().into_owned());
            1
        }
        None => 0,
    };
    a.extend([
        "-re".to_string(),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("color=c={BACKGROUND}:s={WIDTH}x{HEIGHT}:r={FPS}"),
        "-re".into(),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        "anullsrc=r=48000:cl=stereo".into(),
    ]);
    let videos: Vec<&SdpTrack> = tracks.iter().filter(|t| t.video()).collect();
    let audios = tracks.iter().filter(|t| !t.video()).count();
    let big = videos
        .first()
        .filter(|t| share_large && t.screen)
        .map(|_| 0);
    let tiles = layout(videos.len(), big, WIDTH, HEIGHT);
    let mut graph = Vec::new();
    let mut last = format!("{base}:v");
    for (n, r) in tiles.iter().enumerate() {
        graph.push(format!(
            "[0:v:{n}]setpts=PTS-STARTPTS,scale={w}:{h}:force_original_aspect_ratio=decrease,\
             pad={w}:{h}:(ow-iw)/2:(oh-ih)/2:color={BACKGROUND},setsar=1[t{n}]",
            w = r.w,
            h = r.h
        ));
        graph.push(format!(
            "[{last}][t{n}]overlay=x={}:y={}:eof_action=pass[o{n}]",
            r.x, r.y
        ));
        last = format!("o{n}");
    }
    graph.push(format!("[{last}]format=yuv420p[vout]"));
    let mut mix = format!("[{}:a]", base + 1);
    for n in 0..audios {
        graph.push(format!(
            "[0:a:{n}]asetpts=PTS-STARTPTS,aresample=48000,aformat=channel_layouts=stereo[a{n}]"
        ));
        mix.push_str(&format!("[a{n}]"));
    }
    graph.push(format!(
        "{mix}amix=inputs={}:duration=first:dropout_transition=0:normalize=0[aout]",
        audios + 1
    ));
    a.extend([
        "-filter_complex".to_string(),
        graph.join(";"),
        "-map".into(),
        "[vout]".into(),
        "-map".into(),
        "[aout]".into(),
        "-r".into(),
        FPS.to_string(),
        "-c:v".into(),
        "libx264".into(),
        "-preset".into(),
        "veryfast".into(),
        "-tune".into(),
        "zerolatency".into(),
        "-b:v".into(),
        "2500k".into(),
        "-maxrate".into(),
        "2500k".into(),
        "-bufsize".into(),
        "5000k".into(),
        "-g".into(),
        (FPS * 2).to_string(),
        "-pix_fmt".into(),
        "yuv420p".into(),
        "-c:a".into(),
        "aac".into(),
        "-b:a".into(),
        "128k".into(),
        "-ar".into(),
        "44100".into(),
        "-ac".into(),
        "2".into(),
        "-f".into(),
        "flv".into(),
        "-flvflags".into(),
        "no_duration_filesize".into(),
        url.to_string(),
    ]);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(key: u64, codec: Codec, screen: bool, port: u16) -> SdpTrack {
        SdpTrack {
            key: TrackKey(key),
            codec,
            screen,
            port,
        }
    }

    #[test]
    fn sdp_lists_videos_then_audios() {
        let s = sdp(&[
            t(1, Codec::Opus, false, 5000),
            t(2, Codec::Vp8, false, 5002),
            t(3, Codec::H264, true, 5004),
        ]);
        let m: Vec<&str> = s.lines().filter(|l| l.starts_with("m=")).collect();
        assert_eq!(
            m,
            [
                "m=video 5002 RTP/AVP 96\r",
                "m=video 5004 RTP/AVP 102\r",
                "m=audio 5000 RTP/AVP 111\r"
            ]
            .map(|l| l.trim_end_matches('\r'))
        );
        assert!(s.contains("a=fmtp:102 packetization-mode=1"));
    }

    #[test]
    fn args_compose_every_track_and_end_with_the_url() {
        let tracks = [
            t(1, Codec::Vp8, true, 5000),
            t(2, Codec::Vp8, false, 5002),
            t(3, Codec::Opus, false, 5004),
            t(4, Codec::Opus, false, 5006),
        ];
        let a = ffmpeg_args(
            &tracks,
            Some(Path::new("/tmp/x.sdp")),
            "rtmp://h/app/KEY",
            true,
        );
        assert_eq!(a.last().map(String::as_str), Some("rtmp://h/app/KEY"));
        let g = &a[a.iter().position(|s| s == "-filter_complex").unwrap() + 1];
        assert!(g.contains("[0:v:0]") && g.contains("[0:v:1]"));
        assert!(g.contains("[0:a:0]") && g.contains("[0:a:1]"));
        assert!(g.contains("[1:v][t0]overlay"));
        assert!(g.contains("[2:a][a0][a1]amix=inputs=3"));
        // Screen share first gets the big tile (3/4 of the width).
        assert!(g.contains("scale=960:720"));
        // The room's grid layout: the share is one tile of the grid.
        let a = ffmpeg_args(
            &tracks,
            Some(Path::new("/tmp/x.sdp")),
            "rtmp://h/app/KEY",
            false,
        );
        let g = &a[a.iter().position(|s| s == "-filter_complex").unwrap() + 1];
        assert!(!g.contains("scale=960:720"), "{g}");
        assert!(g.contains("scale=640:720"), "{g}");
        // No tracks: background and silence only.
        let a = ffmpeg_args(&[], None, "rtmp://h/app/KEY", true);
        assert!(!a.iter().any(|s| s.ends_with(".sdp")));
        let g = &a[a.iter().position(|s| s == "-filter_complex").unwrap() + 1];
        assert!(g.contains("[0:v]format=yuv420p[vout]"));
        assert!(g.contains("[1:a]amix=inputs=1"));
    }

    #[test]
    fn keys_are_redacted() {
        assert_eq!(
            redact("rtmp://h/live/abc?x=1: refused", "abc?x=1"),
            "rtmp://h/live/<stream key>: refused"
        );
        assert_eq!(
            redact("rtmp://h/live/a%20b", "a b"),
            "rtmp://h/live/<stream key>"
        );
        assert_eq!(redact("nothing", ""), "nothing");
    }

    #[test]
    fn udp_table() {
        let t = "  sl  local_address rem_address   st tx_queue rx_queue\n\
                 \x20 12: 0100007F:9C40 00000000:0000 07 00000000:00000000\n\
                 \x20 13: 00000000:9C41 00000000:0000 07 00000000:00000000\n";
        assert_eq!(parse_udp_table(t), [40000, 40001]);
    }

    #[test]
    fn rtp_header() {
        let mut b = Vec::new();
        rtp_packet(&mut b, 96, true, 0x1234, 0xdeadbeef, 7, &[1, 2]);
        assert_eq!(
            b,
            [
                0x80, 0xe0, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 7, 1, 2
            ]
        );
    }
}
