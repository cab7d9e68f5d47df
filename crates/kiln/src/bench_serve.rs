//! `kiln bench serve`: a load generator for any OpenAI-compatible server, so Kiln and other
//! servers (llama.cpp's llama-server) can be measured by one client with the same prompts.
//!
//! Each concurrency level runs that many streams at once, one OS thread each (a blocking
//! client keeps the timing path simple and the client's own overhead small next to a model's).
//! Every request streams `/v1/chat/completions` and is timed from just before it is sent: the
//! time to first token is the first non-empty content delta, the inter-token latencies the gaps
//! between deltas, the token count the final usage chunk's. The shared-prefix test sends two
//! requests with the same long system prompt one after the other, to show prefix caching.

use crate::cli::{BenchServeArgs, OutputFormat};
use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use ureq::Agent;

/// Token counts from a stream's final usage chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Usage {
    prompt_tokens: u64,
    completion_tokens: u64,
}

/// What one `data:` line of a chat completion stream says.
#[derive(Debug, PartialEq)]
enum SseEvent {
    /// A chunk: its content delta (empty when it carries none) and, on the last one, usage.
    Chunk { content: String, usage: Option<Usage> },
    /// `data: [DONE]`.
    Done,
    /// An error object sent after the stream began (the status was already 200).
    Error(String),
}

/// Parses one line of a server-sent event stream; `None` for lines that carry no data (the
/// blank separators, comments, `event:` fields).
fn parse_sse_line(line: &str) -> Result<Option<SseEvent>> {
    let Some(data) = line.strip_prefix("data:") else { return Ok(None) };
    let data = data.trim();
    if data == "[DONE]" {
        return Ok(Some(SseEvent::Done));
    }
    let v: Value = serde_json::from_str(data).with_context(|| format!("reading the stream line {line:?}"))?;
    if let Some(error) = v.get("error") {
        // OpenAI's envelope is {"error": {"message": ...}}; some servers send a bare string.
        let message = error.get("message").and_then(Value::as_str).or(error.as_str()).unwrap_or("unknown error");
        return Ok(Some(SseEvent::Error(message.to_string())));
    }
    let content = v["choices"][0]["delta"]["content"].as_str().unwrap_or_default().to_string();
    let usage = v.get("usage").filter(|u| !u.is_null()).map(|u| Usage {
        prompt_tokens: u["prompt_tokens"].as_u64().unwrap_or(0),
        completion_tokens: u["completion_tokens"].as_u64().unwrap_or(0),
    });
    Ok(Some(SseEvent::Chunk { content, usage }))
}

/// One successful request's measurements.
#[derive(Debug, Clone, PartialEq)]
struct RequestStats {
    /// `None` when the answer was empty.
    ttft: Option<Duration>,
    itl: Vec<Duration>,
    completion_tokens: u64,
    prompt_tokens: Option<u64>,
}

/// The events of one streamed answer as they arrive, each with its time since the request was sent.
#[derive(Default)]
struct Trace {
    deltas: Vec<Duration>,
    usage: Option<Usage>,
    done: bool,
}

impl Trace {
    fn observe(&mut self, at: Duration, event: SseEvent) -> Result<()> {
        match event {
            SseEvent::Chunk { content, usage } => {
                // The first chunk of some servers carries only the role: it is not a token.
                if !content.is_empty() {
                    self.deltas.push(at);
                }
                self.usage = usage.or(self.usage);
            }
            SseEvent::Done => self.done = true,
            SseEvent::Error(message) => bail!("the server stopped the stream: {message}"),
        }
        Ok(())
    }

    fn finish(self) -> Result<RequestStats> {
        if !self.done {
            bail!("the stream ended before data: [DONE]");
        }
        Ok(RequestStats {
            ttft: self.deltas.first().copied(),
            itl: self.deltas.windows(2).map(|w| w[1] - w[0]).collect(),
            // Without usage, one delta per token is the best guess (servers send one each).
            completion_tokens: self.usage.map_or(self.deltas.len() as u64, |u| u.completion_tokens),
            prompt_tokens: self.usage.map(|u| u.prompt_tokens),
        })
    }
}

/// Nearest-rank percentile of ascending `sorted`: the smallest value with at least `p`% of the
/// values at or below it (always one of the values, no interpolation).
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (p * sorted.len() as f64 / 100.0).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

fn millis_sorted(durations: impl Iterator<Item = Duration>) -> Vec<f64> {
    let mut ms: Vec<f64> = durations.map(|d| d.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    ms
}

/// One concurrency level's results.
#[derive(Serialize, Debug, PartialEq)]
struct LevelReport {
    concurrency: usize,
    requests: usize,
    errors: usize,
    completion_tokens: u64,
    wall_s: f64,
    /// Completion tokens of all successful requests over the level's wall time.
    tokens_per_s: f64,
    ttft_p50_ms: Option<f64>,
    ttft_p99_ms: Option<f64>,
    itl_p50_ms: Option<f64>,
    itl_p99_ms: Option<f64>,
    /// The first failure's message, so a broken run says why.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_error: Option<String>,
}

fn aggregate(concurrency: usize, wall: Duration, outcomes: &[Result<RequestStats>]) -> LevelReport {
    let ok: Vec<&RequestStats> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    let completion_tokens = ok.iter().map(|s| s.completion_tokens).sum();
    let ttft = millis_sorted(ok.iter().filter_map(|s| s.ttft));
    let itl = millis_sorted(ok.iter().flat_map(|s| s.itl.iter().copied()));
    let wall_s = wall.as_secs_f64();
    LevelReport {
        concurrency,
        requests: outcomes.len(),
        errors: outcomes.len() - ok.len(),
        completion_tokens,
        wall_s,
        tokens_per_s: if wall_s > 0.0 { completion_tokens as f64 / wall_s } else { 0.0 },
        ttft_p50_ms: percentile(&ttft, 50.0),
        ttft_p99_ms: percentile(&ttft, 99.0),
        itl_p50_ms: percentile(&itl, 50.0),
        itl_p99_ms: percentile(&itl, 99.0),
        first_error: outcomes.iter().find_map(|o| o.as_ref().err().map(|e| format!("{e:#}"))),
    }
}

const TOPICS: [&str; 16] = [
    "a lighthouse on a stormy coast",
    "the history of bread",
    "a journey across the Sahara",
    "how bees build their hives",
    "the first voyage to Mars",
    "an old clockmaker's workshop",
    "the life of a river from its source to the sea",
    "a city built under the ocean",
    "how volcanoes form and erupt",
    "a chess tournament in Vienna",
    "the invention of the printing press",
    "a winter in a mountain village",
    "the migration of whales",
    "a robot learning to paint",
    "a library that never closes",
    "the rise and fall of a trading port",
];

const FORMS: [&str; 8] = [
    "Write a long story about",
    "Write a detailed essay about",
    "Explain in depth, step by step, everything you know about",
    "Write a long letter to a friend about",
    "Describe, section by section and in great detail,",
    "Write a long dialogue between two experts about",
    "Write a long poem about",
    "Write a long beginner's guide about",
];

/// The `i`th benchmark prompt: distinct for every `i` (the topic changes fastest, so requests
/// sent together differ from their first words on), asking for a long answer.
fn prompt(i: usize) -> String {
    let combos = TOPICS.len() * FORMS.len();
    let base = format!("{} {}.", FORMS[(i / TOPICS.len()) % FORMS.len()], TOPICS[i % TOPICS.len()]);
    match i / combos {
        0 => base,
        round => format!("{base} (Version {}.)", round + 1),
    }
}

const FILLER: &str = "The archive holds letters, maps and ledgers from the harbour office, sorted by year and \
                      by ship. Each ledger lists the cargo, the crew, the weather on departure and the price \
                      paid for every barrel of oil, sack of grain and bolt of cloth that crossed the quay.";

/// A system prompt of about `tokens` tokens (at about 1.3 tokens per English word), opened by
/// `nonce` so that no earlier request can have cached it.
fn shared_prefix_text(tokens: usize, nonce: u64) -> String {
    let words = (tokens as f64 / 1.3).ceil() as usize;
    let body: Vec<&str> = FILLER.split_whitespace().cycle().take(words).collect();
    format!("Session {nonce}. Answer questions about these notes.\n\n{}", body.join(" "))
}

/// The server under test and what every request asks of it.
struct Target {
    agent: Agent,
    endpoint: String,
    model: String,
    api_key: Option<String>,
    temperature: f32,
    response_format: Option<Value>,
}

impl Target {
    fn new(args: &BenchServeArgs) -> Result<Target> {
        let response_format = args
            .response_format
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .context("--response-format is not JSON")?;
        let base = if args.url.contains("://") { args.url.clone() } else { format!("http://{}", args.url) };
        let base = base.trim_end_matches('/').trim_end_matches("/v1");
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(5)))
            // Keep a connection per stream, so later requests do not pay for connecting.
            .max_idle_connections_per_host(args.concurrency.iter().copied().max().unwrap_or(1).max(1))
            .build();
        Ok(Target {
            agent: Agent::new_with_config(config),
            endpoint: format!("{base}/v1/chat/completions"),
            model: args.model.clone(),
            api_key: args.api_key.clone(),
            temperature: args.temperature,
            response_format,
        })
    }

    /// Streams one chat completion and times it.
    fn chat(&self, messages: Value, max_tokens: u32) -> Result<RequestStats> {
        let mut body = json!({
            "model": self.model,
            "messages": messages,
            "stream": true,
            "stream_options": { "include_usage": true },
            "max_tokens": max_tokens,
            "temperature": self.temperature,
        });
        if let Some(format) = &self.response_format {
            body["response_format"] = format.clone();
        }
        let mut request = self.agent.post(&self.endpoint).header("Content-Type", "application/json");
        if let Some(key) = &self.api_key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        let start = Instant::now();
        let mut response = request.send(body.to_string()).with_context(|| format!("POST {}", self.endpoint))?;
        let status = response.status();
        if status != 200 {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            bail!("HTTP {status}: {}", text.trim());
        }
        let mut trace = Trace::default();
        for line in BufReader::new(response.into_body().into_reader()).lines() {
            let line = line.context("reading the stream")?;
            let at = start.elapsed();
            if let Some(event) = parse_sse_line(&line)? {
                trace.observe(at, event)?;
                if trace.done {
                    break;
                }
            }
        }
        trace.finish()
    }
}

fn user(text: &str) -> Value {
    json!([{ "role": "user", "content": text }])
}

/// Runs `concurrency` streams of `per_stream` requests each; returns the wall time and every
/// request's outcome. Prompts come from the shared counter, so none repeats within a run.
fn run_level(
    target: &Target,
    concurrency: usize,
    per_stream: usize,
    max_tokens: u32,
    next_prompt: &AtomicUsize,
) -> (Duration, Vec<Result<RequestStats>>) {
    let start = Instant::now();
    let outcomes = std::thread::scope(|scope| {
        let streams: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| {
                    (0..per_stream)
                        .map(|_| target.chat(user(&prompt(next_prompt.fetch_add(1, Ordering::Relaxed))), max_tokens))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        streams
            .into_iter()
            .flat_map(|s| s.join().unwrap_or_else(|_| vec![Err(anyhow!("a stream's thread panicked"))]))
            .collect()
    });
    (start.elapsed(), outcomes)
}

#[derive(Serialize, Debug)]
struct PrefixReport {
    /// The prefix length asked for.
    target_tokens: usize,
    /// What the server counted for request A (prefix, question and chat template).
    prompt_tokens: Option<u64>,
    ttft_a_ms: f64,
    ttft_b_ms: f64,
    ratio: f64,
}

/// Request A (prefix + question 1), then, once it is done, request B (same prefix + question 2).
fn shared_prefix(target: &Target, tokens: usize, max_tokens: u32) -> Result<PrefixReport> {
    let nonce = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let system = shared_prefix_text(tokens, nonce);
    let ask = |question: &str| {
        let messages = json!([{ "role": "system", "content": system }, { "role": "user", "content": question }]);
        let stats = target.chat(messages, max_tokens)?;
        let ttft = stats.ttft.ok_or_else(|| anyhow!("the answer to {question:?} was empty"))?;
        Ok::<_, anyhow::Error>((ttft.as_secs_f64() * 1e3, stats.prompt_tokens))
    };
    let (ttft_a_ms, prompt_tokens) = ask("Summarize the notes above in a few sentences.").context("request A")?;
    let (ttft_b_ms, _) = ask("Which goods do the ledgers list? Explain at length.").context("request B")?;
    Ok(PrefixReport { target_tokens: tokens, prompt_tokens, ttft_a_ms, ttft_b_ms, ratio: ttft_b_ms / ttft_a_ms })
}

/// The shared-prefix test's result, or why it has none.
#[derive(Serialize, Debug)]
#[serde(untagged)]
enum PrefixOutcome {
    Measured(PrefixReport),
    Failed { error: String },
}

#[derive(Serialize)]
struct Report<'a> {
    url: &'a str,
    model: &'a str,
    max_tokens: u32,
    temperature: f32,
    requests_per_stream: usize,
    levels: Vec<LevelReport>,
    /// Null when not asked for.
    shared_prefix: Option<PrefixOutcome>,
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn markdown(report: &Report) -> String {
    let mut out = String::new();
    if !report.levels.is_empty() {
        out.push_str("| concurrency | requests | errors | tokens | wall s | tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms |\n");
        out.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        for l in &report.levels {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.2} | {:.1} | {} | {} | {} | {} |\n",
                l.concurrency,
                l.requests,
                l.errors,
                l.completion_tokens,
                l.wall_s,
                l.tokens_per_s,
                ms(l.ttft_p50_ms),
                ms(l.ttft_p99_ms),
                ms(l.itl_p50_ms),
                ms(l.itl_p99_ms)
            ));
        }
    }
    if let Some(prefix) = &report.shared_prefix {
        if !out.is_empty() {
            out.push('\n');
        }
        match prefix {
            PrefixOutcome::Measured(p) => {
                out.push_str("| shared prefix | prompt tokens | TTFT A ms | TTFT B ms | B / A |\n");
                out.push_str("| ---: | ---: | ---: | ---: | ---: |\n");
                let prompt_tokens = p.prompt_tokens.map_or("-".into(), |t| t.to_string());
                out.push_str(&format!(
                    "| {} | {prompt_tokens} | {:.1} | {:.1} | {:.2} |\n",
                    p.target_tokens, p.ttft_a_ms, p.ttft_b_ms, p.ratio
                ));
            }
            PrefixOutcome::Failed { error } => out.push_str(&format!("shared prefix: failed: {error}\n")),
        }
    }
    out
}

pub fn bench_serve(args: BenchServeArgs) -> Result<()> {
    if args.requests_per_stream == 0 {
        bail!("--requests-per-stream must be at least 1");
    }
    let target = Target::new(&args)?;
    // One short request first: it proves the server answers (a clear error otherwise) and keeps
    // a server's lazy model loading out of the measurements.
    target
        .chat(user("Say hello."), 1)
        .with_context(|| format!("the server at {} did not answer a first request for '{}'", args.url, args.model))?;
    let next_prompt = AtomicUsize::new(0);
    let mut levels = Vec::new();
    for &concurrency in args.concurrency.iter().filter(|&&c| c > 0) {
        eprintln!("concurrency {concurrency}: {} requests", concurrency * args.requests_per_stream);
        let (wall, outcomes) = run_level(&target, concurrency, args.requests_per_stream, args.max_tokens, &next_prompt);
        let level = aggregate(concurrency, wall, &outcomes);
        if let Some(e) = &level.first_error {
            eprintln!("concurrency {concurrency}: {} of {} requests failed, first: {e}", level.errors, level.requests);
        }
        levels.push(level);
    }
    let shared_prefix = args.shared_prefix.map(|tokens| {
        eprintln!("shared prefix of about {tokens} tokens");
        match shared_prefix(&target, tokens, args.max_tokens) {
            Ok(p) => PrefixOutcome::Measured(p),
            Err(e) => {
                eprintln!("shared prefix: {e:#}");
                PrefixOutcome::Failed { error: format!("{e:#}") }
            }
        }
    });
    let report = Report {
        url: &args.url,
        model: &args.model,
        max_tokens: args.max_tokens,
        temperature: args.temperature,
        requests_per_stream: args.requests_per_stream,
        levels,
        shared_prefix,
    };
    match args.output {
        OutputFormat::Md => print!("{}", markdown(&report)),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn chunk(content: &str) -> SseEvent {
        SseEvent::Chunk { content: content.into(), usage: None }
    }

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        let xs: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), Some(5.0));
        assert_eq!(percentile(&xs, 51.0), Some(6.0));
        assert_eq!(percentile(&xs, 99.0), Some(10.0));
        assert_eq!(percentile(&xs, 100.0), Some(10.0));
        assert_eq!(percentile(&xs, 0.0), Some(1.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 99.0), Some(99.0));
        assert_eq!(percentile(&[1.0, 2.0, 3.0, 4.0], 50.0), Some(2.0));
    }

    #[test]
    fn sse_lines() {
        assert_eq!(parse_sse_line("").unwrap(), None);
        assert_eq!(parse_sse_line(": keep-alive").unwrap(), None);
        assert_eq!(parse_sse_line("event: message").unwrap(), None);
        assert_eq!(parse_sse_line("data: [DONE]").unwrap(), Some(SseEvent::Done));
        assert_eq!(parse_sse_line("data:[DONE]").unwrap(), Some(SseEvent::Done));
        let first = r#"data: {"choices":[{"index":0,"delta":{"role":"assistant","content":null}}]}"#;
        assert_eq!(parse_sse_line(first).unwrap(), Some(chunk("")));
        let text = r#"data: {"choices":[{"index":0,"delta":{"content":" Once"},"finish_reason":null}]}"#;
        assert_eq!(parse_sse_line(text).unwrap(), Some(chunk(" Once")));
        let usage = r#"data: {"choices":[],"usage":{"prompt_tokens":31,"completion_tokens":128,"total_tokens":159}}"#;
        let want = Usage { prompt_tokens: 31, completion_tokens: 128 };
        assert_eq!(parse_sse_line(usage).unwrap(), Some(SseEvent::Chunk { content: String::new(), usage: Some(want) }));
        let null_usage = r#"data: {"choices":[{"delta":{"content":"a"}}],"usage":null}"#;
        assert_eq!(parse_sse_line(null_usage).unwrap(), Some(chunk("a")));
        let error = r#"data: {"error":{"message":"model crashed","type":"server_error"}}"#;
        assert_eq!(parse_sse_line(error).unwrap(), Some(SseEvent::Error("model crashed".into())));
        assert_eq!(parse_sse_line(r#"data: {"error":"busy"}"#).unwrap(), Some(SseEvent::Error("busy".into())));
        assert!(parse_sse_line("data: {not json").is_err());
    }

    fn trace(events: Vec<(u64, SseEvent)>) -> Result<RequestStats> {
        let mut t = Trace::default();
        for (at, e) in events {
            t.observe(ms(at), e)?;
        }
        t.finish()
    }

    #[test]
    fn trace_times_content_deltas_and_reads_usage() {
        let usage = Usage { prompt_tokens: 20, completion_tokens: 5 };
        let stats = trace(vec![
            (10, chunk("")),
            (40, chunk("Once")),
            (50, chunk(" upon")),
            (65, chunk(" a time")),
            (70, chunk("")),
            (71, SseEvent::Chunk { content: String::new(), usage: Some(usage) }),
            (72, SseEvent::Done),
        ])
        .unwrap();
        assert_eq!(stats.ttft, Some(ms(40)));
        assert_eq!(stats.itl, vec![ms(10), ms(15)]);
        assert_eq!(stats.completion_tokens, 5);
        assert_eq!(stats.prompt_tokens, Some(20));
    }

    #[test]
    fn trace_without_usage_counts_deltas() {
        let stats = trace(vec![(5, chunk("a")), (6, chunk("b")), (7, SseEvent::Done)]).unwrap();
        assert_eq!((stats.completion_tokens, stats.prompt_tokens), (2, None));
        let empty = trace(vec![(5, chunk("")), (7, SseEvent::Done)]).unwrap();
        assert_eq!((empty.ttft, empty.completion_tokens), (None, 0));
    }

    #[test]
    fn trace_failures() {
        let cut = trace(vec![(5, chunk("a"))]).unwrap_err();
        assert!(cut.to_string().contains("[DONE]"), "{cut}");
        let error = trace(vec![(5, chunk("a")), (6, SseEvent::Error("out of memory".into()))]).unwrap_err();
        assert!(error.to_string().contains("out of memory"), "{error}");
    }

    fn stats(ttft: u64, itl: &[u64], tokens: u64) -> Result<RequestStats> {
        Ok(RequestStats {
            ttft: Some(ms(ttft)),
            itl: itl.iter().map(|&i| ms(i)).collect(),
            completion_tokens: tokens,
            prompt_tokens: None,
        })
    }

    #[test]
    fn aggregate_level() {
        let outcomes =
            vec![stats(100, &[10, 20], 30), Err(anyhow!("HTTP 503: busy")), stats(300, &[30], 20), stats(200, &[], 50)];
        let level = aggregate(2, Duration::from_secs(4), &outcomes);
        assert_eq!(
            level,
            LevelReport {
                concurrency: 2,
                requests: 4,
                errors: 1,
                completion_tokens: 100,
                wall_s: 4.0,
                tokens_per_s: 25.0,
                ttft_p50_ms: Some(200.0),
                ttft_p99_ms: Some(300.0),
                itl_p50_ms: Some(20.0),
                itl_p99_ms: Some(30.0),
                first_error: Some("HTTP 503: busy".into()),
            }
        );
        let failed = aggregate(1, Duration::from_secs(1), &[Err(anyhow!("refused"))]);
        assert_eq!((failed.errors, failed.tokens_per_s, failed.ttft_p50_ms), (1, 0.0, None));
    }

    #[test]
    fn prompts_are_distinct() {
        let prompts: std::collections::HashSet<String> = (0..1000).map(prompt).collect();
        assert_eq!(prompts.len(), 1000);
        assert!(prompt(0).starts_with("Write a long story about"));
    }

    #[test]
    fn shared_prefix_has_the_asked_length() {
        let text = shared_prefix_text(1000, 7);
        assert!(text.starts_with("Session 7."));
        let words = text.split_whitespace().count();
        assert!((770..800).contains(&words), "{words} words");
        assert_eq!(shared_prefix_text(1000, 8)[10..], text[10..]);
    }

    #[test]
    fn markdown_tables() {
        let report = Report {
            url: "http://x",
            model: "m",
            max_tokens: 8,
            temperature: 0.0,
            requests_per_stream: 2,
            levels: vec![aggregate(1, Duration::from_secs(2), &[stats(100, &[10], 20)])],
            shared_prefix: Some(PrefixOutcome::Measured(PrefixReport {
                target_tokens: 1000,
                prompt_tokens: Some(1012),
                ttft_a_ms: 800.0,
                ttft_b_ms: 40.0,
                ratio: 0.05,
            })),
        };
        let md = markdown(&report);
        assert!(md.contains("| 1 | 1 | 0 | 20 | 2.00 | 10.0 | 100.0 | 100.0 | 10.0 | 10.0 |"), "{md}");
        assert!(md.contains("| 1000 | 1012 | 800.0 | 40.0 | 0.05 |"), "{md}");
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["levels"][0]["tokens_per_s"], 10.0);
        assert_eq!(json["shared_prefix"]["ratio"], 0.05);
        let failed = Report { shared_prefix: Some(PrefixOutcome::Failed { error: "HTTP 404".into() }), ..report };
        assert_eq!(serde_json::to_value(&failed).unwrap()["shared_prefix"]["error"], "HTTP 404");
    }
}
