//! Times grammar masks token by token along valid documents (the numbers in docs/BENCHMARKS.md):
//!     cargo run --release -p kiln-engine --example mask_cost -- MODEL.gguf
use kiln_engine::constraint::{Grammar, GrammarCompiler};
use kiln_gguf::GgufFile;
use kiln_tokenizer::Tokenizer;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let path = std::env::args().nth(1).expect("usage: mask_cost MODEL.gguf");
    let tok = Arc::new(Tokenizer::from_gguf(&GgufFile::open(path).expect("model")).expect("tokenizer"));
    let t = Instant::now();
    let compiler = GrammarCompiler::new(Arc::clone(&tok)).expect("compiler");
    println!("vocabulary of {} tokens indexed in {:.1} ms", tok.n_vocab(), ms(t.elapsed()));

    let words: Vec<serde_json::Value> =
        (0..40).map(|i| json!({ "word": format!("item{i}"), "n": i * 7 % 1000 })).collect();
    let array = json!({
        "type": "array", "minItems": 40, "maxItems": 40,
        "items": { "type": "object", "additionalProperties": false, "required": ["word", "n"],
                   "properties": { "word": { "type": "string", "maxLength": 12 },
                                   "n": { "type": "integer", "minimum": 0, "maximum": 999 } } }
    });
    let story = "Once upon a time, a small robot lived in a quiet village by the sea. ".repeat(8);
    let cases = [
        (
            "json_object",
            Grammar::JsonObject,
            json!({ "name": "Ann", "tags": ["a", "b"], "n": { "x": 1.5 } }).to_string(),
        ),
        (
            "array of 40 objects",
            Grammar::JsonSchema { schema: array, strict: true },
            serde_json::Value::from(words).to_string(),
        ),
        (
            "object with a long string",
            Grammar::JsonSchema {
                schema: json!({ "type": "object", "properties": { "story": { "type": "string" } } }),
                strict: true,
            },
            json!({ "story": story }).to_string(),
        ),
        (
            "regex",
            Grammar::Regex("([a-z]+ ){1,200}[a-z]+".into()),
            "the quick brown fox jumps over the lazy dog ".repeat(10).trim_end().into(),
        ),
    ];
    println!("| grammar | compile ms | tokens | mask µs mean | p50 | p99 | max |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, grammar, doc) in cases {
        let t = Instant::now();
        let mut c = compiler.compile(&grammar).expect("grammar compiles");
        let compile = t.elapsed();
        let tokens = tok.encode(&doc, false, false);
        let mut times = Vec::with_capacity(tokens.len());
        for &token in &tokens {
            let t = Instant::now();
            c.prepare();
            times.push(t.elapsed());
            c.allowed().expect("mask");
            c.commit(token).expect("the document matches its grammar");
        }
        times.sort_unstable();
        let mean = times.iter().sum::<Duration>() / times.len() as u32;
        let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
        println!(
            "| {name} | {:.2} | {} | {:.0} | {:.0} | {:.0} | {:.0} |",
            ms(compile),
            tokens.len(),
            us(mean),
            us(at(0.5)),
            us(at(0.99)),
            us(times[times.len() - 1])
        );
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}
