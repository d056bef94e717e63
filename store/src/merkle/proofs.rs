//! Inclusion and consistency proofs (RFC 9162 §2.1.3, §2.1.4) built from what the store keeps.
//! Which nodes a proof holds, and how a proof is checked, is `ct-merkle`'s work; this module only
//! finds each node's hash: a kept subtree root, or one computed from at most 255 kept hashes.

use std::future::Future;

use ct_merkle::{ConsistencyProof, InclusionProof, RootHash};
use sha2::Sha256;

use super::{Hash, kept_span, node_hash, root_of_kept};
use crate::event_store::StoreError;

/// Reads the kept parts of the tree.
pub trait TreeSource: Sync {
    /// The leaf hashes of leaves `from..to` (0-based: the event at position p is leaf p - 1).
    fn leaves(&self, from: u64, to: u64) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send;
    /// The kept roots at `level` (a multiple of `STRIDE`, at least `STRIDE`) with index `from..to`.
    fn nodes(&self, level: u32, from: u64, to: u64) -> impl Future<Output = Result<Vec<Hash>, StoreError>> + Send;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("the tree has {size} leaves: no proof for {what}")]
    OutOfRange { size: u64, what: String },
    #[error("the proof does not verify: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hash of the complete subtree at `level` with index `index`.
async fn subtree(source: &impl TreeSource, level: u32, index: u64) -> Result<Hash, StoreError> {
    let (base, from, to) = kept_span(level, index);
    let hashes = if base == 0 { source.leaves(from, to).await? } else { source.nodes(base, from, to).await? };
    root_of_kept(hashes, base, from, to)
}

/// MTH of leaves `start..end`, where `start` is a multiple of the largest power of two below
/// `end - start` (true of every node a proof names).
async fn range(source: &impl TreeSource, start: u64, end: u64) -> Result<Hash, StoreError> {
    // The range splits into complete subtrees, largest first: one per set bit of its length.
    let mut parts = Vec::new();
    let mut at = start;
    for level in (0..64).rev() {
        if (end - start) >> level & 1 == 1 {
            parts.push(subtree(source, level, at >> level).await?);
            at += 1 << level;
        }
    }
    let mut parts = parts.into_iter().rev();
    let mut acc = parts.next().ok_or_else(|| StoreError::Backend("an empty Merkle range".into()))?;
    for left in parts {
        acc = node_hash(&left, &acc);
    }
    Ok(acc)
}

/// The leaves under ct-merkle's node `index` (its in-order numbering) in a tree of `size` leaves.
fn node_range(index: u64, size: u64) -> (u64, u64) {
    let level = index.trailing_ones();
    let start = (index >> (level + 1)) << level;
    (start, (start + (1 << level)).min(size))
}

async fn hashes_of(source: &impl TreeSource, indices: Vec<u64>, size: u64) -> Result<Vec<Hash>, StoreError> {
    let mut out = Vec::with_capacity(indices.len());
    for index in indices {
        let (start, end) = node_range(index, size);
        out.push(range(source, start, end).await?);
    }
    Ok(out)
}

/// The root of the first `size` leaves.
pub async fn root_at(source: &impl TreeSource, size: u64) -> Result<Hash, StoreError> {
    if size == 0 {
        return Ok(super::empty_root());
    }
    range(source, 0, size).await
}

/// The audit path of leaf `index` in the tree of the first `size` leaves.
pub async fn inclusion(source: &impl TreeSource, index: u64, size: u64) -> Result<Vec<Hash>, ProofError> {
    if index >= size {
        return Err(ProofError::OutOfRange { size, what: format!("leaf {index}") });
    }
    Ok(hashes_of(source, ct_merkle::indices_for_inclusion_proof(size, index), size).await?)
}

/// The proof that the tree of `first` leaves is a prefix of the tree of `second`.
pub async fn consistency(source: &impl TreeSource, first: u64, second: u64) -> Result<Vec<Hash>, ProofError> {
    if first == 0 || first > second {
        return Err(ProofError::OutOfRange { size: second, what: format!("a consistency proof from size {first}") });
    }
    Ok(hashes_of(source, ct_merkle::indices_for_consistency_proof(first, second - first), second).await?)
}

fn concat(path: &[Hash]) -> Vec<u8> {
    path.iter().flatten().copied().collect()
}

/// Checks that the leaf with `leaf_input` is leaf `index` of the tree of `size` leaves whose
/// root is `root`.
pub fn verify_inclusion(
    leaf_input: &[u8],
    index: u64,
    size: u64,
    root: &Hash,
    path: &[Hash],
) -> Result<(), ProofError> {
    let proof =
        InclusionProof::<Sha256>::try_from_bytes(concat(path)).map_err(|e| ProofError::Invalid(format!("{e:?}")))?;
    RootHash::<Sha256>::new((*root).into(), size)
        .verify_inclusion(&leaf_input, index, &proof)
        .map_err(|e| ProofError::Invalid(format!("inclusion of leaf {index} in the tree of {size}: {e:?}")))
}

/// Checks that the tree of `first` leaves with root `first_root` is a prefix of the tree of
/// `second` leaves with root `second_root`.
pub fn verify_consistency(
    (first, first_root): (u64, &Hash),
    (second, second_root): (u64, &Hash),
    path: &[Hash],
) -> Result<(), ProofError> {
    let proof =
        ConsistencyProof::<Sha256>::try_from_bytes(concat(path)).map_err(|e| ProofError::Invalid(format!("{e:?}")))?;
    RootHash::<Sha256>::new((*second_root).into(), second)
        .verify_consistency(&RootHash::new((*first_root).into(), first), &proof)
        .map_err(|e| {
            ProofError::Invalid(format!("consistency of the tree of {first} with the tree of {second}: {e:?}"))
        })
}

#[cfg(test)]
mod tests {
    use super::super::{Frontier, Node, leaf_hash};
    use super::*;
    use proptest::prelude::*;

    /// A tree kept in memory the way the store keeps it: leaves and the roots at kept levels.
    #[derive(Default)]
    struct Kept {
        frontier: Frontier,
        leaves: Vec<Hash>,
        nodes: std::collections::HashMap<(u32, u64), Hash>,
    }

    impl Kept {
        fn of(inputs: &[Vec<u8>]) -> Kept {
            let mut kept = Kept::default();
            for input in inputs {
                kept.push(leaf_hash(input));
            }
            kept
        }

        fn push(&mut self, leaf: Hash) {
            let nodes = &mut self.nodes;
            self.frontier.push(leaf, |Node { level, index, hash }| {
                nodes.insert((level, index), hash);
            });
            self.leaves.push(leaf);
        }
    }

    impl TreeSource for Kept {
        async fn leaves(&self, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
            Ok(self.leaves[from as usize..(to as usize).min(self.leaves.len())].to_vec())
        }

        async fn nodes(&self, level: u32, from: u64, to: u64) -> Result<Vec<Hash>, StoreError> {
            Ok((from..to).map_while(|i| self.nodes.get(&(level, i)).copied()).collect())
        }
    }

    fn block_on<T>(future: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(future)
    }

    fn hexes(list: &[&str]) -> Vec<Hash> {
        list.iter().map(|h| super::super::tests::hex32(h)).collect()
    }

    /// RFC 6962 test vectors, as the Certificate Transparency and transparency-dev/merkle
    /// suites carry them.
    #[test]
    fn inclusion_proofs_match_the_rfc_test_vectors() {
        let inputs = super::super::tests::rfc_leaves();
        let kept = Kept::of(&inputs);
        let cases: [(u64, u64, Vec<Hash>); 4] = [
            (
                0,
                8,
                hexes(&[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]),
            ),
            (
                5,
                8,
                hexes(&[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
            (2, 3, hexes(&["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"])),
            (
                1,
                5,
                hexes(&[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]),
            ),
        ];
        for (index, size, expected) in cases {
            let path = block_on(inclusion(&kept, index, size)).unwrap();
            assert_eq!(path, expected, "leaf {index} of {size}");
            let root = block_on(root_at(&kept, size)).unwrap();
            verify_inclusion(&inputs[index as usize], index, size, &root, &path).unwrap();
            assert!(verify_inclusion(&inputs[(index as usize + 1) % 8], index, size, &root, &path).is_err());
        }
    }

    #[test]
    fn consistency_proofs_match_the_rfc_test_vectors() {
        let kept = Kept::of(&super::super::tests::rfc_leaves());
        let cases: [(u64, u64, Vec<Hash>); 4] = [
            (1, 1, vec![]),
            (
                1,
                8,
                hexes(&[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ]),
            ),
            (
                6,
                8,
                hexes(&[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ]),
            ),
            (
                2,
                5,
                hexes(&[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ]),
            ),
        ];
        for (first, second, expected) in cases {
            let path = block_on(consistency(&kept, first, second)).unwrap();
            assert_eq!(path, expected, "{first} to {second}");
            let (a, b) = (block_on(root_at(&kept, first)).unwrap(), block_on(root_at(&kept, second)).unwrap());
            verify_consistency((first, &a), (second, &b), &path).unwrap();
            if first != second {
                assert!(verify_consistency((first, &b), (second, &b), &path).is_err());
            }
        }
    }

    #[test]
    fn every_leaf_and_every_earlier_head_of_small_logs_verify() {
        let inputs: Vec<Vec<u8>> = (0..600u64).map(|i| i.to_be_bytes().to_vec()).collect();
        let kept = Kept::of(&inputs);
        for size in (1..=64).chain([255, 256, 257, 600]) {
            let root = block_on(root_at(&kept, size)).unwrap();
            for index in 0..size {
                let path = block_on(inclusion(&kept, index, size)).unwrap();
                verify_inclusion(&inputs[index as usize], index, size, &root, &path).unwrap();
            }
            for first in 1..=size.min(64) {
                let first_root = block_on(root_at(&kept, first)).unwrap();
                let path = block_on(consistency(&kept, first, size)).unwrap();
                verify_consistency((first, &first_root), (size, &root), &path).unwrap();
            }
        }
        assert!(matches!(block_on(inclusion(&kept, 600, 600)), Err(ProofError::OutOfRange { .. })));
        assert!(matches!(block_on(consistency(&kept, 0, 600)), Err(ProofError::OutOfRange { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Any two heads of a growing log are consistent, and every leaf's proof verifies, also
        /// across the kept levels (sizes past 2^8 and 2^16 use kept roots).
        #[test]
        fn every_proof_of_a_growing_log_verifies(size in 1u64..70_000, picks in proptest::collection::vec(any::<u64>(), 6)) {
            let inputs: Vec<Vec<u8>> = (0..size).map(|i| i.to_be_bytes().to_vec()).collect();
            let kept = Kept::of(&inputs);
            let root = block_on(root_at(&kept, size)).unwrap();
            prop_assert_eq!(root, kept.frontier.root());
            for pick in picks {
                let index = pick % size;
                let path = block_on(inclusion(&kept, index, size)).unwrap();
                prop_assert!(verify_inclusion(&inputs[index as usize], index, size, &root, &path).is_ok());
                let first = 1 + pick % size;
                let first_root = block_on(root_at(&kept, first)).unwrap();
                let path = block_on(consistency(&kept, first, size)).unwrap();
                prop_assert!(verify_consistency((first, &first_root), (size, &root), &path).is_ok());
                let mut frontier = Frontier::default();
                for input in &inputs[..first as usize] {
                    frontier.push(leaf_hash(input), |_| {});
                }
                prop_assert_eq!(frontier.root(), first_root);
            }
        }
    }
}
