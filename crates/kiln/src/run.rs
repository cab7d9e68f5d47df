//! `kiln run` with a prompt, and `kiln tokenize`.

use crate::chat::{answer, generate_options, interactive, print_stats, prompt_format};
use crate::cli::{RunArgs, TokenizeArgs};
use crate::load::{load_engine, load_model};
use anyhow::Result;
use kiln_engine::chat_template::ChatMessage;
use kiln_engine::Sequence;
use std::time::Instant;

pub fn run(args: RunArgs) -> Result<()> {
    let started = Instant::now();
    let (mut engine, load) = load_engine(&args.model.model, args.model.threads, args.options.num_ctx)?;
    let Some(prompt) = &args.prompt else {
        return interactive(&mut engine, &args, load);
    };
    let tokens = if args.raw {
        engine.tokenizer().encode(prompt, true, true)
    } else {
        let mut messages = Vec::new();
        if let Some(system) = &args.system {
            messages.push(ChatMessage { role: "system".into(), content: system.clone() });
        }
        messages.push(ChatMessage { role: "user".into(), content: prompt.clone() });
        prompt_format(&engine, &args)?.chat_tokens(engine.tokenizer(), &messages)?
    };
    let mut seq = Sequence::default();
    engine.set_tokens(&mut seq, &tokens)?;
    let stats = answer(&mut engine, &mut seq, &generate_options(&args.options))?;
    if args.verbose {
        print_stats(&stats, load, started.elapsed());
    }
    Ok(())
}

pub fn tokenize(args: TokenizeArgs) -> Result<()> {
    let (_model, tokenizer, _) = load_model(&args.model)?;
    let ids = tokenizer.encode(&args.text, true, !args.no_parse_special);
    println!("{}", serde_json::to_string(&ids)?);
    Ok(())
}
