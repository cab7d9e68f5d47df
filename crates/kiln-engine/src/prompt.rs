//! From messages to prompt tokens: the model's chat template (or a given one), and the BOS
//! rule that keeps a template-written BOS from being doubled by the tokenizer's add_bos.

use crate::chat_template::{ChatMessage, ChatTemplate, TemplateError};
use kiln_gotemplate::looks_like_go_template;
use kiln_gotemplate::ollama::{
    Message as GoMessage, OllamaTemplate, Think as GoThink, ToolCall as GoToolCall, Values as GoValues,
};
use kiln_tokenizer::Tokenizer;

/// What a request gives the template besides the messages.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatExtras {
    /// Tool definitions (OpenAI's and Ollama's shape: `{type, function:{name, ...}}`).
    pub tools: Option<serde_json::Value>,
    /// Whether the model should think before answering; `None`: the template's default.
    pub think: Option<bool>,
}

impl ChatExtras {
    /// The variables Jinja chat templates read: `tools`, and `enable_thinking` (Qwen 3,
    /// DeepSeek) only when the request set it.
    fn jinja_context(&self) -> serde_json::Value {
        let mut ctx = serde_json::Map::new();
        if let Some(t) = &self.tools {
            ctx.insert("tools".into(), t.clone());
        }
        if let Some(think) = self.think {
            ctx.insert("enable_thinking".into(), think.into());
        }
        serde_json::Value::Object(ctx)
    }
}

/// Why a conversation could not become a prompt.
#[derive(Debug, thiserror::Error)]
pub enum PromptError {
    #[error(transparent)]
    Jinja(#[from] TemplateError),
    #[error("invalid Go template: {0}")]
    Go(#[from] kiln_gotemplate::TemplateError),
    #[error(
        "this model cannot fill in the middle: its template has no place for a suffix (.Suffix) and its vocabulary \
         no prefix/suffix/middle tokens"
    )]
    NoSuffix,
}

/// `[BOS] <prefix-token> prompt <suffix-token> suffix <middle-token>`, if the vocabulary has
/// the three fill-in-the-middle tokens. The texts are user code: special-token text in them
/// stays text.
fn fim_tokens(tok: &Tokenizer, prompt: &str, suffix: &str) -> Option<Vec<u32>> {
    let ids = tok.special_ids();
    let (pre, suf, mid) = (ids.fim_pre?, ids.fim_suf?, ids.fim_mid?);
    let mut tokens: Vec<u32> = tok.bos().filter(|_| tok.add_bos()).into_iter().collect();
    tokens.push(pre);
    tokens.extend(tok.encode(prompt, false, false));
    tokens.push(suf);
    tokens.extend(tok.encode(suffix, false, false));
    tokens.push(mid);
    Some(tokens)
}

/// Whether the tokenizer can fill in the middle without a template's help.
pub fn vocab_fills_in(tok: &Tokenizer) -> bool {
    let ids = tok.special_ids();
    ids.fim_pre.is_some() && ids.fim_suf.is_some() && ids.fim_mid.is_some()
}

/// A template in either language: Ollama's Go templates (Modelfile TEMPLATE, registry
/// models) or the Jinja templates inside GGUF files and Hugging Face repositories.
enum Template {
    Jinja(ChatTemplate),
    Go(OllamaTemplate),
}

impl Template {
    fn compile(source: &str, bos: &str, eos: &str) -> Result<Template, PromptError> {
        Ok(if looks_like_go_template(source) {
            Template::Go(OllamaTemplate::parse(source)?)
        } else {
            Template::Jinja(ChatTemplate::new(source, bos, eos)?)
        })
    }
}

/// Checks that a template compiles, without a tokenizer (for templates given at create time).
pub fn check_template(source: &str) -> Result<(), PromptError> {
    Template::compile(source, "", "").map(|_| ())
}

/// Whether a template can place a suffix (fill-in-the-middle): only Go templates say so.
pub fn supports_suffix(source: &str) -> bool {
    matches!(Template::compile(source, "", ""), Ok(Template::Go(t)) if t.template().uses_field("Suffix"))
}

/// A conversation in the Go templates' terms.
fn go_messages(messages: &[ChatMessage]) -> Vec<GoMessage> {
    messages
        .iter()
        .map(|m| GoMessage {
            tool_calls: m
                .tool_calls
                .iter()
                .enumerate()
                .map(|(index, c)| GoToolCall {
                    id: c.id.clone().unwrap_or_default(),
                    index: index as i64,
                    name: c.function.name.clone(),
                    arguments: c.function.arguments.clone(),
                })
                .collect(),
            tool_name: m.name.clone().unwrap_or_default(),
            tool_call_id: m.tool_call_id.clone().unwrap_or_default(),
            ..GoMessage::new(&m.role, &m.content)
        })
        .collect()
}

fn go_think(think: Option<bool>) -> Option<GoThink> {
    think.map(GoThink::Bool)
}

/// How a model's conversations become prompt text.
pub struct PromptFormat {
    template: Option<Template>,
    bos_text: Option<String>,
}

impl PromptFormat {
    /// A format over a template source (usually the model's `tokenizer.chat_template`, or a
    /// Modelfile's TEMPLATE), Go or Jinja; `None` for models without one.
    pub fn new(tok: &Tokenizer, template: Option<&str>) -> Result<PromptFormat, PromptError> {
        let text_of = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
        let (bos, eos) = (text_of(tok.bos()), text_of(tok.eos()));
        let template = template.map(|src| Template::compile(src, &bos, &eos)).transpose()?;
        Ok(PromptFormat { template, bos_text: (!bos.is_empty()).then_some(bos) })
    }

    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// Prompt tokens of a conversation, ending with the generation prompt. Without a template
    /// the messages' texts are joined by blank lines.
    pub fn chat_tokens(&self, tok: &Tokenizer, messages: &[ChatMessage]) -> Result<Vec<u32>, PromptError> {
        self.chat_tokens_with(tok, messages, &ChatExtras::default())
    }

    /// Like [`chat_tokens`](Self::chat_tokens), with tools and the thinking switch given to
    /// the template.
    pub fn chat_tokens_with(
        &self,
        tok: &Tokenizer,
        messages: &[ChatMessage],
        extras: &ChatExtras,
    ) -> Result<Vec<u32>, PromptError> {
        let text = match &self.template {
            None => {
                let texts: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
                return Ok(tok.encode(&texts.join("\n\n"), true, true));
            }
            Some(Template::Jinja(t)) => t.render_with(messages, true, extras.jinja_context())?,
            Some(Template::Go(t)) => {
                let tools = match &extras.tools {
                    Some(serde_json::Value::Array(v)) => v.clone(),
                    _ => Vec::new(),
                };
                t.render(&GoValues::chat(None, go_messages(messages), tools, go_think(extras.think)))?
            }
        };
        Ok(tok.encode(self.strip_bos(tok, &text), true, true))
    }

    /// Prompt tokens for filling in between `prompt` and `suffix` (code completion): through
    /// a template that places a suffix, else from the vocabulary's fill-in-the-middle tokens
    /// (code models such as Qwen 2.5 Coder, StarCoder 2, CodeLlama, DeepSeek Coder), in the
    /// prefix-suffix-middle order llama.cpp's `/infill` uses; the system prompt has no place
    /// there.
    pub fn fill_tokens(
        &self,
        tok: &Tokenizer,
        system: Option<&str>,
        prompt: &str,
        suffix: &str,
    ) -> Result<Vec<u32>, PromptError> {
        match &self.template {
            Some(Template::Go(t)) if t.template().uses_field("Suffix") => {
                let text = t.render(&GoValues::generate(system, prompt, suffix, None))?;
                Ok(tok.encode(self.strip_bos(tok, &text), true, true))
            }
            _ => fim_tokens(tok, prompt, suffix).ok_or(PromptError::NoSuffix),
        }
    }

    /// A template that writes the BOS itself would get a second one from add_bos.
    fn strip_bos<'t>(&self, tok: &Tokenizer, text: &'t str) -> &'t str {
        match &self.bos_text {
            Some(bos) if tok.add_bos() => text.strip_prefix(bos.as_str()).unwrap_or(text),
            _ => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GO_CHATML: &str =
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n";
    const GO_FIM: &str = "<|fim_prefix|>{{ .Prompt }}<|fim_suffix|>{{ .Suffix }}<|fim_middle|>";
    const JINJA_CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    fn tokenizer() -> Option<Tokenizer> {
        let path = kiln_testdata::model_path(kiln_testdata::SMOLLM2)?;
        let file = kiln_gguf::GgufFile::open(path).unwrap();
        Some(Tokenizer::from_gguf(&file).unwrap())
    }

    #[test]
    fn go_and_jinja_templates_give_the_same_prompt() {
        let Some(tok) = tokenizer() else { return };
        let messages = [ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi")];
        let go = PromptFormat::new(&tok, Some(GO_CHATML)).unwrap().chat_tokens(&tok, &messages).unwrap();
        let jinja = PromptFormat::new(&tok, Some(JINJA_CHATML)).unwrap().chat_tokens(&tok, &messages).unwrap();
        assert_eq!(go, jinja);
        let want = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
        assert_eq!(go, tok.encode(want, true, true));
    }

    #[test]
    fn suffixes_need_a_go_template_that_places_them() {
        assert!(supports_suffix(GO_FIM));
        assert!(!supports_suffix(GO_CHATML));
        assert!(!supports_suffix(JINJA_CHATML));
        let Some(tok) = tokenizer() else { return };
        let fim = PromptFormat::new(&tok, Some(GO_FIM)).unwrap();
        let got = fim.fill_tokens(&tok, None, "def f(", "):\n    pass").unwrap();
        assert_eq!(got, tok.encode("<|fim_prefix|>def f(<|fim_suffix|>):\n    pass<|fim_middle|>", true, true));
    }

    /// A SentencePiece vocabulary of byte tokens plus a code model's fill-in-the-middle tokens.
    fn fim_vocabulary() -> Tokenizer {
        let mut tokens: Vec<String> =
            ["<unk>", "<s>", "</s>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"].map(String::from).to_vec();
        let mut types = vec![2, 3, 3, 3, 3, 3];
        tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
        types.extend([6; 256]);
        Tokenizer::from_spec(kiln_tokenizer::VocabSpec {
            model: "llama".into(),
            scores: Some(vec![0.0; tokens.len()]),
            tokens,
            token_types: Some(types),
            special: kiln_tokenizer::SpecialIds { bos: Some(1), eos: Some(2), unk: Some(0), ..Default::default() },
            ..Default::default()
        })
        .unwrap()
    }

    #[test]
    fn without_a_suffix_template_the_vocabularys_fim_tokens_are_used() {
        let tok = fim_vocabulary();
        assert!(vocab_fills_in(&tok));
        let chat = PromptFormat::new(&tok, Some(GO_CHATML)).unwrap();
        let got = chat.fill_tokens(&tok, Some("ignored"), "def f(", "):").unwrap();
        let mut want: Vec<u32> = tok.bos().filter(|_| tok.add_bos()).into_iter().collect();
        want.push(3);
        want.extend(tok.encode("def f(", false, false));
        want.push(4);
        want.extend(tok.encode("):", false, false));
        want.push(5);
        assert_eq!(got, want);
        // Special-token text inside the code stays text.
        let quoted = chat.fill_tokens(&tok, None, "<|fim_middle|>", "").unwrap();
        assert_eq!(quoted.iter().filter(|&&t| t == 5).count(), 1);
        // SmolLM2 has neither a suffix in its template nor such tokens.
        let Some(smol) = tokenizer() else { return };
        assert!(!vocab_fills_in(&smol));
        let chat = PromptFormat::new(&smol, Some(GO_CHATML)).unwrap();
        assert!(matches!(chat.fill_tokens(&smol, None, "a", "b"), Err(PromptError::NoSuffix)));
    }

    #[test]
    fn calls_and_their_results_reach_both_template_languages() {
        let Some(tok) = tokenizer() else { return };
        let go = "{{ range .Messages }}{{ .Role }}:{{ .Content }}{{ range .ToolCalls }}{{ .Function.Name }}{{ .Function.Arguments }}{{ end }}{{ .ToolName }};{{ end }}";
        let jinja = "{% for m in messages %}{{ m.role }}:{{ m.content }}{% for c in m.tool_calls or [] %}{{ c.function.name }}{{ c.function.arguments | tojson }}{% endfor %}{{ m.name or '' }};{% endfor %}";
        let call = crate::chat_template::ChatToolCall::new(Some("c1".into()), "f", serde_json::json!({ "a": 1 }));
        let messages = [
            ChatMessage { tool_calls: vec![call], ..ChatMessage::new("assistant", "") },
            ChatMessage { name: Some("f".into()), tool_call_id: Some("c1".into()), ..ChatMessage::new("tool", "2") },
        ];
        let want = tok.encode("assistant:f{\"a\":1};tool:2f;", true, true);
        let jinja_want = tok.encode("assistant:f{\"a\": 1};tool:2f;", true, true);
        assert_eq!(PromptFormat::new(&tok, Some(go)).unwrap().chat_tokens(&tok, &messages).unwrap(), want);
        assert_eq!(PromptFormat::new(&tok, Some(jinja)).unwrap().chat_tokens(&tok, &messages).unwrap(), jinja_want);
    }

    #[test]
    fn broken_templates_are_reported_in_their_language() {
        assert!(matches!(check_template("{{ if .System }}never closed"), Err(PromptError::Go(_))));
        assert!(matches!(check_template("{% for m in messages %}"), Err(PromptError::Jinja(_))));
        assert!(check_template(GO_CHATML).is_ok() && check_template(JINJA_CHATML).is_ok());
    }
}
