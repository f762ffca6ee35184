//! SDP offer/answer for phone calls (RFC 3264): the caller's offer is read
//! with the `sdp` crate — where its audio goes, which codec this side takes
//! (the first of Opus, PCMU and PCMA in the caller's order of preference)
//! and its RFC 4733 telephone-event payload type — and the answer names that
//! codec, the events and this side's RTP port.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use sdp::SessionDescription;

use super::srtp::Crypto;

/// The G.711 law of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// µ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

/// The audio codec of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    G711(Law),
    /// Opus (RFC 7587) under the caller's dynamic payload type.
    Opus(u8),
}

impl Codec {
    pub fn payload_type(self) -> u8 {
        match self {
            Codec::G711(Law::Pcmu) => 0,
            Codec::G711(Law::Pcma) => 8,
            Codec::Opus(pt) => pt,
        }
    }
    /// The rtpmap's encoding name and clock.
    fn rtpmap(self) -> &'static str {
        match self {
            Codec::G711(Law::Pcmu) => "PCMU/8000",
            Codec::G711(Law::Pcma) => "PCMA/8000",
            Codec::Opus(_) => "opus/48000/2",
        }
    }
    /// The RTP clock rate.
    pub fn clock(self) -> u32 {
        match self {
            Codec::G711(_) => 8000,
            Codec::Opus(_) => 48_000,
        }
    }
}

/// What this side takes from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where the caller receives RTP.
    pub rtp: SocketAddr,
    pub codec: Codec,
    /// The telephone-event payload type and its clock, if offered (the one
    /// at the codec's clock when the caller offers several).
    pub events: Option<(u8, u32)>,
    /// The transport as offered: `RTP/AVP`, or `RTP/SAVP` (SRTP required).
    pub profile: &'static str,
    /// The first SDES key of a suite this side takes, when the caller
    /// offers SRTP (under `RTP/SAVP`, or under `RTP/AVP` as "best effort").
    pub crypto: Option<Crypto>,
}

/// Why an offer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the session description does not parse: {0}")]
    Malformed(String),
    #[error("the offer has no audio stream with an address")]
    NoAudio,
    #[error("the offer has none of Opus, PCMU and PCMA")]
    NoCodec,
    #[error("the audio stream's transport {0} is not RTP/AVP nor RTP/SAVP")]
    Profile(String),
    #[error(
        "the offer asks for SRTP without a key this side takes (SDES AES_CM_128_HMAC_SHA1_80 or _32, one key, no MKI)"
    )]
    NoCrypto,
}

/// Reads an offer.
pub fn read_offer(body: &[u8]) -> Result<Offer, OfferError> {
    let sd = SessionDescription::unmarshal(&mut Cursor::new(body))
        .map_err(|e| OfferError::Malformed(e.to_string()))?;
    let audio = sd
        .media_descriptions
        .iter()
        .find(|m| m.media_name.media == "audio" && m.media_name.port.value > 0)
        .ok_or(OfferError::NoAudio)?;
    let address = audio
        .connection_information
        .as_ref()
        .or(sd.connection_information.as_ref())
        .and_then(|c| c.address.as_ref())
        .and_then(|a| a.address.split('/').next()?.parse::<IpAddr>().ok())
        .ok_or(OfferError::NoAudio)?;
    let port = u16::try_from(audio.media_name.port.value).map_err(|_| OfferError::NoAudio)?;
    let profile = match audio.media_name.protos.join("/").as_str() {
        "RTP/AVP" => "RTP/AVP",
        "RTP/SAVP" => "RTP/SAVP",
        other => return Err(OfferError::Profile(other.to_string())),
    };
    let crypto = audio
        .attributes
        .iter()
        .filter(|a| a.key == "crypto")
        .find_map(|a| Crypto::parse(a.value.as_deref()?));
    if profile == "RTP/SAVP" && crypto.is_none() {
        return Err(OfferError::NoCrypto);
    }
    let formats: Vec<u8> = audio
        .media_name
        .formats
        .iter()
        .filter_map(|f| f.parse().ok())
        .collect();
    // The rtpmap of an offered payload type, lower-cased
    // ("telephone-event/8000").
    let rtpmap = |pt: u8| {
        audio.attributes.iter().find_map(|a| {
            let v = a.value.as_deref().filter(|_| a.key == "rtpmap")?;
            let (p, codec) = v.split_once(' ')?;
            (p.parse::<u8>().ok()? == pt).then(|| codec.trim().to_ascii_lowercase())
        })
    };
    let codec = formats
        .iter()
        .find_map(|&pt| match pt {
            0 => Some(Codec::G711(Law::Pcmu)),
            8 => Some(Codec::G711(Law::Pcma)),
            96..=127 => rtpmap(pt)
                .is_some_and(|m| m == "opus/48000/2")
                .then_some(Codec::Opus(pt)),
            _ => None,
        })
        .ok_or(OfferError::NoCodec)?;
    let events: Vec<(u8, u32)> = formats
        .iter()
        .filter_map(|&pt| {
            let m = rtpmap(pt)?;
            let rate = m.strip_prefix("telephone-event/")?.parse().ok()?;
            Some((pt, rate))
        })
        .collect();
    let events = events
        .iter()
        .find(|e| e.1 == codec.clock())
        .or(events.first())
        .copied();
    Ok(Offer {
        rtp: SocketAddr::new(address, port),
        codec,
        events,
        profile,
        crypto,
    })
}

/// The answer: the offer's codec (and the events if offered) at `rtp`,
/// with this side's SRTP key `crypto` when the offer has one.
pub fn answer(offer: &Offer, rtp: SocketAddr, session: u64, crypto: Option<&Crypto>) -> String {
    let ip = rtp.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let pt = offer.codec.payload_type();
    let mut s = format!(
        "v=0\r\no=convene {session} {session} IN {family} {ip}\r\ns=convene\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\n"
    );
    let events = offer
        .events
        .map(|(ev, _)| format!(" {ev}"))
        .unwrap_or_default();
    s.push_str(&format!(
        "m=audio {} {} {pt}{events}\r\na=rtpmap:{pt} {}\r\n",
        rtp.port(),
        offer.profile,
        offer.codec.rtpmap()
    ));
    if let Some(c) = crypto.filter(|_| offer.crypto.is_some()) {
        s.push_str(&format!("a=crypto:{}\r\n", c.attribute()));
    }
    if let Codec::Opus(_) = offer.codec {
        // Mono towards the caller; in-band FEC for lossy trunks.
        s.push_str(&format!(
            "a=fmtp:{pt} useinbandfec=1;stereo=0;sprop-stereo=0\r\n"
        ));
    }
    if let Some((ev, rate)) = offer.events {
        s.push_str(&format!(
            "a=rtpmap:{ev} telephone-event/{rate}\r\na=fmtp:{ev} 0-15\r\n"
        ));
    }
    s.push_str("a=ptime:20\r\na=sendrecv\r\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 10.0.0.5\r\ns=call\r\nc=IN IP4 10.0.0.5\r\n\
        t=0 0\r\nm=audio 40000 RTP/AVP 9 8 0 101\r\na=rtpmap:9 G722/8000\r\n\
        a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
        a=fmtp:101 0-16\r\n";

    #[test]
    fn an_offer_gives_the_first_known_codec_and_the_events() {
        let o = read_offer(OFFER.as_bytes()).unwrap();
        assert_eq!(o.rtp, "10.0.0.5:40000".parse().unwrap());
        assert_eq!(o.codec, Codec::G711(Law::Pcma));
        assert_eq!(o.events, Some((101, 8000)));
        let a = answer(&o, "192.0.2.1:5004".parse().unwrap(), 7, None);
        assert!(a.contains("m=audio 5004 RTP/AVP 8 101\r\n"), "{a}");
        assert!(a.contains("c=IN IP4 192.0.2.1\r\n"), "{a}");
        // The answer is itself a session description the crate reads.
        let back = read_offer(a.as_bytes()).unwrap();
        assert_eq!(back.codec, Codec::G711(Law::Pcma));
        assert_eq!(back.events, Some((101, 8000)));
    }

    #[test]
    fn offers_without_a_known_codec_or_audio_are_refused() {
        let no_law = OFFER.replace("RTP/AVP 9 8 0 101", "RTP/AVP 9 101");
        assert_eq!(read_offer(no_law.as_bytes()), Err(OfferError::NoCodec));
        let video = OFFER.replace("m=audio", "m=video");
        assert_eq!(read_offer(video.as_bytes()), Err(OfferError::NoAudio));
        assert!(matches!(
            read_offer(b"garbage"),
            Err(OfferError::Malformed(_))
        ));
    }

    #[test]
    fn opus_is_taken_where_the_caller_prefers_it_with_events_at_its_clock() {
        let opus = OFFER
            .replace("RTP/AVP 9 8 0 101", "RTP/AVP 111 0 101 102")
            .replace(
                "a=rtpmap:9 G722/8000\r\n",
                "a=rtpmap:111 opus/48000/2\r\na=rtpmap:102 telephone-event/48000\r\n",
            );
        let o = read_offer(opus.as_bytes()).unwrap();
        assert_eq!(o.codec, Codec::Opus(111));
        assert_eq!(o.events, Some((102, 48_000)));
        let a = answer(&o, "192.0.2.1:5004".parse().unwrap(), 7, None);
        assert!(a.contains("m=audio 5004 RTP/AVP 111 102\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:111 opus/48000/2\r\n"), "{a}");
        assert!(a.contains("a=rtpmap:102 telephone-event/48000\r\n"), "{a}");
        let back = read_offer(a.as_bytes()).unwrap();
        assert_eq!((back.codec, back.events), (o.codec, o.events));
        // Listed after G.711, Opus waits its turn; opus under a static
        // payload type or at another clock is not Opus.
        let later = opus.replace("RTP/AVP 111 0 101 102", "RTP/AVP 0 111 101");
        let o = read_offer(later.as_bytes()).unwrap();
        assert_eq!(o.codec, Codec::G711(Law::Pcmu));
        assert_eq!(o.events, Some((101, 8000)));
        let odd = opus
            .replace("RTP/AVP 111 0 101 102", "RTP/AVP 111 101")
            .replace("opus/48000/2", "opus/16000/1");
        assert_eq!(read_offer(odd.as_bytes()), Err(OfferError::NoCodec));
    }

    #[test]
    fn srtp_offers_get_a_key_of_this_side_and_others_are_refused() {
        use crate::phone::srtp::Suite;
        let key = "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\r\n";
        let savp = OFFER.replace("RTP/AVP", "RTP/SAVP")
            + "a=crypto:1 AES_256_CM_HMAC_SHA1_80 inline:x\r\n"
            + key;
        let o = read_offer(savp.as_bytes()).unwrap();
        assert_eq!(o.profile, "RTP/SAVP");
        let theirs = o.crypto.clone().unwrap();
        assert_eq!((theirs.tag, theirs.suite), (2, Suite::Aes128Sha1_80));
        let ours = Crypto::fresh(theirs.tag, theirs.suite);
        let a = answer(&o, "192.0.2.1:5004".parse().unwrap(), 7, Some(&ours));
        assert!(a.contains("m=audio 5004 RTP/SAVP 8 101\r\n"), "{a}");
        assert!(
            a.contains(&format!("a=crypto:{}\r\n", ours.attribute())),
            "{a}"
        );
        // Best effort: SDES under RTP/AVP is taken and answered in kind.
        let avp = OFFER.to_string() + key;
        let o = read_offer(avp.as_bytes()).unwrap();
        assert_eq!((o.profile, o.crypto.is_some()), ("RTP/AVP", true));
        // SAVP without a usable key, DTLS-SRTP and SAVPF are refused.
        let no_key = OFFER.replace("RTP/AVP", "RTP/SAVP");
        assert_eq!(read_offer(no_key.as_bytes()), Err(OfferError::NoCrypto));
        for proto in ["UDP/TLS/RTP/SAVP", "RTP/SAVPF"] {
            let other = OFFER.replace("RTP/AVP", proto);
            assert_eq!(
                read_offer(other.as_bytes()),
                Err(OfferError::Profile(proto.into()))
            );
        }
        // No key offered: none answered, even when one is at hand.
        let plain = read_offer(OFFER.as_bytes()).unwrap();
        let a = answer(&plain, "192.0.2.1:5004".parse().unwrap(), 7, Some(&ours));
        assert!(!a.contains("a=crypto"), "{a}");
    }
}
