//! Several answers to one request (OpenAI's `n`). Each choice is its own request to the model
//! thread with its own random stream; the first one the thread queues is the parent, and the others
//! start from its computed prompt (the scheduler's forks) instead of computing it again.

use crate::error::ApiError;
use crate::options::RequestOptions;
use std::sync::{Arc, OnceLock};

/// Most choices per request: each takes a sequence slot and its own KV blocks as it answers.
pub const MAX_CHOICES: u32 = 16;

/// The requests answering one prompt together; holds the parent's id once it is queued.
#[derive(Debug, Clone, Default)]
pub struct Siblings(Arc<OnceLock<u64>>);

impl Siblings {
    pub fn parent(&self) -> Option<u64> {
        self.0.get().copied()
    }

    /// Records request `id` as the parent unless one was queued already.
    pub fn set_parent(&self, id: u64) {
        let _ = self.0.set(id);
    }
}

/// The number of choices a request asks for, checked.
pub fn count(n: Option<u32>) -> Result<usize, ApiError> {
    match n.unwrap_or(1) {
        n @ 1..=MAX_CHOICES => Ok(n as usize),
        n => Err(ApiError::bad_request(format!("invalid n = {n}: expected a number from 1 to {MAX_CHOICES}"))),
    }
}

/// One request's options for each of `n` choices. With a seed, choice `i` samples with
/// seed + i, so that a seeded request is reproducible and its choices still differ; without
/// one, each choice seeds from the clock.
pub fn split(options: RequestOptions, n: usize) -> Vec<RequestOptions> {
    if n == 1 {
        return vec![options];
    }
    let siblings = Siblings::default();
    (0..n as u64)
        .map(|i| {
            let mut o = options.clone();
            o.generate.sampling.seed = o.generate.sampling.seed.map(|s| s.wrapping_add(i));
            o.siblings = Some(siblings.clone());
            o
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_engine::GenerateOptions;

    #[test]
    fn counts_are_checked() {
        assert_eq!(count(None).unwrap(), 1);
        assert_eq!(count(Some(16)).unwrap(), 16);
        assert_eq!(count(Some(0)).unwrap_err().status, 400);
        assert_eq!(count(Some(17)).unwrap_err().status, 400);
    }

    #[test]
    fn choices_get_their_own_seeds_and_share_one_parent() {
        let mut base = RequestOptions { generate: GenerateOptions::default(), num_ctx: 8, siblings: None };
        assert!(split(base.clone(), 1)[0].siblings.is_none());
        base.generate.sampling.seed = Some(u64::MAX);
        let choices = split(base.clone(), 3);
        let seeds: Vec<_> = choices.iter().map(|o| o.generate.sampling.seed).collect();
        assert_eq!(seeds, [Some(u64::MAX), Some(0), Some(1)]);
        let siblings: Vec<&Siblings> = choices.iter().map(|o| o.siblings.as_ref().unwrap()).collect();
        siblings[2].set_parent(7);
        siblings[0].set_parent(9);
        assert_eq!(siblings.iter().map(|s| s.parent()).collect::<Vec<_>>(), [Some(7); 3]);
        base.generate.sampling.seed = None;
        assert!(split(base, 2).iter().all(|o| o.generate.sampling.seed.is_none()));
    }
}
