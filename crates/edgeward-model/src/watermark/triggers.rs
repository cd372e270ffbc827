//! The black-box watermark: a key-derived trigger set (random-noise inputs with random
//! labels) that only a model fine-tuned on it (`scripts/models/watermark_eval.py` embeds it)
//! reproduces. A suspect model is verified from its predictions alone with an exact
//! binomial test: with labels drawn uniformly and independently of any model not trained on
//! them, each prediction matches with probability `1 / classes`.

use std::collections::BTreeMap;

use rand::Rng;
use safetensors::Dtype;
use statrs::distribution::{Binomial, DiscreteCDF};

use super::WatermarkError;
use crate::{
    model_key::ModelKey,
    tensors::{self, NewTensor},
};

/// Largest trigger set.
pub const MAX_TRIGGERS: usize = 10_000;
/// Largest input dimension of a trigger.
pub const MAX_INPUTS: usize = 1 << 16;
/// Largest predictions file, in bytes.
pub const MAX_PREDICTIONS_BYTES: usize = 1 << 20;

/// A key-derived trigger set.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerSet {
    /// Inputs, `count × inputs` values in [0, 1), row after row.
    pub inputs: Vec<f32>,
    /// The secret label of each trigger.
    pub labels: Vec<u32>,
    /// Values per input.
    pub dim: usize,
    /// Number of classes.
    pub classes: u32,
}

/// The outcome of verifying predictions on a trigger set.
#[derive(Clone, Debug, PartialEq)]
pub struct TriggerVerdict {
    /// Predictions equal to the secret labels.
    pub matches: usize,
    /// Triggers.
    pub count: usize,
    /// `P(X >= matches)` for `X ~ Binomial(count, 1 / classes)`.
    pub p_value: f64,
}

impl TriggerSet {
    /// The trigger set of `key` for a model with `dim` inputs and `classes` classes.
    pub fn derive(
        key: &ModelKey,
        count: usize,
        dim: usize,
        classes: u32,
    ) -> Result<Self, WatermarkError> {
        if !(1..=MAX_TRIGGERS).contains(&count)
            || !(1..=MAX_INPUTS).contains(&dim)
            || count.saturating_mul(dim) > 1 << 24
            || classes < 2
        {
            return Err(WatermarkError::Invalid(format!(
                "trigger set of {count} x {dim} with {classes} classes is out of range"
            )));
        }
        let mut context = Vec::new();
        for v in [count as u64, dim as u64, u64::from(classes)] {
            context.extend_from_slice(&v.to_le_bytes());
        }
        let mut rng = key.rng("edgeward/watermark/v1/triggers", &context);
        let inputs = (0..count * dim).map(|_| rng.gen::<f32>()).collect();
        let labels = (0..count).map(|_| rng.gen_range(0..classes)).collect();
        Ok(TriggerSet {
            inputs,
            labels,
            dim,
            classes,
        })
    }

    /// The set as a safetensors file: `inputs` F32 `[count, dim]`, `labels` I64 `[count]`.
    pub fn to_safetensors(&self) -> Vec<u8> {
        let inputs: Vec<u8> = self.inputs.iter().flat_map(|v| v.to_le_bytes()).collect();
        let labels: Vec<u8> = self
            .labels
            .iter()
            .flat_map(|l| i64::from(*l).to_le_bytes())
            .collect();
        tensors::write(
            &BTreeMap::from([("classes".to_string(), self.classes.to_string())]),
            &[
                NewTensor {
                    name: "inputs".into(),
                    dtype: Dtype::F32,
                    shape: vec![self.labels.len(), self.dim],
                    data: &inputs,
                },
                NewTensor {
                    name: "labels".into(),
                    dtype: Dtype::I64,
                    shape: vec![self.labels.len()],
                    data: &labels,
                },
            ],
        )
    }

    /// Verifies a suspect model's predictions, one per trigger in order.
    pub fn verify(&self, predictions: &[u32]) -> Result<TriggerVerdict, WatermarkError> {
        if predictions.len() != self.labels.len() {
            return Err(WatermarkError::Predictions(format!(
                "{} predictions for {} triggers",
                predictions.len(),
                self.labels.len()
            )));
        }
        let matches = predictions
            .iter()
            .zip(&self.labels)
            .filter(|(p, l)| p == l)
            .count();
        let chance = Binomial::new(1.0 / f64::from(self.classes), self.labels.len() as u64)
            .map_err(|e| WatermarkError::Invalid(e.to_string()))?;
        let p_value = match matches {
            0 => 1.0,
            m => chance.sf(m as u64 - 1),
        };
        Ok(TriggerVerdict {
            matches,
            count: self.labels.len(),
            p_value,
        })
    }
}

/// Parses a predictions file: `{"predictions": [class, …]}` (what
/// `train_digits.py --predict` prints), or a bare JSON array of classes.
pub fn parse_predictions(bytes: &[u8]) -> Result<Vec<u32>, WatermarkError> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Form {
        Object { predictions: Vec<u32> },
        Array(Vec<u32>),
    }
    if bytes.len() > MAX_PREDICTIONS_BYTES {
        return Err(WatermarkError::Predictions(format!(
            "{} bytes is more than {MAX_PREDICTIONS_BYTES}",
            bytes.len()
        )));
    }
    let form: Form = serde_json::from_slice(bytes).map_err(|_| {
        WatermarkError::Predictions(
            "not {\"predictions\": [classes]} or a JSON array of classes".into(),
        )
    })?;
    let predictions = match form {
        Form::Object { predictions } | Form::Array(predictions) => predictions,
    };
    if predictions.len() > MAX_TRIGGERS {
        return Err(WatermarkError::Predictions(format!(
            "{} predictions is more than {MAX_TRIGGERS}",
            predictions.len()
        )));
    }
    Ok(predictions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_binomial_tail() {
        let key = ModelKey::generate();
        let set = TriggerSet::derive(&key, 50, 64, 10).unwrap();
        assert_eq!(set, TriggerSet::derive(&key, 50, 64, 10).unwrap());
        let all = set.verify(&set.labels).unwrap();
        assert_eq!(all.matches, 50);
        assert!((all.p_value - 1e-50).abs() < 1e-60, "{}", all.p_value);
        let none: Vec<u32> = set.labels.iter().map(|l| (l + 1) % 10).collect();
        assert_eq!(set.verify(&none).unwrap().p_value, 1.0);
        assert!(matches!(
            set.verify(&[1, 2]),
            Err(WatermarkError::Predictions(m)) if m == "2 predictions for 50 triggers"
        ));
        let file = set.to_safetensors();
        assert!(tensors::TensorFile::parse(&file).is_ok());
    }

    #[test]
    fn parses_both_prediction_forms() {
        assert_eq!(parse_predictions(b"[1,2]").unwrap(), vec![1, 2]);
        assert_eq!(
            parse_predictions(br#"{"predictions":[3]}"#).unwrap(),
            vec![3]
        );
        for bad in [&b"[-1]"[..], b"{", b"{\"predictions\":[1],\"x\":\"y\"}1"] {
            assert!(matches!(
                parse_predictions(bad),
                Err(WatermarkError::Predictions(m))
                    if m == "not {\"predictions\": [classes]} or a JSON array of classes"
            ));
        }
    }
}
