//! Runs the baseline over a NAB data directory and writes NAB result files, until the
//! `edgeward detect nab` command lands: `cargo run --release -p edgeward-detect --example nab
//! -- DATA_DIR OUT_DIR`, then `bench/nab_score.py DATA_DIR OUT_DIR`.

use std::process::ExitCode;

use edgeward_detect::{baseline::Params, nab};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [data, out] = args.as_slice() else {
        eprintln!("usage: nab DATA_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    match nab::run(&Params::default(), data.as_ref(), out.as_ref()) {
        Ok(summary) => {
            println!(
                "{} files, {} rows scored into {}",
                summary.files,
                summary.rows,
                summary.results.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nab: {e}");
            ExitCode::FAILURE
        }
    }
}
