//! MCUboot images: parsing and verifying untrusted bytes must never panic; every TLV a
//! parsed image lists lies inside the input.
#![no_main]

use std::sync::OnceLock;

use edgeward_boot::mcuboot::Image;
use edgeward_core::keys::{PublicKey, SigningKey};
use libfuzzer_sys::fuzz_target;

fn key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let der = rcgen::KeyPair::generate().expect("keygen").serialize_der();
        SigningKey::from_pkcs8_der(&der).expect("key").public_key()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(image) = Image::parse(data) else {
        return;
    };
    for t in image.protected.iter().chain(&image.unprotected) {
        assert!(t.offset + t.len <= data.len());
    }
    let _ = image.security_counter();
    let _ = image.hardware();
    let _ = image.verify(key());
});
