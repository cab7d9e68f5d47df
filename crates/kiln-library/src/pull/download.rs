//! Downloading one blob into `<blob>-partial` in parallel `Range` parts, resumably.
//!
//! The parts and how much of each is on disk live in `<blob>-partial.json`, rewritten
//! atomically as bytes arrive, so a later pull asks only for the missing ranges. The bytes are
//! trusted on resume because the whole blob is hashed before it is used: a wrong guess costs
//! a fresh download, never a corrupt model.

use super::error::PullError;
use super::http::{success, Http};
use crate::digest::Digest;
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Ollama's bounds on a part: fewer, larger requests for big blobs, but never so large that
/// a lost connection throws much away.
const MIN_PART: u64 = 100 << 20;
const MAX_PART: u64 = 1 << 30;
/// How often the part state is written while bytes arrive.
const SAVE_EVERY: Duration = Duration::from_secs(1);
const CHUNK: usize = 256 << 10;

/// Everything a download needs from the pull.
pub(crate) struct Fetcher<'a> {
    pub store: &'a Store,
    pub http: &'a Http,
    pub cancel: &'a AtomicBool,
    pub max_streams: usize,
    pub part_size: Option<u64>,
    pub retries: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Part {
    start: u64,
    end: u64,
    /// Bytes from `start` already on disk.
    done: u64,
}

impl Part {
    fn len(&self) -> u64 {
        self.end - self.start
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct PartState {
    size: u64,
    parts: Vec<Part>,
}

impl PartState {
    fn completed(&self) -> u64 {
        self.parts.iter().map(|p| p.done).sum()
    }
}

fn state_path(partial: &Path) -> PathBuf {
    let mut name = partial.as_os_str().to_owned();
    name.push(".json");
    PathBuf::from(name)
}

/// One lock per blob file in this process, so two pulls of one blob share a download: the
/// second waits, then finds the bytes there.
fn blob_lock(path: &Path) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Weak<Mutex<()>>>>> = OnceLock::new();
    let mut locks = LOCKS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    locks.retain(|_, w| w.strong_count() > 0);
    if let Some(lock) = locks.get(path).and_then(Weak::upgrade) {
        return lock;
    }
    let lock = Arc::new(Mutex::new(()));
    locks.insert(path.to_path_buf(), Arc::downgrade(&lock));
    lock
}

/// Waits for `lock`, giving up when the pull is cancelled.
fn lock_or_cancel<'l>(lock: &'l Mutex<()>, cancel: &AtomicBool) -> Result<MutexGuard<'l, ()>, PullError> {
    loop {
        match lock.try_lock() {
            Ok(guard) => return Ok(guard),
            Err(std::sync::TryLockError::Poisoned(e)) => return Ok(e.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => {}
        }
        if cancel.load(Ordering::Relaxed) {
            return Err(PullError::Cancelled);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Ollama's rule: a sixteenth of the blob, within [`MIN_PART`, `MAX_PART`].
fn auto_part_size(size: u64) -> u64 {
    (size / 16).clamp(MIN_PART, MAX_PART)
}

impl Fetcher<'_> {
    /// Makes sure `digest` is fully in its partial file (or already stored), reporting the
    /// bytes on disk as they grow. Does not verify: [`Fetcher::commit`] does.
    pub fn fetch(&self, url: &str, digest: &Digest, size: u64, report: &mut dyn FnMut(u64)) -> Result<(), PullError> {
        let lock = blob_lock(&self.store.partial_path(digest));
        let _guard = lock_or_cancel(&lock, self.cancel)?;
        if self.store.has_blob(digest) {
            report(size);
            return Ok(());
        }
        let partial = self.store.partial_path(digest);
        let mut state = self.resume_or_start(&partial, size)?;
        report(state.completed());
        if state.completed() == size {
            return Ok(());
        }
        let result = self.run_parts(url, &partial, &mut state, report);
        // Whatever happened, keep what arrived for the next pull; the download's own error,
        // if any, is the one to report.
        let saved = self.save_state(&partial, &state);
        result.and(saved)
    }

    /// The saved state if it matches the partial file on disk, or a fresh layout.
    fn resume_or_start(&self, partial: &Path, size: u64) -> Result<PartState, PullError> {
        let saved = fs::read(state_path(partial)).ok().and_then(|b| serde_json::from_slice::<PartState>(&b).ok());
        let on_disk = fs::metadata(partial).map(|m| m.len()).ok();
        if let Some(state) = saved.filter(|s| s.size == size && on_disk == Some(size)) {
            return Ok(state);
        }
        let part = self.part_size.unwrap_or_else(|| auto_part_size(size)).max(1);
        let parts = (0..size.div_ceil(part).max(1))
            .map(|i| Part { start: i * part, end: ((i + 1) * part).min(size), done: 0 })
            .collect();
        let state = PartState { size, parts };
        let file = File::create(partial).map_err(PullError::io(partial))?;
        file.set_len(size).map_err(PullError::io(partial))?;
        self.save_state(partial, &state)?;
        Ok(state)
    }

    fn save_state(&self, partial: &Path, state: &PartState) -> Result<(), PullError> {
        let path = state_path(partial);
        let temp = self.store.temp_path();
        let bytes = serde_json::to_vec(state).expect("part state serialises");
        let result = fs::write(&temp, bytes).and_then(|()| fs::rename(&temp, &path));
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result.map_err(PullError::io(path))
    }

    /// Runs the missing parts on up to `max_streams` threads until all are on disk, one
    /// fails, or the pull is cancelled; `state` records what arrived.
    fn run_parts(
        &self,
        url: &str,
        partial: &Path,
        state: &mut PartState,
        report: &mut dyn FnMut(u64),
    ) -> Result<(), PullError> {
        let missing: VecDeque<usize> =
            (0..state.parts.len()).filter(|&i| state.parts[i].done < state.parts[i].len()).collect();
        let streams = self.max_streams.clamp(1, missing.len().max(1));
        let job = Job {
            url,
            partial,
            http: self.http,
            cancel: self.cancel,
            retries: self.retries,
            parts: state.parts.clone(),
            queue: Mutex::new(missing),
            failed: AtomicBool::new(false),
            whole: AtomicBool::new(false),
        };
        let (tx, rx) = mpsc::channel::<(usize, u64)>();
        let errors: Vec<PullError> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..streams)
                .map(|_| {
                    let tx = tx.clone();
                    let job = &job;
                    s.spawn(move || job.work(&tx))
                })
                .collect();
            drop(tx);
            let mut saved_at = Instant::now();
            loop {
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok((i, done)) => {
                        let part = &mut state.parts[i];
                        part.done = part.done.max(done.min(part.len()));
                        report(state.completed());
                        if saved_at.elapsed() >= SAVE_EVERY {
                            // A failed save here is retried at the end, which reports it.
                            let _ = self.save_state(partial, state);
                            saved_at = Instant::now();
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
            workers.into_iter().filter_map(|w| w.join().expect("download threads do not panic").err()).collect()
        });
        if self.cancel.load(Ordering::Relaxed) {
            return Err(PullError::Cancelled);
        }
        // The first real failure explains the others (which may only be "cancelled").
        if let Some(e) = errors.into_iter().find(|e| !matches!(e, PullError::Cancelled)) {
            return Err(e);
        }
        if state.completed() < state.size {
            return Err(PullError::BadResponse { url: url.into(), reason: "the download ended early".into() });
        }
        Ok(())
    }

    /// Hashes the finished partial file of `digest` against it (unless the blob is stored
    /// already, by a concurrent pull). A mismatch removes the partial file and its state.
    pub fn verify(&self, digest: &Digest) -> Result<(), PullError> {
        let partial = self.store.partial_path(digest);
        let lock = blob_lock(&partial);
        let _guard = lock_or_cancel(&lock, self.cancel)?;
        if self.store.has_blob(digest) {
            return Ok(());
        }
        let result = self.store.verify_download(&partial, digest);
        if matches!(result, Err(crate::LibraryError::DigestMismatch { .. })) {
            let _ = fs::remove_file(state_path(&partial));
        }
        result.map_err(PullError::from)
    }

    /// Moves a verified partial file into place as the blob.
    pub fn install(&self, digest: &Digest) -> Result<(), PullError> {
        let partial = self.store.partial_path(digest);
        let lock = blob_lock(&partial);
        let _guard = lock_or_cancel(&lock, self.cancel)?;
        if self.store.has_blob(digest) {
            return Ok(());
        }
        self.store.install_verified(&partial, digest)?;
        let _ = fs::remove_file(state_path(&partial));
        Ok(())
    }

    /// Drops a download of `digest` this pull will not use (another blob of the model failed
    /// its check): the model is refused as a whole, so none of its parts are kept.
    pub fn discard(&self, digest: &Digest) {
        let partial = self.store.partial_path(digest);
        let lock = blob_lock(&partial);
        let Ok(_guard) = lock_or_cancel(&lock, self.cancel) else { return };
        let _ = fs::remove_file(state_path(&partial));
        let _ = fs::remove_file(&partial);
    }
}

/// The parts of one download, shared by its threads.
struct Job<'a> {
    url: &'a str,
    partial: &'a Path,
    http: &'a Http,
    cancel: &'a AtomicBool,
    retries: u32,
    /// Where each part stood when the download started.
    parts: Vec<Part>,
    queue: Mutex<VecDeque<usize>>,
    /// A part failed: finish the parts under way (their bytes count) but start no more.
    failed: AtomicBool,
    /// The server ignored `Range`: one thread streams the whole blob and the others stop.
    whole: AtomicBool,
}

impl Job<'_> {
    fn stopped(&self) -> bool {
        self.failed.load(Ordering::Relaxed) || self.whole.load(Ordering::Relaxed)
    }

    fn work(&self, tx: &Sender<(usize, u64)>) -> Result<(), PullError> {
        let result = self.work_parts(tx);
        if result.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        result
    }

    fn work_parts(&self, tx: &Sender<(usize, u64)>) -> Result<(), PullError> {
        loop {
            if self.stopped() {
                return Ok(());
            }
            let Some(i) = self.queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front() else { return Ok(()) };
            let mut done = self.parts[i].done;
            let mut attempt = 0;
            loop {
                match self.fetch_part(i, &mut done, tx) {
                    Ok(()) => break,
                    Err(e) if e.is_transient() && attempt < self.retries && !self.cancel.load(Ordering::Relaxed) => {
                        attempt += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }

    fn open(&self, at: u64) -> Result<File, PullError> {
        let mut file = OpenOptions::new().write(true).open(self.partial).map_err(PullError::io(self.partial))?;
        file.seek(SeekFrom::Start(at)).map_err(PullError::io(self.partial))?;
        Ok(file)
    }

    /// Fetches the rest of part `i` from `*done`, advancing `*done` as bytes reach the disk.
    fn fetch_part(&self, i: usize, done: &mut u64, tx: &Sender<(usize, u64)>) -> Result<(), PullError> {
        let part = &self.parts[i];
        let from = part.start + *done;
        let range = format!("bytes={from}-{}", part.end - 1);
        let resp = self.http.get(self.url, &[("Range", &range), ("Accept-Encoding", "identity")])?;
        let mut resp = success(self.url, resp)?;
        if resp.status().as_u16() != 206 {
            // Only one thread takes the whole stream; the rest leave their parts to it.
            if self.whole.compare_exchange(false, true, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
                return self.stream_whole(resp.body_mut().as_reader(), tx);
            }
            return Ok(());
        }
        let content_range = resp.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
        if !content_range.starts_with(&format!("bytes {from}-")) {
            let reason = format!("asked for {range}, got Content-Range '{content_range}'");
            return Err(PullError::BadResponse { url: self.url.into(), reason });
        }
        let mut file = self.open(from)?;
        let mut body = resp.body_mut().as_reader();
        let mut buf = vec![0u8; CHUNK];
        while *done < part.len() {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(PullError::Cancelled);
            }
            if self.whole.load(Ordering::Relaxed) {
                return Ok(());
            }
            let want = buf.len().min((part.len() - *done) as usize);
            let n = body.read(&mut buf[..want]).map_err(|e| PullError::network(self.url, e))?;
            if n == 0 {
                return Err(PullError::network(self.url, "connection closed before the part was complete"));
            }
            file.write_all(&buf[..n]).map_err(PullError::io(self.partial))?;
            *done += n as u64;
            let _ = tx.send((i, *done));
        }
        Ok(())
    }

    /// Writes a body that starts at byte 0 over the whole file, crediting each part as the
    /// stream passes through it.
    fn stream_whole(&self, mut body: impl Read, tx: &Sender<(usize, u64)>) -> Result<(), PullError> {
        let size = self.parts.last().map_or(0, |p| p.end);
        let mut file = self.open(0)?;
        let mut buf = vec![0u8; CHUNK];
        let mut pos = 0u64;
        while pos < size {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(PullError::Cancelled);
            }
            let want = buf.len().min((size - pos) as usize);
            let n = body.read(&mut buf[..want]).map_err(|e| PullError::network(self.url, e))?;
            if n == 0 {
                return Err(PullError::network(self.url, "connection closed before the blob was complete"));
            }
            file.write_all(&buf[..n]).map_err(PullError::io(self.partial))?;
            let chunk_start = pos;
            pos += n as u64;
            for (i, p) in self.parts.iter().enumerate().filter(|(_, p)| p.start < pos && chunk_start < p.end) {
                let _ = tx.send((i, pos.min(p.end) - p.start));
            }
        }
        Ok(())
    }
}
