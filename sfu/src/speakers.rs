//! Active-speaker detection from RFC 6464 audio levels.

/// Audio level in -dBov (0 loudest, 127 silence) below which a participant
/// counts as speaking when averaged over a tick.
pub const SPEECH_DBOV: f32 = 50.0;

/// The average RFC 6464 audio level (-dBov) of one participant's packets
/// between two speaker ticks.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct LevelMeter {
    sum: f32,
    count: u32,
}

impl LevelMeter {
    /// One packet's level (the extension's value; its sign is ignored).
    pub fn record(&mut self, level: i8) {
        self.sum += f32::from(level.unsigned_abs());
        self.count += 1;
    }

    /// The average since the last call (`None`: no packet), and a fresh start.
    pub fn take(&mut self) -> Option<f32> {
        let avg = (self.count > 0).then(|| self.sum / self.count as f32);
        *self = LevelMeter::default();
        avg
    }
}

/// Ranks participants by smoothed loudness each tick (about twice a second)
/// and reports the ordered list of speakers only when it changes. A speaker
/// stays in the list for one quiet tick, so pauses between words do not make
/// the highlight flicker.
#[derive(Debug)]
pub struct SpeakerDetector<K> {
    entries: Vec<Entry<K>>,
    last: Vec<K>,
}

#[derive(Debug)]
struct Entry<K> {
    key: K,
    /// Smoothed loudness (127 - dBov), 0 = silence.
    loudness: f32,
    quiet_ticks: u32,
}

impl<K: Clone + PartialEq> Default for SpeakerDetector<K> {
    fn default() -> Self {
        SpeakerDetector {
            entries: Vec::new(),
            last: Vec::new(),
        }
    }
}

impl<K: Clone + PartialEq> SpeakerDetector<K> {
    /// The speakers last reported by [`SpeakerDetector::tick`], loudest first.
    pub fn current(&self) -> &[K] {
        &self.last
    }

    /// One tick: `levels` gives each participant's average level (-dBov)
    /// since the last tick, `None` when no audio arrived. Participants not
    /// listed are forgotten. Returns the new ordered list (loudest first)
    /// when it differs from the last one reported.
    pub fn tick(&mut self, levels: impl IntoIterator<Item = (K, Option<f32>)>) -> Option<Vec<K>> {
        let mut seen: Vec<Entry<K>> = Vec::with_capacity(self.entries.len());
        for (key, level) in levels {
            let old = self
                .entries
                .iter()
                .position(|e| e.key == key)
                .map(|i| self.entries.swap_remove(i));
            let now = level.map_or(0.0, |l| (127.0 - l.clamp(0.0, 127.0)).max(0.0));
            let mut e = old.unwrap_or(Entry {
                key,
                loudness: 0.0,
                quiet_ticks: u32::MAX,
            });
            e.loudness = 0.5 * e.loudness + 0.5 * now;
            if level.is_some_and(|l| l < SPEECH_DBOV) {
                e.quiet_ticks = 0;
            } else {
                e.quiet_ticks = e.quiet_ticks.saturating_add(1);
            }
            seen.push(e);
        }
        self.entries = seen;
        let mut speaking: Vec<&Entry<K>> =
            self.entries.iter().filter(|e| e.quiet_ticks <= 1).collect();
        speaking.sort_by(|a, b| b.loudness.total_cmp(&a.loudness));
        let list: Vec<K> = speaking.into_iter().map(|e| e.key.clone()).collect();
        if list == self.last {
            return None;
        }
        self.last = list.clone();
        Some(list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_meter_averages_between_takes() {
        let mut m = LevelMeter::default();
        assert_eq!(m.take(), None);
        m.record(30);
        m.record(-50); // the sign is not part of the level
        assert_eq!(m.take(), Some(40.0));
        assert_eq!(m.take(), None, "a take starts afresh");
    }

    #[test]
    fn ranks_loudest_first_and_reports_changes_only() {
        let mut d = SpeakerDetector::default();
        assert_eq!(
            d.tick([("a", Some(30.0)), ("b", Some(20.0)), ("c", Some(120.0))]),
            Some(vec!["b", "a"])
        );
        assert_eq!(
            d.tick([("a", Some(30.0)), ("b", Some(20.0)), ("c", Some(120.0))]),
            None
        );
        // b pauses for one tick: still listed (but quieter now than a).
        assert_eq!(
            d.tick([("a", Some(30.0)), ("b", Some(127.0)), ("c", None)]),
            Some(vec!["a", "b"])
        );
        // A second quiet tick drops b.
        assert_eq!(
            d.tick([("a", Some(30.0)), ("b", None), ("c", None)]),
            Some(vec!["a"])
        );
        // a leaves the room.
        assert_eq!(d.tick([("b", None), ("c", None)]), Some(vec![]));
    }
}
