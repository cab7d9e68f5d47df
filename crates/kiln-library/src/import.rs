//! New weights for a create: a Hugging Face model directory uploaded file by file and
//! converted to GGUF, or a GGUF quantized. The result is a blob like any other, written
//! through a temporary file and renamed into place only when complete.

use std::collections::BTreeMap;

use kiln_quant::QuantScheme;

use crate::create::CreateError;
use crate::digest::Digest;
use crate::store::Store;

/// License files a model directory may carry, in the order they are looked for.
const LICENSE_FILES: [&str; 3] = ["LICENSE", "LICENSE.md", "LICENSE.txt"];

/// The quantization named in a request (`q4_K_M`, case-insensitive).
pub fn parse_scheme(name: &str) -> Result<QuantScheme, CreateError> {
    QuantScheme::parse(name).ok_or_else(|| {
        let known: Vec<&str> = QuantScheme::ALL.iter().map(|q| q.name()).collect();
        CreateError::Invalid(format!("unsupported quantization type {name:?} (supported: {})", known.join(", ")))
    })
}

/// The uploaded files as a model directory: each blob linked (or copied) under its name in a
/// temporary directory of the library, removed when dropped.
struct AssembledDir {
    path: std::path::PathBuf,
}

impl Drop for AssembledDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn assemble(store: &Store, files: &BTreeMap<String, Digest>) -> Result<AssembledDir, CreateError> {
    let dir = AssembledDir { path: store.temp_path() };
    for (name, digest) in files {
        let target = kiln_convert::join_inside(&dir.path, name).ok_or_else(|| {
            CreateError::Invalid(format!("file name {name:?} is not a relative path inside the model"))
        })?;
        let blob = store.blob_path(digest);
        if !blob.is_file() {
            return Err(CreateError::Invalid(format!(
                "blob {digest} for {name} is not in the library; upload it first (POST /api/blobs/{digest})"
            )));
        }
        let parent = target.parent().unwrap_or(&dir.path);
        std::fs::create_dir_all(parent).map_err(crate::LibraryError::io(parent))?;
        // A hard link costs nothing; a copy is the fallback where links are not allowed.
        if std::fs::hard_link(&blob, &target).is_err() {
            std::fs::copy(&blob, &target).map_err(crate::LibraryError::io(&target))?;
        }
    }
    Ok(dir)
}

fn conversion_error(e: kiln_convert::ConvertError) -> CreateError {
    CreateError::Invalid(format!("cannot import the model: {e}"))
}

/// Converts the uploaded model directory `files` into a GGUF blob, quantized by `scheme` if
/// given. Returns the blob's digest and the license text the directory carries, if any.
pub fn convert_uploaded(
    store: &Store,
    files: &BTreeMap<String, Digest>,
    scheme: Option<QuantScheme>,
    progress: &mut dyn FnMut(String),
) -> Result<(Digest, Option<String>), CreateError> {
    // Checked before any work, so a client hears it before the conversion's first status.
    for required in [&["config.json"][..], &["tokenizer.json", "tokenizer.model"]] {
        if !required.iter().any(|f| files.contains_key(*f)) {
            return Err(CreateError::Invalid(format!(
                "the files are not a Hugging Face model directory Kiln can import: {} is missing",
                required.join(" or ")
            )));
        }
    }
    let dir = assemble(store, files)?;
    let license = match LICENSE_FILES.iter().map(|f| dir.path.join(f)).find(|p| p.is_file()) {
        Some(p) => Some(std::fs::read_to_string(&p).map_err(crate::LibraryError::io(&p))?),
        None => None,
    };
    progress("converting model".into());
    let (digest, _) = store.write_blob_from(|out| {
        kiln_convert::convert_dir(&dir.path, out, scheme, progress).map(|_| ()).map_err(conversion_error)
    })?;
    Ok((digest, license))
}

/// The GGUF blob `digest` quantized by `scheme`, as a new blob.
pub fn quantize_blob(
    store: &Store,
    digest: &Digest,
    scheme: QuantScheme,
    progress: &mut dyn FnMut(String),
) -> Result<Digest, CreateError> {
    let src = store.blob_path(digest);
    let (digest, _) = store.write_blob_from(|out| {
        kiln_convert::quantize_gguf(&src, out, scheme, progress).map(|_| ()).map_err(conversion_error)
    })?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_parse_or_list_the_supported_ones() {
        assert_eq!(parse_scheme("Q4_K_M").unwrap(), QuantScheme::Q4KM);
        let err = parse_scheme("q3_K_S").unwrap_err().to_string();
        assert!(err.contains("unsupported quantization type \"q3_K_S\"") && err.contains("q8_0"), "{err}");
    }
}
