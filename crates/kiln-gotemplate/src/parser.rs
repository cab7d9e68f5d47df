//! Builds the parse tree from tokens with Go's rules: functions and variables
//! must be known at parse time, `else if` shares its `{{end}}`, `define` only
//! at top level, `break`/`continue` only inside `range`.

use std::collections::BTreeMap;

use crate::ast::{Arg, Branch, Command, Literal, Node, Pipeline};
use crate::error::{Position, TemplateError};
use crate::lexer::{lex, Tok, Token};

/// A parsed template: the main body plus the templates it defines.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tree {
    pub root: Vec<Node>,
    pub defines: BTreeMap<String, Vec<Node>>,
}

const KEYWORDS: [&str; 10] = ["block", "break", "continue", "define", "else", "end", "if", "range", "template", "with"];

pub(crate) fn parse(src: &str, is_function: &dyn Fn(&str) -> bool) -> Result<Tree, TemplateError> {
    let tokens = lex(src)?;
    let mut p =
        Parser { src, tokens, idx: 0, vars: vec!["$".into()], range_depth: 0, is_function, defines: BTreeMap::new() };
    let root = p.top_level()?;
    Ok(Tree { root, defines: p.defines })
}

/// How an item list ended.
enum ListEnd {
    End,
    Else(usize),
    Eof,
}

struct Parser<'a> {
    src: &'a str,
    tokens: Vec<Token>,
    idx: usize,
    vars: Vec<String>,
    range_depth: usize,
    is_function: &'a dyn Fn(&str) -> bool,
    defines: BTreeMap<String, Vec<Node>>,
}

impl Parser<'_> {
    fn err<T>(&self, at: usize, message: impl Into<String>) -> Result<T, TemplateError> {
        Err(TemplateError::Parse { pos: Position::locate(self.src, at), message: message.into() })
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.idx.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        self.idx = (self.idx + 1).min(self.tokens.len());
        t
    }

    fn skip_space(&mut self) {
        while self.peek().tok == Tok::Space {
            self.idx += 1;
        }
    }

    fn next_non_space(&mut self) -> Token {
        self.skip_space();
        self.next()
    }

    fn peek_non_space(&mut self) -> Tok {
        self.skip_space();
        self.peek().tok.clone()
    }

    fn keyword(tok: &Tok) -> Option<&str> {
        match tok {
            Tok::Ident(w) if KEYWORDS.contains(&w.as_str()) => Some(w),
            _ => None,
        }
    }

    fn expect_right_delim(&mut self, context: &str) -> Result<(), TemplateError> {
        let t = self.next_non_space();
        match t.tok {
            Tok::RightDelim => Ok(()),
            other => self.err(t.pos, format!("unexpected {} in {context}", describe(&other))),
        }
    }

    fn top_level(&mut self) -> Result<Vec<Node>, TemplateError> {
        let mut root = Vec::new();
        loop {
            if self.peek().tok == Tok::LeftDelim {
                let save = self.idx;
                self.idx += 1;
                if Self::keyword(&self.peek_non_space()) == Some("define") {
                    let t = self.next();
                    self.define(t.pos)?;
                    continue;
                }
                self.idx = save;
            }
            let (mut nodes, end) = self.item_list_until_eof()?;
            root.append(&mut nodes);
            if end {
                return Ok(root);
            }
        }
    }

    /// Parses top-level items up to EOF or the next `{{define`; returns true at EOF.
    fn item_list_until_eof(&mut self) -> Result<(Vec<Node>, bool), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::Eof => return Ok((nodes, true)),
                Tok::LeftDelim => {
                    let save = self.idx;
                    self.idx += 1;
                    let is_define = Self::keyword(&self.peek_non_space()) == Some("define");
                    self.idx = save;
                    if is_define {
                        return Ok((nodes, false));
                    }
                    match self.action(t.pos)? {
                        Ok(node) => nodes.push(node),
                        Err(_) => return self.err(t.pos, "unexpected {{end}} or {{else}}"),
                    }
                }
                _ => nodes.push(self.text()),
            }
        }
    }

    fn text(&mut self) -> Node {
        match self.next().tok {
            Tok::Text(s) => Node::Text(s),
            _ => unreachable!("text() is only called on text tokens"),
        }
    }

    fn define(&mut self, pos: usize) -> Result<(), TemplateError> {
        let name = self.template_name("define clause")?;
        self.expect_right_delim("define clause")?;
        let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let (list, end) = self.item_list()?;
        self.vars = saved_vars;
        if !matches!(end, ListEnd::End) {
            return self.err(pos, "unexpected EOF in define clause");
        }
        self.add_define(pos, name, list)
    }

    fn add_define(&mut self, pos: usize, name: String, list: Vec<Node>) -> Result<(), TemplateError> {
        let is_empty = |l: &[Node]| l.iter().all(|n| matches!(n, Node::Text(t) if t.trim().is_empty()));
        match self.defines.get(&name) {
            Some(old) if !is_empty(old) && !is_empty(&list) => {
                self.err(pos, format!("template: multiple definition of template {name:?}"))
            }
            Some(_) if is_empty(&list) => Ok(()),
            _ => {
                self.defines.insert(name, list);
                Ok(())
            }
        }
    }

    /// Parses nodes until `{{end}}`, `{{else` or EOF.
    fn item_list(&mut self) -> Result<(Vec<Node>, ListEnd), TemplateError> {
        let mut nodes = Vec::new();
        loop {
            let t = self.peek().clone();
            match t.tok {
                Tok::Eof => return Ok((nodes, ListEnd::Eof)),
                Tok::LeftDelim => match self.action(t.pos)? {
                    Ok(node) => nodes.push(node),
                    Err(end) => return Ok((nodes, end)),
                },
                _ => nodes.push(self.text()),
            }
        }
    }

    /// Parses one action; `Err(ListEnd)` reports an `{{end}}` or `{{else`.
    fn action(&mut self, pos: usize) -> Result<Result<Node, ListEnd>, TemplateError> {
        self.next(); // the left delimiter
        let t = self.peek_non_space();
        let kw_pos = self.peek().pos;
        let Some(kw) = Self::keyword(&t).map(str::to_string) else {
            return Ok(Ok(Node::Action(self.pipeline("command", Tok::RightDelim)?)));
        };
        self.next();
        let node = match kw.as_str() {
            "end" => {
                self.expect_right_delim("end")?;
                return Ok(Err(ListEnd::End));
            }
            "else" => {
                // `else if` / `else with` keep the rest of the action for the caller.
                if !matches!(Self::keyword(&self.peek_non_space()), Some("if" | "with")) {
                    self.expect_right_delim("else")?;
                }
                return Ok(Err(ListEnd::Else(kw_pos)));
            }
            "if" => Node::If(self.control("if")?),
            "with" => Node::With(self.control("with")?),
            "range" => {
                self.range_depth += 1;
                let b = self.control("range");
                self.range_depth -= 1;
                Node::Range(b?)
            }
            "break" | "continue" => {
                if self.range_depth == 0 {
                    return self.err(kw_pos, format!("{{{{{kw}}}}} outside {{{{range}}}}"));
                }
                self.expect_right_delim(&kw)?;
                if kw == "break" {
                    Node::Break(kw_pos)
                } else {
                    Node::Continue(kw_pos)
                }
            }
            "template" => {
                let name = self.template_name("template clause")?;
                let pipe = if self.peek_non_space() == Tok::RightDelim {
                    self.next();
                    None
                } else {
                    Some(self.pipeline("template clause", Tok::RightDelim)?)
                };
                Node::Template { pos: kw_pos, name, pipe }
            }
            "block" => {
                let name = self.template_name("block clause")?;
                let pipe = self.pipeline("block clause", Tok::RightDelim)?;
                let saved_vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
                let saved_depth = std::mem::take(&mut self.range_depth);
                let body = self.item_list();
                self.vars = saved_vars;
                self.range_depth = saved_depth;
                let (list, end) = body?;
                if !matches!(end, ListEnd::End) {
                    return self.err(kw_pos, "unexpected EOF in block clause");
                }
                self.add_define(kw_pos, name.clone(), list)?;
                Node::Template { pos: kw_pos, name, pipe: Some(pipe) }
            }
            _ => return self.err(pos, format!("unexpected {kw:?} in command")),
        };
        Ok(Ok(node))
    }

    fn template_name(&mut self, context: &str) -> Result<String, TemplateError> {
        let t = self.next_non_space();
        match t.tok {
            Tok::Str(s) => Ok(s),
            other => self.err(t.pos, format!("unexpected {} in {context}", describe(&other))),
        }
    }

    /// Parses `pipeline }} list [{{else}} list] {{end}}` for if/with/range.
    fn control(&mut self, context: &str) -> Result<Branch, TemplateError> {
        let mark = self.vars.len();
        let result = self.control_inner(context);
        self.vars.truncate(mark);
        result
    }

    fn control_inner(&mut self, context: &str) -> Result<Branch, TemplateError> {
        let start = self.peek().pos;
        let pipe = self.pipeline(context, Tok::RightDelim)?;
        let (list, end) = self.item_list()?;
        let else_list = match end {
            ListEnd::Eof => return self.err(start, format!("unexpected EOF in {context}")),
            ListEnd::End => None,
            ListEnd::Else(pos) => {
                let chained = Self::keyword(&self.peek_non_space()).map(str::to_string);
                match chained.as_deref() {
                    // The chained control consumes the single shared {{end}}.
                    Some("if") if context == "if" => {
                        self.next();
                        Some(vec![Node::If(self.control("if")?)])
                    }
                    Some("with") if context == "with" => {
                        self.next();
                        Some(vec![Node::With(self.control("with")?)])
                    }
                    Some(other @ ("if" | "with")) => {
                        return self.err(pos, format!("unexpected {other:?} after else in {context}"));
                    }
                    _ => {
                        let (list, end) = self.item_list()?;
                        if !matches!(end, ListEnd::End) {
                            return self.err(pos, format!("expected end after else in {context}"));
                        }
                        Some(list)
                    }
                }
            }
        };
        Ok(Branch { pipe, list, else_list })
    }

    fn pipeline(&mut self, context: &str, end: Tok) -> Result<Pipeline, TemplateError> {
        let pos = self.peek().pos;
        let mut pipe = Pipeline { pos, decl: Vec::new(), is_assign: false, cmds: Vec::new() };
        self.declarations(context, &mut pipe)?;
        loop {
            let t = self.next_non_space();
            match t.tok {
                ref tok if *tok == end => {
                    if pipe.cmds.is_empty() {
                        return self.err(t.pos, format!("missing value for {context}"));
                    }
                    if let Some(i) = pipe
                        .cmds
                        .iter()
                        .skip(1)
                        .position(|c| matches!(c.args[0], Arg::Dot | Arg::Nil | Arg::Literal(_)))
                    {
                        return self.err(t.pos, format!("non executable command in pipeline stage {}", i + 2));
                    }
                    return Ok(pipe);
                }
                Tok::Ident(_)
                | Tok::Field(_)
                | Tok::Variable(_)
                | Tok::Str(_)
                | Tok::Char(_)
                | Tok::Number(_)
                | Tok::Dot
                | Tok::LParen => {
                    self.idx -= 1;
                    pipe.cmds.push(self.command(&end)?);
                }
                other => return self.err(t.pos, format!("unexpected {} in {context}", describe(&other))),
            }
        }
    }

    /// Parses an optional `$x :=`, `$x =` or (in range) `$i, $e :=` prefix.
    fn declarations(&mut self, context: &str, pipe: &mut Pipeline) -> Result<(), TemplateError> {
        let save = self.idx;
        let Tok::Variable(first) = self.peek_non_space() else { return Ok(()) };
        self.next();
        let mut names = vec![first];
        if self.peek_non_space() == Tok::Comma {
            if context != "range" {
                return self.err(self.peek().pos, format!("too many declarations in {context}"));
            }
            self.next();
            match self.next_non_space().tok {
                Tok::Variable(v) => names.push(v),
                _ => return self.err(self.peek().pos, "range can only initialize variables"),
            }
        }
        let t = self.peek_non_space();
        let is_assign = match t {
            Tok::Declare => false,
            Tok::Assign if names.len() == 1 => true,
            _ if names.len() == 1 => {
                self.idx = save;
                return Ok(());
            }
            _ => return self.err(self.peek().pos, "expected := after range variables"),
        };
        self.next();
        if is_assign && !self.vars.contains(&names[0]) {
            return self.err(pipe.pos, format!("undefined variable {:?}", names[0]));
        }
        if !is_assign {
            self.vars.extend(names.iter().cloned());
        }
        pipe.decl = names;
        pipe.is_assign = is_assign;
        Ok(())
    }

    fn command(&mut self, end: &Tok) -> Result<Command, TemplateError> {
        let pos = self.peek().pos;
        let mut args = Vec::new();
        loop {
            self.skip_space();
            if let Some(arg) = self.operand()? {
                args.push(arg);
            }
            let t = self.next();
            match t.tok {
                Tok::Space => continue,
                ref tok if tok == end || *tok == Tok::RightDelim || *tok == Tok::RParen => {
                    self.idx -= 1;
                }
                Tok::Pipe => {}
                other => return self.err(t.pos, format!("unexpected {} in operand", describe(&other))),
            }
            break;
        }
        if args.is_empty() {
            return self.err(pos, "empty command");
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self) -> Result<Option<Arg>, TemplateError> {
        let pos = self.peek().pos;
        let Some(term) = self.term()? else { return Ok(None) };
        let mut fields = Vec::new();
        while let Tok::Field(f) = &self.peek().tok {
            fields.push(f.clone());
            self.idx += 1;
        }
        if fields.is_empty() {
            return Ok(Some(term));
        }
        Ok(Some(match term {
            Arg::Field(mut base) => {
                base.append(&mut fields);
                Arg::Field(base)
            }
            Arg::Variable(name, mut base) => {
                base.append(&mut fields);
                Arg::Variable(name, base)
            }
            Arg::Pipe(_) | Arg::Function(_) | Arg::Chain(..) => Arg::Chain(Box::new(term), fields),
            Arg::Dot | Arg::Nil | Arg::Literal(_) => return self.err(pos, "unexpected . after term"),
        }))
    }

    fn term(&mut self) -> Result<Option<Arg>, TemplateError> {
        let t = self.peek().clone();
        let arg = match t.tok {
            Tok::Ident(ref w) if Self::keyword(&t.tok).is_some() => {
                return self.err(t.pos, format!("unexpected {w:?}"))
            }
            Tok::Ident(ref w) => match w.as_str() {
                "true" => Arg::Literal(Literal::Bool(true)),
                "false" => Arg::Literal(Literal::Bool(false)),
                "nil" => Arg::Nil,
                name if (self.is_function)(name) => Arg::Function(name.to_string()),
                name => return self.err(t.pos, format!("function {name:?} not defined")),
            },
            Tok::Dot => Arg::Dot,
            Tok::Field(ref f) => Arg::Field(vec![f.clone()]),
            Tok::Variable(ref v) => {
                if !self.vars.contains(v) {
                    return self.err(t.pos, format!("undefined variable {v:?}"));
                }
                Arg::Variable(v.clone(), Vec::new())
            }
            Tok::Str(ref s) => Arg::Literal(Literal::Str(s.clone())),
            Tok::Char(c) => Arg::Literal(Literal::Int(c as i64)),
            Tok::Number(ref n) => match parse_number(n) {
                Some(lit) => Arg::Literal(lit),
                None => return self.err(t.pos, format!("illegal number syntax: {n:?}")),
            },
            Tok::LParen => {
                self.idx += 1;
                let pipe = self.pipeline("parenthesized pipeline", Tok::RParen)?;
                return Ok(Some(Arg::Pipe(Box::new(pipe))));
            }
            _ => return Ok(None),
        };
        self.idx += 1;
        Ok(Some(arg))
    }
}

fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Eof => "EOF".into(),
        Tok::RightDelim => "\"}}\"".into(),
        Tok::LeftDelim => "\"{{\"".into(),
        Tok::Text(_) => "text".into(),
        other => format!("{other:?}"),
    }
}

/// Parses a Go number literal: integers (with 0x/0o/0b/legacy-octal prefixes
/// and `_` separators) stay integers, anything with `.`/`e` is a float.
fn parse_number(text: &str) -> Option<Literal> {
    let clean = text.replace('_', "");
    let (neg, digits) = match clean.as_bytes().first() {
        Some(b'-') => (true, &clean[1..]),
        Some(b'+') => (false, &clean[1..]),
        _ => (false, clean.as_str()),
    };
    let lower = digits.to_ascii_lowercase();
    let radix_int = |radix: u32, s: &str| i64::from_str_radix(s, radix).ok();
    let int = if let Some(h) = lower.strip_prefix("0x") {
        radix_int(16, h)
    } else if let Some(o) = lower.strip_prefix("0o") {
        radix_int(8, o)
    } else if let Some(b) = lower.strip_prefix("0b") {
        radix_int(2, b)
    } else if lower.len() > 1 && lower.starts_with('0') && lower.bytes().all(|b| b.is_ascii_digit()) {
        radix_int(8, &lower[1..])
    } else if !lower.is_empty() && lower.bytes().all(|b| b.is_ascii_digit()) {
        radix_int(10, &lower)
    } else {
        let is_float_syntax = lower.contains(['.', 'e']) && !lower.starts_with("0x");
        return if is_float_syntax && lower.bytes().all(|b| b.is_ascii_digit() || b".e+-".contains(&b)) {
            lower.parse::<f64>().ok().map(|f| Literal::Float(if neg { -f } else { f }))
        } else {
            None
        };
    };
    int.map(|i| Literal::Int(if neg { -i } else { i }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> Result<Tree, TemplateError> {
        parse(src, &|name| ["len", "eq", "print"].contains(&name))
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_number("0x1F"), Some(Literal::Int(31)));
        assert_eq!(parse_number("-017"), Some(Literal::Int(-15)));
        assert_eq!(parse_number("1_000"), Some(Literal::Int(1000)));
        assert_eq!(parse_number("1.5e3"), Some(Literal::Float(1500.0)));
        assert_eq!(parse_number("99999999999999999999"), None);
        assert_eq!(parse_number("1x"), None);
    }

    #[test]
    fn else_if_shares_end() {
        let t = p("{{ if .A }}a{{ else if .B }}b{{ else }}c{{ end }}").unwrap();
        let [Node::If(b)] = t.root.as_slice() else { panic!("{t:?}") };
        let Some([Node::If(inner)]) = b.else_list.as_deref() else { panic!() };
        assert_eq!(inner.else_list, Some(vec![Node::Text("c".into())]));
    }

    #[test]
    fn variables_are_scoped() {
        assert!(p("{{ $x := 1 }}{{ $x }}").is_ok());
        assert!(p("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}").is_err());
        assert!(p("{{ range $i, $e := .A }}{{ $i }}{{ end }}{{ $e }}").is_err());
        assert!(p("{{ $y = 1 }}").is_err());
    }

    #[test]
    fn chains_merge_fields() {
        let t = p("{{ $.A.B }}{{ (.X).Y }}").unwrap();
        assert_eq!(
            t.root[0],
            Node::Action(Pipeline {
                pos: 3,
                decl: vec![],
                is_assign: false,
                cmds: vec![Command { pos: 3, args: vec![Arg::Variable("$".into(), vec!["A".into(), "B".into()])] }]
            })
        );
        assert!(matches!(&t.root[1], Node::Action(p) if matches!(p.cmds[0].args[0], Arg::Chain(..))));
    }

    #[test]
    fn defines_and_blocks() {
        let t = p(r#"{{ define "a" }}A{{ end }}{{ block "b" . }}B{{ end }}x"#).unwrap();
        assert_eq!(t.defines.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert!(p(r#"{{ define "a" }}A{{ end }}{{ define "a" }}B{{ end }}"#).is_err());
        assert!(p(r#"{{ if true }}{{ define "a" }}{{ end }}{{ end }}"#).is_err());
    }

    #[test]
    fn rejects_bad_syntax() {
        for src in [
            "{{ if .A }}",
            "{{ end }}",
            "{{ nope }}",
            "{{ break }}",
            "{{ .A | 3 }}",
            "{{ }}",
            "{{ else }}",
            "{{ 1.A }}",
            "{{ $x, $y := .A }}",
            "{{ range .A }}{{ else if .B }}{{ end }}",
        ] {
            assert!(p(src).is_err(), "{src}");
        }
    }
}
