//! Hints for the usual mix-ups: a file of one kind given to a flag that takes another (a
//! root certificate as `--pubkey`, a public key as `--trust-root`, a certificate as `--key`,
//! a directory as `--signature`). Each function looks at what the operator gave and returns
//! the sentence to add to the refusal, or `None` when the file is what the flag expects.

use std::path::Path;

use edgeward_core::{cert_policy::cert_info, pem};

/// The labels of the PEM blocks in `bytes` (empty when they are not PEM).
fn labels(bytes: &[u8]) -> Vec<String> {
    pem::parse_all(bytes)
        .map(|blocks| blocks.into_iter().map(|b| b.label).collect())
        .unwrap_or_default()
}

/// `--pubkey` given a self-signed (root) certificate: its key signs certificates, not
/// artifacts, so what the operator meant is `--trust-root`.
pub(crate) fn root_given_as_pubkey(path: &Path, bytes: &[u8]) -> Option<String> {
    let certs = pem::parse_labelled(bytes, "CERTIFICATE").ok()?;
    let info = cert_info(certs.first()?).ok()?;
    (info.subject == info.issuer).then(|| {
        format!(
            "{} is a root certificate ({}): to trust the signing certificates it endorses, use --trust-root {}",
            path.display(),
            info.subject,
            path.display()
        )
    })
}

/// `--trust-root` given a public key rather than a certificate.
pub(crate) fn pubkey_given_as_trust_root(path: &Path, bytes: &[u8]) -> Option<String> {
    let labels = labels(bytes);
    (labels.iter().any(|l| l == "PUBLIC KEY") && !labels.iter().any(|l| l == "CERTIFICATE"))
        .then(|| {
            format!(
                "{} holds a public key, not a root certificate: to trust exactly this key, use --pubkey {}",
                path.display(),
                path.display()
            )
        })
}

/// `--key` (a private key) given a certificate or a public key.
pub(crate) fn not_a_private_key(path: &Path, bytes: &[u8]) -> Option<String> {
    let labels = labels(bytes);
    if labels.iter().any(|l| l.ends_with("PRIVATE KEY")) {
        return None;
    }
    if labels.iter().any(|l| l == "CERTIFICATE") {
        Some(format!(
            "{} holds a certificate, not a private key: --key takes the signing key (e.g. pki/signing.key), and the certificate chain goes in --cert-chain",
            path.display()
        ))
    } else if labels.iter().any(|l| l == "PUBLIC KEY") {
        Some(format!(
            "{} holds a public key, not a private key: --key takes the signing key (e.g. pki/signing.key)",
            path.display()
        ))
    } else {
        None
    }
}

/// `--signature` given a directory (the model, or the folder the signature is in).
pub(crate) fn directory_as_signature(path: &Path) -> Option<String> {
    path.is_dir().then(|| {
        format!(
            "{} is a directory: --signature takes the signature file (a bundle such as model.sig, or a raw signature with --raw)",
            path.display()
        )
    })
}
