//! Command-line interface. Sampling flags are named after Ollama's options.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(name = "kiln", version, about = "Run open-weight language models locally")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Answer a prompt, or chat interactively when no prompt is given.
    Run(RunArgs),
    /// Measure prompt processing and generation speed (like llama-bench).
    Bench(BenchArgs),
    /// Print the token ids of a text as a JSON list (the model's BOS/EOS rules applied).
    Tokenize(TokenizeArgs),
    /// Serve models over Ollama's and OpenAI's HTTP APIs.
    Serve(ServeArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// Path of a GGUF model file.
    pub model: PathBuf,
    /// Threads for computation (default: one per core).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The prompt; without it, an interactive chat starts.
    pub prompt: Option<String>,
    /// Send the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// System message for the chat template.
    #[arg(long)]
    pub system: Option<String>,
    /// A Jinja chat template file, for models whose file has none (or to override it).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Print timings after each answer, as Ollama's --verbose does.
    #[arg(long)]
    pub verbose: bool,
    #[command(flatten)]
    pub options: SamplingArgs,
}

/// Generation options, named and defaulted as Ollama's.
#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Randomness of sampling; 0 picks the most likely token every time.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Sample among the k most likely tokens (0 = all).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Sample among the most likely tokens whose probabilities add up to p.
    #[arg(long, default_value_t = 0.9, allow_negative_numbers = true)]
    pub top_p: f32,
    /// Drop tokens less likely than min_p times the most likely one.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub min_p: f32,
    /// Random seed; the same seed gives the same answer.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most tokens to generate (-1 = until the model stops or the context is full).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub num_predict: i64,
    /// Context size in tokens (prompt and answer).
    #[arg(long, default_value_t = 4096)]
    pub num_ctx: usize,
    /// Penalty for repeating recent tokens (1 = off).
    #[arg(long, default_value_t = 1.1, allow_negative_numbers = true)]
    pub repeat_penalty: f32,
    /// How many recent tokens the repeat penalty looks at.
    #[arg(long, default_value_t = 64)]
    pub repeat_last_n: usize,
    /// Penalty for tokens that appeared at all (OpenAI's presence_penalty).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub presence_penalty: f32,
    /// Penalty growing with how often a token appeared (OpenAI's frequency_penalty).
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub frequency_penalty: f32,
    /// Stop before this text (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Md,
    Json,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Path of a GGUF model file.
    pub model: PathBuf,
    /// Prompt lengths to test (comma-separated; 0 skips the prompt test).
    #[arg(short = 'p', long = "n-prompt", value_delimiter = ',', default_value = "512")]
    pub n_prompt: Vec<usize>,
    /// Generation lengths to test (comma-separated; 0 skips the generation test).
    #[arg(short = 'n', long = "n-gen", value_delimiter = ',', default_value = "128")]
    pub n_gen: Vec<usize>,
    /// Thread counts to test (comma-separated).
    #[arg(short = 't', long = "threads", value_delimiter = ',')]
    pub threads: Vec<usize>,
    /// Repetitions of each test.
    #[arg(short = 'r', long = "repetitions", default_value_t = 5)]
    pub repetitions: usize,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Md)]
    pub output: OutputFormat,
}

#[derive(Args, Debug)]
pub struct TokenizeArgs {
    /// Path of a GGUF model file.
    pub model: PathBuf,
    /// The text to tokenize.
    pub text: String,
    /// Tokenize special-token text (like "<|im_start|>") as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
}

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Address to listen on: host:port or http://host:port.
    #[arg(long, env = "KILN_HOST", default_value = "127.0.0.1:11434")]
    pub host: String,
    /// Directory whose *.gguf files are served, named by file stem (default: ~/.kiln/models).
    #[arg(long, env = "KILN_MODELS")]
    pub models: Option<PathBuf>,
    /// A model to serve as NAME=PATH (repeatable).
    #[arg(long = "model", value_name = "NAME=PATH")]
    pub model: Vec<String>,
    /// Threads for computation per model (default: one per core).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}
