//! CLI usage and error cases as snapshot files, one case per file (`tests/cmd/*.toml`): each
//! names a command line beside its exact exit status, stdout and stderr, so a reviewer reads
//! them side by side. Run with `TRYCMD=overwrite` to rewrite the files after a deliberate
//! change of wording.

#[test]
fn command_lines_print_exactly_their_snapshots() {
    trycmd::TestCases::new()
        .register_bin(
            "edgeward",
            std::path::PathBuf::from(crate::common::edgeward_bin()),
        )
        .case("tests/cmd/*.toml");
}
