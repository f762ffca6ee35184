//! Simulcast layers.

/// A simulcast layer (RIDs `q`, `h`, `f`, lowest first). Streams without
/// simulcast are treated as a single [`Layer::F`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// Quarter resolution.
    Q = 0,
    /// Half resolution.
    H = 1,
    /// Full resolution.
    F = 2,
}

impl Layer {
    /// Every layer, lowest first.
    pub const ALL: [Layer; 3] = [Layer::Q, Layer::H, Layer::F];

    /// The layer of a RID. Besides Convene's own `q`/`h`/`f` this accepts the
    /// `l`/`m` and `0`/`1`/`2` spellings other clients use; anything else is
    /// the full layer.
    pub fn from_rid(rid: &[u8]) -> Layer {
        match rid.first() {
            Some(b'q') | Some(b'l') | Some(b'0') => Layer::Q,
            Some(b'h') | Some(b'm') | Some(b'1') => Layer::H,
            _ => Layer::F,
        }
    }

    /// Parses a signaling layer name (`q`, `h`, `f`, or `low`/`medium`/`high`).
    pub fn parse(s: &str) -> Option<Layer> {
        match s {
            "q" | "low" => Some(Layer::Q),
            "h" | "medium" => Some(Layer::H),
            "f" | "high" => Some(Layer::F),
            _ => None,
        }
    }

    /// The highest layer whose height fits `max_height`, assuming the camera
    /// sends 720p on `f` (so 360p on `h`, 180p on `q`).
    pub fn for_max_height(max_height: u32) -> Layer {
        match max_height {
            0..=180 => Layer::Q,
            181..=360 => Layer::H,
            _ => Layer::F,
        }
    }

    /// The index of this layer in `[q, h, f]` arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The next lower layer, if any.
    pub fn lower(self) -> Option<Layer> {
        match self {
            Layer::Q => None,
            Layer::H => Some(Layer::Q),
            Layer::F => Some(Layer::H),
        }
    }

    /// The next higher layer, if any.
    pub fn higher(self) -> Option<Layer> {
        match self {
            Layer::Q => Some(Layer::H),
            Layer::H => Some(Layer::F),
            Layer::F => None,
        }
    }

    /// The RID Convene uses for this layer.
    pub fn rid(self) -> &'static str {
        match self {
            Layer::Q => "q",
            Layer::H => "h",
            Layer::F => "f",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rids_and_names() {
        assert_eq!(Layer::from_rid(b"q"), Layer::Q);
        assert_eq!(Layer::from_rid(b"1"), Layer::H);
        assert_eq!(Layer::from_rid(b"f"), Layer::F);
        assert_eq!(Layer::from_rid(b""), Layer::F);
        assert_eq!(Layer::parse("medium"), Some(Layer::H));
        assert_eq!(Layer::parse("x"), None);
        assert_eq!(Layer::for_max_height(180), Layer::Q);
        assert_eq!(Layer::for_max_height(360), Layer::H);
        assert_eq!(Layer::for_max_height(1080), Layer::F);
        assert_eq!(Layer::F.lower(), Some(Layer::H));
        assert_eq!(Layer::Q.lower(), None);
        assert_eq!(Layer::H.higher(), Some(Layer::F));
        for l in Layer::ALL {
            assert_eq!(Layer::from_rid(l.rid().as_bytes()), l);
        }
    }
}
