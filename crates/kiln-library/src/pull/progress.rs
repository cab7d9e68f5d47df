//! Pull progress, as Ollama streams it from `/api/pull`.

use crate::digest::Digest;
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullProgress {
    PullingManifest,
    /// Bytes of one layer (or the config blob) in the library so far.
    Layer {
        digest: Digest,
        total: u64,
        completed: u64,
    },
    VerifyingDigest,
    WritingManifest,
    Success,
}

impl PullProgress {
    /// The `status` line Ollama shows.
    pub fn status(&self) -> String {
        match self {
            PullProgress::PullingManifest => "pulling manifest".into(),
            PullProgress::Layer { digest, .. } => format!("pulling {}", &digest.hex()[..12]),
            PullProgress::VerifyingDigest => "verifying sha256 digest".into(),
            PullProgress::WritingManifest => "writing manifest".into(),
            PullProgress::Success => "success".into(),
        }
    }
}

impl Serialize for PullProgress {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("status", &self.status())?;
        if let PullProgress::Layer { digest, total, completed } = self {
            map.serialize_entry("digest", digest)?;
            map.serialize_entry("total", total)?;
            map.serialize_entry("completed", completed)?;
        }
        map.end()
    }
}

/// Emits a layer's progress often enough to look alive but not once per network read:
/// on each whole percent or after a pause, and always when the layer is complete.
pub(crate) struct Throttle {
    last_at: Option<Instant>,
    last_completed: u64,
}

const QUIET: Duration = Duration::from_millis(200);

impl Throttle {
    pub fn new() -> Throttle {
        Throttle { last_at: None, last_completed: 0 }
    }

    pub fn due(&mut self, total: u64, completed: u64) -> bool {
        let step = (total / 100).max(1);
        let due = match self.last_at {
            None => true,
            Some(_) if completed == total => completed != self.last_completed,
            Some(at) => {
                completed >= self.last_completed + step || (completed > self.last_completed && at.elapsed() >= QUIET)
            }
        };
        if due {
            self.last_at = Some(Instant::now());
            self.last_completed = completed;
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_like_ollama() {
        let d = Digest::of_bytes(b"x");
        let json = |p: &PullProgress| serde_json::to_string(p).unwrap();
        assert_eq!(json(&PullProgress::PullingManifest), r#"{"status":"pulling manifest"}"#);
        assert_eq!(
            json(&PullProgress::Layer { digest: d, total: 9, completed: 4 }),
            format!(r#"{{"status":"pulling {}","digest":"{d}","total":9,"completed":4}}"#, &d.hex()[..12])
        );
        assert_eq!(json(&PullProgress::Success), r#"{"status":"success"}"#);
    }

    #[test]
    fn throttling_keeps_the_first_and_the_final_report() {
        let mut t = Throttle::new();
        assert!(t.due(1000, 0));
        assert!(!t.due(1000, 1));
        assert!(t.due(1000, 20));
        assert!(t.due(1000, 1000));
        assert!(!t.due(1000, 1000));
    }
}
