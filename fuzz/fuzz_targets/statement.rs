//! In-toto statement JSON: parse, and check that `parse(to_json(x)) == x` and that
//! `to_json` is a fixed point; exercise the manifest helpers on what parsed.
#![no_main]

use edgeward_core::statement::Statement;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(statement) = Statement::parse(data) else {
        return;
    };
    let json = statement.to_json();
    let again = Statement::parse(&json).expect("Statement::to_json output must parse");
    assert_eq!(again, statement, "Statement parse/to_json round trip");
    assert_eq!(
        again.to_json(),
        json,
        "Statement::to_json is not a fixed point"
    );

    let m = &statement.manifest;
    let _ = m.covered_bytes();
    assert_eq!(m.root_digest(), again.manifest.root_digest());
    assert!(m.check_matches(&again.manifest).is_ok());
});
