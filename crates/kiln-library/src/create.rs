//! Making a model: weights from an uploaded GGUF blob or another model, with the text layers
//! (template, system prompt, parameters, messages, license) a Modelfile or `/api/create` sets.

use crate::digest::Digest;
use crate::error::LibraryError;
use crate::gguf_info::describe;
use crate::manifest::{media, Layer, Manifest, ModelConfigBlob, CONFIG_MEDIA_TYPE};
use crate::name::ModelName;
use crate::parameters;
use crate::spec::Message;
use crate::store::Store;
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

/// Starting layers and config: those of `from` (a model or a blob), or of an uploaded GGUF.
fn base(store: &Store, req: &CreateRequest) -> Result<(Vec<Layer>, ModelConfigBlob), CreateError> {
    if !req.adapters.is_empty() {
        return Err(invalid("ADAPTER (LoRA) is not supported yet"));
    }
    if let Some(q) = &req.quantize {
        return Err(invalid(format!("quantize ({q}) is not supported yet; import a GGUF quantized already")));
    }
    let mut ggufs = req.files.iter().filter(|(n, _)| n.to_ascii_lowercase().ends_with(".gguf"));
    if let Some(other) = req.files.keys().find(|n| !n.to_ascii_lowercase().ends_with(".gguf")) {
        return Err(invalid(format!("cannot import {other}: only GGUF files are supported (not safetensors yet)")));
    }
    match (ggufs.next(), ggufs.next()) {
        (Some(_), Some(_)) => return Err(invalid("more than one GGUF file given; split GGUFs are not supported yet")),
        (Some((file, digest)), None) => {
            let (layer, config) = gguf_layer(store, file, digest)?;
            return Ok((vec![layer], config));
        }
        (None, _) => {}
    }
    let from = req
        .from
        .as_deref()
        .filter(|f| !f.is_empty())
        .ok_or_else(|| invalid("no model to create from: give 'from' or a GGUF in 'files'"))?;
    if let Ok(digest) = Digest::parse(from) {
        let (layer, config) = gguf_layer(store, from, &digest)?;
        return Ok((vec![layer], config));
    }
    let name = ModelName::parse(from).map_err(|e| invalid(e.to_string()))?;
    let model = store.find(&name)?;
    let config = store
        .read_blob_text(&model.manifest.config.digest)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    Ok((model.manifest.layers, config))
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
    let (mut layers, config) = base(store, req)?;
    // Blobs named by the new manifest stay put until it is written.
    let _pins: Vec<_> = layers.iter().map(|l| store.pin(l.digest)).collect();
    for l in &layers {
        progress(format!("using existing layer {}", l.digest));
    }
    let created_before = layers.len();
    if let Some(t) = &req.template {
        set_text(store, &mut layers, media::TEMPLATE, std::slice::from_ref(t))?;
    }
    if let Some(s) = &req.system {
        set_text(store, &mut layers, media::SYSTEM, std::slice::from_ref(s))?;
    }
    if let Some(p) = &req.parameters {
        let new = parameters::check_object(p).map_err(invalid)?;
        let mut merged: Map<String, Value> = match layers.iter().find(|l| l.media_type == media::PARAMS) {
            Some(l) => serde_json::from_str(&store.read_blob_text(&l.digest)?).unwrap_or_default(),
            None => Map::new(),
        };
        merged.extend(new);
        set_text(store, &mut layers, media::PARAMS, &[Value::Object(merged).to_string()])?;
    }
    if let Some(m) = &req.messages {
        if let Some(bad) = m.iter().find(|m| !crate::modelfile::MESSAGE_ROLES.contains(&m.role.as_str())) {
            return Err(invalid(format!("invalid message role {:?}", bad.role)));
        }
        let json = serde_json::to_string(m).expect("messages serialise");
        set_text(store, &mut layers, media::MESSAGES, &[json])?;
    }
    if let Some(l) = &req.license {
        let texts = match l {
            Licenses::One(s) => vec![s.clone()],
            Licenses::Many(v) => v.clone(),
        };
        set_text(store, &mut layers, media::LICENSE, &texts)?;
    }
    let _new_pins: Vec<_> = layers.iter().map(|l| store.pin(l.digest)).collect();
    for l in layers.iter().skip(created_before.min(layers.len())) {
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
                "only GGUF",
            ),
            (CreateRequest { adapters: [("a.gguf".into(), missing)].into(), ..Default::default() }, "ADAPTER"),
            (
                CreateRequest { from: Some("x".into()), quantize: Some("q4_K_M".into()), ..Default::default() },
                "quantize",
            ),
            (CreateRequest { from: Some("bad name!".into()), ..Default::default() }, "invalid model name"),
        ];
        for (req, want) in cases {
            let err = create(&store, &name("new"), &req, &mut |_| {}).unwrap_err().to_string();
            assert!(err.contains(want), "{err} (wanted {want})");
        }
        assert!(store.list().is_empty());
    }
}
