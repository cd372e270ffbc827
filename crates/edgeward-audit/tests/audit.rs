//! The audit log: Merkle roots and proofs cross-checked against an independent RFC 6962
//! implementation (ct-merkle), signed notes against Go's reference vector, and the verifier
//! catching an edited, dropped, reordered or truncated log.

use ct_merkle::mem_backed_tree::MemoryBackedTree;
use ct_merkle::RootHash;
use edgeward_audit::checkpoint::Checkpoint;
use edgeward_audit::log::{sign_checkpoint, verify_log, AuditError, Entry};
use edgeward_audit::merkle::{self, Hash};
use edgeward_audit::note::{NoteError, NoteSigner, NoteVerifier};
use sha2_ct::Sha256;

fn leaf_data(i: usize) -> Vec<u8> {
    format!("entry {i}").into_bytes()
}

fn reference(n: usize) -> MemoryBackedTree<Sha256, Vec<u8>> {
    let mut t = MemoryBackedTree::new();
    for i in 0..n {
        t.push(leaf_data(i));
    }
    t
}

fn ours(n: usize) -> Vec<Hash> {
    (0..n).map(|i| merkle::leaf_hash(&leaf_data(i))).collect()
}

fn chunks(bytes: &[u8]) -> Vec<Hash> {
    bytes.chunks(32).map(|c| c.try_into().unwrap()).collect()
}

#[test]
fn roots_and_proofs_match_ct_merkle() {
    for n in 1..=70 {
        let (theirs, leaves) = (reference(n), ours(n));
        let root = merkle::root(&leaves);
        assert_eq!(
            theirs.root().as_bytes().as_slice(),
            root.as_slice(),
            "root of {n}"
        );
        for i in 0..n {
            let proof = merkle::inclusion_proof(&leaves, i).unwrap();
            assert_eq!(
                chunks(theirs.prove_inclusion(i).as_bytes()),
                proof,
                "inclusion {i} of {n}"
            );
            assert!(merkle::verify_inclusion(
                i as u64, n as u64, &leaves[i], &proof, &root
            ));
            assert!(
                !merkle::verify_inclusion(i as u64, n as u64, &leaves[(i + 1) % n], &proof, &root)
                    || n == 1
            );
        }
        for m in 1..n {
            let proof = merkle::consistency_proof(&leaves, m).unwrap();
            assert_eq!(
                chunks(theirs.prove_consistency(n - m).as_bytes()),
                proof,
                "consistency {m}->{n}"
            );
            let old = merkle::root(&leaves[..m]);
            assert!(
                merkle::verify_consistency(m as u64, n as u64, &proof, &old, &root),
                "{m}->{n}"
            );
            // ct-merkle accepts our proof too.
            let their_proof =
                ct_merkle::ConsistencyProof::<Sha256>::try_from_bytes(proof.concat()).unwrap();
            let old_root = RootHash::<Sha256>::new(old.into(), m as u64);
            theirs
                .root()
                .verify_consistency(&old_root, &their_proof)
                .unwrap();
            // A wrong old root fails.
            assert!(!merkle::verify_consistency(
                m as u64,
                n as u64,
                &proof,
                &leaves[0].map(|b| !b),
                &root
            ));
        }
    }
}

#[test]
fn proofs_of_bad_shape_fail() {
    let leaves = ours(10);
    let root = merkle::root(&leaves);
    let proof = merkle::inclusion_proof(&leaves, 3).unwrap();
    assert!(!merkle::verify_inclusion(3, 17, &leaves[3], &proof, &root));
    assert!(!merkle::verify_inclusion(10, 10, &leaves[3], &proof, &root));
    assert!(!merkle::verify_inclusion(
        3,
        10,
        &leaves[3],
        &proof[..proof.len() - 1],
        &root
    ));
    let cons = merkle::consistency_proof(&leaves, 4).unwrap();
    let old = merkle::root(&leaves[..4]);
    assert!(!merkle::verify_consistency(4, 10, &[], &old, &root));
    assert!(!merkle::verify_consistency(5, 10, &cons, &old, &root));
    assert!(!merkle::verify_consistency(0, 10, &cons, &old, &root));
    assert!(merkle::inclusion_proof(&leaves, 10).is_none());
    assert!(merkle::consistency_proof(&leaves, 0).is_none());
}

// The example of golang.org/x/mod/sumdb/note (Ed25519 signatures are deterministic, so
// signing the same text with the same key must give Go's note byte for byte).
const GO_SIGNER: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const GO_VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const GO_TEXT: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const GO_NOTE: &str = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

#[test]
fn signed_notes_match_go() {
    let signer = NoteSigner::parse(GO_SIGNER).unwrap();
    assert_eq!(signer.sign(GO_TEXT).unwrap(), GO_NOTE);
    assert_eq!(signer.verifier().to_string(), GO_VERIFIER);
    assert_eq!(signer.to_private_string(), GO_SIGNER);
    let verifier = NoteVerifier::parse(GO_VERIFIER).unwrap();
    assert_eq!(verifier.open(GO_NOTE).unwrap(), GO_TEXT);
    assert_eq!(
        verifier.open(&GO_NOTE.replace("cryptography", "cryptographY")),
        Err(NoteError::BadSignature("PeterNeumann".into()))
    );
    let other = NoteSigner::generate("PeterNeumann").unwrap().verifier();
    assert_eq!(
        other.open(GO_NOTE),
        Err(NoteError::NoSignature("PeterNeumann".into()))
    );
    assert!(matches!(
        NoteVerifier::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"),
        Err(NoteError::Key(..))
    ));
    assert_eq!(
        verifier.open("no signatures\n"),
        Err(NoteError::Malformed(
            "no blank line between the text and its signatures"
        ))
    );
}

fn entries(n: u64) -> Vec<Entry> {
    (0..n)
        .map(|i| Entry {
            index: i,
            at: 1_767_225_600 + i as i64,
            actor: if i % 3 == 0 {
                "admin".into()
            } else {
                "detector".into()
            },
            action: format!("action.{}", i % 5),
            device_id: (i % 2 == 0).then(|| format!("dev-{i}")),
            detail: format!("detail {i}"),
            count: 1 + i % 4,
        })
        .collect()
}

struct Log {
    signer: NoteSigner,
    verifier: NoteVerifier,
}

fn log() -> Log {
    let signer = NoteSigner::generate("audit.edgeward.example/fleet").unwrap();
    Log {
        verifier: signer.verifier(),
        signer,
    }
}

#[test]
fn an_intact_log_verifies_and_grows() {
    let l = log();
    let first = entries(10);
    let (cp, note) = sign_checkpoint(&l.signer, &first).unwrap();
    let trusted = verify_log(&l.verifier, &note, &first, None).unwrap();
    assert_eq!(trusted, cp);
    assert_eq!(Checkpoint::parse(&cp.to_text()).unwrap(), cp);
    let grown = entries(25);
    let (_, note) = sign_checkpoint(&l.signer, &grown).unwrap();
    let next = verify_log(&l.verifier, &note, &grown, Some(&trusted)).unwrap();
    assert_eq!(next.size, 25);
}

#[test]
fn an_edited_entry_is_caught() {
    let l = log();
    let mut e = entries(10);
    let (_, note) = sign_checkpoint(&l.signer, &e).unwrap();
    e[4].detail = "nothing happened".into();
    assert_eq!(
        verify_log(&l.verifier, &note, &e, None),
        Err(AuditError::Root { size: 10 })
    );
}

#[test]
fn a_dropped_entry_is_caught() {
    let l = log();
    let mut e = entries(10);
    let (_, note) = sign_checkpoint(&l.signer, &e).unwrap();
    e.remove(6);
    assert_eq!(
        verify_log(&l.verifier, &note, &e, None),
        Err(AuditError::Sequence {
            position: 6,
            index: 7
        })
    );
    // Renumbered to hide the gap, the contents still do not hash to the signed root.
    for (i, x) in e.iter_mut().enumerate() {
        x.index = i as u64;
    }
    assert_eq!(
        verify_log(&l.verifier, &note, &e, None),
        Err(AuditError::Size {
            entries: 9,
            size: 10
        })
    );
}

#[test]
fn reordered_entries_are_caught() {
    let l = log();
    let mut e = entries(10);
    let (_, note) = sign_checkpoint(&l.signer, &e).unwrap();
    e.swap(2, 3);
    assert_eq!(
        verify_log(&l.verifier, &note, &e, None),
        Err(AuditError::Sequence {
            position: 2,
            index: 3
        })
    );
    e[2].index = 2;
    e[3].index = 3;
    assert_eq!(
        verify_log(&l.verifier, &note, &e, None),
        Err(AuditError::Root { size: 10 })
    );
}

#[test]
fn a_deleted_tail_is_caught_even_with_a_fresh_signature() {
    let l = log();
    let e = entries(20);
    let (_, note) = sign_checkpoint(&l.signer, &e).unwrap();
    let trusted = verify_log(&l.verifier, &note, &e, None).unwrap();
    // The server (or whoever holds its key) drops the last 5 entries and signs a new head.
    let (_, shorter) = sign_checkpoint(&l.signer, &e[..15]).unwrap();
    assert_eq!(
        verify_log(&l.verifier, &shorter, &e[..15], Some(&trusted)),
        Err(AuditError::Truncated {
            trusted: 20,
            size: 15
        })
    );
}

#[test]
fn rewritten_history_is_caught() {
    let l = log();
    let e = entries(20);
    let (_, note) = sign_checkpoint(&l.signer, &e).unwrap();
    let trusted = verify_log(&l.verifier, &note, &e, None).unwrap();
    let mut rewritten = entries(30);
    rewritten[3].actor = "someone else".into();
    let (_, note) = sign_checkpoint(&l.signer, &rewritten).unwrap();
    assert_eq!(
        verify_log(&l.verifier, &note, &rewritten, Some(&trusted)),
        Err(AuditError::Forked { trusted: 20 })
    );
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let l = log();
    let e = entries(5);
    let mallory = NoteSigner::generate("audit.edgeward.example/fleet").unwrap();
    let (_, note) = sign_checkpoint(&mallory, &e).unwrap();
    assert_eq!(
        verify_log(&l.verifier, &note, &e, None),
        Err(AuditError::Note(NoteError::NoSignature(
            "audit.edgeward.example/fleet".into()
        )))
    );
}
