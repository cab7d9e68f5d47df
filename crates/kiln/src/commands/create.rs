//! `kiln create NAME -f Modelfile [--quantize q4_K_M]`: the Modelfile read here, its weights
//! (a GGUF file, or each file of a Hugging Face model directory) uploaded as blobs unless the
//! server has them, and the rest sent to `/api/create`, which converts and quantizes.

use super::text;
use crate::cli::CreateArgs;
use crate::client::Client;
use crate::progress::Progress;
use anyhow::{bail, Context, Result};
use kiln_library::modelfile::Modelfile;
use kiln_library::parameters;
use kiln_library::Digest;
use serde_json::{json, Map, Value};
use std::io::Read;
use std::path::{Path, PathBuf};

/// What FROM names.
#[derive(Debug, PartialEq)]
enum Source {
    File(PathBuf),
    /// A Hugging Face model directory (safetensors weights beside `config.json`).
    Directory(PathBuf),
    Model(String),
}

/// Whether FROM is written as a path, so a missing file is reported as such rather than as
/// a missing model.
fn looks_like_path(from: &str) -> bool {
    ["./", "../", "/", "~/", ".\\", "..\\"].iter().any(|p| from.starts_with(p)) || from.ends_with(".gguf")
}

/// FROM resolved as Ollama does: a path relative to the Modelfile's directory (`~/`
/// expanded) when something is there, else a model's name.
fn source(from: &str, modelfile_dir: &Path) -> Result<Source> {
    let path = match from.strip_prefix("~/") {
        Some(rest) => PathBuf::from(std::env::var_os("HOME").context("HOME is not set to expand ~/")?).join(rest),
        None => modelfile_dir.join(from),
    };
    if path.is_dir() {
        if !kiln_convert::is_model_dir(&path) {
            bail!(
                "FROM {from}: {} is not a Hugging Face model directory (config.json and *.safetensors)",
                path.display()
            );
        }
        return Ok(Source::Directory(path));
    }
    if path.is_file() {
        return Ok(Source::File(path));
    }
    if looks_like_path(from) {
        bail!("FROM {from}: no such file ({})", path.display());
    }
    Ok(Source::Model(from.to_string()))
}

/// The bytes of a file, counted into a progress bar as they are read.
struct Counting<'a> {
    file: std::fs::File,
    done: u64,
    total: u64,
    label: String,
    progress: &'a mut Progress,
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.done += n as u64;
        self.progress.update(&self.label, self.done, self.total);
        Ok(n)
    }
}

/// Fails unless `path` starts with the GGUF magic.
fn check_gguf(path: &Path) -> Result<()> {
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .with_context(|| format!("reading {}", path.display()))?;
    if &magic != b"GGUF" {
        bail!("{} is not a GGUF file; import a GGUF file or a Hugging Face model directory", path.display());
    }
    Ok(())
}

/// The `files` of `/api/create` for a model directory: each file the conversion reads,
/// uploaded, by its path inside the directory.
fn upload_directory(client: &Client, dir: &Path) -> Result<Map<String, Value>> {
    let mut files = Map::new();
    for rel in kiln_convert::model_files(dir)? {
        let digest = upload(client, &dir.join(&rel))?;
        let name = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        files.insert(name, digest.to_string().into());
    }
    Ok(files)
}

/// Sends a file to the server unless it has it already; returns its digest.
fn upload(client: &Client, path: &Path) -> Result<Digest> {
    let digest = kiln_library::store::hash_file(path)?;
    let blob = format!("/api/blobs/{digest}");
    if client.exists(&blob)? {
        return Ok(digest);
    }
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let total = file.metadata()?.len();
    let mut progress = Progress::stderr();
    let label = format!("copying file {digest}");
    let mut reader = Counting { file, done: 0, total, label, progress: &mut progress };
    let sent = client.upload(&blob, &mut reader);
    progress.finish();
    sent.with_context(|| format!("uploading {}", path.display()))?;
    Ok(digest)
}

/// The `/api/create` fields besides the weights.
fn layers(mf: &Modelfile) -> Result<Map<String, Value>> {
    if !mf.adapters.is_empty() {
        bail!("ADAPTER (LoRA adapters) is not supported yet");
    }
    let mut body = Map::new();
    if let Some(t) = &mf.template {
        body.insert("template".into(), t.as_str().into());
    }
    if let Some(s) = &mf.system {
        body.insert("system".into(), s.as_str().into());
    }
    if !mf.parameters.is_empty() {
        let params = parameters::from_pairs(&mf.parameters).map_err(|e| anyhow::anyhow!("Modelfile: {e}"))?;
        body.insert("parameters".into(), Value::Object(params));
    }
    if !mf.messages.is_empty() {
        let messages: Vec<Value> = mf.messages.iter().map(|(r, c)| json!({ "role": r, "content": c })).collect();
        body.insert("messages".into(), messages.into());
    }
    if !mf.licenses.is_empty() {
        body.insert("license".into(), mf.licenses.clone().into());
    }
    Ok(body)
}

pub fn create(client: &Client, args: &CreateArgs) -> Result<()> {
    let text_in = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let mf = Modelfile::parse(&text_in).with_context(|| format!("reading {}", args.file.display()))?;
    let mut body = layers(&mf)?;
    let dir = args.file.parent().unwrap_or(Path::new("."));
    match source(&mf.from, dir)? {
        Source::File(path) => {
            check_gguf(&path)?;
            let digest = upload(client, &path)?;
            let mut name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            // The server takes the weights from the file named `.gguf` (Ollama's blobs have
            // no extension, and the magic was checked above).
            if !name.to_ascii_lowercase().ends_with(".gguf") {
                name.push_str(".gguf");
            }
            body.insert("files".into(), json!({ name: digest.to_string() }));
        }
        Source::Directory(dir) => {
            body.insert("files".into(), Value::Object(upload_directory(client, &dir)?));
        }
        Source::Model(name) => {
            body.insert("from".into(), name.into());
        }
    }
    if let Some(q) = &args.quantize {
        body.insert("quantize".into(), q.as_str().into());
    }
    body.insert("model".into(), args.name.as_str().into());
    body.insert("stream".into(), true.into());
    let mut progress = Progress::stderr();
    client.stream("/api/create", &Value::Object(body), |event| {
        progress.status(text(&event, "status"));
        Ok(true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_is_a_file_a_directory_or_a_name() {
        let dir = std::env::temp_dir().join(format!("kiln-create-from-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("weights")).unwrap();
        std::fs::create_dir_all(dir.join("hf")).unwrap();
        std::fs::write(dir.join("hf/config.json"), b"{}").unwrap();
        std::fs::write(dir.join("hf/model.safetensors"), b"").unwrap();
        std::fs::write(dir.join("m.gguf"), b"GGUF").unwrap();
        assert_eq!(source("m.gguf", &dir).unwrap(), Source::File(dir.join("m.gguf")));
        assert_eq!(source("./m.gguf", &dir).unwrap(), Source::File(dir.join("./m.gguf")));
        assert_eq!(source("smollm2:135m", &dir).unwrap(), Source::Model("smollm2:135m".into()));
        assert_eq!(source("./hf", &dir).unwrap(), Source::Directory(dir.join("./hf")));
        let abs = dir.join("hf").display().to_string();
        assert_eq!(source(&abs, Path::new("/elsewhere")).unwrap(), Source::Directory(dir.join("hf")));
        assert!(source("./weights", &dir).unwrap_err().to_string().contains("not a Hugging Face model directory"));
        assert!(source("./gone.gguf", &dir).unwrap_err().to_string().contains("no such file"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn modelfile_instructions_become_create_fields() {
        let mf = Modelfile::parse(
            "FROM x\nSYSTEM Be brief.\nPARAMETER temperature 0\nPARAMETER stop <|im_end|>\nMESSAGE user hi\nLICENSE MIT\n",
        )
        .unwrap();
        let body = Value::Object(layers(&mf).unwrap());
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["parameters"], json!({"temperature": 0.0, "stop": ["<|im_end|>"]}));
        assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
        assert_eq!(body["license"], json!(["MIT"]));
        let bad = Modelfile::parse("FROM x\nPARAMETER temprature 0\n").unwrap();
        assert!(layers(&bad).unwrap_err().to_string().contains("'temprature'"));
        let adapter = Modelfile::parse("FROM x\nADAPTER ./lora.gguf\n").unwrap();
        assert!(layers(&adapter).unwrap_err().to_string().contains("ADAPTER"));
    }
}
