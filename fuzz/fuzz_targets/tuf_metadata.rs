//! TUF metadata from an untrusted repository: the envelope, every role's payload parser,
//! the threshold count, and the delegation path matchers. Nothing may panic; canonical
//! JSON of a parsed `signed` object must parse back to the same value.
#![no_main]

use edgeward_update::tuf::envelope::Envelope;
use edgeward_update::tuf::metadata::{DelegatedRoles, Root, Snapshot, Targets, Timestamp};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = Envelope::parse(data.to_vec()) else {
        return;
    };
    let again: serde_json::Value =
        serde_json::from_slice(&envelope.canonical).expect("canonical JSON must parse");
    assert_eq!(again, envelope.signed, "canonical JSON round trip");

    if let Ok(root) = Root::from_signed(&envelope.signed) {
        for role in root.roles.values() {
            let _ = envelope.count_signatures(role, &root.keys);
        }
    }
    let _ = Timestamp::from_signed(&envelope.signed);
    let _ = Snapshot::from_signed(&envelope.signed);
    if let Ok(targets) = Targets::from_signed(&envelope.signed) {
        let Some(delegations) = targets.delegations else {
            return;
        };
        for path in targets.targets.keys() {
            match &delegations.roles {
                DelegatedRoles::List(roles) => {
                    for r in roles {
                        let _ = r.scope.contains(path);
                    }
                }
                DelegatedRoles::Succinct(bins) => {
                    let _ = bins.bin_for(path);
                }
            }
        }
    }
});
