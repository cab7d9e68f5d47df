//! The library directory: content-addressed blobs and the manifests that name them.

use crate::digest::Digest;
use crate::error::LibraryError;
use crate::manifest::Manifest;
use crate::name::ModelName;
use sha2::{Digest as _, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::SystemTime;

/// Temporary files start with this, so listings and pruning know them.
const TEMP_PREFIX: &str = ".tmp-";

/// A model in the library: its name and manifest.
#[derive(Debug, Clone)]
pub struct LibraryModel {
    pub name: ModelName,
    pub manifest: Manifest,
    /// sha256 of the manifest's bytes: what Ollama reports as the model's digest.
    pub digest: Digest,
    pub modified: SystemTime,
}

pub struct Store {
    root: PathBuf,
    /// Blobs being written or about to be named by a manifest: pruning leaves them alone.
    pins: Mutex<HashMap<Digest, usize>>,
    /// Serialises manifest writes against pruning, so a blob is never removed between the
    /// check that it exists and the manifest that names it.
    manifests_lock: Mutex<()>,
    temp_counter: AtomicU64,
}

/// Keeps a blob from being pruned while it lives.
pub struct BlobPin<'s> {
    store: &'s Store,
    digest: Digest,
}

impl Drop for BlobPin<'_> {
    fn drop(&mut self) {
        let mut pins = self.store.pins.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = pins.get_mut(&self.digest) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&self.digest);
            }
        }
    }
}

/// Writes `bytes` to `path` through a temporary file in the same directory and a rename, then
/// syncs the directory: readers see the old file or the new one, never a part.
fn write_atomically(path: &Path, temp: &Path, bytes: &[u8]) -> Result<(), LibraryError> {
    let result = (|| {
        let mut f = File::create(temp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(temp, path)?;
        sync_dir(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(temp);
    }
    result.map_err(LibraryError::io(path))
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

impl Store {
    /// Opens (creating if needed) the library at `root`, and removes temporary files a crash
    /// left behind. Partly downloaded blobs are kept, so pulls resume.
    pub fn open(root: impl Into<PathBuf>) -> Result<Store, LibraryError> {
        let root = root.into();
        for dir in [root.join("manifests"), root.join("blobs")] {
            fs::create_dir_all(&dir).map_err(LibraryError::io(&dir))?;
        }
        let store = Store {
            root,
            pins: Mutex::new(HashMap::new()),
            manifests_lock: Mutex::new(()),
            temp_counter: AtomicU64::new(0),
        };
        store.remove_stale_temp_files();
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    fn manifests_dir(&self) -> PathBuf {
        self.root.join("manifests")
    }

    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(digest.file_name())
    }

    /// Where a download of `digest` keeps its bytes until they are verified.
    pub fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.blobs_dir().join(format!("{}-partial", digest.file_name()))
    }

    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// A fresh temporary path in the blobs directory (same file system, so renames are atomic).
    pub fn temp_path(&self) -> PathBuf {
        let n = self.temp_counter.fetch_add(1, Ordering::Relaxed);
        self.blobs_dir().join(format!("{TEMP_PREFIX}{}-{n}", std::process::id()))
    }

    fn remove_stale_temp_files(&self) {
        for dir in [self.blobs_dir()] {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                if e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                    // Directories are model directories assembled for an import.
                    let _ = if e.path().is_dir() { fs::remove_dir_all(e.path()) } else { fs::remove_file(e.path()) };
                }
            }
        }
    }

    pub fn pin(&self, digest: Digest) -> BlobPin<'_> {
        *self.pins.lock().unwrap_or_else(|e| e.into_inner()).entry(digest).or_default() += 1;
        BlobPin { store: self, digest }
    }

    /// Stores what `reader` yields as a blob, hashing it on the way. With `expected`, a
    /// different digest is refused and nothing is kept. Returns the digest and size.
    pub fn write_blob(&self, reader: &mut dyn Read, expected: Option<&Digest>) -> Result<(Digest, u64), LibraryError> {
        let temp = self.temp_path();
        let result = self.write_blob_via(&temp, reader, expected);
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    fn write_blob_via(
        &self,
        temp: &Path,
        reader: &mut dyn Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64), LibraryError> {
        let mut file = File::create(temp).map_err(LibraryError::io(temp))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf).map_err(LibraryError::io(temp))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n]).map_err(LibraryError::io(temp))?;
            size += n as u64;
        }
        file.sync_all().map_err(LibraryError::io(temp))?;
        let digest = Digest::from_hasher(hasher);
        if let Some(want) = expected {
            if *want != digest {
                return Err(LibraryError::DigestMismatch { expected: want.to_string(), actual: digest.to_string() });
            }
        }
        self.install_verified(temp, &digest)?;
        Ok((digest, size))
    }

    /// Moves a verified file (a finished write, or a download `verify_download` accepted)
    /// into place as the blob `digest`.
    pub fn install_verified(&self, temp: &Path, digest: &Digest) -> Result<(), LibraryError> {
        let path = self.blob_path(digest);
        if path.is_file() {
            // Same content already stored.
            let _ = fs::remove_file(temp);
            return Ok(());
        }
        fs::rename(temp, &path).map_err(LibraryError::io(&path))?;
        sync_dir(&path).map_err(LibraryError::io(&path))
    }

    /// Stores as a blob what `produce` writes, hashed on the way. If `produce` fails nothing
    /// is kept. Returns the digest and size.
    pub fn write_blob_from<E: From<LibraryError>>(
        &self,
        produce: impl FnOnce(&mut dyn Write) -> Result<(), E>,
    ) -> Result<(Digest, u64), E> {
        let temp = self.temp_path();
        let result = (|| {
            let file = File::create(&temp).map_err(LibraryError::io(&temp))?;
            let mut out = HashingWriter { inner: std::io::BufWriter::new(file), hasher: Sha256::new(), size: 0 };
            produce(&mut out)?;
            let file = out.inner.into_inner().map_err(|e| LibraryError::io(&temp)(e.into_error()))?;
            file.sync_all().map_err(LibraryError::io(&temp))?;
            let digest = Digest::from_hasher(out.hasher);
            self.install_verified(&temp, &digest)?;
            Ok((digest, out.size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    pub fn write_blob_bytes(&self, bytes: &[u8]) -> Result<(Digest, u64), LibraryError> {
        self.write_blob(&mut &bytes[..], None)
    }

    /// Hashes the finished download at `file` and, if it is `expected`, moves it into place;
    /// otherwise deletes it. Either way `file` is gone afterwards.
    pub fn commit_download(&self, file: &Path, expected: &Digest) -> Result<(), LibraryError> {
        self.verify_download(file, expected)?;
        self.install_verified(file, expected)
    }

    /// Checks that the download at `file` hashes to `expected`; if not, deletes it.
    pub fn verify_download(&self, file: &Path, expected: &Digest) -> Result<(), LibraryError> {
        let result = hash_file(file).and_then(|d| {
            if d == *expected {
                Ok(())
            } else {
                Err(LibraryError::DigestMismatch { expected: expected.to_string(), actual: d.to_string() })
            }
        });
        if result.is_err() {
            let _ = fs::remove_file(file);
        }
        result
    }

    pub fn read_blob_text(&self, digest: &Digest) -> Result<String, LibraryError> {
        let path = self.blob_path(digest);
        fs::read_to_string(&path).map_err(LibraryError::io(&path))
    }

    fn read_manifest_at(&self, name: ModelName, path: &Path) -> Result<LibraryModel, LibraryError> {
        let bytes = fs::read(path).map_err(LibraryError::io(path))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| LibraryError::Manifest { name: name.to_string(), reason: e.to_string() })?;
        let modified = fs::metadata(path).and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
        Ok(LibraryModel { name, manifest, digest: Digest::of_bytes(&bytes), modified })
    }

    /// The model called `name` (case-insensitively).
    pub fn find(&self, name: &ModelName) -> Result<LibraryModel, LibraryError> {
        let exact = self.manifests_dir().join(name.manifest_rel_path());
        if exact.is_file() {
            return self.read_manifest_at(name.clone(), &exact);
        }
        let path = self.manifest_paths().into_iter().find(|(n, _)| n == name);
        match path {
            Some((n, p)) => self.read_manifest_at(n, &p),
            None => Err(LibraryError::NotFound(name.to_string())),
        }
    }

    /// Every manifest file and the name its place spells.
    fn manifest_paths(&self) -> Vec<(ModelName, PathBuf)> {
        fn children(dir: &Path) -> Vec<(String, PathBuf)> {
            let Ok(rd) = fs::read_dir(dir) else { return Vec::new() };
            rd.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .filter(|(n, _)| !n.starts_with('.'))
                .collect()
        }
        let mut out = Vec::new();
        for (host, hp) in children(&self.manifests_dir()) {
            for (ns, np) in children(&hp) {
                for (model, mp) in children(&np) {
                    for (tag, tp) in children(&mp) {
                        if !tp.is_file() {
                            continue;
                        }
                        let full = format!("{host}/{ns}/{model}:{tag}");
                        if let Ok(name) = ModelName::parse(&full) {
                            out.push((name, tp));
                        }
                    }
                }
            }
        }
        out
    }

    /// Every model whose manifest reads, sorted by name. A manifest that does not parse is
    /// reported on stderr and left out, so one broken file does not hide the others.
    pub fn list(&self) -> Vec<LibraryModel> {
        let mut out: Vec<LibraryModel> = self
            .manifest_paths()
            .into_iter()
            .filter_map(|(n, p)| match self.read_manifest_at(n, &p) {
                Ok(m) => Some(m),
                Err(e) => {
                    eprintln!("kiln: skipping {}: {e}", p.display());
                    None
                }
            })
            .collect();
        out.sort_by_key(|m| m.name.to_string().to_lowercase());
        out
    }

    /// GGUF files lying loose in the library's top directory (where older releases read
    /// models from): not models of the library, but worth telling the user about.
    pub fn loose_gguf_files(&self) -> Vec<PathBuf> {
        let Ok(rd) = fs::read_dir(&self.root) else { return Vec::new() };
        let mut v: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "gguf"))
            .collect();
        v.sort();
        v
    }

    /// Writes `manifest` as `name`, after checking that every blob it names is stored with
    /// the stated size. Returns the manifest's digest.
    pub fn write_manifest(&self, name: &ModelName, manifest: &Manifest) -> Result<Digest, LibraryError> {
        let _guard = self.manifests_lock.lock().unwrap_or_else(|e| e.into_inner());
        for layer in manifest.blobs() {
            let path = self.blob_path(&layer.digest);
            match fs::metadata(&path) {
                Ok(m) if m.is_file() && m.len() == layer.size => {}
                _ => return Err(LibraryError::MissingBlob(layer.digest.to_string())),
            }
        }
        // Replace a manifest stored under another spelling of the same name.
        let existing = self.manifest_paths().into_iter().find(|(n, _)| n == name).map(|(_, p)| p);
        let path = self.manifests_dir().join(name.manifest_rel_path());
        let dir = path.parent().expect("manifest paths have four parts");
        fs::create_dir_all(dir).map_err(LibraryError::io(dir))?;
        let bytes = serde_json::to_vec(manifest).expect("manifests serialise");
        let temp = dir.join(format!("{TEMP_PREFIX}{}", name.tag));
        write_atomically(&path, &temp, &bytes)?;
        if let Some(old) = existing.filter(|p| *p != path) {
            let _ = fs::remove_file(old);
        }
        Ok(Digest::of_bytes(&bytes))
    }

    /// Stores `src`'s manifest under `dst` too; the blobs are shared.
    pub fn copy(&self, src: &ModelName, dst: &ModelName) -> Result<(), LibraryError> {
        let model = self.find(src)?;
        self.write_manifest(dst, &model.manifest).map(|_| ())
    }

    /// Removes the model and every blob no other model uses.
    pub fn delete(&self, name: &ModelName) -> Result<(), LibraryError> {
        let (_, path) = self
            .manifest_paths()
            .into_iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| LibraryError::NotFound(name.to_string()))?;
        {
            let _guard = self.manifests_lock.lock().unwrap_or_else(|e| e.into_inner());
            fs::remove_file(&path).map_err(LibraryError::io(&path))?;
            // Empty model and namespace directories go too.
            let mut dir = path.parent();
            while let Some(d) = dir.filter(|d| *d != self.manifests_dir()) {
                if fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
        }
        self.prune()?;
        Ok(())
    }

    /// Deletes blobs no manifest names (and no one has pinned). Partial downloads are kept
    /// so that pulls resume. Returns what was removed.
    pub fn prune(&self) -> Result<Vec<Digest>, LibraryError> {
        let _guard = self.manifests_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut used: HashSet<Digest> = HashSet::new();
        for (name, path) in self.manifest_paths() {
            // A manifest that does not parse keeps every blob: deleting on a guess loses data.
            let model = self.read_manifest_at(name, &path).map_err(|_| LibraryError::Manifest {
                name: path.display().to_string(),
                reason: "unreadable; not pruning".into(),
            })?;
            used.extend(model.manifest.blobs().map(|l| l.digest));
        }
        let pins = self.pins.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let dir = self.blobs_dir();
        let mut removed = Vec::new();
        for e in fs::read_dir(&dir).map_err(LibraryError::io(&dir))?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(d) = Digest::parse(&name) else { continue };
            if !used.contains(&d) && !pins.contains_key(&d) && fs::remove_file(e.path()).is_ok() {
                removed.push(d);
            }
        }
        Ok(removed)
    }
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    size: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 of a file's contents.
pub fn hash_file(path: &Path) -> Result<Digest, LibraryError> {
    let mut f = File::open(path).map_err(LibraryError::io(path))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(LibraryError::io(path))?;
        if n == 0 {
            return Ok(Digest::from_hasher(hasher));
        }
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{media, Layer, CONFIG_MEDIA_TYPE};

    use kiln_testdata::TempDir;

    fn name(s: &str) -> ModelName {
        ModelName::parse(s).unwrap()
    }

    /// A manifest over freshly stored blobs.
    fn model(store: &Store, weights: &[u8], license: &[u8]) -> Manifest {
        let layer = |media_type: &str, bytes: &[u8]| {
            let (digest, size) = store.write_blob_bytes(bytes).unwrap();
            Layer { media_type: media_type.into(), digest, size, from: None }
        };
        Manifest::new(
            layer(CONFIG_MEDIA_TYPE, b"{}"),
            vec![layer(media::MODEL, weights), layer(media::LICENSE, license)],
        )
    }

    fn blob_count(store: &Store) -> usize {
        fs::read_dir(store.blobs_dir()).unwrap().count()
    }

    #[test]
    fn blobs_are_content_addressed_and_verified() {
        let dir = TempDir::new("blobs");
        let store = Store::open(&dir.0).unwrap();
        let (d, n) = store.write_blob_bytes(b"hello").unwrap();
        assert_eq!((d, n), (Digest::of_bytes(b"hello"), 5));
        assert_eq!(fs::read(store.blob_path(&d)).unwrap(), b"hello");
        // Writing the same bytes again keeps one copy.
        store.write_blob_bytes(b"hello").unwrap();
        assert_eq!(blob_count(&store), 1);
        // A wrong expected digest keeps nothing.
        let wrong = Digest::of_bytes(b"other");
        let err = store.write_blob(&mut &b"payload"[..], Some(&wrong)).unwrap_err();
        assert!(matches!(err, LibraryError::DigestMismatch { .. }), "{err}");
        assert_eq!(blob_count(&store), 1);
    }

    #[test]
    fn a_failing_reader_leaves_nothing_behind() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("connection reset"));
                }
                self.0 -= 1;
                buf[0] = 7;
                Ok(1)
            }
        }
        let dir = TempDir::new("broken");
        let store = Store::open(&dir.0).unwrap();
        let err = store.write_blob(&mut Broken(1000), None).unwrap_err();
        assert!(err.to_string().contains("connection reset"), "{err}");
        assert_eq!(blob_count(&store), 0);
    }

    #[test]
    fn produced_blobs_are_hashed_and_failures_keep_nothing() {
        let dir = TempDir::new("produce");
        let store = Store::open(&dir.0).unwrap();
        let (d, n) = store.write_blob_from(|out| out.write_all(b"converted").map_err(LibraryError::io("x"))).unwrap();
        assert_eq!((d, n), (Digest::of_bytes(b"converted"), 9));
        assert_eq!(fs::read(store.blob_path(&d)).unwrap(), b"converted");
        let err = store
            .write_blob_from(|out| {
                out.write_all(b"half").map_err(LibraryError::io("x"))?;
                Err(LibraryError::NotFound("the rest".into()))
            })
            .unwrap_err();
        assert!(err.to_string().contains("the rest"), "{err}");
        assert_eq!(blob_count(&store), 1);
    }

    #[test]
    fn stale_temporary_files_and_directories_go_at_open() {
        let dir = TempDir::new("stale");
        let store = Store::open(&dir.0).unwrap();
        fs::create_dir_all(store.temp_path().join("sub")).unwrap();
        fs::write(store.temp_path(), b"partial").unwrap();
        drop(store);
        let store = Store::open(&dir.0).unwrap();
        assert_eq!(blob_count(&store), 0);
    }

    #[test]
    fn downloads_are_committed_only_when_they_match() {
        let dir = TempDir::new("commit");
        let store = Store::open(&dir.0).unwrap();
        let want = Digest::of_bytes(b"weights");
        let part = store.partial_path(&want);
        fs::write(&part, b"weightz").unwrap();
        assert!(matches!(store.commit_download(&part, &want), Err(LibraryError::DigestMismatch { .. })));
        assert!(!part.exists() && !store.has_blob(&want));
        fs::write(&part, b"weights").unwrap();
        store.commit_download(&part, &want).unwrap();
        assert!(!part.exists() && store.has_blob(&want));
    }

    #[test]
    fn manifests_list_find_copy_and_delete() {
        let dir = TempDir::new("manifests");
        let store = Store::open(&dir.0).unwrap();
        let m = model(&store, b"weights-a", b"MIT");
        let digest = store.write_manifest(&name("alpha"), &m).unwrap();
        let found = store.find(&name("ALPHA:latest")).unwrap();
        assert_eq!((found.manifest.clone(), found.digest), (m.clone(), digest));
        assert!(dir.0.join("manifests/registry.ollama.ai/library/alpha/latest").is_file());

        store.copy(&name("alpha"), &name("me/beta:v2")).unwrap();
        let names: Vec<String> = store.list().iter().map(|m| m.name.to_string()).collect();
        assert_eq!(names, ["alpha:latest", "me/beta:v2"]);

        // Deleting one copy keeps the shared blobs; deleting the last removes them.
        store.delete(&name("alpha")).unwrap();
        assert_eq!(blob_count(&store), 3);
        assert!(matches!(store.find(&name("alpha")), Err(LibraryError::NotFound(_))));
        store.delete(&name("me/beta:v2")).unwrap();
        assert_eq!(blob_count(&store), 0);
        assert!(store.list().is_empty());
        assert!(!dir.0.join("manifests/registry.ollama.ai/me").exists());
        assert!(matches!(store.delete(&name("alpha")), Err(LibraryError::NotFound(_))));
    }

    #[test]
    fn a_manifest_naming_a_missing_blob_is_refused() {
        let dir = TempDir::new("missing");
        let store = Store::open(&dir.0).unwrap();
        let mut m = model(&store, b"w", b"l");
        m.layers[0].digest = Digest::of_bytes(b"never stored");
        assert!(matches!(store.write_manifest(&name("x"), &m), Err(LibraryError::MissingBlob(_))));
        // A wrong size is as bad as a missing blob.
        let mut m = model(&store, b"w", b"l");
        m.layers[0].size += 1;
        assert!(matches!(store.write_manifest(&name("x"), &m), Err(LibraryError::MissingBlob(_))));
        assert!(store.list().is_empty());
    }

    #[test]
    fn pruning_spares_pinned_and_partial_blobs_and_broken_manifests_stop_it() {
        let dir = TempDir::new("prune");
        let store = Store::open(&dir.0).unwrap();
        let (kept, _) = store.write_blob_bytes(b"pinned").unwrap();
        let (gone, _) = store.write_blob_bytes(b"orphan").unwrap();
        fs::write(store.partial_path(&gone), b"half").unwrap();
        let pin = store.pin(kept);
        assert_eq!(store.prune().unwrap(), vec![gone]);
        assert!(store.has_blob(&kept) && store.partial_path(&gone).exists());
        drop(pin);
        assert_eq!(store.prune().unwrap(), vec![kept]);

        let (blob, _) = store.write_blob_bytes(b"x").unwrap();
        let bad = dir.0.join("manifests/registry.ollama.ai/library/broken");
        fs::create_dir_all(&bad).unwrap();
        fs::write(bad.join("latest"), b"{not json").unwrap();
        assert!(store.prune().is_err());
        assert!(store.has_blob(&blob));
        assert!(store.list().is_empty());
        assert!(matches!(store.find(&name("broken")), Err(LibraryError::Manifest { .. })));
    }

    #[test]
    fn loose_gguf_files_are_found_but_not_listed() {
        let dir = TempDir::new("loose");
        fs::create_dir_all(&dir.0).unwrap();
        fs::write(dir.0.join("old.gguf"), b"GGUF").unwrap();
        fs::write(dir.0.join("notes.txt"), b"x").unwrap();
        let store = Store::open(&dir.0).unwrap();
        assert_eq!(store.loose_gguf_files(), [dir.0.join("old.gguf")]);
        assert!(store.list().is_empty());
    }

    #[test]
    fn stale_temporary_files_go_at_open() {
        let dir = TempDir::new("stale");
        let store = Store::open(&dir.0).unwrap();
        let temp = store.temp_path();
        fs::write(&temp, b"crashed mid-write").unwrap();
        drop(store);
        Store::open(&dir.0).unwrap();
        assert!(!temp.exists());
    }
}
