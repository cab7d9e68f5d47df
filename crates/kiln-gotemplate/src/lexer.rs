//! Splits template source into text and action tokens, following Go's
//! text/template lexer: `{{- ` / ` -}}` trim markers (the space is required),
//! comments that must touch their delimiters, and Go literal syntax.

use crate::error::{Position, TemplateError};

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    Text(String),
    LeftDelim,
    RightDelim,
    Space,
    Ident(String),
    Field(String),
    Variable(String),
    Str(String),
    Char(char),
    Number(String),
    Dot,
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
    Eof,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset in the source, for error positions.
    pub pos: usize,
}

/// The characters Go's lexer treats as space, both for trimming and between operands.
pub(crate) fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_alnum(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, TemplateError> {
    Lexer { src, pos: 0, tokens: Vec::new() }.run()
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    tokens: Vec<Token>,
}

impl<'a> Lexer<'a> {
    fn err(&self, at: usize, message: impl Into<String>) -> TemplateError {
        TemplateError::Parse { pos: Position::locate(self.src, at), message: message.into() }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn emit(&mut self, tok: Tok, pos: usize) {
        self.tokens.push(Token { tok, pos });
    }

    fn run(mut self) -> Result<Vec<Token>, TemplateError> {
        let mut trim_next_text = false;
        loop {
            let start = self.pos;
            let delim = self.rest().find("{{").map(|i| self.pos + i);
            let end = delim.unwrap_or(self.src.len());
            let mut text = &self.src[start..end];
            if trim_next_text {
                text = text.trim_start_matches(is_space);
            }
            let left_trim = delim.is_some_and(|d| has_left_trim(&self.src[d + 2..]));
            if left_trim {
                text = text.trim_end_matches(is_space);
            }
            if !text.is_empty() {
                self.emit(Tok::Text(text.to_string()), start);
            }
            let Some(d) = delim else { break };
            self.pos = d + 2 + if left_trim { 2 } else { 0 };
            trim_next_text = self.action(d)?;
        }
        self.emit(Tok::Eof, self.src.len());
        Ok(self.tokens)
    }

    /// Whether a right delimiter (with or without trim marker) starts here.
    fn at_right_delim(&self) -> Option<bool> {
        let rest = self.rest();
        if has_right_trim(rest) && rest[2..].starts_with("}}") {
            Some(true)
        } else if rest.starts_with("}}") {
            Some(false)
        } else {
            None
        }
    }

    /// Lexes one action starting after its left delimiter; returns whether the
    /// following text must be left-trimmed.
    fn action(&mut self, delim_pos: usize) -> Result<bool, TemplateError> {
        if self.rest().starts_with("/*") {
            return self.comment(delim_pos);
        }
        self.emit(Tok::LeftDelim, delim_pos);
        let mut paren_depth = 0usize;
        loop {
            if let Some(trim) = self.at_right_delim() {
                if paren_depth > 0 {
                    return Err(self.err(self.pos, "unclosed left paren"));
                }
                self.emit(Tok::RightDelim, self.pos);
                self.pos += if trim { 4 } else { 2 };
                return Ok(trim);
            }
            let at = self.pos;
            let Some(c) = self.peek() else {
                return Err(self.err(delim_pos, "unclosed action"));
            };
            match c {
                c if is_space(c) => {
                    while self.peek().is_some_and(is_space) && self.at_right_delim().is_none() {
                        self.pos += 1;
                    }
                    self.emit(Tok::Space, at);
                }
                '"' => {
                    let s = self.quoted()?;
                    self.emit(Tok::Str(s), at);
                }
                '`' => {
                    let Some(len) = self.rest()[1..].find('`') else {
                        return Err(self.err(at, "unterminated raw quoted string"));
                    };
                    let s = self.rest()[1..1 + len].to_string();
                    self.pos += len + 2;
                    self.emit(Tok::Str(s), at);
                }
                '\'' => {
                    let ch = self.char_constant()?;
                    self.emit(Tok::Char(ch), at);
                }
                '$' => {
                    self.pos += 1;
                    let name = self.word();
                    self.emit(Tok::Variable(format!("${name}")), at);
                }
                '.' => {
                    if self.rest()[1..].starts_with(|c: char| c.is_ascii_digit()) {
                        self.number()?;
                    } else {
                        self.pos += 1;
                        let name = self.word();
                        let tok = if name.is_empty() { Tok::Dot } else { Tok::Field(name) };
                        self.emit(tok, at);
                    }
                }
                '+' | '-' | '0'..='9' => self.number()?,
                ':' => {
                    if !self.rest().starts_with(":=") {
                        return Err(self.err(at, "expected :="));
                    }
                    self.pos += 2;
                    self.emit(Tok::Declare, at);
                }
                c if is_alnum(c) => {
                    let word = self.word();
                    self.emit(Tok::Ident(word), at);
                }
                _ => {
                    self.pos += c.len_utf8();
                    let tok = match c {
                        '(' => {
                            paren_depth += 1;
                            Tok::LParen
                        }
                        ')' => {
                            if paren_depth == 0 {
                                return Err(self.err(at, "unexpected right paren"));
                            }
                            paren_depth -= 1;
                            Tok::RParen
                        }
                        '|' => Tok::Pipe,
                        '=' => Tok::Assign,
                        ',' => Tok::Comma,
                        _ => return Err(self.err(at, format!("unrecognized character in action: {c:?}"))),
                    };
                    self.emit(tok, at);
                }
            }
        }
    }

    fn comment(&mut self, delim_pos: usize) -> Result<bool, TemplateError> {
        let Some(len) = self.rest().find("*/") else {
            return Err(self.err(delim_pos, "unclosed comment"));
        };
        self.pos += len + 2;
        match self.at_right_delim() {
            Some(trim) => {
                self.pos += if trim { 4 } else { 2 };
                Ok(trim)
            }
            None => Err(self.err(delim_pos, "comment ends before closing delimiter")),
        }
    }

    fn word(&mut self) -> String {
        let len = self.rest().find(|c: char| !is_alnum(c)).unwrap_or(self.rest().len());
        let w = self.rest()[..len].to_string();
        self.pos += len;
        w
    }

    fn number(&mut self) -> Result<(), TemplateError> {
        let at = self.pos;
        let rest = self.rest();
        let mut len = 0;
        let bytes = rest.as_bytes();
        let mut exp_allowed = true;
        if matches!(bytes.first(), Some(b'+' | b'-')) {
            len += 1;
        }
        if bytes.get(len) == Some(&b'0') && matches!(bytes.get(len + 1), Some(b'x' | b'X' | b'o' | b'O' | b'b' | b'B'))
        {
            len += 2;
            exp_allowed = false;
        }
        while let Some(&b) = bytes.get(len) {
            let sign_after_exp = matches!(b, b'+' | b'-') && exp_allowed && matches!(bytes[len - 1], b'e' | b'E');
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || sign_after_exp {
                len += 1;
            } else {
                break;
            }
        }
        let text = &rest[..len];
        if !text.bytes().any(|b| b.is_ascii_digit()) {
            return Err(self.err(at, format!("bad number syntax: {text:?}")));
        }
        self.pos += len;
        self.emit(Tok::Number(text.to_string()), at);
        Ok(())
    }

    fn quoted(&mut self) -> Result<String, TemplateError> {
        let at = self.pos;
        let mut chars = self.rest().char_indices().skip(1);
        let mut out = String::new();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.pos += i + 1;
                    return Ok(out);
                }
                '\n' => break,
                '\\' => {
                    let (_, e) = chars.next().ok_or_else(|| self.err(at, "unterminated quoted string"))?;
                    out.push(self.escape(e, &mut chars, at, '"')?);
                }
                c => out.push(c),
            }
        }
        Err(self.err(at, "unterminated quoted string"))
    }

    fn char_constant(&mut self) -> Result<char, TemplateError> {
        let at = self.pos;
        let mut chars = self.rest().char_indices().skip(1);
        let c = match chars.next() {
            Some((_, '\\')) => {
                let (_, e) = chars.next().ok_or_else(|| self.err(at, "unterminated character constant"))?;
                self.escape(e, &mut chars, at, '\'')?
            }
            Some((_, c)) if c != '\'' && c != '\n' => c,
            _ => return Err(self.err(at, "malformed character constant")),
        };
        match chars.next() {
            Some((i, '\'')) => {
                self.pos += i + 1;
                Ok(c)
            }
            _ => Err(self.err(at, "unterminated character constant")),
        }
    }

    /// Decodes the Go escape sequence whose introducing character is `e`.
    fn escape(
        &self,
        e: char,
        chars: &mut impl Iterator<Item = (usize, char)>,
        at: usize,
        quote: char,
    ) -> Result<char, TemplateError> {
        let simple = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' => Some('\\'),
            c if c == quote => Some(c),
            _ => None,
        };
        if let Some(c) = simple {
            return Ok(c);
        }
        let (digits, radix) = match e {
            'x' => (2, 16),
            'u' => (4, 16),
            'U' => (8, 16),
            '0'..='7' => (2, 8),
            _ => return Err(self.err(at, format!("invalid escape sequence \\{e}"))),
        };
        let mut code: u32 = if radix == 8 { e.to_digit(8).unwrap_or(0) } else { 0 };
        for _ in 0..digits {
            let d = chars.next().and_then(|(_, c)| c.to_digit(radix));
            code = code * radix + d.ok_or_else(|| self.err(at, "invalid escape sequence"))?;
        }
        // Go allows \x and octal escapes to produce raw bytes; only the ASCII
        // range maps onto a char unambiguously, which covers real templates.
        if radix == 8 && code > 255 || matches!(e, 'x' | '0'..='7') && code > 127 {
            return Err(self.err(at, "non-ASCII byte escape is not supported"));
        }
        char::from_u32(code).ok_or_else(|| self.err(at, "escape sequence is invalid Unicode code point"))
    }
}

fn has_left_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && b[0] == b'-' && is_space(b[1] as char)
}

fn has_right_trim(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 2 && is_space(b[0] as char) && b[1] == b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(src: &str) -> Vec<Tok> {
        lex(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn text_and_simple_action() {
        assert_eq!(
            toks("a{{ .B }}c"),
            vec![
                Tok::Text("a".into()),
                Tok::LeftDelim,
                Tok::Space,
                Tok::Field("B".into()),
                Tok::Space,
                Tok::RightDelim,
                Tok::Text("c".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn trim_markers_need_the_space() {
        assert_eq!(toks(" a \n{{- 1 -}}\n b ")[0], Tok::Text(" a".into()));
        assert_eq!(toks(" a \n{{- 1 -}}\n b ")[4], Tok::Text("b ".into()));
        // `{{-1}}` is the number -1, not a trim marker.
        assert_eq!(toks("x {{-1}}")[..3], [Tok::Text("x ".into()), Tok::LeftDelim, Tok::Number("-1".into())]);
    }

    #[test]
    fn comments_vanish_and_can_trim() {
        assert_eq!(toks("a {{- /* c */ -}} b"), vec![Tok::Text("a".into()), Tok::Text("b".into()), Tok::Eof]);
        assert!(lex("{{/* c */ }}").is_err());
        assert!(lex("{{/* c ").is_err());
    }

    #[test]
    fn literals() {
        assert_eq!(
            toks(r#"{{"a\n\u00e9\"" `r\n` 'x' '\n' 0x1F 1.5e-3 $v $}}"#)[1..16],
            [
                Tok::Str("a\né\"".into()),
                Tok::Space,
                Tok::Str("r\\n".into()),
                Tok::Space,
                Tok::Char('x'),
                Tok::Space,
                Tok::Char('\n'),
                Tok::Space,
                Tok::Number("0x1F".into()),
                Tok::Space,
                Tok::Number("1.5e-3".into()),
                Tok::Space,
                Tok::Variable("$v".into()),
                Tok::Space,
                Tok::Variable("$".into()),
            ]
        );
    }

    #[test]
    fn errors_are_positioned() {
        let Err(TemplateError::Parse { pos, .. }) = lex("ab\n  {{ \"x") else { panic!() };
        assert_eq!(pos, Position { line: 2, column: 6 });
        assert!(lex("{{ .A ").is_err());
        assert!(lex("{{ # }}").is_err());
        assert!(lex("{{ ) }}").is_err());
    }
}
