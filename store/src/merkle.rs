//! The Merkle tree over the whole log (RFC 9162 §2.1): one leaf per event in position order.
//! A leaf covers the event's position, stream, version and per-stream chain hash; the chain hash
//! covers every other stored byte, so the tree covers the event as stored, sealed personal data
//! included. Erasure destroys a key, never those bytes, so it changes nothing here.
//!
//! What is kept (ADR 0016): each event's leaf hash beside it, the roots of the complete subtrees
//! at every eighth level (8, 16, 24, …), and the frontier: the roots of the complete subtrees
//! the tree is made of, one per set bit of its size. Appending extends the frontier; any subtree
//! a proof needs is at most 255 hashes away from what is kept.

pub mod heads;
pub mod postgres;
pub mod proofs;
pub mod sqlite;

use sha2::{Digest, Sha256};

use crate::event_store::{Position, RecordedEvent, StoreError, Version};

pub type Hash = [u8; 32];

/// Subtree roots are kept at levels that are multiples of this.
pub const STRIDE: u32 = 8;

/// The bytes a leaf covers: the event's place (position, stream, version) and its chain hash.
pub fn leaf_input(position: Position, stream: &str, version: Version, hash: &Hash) -> Vec<u8> {
    let mut input = Vec::with_capacity(18 + 8 + 8 + 8 + stream.len() + 32);
    input.extend_from_slice(b"tenure-leaf-v1");
    input.extend_from_slice(&position.to_be_bytes());
    input.extend_from_slice(&(stream.len() as u64).to_be_bytes());
    input.extend_from_slice(stream.as_bytes());
    input.extend_from_slice(&version.to_be_bytes());
    input.extend_from_slice(hash);
    input
}

/// RFC 9162 leaf hash: SHA-256(0x00 || input).
pub fn leaf_hash(input: &[u8]) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(input);
    hasher.finalize().into()
}

/// The leaf hash of an event as stored at `position` (which may not be where it is now).
pub fn event_leaf(position: Position, stream: &str, version: Version, hash: &Hash) -> Hash {
    // `leaf_hash(&leaf_input(..))`, fed to the hasher piece by piece: no buffer per event.
    let mut hasher = Sha256::new();
    hasher.update([0x00]);
    hasher.update(b"tenure-leaf-v1");
    hasher.update(position.to_be_bytes());
    hasher.update((stream.len() as u64).to_be_bytes());
    hasher.update(stream.as_bytes());
    hasher.update(version.to_be_bytes());
    hasher.update(hash);
    hasher.finalize().into()
}

pub fn recorded_leaf(event: &RecordedEvent) -> Hash {
    event_leaf(event.position, &event.stream, event.version, &event.hash)
}

/// RFC 9162 interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut hasher = Sha256::new();
    hasher.update([0x01]);
    hasher.update(left);
    hasher.update(right);
    hasher.finalize().into()
}

/// The root of an empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Where the complete subtree at `level` with index `index` is kept: the kept level below it
/// (0: the leaves) and the index range of its hashes there (at most 256 of them).
pub fn kept_span(level: u32, index: u64) -> (u32, u64, u64) {
    let base = level - level % STRIDE;
    let count = 1u64 << (level - base);
    (base, index * count, (index + 1) * count)
}

/// The subtree root over kept hashes `from..to` at level `base`, as `kept_span` named them.
pub fn root_of_kept(mut hashes: Vec<Hash>, base: u32, from: u64, to: u64) -> Result<Hash, StoreError> {
    if hashes.len() as u64 != to - from {
        return Err(StoreError::Corrupt(format!(
            "the kept Merkle tree lacks hashes at level {base} from {from} to {to}: run `tenure audit rebuild-tree`"
        )));
    }
    while hashes.len() > 1 {
        hashes = hashes.chunks_exact(2).map(|pair| node_hash(&pair[0], &pair[1])).collect();
    }
    Ok(hashes[0])
}

/// A kept subtree root: the complete subtree at `level` whose leaves are
/// `index * 2^level .. (index + 1) * 2^level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Node {
    pub level: u32,
    pub index: u64,
    pub hash: Hash,
}

/// The right edge of the tree: enough to append and to compute the root.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// (level, root) of each complete subtree, largest first: one per set bit of `size`.
    roots: Vec<(u32, Hash)>,
}

impl Frontier {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf; the kept subtree roots it completes are passed to `completed`.
    pub fn push(&mut self, leaf: Hash, mut completed: impl FnMut(Node)) {
        let mut level = 0;
        let mut hash = leaf;
        while let Some(&(last_level, last)) = self.roots.last() {
            if last_level != level {
                break;
            }
            self.roots.pop();
            hash = node_hash(&last, &hash);
            level += 1;
            if level % STRIDE == 0 {
                completed(Node { level, index: self.size >> level, hash });
            }
        }
        self.roots.push((level, hash));
        self.size += 1;
    }

    /// The tree head hash (RFC 9162 MTH) of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut roots = self.roots.iter().rev();
        let Some(&(_, mut acc)) = roots.next() else { return empty_root() };
        for (_, left) in roots {
            acc = node_hash(left, &acc);
        }
        acc
    }

    /// The frontier of the first `size` leaves, from kept hashes: `kept(level, from, to)` gives
    /// the kept hashes with index `from..to` at a kept level (0: the leaves), fewer when some
    /// are missing.
    pub fn from_kept(
        size: u64,
        mut kept: impl FnMut(u32, u64, u64) -> Result<Vec<Hash>, StoreError>,
    ) -> Result<Frontier, StoreError> {
        let mut roots = Vec::new();
        let mut start = 0;
        for level in (0..64).rev().filter(|bit| size >> bit & 1 == 1) {
            let (base, from, to) = kept_span(level, start >> level);
            let hash = root_of_kept(kept(base, from, to)?, base, from, to)?;
            roots.push((level, hash));
            start += 1u64 << level;
        }
        Ok(Frontier { size, roots })
    }

    /// `size` (8 bytes, big-endian), then each root (level byte, 32 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.roots.len() * 33);
        out.extend_from_slice(&self.size.to_be_bytes());
        for (level, hash) in &self.roots {
            out.push(*level as u8);
            out.extend_from_slice(hash);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Frontier, StoreError> {
        let corrupt = || StoreError::Corrupt("the Merkle tree's frontier is malformed".into());
        let (size, rest) = bytes.split_first_chunk::<8>().ok_or_else(corrupt)?;
        let size = u64::from_be_bytes(*size);
        if rest.len() % 33 != 0 {
            return Err(corrupt());
        }
        let roots: Vec<(u32, Hash)> = rest
            .chunks_exact(33)
            .map(|chunk| (u32::from(chunk[0]), chunk[1..].try_into().expect("33-byte chunk")))
            .collect();
        // One root per set bit of the size, largest first: anything else cannot be extended.
        let levels: Vec<u32> = (0..64).rev().filter(|bit| size >> bit & 1 == 1).collect();
        if roots.iter().map(|(level, _)| *level).ne(levels) {
            return Err(corrupt());
        }
        Ok(Frontier { size, roots })
    }
}

/// The tree as one write transaction extends it: the frontier, and the kept roots completed since
/// the transaction began, to be stored with the events.
#[derive(Debug, Clone)]
pub struct TreeWriter {
    pub frontier: Frontier,
    pub completed: Vec<Node>,
}

impl TreeWriter {
    pub fn new(frontier: Frontier) -> TreeWriter {
        TreeWriter { frontier, completed: Vec::new() }
    }

    /// The position of the next event.
    pub fn next_position(&self) -> Position {
        self.frontier.size() + 1
    }

    /// Adds the event about to be stored at `next_position`; returns its leaf.
    pub fn push(&mut self, stream: &str, version: Version, hash: &Hash) -> Hash {
        let leaf = event_leaf(self.next_position(), stream, version, hash);
        let completed = &mut self.completed;
        self.frontier.push(leaf, |node| completed.push(node));
        leaf
    }
}

/// The tree covers positions the log no longer holds.
pub fn removed(tree_size: u64, head: Position) -> StoreError {
    StoreError::Corrupt(format!(
        "the Merkle tree covers {tree_size} events but the log ends at position {head}: events were removed; \
         nothing is appended until `tenure audit verify-store` has been run and the store restored"
    ))
}

/// The log has a hole at `position`.
pub fn missing(position: Position) -> StoreError {
    StoreError::Corrupt(format!("position {position} is missing from the log: run `tenure audit verify-store`"))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn hex32(text: &str) -> Hash {
        hex::decode(text).unwrap().try_into().unwrap()
    }

    /// The leaves of the RFC 6962 / Certificate Transparency test data.
    pub(crate) fn rfc_leaves() -> Vec<Vec<u8>> {
        ["", "00", "10", "2021", "3031", "40414243", "5051525354555657", "606162636465666768696a6b6c6d6e6f"]
            .iter()
            .map(|h| hex::decode(h).unwrap())
            .collect()
    }

    #[test]
    fn an_event_leaf_is_the_leaf_hash_of_its_input() {
        for (position, stream, version) in [(1, "account-a", 1), (984_456, "", 7), (u64::MAX, "username-\u{e9}", 0)] {
            let hash = [position as u8; 32];
            assert_eq!(
                event_leaf(position, stream, version, &hash),
                leaf_hash(&leaf_input(position, stream, version, &hash))
            );
        }
    }

    #[test]
    fn roots_match_the_rfc_test_vectors() {
        let roots = [
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let mut frontier = Frontier::default();
        assert_eq!(frontier.root(), hex32(roots[0]));
        for (leaf, expected) in rfc_leaves().iter().zip(&roots[1..]) {
            frontier.push(leaf_hash(leaf), |_| {});
            assert_eq!(frontier.root(), hex32(expected), "size {}", frontier.size());
            assert_eq!(Frontier::decode(&frontier.encode()).unwrap(), frontier);
        }
    }

    #[test]
    fn kept_subtrees_are_announced_when_complete() {
        let mut frontier = Frontier::default();
        let mut kept = Vec::new();
        for i in 0..(1u64 << 16) + 300 {
            frontier.push(leaf_hash(&i.to_be_bytes()), |node| kept.push((node.level, node.index)));
        }
        let level8: Vec<_> = kept.iter().filter(|(l, _)| *l == 8).map(|(_, i)| *i).collect();
        assert_eq!(level8, (0..257).collect::<Vec<_>>());
        assert_eq!(kept.iter().filter(|(l, _)| *l == 16).count(), 1);
    }

    #[test]
    fn a_frontier_is_rebuilt_from_the_kept_hashes() {
        let mut frontier = Frontier::default();
        let mut leaves = Vec::new();
        let mut kept = std::collections::HashMap::new();
        for i in 0..70_000u64 {
            let leaf = leaf_hash(&i.to_be_bytes());
            leaves.push(leaf);
            frontier.push(leaf, |node| {
                kept.insert((node.level, node.index), node.hash);
            });
            if [1, 255, 256, 257, 65_535, 65_536, 69_999].contains(&i) {
                let rebuilt = Frontier::from_kept(frontier.size(), |level, from, to| {
                    Ok(match level {
                        0 => leaves[from as usize..(to as usize).min(leaves.len())].to_vec(),
                        _ => (from..to).map_while(|i| kept.get(&(level, i)).copied()).collect(),
                    })
                })
                .unwrap();
                assert_eq!(rebuilt, frontier, "size {}", frontier.size());
            }
        }
        assert!(Frontier::from_kept(70_000, |_, _, _| Ok(vec![])).is_err());
    }

    #[test]
    fn a_malformed_frontier_is_refused() {
        let mut frontier = Frontier::default();
        for i in 0..5u8 {
            frontier.push(leaf_hash(&[i]), |_| {});
        }
        let bytes = frontier.encode();
        assert!(Frontier::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut wrong_size = bytes.clone();
        wrong_size[7] = 6;
        assert!(Frontier::decode(&wrong_size).is_err());
    }
}
