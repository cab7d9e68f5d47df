//! The public template type: parse once, execute many times.

use std::collections::BTreeSet;

use crate::ast::{Arg, Node, Pipeline};
use crate::error::TemplateError;
use crate::exec::{self, Options};
use crate::funcs::FuncSet;
use crate::parser::{parse, Tree};
use crate::value::Value;

/// Go's `missingkey` option: what a missing map key evaluates to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// Go's default: an invalid value, printed as `<no value>`; fields of it are silently invalid too.
    #[default]
    Default,
    /// `missingkey=zero` (Ollama's setting): a nil interface; fields of it are errors.
    Zero,
}

#[derive(Debug, Clone)]
pub struct GoTemplate {
    src: String,
    tree: Tree,
    funcs: FuncSet,
    missing_key: MissingKey,
}

impl GoTemplate {
    /// Parses with Ollama's function map (Go builtins plus `json`, `currentDate`, ...).
    pub fn parse(src: &str) -> Result<GoTemplate, TemplateError> {
        GoTemplate::parse_with(src, FuncSet::Ollama)
    }

    /// Parses with the given function map; unknown functions are parse errors, as in Go.
    pub fn parse_with(src: &str, funcs: FuncSet) -> Result<GoTemplate, TemplateError> {
        let tree = parse(src, &|name| funcs.contains(name))?;
        Ok(GoTemplate { src: src.to_string(), tree, funcs, missing_key: MissingKey::Default })
    }

    pub fn with_missing_key(mut self, missing_key: MissingKey) -> GoTemplate {
        self.missing_key = missing_key;
        self
    }

    pub fn source(&self) -> &str {
        &self.src
    }

    /// Renders the template over JSON data (numbers behave as Go's float64).
    pub fn execute(&self, data: &serde_json::Value) -> Result<String, TemplateError> {
        self.execute_value(&Value::from_json(data))
    }

    pub(crate) fn execute_value(&self, data: &Value) -> Result<String, TemplateError> {
        self.execute_nodes(&self.tree.root, data, self.options())
    }

    pub(crate) fn execute_nodes(&self, root: &[Node], data: &Value, opts: Options) -> Result<String, TemplateError> {
        exec::execute(&self.src, &self.tree, root, data, opts)
    }

    pub(crate) fn options(&self) -> Options {
        Options { missing_zero: self.missing_key == MissingKey::Zero, funcs: self.funcs, with_defines: true }
    }

    pub(crate) fn root(&self) -> &[Node] {
        &self.tree.root
    }

    /// Appends a node to the main body (Ollama adds `{{ .Response }}`).
    pub(crate) fn push_node(&mut self, node: Node) {
        self.tree.root.push(node);
    }

    /// Whether any field or variable chain names `name` (case-insensitively,
    /// as Ollama compares lowercased identifiers): `.Messages`, `$.Messages`
    /// and `$m.Messages` all count, in the main body and defined templates.
    pub fn uses_field(&self, name: &str) -> bool {
        self.identifiers().contains(&name.to_lowercase())
    }

    /// Lowercased identifiers the template mentions, collected like Ollama's
    /// `Identifiers`: field and variable chains in actions and control
    /// pipelines (not inside parenthesised chains).
    pub(crate) fn identifiers(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for list in std::iter::once(&self.tree.root).chain(self.tree.defines.values()) {
            collect_nodes(list, &mut out);
        }
        out
    }
}

fn collect_nodes(nodes: &[Node], out: &mut BTreeSet<String>) {
    for node in nodes {
        match node {
            Node::Action(p) => collect_pipe(p, out),
            Node::Template { pipe: Some(p), .. } => collect_pipe(p, out),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                collect_pipe(&b.pipe, out);
                collect_nodes(&b.list, out);
                if let Some(e) = &b.else_list {
                    collect_nodes(e, out);
                }
            }
            _ => {}
        }
    }
}

fn collect_pipe(pipe: &Pipeline, out: &mut BTreeSet<String>) {
    for arg in pipe.cmds.iter().flat_map(|c| &c.args) {
        match arg {
            Arg::Field(idents) => out.extend(idents.iter().map(|i| i.to_lowercase())),
            Arg::Variable(name, idents) => {
                out.insert(name.to_lowercase());
                out.extend(idents.iter().map(|i| i.to_lowercase()));
            }
            Arg::Pipe(p) => collect_pipe(p, out),
            _ => {}
        }
    }
}

/// Tells a Go template from a Jinja one. Rule: Jinja-only syntax (`{%`, or an
/// action starting with a bare lowercase name such as `{{ messages`,
/// `{{- bos_token`) means Jinja; otherwise Go-only syntax (an action opening
/// with `.`/`$`, or a keyword followed by one: `{{- if .X`, `range .Messages`,
/// `{{ end }}`) means Go. Anything else is not recognised as Go.
pub fn looks_like_go_template(src: &str) -> bool {
    if src.contains("{%") {
        return false;
    }
    let mut go = false;
    for action in src.split("{{").skip(1) {
        let body = action.trim_start_matches('-').trim_start();
        let body = body.split("}}").next().unwrap_or("");
        let words: Vec<&str> = body.split_whitespace().collect();
        let first = words.first().copied().unwrap_or("");
        let second = words.get(1).copied().unwrap_or("");
        let go_operand = |w: &str| w.starts_with('.') || w.starts_with('$') || w.starts_with('(');
        match first {
            _ if go_operand(first) || first.starts_with("/*") => go = true,
            "end" | "else" | "break" | "continue" => go = true,
            // Jinja writes its statements as `{% if %}`, so a keyword opening `{{` with an
            // operand (`{{ if ne .Role "system" }}`) is Go whatever the operand is.
            "if" | "range" | "with" | "template" | "define" | "block" if !second.is_empty() => go = true,
            "" | "-" => {}
            w if w.starts_with(|c: char| c.is_ascii_lowercase()) && !go_operand(second) && !is_go_func_call(w) => {
                return false;
            }
            _ => {}
        }
    }
    go
}

/// Whether a word opening an action is a Go function applied to Go operands,
/// e.g. `{{ json .Tools }}`, rather than a Jinja variable.
fn is_go_func_call(word: &str) -> bool {
    FuncSet::Ollama.contains(word)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_and_reports_fields() {
        let t = GoTemplate::parse("{{ range $.Messages }}{{ .Role }}{{ end }}{{ if .Tools }}t{{ end }}").unwrap();
        assert!(t.uses_field("Messages") && t.uses_field("messages") && t.uses_field("Tools"));
        assert!(!t.uses_field("Response"));
        let out = t.execute(&json!({"Messages": [{"Role": "user"}, {"Role": "assistant"}]})).unwrap();
        assert_eq!(out, "userassistant");
    }

    #[test]
    fn uses_field_sees_defined_templates_and_nested_pipes() {
        let t = GoTemplate::parse(r#"{{ define "x" }}{{ .Suffix }}{{ end }}{{ print (len .Prompt) }}"#).unwrap();
        assert!(t.uses_field("Suffix") && t.uses_field("Prompt"));
    }

    #[test]
    fn missing_key_modes() {
        let t = GoTemplate::parse("{{ .a.b }}").unwrap();
        assert_eq!(t.execute(&json!({})).unwrap(), "<no value>");
        assert!(t.with_missing_key(MissingKey::Zero).execute(&json!({})).is_err());
    }

    #[test]
    fn go_vs_jinja_heuristic() {
        for go in [
            "{{ .Prompt }}",
            "{{- if .System }}x{{ end }}",
            "{{ range .Messages }}{{ end }}",
            "{{ $.Tools }}",
            r#"{{ if .System }}s{{ end }}{{ range .Messages }}{{ if ne .Role "system" }}{{ .Content }}{{ end }}{{ end }}"#,
            "{{ if gt (len .Messages) 1 }}x{{ end }}",
        ] {
            assert!(looks_like_go_template(go), "{go}");
        }
        for jinja in [
            "{% for m in messages %}{{ m.content }}{% endfor %}",
            "{{ bos_token }}{{ messages[0] }}",
            "{{- bos_token }}",
            "plain text",
        ] {
            assert!(!looks_like_go_template(jinja), "{jinja}");
        }
    }
}
