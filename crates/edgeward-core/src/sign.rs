//! Creating signature bundles: a manifest becomes an in-toto statement, the statement a
//! DSSE payload, and the signature over its pre-authentication encoding a Sigstore bundle.

use alloc::{format, vec::Vec};

use crate::{
    bundle::{Bundle, Material},
    dsse::{pae, IN_TOTO_PAYLOAD_TYPE},
    keys::{PublicKey, SigningKey},
    manifest::Manifest,
    statement::{BootClaims, Statement},
    Error,
};

/// Signs `manifest` with `key`. With `chain` (DER, signing certificate first) the bundle is
/// in certificate mode, and the certificate must hold `key`'s public key; without it the
/// bundle is in key mode with the public-key hint. `signed_at` (Unix seconds) is recorded.
pub fn sign_manifest(
    manifest: Manifest,
    signed_at: Option<u64>,
    key: &SigningKey,
    chain: Option<Vec<Vec<u8>>>,
) -> Result<Bundle, Error> {
    sign_statement(
        Statement {
            manifest,
            signed_at,
            boot: BootClaims::default(),
        },
        key,
        chain,
    )
}

/// Signs a whole statement (a manifest with its Edgeward claims, e.g. a boot stage's
/// [`BootClaims`]); `chain` as in [`sign_manifest`].
pub fn sign_statement(
    statement: Statement,
    key: &SigningKey,
    chain: Option<Vec<Vec<u8>>>,
) -> Result<Bundle, Error> {
    let public = key.public_key();
    let material = match chain {
        Some(chain) => {
            let leaf = chain
                .first()
                .ok_or_else(|| Error::InvalidArgument("the certificate chain is empty".into()))?;
            let cert_key = PublicKey::from_certificate_der(leaf)?;
            if cert_key != public {
                return Err(Error::InvalidArgument(format!(
                    "the first certificate of the chain holds key {}, but the signing key is {}",
                    cert_key.fingerprint(),
                    public.fingerprint()
                )));
            }
            Material::Chain(chain)
        }
        None => Material::KeyHint(Some(public.hint())),
    };
    let payload = statement.to_json();
    let signature = key.sign(&pae(IN_TOTO_PAYLOAD_TYPE, &payload));
    Ok(Bundle {
        material,
        payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
        payload,
        signature,
        embedded_key: None,
        tlog_entries: Vec::new(),
        rfc3161_timestamps: Vec::new(),
    })
}
