//! Ollama's registry (Docker registry v2 for reading): a manifest by tag, then blobs by digest.

use super::error::PullError;
use super::http::Http;
use super::PullConfig;
use crate::manifest::{Manifest, MANIFEST_MEDIA_TYPE};
use crate::name::{ModelName, DEFAULT_HOST};

/// `https://host/v2/namespace/model`, or the configured registry for Ollama's own host.
pub(crate) fn repository_url(name: &ModelName, config: &PullConfig) -> String {
    let base = if name.host.eq_ignore_ascii_case(DEFAULT_HOST) {
        config.ollama_registry.trim_end_matches('/').to_string()
    } else {
        let scheme = if config.insecure { "http" } else { "https" };
        format!("{scheme}://{}", name.host)
    };
    format!("{base}/v2/{}/{}", name.namespace, name.model)
}

pub(crate) fn fetch_manifest(http: &Http, repo_url: &str, name: &ModelName) -> Result<Manifest, PullError> {
    let url = format!("{repo_url}/manifests/{}", name.tag);
    let bytes = http.get_bytes(&url, &[("Accept", MANIFEST_MEDIA_TYPE)]).map_err(|e| match e {
        PullError::Status { status: 404, .. } => PullError::NotFound(name.to_string()),
        other => other,
    })?;
    serde_json::from_slice(&bytes).map_err(|e| PullError::BadResponse { url, reason: format!("manifest: {e}") })
}

pub(crate) fn blob_url(repo_url: &str, digest: &crate::Digest) -> String {
    format!("{repo_url}/blobs/{digest}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ollama_names_use_the_configured_registry_and_others_their_host() {
        let config = PullConfig { ollama_registry: "http://127.0.0.1:9/".into(), ..PullConfig::default() };
        let url = |n: &str, c: &PullConfig| repository_url(&ModelName::parse(n).unwrap(), c);
        assert_eq!(url("smollm2:135m", &config), "http://127.0.0.1:9/v2/library/smollm2");
        assert_eq!(url("example.com/me/m:1", &config), "https://example.com/v2/me/m");
        let insecure = PullConfig { insecure: true, ..config };
        assert_eq!(url("localhost:5000/me/m", &insecure), "http://localhost:5000/v2/me/m");
        assert_eq!(url("me/m", &PullConfig::default()), "https://registry.ollama.ai/v2/me/m");
    }
}
