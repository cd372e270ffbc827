//! safetensors files (the keyed shuffle and the watermark read them from untrusted hands):
//! parsing never panics; a file that parses shuffles and unshuffles back to itself bit for
//! bit; unshuffling and watermark detection of arbitrary bytes fail cleanly.
#![no_main]

use edgeward_model::{
    internal::tensors::TensorFile,
    model_key::ModelKey,
    shuffle::{shuffle, unshuffle},
    watermark::whitebox::detect,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = ModelKey::from_secret(zeroize::Zeroizing::new([7; 32]));
    let _ = unshuffle(data, &key);
    let _ = detect(data, &key, "fc1.weight", None);
    let Ok(file) = TensorFile::parse(data) else {
        return;
    };
    let mut end = 8 + file.header().len();
    for t in file.tensors() {
        assert_eq!(t.range.start, end, "tensors are contiguous");
        end = t.range.end;
    }
    assert_eq!(end, data.len(), "tensors cover the data");
    if let Ok(shuffled) = shuffle(data, &key) {
        assert_eq!(unshuffle(&shuffled, &key).expect("own shuffle opens"), data);
    }
});
