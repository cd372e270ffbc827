//! `edgeward-inference-worker`: the isolated process that holds a device's decrypted model and
//! serves inference ([`edgeward_agent::inference::worker`]). The agent starts it; run by hand
//! it has no channel on its standard input and exits. `--probe socket|exec` makes the
//! sandboxed worker attempt a forbidden system call instead of serving (the tests show the
//! filter kills it).

use std::process::ExitCode;

use edgeward_agent::inference::worker::{self, Probe};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let probe = match (args.next().as_deref(), args.next(), args.next()) {
        (None, _, _) => None,
        (Some("--probe"), Some(p), None) => match p.parse::<Probe>() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("edgeward-inference-worker: {e}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: edgeward-inference-worker [--probe socket|exec] (started by edgeward-agent)");
            return ExitCode::from(2);
        }
    };
    ExitCode::from(worker::run(probe))
}
