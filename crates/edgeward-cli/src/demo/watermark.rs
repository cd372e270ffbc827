//! `edgeward demo`, the watermark chapter: the owner's mark survives a thief's neuron
//! permutation and pruning, and an unmarked model shows none. The model is the digits MLP
//! that `scripts/models/train_digits.py` trains (kept as a test asset of edgeward-model).

use super::fail;
use std::{fs, path::Path};

use edgeward_model::{
    model_key::ModelKey,
    watermark::{launder, whitebox},
};

use crate::demo::{read, Demo};

/// Marks the digits model, "steals" it (hidden units permuted, half the weights pruned; it
/// still works) and finds the owner's mark in the stolen copy.
pub(crate) fn story(demo: &mut Demo, dir: &Path) {
    if let Err(e) = fs::create_dir_all(dir) {
        return demo.step("watermark the model", || {
            fail(format!("{}: {e}", dir.display()))
        });
    }
    const DIGITS_MLP: &[u8] =
        include_bytes!("../../../edgeward-model/tests/data/digits-mlp.safetensors");
    const PAYLOAD: u64 = 0x0123_4567_89ab_cdef;
    let key = ModelKey::generate();
    let marked = dir.join("digits-marked.safetensors");
    let stolen = dir.join("digits-stolen.safetensors");

    demo.step("watermark the model", || {
        let options = whitebox::EmbedOptions::default();
        let (bytes, r) = whitebox::embed(DIGITS_MLP, &key, PAYLOAD, &options)?;
        fs::write(&marked, bytes).map_err(|e| format!("{}: {e}", marked.display()))?;
        Ok(format!(
            "payload {PAYLOAD:016x} in {} hidden units of fc1 (rms change {:.2} sigma), key {}",
            r.units,
            r.rms_change,
            key.id()
        ))
    });

    demo.step(
        "find the mark in a stolen copy (units permuted, 50 % pruned)",
        || {
            let bytes = read(&marked)?;
            let permuted =
                launder::permute_hidden(&bytes, "fc1.weight", "fc1.bias", "fc2.weight", 7)?;
            let copy = launder::prune(&permuted, &["fc1.weight", "fc2.weight"], 0.5)?;
            fs::write(&stolen, &copy).map_err(|e| format!("{}: {e}", stolen.display()))?;
            let d = whitebox::detect(&copy, &key, "fc1.weight", Some(PAYLOAD))?;
            if d.p_value >= 1e-6 {
                return fail(format!(
                    "mark not found: z = {:.2}, p = {:.2e}",
                    d.z, d.p_value
                ));
            }
            Ok(format!(
                "owner's mark found: z = {:.2}, p = {:.1e}, {}/64 payload bits",
                d.z,
                d.p_value,
                d.bits_matching.unwrap_or(0)
            ))
        },
    );

    demo.step("an unmarked model shows no mark", || {
        let d = whitebox::detect(DIGITS_MLP, &key, "fc1.weight", None)?;
        if d.p_value < 1e-6 {
            return fail(format!(
                "false positive: z = {:.2}, p = {:.2e}",
                d.z, d.p_value
            ));
        }
        Ok(format!("no mark: z = {:.2}, p = {:.2}", d.z, d.p_value))
    });
}
