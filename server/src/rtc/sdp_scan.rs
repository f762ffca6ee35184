//! Reads what an SDP offer intends to send, per m-line, before str0m sees it:
//! the signaling layer checks publish permissions against it.

use str0m::media::MediaKind;

/// One m-line the offerer will send on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendingLine {
    pub mid: String,
    pub kind: MediaKind,
}

/// An audio or video m-line of an offer and its direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaLine {
    pub mid: Option<String>,
    pub kind: MediaKind,
    /// `sendonly` or `sendrecv` (the default when no direction is given).
    pub sends: bool,
    /// `recvonly` or `sendrecv` (or no direction given).
    pub receives: bool,
}

/// The audio and video m-lines of `sdp`, whatever their port: a port of 0
/// does not stop a bundled m-line from sending (str0m takes it), so it must
/// not hide one from the permission check.
pub fn media_lines(sdp: &str) -> Vec<MediaLine> {
    let mut out = Vec::new();
    for section in sdp.split("\nm=").skip(1) {
        let mut lines = section.lines();
        let header = lines.next().unwrap_or("");
        let kind = match header.split_whitespace().next() {
            Some("audio") => MediaKind::Audio,
            Some("video") => MediaKind::Video,
            _ => continue,
        };
        let mut mid = None;
        let (mut sends, mut receives) = (true, true);
        for line in lines {
            let line = line.trim_end_matches('\r');
            if let Some(m) = line.strip_prefix("a=mid:") {
                mid = Some(m.trim().to_string());
            }
            (sends, receives) = match line {
                "a=recvonly" => (false, true),
                "a=inactive" => (false, false),
                "a=sendonly" => (true, false),
                "a=sendrecv" => (true, true),
                _ => (sends, receives),
            };
        }
        out.push(MediaLine {
            mid,
            kind,
            sends,
            receives,
        });
    }
    out
}

/// The m-lines of `sdp` whose direction is `sendonly` or `sendrecv` (the
/// default when no direction is given); see [`media_lines`].
pub fn sending_lines(sdp: &str) -> Vec<SendingLine> {
    media_lines(sdp)
        .into_iter()
        .filter(|l| l.sends)
        .filter_map(|l| {
            Some(SendingLine {
                mid: l.mid?,
                kind: l.kind,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sending_lines() {
        let sdp = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=sendonly\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=sendrecv\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:2\r\na=recvonly\r\n\
m=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:3\r\na=sendonly\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\na=mid:4\r\n";
        let lines = sending_lines(sdp);
        assert_eq!(
            lines,
            vec![
                SendingLine {
                    mid: "0".into(),
                    kind: MediaKind::Audio
                },
                SendingLine {
                    mid: "1".into(),
                    kind: MediaKind::Video
                },
                SendingLine {
                    mid: "3".into(),
                    kind: MediaKind::Video
                },
            ]
        );
        assert!(sending_lines("garbage").is_empty());
        assert!(sending_lines("").is_empty());
    }
}
