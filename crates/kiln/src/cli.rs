//! Command-line interface. Sampling flags are named after Ollama's options.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "kiln",
    version,
    about = "Run open-weight language models locally",
    after_help = "Library commands talk to the server at KILN_HOST (default 127.0.0.1:11434), sending KILN_API_KEY \
                  if set; when nothing listens there, they start one inside the command over the library in \
                  KILN_MODELS (default ~/.kiln/models)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve models over Ollama's and OpenAI's HTTP APIs.
    Serve(ServeArgs),
    /// Create a model from a Modelfile.
    Create(CreateArgs),
    /// Show a model's details, Modelfile, parameters, template, system prompt or license.
    Show(ShowArgs),
    /// Answer a prompt, or chat interactively when no prompt is given.
    Run(RunArgs),
    /// Unload a running model.
    Stop(NameArgs),
    /// Download a model from a registry (Ollama's, or Hugging Face with hf.co/...).
    Pull(PullArgs),
    /// List the models in the library.
    #[command(alias = "ls")]
    List,
    /// List the models loaded now.
    Ps,
    /// Copy a model under another name.
    Cp(CopyArgs),
    /// Remove models from the library.
    Rm(RemoveArgs),
    /// Measure prompt processing and generation speed of a GGUF file (like llama-bench), or, with
    /// `bench serve`, a running server's throughput and latency under concurrent streams.
    Bench(BenchCommand),
    /// Print the token ids of a text as a JSON list (the model's BOS/EOS rules applied).
    Tokenize(TokenizeArgs),
}

#[derive(Args, Debug)]
pub struct NameArgs {
    /// The model's name.
    pub name: String,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Name of the new model.
    pub name: String,
    /// The Modelfile to read.
    #[arg(short = 'f', long = "file", default_value = "Modelfile")]
    pub file: PathBuf,
    /// Quantize the weights: q8_0, q4_0, q4_K_M, q5_K_M, q6_K, f16 or f32 (F32, F16 and BF16
    /// weights are kept as they are otherwise).
    #[arg(short = 'q', long)]
    pub quantize: Option<String>,
}

#[derive(Args, Debug)]
#[command(group = clap::ArgGroup::new("part").multiple(false))]
pub struct ShowArgs {
    /// The model's name.
    pub name: String,
    /// Print the model's Modelfile.
    #[arg(long, group = "part")]
    pub modelfile: bool,
    /// Print the model's parameters.
    #[arg(long, group = "part")]
    pub parameters: bool,
    /// Print the model's prompt template.
    #[arg(long, group = "part")]
    pub template: bool,
    /// Print the model's system prompt.
    #[arg(long, group = "part")]
    pub system: bool,
    /// Print the model's license, then a plain-language summary of its terms.
    #[arg(long, group = "part")]
    pub license: bool,
}

#[derive(Args, Debug)]
pub struct PullArgs {
    /// The model's name, e.g. smollm2:135m or hf.co/org/repo:Q4_K_M.
    pub name: String,
    /// Allow plain HTTP and unverified TLS to the registry.
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// The model to copy.
    pub source: String,
    /// The new name.
    pub destination: String,
}

#[derive(Args, Debug)]
pub struct RemoveArgs {
    /// The models to remove.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
#[command(after_help = "For a model by name, only the sampling flags given are sent: the model's PARAMETERs and the \
                        server's defaults apply otherwise. The defaults shown apply to GGUF files run directly.")]
pub struct RunArgs {
    /// A model's name, or the path of a GGUF file (run in this process, without a server).
    pub model: String,
    /// The prompt; without it, an interactive chat starts. For a model by name, as with
    /// `ollama run`, text piped on stdin is (the start of) the prompt instead.
    pub prompt: Option<String>,
    /// Send the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// System message for the chat template (instead of the model's own).
    #[arg(long)]
    pub system: Option<String>,
    /// A chat template file, for models without one (or to override it).
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Print timings after each answer, as Ollama's --verbose does.
    #[arg(long)]
    pub verbose: bool,
    /// Turn a reasoning model's thinking on (`--think`) or off (`--think=false`); by default
    /// the model's template decides.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub think: Option<bool>,
    /// Print only the answer of a reasoning model, not its thinking.
    #[arg(long)]
    pub hidethinking: bool,
    /// Threads for computation (GGUF files only; default: one per core).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
    /// Embedding models: cut input longer than the context (`--truncate=false`: an error).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub truncate: bool,
    /// Embedding models: keep only the first N dimensions of the vector (renormalised).
    #[arg(long)]
    pub dimensions: Option<usize>,
    #[command(flatten)]
    pub options: SamplingArgs,
}

/// Generation options, named as Ollama's. Only those given are sent to a server, so a
/// model's own PARAMETERs apply otherwise; a GGUF file run directly gets the defaults shown.
#[derive(Args, Debug, Clone, Default)]
pub struct SamplingArgs {
    /// Randomness of sampling; 0 picks the most likely token every time [default: 0.8].
    #[arg(long, allow_negative_numbers = true)]
    pub temperature: Option<f32>,
    /// Sample among the k most likely tokens (0 = all) [default: 40].
    #[arg(long)]
    pub top_k: Option<usize>,
    /// Sample among the most likely tokens whose probabilities add up to p [default: 0.9].
    #[arg(long, allow_negative_numbers = true)]
    pub top_p: Option<f32>,
    /// Drop tokens less likely than min_p times the most likely one [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub min_p: Option<f32>,
    /// Random seed; the same seed gives the same answer.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Most tokens to generate (-1 = until the model stops or the context is full) [default: -1].
    #[arg(long, allow_negative_numbers = true)]
    pub num_predict: Option<i64>,
    /// Context size in tokens (prompt and answer) [default: 4096].
    #[arg(long)]
    pub num_ctx: Option<usize>,
    /// Penalty for repeating recent tokens (1 = off) [default: 1.1].
    #[arg(long, allow_negative_numbers = true)]
    pub repeat_penalty: Option<f32>,
    /// How many recent tokens the repeat penalty looks at [default: 64].
    #[arg(long)]
    pub repeat_last_n: Option<usize>,
    /// Penalty for tokens that appeared at all (OpenAI's presence_penalty) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub presence_penalty: Option<f32>,
    /// Penalty growing with how often a token appeared (OpenAI's frequency_penalty) [default: 0].
    #[arg(long, allow_negative_numbers = true)]
    pub frequency_penalty: Option<f32>,
    /// Stop before this text (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Md,
    Json,
}

/// `kiln bench MODEL.gguf ...`, or `kiln bench serve ...`: the subcommand and the file's
/// arguments exclude each other, so today's usage keeps working unchanged.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchCommand {
    #[command(subcommand)]
    pub command: Option<BenchSubcommand>,
    #[command(flatten)]
    pub file: Option<BenchArgs>,
}

#[derive(Subcommand, Debug)]
pub enum BenchSubcommand {
    /// Load-test an OpenAI-compatible server: streamed chat completions at several concurrency
    /// levels (throughput, time to first token, inter-token latency), and optionally the time to
    /// first token with a shared prompt prefix.
    Serve(BenchServeArgs),
}

#[derive(Args, Debug)]
pub struct BenchServeArgs {
    /// Base URL of the server (its `/v1/chat/completions` is used).
    #[arg(long, default_value = "http://127.0.0.1:11434")]
    pub url: String,
    /// The model name sent in each request.
    #[arg(long)]
    pub model: String,
    /// Concurrent streams per level (comma-separated; 0 skips the concurrency test).
    #[arg(short = 'c', long, value_delimiter = ',', default_value = "1,4,8,16,32")]
    pub concurrency: Vec<usize>,
    /// Requests each stream sends, one after another.
    #[arg(short = 'r', long, default_value_t = 2)]
    pub requests_per_stream: usize,
    /// Most tokens per answer.
    #[arg(short = 'n', long, default_value_t = 128)]
    pub max_tokens: u32,
    /// Sampling temperature (0 = greedy, the same answer on every server).
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Also compare the time to first token of two requests sharing a system prompt of about
    /// N tokens (the second one can reuse the first one's cached prefix).
    #[arg(long, value_name = "N")]
    pub shared_prefix: Option<usize>,
    /// Bearer token to send.
    #[arg(long, env = "KILN_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// OpenAI `response_format` object sent with every request, to measure constrained
    /// decoding (e.g. '{"type":"json_object"}').
    #[arg(long, value_name = "JSON")]
    pub response_format: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Md)]
    pub output: OutputFormat,
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
    /// The model library (default: ~/.kiln/models).
    #[arg(long, env = "KILN_MODELS")]
    pub models: Option<PathBuf>,
    /// A GGUF file to serve as NAME=PATH, besides the library (repeatable).
    #[arg(long = "model", value_name = "NAME=PATH")]
    pub model: Vec<String>,
    /// Threads for computation per model (default: one per core).
    #[arg(short = 't', long)]
    pub threads: Option<usize>,
}
