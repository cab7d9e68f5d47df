//! Modelfiles: the recipe `kiln create` reads (FROM, PARAMETER, TEMPLATE, SYSTEM, MESSAGE,
//! LICENSE, ADAPTER, REQUIRES), in Ollama's syntax, and the one `kiln show --modelfile` writes.
//!
//! Instructions are case-insensitive, one per line; `#` starts a comment line; an argument is
//! the rest of the line, a `"quoted string"`, or a `"""triple-quoted"""` block that may span
//! lines and is taken verbatim.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Modelfile line {line}: {message}")]
pub struct ModelfileError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Modelfile {
    pub from: String,
    /// In order; `stop` may repeat.
    pub parameters: Vec<(String, String)>,
    pub template: Option<String>,
    pub system: Option<String>,
    pub adapters: Vec<String>,
    pub licenses: Vec<String>,
    /// (role, content) pairs of a few-shot history.
    pub messages: Vec<(String, String)>,
    pub requires: Option<String>,
}

pub const MESSAGE_ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

/// Splits off the first whitespace-delimited word.
fn first_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], s[i..].trim_start()),
        None => (s, ""),
    }
}

/// Reads `"..."` with `\"`, `\\`, `\n` and `\t` escapes; the quote must close on the line.
fn unquote(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.strip_prefix('"')?.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, &s[i + 2..])),
            '\\' => match chars.next()?.1 {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                other => out.push(other),
            },
            c => out.push(c),
        }
    }
    None
}

struct Lines<'a> {
    lines: Vec<&'a str>,
    next: usize,
}

impl<'a> Lines<'a> {
    /// The argument starting in `rest` (on line number `self.next`), reading further lines
    /// for a triple-quoted block.
    fn argument(&mut self, rest: &'a str) -> Result<String, ModelfileError> {
        let line = self.next;
        let err = |message: &str| ModelfileError { line, message: message.into() };
        if let Some(body) = rest.strip_prefix("\"\"\"") {
            if let Some(end) = body.find("\"\"\"") {
                return trailing_ok(&body[end + 3..], line).map(|_| body[..end].to_string());
            }
            let mut text = format!("{body}\n");
            while self.next < self.lines.len() {
                let l = self.lines[self.next];
                self.next += 1;
                if let Some(end) = l.find("\"\"\"") {
                    text.push_str(&l[..end]);
                    return trailing_ok(&l[end + 3..], self.next).map(|_| text);
                }
                text.push_str(l);
                text.push('\n');
            }
            return Err(err("unterminated \"\"\" block"));
        }
        if rest.starts_with('"') {
            let (text, after) = unquote(rest).ok_or_else(|| err("unterminated quoted string"))?;
            return trailing_ok(after, line).map(|_| text);
        }
        Ok(rest.trim_end().to_string())
    }
}

fn trailing_ok(after: &str, line: usize) -> Result<(), ModelfileError> {
    if after.trim().is_empty() {
        Ok(())
    } else {
        Err(ModelfileError { line, message: format!("unexpected text after the closing quote: {:?}", after.trim()) })
    }
}

impl Modelfile {
    pub fn parse(text: &str) -> Result<Modelfile, ModelfileError> {
        let mut lines = Lines { lines: text.lines().collect(), next: 0 };
        let mut mf = Modelfile::default();
        let mut from_line = None;
        while lines.next < lines.lines.len() {
            let raw = lines.lines[lines.next];
            lines.next += 1;
            let line_no = lines.next;
            let err = |message: String| ModelfileError { line: line_no, message };
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let (word, rest) = first_word(trimmed);
            let instruction = word.to_ascii_uppercase();
            match instruction.as_str() {
                "FROM" | "TEMPLATE" | "SYSTEM" | "ADAPTER" | "LICENSE" | "REQUIRES" => {
                    let arg = lines.argument(rest)?;
                    if arg.is_empty() && instruction != "SYSTEM" && instruction != "TEMPLATE" {
                        return Err(err(format!("{instruction} needs an argument")));
                    }
                    match instruction.as_str() {
                        "FROM" => {
                            if from_line.replace(line_no).is_some() {
                                return Err(err("more than one FROM".into()));
                            }
                            mf.from = arg;
                        }
                        "TEMPLATE" => mf.template = Some(arg),
                        "SYSTEM" => mf.system = Some(arg),
                        "ADAPTER" => mf.adapters.push(arg),
                        "LICENSE" => mf.licenses.push(arg),
                        _ => mf.requires = Some(arg),
                    }
                }
                "PARAMETER" => {
                    let (name, value) = first_word(rest);
                    if name.is_empty() || value.is_empty() {
                        return Err(err("PARAMETER needs a name and a value".into()));
                    }
                    let value = lines.argument(value)?;
                    mf.parameters.push((name.to_ascii_lowercase(), value));
                }
                "MESSAGE" => {
                    let (role, content) = first_word(rest);
                    let role = role.to_ascii_lowercase();
                    if !MESSAGE_ROLES.contains(&role.as_str()) {
                        return Err(err(format!(
                            "MESSAGE role must be one of {}, not {role:?}",
                            MESSAGE_ROLES.join(", ")
                        )));
                    }
                    let content = lines.argument(content)?;
                    mf.messages.push((role, content));
                }
                _ => return Err(err(format!("unknown instruction {word:?}"))),
            }
        }
        if from_line.is_none() {
            return Err(ModelfileError { line: lines.lines.len().max(1), message: "no FROM line".into() });
        }
        Ok(mf)
    }

    /// The Modelfile as text that `parse` reads back to the same value.
    pub fn render(&self) -> String {
        let mut out = format!("FROM {}\n", self.from);
        if let Some(t) = &self.template {
            out.push_str(&format!("TEMPLATE {}\n", quote(t)));
        }
        if let Some(s) = &self.system {
            out.push_str(&format!("SYSTEM {}\n", quote(s)));
        }
        for (k, v) in &self.parameters {
            out.push_str(&format!("PARAMETER {k} {}\n", quote(v)));
        }
        for a in &self.adapters {
            out.push_str(&format!("ADAPTER {a}\n"));
        }
        for (role, content) in &self.messages {
            out.push_str(&format!("MESSAGE {role} {}\n", quote(content)));
        }
        for l in &self.licenses {
            out.push_str(&format!("LICENSE {}\n", quote(l)));
        }
        if let Some(r) = &self.requires {
            out.push_str(&format!("REQUIRES {r}\n"));
        }
        out
    }
}

/// Quotes a value so that `parse` gives it back exactly: a triple-quoted block when it can
/// hold the text, an escaped one-line string otherwise.
fn quote(s: &str) -> String {
    if !s.contains("\"\"\"") && !s.ends_with('"') {
        return format!("\"\"\"{s}\"\"\"");
    }
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_instruction() {
        let text = r#"# a comment
from ./SmolLM2.gguf
PARAMETER temperature 0.2
PARAMETER stop "<|im_end|>"
parameter STOP """
"""
TEMPLATE """{{ if .System }}<|im_start|>system
{{ .System }}<|im_end|>
{{ end }}"""
SYSTEM You are terse.
MESSAGE user "Hi \"there\""
MESSAGE assistant """Hello."""
LICENSE """Apache License
Version 2.0"""
ADAPTER ./lora.gguf
REQUIRES 0.6.0
"#;
        let mf = Modelfile::parse(text).unwrap();
        assert_eq!(mf.from, "./SmolLM2.gguf");
        assert_eq!(
            mf.parameters,
            [("temperature".into(), "0.2".into()), ("stop".into(), "<|im_end|>".into()), ("stop".into(), "\n".into())]
        );
        assert_eq!(
            mf.template.as_deref(),
            Some("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}")
        );
        assert_eq!(mf.system.as_deref(), Some("You are terse."));
        assert_eq!(mf.messages, [("user".into(), "Hi \"there\"".into()), ("assistant".into(), "Hello.".into())]);
        assert_eq!(mf.licenses, ["Apache License\nVersion 2.0"]);
        assert_eq!(mf.adapters, ["./lora.gguf"]);
        assert_eq!(mf.requires.as_deref(), Some("0.6.0"));
    }

    #[test]
    fn render_reads_back_the_same() {
        let mf = Modelfile {
            from: "smollm2:latest".into(),
            parameters: vec![("stop".into(), "\"\"\"x\"".into()), ("num_ctx".into(), "2048".into())],
            template: Some("{{ .Prompt }}\n".into()),
            system: Some("ends with a quote\"".into()),
            messages: vec![("user".into(), "tab\there\\".into())],
            licenses: vec!["MIT".into()],
            ..Modelfile::default()
        };
        assert_eq!(Modelfile::parse(&mf.render()).unwrap(), mf);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("PARAMETER temperature 0.2\n", 1, "no FROM line"),
            ("FROM a\nFROM b\n", 2, "more than one FROM"),
            ("FROM a\nBOGUS x\n", 2, "unknown instruction"),
            ("FROM a\n\nTEMPLATE \"\"\"never closed\nmore\n", 3, "unterminated"),
            ("FROM a\nSYSTEM \"open\n", 2, "unterminated quoted"),
            ("FROM a\nMESSAGE robot hi\n", 2, "MESSAGE role"),
            ("FROM a\nPARAMETER temperature\n", 2, "name and a value"),
            ("FROM a\nSYSTEM \"x\" y\n", 2, "after the closing quote"),
            ("FROM\n", 1, "needs an argument"),
        ];
        for (text, line, want) in cases {
            let e = Modelfile::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(want), "{text:?}: {e}");
        }
    }
}
