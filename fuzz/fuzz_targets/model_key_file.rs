//! Model key files and trigger-set predictions files: parsing never panics; a key that
//! parses writes a file that parses back to the same key.
#![no_main]

use edgeward_model::{model_key::ModelKey, watermark::triggers::parse_predictions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(key) = ModelKey::parse(data) {
        let again = ModelKey::parse(&key.to_file_bytes()).expect("own key file parses");
        assert_eq!(again.id(), key.id());
    }
    let _ = parse_predictions(data);
});
