//! Recognition engines: an utterance's WAV in, its text out.
//!
//! The built-in engine is Debian's PocketSphinx (`pocketsphinx_continuous`
//! from the `pocketsphinx` package with the `pocketsphinx-en-us` model): the
//! WAV is written to a temp file and the CLI runs on it as a child process
//! with a timeout — killed and reaped when it passes — and its standard
//! output (one line of words per stretch it decodes) is the text. Or, with
//! `--transcription-url`, an OpenAI-compatible HTTP endpoint (e.g. a
//! whisper server) gets each WAV. How many run at once is bounded by the
//! caller (`super::Voice`).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

/// Bytes of a recogniser's output kept.
const OUTPUT_KEPT: u64 = 64 * 1024;

/// Which recogniser turns speech into text.
#[derive(Debug, Clone)]
pub enum Engine {
    /// `pocketsphinx_continuous -infile <wav>` (the path or the name of the
    /// program, found on `PATH`).
    Pocketsphinx { program: PathBuf },
    /// An OpenAI-compatible transcription endpoint (whisper.cpp's server,
    /// faster-whisper-server, vLLM, the OpenAI API...): the WAV is posted
    /// as `multipart/form-data` (`file`, `model`, `response_format=json`)
    /// and the answer's `text` is the utterance's text.
    Http(HttpEngine),
}

/// Where and how utterances are posted. (`Debug` leaves the key out.)
#[derive(Clone)]
pub struct HttpEngine {
    pub client: reqwest::Client,
    /// The endpoint, e.g. `http://whisper:8000/v1/audio/transcriptions`.
    pub url: String,
    pub model: String,
    /// Sent as `Authorization: Bearer <key>` when set.
    pub api_key: Option<String>,
}

impl std::fmt::Debug for HttpEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpEngine")
            .field("url", &self.url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Bytes of an engine's HTTP answer read.
const ANSWER_KEPT: usize = 256 * 1024;

/// Why an utterance has no text.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("could not run the recogniser: {0}")]
    Spawn(std::io::Error),
    #[error("the recogniser took longer than {0:?} and was killed")]
    Timeout(Duration),
    #[error("the recogniser failed: {0}")]
    Failed(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

impl Engine {
    /// The text of one utterance (16 kHz mono WAV); empty when nothing was
    /// recognised.
    pub async fn recognise(
        &self,
        wav: &[u8],
        tmp: &Path,
        timeout: Duration,
    ) -> Result<String, EngineError> {
        match self {
            Engine::Pocketsphinx { program } => pocketsphinx(program, wav, tmp, timeout).await,
            Engine::Http(h) => http(h, wav, timeout).await,
        }
    }
}

async fn http(h: &HttpEngine, wav: &[u8], timeout: Duration) -> Result<String, EngineError> {
    let file = reqwest::multipart::Part::bytes(wav.to_vec())
        .file_name("utterance.wav")
        .mime_str("audio/wav")
        .map_err(|e| EngineError::Failed(e.to_string()))?;
    let form = reqwest::multipart::Form::new()
        .part("file", file)
        .text("model", h.model.clone())
        .text("response_format", "json");
    let mut req = h.client.post(&h.url).multipart(form).timeout(timeout);
    if let Some(key) = &h.api_key {
        req = req.bearer_auth(key);
    }
    let res = req.send().await.map_err(|e| {
        if e.is_timeout() {
            EngineError::Timeout(timeout)
        } else {
            EngineError::Failed(format!("could not reach {}: {e}", h.url))
        }
    })?;
    let status = res.status();
    let mut body = Vec::new();
    let mut res = res;
    while let Some(chunk) = res
        .chunk()
        .await
        .map_err(|e| EngineError::Failed(format!("reading the answer: {e}")))?
    {
        if body.len() + chunk.len() > ANSWER_KEPT {
            return Err(EngineError::Failed(format!(
                "the answer is larger than {ANSWER_KEPT} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    if !status.is_success() {
        let said: String = String::from_utf8_lossy(&body).chars().take(200).collect();
        return Err(EngineError::Failed(format!("HTTP {status}: {said}")));
    }
    let v: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| EngineError::Failed(format!("the answer is not JSON: {e}")))?;
    let text = v["text"]
        .as_str()
        .ok_or_else(|| EngineError::Failed("the answer has no `text`".into()))?;
    Ok(text_of(text))
}

async fn pocketsphinx(
    program: &Path,
    wav: &[u8],
    tmp: &Path,
    timeout: Duration,
) -> Result<String, EngineError> {
    let file = tmp.join(format!("convene-utterance-{}.wav", uuid::Uuid::new_v4()));
    tokio::fs::write(&file, wav).await?;
    let result = run_pocketsphinx(program, &file, timeout).await;
    let _ = tokio::fs::remove_file(&file).await;
    result
}

async fn run_pocketsphinx(
    program: &Path,
    file: &Path,
    timeout: Duration,
) -> Result<String, EngineError> {
    let mut child = tokio::process::Command::new(program)
        .arg("-infile")
        .arg(file)
        .arg("-logfn")
        .arg("/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(EngineError::Spawn)?;
    let mut stdout = child
        .stdout
        .take()
        .ok_or_else(|| EngineError::Failed("no output pipe".into()))?;
    let run = async {
        let mut out = Vec::new();
        (&mut stdout)
            .take(OUTPUT_KEPT)
            .read_to_end(&mut out)
            .await?;
        let status = child.wait().await?;
        Ok::<_, std::io::Error>((status, out))
    };
    let (status, out) = match tokio::time::timeout(timeout, run).await {
        Ok(r) => r?,
        Err(_) => {
            // Killed and reaped (kill_on_drop would kill but not reap).
            let _ = child.kill().await;
            return Err(EngineError::Timeout(timeout));
        }
    };
    if !status.success() {
        return Err(EngineError::Failed(format!("exit status {status}")));
    }
    Ok(text_of(&String::from_utf8_lossy(&out)))
}

/// The recogniser's lines joined into one line of words.
pub fn text_of(output: &str) -> String {
    output.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_becomes_one_line() {
        assert_eq!(text_of("one two\nthree  \n\n"), "one two three");
        assert_eq!(text_of("\n"), "");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let e = Engine::Pocketsphinx {
            program: "/nonexistent/pocketsphinx_continuous".into(),
        }
        .recognise(
            &super::super::dsp::wav(&[0; 160], 16_000),
            &std::env::temp_dir(),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, EngineError::Spawn(_)), "{e}");
    }

    #[tokio::test]
    async fn a_hanging_program_is_killed_at_the_timeout() {
        // A "recogniser" that never answers.
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("hang.sh");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = Engine::Pocketsphinx { program: script }
            .recognise(
                &super::super::dsp::wav(&[0; 160], 16_000),
                dir.path(),
                Duration::from_millis(300),
            )
            .await
            .unwrap_err();
        assert!(matches!(e, EngineError::Timeout(_)), "{e}");
    }
}
