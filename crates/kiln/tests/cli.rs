//! The `kiln` binary end to end: real model, real process, stdout and stderr as a user sees them.

mod common;

use common::{kiln_env, text, Server};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn smollm() -> Option<PathBuf> {
    kiln_testdata::model_path(kiln_testdata::SMOLLM2)
}

fn kiln(args: &[&str], stdin: Option<&str>) -> Output {
    kiln_env(&[], args, stdin)
}

#[test]
fn run_raw_greedy_matches_llama_cpp_continuation() {
    let Some(m) = smollm() else { return };
    let m = m.to_str().unwrap();
    let out = kiln(
        &[
            "run",
            m,
            "The capital of France is",
            "--raw",
            "--temperature",
            "0",
            "--repeat-penalty",
            "1",
            "--num-predict",
            "16",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    // llama.cpp's greedy continuation on the same file.
    assert!(
        text(&out.stdout).starts_with(" Paris.\n\nThe United States has a population of approximately"),
        "{:?}",
        text(&out.stdout)
    );
}

/// `kiln run FILE.gguf "text"` on an embedding model prints the vector as a JSON array; the
/// tiny Nomic BERT fixture's vector matches llama.cpp's. Without text it says what to give.
#[test]
fn run_file_prints_an_embedding_models_vector() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kiln-engine/tests/fixtures");
    let model = fixtures.join("nomic-bert-tiny.gguf");
    let out = kiln(&["run", model.to_str().unwrap(), "hello world"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed: Vec<f32> = serde_json::from_str(text(&out.stdout).trim()).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("nomic-bert-tiny.json")).unwrap()).unwrap();
    let want: Vec<f32> = serde_json::from_value(reference["embeddings"][2].clone()).unwrap();
    assert!(printed.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5), "{printed:?}");
    let out = kiln(&["run", model.to_str().unwrap()], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("embedding models need input text"), "{}", text(&out.stderr));
}

#[test]
fn run_with_chat_template_stop_and_verbose() {
    let Some(m) = smollm() else { return };
    let m = m.to_str().unwrap();
    let out = kiln(
        &["run", m, "What is the capital of France?", "--temperature", "0", "--num-predict", "40", "--verbose"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let answer = text(&out.stdout);
    assert!(answer.contains("Paris"), "{answer:?}");
    let err = text(&out.stderr);
    for field in ["load duration:", "prompt eval count:", "prompt eval rate:", "eval count:", "eval rate:"] {
        assert!(err.contains(field), "missing {field} in {err}");
    }
    // The same request stopped at "Paris": the stop text is not printed.
    let out = kiln(
        &["run", m, "What is the capital of France?", "--temperature", "0", "--num-predict", "40", "--stop", "Paris"],
        None,
    );
    let stopped = text(&out.stdout);
    assert!(!stopped.contains("Paris") && answer.starts_with(stopped.trim_end()), "{stopped:?} vs {answer:?}");
}

#[test]
fn seeded_sampling_is_reproducible() {
    let Some(m) = smollm() else { return };
    let m = m.to_str().unwrap();
    let args = ["run", m, "Tell me a story.", "--seed", "42", "--temperature", "1.0", "--num-predict", "24"];
    let a = kiln(&args, None);
    let b = kiln(&args, None);
    assert!(a.status.success());
    assert_eq!(a.stdout, b.stdout);
    assert!(!a.stdout.is_empty());
}

#[test]
fn interactive_chat_keeps_history_and_leaves_on_bye() {
    let Some(m) = smollm() else { return };
    let m = m.to_str().unwrap();
    // One line per answer (stop at a newline), greedy so runs are comparable.
    let args = ["run", m, "--temperature", "0", "--num-predict", "24", "--stop", "\n"];
    let chat =
        kiln(&args, Some("My name is Alice and I live in Paris.\n\"\"\"Where do\nI live?\"\"\"\n/bye\nnever read\n"));
    assert!(chat.status.success(), "{}", text(&chat.stderr));
    let answers: Vec<String> = text(&chat.stdout).lines().map(str::to_string).collect();
    assert_eq!(answers.len(), 2, "two answers, then /bye: {answers:?}");
    // The same question without the first turn gets another answer: the history is in the prompt.
    let alone = kiln(&args, Some("\"\"\"Where do\nI live?\"\"\"\n"));
    let alone: Vec<String> = text(&alone.stdout).lines().map(str::to_string).collect();
    assert_eq!(alone.len(), 1);
    assert_ne!(alone[0], answers[1], "the second answer ignored the first turn");
}

#[test]
fn chat_clear_forgets_the_conversation() {
    let Some(m) = smollm() else { return };
    let m = m.to_str().unwrap();
    let args = ["run", m, "--temperature", "0", "--num-predict", "24", "--stop", "\n"];
    let question = "\"\"\"Where do\nI live?\"\"\"\n";
    // After /clear the question is answered as if it came first.
    let cleared = kiln(&args, Some(&format!("My name is Alice and I live in Paris.\n/clear\n{question}")));
    let alone = kiln(&args, Some(question));
    assert!(cleared.status.success(), "{}", text(&cleared.stderr));
    let cleared: Vec<String> = text(&cleared.stdout).lines().map(str::to_string).collect();
    assert_eq!(cleared.len(), 2, "{cleared:?}");
    assert_eq!(cleared[1], text(&alone.stdout).trim_end_matches('\n'));
    assert!(text(&kiln(&args, Some("/clear\n")).stderr).contains("Cleared"));
}

#[test]
fn tokenize_prints_json_ids() {
    let Some(m) = smollm() else { return };
    let out = kiln(&["tokenize", m.to_str().unwrap(), "The capital of France is"], None);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), "[504,3575,282,4649,314]");
}

#[test]
fn bench_json_has_llama_bench_fields() {
    let Some(m) = smollm() else { return };
    let out = kiln(&["bench", m.to_str().unwrap(), "-p", "16", "-n", "4", "-t", "1", "-r", "2", "-o", "json"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let records: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let records = records.as_array().unwrap();
    assert_eq!(records.len(), 2);
    for r in records {
        for field in ["n_prompt", "n_gen", "n_threads", "avg_ts", "stddev_ts"] {
            assert!(r.get(field).is_some(), "{field} missing in {r}");
        }
        assert!(r["avg_ts"].as_f64().unwrap() > 0.0);
    }
    assert_eq!(records[0]["n_prompt"], 16);
    assert_eq!(records[1]["n_gen"], 4);
}

#[test]
fn bad_input_gets_clear_errors() {
    let dir = std::env::temp_dir().join(format!("kiln-cli-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bogus = dir.join("bogus.gguf");
    std::fs::write(&bogus, b"GGUF\x03\x00\x00\x00garbage").unwrap();
    let out = kiln(&["run", bogus.to_str().unwrap(), "hi"], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("bogus.gguf") && err.contains("past the end of the file"), "{err}");

    let out = kiln(&["run", dir.join("missing.gguf").to_str().unwrap(), "hi"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("missing.gguf"));
    std::fs::remove_dir_all(&dir).unwrap();

    let Some(m) = smollm() else { return };
    let m = m.to_str().unwrap();
    let out = kiln(&["run", m, "hi", "--temperature", "-1"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("temperature"), "{}", text(&out.stderr));
    let out = kiln(&["run", m, "hi", "--top-p", "7"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("top_p"), "{}", text(&out.stderr));
    let long = "word ".repeat(200);
    let out = kiln(&["run", m, &long, "--raw", "--num-ctx", "64"], None);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("context size of 64"), "{}", text(&out.stderr));
}

#[test]
fn gemma3_chat_through_a_given_template() {
    let Some(m) = kiln_testdata::model_path(kiln_testdata::GEMMA3) else { return };
    let template =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kiln-engine/tests/fixtures/templates/gemma3.jinja");
    let args =
        ["run", m.to_str().unwrap(), "What is the capital of France?", "--temperature", "0", "--num-predict", "24"];
    let mut with_template = args.to_vec();
    with_template.extend(["--template", template.to_str().unwrap()]);
    let out = kiln(&with_template, None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).trim().is_empty());
    // Without one, the base model's file has no template: the prompt goes as is, with a note.
    let plain = kiln(&args, None);
    assert!(text(&plain.stderr).contains("no chat template"), "{}", text(&plain.stderr));
    assert_ne!(plain.stdout, out.stdout);
}

/// A port just released by the OS: nothing listens there.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn bench_serve_reports_an_unreachable_server() {
    let url = format!("http://127.0.0.1:{}", free_port());
    let out = kiln(&["bench", "serve", "--url", &url, "--model", "m", "-c", "2"], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains(&format!("the server at {url} did not answer")), "{err}");
}

#[test]
fn bench_serve_measures_kiln_serve() {
    let Some(m) = smollm() else { return };
    let library = std::env::temp_dir().join(format!("kiln-bench-serve-test-{}", std::process::id()));
    std::fs::create_dir_all(&library).unwrap();
    let host = format!("127.0.0.1:{}", free_port());
    let mut serve = Command::new(env!("CARGO_BIN_EXE_kiln"));
    serve
        .args(["serve", "--host", &host, "-t", "1", "--model"])
        .arg(format!("smol={}", m.display()))
        .env("KILN_MODELS", &library)
        .env("KILN_API_KEY", "")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut server = Server(serve.spawn().unwrap());
    // Wait for it to listen (a start, not a measurement).
    while TcpStream::connect(&host).is_err() {
        assert!(server.0.try_wait().unwrap().is_none(), "kiln serve exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    let url = format!("http://{host}");
    let args = ["bench", "serve", "--url", &url, "--model", "smol", "-c", "1,2", "-r", "1", "-n", "4"];
    let out = kiln(&[&args[..], &["--shared-prefix", "64", "-o", "json"]].concat(), None);
    let _ = std::fs::remove_dir_all(&library);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let levels = report["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for (level, concurrency) in levels.iter().zip([1, 2]) {
        assert_eq!(level["concurrency"], concurrency);
        assert_eq!(level["requests"], concurrency);
        assert_eq!(level["errors"], 0, "{level}");
        assert!(level["completion_tokens"].as_u64().unwrap() > 0, "{level}");
        assert!(level["ttft_p50_ms"].as_f64().is_some(), "{level}");
    }
    let prefix = &report["shared_prefix"];
    assert_eq!(prefix["target_tokens"], 64);
    assert!(prefix["prompt_tokens"].as_u64().unwrap() > 40, "{prefix}");
    assert!(prefix["ratio"].as_f64().is_some(), "{prefix}");
}
