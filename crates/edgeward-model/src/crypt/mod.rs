//! Encrypted model weights: a container whose payload is a STREAM of AES-256-GCM chunks
//! and whose random file key is wrapped, per recipient device, with HPKE (RFC 9180) to the
//! device's P-256 key. Decryption does the key agreement inside the device's secure element
//! and yields plaintext only in zeroizing memory, after everything authenticated.
//!
//! [`container`] parses and writes the header, [`hpke`] wraps and unwraps file keys,
//! [`stream`] encrypts and decrypts the payload, [`envelope`] ties them into
//! encrypt / decrypt / rewrap. The format is documented in `docs/encrypted-models.md`.

mod aead;
pub mod container;
pub mod envelope;
mod error;
pub mod hpke;
mod plaintext;
pub mod source;
pub mod stream;

pub use container::Header;
pub use envelope::{
    decrypt, decrypt_file_to, encrypt, open_bytes, open_file, open_file_key, open_file_with_key,
    read_header, rewrap, EncryptOptions, RecipientKey,
};
pub use error::CryptError;
pub use plaintext::Plaintext;
pub use source::{FilePayload, PayloadSource};
