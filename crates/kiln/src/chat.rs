//! The interactive chat, whatever answers it: a model file in this process or a server.

use anyhow::Result;
use std::io::{BufRead, Write};
use std::time::Duration;

/// Reads one user message: a line, or several between `"""` markers. `None` at end of input.
/// With `tty`, continuation lines are prompted with `... ` as Ollama does.
fn read_message(input: &mut impl BufRead, tty: bool) -> Result<Option<String>> {
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let first = line.trim_end_matches(['\n', '\r']);
    let Some(rest) = first.strip_prefix("\"\"\"") else {
        return Ok(Some(first.to_string()));
    };
    let mut text = String::new();
    if let Some(done) = rest.strip_suffix("\"\"\"") {
        return Ok(Some(done.to_string()));
    }
    text.push_str(rest);
    loop {
        if tty {
            eprint!("... ");
            let _ = std::io::stderr().flush();
        }
        let mut more = String::new();
        if input.read_line(&mut more)? == 0 {
            return Ok(Some(text));
        }
        let more = more.trim_end_matches(['\n', '\r']);
        if !text.is_empty() {
            text.push('\n');
        }
        if let Some(last) = more.strip_suffix("\"\"\"") {
            text.push_str(last);
            return Ok(Some(text));
        }
        text.push_str(more);
    }
}

/// What answers the chat.
pub trait ChatSession {
    /// Answers one user message, printing the answer as it comes, and keeps both in the
    /// history. A failure that leaves the session usable is printed here, not returned.
    fn say(&mut self, message: String) -> Result<()>;
    /// Forgets the conversation (the system message stays).
    fn clear(&mut self);
}

/// The interactive chat on stdin: `/bye` or end of input leaves.
pub fn chat_loop(session: &mut impl ChatSession) -> Result<()> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let tty = std::io::IsTerminal::is_terminal(&std::io::stdin());
    if tty {
        eprintln!("Chat with the model. Type /? for help, /bye to leave; wrap several lines in \"\"\".");
    }
    loop {
        if tty {
            eprint!(">>> ");
            let _ = std::io::stderr().flush();
        }
        let Some(message) = read_message(&mut input, tty)? else { break };
        match message.trim() {
            "/bye" => break,
            "" => continue,
            "/clear" => {
                session.clear();
                eprintln!("Cleared session context");
            }
            "/?" | "/help" => {
                eprintln!("Commands:\n  /clear  forget the conversation\n  /bye    leave\n  \"\"\"     begin or end a multi-line message");
            }
            _ => session.say(message)?,
        }
    }
    Ok(())
}

/// How long an answer took, as `ollama run --verbose` reports it.
#[derive(Debug)]
pub struct Timings {
    pub total: Duration,
    pub load: Duration,
    pub prompt_eval_count: usize,
    pub prompt_eval_duration: Duration,
    pub eval_count: usize,
    pub eval_duration: Duration,
}

impl Timings {
    /// Prints the timings to stderr the way `ollama run --verbose` does.
    pub fn print(&self) {
        let rate = |n: usize, d: Duration| if d.is_zero() { 0.0 } else { n as f64 / d.as_secs_f64() };
        eprintln!("total duration:       {:?}", self.total);
        eprintln!("load duration:        {:?}", self.load);
        eprintln!("prompt eval count:    {} token(s)", self.prompt_eval_count);
        eprintln!("prompt eval duration: {:?}", self.prompt_eval_duration);
        eprintln!("prompt eval rate:     {:.2} tokens/s", rate(self.prompt_eval_count, self.prompt_eval_duration));
        eprintln!("eval count:           {} token(s)", self.eval_count);
        eprintln!("eval duration:        {:?}", self.eval_duration);
        eprintln!("eval rate:            {:.2} tokens/s", rate(self.eval_count, self.eval_duration));
    }
}

#[cfg(test)]
mod tests {
    use super::read_message;

    #[test]
    fn reads_single_and_multi_line_messages() {
        let mut input = "hello\n\"\"\"first\nsecond\nthird\"\"\"\n\"\"\"inline\"\"\"\n".as_bytes();
        assert_eq!(read_message(&mut input, false).unwrap().as_deref(), Some("hello"));
        assert_eq!(read_message(&mut input, false).unwrap().as_deref(), Some("first\nsecond\nthird"));
        assert_eq!(read_message(&mut input, false).unwrap().as_deref(), Some("inline"));
        assert_eq!(read_message(&mut input, false).unwrap(), None);
    }
}
