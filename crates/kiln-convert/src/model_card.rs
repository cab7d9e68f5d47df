//! What a model directory's card (`README.md` with YAML front matter, as the Hugging Face Hub
//! shows it) says about the model that belongs in the GGUF: its license id, which llama.cpp's
//! converter also writes as `general.license`, so that a model imported without a LICENSE file
//! still tells its user which terms apply.

use std::path::Path;

/// The `license:` id of the card's front matter (`apache-2.0`, `llama3.1`, `other`…), if the
/// directory has a card with one.
pub fn license(dir: &Path) -> Option<String> {
    let card = std::fs::read_to_string(dir.join("README.md")).ok()?;
    let front = card.strip_prefix("---")?.trim_start_matches('\r').strip_prefix('\n')?;
    let front = &front[..front.find("\n---").unwrap_or(front.len())];
    front.lines().find_map(|line| {
        let value = line.strip_prefix("license:")?.trim().trim_matches(|c| c == '"' || c == '\'');
        (!value.is_empty()).then(|| value.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_testdata::TempDir;

    fn card(text: &str) -> Option<String> {
        let dir = TempDir::new("model-card");
        std::fs::create_dir_all(&dir.0).unwrap();
        std::fs::write(dir.0.join("README.md"), text).unwrap();
        license(&dir.0)
    }

    #[test]
    fn the_front_matters_license_id_is_read() {
        assert_eq!(
            card("---\nlanguage: en\nlicense: apache-2.0\ntags:\n- x\n---\n# Model\n").as_deref(),
            Some("apache-2.0")
        );
        assert_eq!(card("---\r\nlicense: \"llama3.1\"\r\n---\r\n").as_deref(), Some("llama3.1"));
    }

    #[test]
    fn no_front_matter_or_license_line_gives_none() {
        assert_eq!(card("# Model\nlicense: mit\n"), None);
        assert_eq!(card("---\nlanguage: en\n---\nlicense: mit\n"), None);
        assert_eq!(card("---\nlicense:\n- mit\n---\n"), None);
        assert_eq!(license(Path::new("no/such/dir")), None);
    }
}
