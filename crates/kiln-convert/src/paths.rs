//! Paths that files of a model directory name (shards in the index, sentence-transformers
//! modules): a server converts directories a client uploaded, so a name may only lead to a file
//! inside the directory.

use std::path::{Component, Path, PathBuf};

/// `dir/rel` when `rel` is a plain relative path (no root, no `..`), else `None`.
pub fn join_inside(dir: &Path, rel: &str) -> Option<PathBuf> {
    let rel_path = Path::new(rel);
    let plain = !rel.is_empty() && rel_path.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    plain.then(|| dir.join(rel_path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_directory() {
        let dir = Path::new("model");
        assert_eq!(join_inside(dir, "model-00001.safetensors"), Some(dir.join("model-00001.safetensors")));
        assert_eq!(join_inside(dir, "1_Pooling"), Some(dir.join("1_Pooling")));
        for bad in ["", "/etc/passwd", "../x", "a/../../x"] {
            assert_eq!(join_inside(dir, bad), None, "{bad}");
        }
    }
}
