//! The README's tour, run as written: every `sh` block between `<!-- tour -->` and
//! `<!-- /tour -->` in README.md, in order, in one `bash -euo pipefail` in a temporary
//! directory, with the test build's `edgeward`, `edgeward-agent` and `edgeward-server` on
//! `PATH` (the tour's own build step comes before the first marker). A command of the tour
//! that fails fails this test, so the README cannot drift from the code.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use crate::common::model_signing;

/// The `sh` blocks inside the tour's marked regions, in order.
fn tour_blocks(readme: &str) -> Vec<String> {
    let (mut in_tour, mut block): (bool, Option<String>) = (false, None);
    let mut blocks = Vec::new();
    for line in readme.lines() {
        match (line.trim_end(), &mut block) {
            ("```", Some(b)) => {
                blocks.push(std::mem::take(b));
                block = None;
            }
            (_, Some(b)) => {
                b.push_str(line);
                b.push('\n');
            }
            ("<!-- tour -->", None) => {
                assert!(!in_tour, "README.md: <!-- tour --> inside the tour");
                in_tour = true;
            }
            ("<!-- /tour -->", None) => {
                assert!(in_tour, "README.md: <!-- /tour --> outside the tour");
                in_tour = false;
            }
            ("```sh", None) if in_tour => block = Some(String::new()),
            _ => {}
        }
    }
    assert!(
        !in_tour && block.is_none(),
        "README.md: the tour is not closed"
    );
    blocks
}

#[test]
fn readme_tour_runs_as_written() {
    let readme_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = fs::read_to_string(&readme_path).expect("README.md");
    let blocks = tour_blocks(&readme);
    assert!(
        blocks.len() >= 10,
        "only {} tour blocks found",
        blocks.len()
    );

    // The three programs, from this test build.
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_edgeward"))
        .parent()
        .expect("bin dir")
        .to_path_buf();
    for program in ["edgeward-agent", "edgeward-server"] {
        assert!(
            bin_dir.join(program).is_file(),
            "{} is missing: the tour needs all three programs (cargo build --workspace --bins; scripts/test.sh does it)",
            bin_dir.join(program).display()
        );
    }
    // The venv that holds model_signing, as the tour finds it.
    let venv: PathBuf = model_signing()
        .ancestors()
        .nth(2)
        .expect("venv of model_signing")
        .to_path_buf();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .expect("PATH");

    let scratch = tempfile::tempdir().expect("tmp");
    let script = format!("set -euxo pipefail\n{}", blocks.concat());
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(scratch.path())
        .env("PATH", path)
        .env("TMPDIR", scratch.path())
        .env("EDGEWARD_VENV", &venv)
        .env_remove("EDGEWARD_ROOT_PASSPHRASE")
        .output()
        .expect("bash");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        out.status.success(),
        "the README tour failed ({}); the last commands and their output:\n{}\nstdout:\n{}",
        out.status,
        tail(&stderr, 40),
        tail(&stdout, 20)
    );
    // The one command the tour expects to be refused was refused as a rejection (exit 1),
    // for the revocation.
    assert!(stdout.contains("refused: exit 1"), "{stdout}");
    assert!(
        stderr.contains("(or its issuer) is revoked by the CRL"),
        "{}",
        tail(&stderr, 40)
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
