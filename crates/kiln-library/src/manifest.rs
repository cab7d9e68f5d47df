//! Registry manifests (Docker image manifest v2, schema 2) and the config blob Ollama writes.

use crate::digest::Digest;
use serde::{Deserialize, Serialize};

pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.docker.container.image.v1+json";

/// What a layer holds, by its media type.
pub mod media {
    pub const MODEL: &str = "application/vnd.ollama.image.model";
    pub const ADAPTER: &str = "application/vnd.ollama.image.adapter";
    pub const PROJECTOR: &str = "application/vnd.ollama.image.projector";
    pub const TEMPLATE: &str = "application/vnd.ollama.image.template";
    pub const SYSTEM: &str = "application/vnd.ollama.image.system";
    pub const PARAMS: &str = "application/vnd.ollama.image.params";
    pub const MESSAGES: &str = "application/vnd.ollama.image.messages";
    pub const LICENSE: &str = "application/vnd.ollama.image.license";
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Layer {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    pub media_type: String,
    pub config: Layer,
    pub layers: Vec<Layer>,
}

impl Manifest {
    pub fn new(config: Layer, layers: Vec<Layer>) -> Manifest {
        Manifest { schema_version: 2, media_type: MANIFEST_MEDIA_TYPE.into(), config, layers }
    }

    /// Every blob the manifest needs: the config and the layers.
    pub fn blobs(&self) -> impl Iterator<Item = &Layer> {
        std::iter::once(&self.config).chain(&self.layers)
    }

    /// The first layer of a media type.
    pub fn layer(&self, media_type: &str) -> Option<&Layer> {
        self.layers.iter().find(|l| l.media_type == media_type)
    }

    /// Bytes of all layers, as `/api/tags` reports a model's size.
    pub fn total_size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// The config blob: what the weights are, so listings need not open them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelConfigBlob {
    #[serde(default)]
    pub model_format: String,
    #[serde(default)]
    pub model_family: String,
    #[serde(default)]
    pub model_families: Vec<String>,
    #[serde(default)]
    pub model_type: String,
    #[serde(default)]
    pub file_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    #[serde(default)]
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<Digest>,
}

impl Default for RootFs {
    fn default() -> Self {
        RootFs { kind: "layers".into(), diff_ids: Vec::new() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_registry_manifest() {
        let text = r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json",
          "config":{"mediaType":"application/vnd.docker.container.image.v1+json",
                    "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":0},
          "layers":[{"mediaType":"application/vnd.ollama.image.model",
                     "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                     "size":5,"from":"/x/y.gguf"},
                    {"mediaType":"application/vnd.ollama.image.license",
                     "digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855","size":7}]}"#;
        let m: Manifest = serde_json::from_str(text).unwrap();
        assert_eq!(m.total_size(), 12);
        assert_eq!(m.blobs().count(), 3);
        assert_eq!(m.layer(media::LICENSE).unwrap().size, 7);
        assert!(m.layer(media::TEMPLATE).is_none());
        let again: Manifest = serde_json::from_str(&serde_json::to_string(&m).unwrap()).unwrap();
        assert_eq!(again, m);
    }

    #[test]
    fn a_bad_digest_fails_to_parse() {
        let text = r#"{"schemaVersion":2,"mediaType":"x","config":{"mediaType":"x","digest":"sha256:00","size":0},"layers":[]}"#;
        let err = serde_json::from_str::<Manifest>(text).unwrap_err().to_string();
        assert!(err.contains("invalid digest"), "{err}");
    }
}
