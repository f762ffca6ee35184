//! The per-room transcriber of a live session with `transcription_enabled`
//! (docs/transcripts.md).
//!
//! The room's media worker feeds it like a restream: a [`RecorderSink`]
//! (bounded queue, `try_send`; a full queue is a dropped packet, counted by
//! the worker in `convene_transcriber_dropped_packets_total`, so forwarding
//! never waits and a stuck transcriber still shows its drops),
//! `audio_only` (no video packets, no keyframe requests), ended by this
//! thread dropping its end of the sink's keyframe channel.
//! One thread per room (`transcribe-<room>`) keeps, per microphone track,
//! an Opus decoder (48 kHz mono; a lost packet is concealed by the
//! decoder's PLC, up to [`MAX_CONCEALED`] packets), the 48 → 16 kHz
//! [`Downsampler`] and the [`Segmenter`] ([`TrackVoice`]). Each finished
//! utterance goes as a WAV through a bounded queue to an async task that
//! recognises it ([`Voice`], bounded concurrency over all rooms); a
//! recognised utterance is stored as one transcript row at once and sent
//! to the room as a `caption` event. When the session ends the thread
//! flushes the utterances in progress, the task waits for their
//! recognitions and then queues the `transcript.ready` webhook and (with
//! a transcript) the session's summary job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use convene_api::Db;
use convene_api::live::LiveRooms;
use convene_api::live_events::LiveEvent;
use convene_api::store::transcripts::NewSegment;
use convene_api::webhooks::Event;
use convene_media::Codec;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::json;
use tokio::sync::mpsc;

use super::Voice;
use super::dsp::{self, Downsampler, RECOGNITION_RATE, Segmenter, Utterance};
use crate::recording::recorder::{RecEvent, RecorderSink};
use crate::rtc::{Source, TrackKey};

/// Events the worker may queue before packets are dropped (about 20 s of
/// a room's audio and video).
const QUEUE_EVENTS: usize = 4096;
/// Utterances waiting for a recogniser before new ones are dropped.
const UTTERANCE_QUEUE: usize = 32;
/// Lost packets in a row concealed by the decoder; a longer gap restarts
/// the stream at the next packet (its time is then taken from the
/// transcriber's clock).
pub const MAX_CONCEALED: u64 = 5;
/// Samples of the largest Opus packet (120 ms at 48 kHz).
const MAX_PACKET_SAMPLES: usize = 5760;
/// Samples concealed per lost packet (20 ms).
const PLC_SAMPLES: usize = 960;

/// Whom a transcriber works for.
pub struct TranscriberSetup {
    pub team_id: String,
    pub room_id: String,
    pub session_id: String,
    pub db: Db,
    pub voice: Arc<Voice>,
    /// Where captions go (the server's signaling).
    pub live: Weak<dyn LiveRooms>,
    pub runtime: tokio::runtime::Handle,
}

/// The room actor's handle on its transcriber.
pub struct TranscriberHandle {
    stop: Arc<AtomicBool>,
    /// Set while transcription is turned off during the session.
    paused: Arc<AtomicBool>,
    /// The session goes on on another cluster node (a drain): the
    /// transcript is not complete when this transcriber ends.
    handed_over: Arc<AtomicBool>,
}

impl TranscriberHandle {
    /// Pauses (`transcription_enabled` turned off during the session) or
    /// resumes the transcriber: while paused the thread finishes what is in
    /// progress and then ignores the room's audio.
    pub fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::Release);
    }

    /// Ends the transcriber: the thread flushes what is in progress, the
    /// last recognitions finish, then `transcript.ready` is queued.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Ends the transcriber of a session that goes on on the room's new
    /// cluster node (a drain): what is in progress is finished and stored,
    /// but `transcript.ready` and the summary wait for the session's real
    /// end (the new node's transcriber adds to the same transcript).
    pub fn hand_over(&self) {
        self.handed_over.store(true, Ordering::Relaxed);
        self.stop();
    }
}

impl Drop for TranscriberHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One utterance on its way to the recogniser.
struct Job {
    participant_id: String,
    utterance: Utterance,
}

/// The counter of packets the worker could not queue for a transcriber,
/// counted by the worker at the drop (the sink's `overflow`), so that a
/// transcriber that is stuck still shows its drops.
fn dropped_packets() -> metrics::Counter {
    metrics::counter!("convene_transcriber_dropped_packets_total")
}

/// Creates the sink for the worker and starts the transcriber's thread and
/// recognition task.
pub fn spawn(setup: TranscriberSetup) -> std::io::Result<(RecorderSink, TranscriberHandle)> {
    let (tx, rx) = crossbeam_channel::bounded(QUEUE_EVENTS);
    let (kf_tx, kf_rx) = crossbeam_channel::bounded(1);
    let dropped = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let paused = Arc::new(AtomicBool::new(false));
    let handed_over = Arc::new(AtomicBool::new(false));
    let handle = TranscriberHandle {
        stop: stop.clone(),
        paused: paused.clone(),
        handed_over: handed_over.clone(),
    };
    let sink = RecorderSink {
        recording_id: setup.session_id.clone(),
        tx,
        keyframes: kf_rx,
        dropped: dropped.clone(),
        audio_only: true,
        overflow: Some(dropped_packets()),
    };
    let (jobs_tx, jobs_rx) = mpsc::channel(UTTERANCE_QUEUE);
    let started = Utc::now();
    let name = format!(
        "transcribe-{}",
        &setup.room_id[..8.min(setup.room_id.len())]
    );
    std::thread::Builder::new().name(name).spawn(move || {
        let flags = Flags {
            stop: &stop,
            paused: &paused,
        };
        run(rx, kf_tx, &flags, &jobs_tx);
    })?;
    metrics::gauge!("convene_transcribers").increment(1.0);
    setup
        .runtime
        .clone()
        .spawn(recognise_all(setup, started, jobs_rx, handed_over));
    Ok((sink, handle))
}

/// What the room actor tells the thread through its handle.
struct Flags<'a> {
    stop: &'a AtomicBool,
    paused: &'a AtomicBool,
}

/// The thread: events in, utterances out, until stopped (the handle holds
/// the queue open across re-taps). `_keyframes` is held so the worker keeps
/// feeding it.
fn run(
    rx: Receiver<RecEvent>,
    _keyframes: Sender<TrackKey>,
    flags: &Flags<'_>,
    jobs: &mpsc::Sender<Job>,
) {
    let epoch = Instant::now();
    let mut tracks: HashMap<TrackKey, (String, Option<TrackVoice>)> = HashMap::new();
    let send = |participant_id: &str, u: Utterance| {
        let job = Job {
            participant_id: participant_id.to_string(),
            utterance: u,
        };
        if jobs.try_send(job).is_err() {
            metrics::counter!("convene_transcriber_dropped_utterances_total").increment(1);
        }
    };
    let mut was_paused = false;
    while !flags.stop.load(Ordering::Relaxed) {
        let ev = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let paused = flags.paused.load(Ordering::Acquire);
        if paused && !was_paused {
            // A pause: what is in progress ends here; afterwards each track
            // starts a new stream at its next packet.
            for (pid, v) in tracks.values_mut() {
                if let Some(u) = v.take().and_then(|mut v| v.finish()) {
                    send(pid, u);
                }
            }
        }
        was_paused = paused;
        if paused && matches!(ev, RecEvent::Packet(_)) {
            continue;
        }
        match ev {
            RecEvent::Track {
                key,
                participant_id,
                source: Source::Microphone,
            } => {
                tracks.entry(key).or_insert((participant_id, None));
            }
            RecEvent::TrackEnded { key } => {
                if let Some((pid, Some(mut v))) = tracks.remove(&key)
                    && let Some(u) = v.finish()
                {
                    send(&pid, u);
                }
            }
            RecEvent::Packet(p) if p.codec == Codec::Opus => {
                let Some((pid, voice)) = tracks.get_mut(&p.key) else {
                    continue;
                };
                if voice.is_none() {
                    let base_ms = p.arrival.saturating_duration_since(epoch).as_millis() as u64;
                    match TrackVoice::new(base_ms) {
                        Ok(v) => *voice = Some(v),
                        Err(e) => {
                            tracing::error!(error = %e, "could not make an Opus decoder");
                            continue;
                        }
                    }
                }
                if let Some(v) = voice.as_mut() {
                    for u in v.packet(p.seq, &p.payload) {
                        send(pid, u);
                    }
                }
            }
            _ => {}
        }
    }
    // The end: nothing more to drop packets for, so the last utterances
    // wait for room in the queue rather than being dropped.
    for (pid, v) in tracks.values_mut() {
        if let Some(u) = v.as_mut().and_then(TrackVoice::finish) {
            let job = Job {
                participant_id: pid.clone(),
                utterance: u,
            };
            if jobs.blocking_send(job).is_err() {
                metrics::counter!("convene_transcriber_dropped_utterances_total").increment(1);
            }
        }
    }
}

/// One participant's microphone: Opus packets in (continuous sequence
/// numbers from the worker's forwarder), utterances out. Pure but for
/// libopus.
pub struct TrackVoice {
    decoder: opus::Decoder,
    down: Downsampler,
    seg: Segmenter,
    last_seq: Option<u64>,
    pcm: Vec<i16>,
    pcm16: Vec<i16>,
    /// Packets the decoder concealed, and packets that could not be decoded.
    pub concealed: u64,
    pub undecodable: u64,
}

impl TrackVoice {
    /// A track whose first packet is `base_ms` after the session start.
    pub fn new(base_ms: u64) -> Result<TrackVoice, opus::Error> {
        Ok(TrackVoice {
            decoder: opus::Decoder::new(dsp::DECODE_RATE, opus::Channels::Mono)?,
            down: Downsampler::new(),
            seg: Segmenter::new(base_ms),
            last_seq: None,
            pcm: vec![0; MAX_PACKET_SAMPLES],
            pcm16: Vec::with_capacity(MAX_PACKET_SAMPLES / 3 + 1),
            concealed: 0,
            undecodable: 0,
        })
    }

    /// Decodes one packet (a duplicate or late one is ignored; a short gap
    /// before it is concealed) and returns the utterances it completed.
    pub fn packet(&mut self, seq: u64, payload: &[u8]) -> Vec<Utterance> {
        let mut done = Vec::new();
        if let Some(last) = self.last_seq {
            if seq <= last {
                return done;
            }
            let lost = (seq - last - 1).min(MAX_CONCEALED);
            for _ in 0..lost {
                if let Ok(n) = self
                    .decoder
                    .decode(&[], &mut self.pcm[..PLC_SAMPLES], false)
                {
                    self.concealed += 1;
                    done.extend(self.feed(n));
                }
            }
        }
        self.last_seq = Some(seq);
        match self.decoder.decode(payload, &mut self.pcm, false) {
            Ok(n) => done.extend(self.feed(n)),
            Err(_) => self.undecodable += 1,
        }
        done
    }

    fn feed(&mut self, n: usize) -> Vec<Utterance> {
        self.pcm16.clear();
        self.down.process(&self.pcm[..n], &mut self.pcm16);
        self.seg.push(&self.pcm16)
    }

    /// The utterance in progress, at the end of the track.
    pub fn finish(&mut self) -> Option<Utterance> {
        self.seg.finish()
    }
}

/// The async side: recognises each utterance (several at once, bounded by
/// [`Voice`]), stores and captions it; at the end, `transcript.ready`.
async fn recognise_all(
    setup: TranscriberSetup,
    started: DateTime<Utc>,
    mut jobs: mpsc::Receiver<Job>,
    handed_over: Arc<AtomicBool>,
) {
    let setup = Arc::new(setup);
    let mut running = tokio::task::JoinSet::new();
    while let Some(job) = jobs.recv().await {
        // Finished recognitions are collected as new ones come in.
        while running.try_join_next().is_some() {}
        let setup = setup.clone();
        running.spawn(async move { recognise_one(&setup, started, job).await });
    }
    while running.join_next().await.is_some() {}
    metrics::gauge!("convene_transcribers").decrement(1.0);
    if handed_over.load(Ordering::Relaxed) {
        tracing::info!(room = %setup.room_id, session = %setup.session_id, "transcript goes on on the room's new node");
        return;
    }
    let count = match setup
        .db
        .transcripts(convene_api::store::transcripts::TranscriptScope::Session(
            &setup.session_id,
        ))
        .await
    {
        Ok(rows) => rows.len(),
        Err(e) => {
            tracing::error!(error = %e, "could not count a session's transcript");
            return;
        }
    };
    let data = json!({
        "room_id": setup.room_id,
        "session_id": setup.session_id,
        "segments": count,
    });
    if let Err(e) = setup
        .db
        .emit_event(&setup.team_id, Event::TranscriptReady, data)
        .await
    {
        tracing::error!(error = %e, "could not queue the transcript.ready webhook");
    }
    if count > 0 {
        // The summary job (docs/transcripts.md, "Summaries"); durable, so a
        // restart before the worker gets to it resumes it.
        match setup
            .db
            .queue_summary(&setup.team_id, &setup.room_id, &setup.session_id)
            .await
        {
            Ok(_) => setup.voice.summaries().wake(),
            Err(e) => tracing::error!(error = %e, "could not queue the session's summary"),
        }
    }
    tracing::info!(room = %setup.room_id, session = %setup.session_id, segments = count, "transcript complete");
}

async fn recognise_one(setup: &TranscriberSetup, started: DateTime<Utc>, job: Job) {
    let u = &job.utterance;
    let wav = dsp::wav(&u.samples, RECOGNITION_RATE);
    let t = Instant::now();
    let result = setup.voice.recognise(&wav).await;
    metrics::histogram!("convene_transcriber_recognition_seconds")
        .record(t.elapsed().as_secs_f64());
    let text = match result {
        Ok(text) if !text.is_empty() => text,
        Ok(_) => {
            metrics::counter!("convene_transcriber_utterances_total", "outcome" => "empty")
                .increment(1);
            return;
        }
        Err(e) => {
            metrics::counter!("convene_transcriber_utterances_total", "outcome" => "failed")
                .increment(1);
            tracing::warn!(room = %setup.room_id, error = %e, "recognition failed");
            return;
        }
    };
    let name = match setup
        .db
        .participant_author(&setup.room_id, &job.participant_id)
        .await
    {
        Ok(Some(a)) => a.name,
        Ok(None) => String::new(),
        Err(e) => {
            tracing::error!(error = %e, "could not look up a speaker");
            String::new()
        }
    };
    let at = |ms: u64| {
        convene_api::store::timestamp(started + chrono::Duration::milliseconds(ms as i64))
    };
    let (start_time, end_time) = (at(u.start_ms), at(u.end_ms));
    if let Err(e) = setup
        .db
        .insert_transcript(&NewSegment {
            team_id: &setup.team_id,
            room_id: &setup.room_id,
            session_id: &setup.session_id,
            participant_id: &job.participant_id,
            participant_name: &name,
            transcript: &text,
            start_time: &start_time,
            end_time: &end_time,
        })
        .await
    {
        tracing::error!(error = %e, "could not store a transcript segment");
    }
    metrics::counter!("convene_transcriber_utterances_total", "outcome" => "recognised")
        .increment(1);
    if let Some(live) = setup.live.upgrade() {
        live.broadcast(
            &setup.room_id,
            LiveEvent::Caption {
                participant_id: job.participant_id,
                participant_name: name,
                transcript: text,
                start_time,
                end_time,
            },
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` of 20 ms Opus packets of a tone (`amp` 0: silence).
    fn encode(ms: usize, freq: f32, amp: f32) -> Vec<Vec<u8>> {
        let mut enc =
            opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        let mut out = Vec::new();
        for p in 0..ms / 20 {
            let frame: Vec<i16> = (0..960)
                .map(|i| {
                    let t = (p * 960 + i) as f32 / 48_000.0;
                    // Syllable-like: on 300 ms, off 100 ms.
                    let on = ((p * 20) % 400) < 300;
                    if on {
                        (amp * (2.0 * std::f32::consts::PI * freq * t).sin()) as i16
                    } else {
                        0
                    }
                })
                .collect();
            out.push(enc.encode_vec(&frame, 1500).unwrap());
        }
        out
    }

    fn run_track(
        v: &mut TrackVoice,
        packets: &[Vec<u8>],
        first_seq: u64,
        skip: &[u64],
    ) -> Vec<Utterance> {
        let mut out = Vec::new();
        for (i, p) in packets.iter().enumerate() {
            let seq = first_seq + i as u64;
            if skip.contains(&seq) {
                continue;
            }
            out.extend(v.packet(seq, p));
        }
        out
    }

    #[test]
    fn speech_between_silences_is_one_utterance_with_its_time() {
        let mut v = TrackVoice::new(2_000).unwrap();
        let mut packets = encode(1_000, 0.0, 0.0);
        packets.extend(encode(1_200, 300.0, 8_000.0));
        packets.extend(encode(1_500, 0.0, 0.0));
        let found = run_track(&mut v, &packets, 1, &[]);
        assert_eq!(found.len(), 1, "one utterance");
        let u = &found[0];
        // Speech from 1 s into the track (3 s into the session), for 1.2 s.
        assert!((2_700..=3_100).contains(&u.start_ms), "{}", u.start_ms);
        assert!((4_100..=4_500).contains(&u.end_ms), "{}", u.end_ms);
        assert!(v.finish().is_none());
    }

    #[test]
    fn silence_makes_nothing_and_losses_are_concealed() {
        let mut v = TrackVoice::new(0).unwrap();
        let packets = encode(3_000, 0.0, 0.0);
        assert!(run_track(&mut v, &packets, 10, &[20, 21, 40]).is_empty());
        assert_eq!(v.concealed, 3);
        assert!(v.finish().is_none());
    }

    #[test]
    fn duplicates_and_garbage_do_not_break_the_stream() {
        let mut v = TrackVoice::new(0).unwrap();
        let speech = encode(1_200, 300.0, 8_000.0);
        let mut found = Vec::new();
        for (i, p) in speech.iter().enumerate() {
            let seq = i as u64 + 1;
            found.extend(v.packet(seq, p));
            found.extend(v.packet(seq, p)); // a duplicate: ignored
        }
        // An undecodable packet counts and is skipped.
        found.extend(v.packet(1_000, &[0xff, 0xff, 0xff]));
        assert!(v.undecodable >= 1 || v.concealed > 0);
        found.extend(v.finish());
        assert_eq!(found.len(), 1, "the speech, once");
        let u = &found[0];
        // Duplicates did not double it: about 1.2 s (plus trailing silence).
        assert!(u.end_ms - u.start_ms < 1_700, "{}", u.end_ms - u.start_ms);
    }
}
