//! `kiln`: run open-weight language models locally.
//!
//! Ollama's commands (`serve`, `create`, `show`, `run`, `stop`, `pull`, `list`, `ps`, `cp`,
//! `rm`) are clients of the server's API (`client`), started inside the command when none is
//! running; `run FILE.gguf`, `bench FILE.gguf` and `tokenize` load a model file directly;
//! `bench serve` load-tests any OpenAI-compatible server. Answers go to stdout; progress and
//! diagnostics to stderr.

mod answer;
mod bench;
mod bench_serve;
mod chat;
mod cli;
mod client;
mod commands;
mod format;
mod load;
mod local;
mod progress;
mod serve;

use clap::Parser;
use cli::{BenchCommand, BenchSubcommand, Command};
use client::Client;
use commands::{create, list, manage, pull, run, show};

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Run(args) if local::is_model_file(&args.model) => local::run(args),
        Command::Run(args) => run::run(args),
        Command::Bench(BenchCommand { command: Some(BenchSubcommand::Serve(args)), .. }) => {
            bench_serve::bench_serve(args)
        }
        Command::Bench(BenchCommand { file: Some(args), .. }) => bench::bench(args),
        // clap already requires the model file when no subcommand is given.
        Command::Bench(_) => Err(anyhow::anyhow!("kiln bench needs a GGUF file, or `serve`")),
        Command::Tokenize(args) => local::tokenize(args),
        Command::Create(args) => Client::connect().and_then(|c| create::create(&c, &args)),
        Command::Show(args) => Client::connect().and_then(|c| show::show(&c, &args)),
        Command::Stop(args) => Client::connect().and_then(|c| manage::stop(&c, &args.name)),
        Command::Pull(args) => Client::connect().and_then(|c| pull::pull(&c, &args.name, args.insecure)),
        Command::List => Client::connect().and_then(|c| list::list(&c)),
        Command::Ps => Client::connect().and_then(|c| list::ps(&c)),
        Command::Cp(args) => Client::connect().and_then(|c| manage::copy(&c, &args.source, &args.destination)),
        Command::Rm(args) => Client::connect().and_then(|c| manage::remove(&c, &args.names)),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
