//! Abstractive summaries from an operator-configured, OpenAI-compatible
//! chat-completions endpoint (`--summary-url`: a llama.cpp server, Ollama,
//! vLLM, ... on this machine or network). The transcript goes there as one
//! user message ("Name: text" lines) after a system prompt; the reply's
//! first choice is the summary. Failures are retried with backoff
//! ([`TRIES`]); 4xx answers other than 429 are not retried.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use crate::store::transcripts::TranscriptSegment;

/// Tries of one summary before the job fails.
pub const TRIES: u32 = 3;
/// Characters of transcript sent at most (the rest is left out, said so).
pub const MAX_TRANSCRIPT_CHARS: usize = 200_000;
/// Characters of the endpoint's error body quoted in a failure reason.
const MAX_REASON_CHARS: usize = 300;

const SYSTEM_PROMPT: &str = "You summarise meeting transcripts. Write a short summary \
    (at most 8 sentences) of what was discussed and decided, and list action items with \
    their owners if there are any. Answer in the language of the transcript. Use only \
    what the transcript says.";

/// Where and how to ask.
#[derive(Debug, Clone)]
pub struct LlmEndpoint {
    pub client: reqwest::Client,
    /// The full URL, e.g. `http://127.0.0.1:8080/v1/chat/completions`.
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer`.
    pub api_key: Option<String>,
    /// The wait before the second try; doubled for each further one.
    pub backoff: Duration,
}

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

/// Why one try failed, and whether another may help.
struct TryError {
    reason: String,
    retry: bool,
}

/// The transcript as the user message: one "Name: text" line per segment.
pub fn transcript_text(segments: &[TranscriptSegment]) -> String {
    let mut out = String::new();
    for s in segments {
        let line = format!("{}: {}\n", s.participant_name, s.transcript);
        if out.len() + line.len() > MAX_TRANSCRIPT_CHARS {
            out.push_str("[the rest of the transcript is left out]\n");
            break;
        }
        out.push_str(&line);
    }
    out
}

fn shorten(s: &str) -> String {
    let t: String = s.chars().take(MAX_REASON_CHARS).collect();
    t.trim().to_string()
}

impl LlmEndpoint {
    /// Asks the endpoint for the summary of a transcript.
    pub async fn summarise(&self, segments: &[TranscriptSegment]) -> Result<String, String> {
        let body = json!({
            "model": self.model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": transcript_text(segments)},
            ],
            "temperature": 0.2,
            "stream": false,
        });
        let mut wait = self.backoff;
        let mut last = String::new();
        for attempt in 1..=TRIES {
            match self.try_once(&body).await {
                Ok(summary) => return Ok(summary),
                Err(e) => {
                    tracing::warn!(attempt, reason = %e.reason, "summary endpoint failed");
                    last = e.reason;
                    if !e.retry {
                        break;
                    }
                }
            }
            if attempt < TRIES {
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
        }
        Err(format!("the summary endpoint failed: {last}"))
    }

    async fn try_once(&self, body: &serde_json::Value) -> Result<String, TryError> {
        let mut req = self.client.post(&self.url).json(body);
        if let Some(key) = &self.api_key {
            req = req.bearer_auth(key);
        }
        let resp = req.send().await.map_err(|e| TryError {
            reason: shorten(&e.to_string()),
            retry: true,
        })?;
        let status = resp.status();
        if !status.is_success() {
            let text = resp.text().await.unwrap_or_default();
            return Err(TryError {
                reason: format!("HTTP {}: {}", status.as_u16(), shorten(&text)),
                retry: status.is_server_error() || status.as_u16() == 429,
            });
        }
        let completion: Completion = resp.json().await.map_err(|e| TryError {
            reason: format!("not a chat completion: {}", shorten(&e.to_string())),
            retry: true,
        })?;
        match completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
        {
            Some(text) if !text.trim().is_empty() => Ok(text.trim().to_string()),
            _ => Err(TryError {
                reason: "the answer has no summary text".into(),
                retry: true,
            }),
        }
    }
}
