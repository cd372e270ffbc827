//! The Merkle tree of RFC 6962 / RFC 9162 (§2.1) over SHA-256, in one place for everything
//! that hashes or checks a transparency log: Sigstore's Rekor inclusion proofs (verified on
//! devices, hence `no_std`) and Edgeward's own audit log (built and proved by the server,
//! verified by the CLI).
//!
//! Besides hashing and verifying, it builds trees and proofs two ways: from a slice of leaf
//! hashes, and from stored perfect subtrees ([`NodeId`]) — what a log kept in a database
//! has, so a proof reads O(log n) stored nodes instead of every leaf. [`Frontier`] is the
//! compact form of a growing tree (one hash per set bit of its size): what an appender
//! needs to add a leaf, and what a verifier streaming the leaves keeps.

use alloc::{format, vec::Vec};

use sha2::Digest;

use crate::{Error, Sha256Digest};

/// A node hash (SHA-256).
pub type Hash = Sha256Digest;

/// Hash of a leaf: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Hash {
    let mut h = sha2::Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// Hash of an inner node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = sha2::Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The head of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    sha2::Sha256::digest([]).into()
}

/// A perfect subtree: the `2^level` leaves from `index << level`. Its hash never changes once
/// the log holds all its leaves, so a log can store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId {
    /// Height above the leaves (0 for a leaf).
    pub level: u32,
    /// Position among the subtrees of that height, from the left.
    pub index: u64,
}

/// The hash of leaves `start..end`, split as RFC 9162 splits them; perfect aligned ranges
/// come from `node`. Every range this meets from `0..n` is aligned, so `node` is only asked
/// for subtrees a log of `n` leaves has complete.
fn subtree(start: u64, end: u64, node: &mut dyn FnMut(NodeId) -> Hash) -> Hash {
    let n = end - start;
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return node(NodeId {
            level,
            index: start >> level,
        });
    }
    let k = split(n);
    let left = subtree(start, start + k, node);
    let right = subtree(start + k, end, node);
    node_hash(&left, &right)
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: u64) -> u64 {
    1 << (u64::BITS - 1 - (n - 1).leading_zeros())
}

/// The head of the tree of `size` leaves, from its stored perfect subtrees.
pub fn root_from(size: u64, node: &mut dyn FnMut(NodeId) -> Hash) -> Hash {
    if size == 0 {
        return empty_root();
    }
    subtree(0, size, node)
}

/// The audit path of leaf `index` in the tree of `size` leaves (RFC 9162 §2.1.3.1), from
/// stored perfect subtrees; `None` if the index is out of range.
pub fn inclusion_proof_from(
    index: u64,
    size: u64,
    node: &mut dyn FnMut(NodeId) -> Hash,
) -> Option<Vec<Hash>> {
    if index >= size {
        return None;
    }
    let (mut start, mut end) = (0, size);
    // Collected from the top down; the path runs from the leaf up.
    let mut rev = Vec::new();
    while end - start > 1 {
        let k = split(end - start);
        if index < start + k {
            rev.push(subtree(start + k, end, node));
            end = start + k;
        } else {
            rev.push(subtree(start, start + k, node));
            start += k;
        }
    }
    Some(rev.into_iter().rev().collect())
}

/// The consistency proof between the trees of `old_size` and `size` leaves (RFC 9162
/// §2.1.4.1), from stored perfect subtrees; `None` unless 0 < old_size <= size.
pub fn consistency_proof_from(
    old_size: u64,
    size: u64,
    node: &mut dyn FnMut(NodeId) -> Hash,
) -> Option<Vec<Hash>> {
    if old_size == 0 || old_size > size {
        return None;
    }
    // Collected from the top down, as in `inclusion_proof_from`.
    let mut rev = Vec::new();
    let (mut start, mut end, mut m, mut complete) = (0, size, old_size, true);
    loop {
        let n = end - start;
        if m == n {
            if !complete {
                rev.push(subtree(start, end, node));
            }
            break;
        }
        let k = split(n);
        if m <= k {
            rev.push(subtree(start + k, end, node));
            end = start + k;
        } else {
            rev.push(subtree(start, start + k, node));
            start += k;
            m -= k;
            complete = false;
        }
    }
    Some(rev.into_iter().rev().collect())
}

/// The stored subtrees a proof or root computed by one of the `*_from` functions reads, so
/// a log can fetch them all in one query before computing: runs `compute` with a node
/// source that records what is asked.
pub fn nodes_needed(compute: impl FnOnce(&mut dyn FnMut(NodeId) -> Hash)) -> Vec<NodeId> {
    let mut asked = Vec::new();
    compute(&mut |id| {
        asked.push(id);
        [0; 32]
    });
    asked.sort_unstable();
    asked.dedup();
    asked
}

/// The perfect subtree `id` of `leaves` (which must hold it).
fn slice_node(leaves: &[Hash], id: NodeId) -> Hash {
    let (start, len) = ((id.index << id.level) as usize, 1usize << id.level);
    let mut f = Frontier::new();
    for leaf in &leaves[start..start + len] {
        f.push(*leaf);
    }
    f.root()
}

/// The tree head of the given leaf hashes (the hash of the empty string for none).
pub fn root(leaves: &[Hash]) -> Hash {
    let mut f = Frontier::new();
    for leaf in leaves {
        f.push(*leaf);
    }
    f.root()
}

/// The audit path of leaf `index` in the tree of `leaves`, or `None` if it is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    inclusion_proof_from(index as u64, leaves.len() as u64, &mut |id| {
        slice_node(leaves, id)
    })
}

/// The consistency proof between the tree of the first `old_size` leaves and the tree of all
/// `leaves`, or `None` unless 0 < old_size <= leaves.len().
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    consistency_proof_from(old_size as u64, leaves.len() as u64, &mut |id| {
        slice_node(leaves, id)
    })
}

/// The root a proof leads to from leaf `index` of a tree of `size` leaves (RFC 9162
/// §2.1.3.2). The proof must have exactly the length the tree's shape calls for.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Hash,
    proof: &[Hash],
) -> Result<Hash, Error> {
    if index >= size {
        return Err(Error::malformed(
            "inclusion proof",
            format!("leaf index {index} is not inside a tree of {size} leaves"),
        ));
    }
    // The path splits into `inner` levels where the leaf's and the last leaf's paths differ,
    // then `border` levels along the tree's right border.
    let inner = (u64::BITS - (index ^ (size - 1)).leading_zeros()) as usize;
    // `inner` is 64 when the index and the last leaf differ in the top bit: nothing is left
    // of the index above it, and a plain `>>` by 64 would overflow.
    let border = index.checked_shr(inner as u32).unwrap_or(0).count_ones() as usize;
    if proof.len() != inner + border {
        return Err(Error::malformed(
            "inclusion proof",
            format!(
                "{} hashes, a tree of {size} leaves needs {} for leaf {index}",
                proof.len(),
                inner + border
            ),
        ));
    }
    let mut hash = *leaf;
    for (level, sibling) in proof[..inner].iter().enumerate() {
        hash = if (index >> level) & 1 == 0 {
            node_hash(&hash, sibling)
        } else {
            node_hash(sibling, &hash)
        };
    }
    for sibling in &proof[inner..] {
        hash = node_hash(sibling, &hash);
    }
    Ok(hash)
}

/// Verifies that `leaf` is at `index` in the tree of `size` leaves with head `root`.
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    root_from_inclusion_proof(index, size, leaf, proof).is_ok_and(|r| r == *root)
}

/// Verifies that the tree of `new_size` leaves with head `new_root` extends the tree of
/// `old_size` leaves with head `old_root` (RFC 9162 §2.1.4.2).
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    proof: &[Hash],
    old_root: &Hash,
    new_root: &Hash,
) -> bool {
    if old_size == 0 || old_size > new_size {
        return false;
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut nodes: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        nodes.push(*old_root);
    }
    nodes.extend_from_slice(proof);
    let Some((first, rest)) = nodes.split_first() else {
        return false;
    };
    let (mut fnode, mut snode) = (old_size - 1, new_size - 1);
    while fnode & 1 == 1 {
        fnode >>= 1;
        snode >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if snode == 0 {
            return false;
        }
        if fnode & 1 == 1 || fnode == snode {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if fnode & 1 == 0 {
                while fnode & 1 == 0 && fnode != 0 {
                    fnode >>= 1;
                    snode >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fnode >>= 1;
        snode >>= 1;
    }
    snode == 0 && fr == *old_root && sr == *new_root
}

/// A growing tree in compact form: its size and the heads of its perfect subtrees from the
/// left (one per set bit of the size, largest first). Appending a leaf completes the leaf's
/// node and every parent it closes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    peaks: Vec<Hash>,
}

impl Frontier {
    /// The empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The perfect subtrees whose heads make up the frontier of a tree of `size` leaves,
    /// largest (leftmost) first.
    pub fn peak_ids(size: u64) -> Vec<NodeId> {
        (0..u64::BITS)
            .rev()
            .filter(|level| size >> level & 1 == 1)
            .map(|level| NodeId {
                level,
                index: (size >> level) - 1,
            })
            .collect()
    }

    /// The tree of `size` leaves whose peaks (as [`Frontier::peak_ids`] lists them) are
    /// `peaks`; `None` if there are not one per set bit of `size`.
    pub fn from_peaks(size: u64, peaks: Vec<Hash>) -> Option<Self> {
        (peaks.len() == size.count_ones() as usize).then_some(Frontier { size, peaks })
    }

    /// Leaves in the tree.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash; returns the perfect subtrees it completed (the leaf first, then
    /// each parent it closed).
    pub fn push(&mut self, leaf: Hash) -> Vec<(NodeId, Hash)> {
        let mut done = alloc::vec![(
            NodeId {
                level: 0,
                index: self.size
            },
            leaf
        )];
        let (mut hash, mut index, mut level) = (leaf, self.size, 0);
        while index & 1 == 1 {
            let Some(left) = self.peaks.pop() else { break };
            hash = node_hash(&left, &hash);
            index >>= 1;
            level += 1;
            done.push((NodeId { level, index }, hash));
        }
        self.peaks.push(hash);
        self.size += 1;
        done
    }

    /// The tree head.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return empty_root();
        };
        peaks.fold(*last, |acc, left| node_hash(left, &acc))
    }
}

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    /// The root of leaves[..], computed directly from RFC 9162's definition.
    fn mth(leaves: &[Hash]) -> Hash {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = leaves.len().next_power_of_two() / 2;
        node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    /// The audit path from RFC 9162's definition.
    fn path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        if leaves.len() == 1 {
            return Vec::new();
        }
        let k = leaves.len().next_power_of_two() / 2;
        if m < k {
            let mut p = path(m, &leaves[..k]);
            p.push(mth(&leaves[k..]));
            p
        } else {
            let mut p = path(m - k, &leaves[k..]);
            p.push(mth(&leaves[..k]));
            p
        }
    }

    #[test]
    fn every_leaf_of_every_small_tree_proves_into_the_root() {
        for size in 1..=20usize {
            let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&[i as u8; 3])).collect();
            let root = mth(&leaves);
            assert_eq!(super::root(&leaves), root);
            for m in 0..size {
                let p = path(m, &leaves);
                assert_eq!(inclusion_proof(&leaves, m), Some(p.clone()));
                let got = root_from_inclusion_proof(m as u64, size as u64, &leaves[m], &p);
                assert_eq!(got, Ok(root), "size {size} leaf {m}");
                // Any other leaf, or a flipped proof hash, leads elsewhere.
                let other = leaf_hash(b"other");
                assert_ne!(
                    root_from_inclusion_proof(m as u64, size as u64, &other, &p),
                    Ok(root)
                );
                if let Some(first) = p.first() {
                    let mut bad = p.clone();
                    bad[0] = node_hash(first, first);
                    assert_ne!(
                        root_from_inclusion_proof(m as u64, size as u64, &leaves[m], &bad),
                        Ok(root)
                    );
                }
            }
        }
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let leaf = leaf_hash(b"x");
        assert!(root_from_inclusion_proof(5, 5, &leaf, &[]).is_err());
        assert!(root_from_inclusion_proof(0, 4, &leaf, &[leaf]).is_err());
        assert!(root_from_inclusion_proof(0, u64::MAX, &leaf, &[leaf; 3]).is_err());
    }

    #[test]
    fn stored_nodes_give_the_same_roots_and_proofs_as_the_leaves() {
        let leaves: Vec<Hash> = (0..45u8).map(|i| leaf_hash(&[i])).collect();
        let mut stored = alloc::collections::BTreeMap::new();
        let mut f = Frontier::new();
        for (size, leaf) in leaves.iter().enumerate() {
            let peaks: Vec<Hash> = Frontier::peak_ids(size as u64)
                .iter()
                .map(|id| stored[id])
                .collect();
            assert_eq!(Frontier::from_peaks(size as u64, peaks).as_ref(), Some(&f));
            stored.extend(f.push(*leaf));
            let n = size as u64 + 1;
            let mut node = |id: NodeId| stored[&id];
            assert_eq!(root_from(n, &mut node), mth(&leaves[..=size]));
            assert_eq!(f.root(), mth(&leaves[..=size]));
            for i in 0..n {
                assert_eq!(
                    inclusion_proof_from(i, n, &mut node),
                    Some(path(i as usize, &leaves[..=size]))
                );
            }
            for old in 1..=n {
                let p = consistency_proof_from(old, n, &mut node).expect("proof");
                assert!(verify_consistency(
                    old,
                    n,
                    &p,
                    &mth(&leaves[..old as usize]),
                    &f.root()
                ));
            }
        }
        let asked = nodes_needed(|node| {
            inclusion_proof_from(3, 45, node);
        });
        assert!(asked.len() <= 2 * 6, "{asked:?}");
    }
}
