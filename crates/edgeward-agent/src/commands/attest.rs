//! The `attest` command: evidence of the last boot (the measured-boot register and event
//! log that `edgeward-agent boot` recorded in the boot state directory) over the verifier's
//! nonce, signed by the device key inside the element and carrying the device certificate
//! and device CA (edgeward-boot's attestation format; the server verifies it with
//! `edgeward_boot::attest::verify_evidence`).

use base64::Engine;
use edgeward_boot::{attest, state::StateDir};
use rustls_pki_types::{pem::PemObject, CertificateDer};
use serde_json::{json, Value};

use super::Context;

/// Runs `attest` with `args` (`{"nonce": hex}`, 16 to 64 bytes): (ok, output). The evidence
/// travels base64 in the output, under the result's signature.
pub fn run(ctx: &Context<'_>, args: &Value) -> (bool, Value) {
    match evidence(ctx, args) {
        Ok(e) => (
            true,
            json!({ "evidence": base64::engine::general_purpose::STANDARD.encode(e) }),
        ),
        Err(e) => (false, json!({ "error": e })),
    }
}

fn evidence(ctx: &Context<'_>, args: &Value) -> Result<Vec<u8>, String> {
    let nonce = args
        .get("nonce")
        .and_then(Value::as_str)
        .ok_or("attest needs {\"nonce\": hex}")?;
    let nonce = hex::decode(nonce).map_err(|e| format!("the nonce is not hex: {e}"))?;
    attest::check_nonce(&nonce)?;
    let dir = ctx
        .config
        .boot_state_dir
        .as_deref()
        .ok_or("no boot_state_dir is configured: no measured boot to attest")?;
    let log = StateDir::open(dir)
        .and_then(|s| s.boot_log())
        .map_err(|e| format!("the last boot: {e}"))?;
    let certificate = ctx.identity.certificate_der.to_vec();
    let device_ca = CertificateDer::pem_slice_iter(ctx.identity.stored.device_ca.as_bytes())
        .filter_map(Result::ok)
        .map(|c| c.to_vec());
    let chain: Vec<Vec<u8>> = std::iter::once(certificate).chain(device_ca).collect();
    attest::produce_with(
        ctx.element.as_ref(),
        &ctx.identity.stored.key_slot,
        &chain,
        &log,
        &nonce,
    )
    .map_err(|e| format!("evidence: {e}"))
}
