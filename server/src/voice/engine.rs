//! Recognition engines: an utterance's WAV in, its text out.
//!
//! The built-in engine is Debian's PocketSphinx (`pocketsphinx_continuous`
//! from the `pocketsphinx` package with the `pocketsphinx-en-us` model): the
//! WAV is written to a temp file and the CLI runs on it as a child process
//! with a timeout — killed and reaped when it passes — and its standard
//! output (one line of words per stretch it decodes) is the text. How many
//! run at once is bounded by the caller (`super::Voice`).

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
}

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
        }
    }
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
