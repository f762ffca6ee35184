//! The camera API's ONVIF endpoints against the real `convene-appliance` and
//! a small ONVIF camera started by the test: a WS-Discovery responder on the
//! multicast group (loopback interface) and a SOAP device service that checks
//! the WS-Security password digest the way a camera does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsString;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Child;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use base64::Engine as _;
use serde_json::Value;
use sha1::{Digest as _, Sha1};

const KEY: &str = "onvif-test-key";
const CAM_USER: &str = "operator";
const CAM_PASS: &str = "cam-secret-42";
const CAM_UUID: &str = "urn:uuid:5f1c7a2e-0b7d-4f8e-9a51-3c2d1e0f9a88";
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 255, 250);

const SOAP12: &str = "http://www.w3.org/2003/05/soap-envelope";

/// What the fake camera's SOAP service saw.
#[derive(Default)]
struct Seen {
    requests: Vec<String>,
}

/// Starts the fake camera's HTTP side; returns its port and what stops it.
async fn camera_http(seen: Arc<Mutex<Seen>>) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let s1 = seen.clone();
    let app = axum::Router::new()
        .route(
            "/onvif/device_service",
            axum::routing::post(move |body: Bytes| {
                let seen = s1.clone();
                async move { device_service(&seen, &body) }
            }),
        )
        .route(
            "/onvif/media_service",
            axum::routing::post(|| async {
                (
                    [(header::CONTENT_TYPE, "application/soap+xml")],
                    envelope("<trt:GetProfilesResponse xmlns:trt=\"urn:media\"/>"),
                )
            }),
        )
        .route(
            "/onvif/moved_service",
            axum::routing::post(|| async {
                (
                    StatusCode::FOUND,
                    [(header::LOCATION, "http://127.0.0.1:9/elsewhere")],
                )
            }),
        );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(l, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    (port, stop)
}

fn envelope(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"{SOAP12}\"><s:Body>{body}</s:Body></s:Envelope>"
    )
}

/// A camera's check of a UsernameToken with a password digest.
fn device_service(seen: &Mutex<Seen>, body: &[u8]) -> axum::response::Response {
    let text = String::from_utf8(body.to_vec()).unwrap();
    seen.lock().unwrap().requests.push(text.clone());
    let doc = roxmltree::Document::parse(&text).unwrap();
    let find = |n: &str| {
        doc.descendants()
            .find(|x| x.tag_name().name() == n)
            .and_then(|x| x.text())
            .map(str::to_string)
    };
    let b64 = base64::engine::general_purpose::STANDARD;
    let authorised = match (
        find("Username"),
        find("Password"),
        find("Nonce"),
        find("Created"),
    ) {
        (Some(u), Some(p), Some(n), Some(c)) => {
            let mut h = Sha1::new();
            h.update(b64.decode(n).unwrap());
            h.update(c.as_bytes());
            h.update(CAM_PASS.as_bytes());
            u == CAM_USER && p == b64.encode(h.finalize())
        }
        _ => false,
    };
    if !authorised {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/soap+xml")],
            envelope("<s:Fault><s:Code><s:Value>s:Sender</s:Value></s:Code><s:Reason><s:Text xml:lang=\"en\">NotAuthorized</s:Text></s:Reason></s:Fault>"),
        )
            .into_response();
    }
    (
        [(header::CONTENT_TYPE, "application/soap+xml; charset=utf-8")],
        envelope(
            "<tds:GetDeviceInformationResponse xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\">\
             <tds:Manufacturer>Testcam</tds:Manufacturer><tds:Model>TC-1</tds:Model>\
             <tds:SerialNumber>SN-0001</tds:SerialNumber></tds:GetDeviceInformationResponse>",
        ),
    )
        .into_response()
}

/// The fake camera's WS-Discovery side: joins the group on the loopback
/// interface and answers each probe with a `ProbeMatches` related to it,
/// plus an answer to some other probe (which the appliance must ignore).
fn camera_discovery(http_port: u16) -> std::thread::JoinHandle<()> {
    use socket2::{Domain, Protocol, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).unwrap();
    s.set_reuse_address(true).unwrap();
    s.bind(&SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 3702)).into())
        .unwrap();
    s.join_multicast_v4(&GROUP, &Ipv4Addr::LOCALHOST).unwrap();
    let sock: std::net::UdpSocket = s.into();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let Ok(doc) = roxmltree::Document::parse(&text) else {
                continue;
            };
            let Some(id) = doc
                .descendants()
                .find(|x| x.tag_name().name() == "MessageID")
                .and_then(|x| x.text())
            else {
                continue;
            };
            let probe_types = doc
                .descendants()
                .find(|x| x.tag_name().name() == "Types")
                .and_then(|x| x.text())
                .unwrap_or_default();
            assert!(probe_types.contains("NetworkVideoTransmitter"));
            for relates in ["urn:uuid:not-your-probe", id] {
                let answer = format!(
                    r#"<?xml version="1.0" encoding="UTF-8"?>
<SOAP-ENV:Envelope xmlns:SOAP-ENV="{SOAP12}" xmlns:wsa="http://schemas.xmlsoap.org/ws/2004/08/addressing" xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" xmlns:dn="http://www.onvif.org/ver10/network/wsdl">
<SOAP-ENV:Header><wsa:MessageID>urn:uuid:answer</wsa:MessageID><wsa:RelatesTo>{relates}</wsa:RelatesTo>
<wsa:Action>http://schemas.xmlsoap.org/ws/2005/04/discovery/ProbeMatches</wsa:Action></SOAP-ENV:Header>
<SOAP-ENV:Body><d:ProbeMatches><d:ProbeMatch>
<wsa:EndpointReference><wsa:Address>{CAM_UUID}</wsa:Address></wsa:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter</d:Types>
<d:Scopes>onvif://www.onvif.org/name/Lab%20Camera onvif://www.onvif.org/hardware/TC-1 onvif://www.onvif.org/location/lab</d:Scopes>
<d:XAddrs>http://127.0.0.1:{http_port}/onvif/device_service http://192.0.2.55/onvif/device_service</d:XAddrs>
<d:MetadataVersion>1</d:MetadataVersion></d:ProbeMatch></d:ProbeMatches></SOAP-ENV:Body></SOAP-ENV:Envelope>"#
                );
                let _ = sock.send_to(answer.as_bytes(), from);
            }
        }
    })
}

struct Agent {
    child: Child,
    base: String,
    _tmp: tempfile::TempDir,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> Agent {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = dir.join("appliance.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[onvif]
interface = "127.0.0.1"
discovery_timeout_ms = 1000
request_timeout_ms = 3000

[[onvif.credentials]]
device = "{CAM_UUID}"
username = "{CAM_USER}"
password = "{CAM_PASS}"
"#
        ),
    )
    .unwrap();
    let env: Vec<(&str, OsString)> = vec![
        ("CONVENE_APPLIANCE_API_KEY", KEY.into()),
        ("CONVENE_APPLIANCE_VIDEO_SOURCE", "test-pattern".into()),
        ("CONVENE_APPLIANCE_AUDIO_SOURCE", "sine".into()),
        ("CONVENE_APPLIANCE_VIDEO_WIDTH", "320".into()),
        ("CONVENE_APPLIANCE_VIDEO_HEIGHT", "240".into()),
        ("CONVENE_APPLIANCE_MEDIA_DIR", dir.join("media").into()),
        (
            "CONVENE_APPLIANCE_STATE_FILE",
            dir.join("state.json").into(),
        ),
    ];
    let (child, base) = common::spawn(&config, &env);
    Agent {
        child,
        base,
        _tmp: tmp,
    }
}

fn get_info(with_security: bool) -> String {
    let header = if with_security {
        "<s:Header><wsse:Security xmlns:wsse=\"http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd\"><wsse:UsernameToken><wsse:Username>operator</wsse:Username><wsse:Password>wrong</wsse:Password></wsse:UsernameToken></wsse:Security></s:Header>"
    } else {
        ""
    };
    format!(
        "<?xml version=\"1.0\"?><s:Envelope xmlns:s=\"{SOAP12}\">{header}<s:Body><tds:GetDeviceInformation xmlns:tds=\"http://www.onvif.org/ver10/device/wsdl\"/></s:Body></s:Envelope>"
    )
}

async fn soap(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    body: String,
) -> (u16, String, reqwest::header::HeaderMap) {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(KEY)
        .header("content-type", "application/soap+xml; charset=utf-8")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    (status, r.text().await.unwrap(), headers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_the_camera_and_soap_requests_reach_it_with_its_credentials() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (port, stop_camera) = camera_http(seen.clone()).await;
    let _responder = camera_discovery(port);
    let a = agent();
    // The test's own client must not follow redirects either, to see the 302.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Before any discovery the device is unknown.
    let (st, body, _) = soap(
        &http,
        &a.base,
        &format!("/api/onvif/{CAM_UUID}/device_service"),
        get_info(false),
    )
    .await;
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("discover"), "{body}");

    let r = http
        .get(format!("{}/api/onvif/discover", a.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    let devices = v["devices"].as_array().unwrap();
    // One camera: the answer to another probe was ignored.
    assert_eq!(devices.len(), 1, "{v}");
    let d = &devices[0];
    assert_eq!(d["uuid"], CAM_UUID);
    assert_eq!(d["name"], "Lab Camera");
    assert_eq!(d["hardware"], "TC-1");
    assert_eq!(d["location"], "127.0.0.1");
    // The service URL on another host than the camera's own was dropped.
    assert_eq!(
        d["services"],
        serde_json::json!([format!("http://127.0.0.1:{port}/onvif/device_service")])
    );

    // A SOAP request goes through with the configured credentials added as
    // a password digest the camera accepts (by bare UUID too).
    for id in [CAM_UUID, CAM_UUID.trim_start_matches("urn:uuid:")] {
        let (st, body, h) = soap(
            &http,
            &a.base,
            &format!("/api/onvif/{id}/device_service"),
            get_info(false),
        )
        .await;
        assert_eq!(st, 200, "{body}");
        assert!(
            body.contains("<tds:Manufacturer>Testcam</tds:Manufacturer>"),
            "{body}"
        );
        assert_eq!(h["x-onvif-credentials"], "configured");
        assert!(
            h["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/soap+xml")
        );
    }
    let sent = seen.lock().unwrap().requests.last().unwrap().clone();
    assert!(
        !sent.contains(CAM_PASS),
        "the password itself is never sent"
    );
    assert!(sent.contains("PasswordDigest"));

    // A request with its own Security header is passed on as it is: the
    // camera refuses the wrong password, and its SOAP fault reaches the client.
    let (st, body, _) = soap(
        &http,
        &a.base,
        &format!("/api/onvif/{CAM_UUID}/device_service"),
        get_info(true),
    )
    .await;
    assert_eq!(st, 400);
    assert!(body.contains("NotAuthorized"), "{body}");

    // Another service of the same camera sits beside the announced one.
    let (st, body, _) = soap(
        &http,
        &a.base,
        &format!("/api/onvif/{CAM_UUID}/media_service"),
        get_info(false),
    )
    .await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("GetProfilesResponse"));

    // A redirect is relayed, never followed.
    let (st, _, h) = soap(
        &http,
        &a.base,
        &format!("/api/onvif/{CAM_UUID}/moved_service"),
        get_info(false),
    )
    .await;
    assert_eq!(st, 302);
    assert_eq!(h["location"], "http://127.0.0.1:9/elsewhere");

    // Bad input: not SOAP, a service name with a path in it, the wrong media
    // type, too large; each a clear error, nothing sent to the camera.
    let before = seen.lock().unwrap().requests.len();
    let path = format!("/api/onvif/{CAM_UUID}/device_service");
    let (st, body, _) = soap(&http, &a.base, &path, "<a>not soap</a>".into()).await;
    assert_eq!(st, 400);
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], "INVALID_FORMAT");
    let (st, _, _) = soap(
        &http,
        &a.base,
        &format!("/api/onvif/{CAM_UUID}/..%2Fadmin"),
        get_info(false),
    )
    .await;
    assert_eq!(st, 400);
    let r = http
        .post(format!("{}{path}", a.base))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(get_info(false))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let big = get_info(false).replace(
        "<s:Body>",
        &format!("<s:Body><!-- {} -->", "x".repeat(70_000)),
    );
    let (st, body, _) = soap(&http, &a.base, &path, big).await;
    assert_eq!(st, 413, "{body}");
    assert_eq!(seen.lock().unwrap().requests.len(), before);

    // Without the API key: 401, before anything else.
    let r = http
        .get(format!("{}/api/onvif/discover", a.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // The configuration shows the section with the password hidden, and the
    // API cannot change it.
    let r = http
        .get(format!("{}/api/config/onvif", a.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    let cfg: Value = r.json().await.unwrap();
    assert_eq!(cfg["credentials"][0]["username"], CAM_USER);
    assert_eq!(cfg["credentials"][0]["password"], "********");
    let r = http
        .patch(format!("{}/api/config/onvif", a.base))
        .bearer_auth(KEY)
        .json(&serde_json::json!({"interface": "10.0.0.1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The camera goes away: 503 with the seed's code, and its address is not
    // in the answer.
    stop_camera.send(()).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let (st, body) = loop {
        let (st, body, _) = soap(&http, &a.base, &path, get_info(false)).await;
        if st != 200 || std::time::Instant::now() > deadline {
            break (st, body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(st, 503, "{body}");
    let e: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(e["error"]["code"], "CAMERA_NOT_CONNECTED");
    assert!(!body.contains(&port.to_string()), "{body}");
}
