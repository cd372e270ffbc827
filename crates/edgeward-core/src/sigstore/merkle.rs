//! RFC 6962 / RFC 9162 Merkle-tree inclusion proofs, the way transparency logs prove that an
//! entry is in the tree whose root a checkpoint signs. Only hashing (SHA-256 from `sha2`);
//! the algorithm is RFC 9162 §2.1.3.2.

use alloc::format;

use sha2::Digest;

use crate::{Error, Sha256Digest};

/// The leaf hash of an entry: SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &[u8]) -> Sha256Digest {
    let mut h = sha2::Sha256::new();
    h.update([0u8]);
    h.update(entry);
    h.finalize().into()
}

/// The hash of an inner node: SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: &Sha256Digest, right: &Sha256Digest) -> Sha256Digest {
    let mut h = sha2::Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root a proof leads to from leaf `index` of a tree of `size` leaves. The proof must
/// have exactly the length the tree's shape calls for.
pub fn root_from_inclusion_proof(
    index: u64,
    size: u64,
    leaf: &Sha256Digest,
    proof: &[Sha256Digest],
) -> Result<Sha256Digest, Error> {
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

#[cfg(test)]
mod tests {
    use alloc::vec::Vec;

    use super::*;

    /// The root of leaves[..], computed directly from RFC 9162's definition.
    fn mth(leaves: &[Sha256Digest]) -> Sha256Digest {
        if leaves.len() == 1 {
            return leaves[0];
        }
        let k = leaves.len().next_power_of_two() / 2;
        node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
    }

    /// The audit path from RFC 9162's definition.
    fn path(m: usize, leaves: &[Sha256Digest]) -> Vec<Sha256Digest> {
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
            let leaves: Vec<Sha256Digest> = (0..size).map(|i| leaf_hash(&[i as u8; 3])).collect();
            let root = mth(&leaves);
            for m in 0..size {
                let p = path(m, &leaves);
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
}
