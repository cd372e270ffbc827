//! `edgeward`: the operator's command line. It parses arguments and calls the libraries;
//! the logic a test would want lives in `edgeward-core`, `edgeward-model` and `edgeward-pki`.

mod args;
mod cli;
mod commands;
mod demo;
mod hints;
mod outcome;
mod progress;
mod secrets;

use std::process::ExitCode;

use clap::{error::ErrorKind, Parser};

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(args) => args,
        Err(e) => return usage_error(e),
    };
    let json = args.json;
    match args.command.run(json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("edgeward: {}", failure.message);
            if json {
                outcome::print_json(&outcome::failure_json(
                    failure.kind(),
                    &failure.message,
                    failure.code,
                    &failure.context,
                ));
            }
            ExitCode::from(failure.code)
        }
    }
}

/// The argument parser's refusal: its usage text on stderr as always, and with `--json`
/// the same error object as any other failure (kind `usage`, exit 2). Help and version
/// requests are not failures.
fn usage_error(e: clap::Error) -> ExitCode {
    let json = std::env::args_os().any(|a| a == "--json");
    if !json || matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let _ = e.print();
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first);
    outcome::print_json(&outcome::failure_json(
        outcome::KIND_USAGE,
        message,
        outcome::OPERATOR,
        &serde_json::Map::new(),
    ));
    ExitCode::from(outcome::OPERATOR)
}
