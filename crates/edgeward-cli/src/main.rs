//! `edgeward`: the operator's command line. It parses arguments and calls the libraries;
//! the logic a test would want lives in `edgeward-core`, `edgeward-model` and `edgeward-pki`.

mod args;
mod cli;
mod commands;
mod demo;
mod outcome;
mod progress;
mod secrets;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let json = args.json;
    match args.command.run(json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("edgeward: {}", failure.message);
            if json && !failure.reported {
                outcome::print_json(&serde_json::json!({
                    "ok": false,
                    "error": failure.message,
                    "exit_code": failure.code,
                }));
            }
            ExitCode::from(failure.code)
        }
    }
}
