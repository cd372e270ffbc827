//! Re-aligning hidden units: which row of a suspect layer carries which watermark template.
//!
//! A function-preserving permutation of hidden units reorders the rows of the marked layer
//! but not its input columns, on which the templates live. The assignment of templates to
//! rows that maximises the total sign-agnostic correlation is found with the Hungarian
//! algorithm (`pathfinding`'s Kuhn–Munkres). Being sign-agnostic, it leaves the sign of each
//! aligned correlation free under the null hypothesis, which keeps the detector's z honest.

use pathfinding::{kuhn_munkres::kuhn_munkres, matrix::Matrix};

/// Scores are scaled to integers below this bound for the exact integer Hungarian solver.
const SCALE: f64 = 1e9;

/// For a `templates × rows` score matrix (`templates <= rows`, scores finite and
/// non-negative), the row assigned to each template.
pub(crate) fn assign(scores: &[Vec<f64>], rows: usize) -> Vec<usize> {
    let max = scores
        .iter()
        .flatten()
        .copied()
        .fold(0.0f64, f64::max)
        .max(f64::MIN_POSITIVE);
    let weights = Matrix::from_fn(scores.len(), rows, |(k, r)| {
        (scores[k][r] / max * SCALE).round() as i64
    });
    kuhn_munkres(&weights).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_best_assignment() {
        let scores = vec![vec![1.0, 9.0, 2.0], vec![8.0, 9.5, 0.0]];
        assert_eq!(assign(&scores, 3), vec![1, 0]);
        assert_eq!(assign(&[vec![0.0, 0.0]], 2).len(), 1);
    }
}
