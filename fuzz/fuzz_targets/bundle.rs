//! Bundle JSON: parse, serialize and re-parse, then verify under a fixed public key and
//! under the fixed trust root at a fixed time.
#![no_main]

use edgeward_core::{
    bundle::Bundle,
    cert_policy::Policy,
    verify::{verify_bundle, Trust},
};
use edgeward_fuzz::{roots, signing_key, NOW};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(bundle) = Bundle::parse(data) else {
        return;
    };
    let json = bundle.to_json();
    let again = Bundle::parse(json.as_bytes()).expect("Bundle::to_json output must parse");
    assert_eq!(again, bundle, "Bundle parse/to_json round trip");

    let key = signing_key();
    if let Ok(v) = verify_bundle(&bundle, &Trust::PublicKey(key), NOW) {
        assert_eq!(&v.key, key);
        assert!(v.certificate.is_none());
    }
    let trust = Trust::Roots {
        roots: roots(),
        crls: &[],
        policy: Policy::default(),
    };
    if let Ok(v) = verify_bundle(&bundle, &trust, NOW) {
        let cert = v
            .certificate
            .expect("certificate mode names the certificate");
        assert_eq!(cert.key, v.key);
    }
});
