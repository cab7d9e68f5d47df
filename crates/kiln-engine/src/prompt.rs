//! From messages to prompt tokens: the model's chat template (or a given one), and the BOS
//! rule that keeps a template-written BOS from being doubled by the tokenizer's add_bos.

use crate::chat_template::{ChatMessage, ChatTemplate, TemplateError};
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

/// Checks that a template compiles, without a tokenizer (for templates given at create time).
pub fn check_template(source: &str) -> Result<(), TemplateError> {
    ChatTemplate::new(source, "", "").map(|_| ())
}

/// How a model's conversations become prompt text.
pub struct PromptFormat {
    template: Option<ChatTemplate>,
    bos_text: Option<String>,
}

impl PromptFormat {
    /// A format over the Jinja `template` source (usually the model's
    /// `tokenizer.chat_template`); `None` for models without one.
    pub fn new(tok: &Tokenizer, template: Option<&str>) -> Result<PromptFormat, TemplateError> {
        let text_of = |id: Option<u32>| id.and_then(|i| tok.token_text(i)).unwrap_or("").to_string();
        let (bos, eos) = (text_of(tok.bos()), text_of(tok.eos()));
        let template = template.map(|src| ChatTemplate::new(src, &bos, &eos)).transpose()?;
        Ok(PromptFormat { template, bos_text: (!bos.is_empty()).then_some(bos) })
    }

    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// Prompt tokens of a conversation, ending with the generation prompt. Without a template
    /// the messages' texts are joined by blank lines.
    pub fn chat_tokens(&self, tok: &Tokenizer, messages: &[ChatMessage]) -> Result<Vec<u32>, TemplateError> {
        self.chat_tokens_with(tok, messages, &ChatExtras::default())
    }

    /// Like [`chat_tokens`](Self::chat_tokens), with tools and the thinking switch given to
    /// the template.
    pub fn chat_tokens_with(
        &self,
        tok: &Tokenizer,
        messages: &[ChatMessage],
        extras: &ChatExtras,
    ) -> Result<Vec<u32>, TemplateError> {
        let Some(template) = &self.template else {
            let texts: Vec<&str> = messages.iter().map(|m| m.content.as_str()).collect();
            return Ok(tok.encode(&texts.join("\n\n"), true, true));
        };
        let text = template.render_with(messages, true, extras.jinja_context())?;
        Ok(tok.encode(self.strip_bos(tok, &text), true, true))
    }

    /// A template that writes the BOS itself would get a second one from add_bos.
    fn strip_bos<'t>(&self, tok: &Tokenizer, text: &'t str) -> &'t str {
        match &self.bos_text {
            Some(bos) if tok.add_bos() => text.strip_prefix(bos.as_str()).unwrap_or(text),
            _ => text,
        }
    }
}
