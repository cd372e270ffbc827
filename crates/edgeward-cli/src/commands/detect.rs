//! `edgeward detect …`: the detection library run from the command line. `detect nab` scores
//! a directory in the Numenta Anomaly Benchmark layout with the streaming baseline the
//! server uses and writes NAB result files, so the detector's quality can be measured with
//! NAB's scoring rules (bench/nab_score.py) on data it was not tuned on.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use edgeward_detect::{baseline::Params, nab};
use serde_json::json;

use crate::outcome::{print_json, Failure, Outcome};

/// `edgeward detect …`.
#[derive(Subcommand, Debug)]
pub(crate) enum DetectCommand {
    /// Score every series of a NAB data directory and write NAB result files.
    Nab(NabArgs),
}

/// Arguments of `detect nab`.
#[derive(Args, Debug)]
pub(crate) struct NabArgs {
    /// NAB's root (holding data/) or its data/ folder: <category>/<file>.csv.
    #[arg(value_name = "DATA_DIR")]
    pub(crate) data_dir: PathBuf,
    /// Where to write results: OUT_DIR/edgeward/<category>/edgeward_<file>.csv.
    #[arg(long, value_name = "OUT_DIR")]
    pub(crate) out: PathBuf,
}

/// Runs `detect …`.
pub(crate) fn run(cmd: DetectCommand, json: bool) -> Outcome {
    match cmd {
        DetectCommand::Nab(a) => {
            let summary =
                nab::run(&Params::default(), &a.data_dir, &a.out).map_err(|e| match e {
                    // A malformed data file is bad input; everything else is the operator's setup.
                    nab::NabError::Format { .. } => Failure::rejected(e),
                    _ => Failure::operator(e),
                })?;
            if json {
                print_json(&json!({
                    "ok": true,
                    "detector": nab::DETECTOR,
                    "results": summary.results,
                    "files": summary.files,
                    "rows": summary.rows,
                }));
            } else {
                println!(
                    "scored {} files ({} rows); results in {}",
                    summary.files,
                    summary.rows,
                    summary.results.display()
                );
            }
            Ok(())
        }
    }
}
