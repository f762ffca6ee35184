//! Prometheus metrics at `GET /metrics` (or on `--metrics-addr`).
//!
//! Request metrics are recorded by a middleware on every HTTP request
//! (labelled by the matched route pattern, never by the raw path, so room
//! names and ids stay out of label values). Media-plane figures are read
//! from the workers' relaxed atomic counters when Prometheus scrapes, so the
//! per-packet path pays for nothing but its own counter increments.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use convene_api::Db;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::rtc::MediaPlane;
use crate::signaling::Signaling;

/// Everything `/metrics` renders.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    media: Arc<MediaPlane>,
    sig: Arc<Signaling>,
}

/// Installs the process-wide recorder. Call once.
pub fn install(media: Arc<MediaPlane>, sig: Arc<Signaling>) -> anyhow::Result<Metrics> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ])?
        // Shares, not seconds.
        .set_buckets_for_metric(
            Matcher::Full("convene_peer_loss_ratio".into()),
            &[0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0],
        )?
        // Joins and composites take seconds to minutes.
        .set_buckets_for_metric(
            Matcher::Full("convene_join_media_seconds".into()),
            &[0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0],
        )?
        .set_buckets_for_metric(
            Matcher::Full("convene_recording_composite_seconds".into()),
            &[1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0],
        )?
        // One recognition takes about a second; a loaded machine more.
        .set_buckets_for_metric(
            Matcher::Full("convene_transcriber_recognition_seconds".into()),
            &[0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0],
        )?
        .install_recorder()?;
    describe();
    Ok(Metrics { handle, media, sig })
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "convene_http_requests_total",
        "HTTP requests by method, route pattern and status"
    );
    describe_histogram!(
        "convene_http_request_duration_seconds",
        "HTTP request latency by route pattern"
    );
    describe_gauge!("convene_rooms_live", "Rooms with a running session");
    describe_histogram!(
        "convene_peer_rtt_seconds",
        "Round-trip time of each peer connection, sampled every second (from transport-wide congestion feedback)"
    );
    describe_histogram!(
        "convene_peer_loss_ratio",
        "Packet loss of each peer connection, sampled every second; direction: ingress (publisher to SFU) or egress (SFU to subscriber, as its transport-wide congestion feedback reports)"
    );
    describe_histogram!(
        "convene_peer_jitter_seconds",
        "Interarrival jitter of each received stream, sampled every second, by kind"
    );
    describe_histogram!(
        "convene_join_media_seconds",
        "From a peer's join to its ICE + DTLS connection"
    );
    describe_counter!(
        "convene_peer_connect_failures_total",
        "Peer connections removed before ICE + DTLS completed (blocked networks, failed handshakes, joins abandoned early)"
    );
    describe_counter!("convene_recordings_started_total", "Recordings started");
    describe_counter!(
        "convene_transcribers_started_total",
        "Live transcribers started (sessions of rooms with transcription_enabled)"
    );
    describe_gauge!(
        "convene_transcribers",
        "Transcribers running (or finishing their last recognitions)"
    );
    describe_counter!(
        "convene_transcriber_utterances_total",
        "Utterances sent to the recogniser, by outcome (recognised, empty, failed)"
    );
    describe_counter!(
        "convene_transcriber_dropped_packets_total",
        "Media packets the worker could not queue for a transcriber (it fell behind)"
    );
    describe_counter!(
        "convene_transcriber_dropped_utterances_total",
        "Utterances dropped because too many were waiting for the recogniser"
    );
    describe_histogram!(
        "convene_transcriber_recognition_seconds",
        "How long one utterance's recognition took (waiting for a slot included)"
    );
    describe_counter!(
        "convene_recordings_finished_total",
        "Recordings whose recorder finished (active = started - finished)"
    );
    describe_counter!(
        "convene_recording_composites_total",
        "Composite (post-processing) jobs run, by outcome"
    );
    describe_histogram!(
        "convene_recording_composite_seconds",
        "How long a recording's composite job took"
    );
    describe_gauge!("convene_peers", "Media peer connections");
    describe_gauge!("convene_tracks", "Published tracks");
    describe_counter!("convene_sessions_started_total", "Sessions started");
    describe_counter!("convene_participants_joined_total", "Participants admitted");
    describe_counter!(
        "convene_rtp_packets_in_total",
        "RTP packets received from publishers"
    );
    describe_counter!("convene_rtp_bytes_in_total", "RTP payload bytes received");
    describe_counter!(
        "convene_rtp_packets_forwarded_total",
        "RTP packets forwarded to subscribers"
    );
    describe_counter!(
        "convene_rtp_bytes_forwarded_total",
        "RTP payload bytes forwarded"
    );
    describe_counter!(
        "convene_rtp_packets_dropped_total",
        "RTP packets not forwarded (layer, pause, congestion)"
    );
    describe_counter!(
        "convene_rtp_packets_relayed_total",
        "RTP packets handed to another media worker holding the same room"
    );
    describe_counter!(
        "convene_rtp_relay_dropped_total",
        "RTP packets not relayed because the other worker's queue was full"
    );
    describe_counter!(
        "convene_udp_packets_out_total",
        "Datagrams sent by the media plane"
    );
    describe_counter!(
        "convene_udp_gso_packets_out_total",
        "Of the datagrams sent, those that left in UDP GSO sends (several datagrams to one destination in one system call)"
    );
    describe_counter!(
        "convene_udp_gso_sends_total",
        "UDP GSO sends (system calls); the GSO datagrams divided by these is their mean length"
    );
    describe_counter!(
        "convene_udp_bytes_out_total",
        "Bytes sent by the media plane"
    );
    describe_counter!("convene_keyframe_requests_total", "PLIs sent to publishers");
    describe_counter!("convene_nacks_total", "NACKs received from subscribers");
    describe_counter!("convene_udp_malformed_total", "Datagrams a peer refused");
    describe_counter!(
        "convene_udp_unroutable_total",
        "Datagrams from unknown addresses"
    );
    describe_counter!(
        "convene_udp_routes_full_total",
        "STUN binding requests from a new address not routed: the route table was full"
    );
    describe_counter!(
        "convene_signal_dropped_total",
        "Media notices not queued because a participant's outbound queue was full"
    );
    describe_counter!(
        "convene_publish_refused_total",
        "Tracks refused because the publisher's role may not publish them"
    );
    describe_counter!(
        "convene_peer_panics_total",
        "Peers closed because their input made the WebRTC stack panic"
    );
    describe_counter!(
        "convene_ice_restarts_total",
        "ICE restarts clients asked for (network changes)"
    );
    describe_counter!(
        "convene_media_control_dropped_total",
        "Control messages between media workers dropped on a full queue"
    );
    describe_counter!(
        "convene_media_events_dropped_total",
        "Media events to signaling dropped on a full queue"
    );
    describe_counter!(
        "convene_udp_datagrams_in_total",
        "Datagrams received on the media port"
    );
    describe_counter!(
        "convene_udp_bytes_in_total",
        "Bytes received on the media port"
    );
    describe_counter!(
        "convene_udp_worker_queue_full_total",
        "Datagrams dropped because a worker queue was full"
    );
    describe_histogram!(
        "convene_db_query_seconds",
        "Latency of the database probe query by pool"
    );
    describe_counter!(
        "convene_webhook_deliveries_total",
        "Webhook delivery attempts by result"
    );
}

impl Metrics {
    fn sample(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.media.counters;
        metrics::gauge!("convene_rooms_live").set(self.sig.live_rooms() as f64);
        metrics::gauge!("convene_peers").set(c.peers.load(Relaxed) as f64);
        metrics::gauge!("convene_tracks").set(c.tracks.load(Relaxed) as f64);
        let abs = |name: &'static str, v: &std::sync::atomic::AtomicU64| {
            metrics::counter!(name).absolute(v.load(Relaxed));
        };
        abs("convene_rtp_packets_in_total", &c.rtp_in);
        abs("convene_rtp_bytes_in_total", &c.rtp_bytes_in);
        abs("convene_rtp_packets_forwarded_total", &c.rtp_forwarded);
        abs("convene_rtp_bytes_forwarded_total", &c.rtp_bytes_forwarded);
        abs("convene_rtp_packets_dropped_total", &c.rtp_dropped);
        abs("convene_rtp_packets_own_path_total", &c.rtp_own_written);
        abs("convene_rtx_packets_resent_total", &c.rtx_resent);
        abs("convene_twcc_reports_read_total", &c.twcc_reports);
        abs("convene_rtp_packets_relayed_total", &c.rtp_relayed);
        abs("convene_rtp_relay_dropped_total", &c.relay_dropped);
        abs("convene_udp_packets_out_total", &c.packets_out);
        abs("convene_udp_gso_packets_out_total", &c.gso_packets_out);
        abs("convene_udp_gso_sends_total", &c.gso_sends);
        abs("convene_udp_bytes_out_total", &c.bytes_out);
        abs("convene_keyframe_requests_total", &c.plis);
        abs("convene_nacks_total", &c.nacks);
        abs("convene_udp_malformed_total", &c.malformed);
        abs("convene_signal_dropped_total", &c.signal_dropped);
        abs("convene_publish_refused_total", &c.publish_refused);
        abs("convene_ice_restarts_total", &c.ice_restarts);
        abs("convene_media_control_dropped_total", &c.ctl_dropped);
        abs("convene_media_events_dropped_total", &c.events_dropped);
        let r = &self.media.recv_counters;
        metrics::counter!("convene_udp_unroutable_total")
            .absolute(c.unroutable.load(Relaxed) + r.unroutable.load(Relaxed));
        abs("convene_udp_datagrams_in_total", &r.datagrams);
        abs("convene_udp_bytes_in_total", &r.bytes);
        abs("convene_udp_worker_queue_full_total", &r.worker_full);
        abs("convene_udp_routes_full_total", &r.routes_full);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.sample();
        self.handle.render()
    }
}

/// `GET /metrics`.
pub async fn handler(State(m): State<Metrics>) -> Response {
    let mut r = m.render().into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// Records every request: count by method/route/status and latency.
pub async fn track_http(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    metrics::counter!("convene_http_requests_total",
        "method" => method, "route" => route.clone(), "status" => status)
    .increment(1);
    metrics::histogram!("convene_http_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    res
}

/// Probes both database pools every 10 s and records the latency.
pub fn spawn_db_probe(db: Db) {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(10));
        loop {
            every.tick().await;
            for (pool, took) in db.probe_latency().await {
                metrics::histogram!("convene_db_query_seconds", "pool" => pool)
                    .record(took.as_secs_f64());
            }
        }
    });
}
