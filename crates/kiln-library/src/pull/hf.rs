//! Hugging Face repositories of GGUF files: `hf.co/{org}/{repo}:{quant}` names one file of the
//! repository (and its license, if any), which the pull wraps in a manifest of its own.

use super::error::PullError;
use super::http::Http;
use super::{Blob, Plan, Source};
use crate::digest::Digest;
use crate::manifest::{media, Layer, Manifest, ModelConfigBlob, RootFs, CONFIG_MEDIA_TYPE};
use crate::name::{ModelName, DEFAULT_TAG};
use serde::Deserialize;

/// The quant `latest` stands for when a repository has several: Ollama's choice too.
const PREFERRED_QUANT: &str = "Q4_K_M";
const LICENSE_FILES: [&str; 3] = ["LICENSE", "LICENSE.md", "LICENSE.txt"];

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Entry {
    #[serde(rename = "type")]
    kind: String,
    path: String,
    #[serde(default)]
    lfs: Option<Lfs>,
}

#[derive(Debug, Clone, Deserialize)]
struct Lfs {
    /// sha256 of the file, in hex.
    oid: String,
    size: u64,
}

impl Entry {
    fn file_name(&self) -> &str {
        self.path.rsplit('/').next().unwrap_or(&self.path)
    }

    fn is_model_gguf(&self) -> bool {
        let name = self.file_name().to_ascii_lowercase();
        // Of a split model only the first piece stands for it.
        let first_piece = split_piece(self.file_name()).is_none_or(|(_, index)| index == 1);
        self.kind == "file" && name.ends_with(".gguf") && !name.contains("mmproj") && first_piece
    }

    /// The file name without `.gguf` and any split suffix.
    fn stem(&self) -> &str {
        let name = self.file_name();
        split_piece(name).map_or(&name[..name.len() - ".gguf".len()], |(stem, _)| stem)
    }

    /// The quant a file name ends with: `Model-Q4_K_M.gguf` and `model.Q4_K_M.gguf` → `Q4_K_M`.
    fn quant(&self) -> &str {
        let stem = self.stem();
        stem.rsplit(['-', '.']).next().unwrap_or(stem)
    }
}

/// `model-00001-of-00003.gguf`, one piece of a split model → (`model`, 1).
fn split_piece(file_name: &str) -> Option<(&str, u32)> {
    let stem = file_name.get(..file_name.len().checked_sub(".gguf".len())?)?;
    let digits = |s: &str| s.len() == 5 && s.bytes().all(|c| c.is_ascii_digit());
    match stem.rsplitn(4, '-').collect::<Vec<_>>().as_slice() {
        [total, of, index, rest] if of.eq_ignore_ascii_case("of") && digits(total) && digits(index) => {
            Some((rest, index.parse().ok()?))
        }
        _ => None,
    }
}

/// Case and `-`/`_` do not matter in quant names.
fn fold(s: &str) -> String {
    s.to_ascii_lowercase().replace('-', "_")
}

/// The GGUF file a tag names. Several files containing the quant prefer the one where it is
/// the whole last part of the name (`Q4_K` picks `-Q4_K.gguf` over `-Q4_K_M.gguf`).
fn choose<'e>(entries: &'e [Entry], repo: &str, tag: &str) -> Result<&'e Entry, PullError> {
    let ggufs: Vec<&Entry> = entries.iter().filter(|e| e.is_model_gguf()).collect();
    let listing = || {
        let mut quants: Vec<&str> = ggufs.iter().map(|e| e.quant()).collect();
        quants.sort_unstable();
        quants.dedup();
        quants.join(", ")
    };
    if ggufs.is_empty() {
        return Err(PullError::HuggingFace(format!("{repo} has no GGUF files")));
    }
    let latest = tag.eq_ignore_ascii_case(DEFAULT_TAG);
    let quant = if latest { PREFERRED_QUANT } else { tag };
    let matching: Vec<&Entry> = ggufs.iter().copied().filter(|e| fold(e.file_name()).contains(&fold(quant))).collect();
    let exact: Vec<&Entry> = matching.iter().copied().filter(|e| fold(e.quant()) == fold(quant)).collect();
    let picked = match (exact.as_slice(), matching.as_slice(), ggufs.as_slice()) {
        ([one], _, _) | ([], [one], _) => *one,
        (_, [], [only]) if latest => *only,
        (_, [], _) if latest => {
            let msg =
                format!("{repo} has several GGUF files and none is {PREFERRED_QUANT}; name one of: {}", listing());
            return Err(PullError::HuggingFace(msg));
        }
        (_, [], _) => {
            return Err(PullError::HuggingFace(format!(
                "{repo} has no GGUF file for '{tag}'; available: {}",
                listing()
            )))
        }
        _ => {
            let mut names: Vec<&str> = matching.iter().map(|e| e.path.as_str()).collect();
            names.sort_unstable();
            return Err(PullError::HuggingFace(format!(
                "'{tag}' matches several files in {repo}: {}",
                names.join(", ")
            )));
        }
    };
    if split_piece(picked.file_name()).is_some() {
        return Err(PullError::HuggingFace(format!(
            "{} is split into several files; split GGUF models are not supported yet",
            picked.path
        )));
    }
    Ok(picked)
}

/// Lists the repository, picks the file, fetches the license, and plans the manifest.
pub(crate) fn plan(http: &Http, endpoint: &str, name: &ModelName) -> Result<Plan, PullError> {
    let endpoint = endpoint.trim_end_matches('/');
    let repo = format!("{}/{}", name.namespace, name.model);
    let tree_url = format!("{endpoint}/api/models/{repo}/tree/main?recursive=true");
    let bytes = http.get_bytes(&tree_url, &[]).map_err(|e| match e {
        // The Hub answers 401 for repositories that do not exist (or are private).
        PullError::Status { status: 401 | 404, .. } => PullError::NotFound(name.to_string()),
        other => other,
    })?;
    let entries: Vec<Entry> = serde_json::from_slice(&bytes)
        .map_err(|e| PullError::BadResponse { url: tree_url.clone(), reason: format!("file listing: {e}") })?;
    let file = choose(&entries, &repo, &name.tag)?;
    let resolve = |path: &str| format!("{endpoint}/{repo}/resolve/main/{path}");
    let lfs = file.lfs.as_ref().ok_or_else(|| PullError::BadResponse {
        url: tree_url.clone(),
        reason: format!("{} is not stored with LFS", file.path),
    })?;
    let digest = Digest::parse(&format!("sha256:{}", lfs.oid))
        .map_err(|e| PullError::BadResponse { url: tree_url.clone(), reason: e.to_string() })?;
    let model = Blob {
        layer: Layer { media_type: media::MODEL.into(), digest, size: lfs.size, from: None },
        source: Source::Url(resolve(&file.path)),
    };

    let mut blobs = vec![model];
    let license =
        entries.iter().find(|e| e.kind == "file" && LICENSE_FILES.iter().any(|l| e.path.eq_ignore_ascii_case(l)));
    if let Some(license) = license {
        let text = http.get_bytes(&resolve(&license.path), &[])?;
        blobs.push(Blob::bytes(media::LICENSE, text));
    }
    let config = ModelConfigBlob {
        model_format: "gguf".into(),
        file_type: file.quant().to_ascii_uppercase(),
        rootfs: RootFs { diff_ids: blobs.iter().map(|b| b.layer.digest).collect(), ..RootFs::default() },
        ..ModelConfigBlob::default()
    };
    let config = Blob::bytes(CONFIG_MEDIA_TYPE, serde_json::to_vec(&config).expect("config serialises"));
    let manifest = Manifest::new(config.layer.clone(), blobs.iter().map(|b| b.layer.clone()).collect());
    blobs.push(config);
    Ok(Plan { manifest, blobs })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(paths: &[&str]) -> Vec<Entry> {
        let lfs = || Some(Lfs { oid: "0".repeat(64), size: 1 });
        paths.iter().map(|p| Entry { kind: "file".into(), path: p.to_string(), lfs: lfs() }).collect()
    }

    fn pick(paths: &[&str], tag: &str) -> Result<String, String> {
        let e = entries(paths);
        choose(&e, "org/repo", tag).map(|e| e.path.clone()).map_err(|e| e.to_string())
    }

    #[test]
    fn quants_match_without_case_or_dash_and_prefer_a_whole_match() {
        let files = ["M-Q4_K.gguf", "M-Q4_K_M.gguf", "M-q8_0.gguf", "mmproj-M-Q8_0.gguf", "README.md"];
        assert_eq!(pick(&files, "q4_k_m").unwrap(), "M-Q4_K_M.gguf");
        assert_eq!(pick(&files, "Q4-K").unwrap(), "M-Q4_K.gguf");
        assert_eq!(pick(&files, "Q8_0").unwrap(), "M-q8_0.gguf");
        assert_eq!(pick(&files, "latest").unwrap(), "M-Q4_K_M.gguf");
        assert_eq!(pick(&["sub/model.Q5_K_S.gguf"], "latest").unwrap(), "sub/model.Q5_K_S.gguf");
    }

    #[test]
    fn unclear_or_unsupported_choices_explain_themselves() {
        let err = pick(&["M-Q8_0.gguf", "M-Q6_K.gguf"], "latest").unwrap_err();
        assert!(err.contains("Q6_K, Q8_0"), "{err}");
        let err = pick(&["M-Q8_0.gguf"], "Q2_K").unwrap_err();
        assert!(err.contains("no GGUF file for 'Q2_K'") && err.contains("Q8_0"), "{err}");
        let err = pick(&["M-Q4_K_M-00001-of-00002.gguf", "M-Q4_K_M-00002-of-00002.gguf"], "Q4_K_M").unwrap_err();
        assert!(err.contains("split GGUF models are not supported yet"), "{err}");
        let err = pick(&["M-Q4_K.gguf", "M-Q4_K_S.gguf", "M-Q4_K_M.gguf"], "K").unwrap_err();
        assert!(err.contains("matches several files"), "{err}");
        let err = pick(&["Q4_K_M/M-Q4_K_M-00001-of-00002.gguf", "M-Q8_0.gguf"], "latest").unwrap_err();
        assert!(err.contains("not supported yet"), "{err}");
        assert!(pick(&["README.md"], "latest").unwrap_err().contains("no GGUF files"));
    }
}
