//! Session summaries (docs/transcripts.md, "Summaries"): the worker that
//! turns a finished session's transcript into its summary.
//!
//! Jobs are rows of the `summaries` table (store::summaries), queued when a
//! session with transcripts ends. One worker task runs one job at a time,
//! each within [`SummaryConfig::timeout`]; jobs still IN_PROGRESS when the
//! server stopped (or crashed) are picked up again at the next start, at
//! most [`MAX_ATTEMPTS`] times. Without `--summary-url` the built-in
//! [`extractive`] summariser writes the summary on this machine; with it,
//! an OpenAI-compatible chat-completions endpoint ([`llm`]) does, retried
//! with backoff and then FAILED with the endpoint's error as the reason.

pub mod extractive;
pub mod llm;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::store::Db;
use crate::store::summaries::SummaryRow;
use crate::store::transcripts::TranscriptScope;

/// Pick-ups of one job before it is failed (a job that kills the server
/// every time must not keep it from starting).
pub const MAX_ATTEMPTS: i64 = 3;
/// How often an idle worker looks for jobs it was not told about.
const IDLE_POLL: Duration = Duration::from_secs(5);

/// How summaries are made.
#[derive(Debug, Clone)]
pub struct SummaryConfig {
    /// An OpenAI-compatible chat-completions endpoint; `None`: extractive.
    pub llm: Option<llm::LlmEndpoint>,
    /// The longest one job may take (all its tries).
    pub timeout: Duration,
}

impl Default for SummaryConfig {
    fn default() -> Self {
        SummaryConfig {
            llm: None,
            timeout: Duration::from_secs(300),
        }
    }
}

/// The handle to wake the worker when a job was queued.
#[derive(Debug, Clone, Default)]
pub struct SummaryQueue {
    wake: Arc<Notify>,
}

impl SummaryQueue {
    /// Tells the worker a job is waiting.
    pub fn wake(&self) {
        self.wake.notify_one();
    }
}

/// Starts the worker; it first resumes the jobs left IN_PROGRESS.
pub fn spawn_worker(db: Db, config: SummaryConfig) -> SummaryQueue {
    let queue = SummaryQueue::default();
    let wake = queue.wake.clone();
    tokio::spawn(async move {
        loop {
            match db.claim_summary_job().await {
                Ok(Some(job)) => run_job(&db, &config, job).await,
                Ok(None) => {
                    let _ = tokio::time::timeout(IDLE_POLL, wake.notified()).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not claim a summary job");
                    tokio::time::sleep(IDLE_POLL).await;
                }
            }
        }
    });
    queue
}

async fn run_job(db: &Db, config: &SummaryConfig, job: SummaryRow) {
    let outcome = if job.attempts > MAX_ATTEMPTS {
        Err(format!(
            "gave up after {MAX_ATTEMPTS} attempts (the server stopped while making it)"
        ))
    } else {
        match tokio::time::timeout(config.timeout, make(db, config, &job)).await {
            Ok(r) => r,
            Err(_) => Err(format!("timed out after {} s", config.timeout.as_secs())),
        }
    };
    match &outcome {
        Ok(_) => tracing::info!(session = %job.session_id, "summary ready"),
        Err(reason) => tracing::warn!(session = %job.session_id, %reason, "summary failed"),
    }
    metrics::counter!("convene_summaries_total", "status" => if outcome.is_ok() { "ready" } else { "failed" })
        .increment(1);
    let stored = db
        .finish_summary(&job.id, outcome.as_deref().map_err(String::as_str))
        .await;
    if let Err(e) = stored {
        tracing::error!(error = %e, "could not store a summary");
    }
}

/// Makes one session's summary.
async fn make(db: &Db, config: &SummaryConfig, job: &SummaryRow) -> Result<String, String> {
    let segments = db
        .transcripts(TranscriptScope::Session(&job.session_id))
        .await
        .map_err(|e| format!("could not read the transcript: {e}"))?;
    if segments.is_empty() {
        return Err("the session has no transcript (it was deleted)".into());
    }
    match &config.llm {
        Some(endpoint) => endpoint.summarise(&segments).await,
        None => tokio::task::spawn_blocking(move || {
            let lines: Vec<extractive::Line<'_>> = segments
                .iter()
                .map(|s| extractive::Line {
                    speaker: &s.participant_name,
                    text: &s.transcript,
                })
                .collect();
            extractive::summarise(&lines)
        })
        .await
        .map_err(|e| format!("the summariser failed: {e}"))?
        .ok_or_else(|| "the transcript has nothing to summarise (no content words)".into()),
    }
}
