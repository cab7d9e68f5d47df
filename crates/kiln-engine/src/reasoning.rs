//! Reasoning models (DeepSeek-R1 and its distills, Qwen 3, QwQ) write their thinking between
//! tags before the answer. This splits a streamed answer into its thinking and its content,
//! as Ollama's `thinking` and OpenAI-style `reasoning_content` fields carry them.

/// The tags around a model's thinking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkingTags {
    pub open: &'static str,
    pub close: &'static str,
}

/// Tag pairs reasoning models use, most common first.
const KNOWN_TAGS: [ThinkingTags; 3] = [
    ThinkingTags { open: "<think>", close: "</think>" },
    ThinkingTags { open: "<thinking>", close: "</thinking>" },
    ThinkingTags { open: "◁think▷", close: "◁/think▷" },
];

impl ThinkingTags {
    /// The tags a chat template shows its model thinking with, if any: a template that places
    /// or strips a thinking block names both of its tags (Ollama infers them from the template
    /// the same way). `None`: the model does not think, as far as its template tells.
    pub fn of_template(template: &str) -> Option<ThinkingTags> {
        KNOWN_TAGS.into_iter().find(|t| template.contains(t.open) && template.contains(t.close))
    }
}

/// Where the splitter is in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing but whitespace yet: a thinking block may still open.
    Start,
    /// Inside the thinking block; `fresh`: nothing but whitespace written to it yet.
    Thinking { fresh: bool },
    /// Past the thinking block; `fresh`: nothing but whitespace written to the content yet.
    Content { fresh: bool },
}

/// One piece of a split answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    pub thinking: String,
    pub content: String,
}

/// Splits streamed text into thinking and content. Only a block at the very start counts
/// (a model that mentions the tag later is quoting it); whitespace right after either tag is
/// dropped. Text that may be the beginning of a tag is held back until the next piece tells.
#[derive(Debug, Clone)]
pub struct ThinkingSplitter {
    tags: ThinkingTags,
    phase: Phase,
    held: String,
}

impl ThinkingSplitter {
    /// `prompt_opened`: the prompt itself ends with the opening tag (templates that make the
    /// model think by starting its block), so the answer begins inside the thinking.
    pub fn new(tags: ThinkingTags, prompt_opened: bool) -> ThinkingSplitter {
        let phase = if prompt_opened { Phase::Thinking { fresh: true } } else { Phase::Start };
        ThinkingSplitter { tags, phase, held: String::new() }
    }

    /// Whether the prompt `tokens` leave the model inside its thinking block (templates that
    /// make the model think end the prompt with the opening tag); only the last few tokens
    /// are decoded.
    pub fn prompt_opens(tags: ThinkingTags, tok: &kiln_tokenizer::Tokenizer, tokens: &[u32]) -> bool {
        text_opens(tags, &tok.decode(&tokens[tokens.len().saturating_sub(8)..], true))
    }

    /// Takes the next piece of the answer and returns what can be told apart so far.
    pub fn push(&mut self, text: &str) -> Split {
        self.held.push_str(text);
        let mut out = Split::default();
        loop {
            match self.phase {
                Phase::Start => {
                    let rest = self.held.trim_start();
                    if rest.is_empty() {
                        return out;
                    }
                    if let Some(after) = rest.strip_prefix(self.tags.open) {
                        self.held = after.to_string();
                        self.phase = Phase::Thinking { fresh: true };
                    } else if self.tags.open.starts_with(rest) {
                        return out;
                    } else {
                        self.phase = Phase::Content { fresh: false };
                    }
                }
                Phase::Thinking { fresh } => {
                    let text = if fresh { self.held.trim_start() } else { &self.held[..] };
                    if let Some(at) = text.find(self.tags.close) {
                        out.thinking.push_str(&text[..at]);
                        self.held = text[at + self.tags.close.len()..].to_string();
                        self.phase = Phase::Content { fresh: true };
                        continue;
                    }
                    let keep = partial_tag_len(text, self.tags.close);
                    let ready = &text[..text.len() - keep];
                    out.thinking.push_str(ready);
                    let fresh = fresh && ready.is_empty();
                    self.held = text[text.len() - keep..].to_string();
                    self.phase = Phase::Thinking { fresh };
                    return out;
                }
                Phase::Content { fresh } => {
                    let text = if fresh { self.held.trim_start() } else { &self.held[..] };
                    out.content.push_str(text);
                    self.phase = Phase::Content { fresh: fresh && text.is_empty() };
                    self.held.clear();
                    return out;
                }
            }
        }
    }

    /// The end of the answer: whatever was held back is what it looked like.
    pub fn finish(&mut self) -> Split {
        let held = std::mem::take(&mut self.held);
        match self.phase {
            Phase::Thinking { .. } => Split { thinking: held, content: String::new() },
            Phase::Start | Phase::Content { .. } => Split { thinking: String::new(), content: held },
        }
    }
}

/// Whether rendered prompt text ends with the opening tag (trailing whitespace aside).
fn text_opens(tags: ThinkingTags, prompt: &str) -> bool {
    prompt.trim_end().ends_with(tags.open)
}

/// Bytes at the end of `text` that begin `tag` (so may be a tag cut in two by streaming).
pub(crate) fn partial_tag_len(text: &str, tag: &str) -> usize {
    (1..tag.len().min(text.len() + 1))
        .rev()
        .find(|&n| text.is_char_boundary(text.len() - n) && tag.starts_with(&text[text.len() - n..]))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const THINK: ThinkingTags = KNOWN_TAGS[0];

    /// Splits `answer` fed in pieces of `n` characters.
    fn split_in_pieces(answer: &str, n: usize, prompt_opened: bool) -> Split {
        let mut s = ThinkingSplitter::new(THINK, prompt_opened);
        let mut all = Split::default();
        let chars: Vec<char> = answer.chars().collect();
        for piece in chars.chunks(n).map(|c| c.iter().collect::<String>()).chain([String::new()]) {
            let part = if piece.is_empty() { s.finish() } else { s.push(&piece) };
            all.thinking.push_str(&part.thinking);
            all.content.push_str(&part.content);
        }
        all
    }

    fn check(answer: &str, prompt_opened: bool, thinking: &str, content: &str) {
        for n in 1..=answer.chars().count().max(1) {
            let got = split_in_pieces(answer, n, prompt_opened);
            assert_eq!(
                (got.thinking.as_str(), got.content.as_str()),
                (thinking, content),
                "{answer:?} in pieces of {n}"
            );
        }
    }

    #[test]
    fn a_leading_block_is_thinking_and_the_rest_content() {
        check("<think>\nLet me see: 2+2.\n</think>\n\nIt is 4.", false, "Let me see: 2+2.\n", "It is 4.");
        check("  <think>a < b</think>ok", false, "a < b", "ok");
    }

    #[test]
    fn a_prompt_that_opened_the_block_starts_inside_it() {
        check("Hmm, 4.</think>\n\nFour.", true, "Hmm, 4.", "Four.");
        check("\n\n</think>\n\nDirect.", true, "", "Direct.");
    }

    #[test]
    fn text_without_a_leading_block_is_all_content() {
        check("Hello <think>not at the start</think>", false, "", "Hello <think>not at the start</think>");
        check("<thin air", false, "", "<thin air");
        check("", false, "", "");
    }

    #[test]
    fn an_unclosed_block_is_all_thinking() {
        check("<think>still going </thi", false, "still going </thi", "");
        check("é</think>ü", true, "é", "ü");
    }

    #[test]
    fn tags_are_found_in_templates_that_use_them() {
        let qwen3 =
            "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}";
        assert_eq!(ThinkingTags::of_template(qwen3), Some(THINK));
        let r1 = "{% set content = content.split('</think>')[-1] %}<｜Assistant｜><think>\\n";
        assert_eq!(ThinkingTags::of_template(r1), Some(THINK));
        assert_eq!(ThinkingTags::of_template("{{ .Prompt }}"), None);
        assert!(text_opens(THINK, "<｜Assistant｜><think>\n"));
        assert!(!text_opens(THINK, "<|im_start|>assistant\n"));
    }

    #[test]
    fn partial_tags_are_measured_on_character_boundaries() {
        assert_eq!(partial_tag_len("abc</th", "</think>"), 4);
        assert_eq!(partial_tag_len("abc<", "</think>"), 1);
        assert_eq!(partial_tag_len("abc", "</think>"), 0);
        assert_eq!(partial_tag_len("x◁/th", "◁/think▷"), "◁/th".len());
    }
}
