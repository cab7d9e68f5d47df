//! The input of one forward step: a flat list of tokens from one or more sequences.

use crate::ModelError;

/// One step of work for the model, in the shape the scheduler produces it (vLLM v1 style):
/// tokens of several sequences side by side, each with its position and its sequence's
/// block table into the paged KV cache. One prompt in the CLI and a full server batch take
/// the same path.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub tokens: Vec<u32>,
    /// Position of each token within its sequence.
    pub positions: Vec<u32>,
    /// Index into `block_tables` of each token's sequence.
    pub seq: Vec<usize>,
    /// Per sequence: physical KV block of each logical block.
    pub block_tables: Vec<Vec<u32>>,
    /// Tokens whose logits are wanted, in the order the logits are returned.
    pub logits_for: Vec<usize>,
}

impl Batch {
    /// A batch of one sequence: `tokens` at positions `start..`, logits for the last token.
    pub fn single(tokens: &[u32], start: u32, block_table: Vec<u32>) -> Batch {
        Batch {
            tokens: tokens.to_vec(),
            positions: (start..start + tokens.len() as u32).collect(),
            seq: vec![0; tokens.len()],
            block_tables: vec![block_table],
            logits_for: tokens.len().checked_sub(1).into_iter().collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Checks the batch against the cache geometry and vocabulary, so the forward pass can
    /// index without further checks.
    pub fn validate(&self, block_size: usize, n_blocks: usize, vocab: usize) -> Result<(), ModelError> {
        let n = self.tokens.len();
        if self.positions.len() != n || self.seq.len() != n {
            return Err(ModelError::BadBatch("tokens, positions and seq differ in length".into()));
        }
        for i in 0..n {
            if self.tokens[i] as usize >= vocab {
                return Err(ModelError::BadBatch(format!(
                    "token id {} is outside the vocabulary of {vocab}",
                    self.tokens[i]
                )));
            }
            let table = self.block_tables.get(self.seq[i]).ok_or_else(|| {
                ModelError::BadBatch(format!("token {i} names sequence {} which has no block table", self.seq[i]))
            })?;
            let logical = self.positions[i] as usize / block_size;
            match table.get(logical) {
                Some(&b) if (b as usize) < n_blocks => {}
                Some(&b) => {
                    return Err(ModelError::BadBatch(format!("block {b} is outside the cache of {n_blocks} blocks")))
                }
                None => {
                    return Err(ModelError::BadBatch(format!(
                        "position {} of sequence {} has no KV block (table holds {})",
                        self.positions[i],
                        self.seq[i],
                        table.len()
                    )))
                }
            }
        }
        if let Some(&bad) = self.logits_for.iter().find(|&&i| i >= n) {
            return Err(ModelError::BadBatch(format!("logits requested for token {bad} of {n}")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_validate() {
        let b = Batch::single(&[5, 6, 7], 20, vec![3, 9]);
        assert_eq!(b.positions, vec![20, 21, 22]);
        assert_eq!(b.logits_for, vec![2]);
        assert!(b.validate(16, 10, 100).is_ok());
        // With blocks of 8, position 22 needs logical block 2, which the table lacks.
        let err = b.validate(8, 10, 100).unwrap_err().to_string();
        assert!(err.contains("no KV block"), "{err}");
        assert!(b.validate(16, 5, 100).unwrap_err().to_string().contains("outside the cache"));
        assert!(b.validate(16, 10, 6).unwrap_err().to_string().contains("vocabulary"));
        assert!(Batch::single(&[], 0, vec![]).logits_for.is_empty());
    }
}
