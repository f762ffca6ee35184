//! The built-in TURN server through a real TURN client (`turn-client-proto`): credentials from a real join, relaying to the media port over UDP and TCP, and every refusal (forged, expired, other room, non-SFU peer, allocation cap).

use std::time::Duration;

use base64::Engine as _;
use convene_tests::browser::Browser;
use convene_tests::nft::NftBlock;
use convene_tests::rtc_client::{Client, ClientOptions};
use convene_tests::turn_client::{Transport, Turn, TurnBridge};
use convene_tests::{Options, Server, media_ip};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use str0m::media::MediaKind;

const SECRET: &str = "e2e-turn-secret-0123456789";

async fn token(s: &Server, room: &str, name: &str, role: &str) -> String {
    s.api()
        .post(
            &format!("/api/v1/rooms/{room}/token"),
            json!({"u": name, "role": role, "ud": format!("ext-{name}")}),
        )
        .await
        .expect(200)
        .body["token"]
        .as_str()
        .unwrap()
        .to_string()
}

fn opts(s: &Server, token: String) -> ClientOptions {
    ClientOptions::with_token(s.ws_url(), token)
}

fn server(extra: &[&str]) -> Server {
    let mut args = vec!["--turn-secret".to_string(), SECRET.to_string()];
    args.extend(extra.iter().map(|a| a.to_string()));
    Server::start_with(Options {
        args,
        ..Default::default()
    })
}

async fn room(s: &Server, name: &str) {
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": name}))
        .await
        .expect(200);
}

/// Joins `room` as a str0m participant and returns it with its `joined` message.
async fn join(s: &Server, room: &str, name: &str, publish: bool) -> (Client, Value) {
    let t = token(s, room, name, "moderator").await;
    let mut c = Client::connect(opts(s, t)).await;
    let joined = c.wait_type("joined").await;
    if publish {
        c.publish();
        c.wait_type("answer").await;
    }
    (c, joined)
}

fn credentials(joined: &Value) -> (String, String) {
    let ice = &joined["ice_servers"][0];
    (
        ice["username"].as_str().unwrap().to_string(),
        ice["credential"].as_str().unwrap().to_string(),
    )
}

fn password(username: &str) -> String {
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(username.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn metrics(s: &Server) -> String {
    s.metrics_text().await
}

/// Waits until the metrics text satisfies `pred` (the test's timeout bounds it).
async fn wait_metrics(s: &Server, pred: impl Fn(&str) -> bool) -> String {
    loop {
        let m = metrics(s).await;
        if pred(&m) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn allocate(s: &Server, transport: Transport, user: &str, pass: &str) -> Result<Turn, Box<Turn>> {
    let (udp, tcp) = s
        .turn_addrs()
        .expect("the server prints its TURN addresses");
    let addr = match transport {
        Transport::Udp => udp,
        Transport::Tcp => tcp,
        Transport::Tls { .. } => s.turns_addr().expect("the server serves TURN over TLS"),
    };
    let (user, pass) = (user.to_string(), pass.to_string());
    Turn::allocate(addr, transport, media_ip(), &user, &pass)
}

/// A UDP peer that sends back what it gets (one the operator allows with
/// `--turn-allow-peer`, so that relaying can be seen both ways).
fn echo_peer() -> std::net::SocketAddr {
    let echo = std::net::UdpSocket::bind((media_ip(), 0)).unwrap();
    let addr = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_delivers_turn_credentials_that_relay_to_the_media_port_only() {
    // An echo peer the operator allowed (--turn-allow-peer): relayed both ways.
    let echo_addr = echo_peer();
    let s = server(&["--turn-allow-peer", &echo_addr.to_string()]);
    room(&s, "turn-a").await;
    let (_ann, joined) = join(&s, "turn-a", "Ann", false).await;
    let (udp, _) = s.turn_addrs().unwrap();
    let ice = &joined["ice_servers"];
    assert_eq!(ice.as_array().unwrap().len(), 1, "{joined}");
    let urls: Vec<&str> = ice[0]["urls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let host = format!("{}:{}", media_ip(), udp.port());
    assert_eq!(
        urls,
        [
            format!("turn:{host}?transport=udp"),
            format!("turn:{host}?transport=tcp")
        ]
    );
    let (user, pass) = credentials(&joined);
    let room_id = joined["room"]["id"].as_str().unwrap();
    assert!(user.contains(&format!(":{room_id}.")), "{user}");
    assert_eq!(
        pass,
        password(&user),
        "password = base64(HMAC-SHA1(secret, username))"
    );

    let media = s.media_addr();
    for transport in [Transport::Udp, Transport::Tcp] {
        let mut t = allocate(&s, transport.clone(), &user, &pass).unwrap_or_else(|t| {
            panic!(
                "{transport:?} allocation refused: {:?} {:?}",
                t.events, t.errors
            )
        });
        assert_eq!(t.relayed.unwrap().ip(), media_ip());
        // The SFU's media address: allowed, by permission and by channel.
        assert!(t.permit(media.ip()), "{:?}", t.events);
        assert!(t.bind_channel(media), "{:?}", t.events);
        // Anything else: 403, whether a permission or a channel.
        assert!(!t.permit("10.1.2.3".parse().unwrap()));
        let other_port = std::net::SocketAddr::new(media.ip(), media.port().wrapping_add(1));
        assert!(!t.bind_channel(other_port));
        if transport == Transport::Udp {
            assert_eq!(
                t.errors.iter().filter(|c| **c == 403).count(),
                2,
                "{:?}",
                t.errors
            );
        }
        // Both ways, with the allowed echo peer (same IP as the media port).
        t.send_to(echo_addr, b"echo me");
        for _ in 0..500 {
            if !t.received.is_empty() {
                break;
            }
            t.step();
        }
        assert_eq!(
            t.received.first(),
            Some(&(echo_addr, b"echo me".to_vec())),
            "{transport:?}"
        );
        // Last: over TCP, turn-client-proto 0.7.3 sends ChannelData without
        // the padding RFC 8656 §12.5 requires, which the server's framing
        // (made for clients that pad, like Chromium) cannot follow.
        t.send_to(media, b"through the relay");
        t.delete();
    }
    let m = wait_metrics(&s, |m| {
        m.lines().any(|l| {
            l.starts_with("convene_turn_relayed_bytes_total")
                && l.contains("to_peer")
                && l.split_whitespace()
                    .last()
                    .and_then(|v| v.parse::<f64>().ok())
                    >= Some(2.0 * b"through the relay".len() as f64)
        })
    })
    .await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("convene_turn_refusals_total") && l.contains("forbidden_peer")),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_excess_allocations_are_refused() {
    let s = server(&["--turn-max-allocations-per-credential", "2"]);
    room(&s, "turn-b").await;
    let (_ann, joined) = join(&s, "turn-b", "Ann", false).await;
    let (user, pass) = credentials(&joined);

    // Forged: the right username with a made-up password.
    let forged = allocate(&s, Transport::Udp, &user, "bm90IHRoZSBwYXNzd29yZA==");
    let t = forged.err().expect("a forged credential is refused");
    assert_eq!(t.errors.last(), Some(&401), "{:?}", t.errors);
    // A username the server did not mint, with a password of our own.
    let made_up = allocate(&s, Transport::Udp, "9999999999:room.someone", "x");
    assert_eq!(made_up.err().unwrap().errors.last(), Some(&401));

    // Expired: signed with the right secret, but past its expiry.
    let room_id = joined["room"]["id"].as_str().unwrap();
    let expired = format!("1000:{room_id}.p1");
    let t = allocate(&s, Transport::Udp, &expired, &password(&expired))
        .err()
        .expect("an expired credential is refused");
    assert_eq!(t.errors.last(), Some(&401), "{:?}", t.errors);

    // The cap: two allocations per credential, the third is refused (486)
    // until one is deleted.
    let mut a = allocate(&s, Transport::Udp, &user, &pass).ok().unwrap();
    let _b = allocate(&s, Transport::Tcp, &user, &pass).ok().unwrap();
    let c = allocate(&s, Transport::Udp, &user, &pass)
        .err()
        .expect("a third allocation is refused");
    assert_eq!(c.errors.last(), Some(&486), "{:?}", c.errors);
    a.delete();
    allocate(&s, Transport::Udp, &user, &pass)
        .ok()
        .expect("a deleted allocation frees its place");

    let m = metrics(&s).await;
    for reason in ["bad_credential", "expired", "quota"] {
        assert!(
            m.lines()
                .any(|l| l.starts_with("convene_turn_refusals_total")
                    && l.contains(&format!("\"{reason}\""))),
            "{reason} missing:\n{m}"
        );
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The value of the gauge `convene_turn_allocations`.
fn allocations_gauge(m: &str) -> Option<f64> {
    m.lines()
        .find(|l| l.starts_with("convene_turn_allocations "))
        .and_then(|l| l.split_whitespace().last()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allocation_ends_with_its_credential_and_cannot_be_refreshed_past_it() {
    let echo_addr = echo_peer();
    let s = server(&["--turn-allow-peer", &echo_addr.to_string()]);
    room(&s, "turn-short").await;
    let (_ann, joined) = join(&s, "turn-short", "Ann", false).await;
    // A credential minted with the server's secret (TURN REST API scheme)
    // that expires a few seconds from now; its allocation is granted the
    // default 10 minutes.
    let room_id = joined["room"]["id"].as_str().unwrap();
    let expiry = unix_now() + 4;
    let user = format!("{expiry}:{room_id}.short-lived");
    let mut t = allocate(&s, Transport::Udp, &user, &password(&user))
        .unwrap_or_else(|t| panic!("allocation refused: {:?} {:?}", t.events, t.errors));
    assert!(t.bind_channel(echo_addr), "{:?}", t.events);
    t.send_to(echo_addr, b"before the expiry");
    for _ in 0..500 {
        if !t.received.is_empty() {
            break;
        }
        t.step();
    }
    assert_eq!(
        t.received.first(),
        Some(&(echo_addr, b"before the expiry".to_vec()))
    );
    let m = wait_metrics(&s, |m| allocations_gauge(m) == Some(1.0)).await;
    assert_eq!(allocations_gauge(&m), Some(1.0));

    // At the expiry the server closes the allocation, though its granted
    // lifetime runs for minutes more: nothing is relayed any more.
    while unix_now() <= expiry {
        t.step();
    }
    wait_metrics(&s, |m| allocations_gauge(m) == Some(0.0)).await;
    t.received.clear();
    t.send_to(echo_addr, b"after the expiry");
    for _ in 0..100 {
        t.step();
    }
    assert!(t.received.is_empty(), "{:?}", t.received);

    // And it cannot be kept alive: a new channel and a new permission are
    // refused with 401 (expiry is checked before the peer: 10.9.8.7 would
    // otherwise be a 403), and so is the client's Refresh of its allocation,
    // sent as it would be near the end of the granted lifetime
    // (turn-client-proto polls the allocation's refresh before those of its
    // permissions and channels, and stops after the 401).
    let media = s.media_addr();
    assert!(!t.bind_channel(media), "{:?}", t.events);
    assert_eq!(t.errors.last(), Some(&401), "{:?}", t.errors);
    assert!(!t.permit("10.9.8.7".parse().unwrap()), "{:?}", t.events);
    assert_eq!(t.errors.last(), Some(&401), "{:?}", t.errors);
    let refused = t.refresh_now();
    assert_eq!(refused.first(), Some(&401), "{refused:?} {:?}", t.events);
    assert!(refused.iter().all(|c| *c == 401), "{refused:?}");
    let m = metrics(&s).await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("convene_turn_refusals_total") && l.contains("\"expired\"")),
        "{m}"
    );
    assert_eq!(allocations_gauge(&m), Some(0.0), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_flows_through_turn_and_a_credential_of_another_room_gets_none() {
    let s = server(&[]);
    room(&s, "turn-m").await;
    room(&s, "turn-o").await;
    let media = s.media_addr();
    let (_alice, joined_m) = join(&s, "turn-m", "Alice", true).await;
    let (_zed, joined_o) = join(&s, "turn-o", "Zed", false).await;

    // Bob's media goes through an allocation made with room M's credential.
    let (user, pass) = credentials(&joined_m);
    let mut t = allocate(&s, Transport::Udp, &user, &pass).ok().unwrap();
    assert!(t.permit(media.ip()));
    let bridge = TurnBridge::start(t, media);
    let bob_token = token(&s, "turn-m", "Bob", "speaker").await;
    let mut bob = Client::connect_via(opts(&s, bob_token), Some((media, bridge.addr))).await;
    bob.wait_type("joined").await;
    bob.wait_rtp(MediaKind::Video, 20, Duration::from_secs(30))
        .await;
    assert!(bridge.carried.lock().unwrap().1 >= 20);

    // Dave is in room M too, but his relay was opened with room O's
    // credential: the media plane refuses it.
    let (user, pass) = credentials(&joined_o);
    let mut t = allocate(&s, Transport::Udp, &user, &pass).ok().unwrap();
    assert!(t.permit(media.ip()));
    let dave_bridge = TurnBridge::start(t, media);
    let dave_token = token(&s, "turn-m", "Dave", "speaker").await;
    let mut dave = Client::connect_via(opts(&s, dave_token), Some((media, dave_bridge.addr))).await;
    dave.wait_type("joined").await;
    wait_metrics(&s, |m| {
        m.lines()
            .any(|l| l.starts_with("convene_turn_refusals_total") && l.contains("other_room"))
    })
    .await;
    // Nothing came back to Dave through that relay: not even an ICE answer.
    assert_eq!(dave_bridge.carried.lock().unwrap().1, 0);
    assert!(dave.received(MediaKind::Video).is_empty());
}

async fn two_browsers_in(
    s: &Server,
    room: &str,
    (query_ann, query_ben): (&str, &str),
) -> (
    Browser,
    Browser,
    convene_tests::browser::Page,
    convene_tests::browser::Page,
) {
    s.api()
        .post(
            "/api/v1/rooms",
            json!({"friendly_url": room, "join_screen_enabled": false,
                   "video_on_join_enabled": true, "audio_on_join_enabled": true}),
        )
        .await
        .expect(200);
    let t_ann = token(s, room, "Ann", "speaker").await;
    let t_ben = token(s, room, "Ben", "speaker").await;
    let (b1, b2) = tokio::join!(Browser::launch(), Browser::launch());
    let ann = b1
        .open(&s.url(&format!("/{room}?token={t_ann}{query_ann}")))
        .await;
    let ben = b2
        .open(&s.url(&format!("/{room}?token={t_ben}{query_ben}")))
        .await;
    crate::browser::wait_state(&ann, "joined").await;
    crate::browser::wait_state(&ben, "joined").await;
    crate::browser::wait_media_both(&ann, &ben).await;
    (b1, b2, ann, ben)
}

/// A server whose TURN relays take `relays` (a range no other test's server
/// uses, so that a firewall rule can let exactly them through), logging to
/// a file that a failing browser test prints. The range must lie outside the
/// kernel's ephemeral ports (32768-60999): a browser's or a probe's socket
/// bound there would pass the rule as if it were a relay (seen in CI).
fn server_with_relay_ports(relays: (u16, u16)) -> Server {
    server_with_relay_ports_and(relays, &[])
}

/// [`server_with_relay_ports`], with `extra` arguments (when they name
/// `--rtc-ip`, they name the media, TURN and HTTP addresses too).
fn server_with_relay_ports_and(relays: (u16, u16), extra: &[&str]) -> Server {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let mut bounds = ephemeral
        .split_whitespace()
        .map(|p| p.parse::<u16>().unwrap());
    let (low, high) = (bounds.next().unwrap(), bounds.next().unwrap());
    assert!(
        relays.1 < low || relays.0 > high,
        "relay ports {relays:?} overlap the ephemeral ports {low}-{high}"
    );
    Server::start_with(Options {
        args: [
            "--turn-relay-ports".to_string(),
            format!("{}-{}", relays.0, relays.1),
        ]
        .into_iter()
        .chain(extra.iter().map(|a| a.to_string()))
        .collect(),
        own_addresses: extra.contains(&"--rtc-ip"),
        capture_log: true,
        env: vec![("CONVENE_LOG".into(), "info".into())],
        ..Options::default()
    })
}

/// Chromium with every UDP datagram to the server's ports (media and TURN)
/// blocked still gets media: over ICE-TCP or TURN over TCP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_with_udp_blocked_get_media_over_tcp() {
    use convene_tests::browser::assert_isolated_network;
    let _one = crate::browser::ONE_AT_A_TIME.lock().await;
    assert_isolated_network();
    let relays = (20200, 20299);
    let s = server_with_relay_ports(relays);
    let _log = crate::browser::LogOnFailure(s.log_path.clone());
    let media = s.media_addr();
    let (turn_udp, _) = s.turn_addrs().unwrap();
    // The server's own relays may still reach its media port.
    let block = NftBlock::udp_to_ports_except_from(&[media.port(), turn_udp.port()], relays);
    block.assert_blocks(media);
    block.assert_blocks(turn_udp);

    let (_b1, _b2, ann, ben) = two_browsers_in(&s, "tcp-only", ("", "")).await;
    for page in [&ann, &ben] {
        let stats = page
            .eval(
                "window.convene.pc.getStats().then(r => { const out = {protocols: [], pairs: []}; \
                 const p = new Set(); r.forEach(s => { if (s.type === 'candidate-pair') { \
                 const l = r.get(s.localCandidateId), rm = r.get(s.remoteCandidateId); \
                 out.pairs.push({state: s.state, nominated: s.nominated, sent: s.bytesSent, \
                 local: l && [l.candidateType, l.protocol, l.relayProtocol, l.address, l.port], \
                 remote: rm && [rm.candidateType, rm.protocol, rm.address, rm.port]}); \
                 if (s.nominated && l) p.add(l.candidateType === 'relay' ? l.relayProtocol : l.protocol); } }); \
                 out.protocols = [...p].sort(); return out; })",
            )
            .await;
        assert_eq!(
            stats["protocols"],
            json!(["tcp"]),
            "{stats}\n{}",
            page.report().await
        );
    }
}

/// Chromium forced to relay-only ICE, with direct UDP to this server's media
/// port blocked: media flows both ways through the built-in TURN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsers_forced_to_relay_get_media_through_the_built_in_turn() {
    use convene_tests::browser::assert_isolated_network;
    let _one = crate::browser::ONE_AT_A_TIME.lock().await;
    assert_isolated_network();
    // Relay ports of this server only (below the default range the other
    // tests' servers use).
    let relays = (20100, 20199);
    let s = server_with_relay_ports(relays);
    let _log = crate::browser::LogOnFailure(s.log_path.clone());
    let media = s.media_addr();
    let block = NftBlock::udp_to_ports_except_from(&[media.port()], relays);
    block.assert_blocks(media);

    let (_b1, _b2, ann, ben) = two_browsers_in(&s, "relayed", ("&ice=relay", "&ice=relay")).await;

    // Every candidate pair the browsers use is a relay one, and the relay
    // carried the media.
    for page in [&ann, &ben] {
        let local = page
            .eval("window.convene.stats().then(s => s.localCandidateTypes)")
            .await;
        assert_eq!(local, json!(["relay"]), "{}", page.report().await);
    }
    // Media has just begun: wait (bounded) until the relay has carried more
    // than a few frames' worth, rather than reading the counter once.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = metrics(&s).await;
        let relayed: f64 = m
            .lines()
            .filter(|l| l.starts_with("convene_turn_relayed_bytes_total"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
            .sum();
        if relayed > 100_000.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "only {relayed} bytes relayed in 15 s:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Behind a 1:1 NAT that does not hairpin, as a cloud VM is configured:
/// `--public-ip` and nothing else, the media socket on every address (the
/// NAT emulated with nftables, `OneToOneNat`). The server starts (its TURN
/// relays bind to an address of the host, here loopback, as the namespace
/// has no route out), a browser forced to relay gets media through the
/// built-in TURN, whose relays reach the media socket inside the host
/// rather than through the public address, and a browser on direct ICE
/// gets it through the NAT. (Relays that sent to the public address left
/// the first browser with nothing here; before that, the server refused to
/// start without `--turn-relay-ip`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_one_to_one_nat_that_does_not_hairpin_media_flows_relayed_and_direct() {
    use convene_tests::browser::assert_isolated_network;
    use convene_tests::nft::OneToOneNat;
    use std::net::{IpAddr, Ipv4Addr, UdpSocket};
    let _one = crate::browser::ONE_AT_A_TIME.lock().await;
    assert_isolated_network();
    let public = Ipv4Addr::new(203, 0, 113, 77);
    let IpAddr::V4(inside) = media_ip() else {
        panic!("the tests' media address is IPv4")
    };
    // The server's relays take 20300-20398; 20399 is the probe's below.
    let relays = (20300, 20398);
    let s = server_with_relay_ports_and(
        relays,
        &[
            "--public-ip",
            &public.to_string(),
            "--rtc-ip",
            "0.0.0.0",
            "--rtc-port",
            "0",
            "--turn-port",
            "0",
            "--http-addr",
            "127.0.0.1:0",
        ],
    );
    let _log = crate::browser::LogOnFailure(s.log_path.clone());
    let media = s.media_addr();
    assert!(
        s.stdout
            .iter()
            .any(|l| l.contains(&format!("(advertised {public}:{})", media.port()))),
        "{:?}",
        s.stdout
    );
    let nat = OneToOneNat::new(
        public,
        inside,
        &[(relays.0, relays.1 + 1), (media.port(), media.port())],
    );

    // The emulation itself: the public address reaches the inside from an
    // ordinary port, with the answer coming back from the public address;
    // from one of the server's own ports it reaches nobody.
    let listener = UdpSocket::bind((inside, 0)).unwrap();
    let to = (public, listener.local_addr().unwrap().port());
    let outside = UdpSocket::bind((inside, 0)).unwrap();
    outside.send_to(b"in", to).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 16];
    let (n, from) = listener
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("nothing came through the NAT ({e}):\n{}", nat.listing()));
    assert_eq!(
        (&buf[..n], from),
        (&b"in"[..], outside.local_addr().unwrap())
    );
    listener.send_to(b"back", from).unwrap();
    outside
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let (_, back) = outside.recv_from(&mut buf).unwrap();
    assert_eq!(back, std::net::SocketAddr::from(to));
    let own = UdpSocket::bind((inside, relays.1 + 1)).unwrap();
    own.send_to(b"hairpin", to).unwrap();
    listener
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    if let Ok((n, from)) = listener.recv_from(&mut buf) {
        panic!("{:?} from {from} hairpinned:\n{}", &buf[..n], nat.listing());
    }

    let (_b1, _b2, ann, ben) = two_browsers_in(&s, "behind-nat", ("&ice=relay", "")).await;
    // Ann's media goes through the relay, Ben's straight to the public
    // address; both reach the SFU's advertised address.
    let pairs = "window.convene.pc.getStats().then(r => { const out = []; \
                 r.forEach(s => { if (s.type === 'candidate-pair' && s.nominated) { \
                 const l = r.get(s.localCandidateId), rm = r.get(s.remoteCandidateId); \
                 out.push([l && l.candidateType, rm && rm.address]); } }); \
                 return out.sort(); })";
    for (page, kind) in [(&ann, "relay"), (&ben, "host")] {
        let got = page.eval(pairs).await;
        let want = json!([[kind, public.to_string()]]);
        assert!(
            got.as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(|p| *p == want[0])),
            "{kind}: {got}\n{}\n{}",
            page.report().await,
            nat.listing()
        );
    }
    // The relay carried Ann's media both ways (a bounded wait, as media
    // has just begun).
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let m = metrics(&s).await;
        let relayed = |direction: &str| -> f64 {
            m.lines()
                .filter(|l| {
                    l.starts_with("convene_turn_relayed_bytes_total")
                        && l.contains(&format!("direction=\"{direction}\""))
                })
                .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .sum()
        };
        if relayed("to_peer") > 50_000.0 && relayed("to_client") > 50_000.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "too little relayed in 15 s:\n{m}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// TURN over TLS (`turns:`) with the HTTPS certificate: a client that trusts
/// it allocates, and its data is relayed both ways; a client that speaks
/// plain TCP to the TLS port gets no allocation and is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turn_over_tls_uses_the_https_certificate_and_relays() {
    let echo_addr = echo_peer();
    let dir = tempfile::tempdir().unwrap();
    let ip = media_ip().to_string();
    let c = rcgen::generate_simple_self_signed(vec![ip.clone(), "127.0.0.1".into()]).unwrap();
    let (cert, key) = (c.cert.pem(), c.signing_key.serialize_pem());
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, &cert).unwrap();
    std::fs::write(&key_path, &key).unwrap();
    let s = server(&[
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
        "--turn-tls-port",
        "0",
        "--turn-allow-peer",
        &echo_addr.to_string(),
    ]);
    let tls_addr = s
        .turns_addr()
        .expect("a TLS certificate turns TURN over TLS on");
    // A room-scoped credential as a join mints it (the secret is the test's).
    let expiry = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let user = format!("{expiry}:tls-room.tls-part");
    let transport = Transport::Tls { ca_pem: cert };
    let mut t = Turn::allocate(
        tls_addr,
        transport.clone(),
        media_ip(),
        &user,
        &password(&user),
    )
    .unwrap_or_else(|t| panic!("allocation over TLS refused: {:?}", t.events));
    assert_eq!(t.relayed.unwrap().ip(), media_ip());
    assert!(t.permit(echo_addr.ip()), "{:?}", t.events);
    t.send_to(echo_addr, b"over tls");
    for _ in 0..500 {
        if !t.received.is_empty() {
            break;
        }
        t.step();
    }
    assert_eq!(t.received.first(), Some(&(echo_addr, b"over tls".to_vec())));
    // A wrong password over TLS is refused like over UDP.
    assert!(Turn::allocate(tls_addr, transport, media_ip(), &user, "wrong").is_err());
    t.delete();

    // Plain TCP on the TLS port: no TLS handshake, no allocation.
    assert!(
        Turn::allocate(
            tls_addr,
            Transport::Tcp,
            media_ip(),
            &user,
            &password(&user)
        )
        .is_err()
    );
    // The metrics are on the HTTPS listener too.
    let https = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(c.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    loop {
        let m = https
            .get(s.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if m.lines()
            .any(|l| l.starts_with("convene_turn_refusals_total") && l.contains("tls_handshake"))
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
