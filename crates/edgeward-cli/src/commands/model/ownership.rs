//! `edgeward model keygen | shuffle | unshuffle | watermark …`: keyed layer shuffling and
//! ownership watermarks of safetensors models (see docs/watermark.md).
//!
//! Exit statuses: 0 done (for `detect` and `verify-triggers`: watermark found with p below
//! `--alpha`), 1 rejected (not found; a malformed model; wrong key), 2 operator error.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use edgeward_model::{
    model_key::{ModelKey, MAX_KEY_FILE_BYTES},
    shuffle::{self, ShuffleError},
    watermark::{
        triggers::{self, TriggerSet},
        whitebox::{self, EmbedOptions},
        WatermarkError,
    },
};
use serde_json::{json, Value};

use crate::outcome::{print_json, read_operator_file, Failure, Outcome};

/// `model keygen`.
#[derive(Args, Debug)]
pub(crate) struct KeygenArgs {
    /// Where to write the new key file (created with mode 0600; never overwritten).
    #[arg(short = 'o', long = "output")]
    pub(crate) output: PathBuf,
}

/// `model shuffle` and `model unshuffle`.
#[derive(Args, Debug)]
pub(crate) struct ShuffleArgs {
    /// The input model (safetensors).
    pub(crate) input: PathBuf,
    /// Where to write the result.
    #[arg(short = 'o', long = "output")]
    pub(crate) output: PathBuf,
    /// The owner's model key file (`edgeward model keygen`).
    #[arg(long)]
    pub(crate) key_file: PathBuf,
}

/// `model watermark …`.
#[derive(Subcommand, Debug)]
pub(crate) enum WatermarkCommand {
    /// Embed a 64-bit payload as a white-box watermark into a layer's weights.
    Embed(EmbedArgs),
    /// Look for the key's white-box watermark; exit 0 when found with p below --alpha.
    Detect(DetectArgs),
    /// Write the key's black-box trigger set (inputs and secret labels) as safetensors.
    Triggers(TriggersArgs),
    /// Verify a suspect model's predictions on the trigger set (exact binomial test).
    VerifyTriggers(VerifyTriggersArgs),
}

/// `model watermark embed`.
#[derive(Args, Debug)]
pub(crate) struct EmbedArgs {
    /// The model to mark (safetensors).
    pub(crate) input: PathBuf,
    /// Where to write the marked model.
    #[arg(short = 'o', long = "output")]
    pub(crate) output: PathBuf,
    /// The owner's model key file.
    #[arg(long)]
    pub(crate) key_file: PathBuf,
    /// The payload: 64 bits as 16 hexadecimal digits.
    #[arg(long, value_parser = parse_payload)]
    pub(crate) payload: u64,
    /// The marked layer's weight ([hidden, inputs], F32).
    #[arg(long, default_value = "fc1.weight")]
    pub(crate) tensor: String,
    /// The next layer's weight ([outputs, hidden]), to choose the least important units.
    #[arg(long, default_value = "fc2.weight")]
    pub(crate) next: String,
    /// Target correlation per weight, in standard deviations of the layer.
    #[arg(long, default_value_t = whitebox::DEFAULT_STRENGTH)]
    pub(crate) strength: f64,
}

/// `model watermark detect`.
#[derive(Args, Debug)]
pub(crate) struct DetectArgs {
    /// The suspect model (safetensors).
    pub(crate) input: PathBuf,
    /// The owner's model key file.
    #[arg(long)]
    pub(crate) key_file: PathBuf,
    /// The marked layer's weight.
    #[arg(long, default_value = "fc1.weight")]
    pub(crate) tensor: String,
    /// The payload that was embedded, to count the bits recovered (16 hex digits).
    #[arg(long, value_parser = parse_payload)]
    pub(crate) payload: Option<u64>,
    /// Significance level: the mark is reported found when p < ALPHA.
    #[arg(long, default_value_t = 1e-6, value_parser = parse_alpha)]
    pub(crate) alpha: f64,
}

/// Shape of a trigger set.
#[derive(Args, Debug)]
pub(crate) struct TriggerShape {
    /// Number of triggers.
    #[arg(long, default_value_t = 50)]
    pub(crate) count: usize,
    /// Values per input (64 for the 8x8 digits model).
    #[arg(long, default_value_t = 64)]
    pub(crate) inputs: usize,
    /// Number of classes.
    #[arg(long, default_value_t = 10)]
    pub(crate) classes: u32,
}

/// `model watermark triggers`.
#[derive(Args, Debug)]
pub(crate) struct TriggersArgs {
    /// The owner's model key file.
    #[arg(long)]
    pub(crate) key_file: PathBuf,
    /// Where to write the trigger set (safetensors: `inputs`, `labels`).
    #[arg(short = 'o', long = "output")]
    pub(crate) output: PathBuf,
    #[command(flatten)]
    pub(crate) shape: TriggerShape,
}

/// `model watermark verify-triggers`.
#[derive(Args, Debug)]
pub(crate) struct VerifyTriggersArgs {
    /// The suspect's predictions: `{"predictions": [class, …]}` or a JSON array.
    #[arg(long)]
    pub(crate) predictions: PathBuf,
    /// The owner's model key file.
    #[arg(long)]
    pub(crate) key_file: PathBuf,
    #[command(flatten)]
    pub(crate) shape: TriggerShape,
    /// Significance level: the mark is reported found when p < ALPHA.
    #[arg(long, default_value_t = 1e-6, value_parser = parse_alpha)]
    pub(crate) alpha: f64,
}

fn parse_payload(s: &str) -> Result<u64, String> {
    let t = s.trim().trim_start_matches("0x");
    if t.len() != 16 {
        return Err(format!(
            "{s:?}: the payload is 64 bits, 16 hexadecimal digits"
        ));
    }
    u64::from_str_radix(t, 16).map_err(|_| format!("{s:?} is not hexadecimal"))
}

/// `model keygen`.
pub(crate) fn keygen(a: KeygenArgs, json: bool) -> Outcome {
    let key = ModelKey::generate();
    key.write_new(&a.output).map_err(Failure::operator)?;
    report(
        json,
        json!({ "ok": true, "key_file": a.output, "key_id": key.id() }),
        format!("wrote model key {} to {}", key.id(), a.output.display()),
    );
    Ok(())
}

/// `model shuffle`.
pub(crate) fn shuffle(a: ShuffleArgs, json: bool) -> Outcome {
    let key = load_key(&a.key_file)?;
    let model = read_operator_file(&a.input)?;
    let out = shuffle::shuffle(&model, &key).map_err(shuffle_failure)?;
    write_output(&a.output, &out)?;
    report(
        json,
        json!({ "ok": true, "input": a.input, "output": a.output, "key_id": key.id(), "bytes": out.len() }),
        format!("shuffled {} -> {}", a.input.display(), a.output.display()),
    );
    Ok(())
}

/// `model unshuffle`.
pub(crate) fn unshuffle(a: ShuffleArgs, json: bool) -> Outcome {
    let key = load_key(&a.key_file)?;
    let model = read_operator_file(&a.input)?;
    let out = shuffle::unshuffle(&model, &key).map_err(shuffle_failure)?;
    write_output(&a.output, &out)?;
    report(
        json,
        json!({ "ok": true, "input": a.input, "output": a.output, "key_id": key.id(), "bytes": out.len() }),
        format!("restored {} -> {}", a.input.display(), a.output.display()),
    );
    Ok(())
}

/// `model watermark …`.
pub(crate) fn watermark(cmd: WatermarkCommand, json: bool) -> Outcome {
    match cmd {
        WatermarkCommand::Embed(a) => embed(a, json),
        WatermarkCommand::Detect(a) => detect(a, json),
        WatermarkCommand::Triggers(a) => write_triggers(a, json),
        WatermarkCommand::VerifyTriggers(a) => verify_triggers(a, json),
    }
}

fn embed(a: EmbedArgs, json: bool) -> Outcome {
    let key = load_key(&a.key_file)?;
    let model = read_operator_file(&a.input)?;
    let options = EmbedOptions {
        tensor: a.tensor.clone(),
        next: a.next.clone(),
        strength: a.strength,
    };
    let (out, r) = whitebox::embed(&model, &key, a.payload, &options).map_err(wm_failure)?;
    write_output(&a.output, &out)?;
    report(
        json,
        json!({
            "ok": true, "input": a.input, "output": a.output, "key_id": key.id(),
            "tensor": a.tensor, "units": r.units, "sigma": r.sigma, "rms_change": r.rms_change,
        }),
        format!(
            "marked {} units of {} (rms change {:.3} sigma) -> {}",
            r.units,
            a.tensor,
            r.rms_change,
            a.output.display()
        ),
    );
    Ok(())
}

fn detect(a: DetectArgs, json: bool) -> Outcome {
    let key = load_key(&a.key_file)?;
    let model = read_operator_file(&a.input)?;
    let d = whitebox::detect(&model, &key, &a.tensor, a.payload).map_err(wm_failure)?;
    let detected = d.p_value < a.alpha;
    let bits = d
        .bits_matching
        .map(|m| format!(", {m}/{} payload bits", whitebox::PAYLOAD_BITS))
        .unwrap_or_default();
    let report = (
        json!({
            "detected": detected, "input": a.input, "key_id": key.id(), "z": d.z,
            "p_value": d.p_value, "alpha": a.alpha, "payload": format!("{:016x}", d.payload),
            "bits_matching": d.bits_matching, "units": d.units, "terms": d.terms,
        }),
        format!(
            "{}: z = {:.2}, p = {:.3e}, payload {:016x}{bits}",
            if detected {
                "watermark found"
            } else {
                "no watermark"
            },
            d.z,
            d.p_value,
            d.payload
        ),
    );
    verdict(detected, "watermark not found", json, report)
}

fn write_triggers(a: TriggersArgs, json: bool) -> Outcome {
    let key = load_key(&a.key_file)?;
    let set = trigger_set(&key, &a.shape)?;
    write_output(&a.output, &set.to_safetensors())?;
    report(
        json,
        json!({ "ok": true, "output": a.output, "count": a.shape.count, "key_id": key.id() }),
        format!("wrote {} triggers to {}", a.shape.count, a.output.display()),
    );
    Ok(())
}

fn verify_triggers(a: VerifyTriggersArgs, json: bool) -> Outcome {
    let key = load_key(&a.key_file)?;
    let set = trigger_set(&key, &a.shape)?;
    let bytes = read_operator_file(&a.predictions)?;
    let predictions = triggers::parse_predictions(&bytes)
        .map_err(|e| Failure::operator(format!("{}: {e}", a.predictions.display())))?;
    let v = set
        .verify(&predictions)
        .map_err(|e| Failure::operator(format!("{}: {e}", a.predictions.display())))?;
    let detected = v.p_value < a.alpha;
    let report = (
        json!({
            "detected": detected, "matches": v.matches, "count": v.count,
            "chance": 1.0 / f64::from(a.shape.classes), "p_value": v.p_value, "alpha": a.alpha,
        }),
        format!(
            "{}: {}/{} trigger labels reproduced (chance 1/{}), p = {:.3e}",
            if detected {
                "watermark found"
            } else {
                "no watermark"
            },
            v.matches,
            v.count,
            a.shape.classes,
            v.p_value
        ),
    );
    verdict(detected, "trigger-set watermark not found", json, report)
}

fn trigger_set(key: &ModelKey, s: &TriggerShape) -> Result<TriggerSet, Failure> {
    TriggerSet::derive(key, s.count, s.inputs, s.classes).map_err(Failure::operator)
}

/// `--alpha`: a significance level strictly between 0 and 1 (checked by the parser).
fn parse_alpha(s: &str) -> Result<f64, String> {
    let alpha: f64 = s.parse().map_err(|_| format!("{s:?} is not a number"))?;
    if alpha > 0.0 && alpha < 1.0 {
        Ok(alpha)
    } else {
        Err(format!("{alpha} is not in (0, 1)"))
    }
}

/// A detection's outcome: the report (printed as text either way; as JSON on success, or
/// inside the error object when no mark was found) and exit 1 when none was.
fn verdict(detected: bool, message: &str, json: bool, (value, text): (Value, String)) -> Outcome {
    if detected || !json {
        report(json, value.clone(), text);
    }
    if detected {
        Ok(())
    } else {
        Err(Failure::rejected(message).with_context(value))
    }
}

fn report(json: bool, value: Value, text: String) {
    if json {
        print_json(&value);
    } else {
        println!("{text}");
    }
}

/// Reads the key file, refusing oversized files and warning when others may read it.
fn load_key(path: &Path) -> Result<ModelKey, Failure> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?;
    if meta.len() > MAX_KEY_FILE_BYTES as u64 {
        return Err(Failure::operator(format!(
            "{}: {} bytes is too large for a model key file",
            path.display(),
            meta.len()
        )));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            eprintln!(
                "warning: {} is readable by others (mode {mode:o}); chmod 600 it",
                path.display()
            );
        }
    }
    let bytes = zeroize::Zeroizing::new(read_operator_file(path)?);
    ModelKey::parse(&bytes).map_err(|e| Failure::operator(format!("{}: {e}", path.display())))
}

fn write_output(path: &Path, bytes: &[u8]) -> Outcome {
    std::fs::write(path, bytes).map_err(|e| Failure::operator(format!("{}: {e}", path.display())))
}

fn shuffle_failure(e: ShuffleError) -> Failure {
    Failure::rejected(e)
}

fn wm_failure(e: WatermarkError) -> Failure {
    match e {
        WatermarkError::Tensors(_) | WatermarkError::TooSmall(_) => Failure::rejected(e),
        WatermarkError::Invalid(_) | WatermarkError::Predictions(_) => Failure::operator(e),
    }
}
