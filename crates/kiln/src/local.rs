//! `kiln run FILE.gguf` (the model runs in this process, no server involved; an embedding
//! model prints the prompt's vector), and
//! `kiln tokenize`.

use crate::answer::AnswerWriter;
use crate::chat::{chat_loop, ChatSession, Timings};
use crate::cli::{RunArgs, SamplingArgs, TokenizeArgs};
use crate::load::{load_engine, load_model};
use anyhow::{bail, Context, Result};
use kiln_engine::chat_template::ChatMessage;
use kiln_engine::prompt::{ChatExtras, PromptFormat};
use kiln_engine::reasoning::{Split, ThinkingSplitter, ThinkingTags};
use kiln_engine::sampler::SamplingParams;
use kiln_engine::{EmbedInput, EmbedOptions, Embedder, Engine, GenerateOptions, GenerationStats, Sequence};
use kiln_tokenizer::Tokenizer;
use std::path::Path;
use std::time::{Duration, Instant};

/// Context size when `--num-ctx` is not given (Ollama's default).
const DEFAULT_NUM_CTX: usize = 4096;

/// Whether `kiln run` names a model file rather than a model: an existing file, or anything
/// ending in `.gguf` (so a mistyped path reports the missing file, not a missing model).
pub fn is_model_file(model: &str) -> bool {
    Path::new(model).is_file() || model.to_ascii_lowercase().ends_with(".gguf")
}

/// How answers are rendered: the prompt format, and the thinking tags its template shows.
struct Format {
    prompt: PromptFormat,
    thinking: Option<ThinkingTags>,
    extras: ChatExtras,
    show_thinking: bool,
}

impl Format {
    fn chat_tokens(&self, tok: &Tokenizer, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        Ok(self.prompt.chat_tokens_with(tok, messages, &self.extras)?)
    }

    /// Splits a reasoning model's answer to the prompt `tokens`.
    fn splitter(&self, tok: &Tokenizer, tokens: &[u32]) -> Option<ThinkingSplitter> {
        self.thinking.map(|tags| ThinkingSplitter::new(tags, ThinkingSplitter::prompt_opens(tags, tok, tokens)))
    }
}

/// The prompt format: the template from `--template`, else the model's own; none with
/// `--raw`.
fn prompt_format(engine: &Engine, args: &RunArgs) -> Result<Format> {
    let source = match &args.template {
        Some(path) => {
            Some(std::fs::read_to_string(path).with_context(|| format!("reading template {}", path.display()))?)
        }
        None => engine.model().file().get_str("tokenizer.chat_template")?.map(str::to_string),
    };
    let source = source.filter(|_| !args.raw);
    let format = PromptFormat::new(engine.tokenizer(), source.as_deref()).context("compiling the chat template")?;
    if !format.has_template() && !args.raw {
        eprintln!("note: the model has no chat template; the prompt is sent as is (give one with --template)");
    }
    let thinking = source.as_deref().and_then(ThinkingTags::of_template);
    if args.think == Some(true) && thinking.is_none() {
        bail!("the model does not support thinking: its template has no thinking block");
    }
    Ok(Format {
        prompt: format,
        thinking,
        extras: ChatExtras { tools: None, think: args.think },
        show_thinking: !args.hidethinking,
    })
}

/// Generation options from the command-line flags, with Ollama's defaults for those not given.
fn generate_options(o: &SamplingArgs) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams {
            temperature: o.temperature.unwrap_or(0.8),
            top_k: o.top_k.unwrap_or(40),
            top_p: o.top_p.unwrap_or(0.9),
            min_p: o.min_p.unwrap_or(0.0),
            repeat_penalty: o.repeat_penalty.unwrap_or(1.1),
            repeat_last_n: o.repeat_last_n.unwrap_or(64),
            presence_penalty: o.presence_penalty.unwrap_or(0.0),
            frequency_penalty: o.frequency_penalty.unwrap_or(0.0),
            seed: o.seed,
            ..SamplingParams::default()
        },
        max_tokens: o.num_predict.and_then(|n| usize::try_from(n).ok()),
        stop: o.stop.clone(),
        grammar: None,
        grammar_after: None,
        logprobs: None,
    }
}

/// Streams one answer to stdout; `thinking` splits a reasoning model's thinking from it.
fn answer(
    engine: &mut Engine,
    seq: &mut Sequence,
    opts: &GenerateOptions,
    mut thinking: Option<ThinkingSplitter>,
    show_thinking: bool,
) -> Result<GenerationStats> {
    let mut out = AnswerWriter::new(std::io::stdout().lock(), show_thinking);
    let mut write_failed = false;
    let stats = engine.generate(seq, opts, &mut |text| {
        let split = match thinking.as_mut() {
            Some(s) => s.push(text),
            None => Split { thinking: String::new(), content: text.to_string() },
        };
        // A closed stdout (e.g. `| head`) ends generation instead of failing it.
        write_failed = out.write(&split.content, &split.thinking).is_err();
        !write_failed
    })?;
    if !write_failed {
        let rest = thinking.as_mut().map(ThinkingSplitter::finish).unwrap_or_default();
        let _ = out.write(&rest.content, &rest.thinking).and_then(|_| out.finish());
    }
    Ok(stats)
}

fn timings(stats: &GenerationStats, load: Duration, total: Duration) -> Timings {
    Timings {
        total,
        load,
        prompt_eval_count: stats.prompt_eval_count,
        prompt_eval_duration: stats.prompt_eval_duration,
        eval_count: stats.eval_count,
        eval_duration: stats.eval_duration,
    }
}

/// Prompt tokens for the conversation, dropping the oldest turns (never the system message)
/// until the prompt leaves room for an answer within the context.
fn fit_history(format: &Format, tok: &Tokenizer, messages: &mut Vec<ChatMessage>, num_ctx: usize) -> Result<Vec<u32>> {
    // Keep at least a quarter of the context for the answer.
    let budget = num_ctx - num_ctx / 4;
    loop {
        let tokens = format.chat_tokens(tok, messages)?;
        if tokens.len() <= budget {
            return Ok(tokens);
        }
        let first_turn = usize::from(messages.first().is_some_and(|m| m.role == "system"));
        if messages.len() - first_turn <= 1 {
            bail!(
                "the message has {} tokens, more than the context of {num_ctx} allows; raise --num-ctx",
                tokens.len()
            );
        }
        // Drop the oldest user turn and the answer that followed it.
        messages.remove(first_turn);
        if messages.get(first_turn).is_some_and(|m| m.role == "assistant") {
            messages.remove(first_turn);
        }
    }
}

/// A chat with a model in this process; history is kept within the context.
struct LocalChat<'a> {
    engine: &'a mut Engine,
    format: Format,
    opts: GenerateOptions,
    messages: Vec<ChatMessage>,
    seq: Sequence,
    verbose: bool,
    load: Duration,
}

impl ChatSession for LocalChat<'_> {
    fn say(&mut self, message: String) -> Result<()> {
        self.messages.push(ChatMessage::new("user", message));
        let started = Instant::now();
        let tokens = match fit_history(
            &self.format,
            self.engine.tokenizer(),
            &mut self.messages,
            self.engine.config().num_ctx,
        ) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("Error: {e:#}");
                self.messages.pop();
                return Ok(());
            }
        };
        self.engine.set_tokens(&mut self.seq, &tokens)?;
        let thinking = self.format.splitter(self.engine.tokenizer(), &tokens);
        let stats = answer(self.engine, &mut self.seq, &self.opts, thinking, self.format.show_thinking)?;
        let reply = self.engine.tokenizer().decode(&stats.generated, false);
        self.messages.push(ChatMessage::new("assistant", reply));
        if self.verbose {
            timings(&stats, self.load, started.elapsed()).print();
        }
        Ok(())
    }

    fn clear(&mut self) {
        // The cache goes with the conversation.
        self.messages.retain(|m| m.role == "system");
        self.engine.release(&mut self.seq);
    }
}

fn system_messages(args: &RunArgs) -> Vec<ChatMessage> {
    args.system.iter().map(|s| ChatMessage::new("system", s.clone())).collect()
}

/// An embedding model's vector of the prompt, printed as a JSON array.
fn embed(args: &RunArgs, file: kiln_gguf::GgufFile) -> Result<()> {
    let Some(prompt) = &args.prompt else {
        bail!("embedding models need input text: kiln run {} \"your text here\"", args.model);
    };
    let threads = args.threads.unwrap_or_else(kiln_engine::default_threads).max(1);
    let embedder = Embedder::from_file(std::sync::Arc::new(file), threads)
        .with_context(|| format!("loading model {}", args.model))?;
    let options = EmbedOptions {
        truncate: args.truncate,
        num_ctx: args.options.num_ctx,
        dimensions: args.dimensions,
        ..EmbedOptions::default()
    };
    let mut got = embedder.embed(&[EmbedInput::Text(prompt.clone())], &options)?;
    println!("{}", serde_json::to_string(&got.vectors.pop().unwrap_or_default())?);
    Ok(())
}

pub fn run(args: RunArgs) -> Result<()> {
    let started = Instant::now();
    let path = Path::new(&args.model);
    let file = kiln_gguf::GgufFile::open(path).with_context(|| format!("loading model {}", path.display()))?;
    if kiln_models::is_encoder(&file) {
        return embed(&args, file);
    }
    drop(file);
    let (mut engine, load) = load_engine(path, args.threads, args.options.num_ctx.unwrap_or(DEFAULT_NUM_CTX))?;
    let Some(prompt) = &args.prompt else {
        let format = prompt_format(&engine, &args)?;
        let mut chat = LocalChat {
            engine: &mut engine,
            format,
            opts: generate_options(&args.options),
            messages: system_messages(&args),
            seq: Sequence::default(),
            verbose: args.verbose,
            load,
        };
        let result = chat_loop(&mut chat);
        chat.engine.release(&mut chat.seq);
        return result;
    };
    let (tokens, thinking) = if args.raw {
        (engine.tokenizer().encode(prompt, true, true), None)
    } else {
        let mut messages = system_messages(&args);
        messages.push(ChatMessage::new("user", prompt.clone()));
        let format = prompt_format(&engine, &args)?;
        let tokens = format.chat_tokens(engine.tokenizer(), &messages)?;
        let thinking = format.splitter(engine.tokenizer(), &tokens);
        (tokens, thinking)
    };
    let mut seq = Sequence::default();
    engine.set_tokens(&mut seq, &tokens)?;
    let stats = answer(&mut engine, &mut seq, &generate_options(&args.options), thinking, !args.hidethinking)?;
    if args.verbose {
        timings(&stats, load, started.elapsed()).print();
    }
    Ok(())
}

pub fn tokenize(args: TokenizeArgs) -> Result<()> {
    let (_model, tokenizer, _) = load_model(&args.model)?;
    let ids = tokenizer.encode(&args.text, true, !args.no_parse_special);
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}
