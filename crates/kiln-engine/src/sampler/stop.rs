//! Stop strings: generation ends before the first occurrence of any of them.
//!
//! Stop strings are matched on decoded text rather than on token ids because the same
//! string can be tokenized many ways, and a stop string may straddle several tokens. Text
//! that might be the beginning of a stop string is therefore held back until it either
//! completes the stop string (and is swallowed) or turns out not to (and is released).

/// Result of feeding one chunk of text to a [`StopMatcher`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StopOutcome {
    /// Text that is now safe to show: it cannot be part of a stop string.
    pub emit: String,
    /// A stop string was found; `emit` holds the text before it and nothing more will be
    /// emitted.
    pub stopped: bool,
}

/// Finds the first occurrence of any of several stop strings in a stream of text chunks.
#[derive(Clone, Debug)]
pub struct StopMatcher {
    stops: Vec<String>,
    /// Longest stop string, in bytes: bounds how much text can ever be held back.
    max_len: usize,
    held: String,
    stopped: bool,
}

impl StopMatcher {
    /// Empty stop strings are ignored: they would match before any text at all.
    pub fn new(mut stops: Vec<String>) -> Self {
        stops.retain(|s| !s.is_empty());
        let max_len = stops.iter().map(String::len).max().unwrap_or(0);
        StopMatcher { stops, max_len, held: String::new(), stopped: false }
    }

    /// Feeds the next chunk of decoded text. After a stop, further chunks are ignored.
    pub fn push(&mut self, text: &str) -> StopOutcome {
        if self.stopped {
            return StopOutcome { emit: String::new(), stopped: true };
        }
        self.held.push_str(text);
        // The held text never contains a whole stop string, so any match ends inside the new
        // chunk; the earliest start wins when several stop strings (or overlapping
        // occurrences) match.
        if let Some(start) = self.stops.iter().filter_map(|s| self.held.find(s)).min() {
            self.held.truncate(start);
            self.stopped = true;
            return StopOutcome { emit: std::mem::take(&mut self.held), stopped: true };
        }
        let keep = self.partial_match_len();
        let rest = self.held.split_off(self.held.len() - keep);
        StopOutcome { emit: std::mem::replace(&mut self.held, rest), stopped: false }
    }

    /// Ends the stream: whatever was held back did not turn into a stop string, so it is
    /// released (nothing, if a stop string was hit).
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped
    }

    /// Length of the longest suffix of the held text that is a proper prefix of some stop
    /// string. Only char boundaries are tried: a stop string starts with a whole character.
    fn partial_match_len(&self) -> usize {
        let len = self.held.len();
        let earliest = len.saturating_sub(self.max_len.saturating_sub(1));
        (earliest..len)
            .filter(|&i| self.held.is_char_boundary(i))
            .find(|&i| {
                let tail = &self.held[i..];
                self.stops.iter().any(|s| s.starts_with(tail))
            })
            .map_or(0, |i| len - i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(stops: &[&str]) -> StopMatcher {
        StopMatcher::new(stops.iter().map(|s| s.to_string()).collect())
    }

    /// Feeds chunks and returns (all emitted text, whether it stopped), flushing at the end.
    fn run(stops: &[&str], chunks: &[&str]) -> (String, bool) {
        let mut m = matcher(stops);
        let mut out = String::new();
        let mut stopped = false;
        for chunk in chunks {
            let o = m.push(chunk);
            out.push_str(&o.emit);
            stopped |= o.stopped;
        }
        out.push_str(&m.finish());
        (out, stopped)
    }

    #[test]
    fn no_stops_passes_everything_through_immediately() {
        let mut m = matcher(&[]);
        assert_eq!(m.push("abc").emit, "abc");
        assert_eq!(m.push("").emit, "");
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn stop_within_one_chunk() {
        assert_eq!(run(&["</s>"], &["hello</s>world"]), ("hello".into(), true));
    }

    #[test]
    fn stop_split_across_chunks_is_held_then_swallowed() {
        let mut m = matcher(&["<|im_end|>"]);
        assert_eq!(m.push("Hi <|im").emit, "Hi ");
        assert_eq!(m.push("_e").emit, "");
        let o = m.push("nd|> more");
        assert_eq!(o, StopOutcome { emit: String::new(), stopped: true });
        assert!(m.is_stopped());
        assert_eq!(m.push("ignored"), StopOutcome { emit: String::new(), stopped: true });
        assert_eq!(m.finish(), "");
    }

    #[test]
    fn false_start_is_released() {
        let mut m = matcher(&["STOP"]);
        assert_eq!(m.push("ST").emit, "");
        assert_eq!(m.push("AY").emit, "STAY");
        assert_eq!(m.push("S").emit, "");
        assert_eq!(m.finish(), "S");
    }

    #[test]
    fn one_char_chunks() {
        let chunks: Vec<String> = "abcabd xyz".chars().map(String::from).collect();
        let chunks: Vec<&str> = chunks.iter().map(String::as_str).collect();
        assert_eq!(run(&["abd"], &chunks), ("abc".into(), true));
    }

    #[test]
    fn held_text_restarts_inside_a_false_start() {
        // "aab": after "aa" the first 'a' is released and the match continues at the second.
        assert_eq!(run(&["ab"], &["a", "a", "b"]), ("a".into(), true));
    }

    #[test]
    fn earliest_of_overlapping_stops_wins() {
        assert_eq!(run(&["bcd", "abc"], &["xab", "cd"]), ("x".into(), true));
        // One stop string is a prefix of another: the earliest start decides, not length.
        assert_eq!(run(&["ab", "abc"], &["1a", "bc"]), ("1".into(), true));
        assert_eq!(run(&["cd", "abcde"], &["ab", "cd"]), ("ab".into(), true));
    }

    #[test]
    fn longest_possible_prefix_is_held() {
        let mut m = matcher(&["aaab"]);
        assert_eq!(m.push("xaaa").emit, "x");
        assert_eq!(m.push("a").emit, "a");
        assert_eq!(m.push("b").emit, "");
        assert!(m.is_stopped());
    }

    #[test]
    fn unicode_stop_and_text() {
        assert_eq!(run(&["🛑", "終わり"], &["日本", "語の終", "わり です"]), ("日本語の".into(), true));
        // Same leading byte as the stop string's first char but a different char.
        let mut m = matcher(&["é!"]);
        assert_eq!(m.push("è").emit, "è");
        assert_eq!(m.push("é").emit, "");
        assert_eq!(m.push("é").emit, "é");
        assert_eq!(m.finish(), "é");
    }

    #[test]
    fn empty_stop_strings_are_ignored() {
        assert_eq!(run(&["", "z"], &["abc"]), ("abc".into(), false));
    }
}
