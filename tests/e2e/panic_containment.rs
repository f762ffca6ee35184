//! The media worker's panic containment, end to end (issue 18): str0m 0.25
//! panics on some authenticated RTCP (found by the `rtc_keyed` fuzz
//! target), and one peer's packet must not take down the worker and every
//! room on it. A WHEP viewer on aiortc (`tests/aiortc/whep_twcc.py`), a
//! WebRTC stack that lets a test send RTCP of its choosing under the
//! session's SRTP keys, sends a well-formed transport-wide feedback report
//! (nothing happens) and then a hostile one: the server closes that peer,
//! counts it, and the publisher, the subscriber and a new joiner on the
//! same worker go on.
//!
//! That panic is reached through str0m's estimator, which reads TWCC only
//! on its own write path (`--media-write-path str0m`). On Convene's own
//! write path the report is read by `sfu::feedback` (fuzzed,
//! `rtcp_feedback`), which stops at the inconsistency: the viewer stays.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use convene_tests::{Options, Server, join};
use serde_json::json;
use str0m::media::MediaKind;

use crate::browser::token;

/// A metric's value, 0 when the server has not reported it yet.
async fn metric(s: &Server, name: &str) -> f64 {
    s.metric(name).await.unwrap_or(0.0)
}

/// Reads the script's next line, which must start with `prefix`.
fn expect_line(out: &mut impl BufRead, prefix: &str) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert!(
        line.starts_with(prefix),
        "aiortc said {line:?}, expected {prefix}"
    );
    line.trim().to_string()
}

/// A call on a server with one media worker (every peer of the test
/// shares the thread) writing on `path`: Alice publishes, Bob receives her,
/// and an aiortc WHEP viewer has sent a well-formed transport-wide report
/// and waits for "go" to send the hostile one.
struct Call {
    s: Server,
    alice: convene_tests::rtc_client::Client,
    bob: convene_tests::rtc_client::Client,
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    out: BufReader<std::process::ChildStdout>,
}

async fn call_with_a_viewer(path: &str) -> Call {
    let s = Server::start_with(Options {
        args: vec![
            "--media-workers".into(),
            "1".into(),
            "--media-write-path".into(),
            path.into(),
        ],
        ..Default::default()
    });
    // The room defaults a user gets.
    s.api()
        .post("/api/v1/rooms", json!({"friendly_url": "sturdy"}))
        .await
        .expect(200);
    let t_alice = token(&s, "sturdy", "Alice", "moderator").await;
    let (alice, _) = join(&s, "sturdy", "Alice", Some(t_alice)).await;
    alice.publish();
    let (mut bob, _) = join(&s, "sturdy", "Bob", None).await;
    bob.collect_for(Duration::from_secs(2)).await;
    assert!(
        !bob.received(MediaKind::Video).is_empty(),
        "Bob gets Alice's video"
    );

    let t_viewer = token(&s, "sturdy", "Viewer", "attendee").await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/aiortc/whep_twcc.py");
    let mut child = Command::new("/usr/bin/python3")
        .args([script, &s.url("/whep/sturdy"), &t_viewer])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 runs tests/aiortc/whep_twcc.py");
    let stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (out, answer) = tokio::task::spawn_blocking(move || {
        let a = expect_line(&mut out, "answer /whep/sturdy/");
        expect_line(&mut out, "media ");
        expect_line(&mut out, "valid-sent");
        (out, a)
    })
    .await
    .unwrap();
    eprintln!("aiortc: {answer}");
    Call {
        s,
        alice,
        bob,
        child,
        stdin,
        out,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_whose_rtcp_makes_str0m_panic_is_closed_and_the_worker_goes_on() {
    // str0m's write path: its estimator reads the report.
    let Call {
        s,
        alice,
        mut bob,
        mut child,
        mut stdin,
        mut out,
    } = call_with_a_viewer("str0m").await;
    // A well-formed report changes nothing: three peers, no panic.
    assert_eq!(metric(&s, "convene_peer_panics_total").await, 0.0);
    assert_eq!(metric(&s, "convene_peers").await, 3.0);

    stdin.write_all(b"go\n").unwrap();
    let (mut out, _) = tokio::task::spawn_blocking(move || {
        let l = expect_line(&mut out, "hostile-sent");
        (out, l)
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&s, "convene_peer_panics_total").await < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the hostile report did not make str0m panic"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // That peer alone is gone.
    assert_eq!(metric(&s, "convene_peer_panics_total").await, 1.0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&s, "convene_peers").await != 2.0 {
        assert!(
            Instant::now() < deadline,
            "the panicking peer was not closed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The worker goes on: Bob keeps receiving Alice, and a newcomer joins
    // and receives her too.
    let before = bob.received(MediaKind::Video).len();
    bob.collect_for(Duration::from_secs(2)).await;
    let after = bob.received(MediaKind::Video).len();
    assert!(
        after > before + 10,
        "Bob's video went on: {before} -> {after}"
    );
    let (mut carol, _) = join(&s, "sturdy", "Carol", None).await;
    carol.collect_for(Duration::from_secs(3)).await;
    assert!(
        !carol.received(MediaKind::Video).is_empty(),
        "a new participant gets video after the panic"
    );
    s.api().get("/api/v1/rooms/sturdy").await.expect(200);

    stdin.write_all(b"end\n").unwrap();
    let state = tokio::task::spawn_blocking(move || expect_line(&mut out, "state "))
        .await
        .unwrap();
    eprintln!("aiortc after the panic: {state}");
    let _ = child.wait();
    drop((alice, bob, carol));
}

/// The same hostile report on the own write path: read by `sfu::feedback`,
/// which stops at the inconsistency; nothing panics, the viewer stays
/// connected and still counted, and the call goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_own_write_path_the_hostile_report_is_read_without_harm() {
    let Call {
        s,
        alice,
        mut bob,
        mut child,
        mut stdin,
        mut out,
    } = call_with_a_viewer("own").await;
    let reports = metric(&s, "convene_twcc_reports_read_total").await;
    stdin.write_all(b"go\n").unwrap();
    let (mut out, _) = tokio::task::spawn_blocking(move || {
        let l = expect_line(&mut out, "hostile-sent");
        (out, l)
    })
    .await
    .unwrap();
    // Long enough for the report to have been read, and for a closed peer
    // to have been counted out.
    let before = bob.received(MediaKind::Video).len();
    bob.collect_for(Duration::from_secs(3)).await;
    assert_eq!(metric(&s, "convene_peer_panics_total").await, 0.0);
    assert_eq!(metric(&s, "convene_peers").await, 3.0, "the viewer stays");
    assert!(
        metric(&s, "convene_rtp_packets_own_path_total").await > 0.0,
        "the own path wrote the copies"
    );
    assert!(
        metric(&s, "convene_twcc_reports_read_total").await > reports,
        "the own path read the hostile report"
    );
    assert!(bob.received(MediaKind::Video).len() > before + 10);
    stdin.write_all(b"end\n").unwrap();
    let state = tokio::task::spawn_blocking(move || expect_line(&mut out, "state "))
        .await
        .unwrap();
    assert_eq!(state, "state connected", "the viewer's connection");
    let _ = child.wait();
    drop((alice, bob));
}
