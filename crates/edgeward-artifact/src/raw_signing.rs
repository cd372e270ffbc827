//! Raw detached signatures over one file, interchangeable with
//! `openssl dgst -sha256 -sign/-verify` (ECDSA P-256 DER, RSA PKCS#1 v1.5) and with Python
//! `cryptography`'s Ed25519 `sign`/`verify` over the file's bytes. P-384 and P-521 keys are
//! verified over the file's SHA-384 and SHA-512 (`openssl dgst -sha384`/`-sha512 -sign`).

use std::{fs, io::Read, path::Path};

use edgeward_core::{
    digest::{HashAlg, Hasher},
    keys::PublicKey,
    keys::SigningKey,
    raw_signature,
};

use crate::{hashing, ArtifactError, Progress};

/// Largest file an Ed25519 raw signature is made or checked over: PureEdDSA needs the whole
/// message in memory.
pub const MAX_ED25519_MESSAGE: u64 = 4 * 1024 * 1024 * 1024;

/// Signs the file at `path`.
pub fn sign_file(
    path: &Path,
    key: &SigningKey,
    progress: &dyn Progress,
) -> Result<Vec<u8>, ArtifactError> {
    match key {
        SigningKey::P256(_) => {
            let digest = hashing::sha256_file(path, progress)?;
            Ok(key.sign_sha256_digest(&digest)?)
        }
        SigningKey::Ed25519(_) => Ok(key.sign(&read_whole(path)?)),
    }
}

/// Verifies `signature` over the file at `path`.
pub fn verify_file(
    path: &Path,
    key: &PublicKey,
    signature: &[u8],
    progress: &dyn Progress,
) -> Result<(), ArtifactError> {
    match key {
        PublicKey::Ed25519(_) => Ok(raw_signature::verify_message(
            key,
            &read_whole(path)?,
            signature,
        )?),
        _ if key.hash_alg() == HashAlg::Sha256 => {
            let digest = hashing::sha256_file(path, progress)?;
            Ok(raw_signature::verify_digest(key, &digest, signature)?)
        }
        _ => {
            let hash = key.hash_alg();
            let digest = hash_file(path, hash, progress)?;
            Ok(raw_signature::verify_prehash(
                key, hash, &digest, signature,
            )?)
        }
    }
}

/// The `hash` digest of the file at `path`, read as a stream (the SHA-384 and SHA-512 that
/// P-384 and P-521 raw signatures are made over).
fn hash_file(
    path: &Path,
    hash: HashAlg,
    progress: &dyn Progress,
) -> Result<Vec<u8>, ArtifactError> {
    let mut file = fs::File::open(path).map_err(|e| ArtifactError::io(path, e))?;
    progress.start(file.metadata().map(|m| m.len()).unwrap_or(0));
    let mut hasher = Hasher::new(hash);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| ArtifactError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        progress.advance(n as u64);
    }
    progress.finish();
    Ok(hasher.finalize())
}

fn read_whole(path: &Path) -> Result<Vec<u8>, ArtifactError> {
    let len = fs::metadata(path)
        .map_err(|e| ArtifactError::io(path, e))?
        .len();
    if len > MAX_ED25519_MESSAGE {
        return Err(ArtifactError::Artifact(format!(
            "{} is {len} bytes; Ed25519 raw signatures are limited to {MAX_ED25519_MESSAGE}",
            path.display()
        )));
    }
    fs::read(path).map_err(|e| ArtifactError::io(path, e))
}
