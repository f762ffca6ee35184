//! RTMP restreaming rules: the body of `POST /rooms/{room}/restreamers/start`
//! and `/stop` (Digital Samba's fields), the providers' ingest URLs, and the
//! destination a restream pushes to. Pure: no IO. The SSRF check of the
//! target's host is the caller's (it resolves names).
//!
//! The stream key is a secret: [`RestreamTarget`]'s `Debug` hides it, and
//! no error built here quotes it.

use serde_json::{Map, Value};

use super::fields::{FieldErrors, Invalid, check, push};

/// Longest `server_url` accepted.
pub const MAX_SERVER_URL: usize = 1024;
/// Longest `stream_key` accepted.
pub const MAX_STREAM_KEY: usize = 512;

/// A provider named by `type`, and its documented RTMPS ingest URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    Youtube,
    Vimeo,
    Cloudflare,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::Youtube, Provider::Vimeo, Provider::Cloudflare];

    pub fn name(self) -> &'static str {
        match self {
            Provider::Youtube => "youtube",
            Provider::Vimeo => "vimeo",
            Provider::Cloudflare => "cloudflare",
        }
    }

    /// The ingest URL the stream key is appended to.
    pub fn ingest_url(self) -> &'static str {
        match self {
            Provider::Youtube => "rtmps://a.rtmps.youtube.com:443/live2",
            Provider::Vimeo => "rtmps://rtmp-global.cloud.vimeo.com:443/live",
            Provider::Cloudflare => "rtmps://live.cloudflare.com:443/live",
        }
    }

    pub fn parse(s: &str) -> Option<Provider> {
        Provider::ALL
            .into_iter()
            .find(|p| p.name().eq_ignore_ascii_case(s))
    }
}

/// Where a restream goes: an rtmp(s) server and the key appended to it.
#[derive(Clone, PartialEq, Eq)]
pub struct RestreamTarget {
    /// The `type` it came from, if any.
    pub provider: Option<Provider>,
    /// `rtmp://` or `rtmps://` URL without a trailing slash (no key).
    pub server_url: String,
    /// Secret: never logged, never returned.
    pub stream_key: String,
}

impl RestreamTarget {
    /// The URL ffmpeg publishes to: `server_url/stream_key`. Secret.
    pub fn publish_url(&self) -> String {
        format!("{}/{}", self.server_url, self.stream_key)
    }

    /// The host and port ffmpeg connects to (for the SSRF check).
    pub fn host_port(&self) -> Option<(String, u16)> {
        let url = reqwest::Url::parse(&self.server_url).ok()?;
        let host = url.host_str()?.to_string();
        let default = if url.scheme() == "rtmps" { 443 } else { 1935 };
        Some((host, url.port().unwrap_or(default)))
    }
}

impl std::fmt::Debug for RestreamTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestreamTarget")
            .field("provider", &self.provider.map(Provider::name))
            .field("server_url", &self.server_url)
            .field("stream_key", &"<hidden>")
            .finish()
    }
}

/// Checks a custom `server_url`: rtmp:// or rtmps://, a host, no
/// credentials, query or fragment. Returns it without a trailing slash.
pub fn parse_server_url(s: &str) -> Result<String, String> {
    if s.len() > MAX_SERVER_URL {
        return Err(format!("must be at most {MAX_SERVER_URL} characters"));
    }
    let url = reqwest::Url::parse(s.trim())
        .map_err(|_| "must be an rtmp:// or rtmps:// URL".to_string())?;
    if url.scheme() != "rtmp" && url.scheme() != "rtmps" {
        return Err("must be an rtmp:// or rtmps:// URL".into());
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("must name a host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials; put the key in stream_key".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment; put the key in stream_key".into());
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Checks a stream key: 1..512 visible ASCII characters. Errors never quote it.
fn check_stream_key(k: &str) -> Result<(), String> {
    if k.is_empty() {
        return Err("is required".into());
    }
    if k.len() > MAX_STREAM_KEY {
        return Err(format!("must be at most {MAX_STREAM_KEY} characters"));
    }
    if !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be visible ASCII characters without spaces".into());
    }
    Ok(())
}

/// The destination of a start body: `type` or `server_url` (exactly one),
/// and `stream_key`.
pub fn parse_start(body: &Map<String, Value>) -> Result<RestreamTarget, Invalid> {
    let mut errors = FieldErrors::new();
    let (provider, server_url) = destination(body, &mut errors, true);
    let key = match body.get("stream_key") {
        None | Some(Value::Null) => {
            push(&mut errors, "stream_key", "is required");
            None
        }
        Some(Value::String(k)) => match check_stream_key(k) {
            Ok(()) => Some(k.clone()),
            Err(e) => {
                push(&mut errors, "stream_key", e);
                None
            }
        },
        Some(_) => {
            push(&mut errors, "stream_key", "must be a string");
            None
        }
    };
    check(errors)?;
    match (server_url, key) {
        (Some(server_url), Some(stream_key)) => Ok(RestreamTarget {
            provider,
            server_url,
            stream_key,
        }),
        _ => Err(Invalid::field("server_url", "is required")),
    }
}

/// What a stop body selects: every restream of the room (an empty body), or
/// those to one `type` / `server_url` (and `stream_key`, when given).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StopSelector {
    pub server_url: Option<String>,
    pub stream_key: Option<String>,
}

impl std::fmt::Debug for StopSelector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StopSelector")
            .field("server_url", &self.server_url)
            .field("stream_key", &self.stream_key.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

impl StopSelector {
    pub fn matches(&self, t: &RestreamTarget) -> bool {
        self.server_url.as_ref().is_none_or(|u| *u == t.server_url)
            && self.stream_key.as_ref().is_none_or(|k| *k == t.stream_key)
    }
}

pub fn parse_stop(body: &Map<String, Value>) -> Result<StopSelector, Invalid> {
    let mut errors = FieldErrors::new();
    let (_, server_url) = destination(body, &mut errors, false);
    let stream_key = match body.get("stream_key") {
        None | Some(Value::Null) => None,
        Some(Value::String(k)) => match check_stream_key(k) {
            Ok(()) => Some(k.clone()),
            Err(e) => {
                push(&mut errors, "stream_key", e);
                None
            }
        },
        Some(_) => {
            push(&mut errors, "stream_key", "must be a string");
            None
        }
    };
    check(errors)?;
    Ok(StopSelector {
        server_url,
        stream_key,
    })
}

/// `type` xor `server_url` -> (provider, server URL).
fn destination(
    body: &Map<String, Value>,
    errors: &mut FieldErrors,
    required: bool,
) -> (Option<Provider>, Option<String>) {
    let ty = body.get("type").filter(|v| !v.is_null());
    let url = body.get("server_url").filter(|v| !v.is_null());
    match (ty, url) {
        (Some(_), Some(_)) => {
            push(errors, "type", "give either type or server_url, not both");
            (None, None)
        }
        (Some(Value::String(t)), None) => match Provider::parse(t) {
            Some(p) => (Some(p), Some(p.ingest_url().to_string())),
            None => {
                push(errors, "type", "must be youtube, vimeo or cloudflare");
                (None, None)
            }
        },
        (Some(_), None) => {
            push(errors, "type", "must be a string");
            (None, None)
        }
        (None, Some(Value::String(u))) => match parse_server_url(u) {
            Ok(u) => (None, Some(u)),
            Err(e) => {
                push(errors, "server_url", e);
                (None, None)
            }
        },
        (None, Some(_)) => {
            push(errors, "server_url", "must be a string");
            (None, None)
        }
        (None, None) => {
            if required {
                push(
                    errors,
                    "server_url",
                    "is required unless type (youtube, vimeo or cloudflare) is given",
                );
            }
            (None, None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn providers_map_to_their_ingest() {
        let t = parse_start(&obj(json!({"type": "youtube", "stream_key": "abcd-1234"}))).unwrap();
        assert_eq!(t.provider, Some(Provider::Youtube));
        assert_eq!(
            t.publish_url(),
            "rtmps://a.rtmps.youtube.com:443/live2/abcd-1234"
        );
        assert_eq!(
            t.host_port(),
            Some(("a.rtmps.youtube.com".to_string(), 443))
        );
        for p in Provider::ALL {
            assert!(parse_server_url(p.ingest_url()).is_ok());
        }
    }

    #[test]
    fn custom_urls() {
        let t = parse_start(&obj(json!({"server_url": "rtmp://example.com/live/",
                                         "stream_key": "k"})))
        .unwrap();
        assert_eq!(t.server_url, "rtmp://example.com/live");
        assert_eq!(t.publish_url(), "rtmp://example.com/live/k");
        assert_eq!(t.host_port(), Some(("example.com".to_string(), 1935)));
        for bad in [
            "ftp://example.com/live",
            "http://example.com/live",
            "rtmp://",
            "rtmp://u:p@example.com/live",
            "rtmp://example.com/live?key=1",
            "not a url",
        ] {
            let e = parse_start(&obj(json!({"server_url": bad, "stream_key": "k"}))).unwrap_err();
            assert!(e.0.contains_key("server_url"), "{bad}: {e}");
        }
    }

    #[test]
    fn refusals_name_the_field_and_never_the_key() {
        let e = parse_start(&obj(json!({"type": "youtube"}))).unwrap_err();
        assert!(e.0.contains_key("stream_key"));
        let e = parse_start(&obj(json!({"stream_key": "k"}))).unwrap_err();
        assert!(e.0.contains_key("server_url"));
        let e = parse_start(&obj(json!({"type": "twitch", "stream_key": "k"}))).unwrap_err();
        assert!(e.0.contains_key("type"));
        let e = parse_start(&obj(json!({"type": "youtube",
            "server_url": "rtmp://example.com/x", "stream_key": "k"})))
        .unwrap_err();
        assert!(e.0.contains_key("type"));
        let secret = "top secret key";
        let e = parse_start(&obj(json!({"type": "vimeo", "stream_key": secret}))).unwrap_err();
        assert!(!e.message().contains(secret));
        let t = RestreamTarget {
            provider: None,
            server_url: "rtmp://x/y".into(),
            stream_key: "SECRET".into(),
        };
        assert!(!format!("{t:?}").contains("SECRET"));
    }

    #[test]
    fn stop_selectors() {
        assert_eq!(parse_stop(&Map::new()).unwrap(), StopSelector::default());
        let s = parse_stop(&obj(json!({"type": "vimeo"}))).unwrap();
        let t = parse_start(&obj(json!({"type": "vimeo", "stream_key": "a"}))).unwrap();
        assert!(s.matches(&t));
        let y = parse_start(&obj(json!({"type": "youtube", "stream_key": "a"}))).unwrap();
        assert!(!s.matches(&y));
        assert!(parse_stop(&obj(json!({"server_url": "ftp://x"}))).is_err());
    }
}
