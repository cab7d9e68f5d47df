//! Turning messages into prompt tokens with the model's chat template, and the interactive chat.

use crate::cli::{RunArgs, SamplingArgs};
use anyhow::{bail, Context, Result};
use kiln_engine::chat_template::ChatMessage;
use kiln_engine::prompt::PromptFormat;
use kiln_engine::sampler::SamplingParams;
use kiln_engine::{Engine, GenerateOptions, GenerationStats, Sequence};
use kiln_tokenizer::Tokenizer;
use std::io::{BufRead, Write};
use std::time::Duration;

/// The prompt format for `kiln run`: the template from `--template`, else the model's own;
/// none with `--raw`.
pub fn prompt_format(engine: &Engine, args: &RunArgs) -> Result<PromptFormat> {
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
    Ok(format)
}

/// Generation options from the command-line flags.
pub fn generate_options(o: &SamplingArgs) -> GenerateOptions {
    GenerateOptions {
        sampling: SamplingParams {
            temperature: o.temperature,
            top_k: o.top_k,
            top_p: o.top_p,
            min_p: o.min_p,
            repeat_penalty: o.repeat_penalty,
            repeat_last_n: o.repeat_last_n,
            presence_penalty: o.presence_penalty,
            frequency_penalty: o.frequency_penalty,
            seed: o.seed,
        },
        max_tokens: usize::try_from(o.num_predict).ok(),
        stop: o.stop.clone(),
    }
}

/// Streams one answer to stdout.
pub fn answer(engine: &mut Engine, seq: &mut Sequence, opts: &GenerateOptions) -> Result<GenerationStats> {
    let mut out = std::io::stdout().lock();
    let mut write_failed = false;
    let stats = engine.generate(seq, opts, &mut |text| {
        // A closed stdout (e.g. `| head`) ends generation instead of failing it.
        write_failed = out.write_all(text.as_bytes()).and_then(|_| out.flush()).is_err();
        !write_failed
    })?;
    if !write_failed {
        let _ = writeln!(out);
    }
    Ok(stats)
}

/// Prints timings to stderr the way `ollama run --verbose` does.
pub fn print_stats(stats: &GenerationStats, load: Duration, total: Duration) {
    let rate = |n: usize, d: Duration| if d.is_zero() { 0.0 } else { n as f64 / d.as_secs_f64() };
    eprintln!("total duration:       {total:?}");
    eprintln!("load duration:        {load:?}");
    eprintln!("prompt eval count:    {} token(s)", stats.prompt_eval_count);
    eprintln!("prompt eval duration: {:?}", stats.prompt_eval_duration);
    eprintln!("prompt eval rate:     {:.2} tokens/s", rate(stats.prompt_eval_count, stats.prompt_eval_duration));
    eprintln!("eval count:           {} token(s)", stats.eval_count);
    eprintln!("eval duration:        {:?}", stats.eval_duration);
    eprintln!("eval rate:            {:.2} tokens/s", rate(stats.eval_count, stats.eval_duration));
}

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

/// Prompt tokens for the conversation, dropping the oldest turns (never the system message)
/// until the prompt leaves room for an answer within the context.
fn fit_history(
    format: &PromptFormat,
    tok: &Tokenizer,
    messages: &mut Vec<ChatMessage>,
    num_ctx: usize,
) -> Result<Vec<u32>> {
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

/// The interactive chat: history is kept within the context; `/bye` or end of input leaves.
pub fn interactive(engine: &mut Engine, args: &RunArgs, load: Duration) -> Result<()> {
    let format = prompt_format(engine, args)?;
    let opts = generate_options(&args.options);
    let mut messages: Vec<ChatMessage> = Vec::new();
    if let Some(system) = &args.system {
        messages.push(ChatMessage { role: "system".into(), content: system.clone() });
    }
    let mut seq = Sequence::default();
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
                // Forget the conversation (the system message stays) and its cache.
                messages.retain(|m| m.role == "system");
                engine.release(&mut seq);
                eprintln!("Cleared session context");
                continue;
            }
            "/?" | "/help" => {
                eprintln!("Commands:\n  /clear  forget the conversation\n  /bye    leave\n  \"\"\"     begin or end a multi-line message");
                continue;
            }
            _ => {}
        }
        messages.push(ChatMessage { role: "user".into(), content: message });
        let started = std::time::Instant::now();
        let tokens = match fit_history(&format, engine.tokenizer(), &mut messages, engine.config().num_ctx) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("Error: {e:#}");
                messages.pop();
                continue;
            }
        };
        engine.set_tokens(&mut seq, &tokens)?;
        let stats = answer(engine, &mut seq, &opts)?;
        let reply = engine.tokenizer().decode(&stats.generated, false);
        messages.push(ChatMessage { role: "assistant".into(), content: reply });
        if args.verbose {
            print_stats(&stats, load, started.elapsed());
        }
    }
    engine.release(&mut seq);
    Ok(())
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
