//! The library commands end to end (`create`, `list`, `show`, `run NAME`, `cp`, `rm`, `ps`,
//! `stop`): the real binary over a temporary library, through the server it embeds when
//! nothing listens at KILN_HOST, or through a `kiln serve` child process.

mod common;

use common::{kiln_env, text, Server};
use kiln_library::modelfile::Modelfile;
use kiln_library::parameters;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// A temporary library and a KILN_HOST where nothing listens (unless a test serves there).
struct Library {
    dir: PathBuf,
    models: String,
    host: String,
    registry: String,
}

impl Library {
    fn new(tag: &str) -> Library {
        let dir = std::env::temp_dir().join(format!("kiln-library-test-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        // A port just released by the OS: free, so the commands start their own server.
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let models = dir.join("models").to_str().unwrap().to_string();
        // Pulls (`run` of a missing model pulls it) go to a registry that is not there.
        let registry =
            format!("http://127.0.0.1:{}", TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
        Library { dir, models, host: format!("127.0.0.1:{port}"), registry }
    }

    fn env(&self) -> [(&str, &str); 4] {
        [
            ("KILN_HOST", &self.host),
            ("KILN_MODELS", &self.models),
            ("KILN_API_KEY", ""),
            ("KILN_REGISTRY", &self.registry),
        ]
    }

    fn kiln(&self, args: &[&str]) -> Output {
        kiln_env(&self.env(), args, None)
    }

    /// Runs a command that must succeed; returns its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.kiln(args);
        assert!(out.status.success(), "kiln {args:?} failed: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Runs a command that must fail; returns its stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.kiln(args);
        assert!(!out.status.success(), "kiln {args:?} succeeded: {}", text(&out.stdout));
        text(&out.stderr)
    }

    fn modelfile(&self, name: &str, content: &str) -> String {
        let path = self.dir.join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_string()
    }

    /// Creates `name` from the SmolLM2 file with a system prompt and greedy sampling.
    fn create_smollm(&self, name: &str, model: &Path) -> Output {
        let modelfile = self.modelfile(
            "Modelfile",
            &format!("FROM {}\nSYSTEM You are terse.\nPARAMETER temperature 0\n", model.display()),
        );
        self.kiln(&["create", name, "-f", &modelfile])
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn listed(list: &str, name: &str) -> bool {
    list.lines().skip(1).any(|l| l.split_whitespace().next() == Some(name))
}

#[test]
fn create_list_show_run_copy_and_remove() {
    let Some(model) = kiln_testdata::model_path(kiln_testdata::SMOLLM2) else { return };
    let lib = Library::new("flow");
    let created = lib.create_smollm("smol", &model);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let statuses = text(&created.stderr);
    assert!(statuses.contains("writing manifest") && statuses.trim_end().ends_with("success"), "{statuses}");

    let list = lib.ok(&["list"]);
    let header: Vec<&str> = list.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ID", "SIZE", "MODIFIED"]);
    let row: Vec<&str> = list.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[0], "smol:latest");
    assert!(row[1].len() == 12 && row[1].chars().all(|c| c.is_ascii_hexdigit()), "{list}");
    assert_eq!(&row[2..4], ["98", "MB"], "{list}");
    assert!(list.contains(" ago"), "{list}");

    let summary = lib.ok(&["show", "smol"]);
    for want in ["architecture", "llama", "135M", "context length", "8192", "Q4_1", "completion", "You are terse."] {
        assert!(summary.contains(want), "{want} missing in {summary}");
    }
    let modelfile = Modelfile::parse(&lib.ok(&["show", "smol", "--modelfile"])).unwrap();
    assert_eq!(modelfile.system.as_deref(), Some("You are terse."));
    assert_eq!(
        parameters::from_pairs(&modelfile.parameters).unwrap(),
        serde_json::json!({"temperature": 0.0}).as_object().unwrap().clone()
    );
    assert_eq!(lib.ok(&["show", "smol", "--system"]).trim_end(), "You are terse.");
    assert!(lib.ok(&["show", "smol", "--license"]).contains("Commercial use"));

    // Greedy only through the model's PARAMETER: the command sends no temperature of its own.
    let answer = lib.ok(&["run", "smol", "The capital of France is", "--raw", "--num-predict", "8"]);
    assert!(answer.starts_with(" Paris"), "{answer:?}");
    // As with `ollama run`, piped stdin is the prompt, not chat input.
    let piped =
        kiln_env(&lib.env(), &["run", "smol", "--raw", "--num-predict", "2"], Some("The capital of France is\n"));
    assert!(text(&piped.stdout).starts_with(" Paris"), "{}{}", text(&piped.stdout), text(&piped.stderr));

    assert_eq!(lib.ok(&["cp", "smol", "copy"]).trim(), "copied 'smol' to 'copy'");
    let list = lib.ok(&["ls"]);
    assert!(listed(&list, "smol:latest") && listed(&list, "copy:latest"), "{list}");
    assert_eq!(lib.ok(&["rm", "smol"]).trim(), "deleted 'smol'");
    let list = lib.ok(&["list"]);
    assert!(!listed(&list, "smol:latest") && listed(&list, "copy:latest"), "{list}");
    // The copy still has the weights the original shared with it.
    assert!(lib.ok(&["run", "copy", "The capital of France is", "--raw", "--num-predict", "2"]).starts_with(" Paris"));
}

#[test]
fn errors_are_reported_with_the_servers_message() {
    let lib = Library::new("errors");
    for args in [&["show", "nope"][..], &["stop", "nope"], &["rm", "nope"], &["cp", "nope", "x"]] {
        let err = lib.fails(args);
        assert_eq!(err.trim_end(), "Error: model 'nope' not found", "kiln {args:?}");
    }
    // `run` tries to pull a missing model first, as `ollama run` does, and says why it failed.
    let err = lib.fails(&["run", "nope", "hi"]);
    assert!(err.contains("model 'nope' is not in the library and pulling it failed"), "{err}");
    assert!(err.contains(&lib.registry), "{err}");
    let bad_line = lib.modelfile("Bad", "FROM nope\nSYSTEM fine\nBOGUS instruction\n");
    let err = lib.fails(&["create", "x", "-f", &bad_line]);
    assert!(err.contains("line 3") && err.contains("BOGUS"), "{err}");
    let adapter = lib.modelfile("Adapter", "FROM nope\nADAPTER ./lora.gguf\n");
    assert!(lib.fails(&["create", "x", "-f", &adapter]).contains("ADAPTER"));
    let parameter = lib.modelfile("Parameter", "FROM nope\nPARAMETER temprature 0\n");
    assert!(lib.fails(&["create", "x", "-f", &parameter]).contains("'temprature'"));
    let missing = lib.modelfile("Missing", "FROM ./missing.gguf\n");
    assert!(lib.fails(&["create", "x", "-f", &missing]).contains("no such file"));
    let base = lib.modelfile("Base", "FROM nope\n");
    assert!(lib.fails(&["create", "x", "-f", &base]).contains("'nope:latest' not found"));
    assert!(lib.ok(&["list"]).lines().count() == 1, "nothing was created");
}

#[test]
fn commands_use_a_running_server() {
    let Some(model) = kiln_testdata::model_path(kiln_testdata::SMOLLM2) else { return };
    let lib = Library::new("serve");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_kiln"));
    serve.arg("serve").envs(lib.env()).stdout(Stdio::null()).stderr(Stdio::null());
    let mut server = Server(serve.spawn().unwrap());
    // Wait for it to listen (a start, not a measurement).
    for _ in 0..600 {
        if TcpStream::connect(&lib.host).is_ok() {
            break;
        }
        assert!(server.0.try_wait().unwrap().is_none(), "kiln serve exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(lib.create_smollm("smol", &model).status.success());
    assert!(lib.ok(&["run", "smol", "The capital of France is", "--raw", "--num-predict", "4"]).starts_with(" Paris"));
    // Only a server that outlives the command still has the model loaded.
    let ps = lib.ok(&["ps"]);
    let header: Vec<&str> = ps.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "ID", "SIZE", "PROCESSOR", "CONTEXT", "UNTIL"]);
    assert!(listed(&ps, "smol:latest") && ps.contains("100% CPU") && ps.contains("from now"), "{ps}");
    lib.ok(&["stop", "smol"]);
    // A model still finishing its request unloads as soon as it is idle: look a few times.
    let mut ps = lib.ok(&["ps"]);
    for _ in 0..40 {
        if !listed(&ps, "smol:latest") {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
        ps = lib.ok(&["ps"]);
    }
    assert!(!listed(&ps, "smol:latest"), "{ps}");
    assert!(server.0.try_wait().unwrap().is_none(), "the server kept running");
}

/// `kiln run NAME "text"` on an embedding model prints the vector as a JSON array (as
/// `ollama run` does); the tiny Nomic BERT fixture's vector matches llama.cpp's.
#[test]
fn run_by_name_prints_an_embedding_models_vector() {
    let fixtures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kiln-engine/tests/fixtures");
    let lib = Library::new("embed");
    let modelfile = lib.modelfile("Modelfile", &format!("FROM {}\n", fixtures.join("nomic-bert-tiny.gguf").display()));
    lib.ok(&["create", "nomic", "-f", &modelfile]);
    let shown = lib.ok(&["show", "nomic"]);
    assert!(shown.contains("embedding"), "{shown}");
    let printed: Vec<f32> = serde_json::from_str(lib.ok(&["run", "nomic", "hello world"]).trim()).unwrap();
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("nomic-bert-tiny.json")).unwrap()).unwrap();
    assert_eq!(reference["sentences"][2], "hello world");
    let want: Vec<f32> = serde_json::from_value(reference["embeddings"][2].clone()).unwrap();
    assert_eq!(printed.len(), want.len());
    assert!(printed.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-5), "{printed:?}");
    let short: Vec<f32> =
        serde_json::from_str(lib.ok(&["run", "nomic", "hello world", "--dimensions", "4"]).trim()).unwrap();
    assert_eq!(short.len(), 4);
    assert!(lib
        .fails(&["run", "nomic", "hello world", "--num-ctx", "3", "--truncate=false"])
        .contains("context length"));
}
