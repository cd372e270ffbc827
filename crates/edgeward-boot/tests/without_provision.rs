//! The integration suites (attest, chain, mcuboot, policy, power_cut, tpm) build a key
//! hierarchy and the example chain, which need the `provision` feature. Built without it,
//! this says so in the test summary instead of the suites vanishing.

#[cfg(not(feature = "provision"))]
#[test]
#[ignore = "the integration suites need --features provision (cargo test --workspace enables it)"]
fn integration_suites_need_the_provision_feature() {}
