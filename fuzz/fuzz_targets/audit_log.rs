//! The audit log's untrusted inputs, as `edgeward audit verify` meets them: a signed note
//! opened under a fixed verifier key, the checkpoint inside it, verifier and signer key
//! strings, proof documents (then verified against a fixed tree), and entries fed to the
//! streaming verifier. A parsed checkpoint re-encodes to text that parses to itself.
#![no_main]

use edgeward_audit::{
    checkpoint::Checkpoint,
    log::{Entry, LogVerifier},
    merkle,
    note::{NoteSigner, NoteVerifier},
    proof::{ConsistencyProof, InclusionProof},
};
use libfuzzer_sys::fuzz_target;

// golang.org/x/mod/sumdb/note's example key.
const VERIFIER: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        let _ = InclusionProof::parse(data);
        let _ = ConsistencyProof::parse(data);
        return;
    };
    let Ok(verifier) = NoteVerifier::parse(VERIFIER) else {
        return;
    };
    let _ = verifier.open(text);
    if let Ok(cp) = Checkpoint::parse(text) {
        assert_eq!(Checkpoint::parse(&cp.to_text()).as_ref(), Ok(&cp));
    }
    if let Ok(v) = NoteVerifier::parse(text) {
        assert_eq!(NoteVerifier::parse(&v.to_string()).as_ref(), Ok(&v));
    }
    let _ = NoteSigner::parse(text);

    let leaves: Vec<merkle::Hash> = (0..13u8).map(|i| merkle::leaf_hash(&[i])).collect();
    let root = merkle::root(&leaves);
    if let Ok(p) = InclusionProof::parse(data) {
        let leaf = leaves[(p.index % 13) as usize];
        let _ = merkle::verify_inclusion(p.index, p.size, &leaf, &p.proof, &root);
    }
    if let Ok(p) = ConsistencyProof::parse(data) {
        let old = merkle::root(&leaves[..(p.old_size % 14) as usize]);
        let _ = merkle::verify_consistency(p.old_size, p.size, &p.proof, &old, &root);
    }
    // A note followed by entries, one JSON object per line.
    if let Some((note, rest)) = text.split_once("\n\n\n") {
        if let Ok(mut v) = LogVerifier::new(&verifier, note, None) {
            for line in rest.lines() {
                let Ok(e) = serde_json::from_str::<Entry>(line) else {
                    continue;
                };
                if v.push(&e).is_err() {
                    return;
                }
            }
            let _ = v.finish();
        }
    }
});
