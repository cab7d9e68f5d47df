//! Ollama's prompt semantics on top of the template engine: which data a
//! template sees for a chat or generate request, as Ollama's `template.Execute`
//! and its server's request handling build it.
//!
//! * A template that mentions neither `.Messages` nor `.Response` gets
//!   `{{ .Response }}` appended when parsed.
//! * Generate with a suffix (fill-in-the-middle) executes once with
//!   `.Prompt`/`.Suffix`.
//! * Templates that use `.Messages` see the whole (collated) conversation, all
//!   system messages joined as `.System`, and the tools.
//! * Other (legacy) templates run once per user/assistant exchange with
//!   `.System`/`.Prompt`/`.Response`; the last run drops everything after
//!   `{{ .Response }}` so generation continues from there.

mod cut;
mod data;

use crate::ast::{Arg, Command, Node, Pipeline};
use crate::error::TemplateError;
use crate::exec::Options;
use crate::funcs::FuncSet;
use crate::template::{GoTemplate, MissingKey};

pub(crate) use data::TOOL_PROPERTY;

/// One chat message, with the fields Ollama's templates can read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub role: String,
    pub content: String,
    pub thinking: String,
    pub tool_calls: Vec<ToolCall>,
    pub tool_name: String,
    pub tool_call_id: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Message {
        Message { role: role.into(), content: content.into(), ..Message::default() }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub index: i64,
    pub name: String,
    /// A JSON object of arguments.
    pub arguments: serde_json::Value,
}

/// The request's `think` value: a bool or a level such as "high".
#[derive(Debug, Clone, PartialEq)]
pub enum Think {
    Bool(bool),
    Level(String),
}

impl Think {
    /// Ollama's `ThinkValue.Bool`: levels enable thinking.
    fn enabled(&self) -> bool {
        match self {
            Think::Bool(b) => *b,
            Think::Level(l) => matches!(l.as_str(), "high" | "medium" | "low" | "max"),
        }
    }

    /// Ollama's `ThinkValue.String`: `true` means the "medium" level.
    fn level(&self) -> String {
        match self {
            Think::Bool(true) => "medium".into(),
            Think::Bool(false) => String::new(),
            Think::Level(l) => l.clone(),
        }
    }
}

/// What a request gives the template.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Values {
    pub messages: Vec<Message>,
    /// Tools in the Ollama/OpenAI shape: `[{"type": "function", "function": {...}}]`.
    pub tools: Vec<serde_json::Value>,
    pub prompt: String,
    pub suffix: String,
    pub think: Option<Think>,
}

impl Values {
    /// A chat request: the model's default system prompt goes first unless the
    /// conversation already starts with a system message.
    pub fn chat(
        default_system: Option<&str>,
        mut messages: Vec<Message>,
        tools: Vec<serde_json::Value>,
        think: Option<Think>,
    ) -> Values {
        if let Some(system) = default_system.filter(|s| !s.is_empty()) {
            if messages.first().is_some_and(|m| m.role != "system") {
                messages.insert(0, Message::new("system", system));
            }
        }
        Values { messages, tools, think, ..Values::default() }
    }

    /// A generate request: with a suffix only prompt and suffix are used;
    /// otherwise the request system (or the model's) and the prompt become messages.
    pub fn generate(system: Option<&str>, prompt: &str, suffix: &str, think: Option<Think>) -> Values {
        if !suffix.is_empty() {
            return Values { prompt: prompt.into(), suffix: suffix.into(), think, ..Values::default() };
        }
        let mut messages = Vec::new();
        if let Some(system) = system.filter(|s| !s.is_empty()) {
            messages.push(Message::new("system", system));
        }
        messages.push(Message::new("user", prompt));
        Values { messages, think, ..Values::default() }
    }
}

/// A model template with Ollama's execution rules.
#[derive(Debug, Clone)]
pub struct OllamaTemplate {
    template: GoTemplate,
}

impl OllamaTemplate {
    /// Parses like Ollama: its function map, `missingkey=zero`, and
    /// `{{ .Response }}` appended when neither `.Messages` nor `.Response` is used.
    pub fn parse(src: &str) -> Result<OllamaTemplate, TemplateError> {
        let mut template = GoTemplate::parse_with(src, FuncSet::Ollama)?.with_missing_key(MissingKey::Zero);
        if !template.uses_field("messages") && !template.uses_field("response") {
            template.push_node(response_action());
        }
        Ok(OllamaTemplate { template })
    }

    pub fn template(&self) -> &GoTemplate {
        &self.template
    }

    /// Renders the prompt for a request exactly as Ollama's `Template.Execute`.
    pub fn render(&self, v: &Values) -> Result<String, TemplateError> {
        let (system, messages) = collate(&v.messages);
        let think = data::ThinkFields::new(v.think.as_ref());
        if !v.prompt.is_empty() && !v.suffix.is_empty() {
            return self.template.execute_value(&data::fill_in_middle(&v.prompt, &v.suffix, &think));
        }
        if self.template.uses_field("messages") {
            return self.template.execute_value(&data::conversation(&system, &messages, &v.tools, &think));
        }
        self.render_legacy(&messages, &think)
    }

    fn render_legacy(&self, messages: &[Message], think: &data::ThinkFields) -> Result<String, TemplateError> {
        let mut out = String::new();
        let (mut system, mut prompt, mut response) = (String::new(), String::new(), String::new());
        for m in messages {
            let flush = match m.role.as_str() {
                "system" => !prompt.is_empty() || !response.is_empty(),
                "user" => !response.is_empty(),
                _ => false,
            };
            if flush {
                out += &self.template.execute_value(&data::turn(&system, &prompt, &response, think))?;
                system.clear();
                prompt.clear();
                response.clear();
            }
            match m.role.as_str() {
                "system" => system.clone_from(&m.content),
                "user" => prompt.clone_from(&m.content),
                "assistant" => response.clone_from(&m.content),
                _ => {}
            }
        }
        // Ollama runs the cut tree as a fresh template: Go's default missingkey,
        // no extra functions and no defined templates.
        let opts = Options { missing_zero: false, funcs: FuncSet::Builtins, with_defines: false };
        let root = cut::cut_after_response(self.template.root());
        out += &self.template.execute_nodes(&root, &data::turn(&system, &prompt, &response, think), opts)?;
        Ok(out)
    }
}

fn response_action() -> Node {
    Node::Action(Pipeline {
        pos: 0,
        decl: Vec::new(),
        is_assign: false,
        cmds: vec![Command { pos: 0, args: vec![Arg::Field(vec!["Response".into()])] }],
    })
}

/// Merges consecutive messages of the same role (except tool results) with a
/// blank line, and gathers all system messages' contents.
fn collate(messages: &[Message]) -> (String, Vec<Message>) {
    let mut system = Vec::new();
    let mut out: Vec<Message> = Vec::new();
    for m in messages {
        if m.role == "system" {
            system.push(m.content.as_str());
        }
        match out.last_mut() {
            Some(prev) if prev.role == m.role && m.role != "tool" => {
                prev.content.push_str("\n\n");
                prev.content.push_str(&m.content);
            }
            _ => out.push(m.clone()),
        }
    }
    (system.join("\n\n"), out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chat(msgs: &[(&str, &str)]) -> Vec<Message> {
        msgs.iter().map(|(r, c)| Message::new(r, c)).collect()
    }

    #[test]
    fn collate_merges_same_roles_but_not_tools() {
        let (system, msgs) = collate(&chat(&[
            ("system", "a"),
            ("system", "b"),
            ("user", "u1"),
            ("user", "u2"),
            ("tool", "t"),
            ("tool", "t"),
        ]));
        assert_eq!(system, "a\n\nb");
        assert_eq!(msgs.len(), 4);
        assert_eq!(msgs[0].content, "a\n\nb");
        assert_eq!(msgs[1].content, "u1\n\nu2");
    }

    #[test]
    fn appends_response_to_legacy_templates_only() {
        let t = OllamaTemplate::parse("{{ .Prompt }}").unwrap();
        assert!(t.template().uses_field("response") || t.template.root().len() == 2);
        assert_eq!(OllamaTemplate::parse("{{ range .Messages }}{{ end }}").unwrap().template.root().len(), 1);
    }

    #[test]
    fn messages_templates_see_whole_conversation() {
        let t = OllamaTemplate::parse(
            "{{ .System }}|{{ range .Messages }}{{ .Role }}:{{ .Content }};{{ end }}|{{ .Prompt }}|{{ .Tools }}",
        )
        .unwrap();
        let v =
            Values::chat(Some("default"), chat(&[("user", "hi"), ("assistant", "yo"), ("user", "q")]), vec![], None);
        assert_eq!(t.render(&v).unwrap(), "default|system:default;user:hi;assistant:yo;user:q;|<no value>|null");
    }

    #[test]
    fn default_system_is_not_added_before_an_explicit_one() {
        let v = Values::chat(Some("default"), chat(&[("system", "mine"), ("user", "hi")]), vec![], None);
        assert_eq!(v.messages.len(), 2);
        assert_eq!(v.messages[0].content, "mine");
    }

    #[test]
    fn legacy_templates_run_per_turn_and_cut_after_response() {
        let t = OllamaTemplate::parse("{{ if .System }}S:{{ .System }} {{ end }}U:{{ .Prompt }} A:{{ .Response }}</s>")
            .unwrap();
        let v = Values::chat(
            None,
            chat(&[("system", "sys"), ("user", "q1"), ("assistant", "a1"), ("user", "q2")]),
            vec![],
            None,
        );
        assert_eq!(t.render(&v).unwrap(), "S:sys U:q1 A:a1</s>U:q2 A:");
    }

    #[test]
    fn legacy_template_without_response_gets_it_appended() {
        let t = OllamaTemplate::parse("[INST] {{ .Prompt }} [/INST]").unwrap();
        let v = Values::chat(None, chat(&[("user", "a"), ("assistant", "b"), ("user", "c")]), vec![], None);
        assert_eq!(t.render(&v).unwrap(), "[INST] a [/INST]b[INST] c [/INST]");
    }

    #[test]
    fn legacy_final_turn_runs_without_extra_functions() {
        let t = OllamaTemplate::parse("{{ json .Prompt }}{{ .Response }}").unwrap();
        assert!(t.render(&Values::generate(None, "p", "", None)).is_err());
    }

    #[test]
    fn fill_in_the_middle_uses_prompt_and_suffix() {
        let t = OllamaTemplate::parse("<PRE> {{ .Prompt }} <SUF>{{ .Suffix }} <MID>").unwrap();
        assert_eq!(t.render(&Values::generate(Some("ignored"), "a", "b", None)).unwrap(), "<PRE> a <SUF>b <MID>");
    }

    #[test]
    fn generate_builds_system_and_user_messages() {
        let t = OllamaTemplate::parse("{{ range .Messages }}[{{ .Role }}={{ .Content }}]{{ end }}").unwrap();
        assert_eq!(t.render(&Values::generate(Some("s"), "p", "", None)).unwrap(), "[system=s][user=p]");
    }

    #[test]
    fn think_fields() {
        let t = OllamaTemplate::parse("{{ .Think }} {{ .ThinkLevel }} {{ .IsThinkSet }}{{ range .Messages }}{{ end }}")
            .unwrap();
        let render = |think| t.render(&Values::chat(None, chat(&[("user", "x")]), vec![], think)).unwrap();
        assert_eq!(render(None), "false  false");
        assert_eq!(render(Some(Think::Bool(true))), "true medium true");
        assert_eq!(render(Some(Think::Level("high".into()))), "true high true");
    }

    #[test]
    fn tool_calls_and_tools_print_as_json() {
        let t = OllamaTemplate::parse(concat!(
            "{{ range .Messages }}{{ range .ToolCalls }}{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}{{ end }}",
            "|{{ .Tools }}|{{ range .Tools }}{{ range $k, $p := .Function.Parameters.Properties }}",
            "{{ $k }}:{{ toTypeScriptType $p }};{{ end }}{{ end }}"
        ))
        .unwrap();
        let call = ToolCall { name: "f".into(), arguments: json!({"b": 1, "a": "<x>"}), ..ToolCall::default() };
        let msgs = vec![Message { role: "assistant".into(), tool_calls: vec![call], ..Message::default() }];
        let tools = vec![json!({"type": "function", "function": {"name": "f", "description": "d",
            "parameters": {"type": "object", "required": ["a"], "properties": {
                "a": {"type": "string", "description": "A"}, "b": {"type": ["integer", "null"]}}}}})];
        assert_eq!(
            t.render(&Values::chat(None, msgs, tools, None)).unwrap(),
            concat!(
                r#"f{"a":"\u003cx\u003e","b":1}|[{"type":"function","function":{"name":"f","description":"d","#,
                r#""parameters":{"type":"object","required":["a"],"properties":{"a":{"type":"string","description":"A"},"#,
                r#""b":{"type":["integer","null"]}}}}}]|a:string;b:number | null;"#
            )
        );
    }

    #[test]
    fn unknown_struct_fields_are_errors() {
        let t = OllamaTemplate::parse("{{ range .Messages }}{{ .Nope }}{{ end }}").unwrap();
        assert!(t.render(&Values::chat(None, chat(&[("user", "x")]), vec![], None)).is_err());
    }
}
