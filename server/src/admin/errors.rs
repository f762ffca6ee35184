//! The console's "recent errors": a tracing layer that keeps the last
//! [`RECENT_ERRORS`] WARN and ERROR events of the process in a fixed-size
//! ring (time, level, target, message with its fields).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::Mutex;

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Events kept; the oldest goes first.
pub const RECENT_ERRORS: usize = 200;
/// A message longer than this (in bytes) is cut at a char boundary.
const MAX_MESSAGE: usize = 2000;

/// One logged WARN or ERROR.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LogEntry {
    /// Unix milliseconds.
    pub t: u64,
    /// `WARN` or `ERROR`.
    pub level: &'static str,
    /// The event's target (module path).
    pub target: String,
    /// The message, then the event's other fields as `name=value`.
    pub message: String,
}

/// The ring of recent WARN/ERROR events.
#[derive(Debug)]
pub struct RecentErrors {
    entries: Mutex<VecDeque<LogEntry>>,
}

/// The process's ring, fed by [`layer`] and read by the console.
pub static RECENT: RecentErrors = RecentErrors::new();

impl RecentErrors {
    /// An empty ring.
    pub const fn new() -> Self {
        Self {
            entries: Mutex::new(VecDeque::new()),
        }
    }

    fn push(&self, e: LogEntry) {
        let mut g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        while g.len() >= RECENT_ERRORS {
            g.pop_front();
        }
        g.push_back(e);
    }

    /// Every kept event, newest first.
    pub fn newest_first(&self) -> Vec<LogEntry> {
        let g = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().rev().cloned().collect()
    }
}

impl Default for RecentErrors {
    fn default() -> Self {
        Self::new()
    }
}

/// The layer that feeds [`RECENT`]; register it on the process's subscriber.
pub fn layer() -> RingLayer {
    RingLayer { ring: &RECENT }
}

/// A tracing layer keeping WARN and ERROR events in a [`RecentErrors`].
#[derive(Debug, Clone, Copy)]
pub struct RingLayer {
    ring: &'static RecentErrors,
}

/// Collects an event's message and fields into one line.
#[derive(Default)]
struct Collect {
    message: String,
    fields: String,
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_MESSAGE {
        let mut end = MAX_MESSAGE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let level = match *meta.level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN",
            _ => return,
        };
        let mut c = Collect::default();
        event.record(&mut c);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        self.ring.push(LogEntry {
            t,
            level,
            target: meta.target().to_string(),
            message: cut(c.message + &c.fields),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn keeps_warn_and_error_only_newest_first_and_bounded() {
        static RING: RecentErrors = RecentErrors::new();
        let sub = tracing_subscriber::registry().with(RingLayer { ring: &RING });
        tracing::subscriber::with_default(sub, || {
            tracing::info!("not kept");
            tracing::warn!(room = "r1", "first");
            tracing::error!(code = 7, "second");
        });
        let got = RING.newest_first();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].level, "ERROR");
        assert_eq!(got[0].message, "second code=7");
        assert_eq!(got[1].level, "WARN");
        assert_eq!(got[1].message, "first room=r1");
        assert!(got[1].target.contains("errors"), "{}", got[1].target);

        for i in 0..RECENT_ERRORS + 5 {
            RING.push(LogEntry {
                t: 0,
                level: "WARN",
                target: "x".into(),
                message: i.to_string(),
            });
        }
        let got = RING.newest_first();
        assert_eq!(got.len(), RECENT_ERRORS);
        assert_eq!(got[0].message, (RECENT_ERRORS + 4).to_string());
    }

    #[test]
    fn long_messages_are_cut() {
        let s = cut("é".repeat(MAX_MESSAGE));
        assert!(s.len() <= MAX_MESSAGE + '…'.len_utf8());
        assert!(s.ends_with('…'));
    }
}
