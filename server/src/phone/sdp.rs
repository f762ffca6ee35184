//! SDP offer/answer for phone calls (RFC 3264): the caller's offer is read
//! with the `sdp` crate — where its audio goes, which G.711 law it offers
//! (PCMU preferred) and its RFC 4733 telephone-event payload type — and the
//! answer names one law, the events and this side's RTP port.

use std::io::Cursor;
use std::net::{IpAddr, SocketAddr};

use sdp::SessionDescription;

/// The G.711 law of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// µ-law, static payload type 0.
    Pcmu,
    /// A-law, static payload type 8.
    Pcma,
}

impl Law {
    pub fn payload_type(self) -> u8 {
        match self {
            Law::Pcmu => 0,
            Law::Pcma => 8,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Law::Pcmu => "PCMU",
            Law::Pcma => "PCMA",
        }
    }
}

/// What this side takes from an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    /// Where the caller receives RTP.
    pub rtp: SocketAddr,
    pub law: Law,
    /// The telephone-event payload type, if offered.
    pub events: Option<u8>,
}

/// Why an offer was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OfferError {
    #[error("the session description does not parse: {0}")]
    Malformed(String),
    #[error("the offer has no audio stream with an address")]
    NoAudio,
    #[error("the offer has neither PCMU nor PCMA")]
    NoCodec,
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
    let formats: Vec<u8> = audio
        .media_name
        .formats
        .iter()
        .filter_map(|f| f.parse().ok())
        .collect();
    // The rtpmap names of dynamic payload types ("101 telephone-event/8000").
    let named = |name: &str| {
        audio.attributes.iter().find_map(|a| {
            let v = a.value.as_deref().filter(|_| a.key == "rtpmap")?;
            let (pt, codec) = v.split_once(' ')?;
            let pt: u8 = pt.parse().ok()?;
            (formats.contains(&pt) && codec.to_ascii_lowercase().starts_with(name)).then_some(pt)
        })
    };
    let law = formats
        .iter()
        .find_map(|pt| match pt {
            0 => Some(Law::Pcmu),
            8 => Some(Law::Pcma),
            _ => None,
        })
        .ok_or(OfferError::NoCodec)?;
    Ok(Offer {
        rtp: SocketAddr::new(address, port),
        law,
        events: named("telephone-event/8000"),
    })
}

/// The answer: `law` (and the events if offered) at `rtp`.
pub fn answer(offer: &Offer, rtp: SocketAddr, session: u64) -> String {
    let ip = rtp.ip();
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let pt = offer.law.payload_type();
    let mut s = format!(
        "v=0\r\no=convene {session} {session} IN {family} {ip}\r\ns=convene\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\n"
    );
    match offer.events {
        Some(ev) => s.push_str(&format!(
            "m=audio {} RTP/AVP {pt} {ev}\r\na=rtpmap:{pt} {}/8000\r\n\
             a=rtpmap:{ev} telephone-event/8000\r\na=fmtp:{ev} 0-15\r\n",
            rtp.port(),
            offer.law.name()
        )),
        None => s.push_str(&format!(
            "m=audio {} RTP/AVP {pt}\r\na=rtpmap:{pt} {}/8000\r\n",
            rtp.port(),
            offer.law.name()
        )),
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
    fn an_offer_gives_the_first_g711_law_and_the_events() {
        let o = read_offer(OFFER.as_bytes()).unwrap();
        assert_eq!(o.rtp, "10.0.0.5:40000".parse().unwrap());
        assert_eq!(o.law, Law::Pcma);
        assert_eq!(o.events, Some(101));
        let a = answer(&o, "192.0.2.1:5004".parse().unwrap(), 7);
        assert!(a.contains("m=audio 5004 RTP/AVP 8 101\r\n"), "{a}");
        assert!(a.contains("c=IN IP4 192.0.2.1\r\n"), "{a}");
        // The answer is itself a session description the crate reads.
        let back = read_offer(a.as_bytes()).unwrap();
        assert_eq!(back.law, Law::Pcma);
    }

    #[test]
    fn offers_without_g711_or_audio_are_refused() {
        let no_law = OFFER.replace("RTP/AVP 9 8 0 101", "RTP/AVP 9 101");
        assert_eq!(read_offer(no_law.as_bytes()), Err(OfferError::NoCodec));
        let video = OFFER.replace("m=audio", "m=video");
        assert_eq!(read_offer(video.as_bytes()), Err(OfferError::NoAudio));
        assert!(matches!(
            read_offer(b"garbage"),
            Err(OfferError::Malformed(_))
        ));
    }
}
