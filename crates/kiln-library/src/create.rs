//! Making a model: weights from an uploaded GGUF blob or another model, with the text layers
//! (template, system prompt, parameters, messages, license) a Modelfile or `/api/create` sets.

use crate::digest::Digest;
use crate::error::LibraryError;
use crate::gguf_info::describe;
use crate::import;
use crate::manifest::{media, Layer, Manifest, ModelConfigBlob, CONFIG_MEDIA_TYPE};
use crate::name::ModelName;
use crate::parameters;
use crate::spec::Message;
use crate::store::Store;
use kiln_quant::QuantScheme;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// `license` is one text or several.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Licenses {
    One(String),
    Many(Vec<String>),
}

/// What `/api/create` carries besides the new name.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CreateRequest {
    /// Another model's name, or a blob digest.
    pub from: Option<String>,
    /// Uploaded files by name: a `.gguf` becomes the weights.
    #[serde(default)]
    pub files: BTreeMap<String, Digest>,
    #[serde(default)]
    pub adapters: BTreeMap<String, Digest>,
    pub template: Option<String>,
    pub system: Option<String>,
    pub parameters: Option<Map<String, Value>>,
    pub messages: Option<Vec<Message>>,
    pub license: Option<Licenses>,
    pub quantize: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The request cannot be carried out as asked (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Library(#[from] LibraryError),
}

fn invalid(s: impl Into<String>) -> CreateError {
    CreateError::Invalid(s.into())
}

/// The weights layer for a stored GGUF blob, checked to be a GGUF, and what it describes.
fn gguf_layer(store: &Store, file: &str, digest: &Digest) -> Result<(Layer, ModelConfigBlob), CreateError> {
    let path = store.blob_path(digest);
    let size = std::fs::metadata(&path).map_err(|_| {
        invalid(format!("blob {digest} for {file} is not in the library; upload it first (POST /api/blobs/{digest})"))
    })?;
    let info = describe(&path).map_err(|e| invalid(format!("{file} is not a usable GGUF file: {e}")))?;
    let config = ModelConfigBlob {
        model_format: "gguf".into(),
        model_family: info.architecture.clone(),
        model_families: vec![info.architecture.clone()],
        model_type: crate::gguf_info::parameter_size(info.parameter_count),
        file_type: info.quantization.clone(),
        ..ModelConfigBlob::default()
    };
    Ok((Layer { media_type: media::MODEL.into(), digest: *digest, size: size.len(), from: None }, config))
}

/// The weights and config a create starts from, and what it learnt on the way.
struct Base {
    layers: Vec<Layer>,
    config: ModelConfigBlob,
    /// The weights layer was made by this create (converted or quantized), not reused.
    new_weights: bool,
    /// The license file of an imported model directory.
    license: Option<String>,
}

impl Base {
    fn reused(layers: Vec<Layer>, config: ModelConfigBlob) -> Base {
        Base { layers, config, new_weights: false, license: None }
    }
}

/// The GGUF blob `digest` quantized by `scheme`, as a weights layer.
fn quantized(
    store: &Store,
    digest: &Digest,
    scheme: QuantScheme,
    progress: &mut dyn FnMut(String),
) -> Result<(Layer, ModelConfigBlob), CreateError> {
    let new = import::quantize_blob(store, digest, scheme, progress)?;
    gguf_layer(store, "the quantized model", &new)
}

/// Starting layers and config: those of `from` (a model or a blob), of an uploaded GGUF, or
/// of an uploaded Hugging Face model directory converted; quantized if asked.
fn base(store: &Store, req: &CreateRequest, progress: &mut dyn FnMut(String)) -> Result<Base, CreateError> {
    if !req.adapters.is_empty() {
        return Err(invalid("ADAPTER (LoRA) is not supported yet"));
    }
    let scheme = req.quantize.as_deref().filter(|q| !q.is_empty()).map(import::parse_scheme).transpose()?;
    let is_gguf = |n: &String| n.to_ascii_lowercase().ends_with(".gguf");
    let ggufs: Vec<_> = req.files.iter().filter(|(n, _)| is_gguf(n)).collect();
    if !ggufs.is_empty() && ggufs.len() != req.files.len() {
        return Err(invalid("give either one GGUF file or the files of a Hugging Face model directory, not both"));
    }
    match ggufs.as_slice() {
        [_, _, ..] => return Err(invalid("more than one GGUF file given; split GGUFs are not supported yet")),
        [(file, digest)] => {
            let (layer, config) = match scheme {
                Some(scheme) => quantized(store, digest, scheme, progress)?,
                None => gguf_layer(store, file, digest)?,
            };
            return Ok(Base { new_weights: scheme.is_some(), ..Base::reused(vec![layer], config) });
        }
        [] if !req.files.is_empty() => {
            let (digest, license) = import::convert_uploaded(store, &req.files, scheme, progress)?;
            let (layer, config) = gguf_layer(store, "the converted model", &digest)?;
            return Ok(Base { layers: vec![layer], config, new_weights: true, license });
        }
        [] => {}
    }
    let from = req
        .from
        .as_deref()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| invalid("no model to create from: give 'from' or a GGUF in 'files'"))?;
    if let Ok(digest) = Digest::parse(from) {
        let (layer, config) = match scheme {
            Some(scheme) => quantized(store, &digest, scheme, progress)?,
            None => gguf_layer(store, from, &digest)?,
        };
        return Ok(Base { new_weights: scheme.is_some(), ..Base::reused(vec![layer], config) });
    }
    let name = ModelName::parse(from).map_err(|e| invalid(e.to_string()))?;
    let model = store.find(&name)?;
    let config = store
        .read_blob_text(&model.manifest.config.digest)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let mut layers = model.manifest.layers;
    let Some(scheme) = scheme else {
        return Ok(Base::reused(layers, config));
    };
    let weights = layers
        .iter_mut()
        .find(|l| l.media_type == media::MODEL)
        .ok_or_else(|| invalid(format!("model '{from}' has no weights to quantize")))?;
    let (layer, config) = quantized(store, &weights.digest, scheme, progress)?;
    *weights = layer;
    // The weights come first, so the new layer is reported as created and the rest as reused.
    layers.sort_by_key(|l| l.media_type != media::MODEL);
    Ok(Base { new_weights: true, ..Base::reused(layers, config) })
}

/// Replaces the layers of `media_type` with one holding `text`.
fn set_text(store: &Store, layers: &mut Vec<Layer>, media_type: &str, texts: &[String]) -> Result<(), CreateError> {
    layers.retain(|l| l.media_type != media_type);
    for text in texts {
        let (digest, size) = store.write_blob_bytes(text.as_bytes())?;
        layers.push(Layer { media_type: media_type.into(), digest, size, from: None });
    }
    Ok(())
}

/// Creates (or replaces) `name`. `progress` hears Ollama's status lines.
pub fn create(
    store: &Store,
    name: &ModelName,
    req: &CreateRequest,
    progress: &mut dyn FnMut(String),
) -> Result<Digest, CreateError> {
    // The request's own fields are checked before any work (and any status line).
    let new_params = req.parameters.as_ref().map(parameters::check_object).transpose().map_err(invalid)?;
    if let Some(bad) =
        req.messages.iter().flatten().find(|m| !crate::modelfile::MESSAGE_ROLES.contains(&m.role.as_str()))
    {
        return Err(invalid(format!("invalid message role {:?}", bad.role)));
    }
    let Base { mut layers, config, new_weights, license } = base(store, req, progress)?;
    // Blobs named by the new manifest stay put until it is written.
    let _pins: Vec<_> = layers.iter().map(|l| store.pin(l.digest)).collect();
    // New weights come first; every other base layer is reused.
    let existing: Vec<Digest> = layers.iter().skip(usize::from(new_weights)).map(|l| l.digest).collect();
    for d in &existing {
        progress(format!("using existing layer {d}"));
    }
    if let Some(t) = &req.template {
        set_text(store, &mut layers, media::TEMPLATE, std::slice::from_ref(t))?;
    }
    if let Some(s) = &req.system {
        set_text(store, &mut layers, media::SYSTEM, std::slice::from_ref(s))?;
    }
    if let Some(new) = new_params {
        let mut merged: Map<String, Value> = match layers.iter().find(|l| l.media_type == media::PARAMS) {
            Some(l) => serde_json::from_str(&store.read_blob_text(&l.digest)?).unwrap_or_default(),
            None => Map::new(),
        };
        merged.extend(new);
        set_text(store, &mut layers, media::PARAMS, &[Value::Object(merged).to_string()])?;
    }
    if let Some(m) = &req.messages {
        let json = serde_json::to_string(m).expect("messages serialise");
        set_text(store, &mut layers, media::MESSAGES, &[json])?;
    }
    let texts = match (&req.license, license) {
        (Some(Licenses::One(s)), _) => Some(vec![s.clone()]),
        (Some(Licenses::Many(v)), _) => Some(v.clone()),
        (None, from_dir) => from_dir.map(|t| vec![t]),
    };
    if let Some(texts) = texts {
        set_text(store, &mut layers, media::LICENSE, &texts)?;
    }
    let _new_pins: Vec<_> = layers.iter().map(|l| store.pin(l.digest)).collect();
    for l in layers.iter().filter(|l| !existing.contains(&l.digest)) {
        progress(format!("creating new layer {}", l.digest));
    }
    let config = ModelConfigBlob {
        rootfs: crate::manifest::RootFs { diff_ids: layers.iter().map(|l| l.digest).collect(), ..Default::default() },
        ..config
    };
    let (digest, size) = store.write_blob_bytes(&serde_json::to_vec(&config).expect("config serialises"))?;
    let _config_pin = store.pin(digest);
    let manifest = Manifest::new(Layer { media_type: CONFIG_MEDIA_TYPE.into(), digest, size, from: None }, layers);
    progress("writing manifest".into());
    let digest = store.write_manifest(name, &manifest)?;
    progress("success".into());
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_testdata::TempDir;

    fn name(s: &str) -> ModelName {
        ModelName::parse(s).unwrap()
    }

    /// Stores the real SmolLM2 file as a blob, as an upload would.
    fn upload_smollm2(store: &Store) -> Option<Digest> {
        let path = kiln_testdata::model_path(kiln_testdata::SMOLLM2)?;
        Some(store.write_blob(&mut std::fs::File::open(path).unwrap(), None).unwrap().0)
    }

    #[test]
    fn creates_from_a_gguf_then_derives_from_the_model() {
        let dir = TempDir::new("create-gguf");
        let store = Store::open(&dir.0).unwrap();
        let Some(weights) = upload_smollm2(&store) else { return };
        let req = CreateRequest {
            files: [("smol.gguf".to_string(), weights)].into(),
            system: Some("Be brief.".into()),
            parameters: Some(serde_json::json!({"temperature":0.2,"stop":"<|im_end|>"}).as_object().unwrap().clone()),
            license: Some(Licenses::One("Apache-2.0".into())),
            ..CreateRequest::default()
        };
        let mut statuses = Vec::new();
        create(&store, &name("smol"), &req, &mut |s| statuses.push(s)).unwrap();
        assert_eq!(statuses.last().map(String::as_str), Some("success"));
        assert!(statuses.iter().any(|s| s.starts_with("creating new layer")));
        let spec = store.spec(&store.find(&name("smol")).unwrap()).unwrap();
        assert_eq!(spec.weights, store.blob_path(&weights));
        assert_eq!(spec.system.as_deref(), Some("Be brief."));
        assert_eq!(spec.params["stop"], serde_json::json!(["<|im_end|>"]));
        assert_eq!(spec.licenses, ["Apache-2.0"]);
        assert_eq!((spec.config.model_family.as_str(), spec.config.file_type.as_str()), ("llama", "Q4_1"));

        // A child keeps the parent's layers and overrides what it sets; parameters merge.
        let child = CreateRequest {
            from: Some("smol".into()),
            system: Some("Answer in French.".into()),
            parameters: Some(serde_json::json!({"num_ctx":2048}).as_object().unwrap().clone()),
            messages: Some(vec![Message { role: "user".into(), content: "Salut".into() }]),
            ..CreateRequest::default()
        };
        create(&store, &name("me/french"), &child, &mut |_| {}).unwrap();
        let spec = store.spec(&store.find(&name("me/french")).unwrap()).unwrap();
        assert_eq!(spec.weights, store.blob_path(&weights));
        assert_eq!(spec.system.as_deref(), Some("Answer in French."));
        assert_eq!(spec.params["num_ctx"], 2048);
        assert_eq!(spec.params["temperature"], 0.2);
        assert_eq!(spec.licenses, ["Apache-2.0"]);
        assert_eq!(spec.messages.len(), 1);

        // Deleting the parent keeps what the child still uses.
        store.delete(&name("smol")).unwrap();
        assert!(store.has_blob(&weights));
        assert!(store.spec(&store.find(&name("me/french")).unwrap()).is_ok());
    }

    #[test]
    fn bad_requests_are_refused_and_leave_no_manifest() {
        let dir = TempDir::new("create-bad");
        let store = Store::open(&dir.0).unwrap();
        let (not_gguf, _) = store.write_blob_bytes(b"plain text, not a model").unwrap();
        let missing = Digest::of_bytes(b"never uploaded");
        let cases: Vec<(CreateRequest, &str)> = vec![
            (CreateRequest::default(), "no model to create from"),
            (CreateRequest { from: Some("nope".into()), ..Default::default() }, "model 'nope:latest' not found"),
            (CreateRequest { files: [("x.gguf".into(), not_gguf)].into(), ..Default::default() }, "not a usable GGUF"),
            (CreateRequest { files: [("x.gguf".into(), missing)].into(), ..Default::default() }, "upload it first"),
            (
                CreateRequest { files: [("model.safetensors".into(), missing)].into(), ..Default::default() },
                "config.json is missing",
            ),
            (
                CreateRequest {
                    files: [("x.gguf".into(), not_gguf), ("config.json".into(), not_gguf)].into(),
                    ..Default::default()
                },
                "not both",
            ),
            (
                CreateRequest {
                    files: [
                        ("config.json".into(), not_gguf),
                        ("tokenizer.json".into(), not_gguf),
                        ("../x".into(), not_gguf),
                    ]
                    .into(),
                    ..Default::default()
                },
                "not a relative path inside the model",
            ),
            (CreateRequest { adapters: [("a.gguf".into(), missing)].into(), ..Default::default() }, "ADAPTER"),
            (
                CreateRequest { from: Some("x".into()), quantize: Some("q2_K".into()), ..Default::default() },
                "unsupported quantization type \"q2_K\"",
            ),
            (CreateRequest { from: Some("bad name!".into()), ..Default::default() }, "invalid model name"),
        ];
        for (req, want) in cases {
            let err = create(&store, &name("new"), &req, &mut |_| {}).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
        assert!(store.list().is_empty());
    }

    /// The `qwen2` Hugging Face fixture uploaded file by file, as a client does.
    fn upload_hf_fixture(store: &Store) -> BTreeMap<String, Digest> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-models/tests/fixtures/hf/qwen2/hf");
        let mut files = BTreeMap::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let (digest, _) = store.write_blob(&mut std::fs::File::open(&path).unwrap(), None).unwrap();
            files.insert(path.file_name().unwrap().to_string_lossy().into_owned(), digest);
        }
        let (license, _) = store.write_blob_bytes(b"Apache License\nVersion 2.0").unwrap();
        files.insert("LICENSE".into(), license);
        files
    }

    fn blob_names(store: &Store) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(store.root().join("blobs"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn imports_a_hugging_face_directory_then_quantizes_it() {
        let dir = TempDir::new("create-import");
        let store = Store::open(&dir.0).unwrap();
        let files = upload_hf_fixture(&store);
        let mut statuses = Vec::new();
        let req = CreateRequest { files: files.clone(), ..CreateRequest::default() };
        create(&store, &name("tiny"), &req, &mut |s| statuses.push(s)).unwrap();
        assert_eq!(statuses[0], "converting model");
        assert!(statuses[1].starts_with("creating new layer sha256:"), "{statuses:?}");
        let spec = store.spec(&store.find(&name("tiny")).unwrap()).unwrap();
        assert_eq!((spec.config.model_family.as_str(), spec.config.file_type.as_str()), ("qwen2", "F32"));
        assert_eq!(spec.licenses, ["Apache License\nVersion 2.0"]);
        let gguf = kiln_gguf::GgufFile::open(&spec.weights).unwrap();
        assert!(gguf.get_str("tokenizer.chat_template").unwrap().is_some_and(|t| t.contains("<|im_start|>")));

        let mut statuses = Vec::new();
        let req = CreateRequest { files, quantize: Some("Q8_0".into()), ..CreateRequest::default() };
        create(&store, &name("tiny:q8"), &req, &mut |s| statuses.push(s)).unwrap();
        assert_eq!(statuses[..2], ["converting model", "quantizing F32 model to Q8_0"]);
        let spec = store.spec(&store.find(&name("tiny:q8")).unwrap()).unwrap();
        assert_eq!(spec.config.file_type, "Q8_0");

        // Quantizing a library model makes new weights and keeps the parent's.
        let req =
            CreateRequest { from: Some("tiny".into()), quantize: Some("q4_0".into()), ..CreateRequest::default() };
        let mut statuses = Vec::new();
        create(&store, &name("tiny:q4"), &req, &mut |s| statuses.push(s)).unwrap();
        assert_eq!(statuses[0], "quantizing F32 model to Q4_0");
        assert!(statuses[1].starts_with("using existing layer"), "{statuses:?}");
        let q4 = store.spec(&store.find(&name("tiny:q4")).unwrap()).unwrap();
        assert_eq!(q4.config.file_type, "Q4_0");
        assert_eq!(q4.licenses, ["Apache License\nVersion 2.0"]);
        let parent = store.spec(&store.find(&name("tiny")).unwrap()).unwrap();
        assert_eq!(parent.config.file_type, "F32");
        assert_ne!(q4.weights, parent.weights);
    }

    #[test]
    fn a_failed_import_leaves_nothing() {
        let dir = TempDir::new("create-import-bad");
        let store = Store::open(&dir.0).unwrap();
        let mut files = upload_hf_fixture(&store);
        let (config, _) = store.write_blob_bytes(br#"{"architectures": ["GPT2LMHeadModel"]}"#).unwrap();
        files.insert("config.json".into(), config);
        let before = blob_names(&store);
        let req = CreateRequest { files, ..CreateRequest::default() };
        let err = create(&store, &name("bad"), &req, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("cannot import the model: architecture GPT2LMHeadModel is not supported"), "{err}");
        assert!(store.list().is_empty());
        assert_eq!(blob_names(&store), before, "no converted blob, temporary file or directory is left");
    }

    #[test]
    fn quantizes_an_uploaded_gguf_and_refuses_requantizing() {
        let dir = TempDir::new("create-quantize-gguf");
        let store = Store::open(&dir.0).unwrap();
        let f32_path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../kiln-models/tests/fixtures/hf/qwen2/model.gguf");
        let (f32_blob, _) = store.write_blob(&mut std::fs::File::open(f32_path).unwrap(), None).unwrap();
        let req = CreateRequest {
            files: [("qwen2.gguf".to_string(), f32_blob)].into(),
            quantize: Some("q8_0".into()),
            ..CreateRequest::default()
        };
        let mut statuses = Vec::new();
        create(&store, &name("q8"), &req, &mut |s| statuses.push(s)).unwrap();
        assert_eq!(statuses[0], "quantizing F32 model to Q8_0");
        let spec = store.spec(&store.find(&name("q8")).unwrap()).unwrap();
        assert_eq!(spec.config.file_type, "Q8_0");

        let again =
            CreateRequest { from: Some("q8".into()), quantize: Some("q4_0".into()), ..CreateRequest::default() };
        let err = create(&store, &name("q4"), &again, &mut |_| {}).unwrap_err().to_string();
        assert!(err.contains("already quantized (Q8_0); requantizing it to Q4_0 is refused"), "{err}");
        assert!(store.find(&name("q4")).is_err());
    }
}
