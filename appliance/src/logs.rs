//! An in-memory ring of recent log lines, filled by a `tracing` layer and
//! served by `GET /api/v1/system/logs`.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

use crate::capture::lock;

#[derive(Debug, Clone, serde::Serialize)]
pub struct LogLine {
    pub timestamp: String,
    pub level: String,
    pub target: String,
    pub message: String,
}

/// The shared ring; clone freely.
#[derive(Clone)]
pub struct LogRing {
    inner: Arc<Mutex<VecDeque<(Level, LogLine)>>>,
    cap: usize,
}

impl LogRing {
    pub fn new(cap: usize) -> Self {
        LogRing {
            inner: Arc::new(Mutex::new(VecDeque::with_capacity(cap.min(10_000)))),
            cap: cap.max(1),
        }
    }

    pub fn push(&self, level: Level, target: &str, message: String) {
        let mut g = lock(&self.inner);
        if g.len() >= self.cap {
            g.pop_front();
        }
        g.push_back((
            level,
            LogLine {
                timestamp: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                level: level.to_string().to_lowercase(),
                target: target.to_string(),
                message,
            },
        ));
    }

    /// The last `lines` lines at `min` severity or worse, oldest first.
    pub fn tail(&self, lines: usize, min: Level) -> Vec<LogLine> {
        let g = lock(&self.inner);
        // tracing orders Level by verbosity: ERROR < WARN < ... < TRACE.
        let mut out: Vec<LogLine> = g
            .iter()
            .rev()
            .filter(|(l, _)| *l <= min)
            .take(lines)
            .map(|(_, line)| line.clone())
            .collect();
        out.reverse();
        out
    }
}

/// Parses `error|warn|info|debug|trace`.
pub fn parse_level(s: &str) -> Option<Level> {
    match s.to_ascii_lowercase().as_str() {
        "error" => Some(Level::ERROR),
        "warn" | "warning" => Some(Level::WARN),
        "info" => Some(Level::INFO),
        "debug" => Some(Level::DEBUG),
        "trace" => Some(Level::TRACE),
        _ => None,
    }
}

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for LogRing {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut f = Fields(String::new());
        event.record(&mut f);
        self.push(*event.metadata().level(), event.metadata().target(), f.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_and_filters_by_level() {
        let r = LogRing::new(3);
        r.push(Level::INFO, "a", "one".into());
        r.push(Level::ERROR, "a", "two".into());
        r.push(Level::WARN, "a", "three".into());
        r.push(Level::INFO, "a", "four".into());
        let all: Vec<String> = r
            .tail(10, Level::TRACE)
            .into_iter()
            .map(|l| l.message)
            .collect();
        assert_eq!(all, ["two", "three", "four"]);
        let warn: Vec<String> = r
            .tail(10, Level::WARN)
            .into_iter()
            .map(|l| l.message)
            .collect();
        assert_eq!(warn, ["two", "three"]);
        assert_eq!(r.tail(1, Level::TRACE)[0].message, "four");
        assert_eq!(r.tail(1, Level::ERROR)[0].level, "error");
        assert_eq!(parse_level("Warning"), Some(Level::WARN));
        assert_eq!(parse_level("loud"), None);
    }
}
