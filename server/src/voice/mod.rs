//! The server-side voice path (docs/transcripts.md): the signal processing
//! of live transcription ([`dsp`]: 48 → 16 kHz resampling, energy-based
//! voice-activity segmentation into utterances, WAV), the recognition
//! engines ([`engine`]: PocketSphinx as a bounded child process) and the
//! per-room [`transcriber`] that taps a live room's audio through the media
//! worker, decodes each participant's Opus and turns utterances into
//! captions and stored transcript segments.
//!
//! A room mix-minus encoder for a phone bridge would sit beside [`dsp`]
//! (it needs the same decode and resample steps).

pub mod dsp;
pub mod engine;
pub mod transcriber;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use convene_api::summary::SummaryQueue;
use tokio::sync::Semaphore;

use self::engine::{Engine, EngineError};

/// How speech is recognised on this server (`--transcription-*` flags).
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    pub engine: Engine,
    /// Recognitions running at once, over all rooms.
    pub concurrency: usize,
    /// One recognition is killed after this long.
    pub timeout: Duration,
    /// Where utterance WAVs are written for the recogniser.
    pub tmp: PathBuf,
    /// Where a finished session's summary job is announced.
    pub summaries: SummaryQueue,
}

impl Default for VoiceConfig {
    fn default() -> Self {
        VoiceConfig {
            engine: Engine::Pocketsphinx {
                program: PathBuf::from("pocketsphinx_continuous"),
            },
            concurrency: 2,
            timeout: Duration::from_secs(30),
            tmp: std::env::temp_dir(),
            summaries: SummaryQueue::default(),
        }
    }
}

/// The server's recogniser: the engine behind a semaphore, so that no more
/// than `concurrency` recognitions run at once whatever the rooms do.
#[derive(Debug)]
pub struct Voice {
    config: VoiceConfig,
    permits: Arc<Semaphore>,
}

impl Voice {
    pub fn new(config: VoiceConfig) -> Arc<Voice> {
        let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
        Arc::new(Voice { config, permits })
    }

    /// The summary worker's queue.
    pub fn summaries(&self) -> &SummaryQueue {
        &self.config.summaries
    }

    /// The text of one utterance's WAV (waits for a free slot first).
    pub async fn recognise(&self, wav: &[u8]) -> Result<String, EngineError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| EngineError::Failed("the recogniser is shut down".into()))?;
        self.config
            .engine
            .recognise(wav, &self.config.tmp, self.config.timeout)
            .await
    }
}
