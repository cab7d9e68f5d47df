//! How `kiln run` prints an answer, from a server or from a model in this process.

use std::io::Write;

/// Writes an answer as `ollama run` does: a reasoning model's thinking between
/// "Thinking..." and "...done thinking.", then the answer.
pub struct AnswerWriter<W: Write> {
    out: W,
    show_thinking: bool,
    thinking: bool,
}

impl<W: Write> AnswerWriter<W> {
    pub fn new(out: W, show_thinking: bool) -> AnswerWriter<W> {
        AnswerWriter { out, show_thinking, thinking: false }
    }

    pub fn write(&mut self, content: &str, thinking: &str) -> std::io::Result<()> {
        if self.show_thinking && !thinking.is_empty() {
            if !self.thinking {
                self.thinking = true;
                self.out.write_all(b"Thinking...\n")?;
            }
            self.out.write_all(thinking.as_bytes())?;
        }
        if !content.is_empty() {
            self.end_thinking()?;
            self.out.write_all(content.as_bytes())?;
        }
        self.out.flush()
    }

    fn end_thinking(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.thinking) {
            self.out.write_all(b"\n...done thinking.\n\n")?;
        }
        Ok(())
    }

    /// Closes an unfinished thinking block and ends the answer's line.
    pub fn finish(&mut self) -> std::io::Result<()> {
        self.end_thinking()?;
        writeln!(self.out)?;
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thinking_is_framed_before_the_answer_or_hidden() {
        let write = |show_thinking, pieces: &[(&str, &str)]| {
            let mut w = AnswerWriter::new(Vec::new(), show_thinking);
            for (content, thinking) in pieces {
                w.write(content, thinking).unwrap();
            }
            w.finish().unwrap();
            String::from_utf8(w.out).unwrap()
        };
        let pieces = [("", "Hmm"), ("", ", two."), ("Two", ""), ("!", "")];
        assert_eq!(write(true, &pieces), "Thinking...\nHmm, two.\n...done thinking.\n\nTwo!\n");
        assert_eq!(write(false, &pieces), "Two!\n");
        assert_eq!(write(true, &[("", "unfinished")]), "Thinking...\nunfinished\n...done thinking.\n\n\n");
        assert_eq!(write(true, &[("plain", "")]), "plain\n");
    }
}
