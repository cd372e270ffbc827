//! `edgeward boot example --pki DIR --out DIR`: a signed five-stage example chain and a
//! software secure element provisioned with the root, ready for
//! `edgeward-agent boot --chain DIR/chain.toml --se soft:DIR/se`.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use edgeward_boot::example;
use serde_json::json;

use crate::{
    args::parse_size,
    outcome::{print_json, Failure, Outcome},
};

/// Boot chains.
#[derive(Subcommand, Debug)]
pub(crate) enum BootCommand {
    /// Write a signed five-stage example chain and a provisioned software element.
    Example(BootExampleArgs),
}

/// Arguments of `boot example`.
#[derive(Args, Debug)]
pub(crate) struct BootExampleArgs {
    /// A key hierarchy made by `edgeward pki init` (its current signing certificate signs).
    #[arg(long)]
    pub(crate) pki: PathBuf,
    /// Where to write chain.toml, stages/ and se/.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// Size of the OS image.
    #[arg(long, default_value = "4MiB", value_parser = parse_size)]
    pub(crate) os_size: u64,
    /// Size of the model.
    #[arg(long, default_value = "8MiB", value_parser = parse_size)]
    pub(crate) model_size: u64,
}

/// Runs `boot …`.
pub(crate) fn run(cmd: BootCommand, json: bool) -> Outcome {
    match cmd {
        BootCommand::Example(a) => example_cmd(a, json),
    }
}

fn example_cmd(a: BootExampleArgs, json: bool) -> Outcome {
    if a.out.join("chain.toml").exists() || a.out.join("se").exists() {
        return Err(Failure::operator(format!(
            "{} already holds an example; refusing to overwrite it",
            a.out.display()
        )));
    }
    let se_dir = a.out.join("se");
    let se = edgeward_se::open(&format!("soft:{}", se_dir.display()))
        .map_err(|e| Failure::operator(format!("{}: {e}", se_dir.display())))?;
    let ex = example::write_example(
        &a.pki,
        &a.out,
        se.as_ref(),
        a.os_size,
        a.model_size,
        time::OffsetDateTime::now_utc(),
    )
    .map_err(Failure::operator)?;
    if json {
        print_json(&json!({
            "chain": ex.chain,
            "stages": ex.images,
            "signatures": ex.signatures,
            "se": format!("soft:{}", ex.se_dir.display()),
        }));
    } else {
        println!("wrote {} ({} stages)", ex.chain.display(), ex.images.len());
        println!(
            "boot it: edgeward-agent boot --chain {} --se soft:{} --state {}",
            ex.chain.display(),
            ex.se_dir.display(),
            a.out.join("state").display()
        );
    }
    Ok(())
}
