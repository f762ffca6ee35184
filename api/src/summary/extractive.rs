//! The built-in extractive summariser: no model, no download. It picks the
//! most informative sentences of a transcript and gives them back in spoken
//! order, each with its speaker ("Alice: ...").
//!
//! A sentence's score is the mean document frequency of its content words
//! (English and German stop words and one-letter tokens left out), so a
//! sentence made of the words the meeting kept coming back to wins over
//! small talk; a slight bonus goes to sentences early in the meeting, where
//! agendas and decisions are usually stated. Sentences with fewer than
//! [`MIN_CONTENT_WORDS`] content words are never picked.

use std::collections::{HashMap, HashSet};

/// Sentences picked at most.
pub const MAX_SENTENCES: usize = 5;
/// Characters of summary at most (a longer sentence is cut at a word).
pub const MAX_CHARS: usize = 1500;
/// Content words a sentence needs to be picked.
const MIN_CONTENT_WORDS: usize = 3;

/// One utterance of the transcript, in spoken order.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    pub speaker: &'a str,
    pub text: &'a str,
}

const STOP_WORDS_EN: &str = "a about above after again against all also am an and any are aren't \
    as at be because been before being below between both but by can can't cannot could couldn't \
    did didn't do does doesn't doing don't down during each few for from further get got had \
    hadn't has hasn't have haven't having he he'd he'll he's her here here's hers herself him \
    himself his how how's i i'd i'll i'm i've if in into is isn't it it's its itself just know \
    let's like me more most mustn't my myself no nor not now of off oh ok okay on once only or \
    other ought our ours ourselves out over own really right same say shan't she she'd she'll \
    she's should shouldn't so some such than that that's the their theirs them themselves then \
    there there's these they they'd they'll they're they've think this those through to too \
    under until up uh um very was wasn't we we'd we'll we're we've well were weren't what \
    what's when when's where where's which while who who's whom why why's will with won't would \
    wouldn't yeah yes you you'd you'll you're you've your yours yourself yourselves";

const STOP_WORDS_DE: &str = "aber alle allem allen aller alles als also am an ander andere \
    anderem anderen anderer anderes auch auf aus bei bin bis bist da damit dann das dass dasselbe \
    dazu dein deine deinem deinen deiner dem den denn der des dessen deshalb die dies diese \
    dieselbe diesem diesen dieser dieses doch dort du durch ein eine einem einen einer eines \
    einig einige einigem einigen einiger einiges einmal er es etwas euch euer eure für gegen \
    gewesen hab habe haben hat hatte hatten hier hin hinter ich ihm ihn ihnen ihr ihre ihrem \
    ihren ihrer ihres im in indem ins ist ja jede jedem jeden jeder jedes jene jetzt kann kein \
    keine keinem keinen keiner können könnte machen man manche mein meine meinem meinen meiner \
    mich mir mit muss musste nach nicht nichts noch nun nur ob oder ohne schon sehr sein seine \
    seinem seinen seiner sich sie sind so solche soll sollte sondern sonst über um und uns \
    unser unsere unter viel vom von vor war waren warst was weg weil weiter welche welchem \
    welchen welcher welches wenn werde werden wie wieder will wir wird wirst wo wollen wollte \
    würde würden zu zum zur zwar zwischen äh ähm okay gut";

fn stop_words() -> HashSet<&'static str> {
    STOP_WORDS_EN
        .split_whitespace()
        .chain(STOP_WORDS_DE.split_whitespace())
        .collect()
}

/// A sentence of the transcript with its speaker and place.
struct Sentence<'a> {
    speaker: &'a str,
    text: &'a str,
    words: Vec<String>,
}

/// Splits an utterance into sentences at `.`, `!` or `?` followed by
/// whitespace (recognisers without punctuation give one sentence).
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if matches!(c, '.' | '!' | '?') && chars.peek().is_none_or(|(_, next)| next.is_whitespace())
        {
            let end = i + c.len_utf8();
            out.push(text[start..end].trim());
            start = end;
        }
    }
    out.push(text[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

/// The content words of a sentence, lower-cased.
fn content_words(text: &str, stop: &HashSet<&str>) -> Vec<String> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| w.chars().count() > 1 && !stop.contains(w.as_str()))
        .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

/// Cuts `s` to at most `max` characters at a word boundary, with "…".
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    if let Some(space) = out.rfind(' ') {
        out.truncate(space);
    }
    out.push('…');
    out
}

/// Summarises a transcript; `None` when it has nothing to summarise (no
/// sentence with enough content words).
pub fn summarise(lines: &[Line<'_>]) -> Option<String> {
    let stop = stop_words();
    let all: Vec<Sentence<'_>> = lines
        .iter()
        .flat_map(|l| {
            sentences(l.text).into_iter().map(|text| Sentence {
                speaker: l.speaker,
                text,
                words: Vec::new(),
            })
        })
        .map(|mut s| {
            s.words = content_words(s.text, &stop);
            s
        })
        .collect();
    let mut freq: HashMap<&str, f64> = HashMap::new();
    for s in &all {
        for w in &s.words {
            *freq.entry(w.as_str()).or_default() += 1.0;
        }
    }
    let top = freq.values().copied().fold(0.0, f64::max);
    if top == 0.0 {
        return None;
    }
    let n = all.len() as f64;
    let mut scored: Vec<(usize, f64)> = all
        .iter()
        .enumerate()
        .filter(|(_, s)| s.words.len() >= MIN_CONTENT_WORDS)
        .map(|(i, s)| {
            let distinct: HashSet<&str> = s.words.iter().map(String::as_str).collect();
            let tf: f64 = distinct.iter().map(|w| freq[w] / top).sum::<f64>();
            let mean = tf / (distinct.len() as f64).sqrt();
            let position = 1.0 + 0.1 * (1.0 - i as f64 / n);
            (i, mean * position)
        })
        .collect();
    if scored.is_empty() {
        return None;
    }
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let want = all.len().div_ceil(4).clamp(1, MAX_SENTENCES);
    let mut picked: Vec<usize> = scored.iter().take(want).map(|(i, _)| *i).collect();
    picked.sort_unstable();
    let mut out = String::new();
    for i in picked {
        let s = &all[i];
        let line = format!("{}: {}", s.speaker, s.text);
        let room = MAX_CHARS.saturating_sub(out.chars().count() + 1);
        if room < 20 {
            break;
        }
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&cut(&line, room));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<Line<'a>> {
        pairs
            .iter()
            .map(|(speaker, text)| Line { speaker, text })
            .collect()
    }

    #[test]
    fn picks_the_informative_sentences_of_a_meeting_in_order() {
        let t = lines(&[
            ("Alice", "Hi everyone. Can you hear me?"),
            ("Bob", "Yes, I can hear you."),
            (
                "Alice",
                "Today we review the quarterly sales targets for the Berlin office.",
            ),
            ("Carol", "Okay."),
            (
                "Bob",
                "The Berlin office missed its sales targets by ten percent this quarter.",
            ),
            ("Carol", "Oh well. Let me think."),
            (
                "Alice",
                "We agree to raise the marketing budget for the Berlin office next quarter.",
            ),
            ("Bob", "Sounds good to me. Bye."),
            ("Carol", "Bye bye."),
        ]);
        let s = summarise(&t).unwrap();
        let picked: Vec<&str> = s.lines().collect();
        assert!(
            picked.contains(
                &"Bob: The Berlin office missed its sales targets by ten percent this quarter."
            ),
            "{s}"
        );
        assert!(
            picked
                .iter()
                .any(|l| l.starts_with("Alice: We agree to raise")),
            "{s}"
        );
        assert!(!s.contains("Can you hear me"), "{s}");
        assert!(!s.contains("Bye"), "{s}");
        assert!(picked.len() <= MAX_SENTENCES);
        // Spoken order is kept.
        let review = s.find("quarterly sales targets");
        let missed = s.find("missed its sales").unwrap();
        let agree = s.find("We agree").unwrap();
        assert!(missed < agree);
        if let Some(r) = review {
            assert!(r < missed);
        }
    }

    #[test]
    fn german_stop_words_are_left_out() {
        let t = lines(&[
            ("Anna", "Ja, das ist so. Und dann ist es eben so."),
            (
                "Ben",
                "Wir müssen die Serverkosten im Rechenzentrum Frankfurt senken.",
            ),
            (
                "Anna",
                "Die Serverkosten im Rechenzentrum Frankfurt steigen jeden Monat.",
            ),
            ("Ben", "Ich bin noch da."),
        ]);
        let s = summarise(&t).unwrap();
        assert!(s.contains("Serverkosten"), "{s}");
        assert!(!s.contains("Ich bin noch da"), "{s}");
        assert!(!s.contains("eben so"), "{s}");
    }

    #[test]
    fn unpunctuated_recogniser_output_is_one_sentence_per_utterance() {
        let t = lines(&[
            ("Alice", "hello hello"),
            (
                "Bob",
                "the database migration finished on the staging cluster tonight",
            ),
            (
                "Alice",
                "the staging cluster database migration needs a rollback plan",
            ),
        ]);
        let s = summarise(&t).unwrap();
        assert!(s.contains("Bob: the database migration finished"), "{s}");
        assert!(!s.contains("hello"), "{s}");
    }

    #[test]
    fn empty_or_stop_word_only_input_has_nothing_to_summarise() {
        assert_eq!(summarise(&[]), None);
        assert_eq!(summarise(&lines(&[("A", ""), ("B", "   ")])), None);
        assert_eq!(
            summarise(&lines(&[
                ("A", "yes yes it is. and so on."),
                ("B", "ja und das ist es. oh okay."),
            ])),
            None
        );
    }

    #[test]
    fn the_summary_is_bounded() {
        let long = "budget ".repeat(2000);
        let many: Vec<(&str, &str)> = (0..100).map(|_| ("Dana", long.as_str())).collect();
        let s = summarise(&lines(&many)).unwrap();
        assert!(s.chars().count() <= MAX_CHARS, "{}", s.chars().count());
        assert!(s.starts_with("Dana: budget"));
        assert!(s.ends_with('…'));
    }
}
