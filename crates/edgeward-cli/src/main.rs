//! `edgeward`: the operator's command line. It parses arguments and calls the libraries;
//! the logic a test would want lives in `edgeward-core`, `edgeward-model` and `edgeward-pki`.

mod boot_cmd;
mod cli;
mod demo;
mod demo_boot;
mod demo_crypt;
mod demo_server;
mod demo_watermark;
mod fleet_cmd;
mod mcuboot_cmd;
mod model_crypt_cmd;
mod model_wm_cmd;
mod outcome;
mod pki_cmd;
mod progress;
mod se_cmd;
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
        cli::Command::Boot(cmd) => boot_cmd::run(cmd),
        cli::Command::Mcuboot(cmd) => mcuboot_cmd::run(cmd),
        cli::Command::Se(cmd) => se_cmd::run(cmd),
        cli::Command::Device(cli::DeviceCommand::Enroll(cmd)) => fleet_cmd::enroll(cmd),
        cli::Command::Model(cli::ModelCommand::Encrypt(cmd)) => model_crypt_cmd::encrypt(cmd),
        cli::Command::Model(cli::ModelCommand::Decrypt(cmd)) => model_crypt_cmd::decrypt(cmd),
        cli::Command::Model(cli::ModelCommand::Rewrap(cmd)) => model_crypt_cmd::rewrap(cmd),
        cli::Command::Model(cli::ModelCommand::Inspect(cmd)) => model_crypt_cmd::inspect(cmd),
        cli::Command::Model(cli::ModelCommand::Keygen(cmd)) => model_wm_cmd::keygen(cmd),
        cli::Command::Model(cli::ModelCommand::Shuffle(cmd)) => model_wm_cmd::shuffle(cmd),
        cli::Command::Model(cli::ModelCommand::Unshuffle(cmd)) => model_wm_cmd::unshuffle(cmd),
        cli::Command::Model(cli::ModelCommand::Watermark(cmd)) => model_wm_cmd::watermark(cmd),
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
