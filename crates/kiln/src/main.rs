//! `kiln`: run open-weight language models locally.
//!
//! Subcommands: `run` (one answer or an interactive chat), `bench` (llama-bench-style speed
//! report), `tokenize` and `serve` (Ollama- and OpenAI-compatible HTTP server). Answers go to stdout; progress and diagnostics to stderr.

mod bench;
mod chat;
mod cli;
mod load;
mod run;
mod serve;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        cli::Command::Run(args) => run::run(args),
        cli::Command::Bench(args) => bench::bench(args),
        cli::Command::Tokenize(args) => run::tokenize(args),
        cli::Command::Serve(args) => serve::serve(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
