//! `edgeward`: the operator's command line. It parses arguments and calls the libraries;
//! the logic a test would want lives in `edgeward-core`, `edgeward-model` and `edgeward-pki`.

mod cli;
mod demo;
mod demo_server;
mod fleet_cmd;
mod outcome;
mod pki_cmd;
mod progress;
mod secrets;
mod sign_cmd;
mod verify_cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    let json = args.command.wants_json();
    let result = match args.command {
        cli::Command::Pki(cmd) => pki_cmd::run(cmd),
        cli::Command::Sign(cmd) => sign_cmd::run(cmd),
        cli::Command::Verify(cmd) => verify_cmd::run(cmd),
        cli::Command::Demo(cmd) => demo::run(cmd),
        cli::Command::Fleet(cmd) => fleet_cmd::run(cmd),
        cli::Command::Device(cli::DeviceCommand::Enroll(cmd)) => fleet_cmd::enroll(cmd),
    };
    match result {
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
