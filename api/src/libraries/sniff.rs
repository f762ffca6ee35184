//! What an uploaded file is (from its first bytes, never from the client's
//! `Content-Type` or name) and the name it is listed under.
//!
//! A table of five signatures rather than a crate: these are the only types
//! a library accepts, and each is one fixed prefix.

/// A type a library accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Pdf,
    Png,
    Jpeg,
    Gif,
    Webp,
}

/// Bytes [`sniff`] needs to decide.
pub const SNIFF_BYTES: usize = 12;

impl Kind {
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Pdf => "application/pdf",
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Gif => "image/gif",
            Kind::Webp => "image/webp",
        }
    }

    pub fn ext(self) -> &'static str {
        match self {
            Kind::Pdf => "pdf",
            Kind::Png => "png",
            Kind::Jpeg => "jpg",
            Kind::Gif => "gif",
            Kind::Webp => "webp",
        }
    }

    /// The stored content type back to a kind.
    pub fn from_content_type(ct: &str) -> Option<Kind> {
        [Kind::Pdf, Kind::Png, Kind::Jpeg, Kind::Gif, Kind::Webp]
            .into_iter()
            .find(|k| k.content_type() == ct)
    }

    /// `pdf` or `image`: what the file becomes in a room.
    pub fn family(self) -> &'static str {
        match self {
            Kind::Pdf => "pdf",
            _ => "image",
        }
    }
}

/// The kind of a file from its first bytes (at least [`SNIFF_BYTES`] when
/// the file is that long).
pub fn sniff(head: &[u8]) -> Option<Kind> {
    if head.starts_with(b"%PDF-") {
        Some(Kind::Pdf)
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Kind::Png)
    } else if head.starts_with(b"\xFF\xD8\xFF") {
        Some(Kind::Jpeg)
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        Some(Kind::Gif)
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        Some(Kind::Webp)
    } else {
        None
    }
}

/// Longest listed name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// The name a file is listed under: the last component of what the client
/// sent (`/` and `\` both separate), without control characters, leading
/// dots or surrounding blanks, at most [`MAX_NAME_CHARS`] characters (the
/// extension kept when cut); Unicode is kept. Nothing usable gives
/// `file.<ext>`. The name is only ever shown: files are stored by id.
pub fn sanitise_name(raw: Option<&str>, kind: Kind) -> String {
    let last = raw.unwrap_or("").rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last.chars().filter(|c| !c.is_control()).collect();
    let name = cleaned
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end();
    if name.is_empty() {
        return format!("file.{}", kind.ext());
    }
    if name.chars().count() <= MAX_NAME_CHARS {
        return name.to_string();
    }
    let ext: String = match name.rsplit_once('.') {
        Some((_, e)) if !e.is_empty() && e.chars().count() <= 10 => format!(".{e}"),
        _ => String::new(),
    };
    let keep = MAX_NAME_CHARS - ext.chars().count();
    let stem: String = name.chars().take(keep).collect();
    format!("{}{ext}", stem.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_the_accepted_types_only() {
        assert_eq!(sniff(b"%PDF-1.4\n"), Some(Kind::Pdf));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0"), Some(Kind::Png));
        assert_eq!(sniff(b"\xFF\xD8\xFF\xE0"), Some(Kind::Jpeg));
        assert_eq!(sniff(b"GIF89a.."), Some(Kind::Gif));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WEBPVP8 "), Some(Kind::Webp));
        assert_eq!(sniff(b"RIFF\x10\0\0\0WAVEfmt "), None);
        assert_eq!(sniff(b"hello, I am text"), None);
        assert_eq!(sniff(b""), None);
        assert_eq!(sniff(b"%PD"), None);
    }

    #[test]
    fn names_lose_paths_and_controls_but_keep_unicode() {
        assert_eq!(sanitise_name(Some("../../etc/passwd"), Kind::Png), "passwd");
        assert_eq!(
            sanitise_name(Some("..\\..\\boot.ini"), Kind::Png),
            "boot.ini"
        );
        assert_eq!(sanitise_name(Some("a/b/.."), Kind::Png), "file.png");
        assert_eq!(sanitise_name(Some("..."), Kind::Pdf), "file.pdf");
        assert_eq!(sanitise_name(Some(".hidden"), Kind::Pdf), "hidden");
        // Dots and blanks in any order before the name (found by fuzzing).
        assert_eq!(sanitise_name(Some(". .x"), Kind::Pdf), "x");
        assert_eq!(sanitise_name(Some(" . . "), Kind::Pdf), "file.pdf");
        assert_eq!(sanitise_name(Some("x\u{0}y\n.pdf"), Kind::Pdf), "xy.pdf");
        assert_eq!(
            sanitise_name(Some("Präsentation 日本.pdf"), Kind::Pdf),
            "Präsentation 日本.pdf"
        );
        assert_eq!(sanitise_name(None, Kind::Jpeg), "file.jpg");
        let long = format!("{}.pdf", "ä".repeat(500));
        let cut = sanitise_name(Some(&long), Kind::Pdf);
        assert_eq!(cut.chars().count(), MAX_NAME_CHARS);
        assert!(cut.ends_with(".pdf"));
    }
}
