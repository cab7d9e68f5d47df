//! Model names: `[host/][namespace/]model[:tag]`, with Ollama's defaults filled in.

use crate::error::LibraryError;
use std::fmt;
use std::path::PathBuf;

pub const DEFAULT_HOST: &str = "registry.ollama.ai";
pub const DEFAULT_NAMESPACE: &str = "library";
pub const DEFAULT_TAG: &str = "latest";

/// A fully qualified model name. Parts keep the case they were written in (Hugging Face
/// repositories and quant tags are mixed case) but compare case-insensitively, as Ollama's do.
#[derive(Debug, Clone)]
pub struct ModelName {
    pub host: String,
    pub namespace: String,
    pub model: String,
    pub tag: String,
}

/// Letters, digits, `_`, `-`, `.`; starting with a letter, digit or `_`; at most `max` long.
fn valid_part(s: &str, max: usize) -> bool {
    let first_ok = s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    first_ok && s.len() <= max && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// A host may carry a port (`localhost:5000`).
fn valid_host(s: &str) -> bool {
    let (host, port) = s.split_once(':').unwrap_or((s, ""));
    valid_part(host, 350) && (port.is_empty() || port.parse::<u16>().is_ok()) && !s.ends_with(':')
}

impl ModelName {
    pub fn parse(s: &str) -> Result<ModelName, LibraryError> {
        let bad = || LibraryError::Name(s.to_string());
        let trimmed = s.trim();
        let trimmed = trimmed.strip_prefix("https://").or_else(|| trimmed.strip_prefix("http://")).unwrap_or(trimmed);
        let parts: Vec<&str> = trimmed.split('/').collect();
        let (host, namespace, last) = match parts.as_slice() {
            [m] => (DEFAULT_HOST, DEFAULT_NAMESPACE, *m),
            [ns, m] => (DEFAULT_HOST, *ns, *m),
            [h, ns, m] => (*h, *ns, *m),
            _ => return Err(bad()),
        };
        let (model, tag) = match last.split_once(':') {
            Some((m, t)) => (m, t),
            None => (last, DEFAULT_TAG),
        };
        let ok = valid_host(host) && valid_part(namespace, 80) && valid_part(model, 80) && valid_part(tag, 80);
        if !ok {
            return Err(bad());
        }
        Ok(ModelName { host: host.into(), namespace: namespace.into(), model: model.into(), tag: tag.into() })
    }

    /// Where the manifest lives, relative to the library's `manifests` directory.
    pub fn manifest_rel_path(&self) -> PathBuf {
        [&self.host, &self.namespace, &self.model, &self.tag].iter().collect()
    }

    /// The repository part, `namespace/model`, as registries address it.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.namespace, self.model)
    }

    /// Whether this is a Hugging Face name (`hf.co/org/repo:quant`).
    pub fn is_hugging_face(&self) -> bool {
        matches!(self.host.to_ascii_lowercase().as_str(), "hf.co" | "huggingface.co")
    }
}

impl PartialEq for ModelName {
    fn eq(&self, other: &Self) -> bool {
        self.host.eq_ignore_ascii_case(&other.host)
            && self.namespace.eq_ignore_ascii_case(&other.namespace)
            && self.model.eq_ignore_ascii_case(&other.model)
            && self.tag.eq_ignore_ascii_case(&other.tag)
    }
}

impl Eq for ModelName {}

/// The short form Ollama shows: default host and namespace left out, the tag always written.
impl fmt::Display for ModelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.host.eq_ignore_ascii_case(DEFAULT_HOST) {
            write!(f, "{}/{}/", self.host, self.namespace)?;
        } else if !self.namespace.eq_ignore_ascii_case(DEFAULT_NAMESPACE) {
            write!(f, "{}/", self.namespace)?;
        }
        write!(f, "{}:{}", self.model, self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(s: &str) -> (String, String, String, String) {
        let n = ModelName::parse(s).unwrap();
        (n.host, n.namespace, n.model, n.tag)
    }

    #[test]
    fn defaults_fill_in_like_ollama() {
        let own = |a: &str, b: &str, c: &str, d: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string());
        assert_eq!(parts("llama3.2"), own(DEFAULT_HOST, "library", "llama3.2", "latest"));
        assert_eq!(parts("llama3.2:1b"), own(DEFAULT_HOST, "library", "llama3.2", "1b"));
        assert_eq!(parts("me/mine:v1"), own(DEFAULT_HOST, "me", "mine", "v1"));
        assert_eq!(
            parts("hf.co/bartowski/SmolLM2-135M-Instruct-GGUF:Q4_K_M"),
            own("hf.co", "bartowski", "SmolLM2-135M-Instruct-GGUF", "Q4_K_M")
        );
        assert_eq!(parts("localhost:5000/ns/m"), own("localhost:5000", "ns", "m", "latest"));
        assert_eq!(parts("http://localhost:5000/ns/m:t"), own("localhost:5000", "ns", "m", "t"));
    }

    #[test]
    fn display_is_the_short_form() {
        let show = |s: &str| ModelName::parse(s).unwrap().to_string();
        assert_eq!(show("smollm2"), "smollm2:latest");
        assert_eq!(show("registry.ollama.ai/library/smollm2:135m"), "smollm2:135m");
        assert_eq!(show("me/mine"), "me/mine:latest");
        assert_eq!(show("hf.co/org/repo:Q8_0"), "hf.co/org/repo:Q8_0");
        assert_eq!(
            ModelName::parse("Org/Repo:Q4").unwrap().manifest_rel_path(),
            PathBuf::from("registry.ollama.ai/Org/Repo/Q4")
        );
    }

    #[test]
    fn names_compare_without_case() {
        assert_eq!(
            ModelName::parse("hf.co/Org/Repo:Q4_K_M").unwrap(),
            ModelName::parse("HF.CO/org/repo:q4_k_m").unwrap()
        );
        assert_ne!(ModelName::parse("a:1").unwrap(), ModelName::parse("a:2").unwrap());
        assert!(ModelName::parse("hf.co/org/repo").unwrap().is_hugging_face());
        assert!(!ModelName::parse("org/repo").unwrap().is_hugging_face());
    }

    #[test]
    fn bad_names_are_refused() {
        for bad in ["", ":", "a:", ":tag", "a/b/c/d", "../etc", "a/../b", "-x", "x y", "x/y:z:w", "h:99999/n/m", "m:.."]
        {
            assert!(matches!(ModelName::parse(bad), Err(LibraryError::Name(_))), "{bad:?}");
        }
        let long = "m".repeat(81);
        assert!(ModelName::parse(&long).is_err());
    }
}
