//! The operations on whole containers: encrypt to recipients, open the file key with the
//! device's secure element, decrypt in memory, and rewrap (add or remove recipients by
//! rewriting only the header).

use std::{fs::File, io::Write};

use edgeward_core::keys::PublicKey;
use edgeward_se::SecureElement;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::{
    container::{
        FixedHeader, Header, Recipient, DEFAULT_CHUNK_SIZE, MAC_LEN, MAX_CHUNK_SIZE,
        MAX_HEADER_LEN, MAX_PLAINTEXT_LEN, MAX_RECIPIENTS, MIN_CHUNK_SIZE, SALT_LEN, VERSION,
        VERSION_SPKI_IDS, WRAPPED_KEY_LEN,
    },
    hpke,
    plaintext::Plaintext,
    source::{FilePayload, PayloadSource},
    stream::StreamKey,
    CryptError,
};

/// HPKE `info` of every file-key wrap (the recipient id is the AEAD associated data).
pub const WRAP_INFO: &[u8] = b"edgeward/model-crypt/v1 file key";
/// HKDF info of the header MAC key.
const HEADER_MAC_INFO: &[u8] = b"edgeward/model-crypt/v1 header";
/// Fingerprint prefixes given to `--remove` must be at least this many hex digits.
pub const MIN_FINGERPRINT_HEX: usize = 8;

/// The random 256-bit key that encrypts one container's payload.
pub type FileKey = Zeroizing<[u8; 32]>;

/// How to encrypt.
#[derive(Debug, Clone, Copy)]
pub struct EncryptOptions {
    /// Plaintext bytes per chunk.
    pub chunk_size: u32,
    /// Container format version: [`VERSION`], or [`VERSION_SPKI_IDS`] for devices whose
    /// Edgeward predates version 2.
    pub version: u8,
}

impl Default for EncryptOptions {
    fn default() -> Self {
        EncryptOptions {
            chunk_size: DEFAULT_CHUNK_SIZE,
            version: VERSION,
        }
    }
}

/// A recipient key ready to wrap to: its P-256 point and the key it came from.
#[derive(Clone, Debug)]
pub struct RecipientKey {
    key: p256::PublicKey,
    public: PublicKey,
}

impl RecipientKey {
    /// Accepts a P-256 public key (from a device certificate or `edgeward se pubkey`).
    pub fn new(key: &PublicKey) -> Result<Self, CryptError> {
        match key {
            PublicKey::P256(vk) => Ok(RecipientKey {
                key: p256::PublicKey::from_affine(*vk.as_affine())
                    .map_err(|e| CryptError::BadRecipient(e.to_string()))?,
                public: key.clone(),
            }),
            other => Err(CryptError::BadRecipient(format!(
                "{} key {}: model encryption needs a P-256 device key",
                other.algorithm(),
                other.fingerprint()
            ))),
        }
    }

    /// The short fingerprint (as `PublicKey::fingerprint`).
    pub fn fingerprint(&self) -> String {
        self.public.fingerprint()
    }
}

/// A recipient id in a container of format `version`: SHA-256 of the key's PEM text (the
/// key id every Edgeward message shows) from version 2, SHA-256 of its SubjectPublicKeyInfo
/// DER in version 1.
pub fn recipient_id(key: &PublicKey, version: u8) -> [u8; 32] {
    if version == VERSION_SPKI_IDS {
        Sha256::digest(key.to_spki_der()).into()
    } else {
        Sha256::digest(key.to_pem().as_bytes()).into()
    }
}

/// Encrypts `plaintext` to every recipient.
pub fn encrypt(
    plaintext: &[u8],
    recipients: &[RecipientKey],
    options: EncryptOptions,
) -> Result<Vec<u8>, CryptError> {
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&options.chunk_size) {
        return Err(CryptError::InvalidArgument(format!(
            "chunk size {} is outside {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}",
            options.chunk_size
        )));
    }
    if options.version != VERSION && options.version != VERSION_SPKI_IDS {
        return Err(CryptError::InvalidArgument(format!(
            "format version {} (writable: {VERSION_SPKI_IDS} and {VERSION})",
            options.version
        )));
    }
    let plaintext_len = plaintext.len() as u64;
    if plaintext_len > MAX_PLAINTEXT_LEN {
        return Err(CryptError::InvalidArgument(format!(
            "the model is {plaintext_len} bytes; the container holds at most {MAX_PLAINTEXT_LEN}"
        )));
    }
    let mut file_key: FileKey = Zeroizing::new([0u8; 32]);
    let mut salt = [0u8; SALT_LEN];
    getrandom(file_key.as_mut())?;
    getrandom(&mut salt)?;
    let fixed = FixedHeader {
        version: options.version,
        chunk_size: options.chunk_size,
        plaintext_len,
        salt,
    };
    let mut header = Header {
        fixed,
        recipients: Vec::new(),
        mac: [0; MAC_LEN],
    };
    add_recipients(&mut header, &file_key, recipients)?;
    seal_header(&mut header, &file_key)?;
    let mut out = header.encode();
    out.extend_from_slice(&StreamKey::derive(&file_key, &header.fixed)?.encrypt(plaintext)?);
    Ok(out)
}

/// Unwraps the file key with the element's key in `slot` (the key agreement runs inside the
/// element) and checks the header MAC.
pub fn open_file_key(
    header: &Header,
    se: &dyn SecureElement,
    slot: &str,
) -> Result<FileKey, CryptError> {
    let device = se.public_key(slot)?;
    let id = recipient_id(&device, header.fixed.version);
    let PublicKey::P256(vk) = &device else {
        return Err(CryptError::BadRecipient(format!(
            "the key in slot `{slot}` is {}, not P-256",
            device.algorithm()
        )));
    };
    let entry = header
        .recipients
        .iter()
        .find(|r| r.id == id)
        .ok_or_else(|| CryptError::NotARecipient {
            device: hex::encode(&id[..8]),
            slot: slot.to_string(),
            recipients: header
                .recipients
                .iter()
                .map(Recipient::fingerprint)
                .collect(),
        })?;
    let pk_r = p256::PublicKey::from_affine(*vk.as_affine())
        .map_err(|e| CryptError::BadRecipient(e.to_string()))?;
    let opened = hpke::open(
        &entry.enc,
        &hpke::sec1_uncompressed(&pk_r),
        |enc| Ok(se.ecdh(slot, enc)?),
        WRAP_INFO,
        &entry.id,
        &entry.wrapped_key,
    )
    .map_err(|e| match e {
        CryptError::WrapRejected => CryptError::UnwrapFailed(entry.fingerprint()),
        other => other,
    })?;
    let mut file_key: FileKey = Zeroizing::new([0u8; 32]);
    if opened.len() != file_key.len() {
        return Err(CryptError::UnwrapFailed(entry.fingerprint()));
    }
    file_key.copy_from_slice(&opened);
    if !header_mac_matches(header, &file_key)? {
        return Err(CryptError::HeaderTampered);
    }
    Ok(file_key)
}

/// Decrypts a whole container held in memory with the device's element. The plaintext is
/// returned only when the header and every chunk authenticated.
pub fn decrypt(
    container: &[u8],
    se: &dyn SecureElement,
    slot: &str,
) -> Result<Plaintext, CryptError> {
    let (key, payload) = open_bytes(container, se, slot)?;
    key.decrypt(payload)
}

/// Opens a container held in memory without decrypting its payload: parses the header,
/// unwraps the file key with the element and checks the header MAC. Returns the payload key
/// and the payload.
pub fn open_bytes<'c>(
    container: &'c [u8],
    se: &dyn SecureElement,
    slot: &str,
) -> Result<(StreamKey, &'c [u8]), CryptError> {
    let (header, header_len) = Header::parse(container)?;
    let file_key = open_file_key(&header, se, slot)?;
    let key = StreamKey::derive(&file_key, &header.fixed)?;
    Ok((key, &container[header_len..]))
}

/// Opens a container file without reading its payload: parses the header, unwraps the file
/// key with the element and checks the header MAC. Returns the payload key and the payload
/// (positioned reads of the file), ready for [`StreamKey::decrypt_with`] or
/// [`StreamKey::decrypt_to`].
pub fn open_file<'f>(
    file: &'f File,
    se: &dyn SecureElement,
    slot: &str,
) -> Result<(StreamKey, FilePayload<'f>), CryptError> {
    let (header, header_len, len) = read_header(file)?;
    let file_key = open_file_key(&header, se, slot)?;
    let key = StreamKey::derive(&file_key, &header.fixed)?;
    Ok((key, FilePayload::new(file, header_len, len - header_len)))
}

/// Opens a container file with a file key already unwrapped (by [`open_file_key`], in
/// another process): parses the header, checks its MAC with `file_key` and returns the
/// payload key and the payload. Without the element; the key proves nothing about the
/// model's signature, which the caller must have checked before the key was released.
pub fn open_file_with_key<'f>(
    file: &'f File,
    file_key: &[u8; 32],
) -> Result<(StreamKey, FilePayload<'f>), CryptError> {
    let (header, header_len, len) = read_header(file)?;
    let file_key: FileKey = Zeroizing::new(*file_key);
    if !header_mac_matches(&header, &file_key)? {
        return Err(CryptError::HeaderTampered);
    }
    let key = StreamKey::derive(&file_key, &header.fixed)?;
    Ok((key, FilePayload::new(file, header_len, len - header_len)))
}

/// Reads and parses a container file's header: the header, its length and the file's.
pub fn read_header(file: &File) -> Result<(Header, u64, u64), CryptError> {
    let read_failed = |source| CryptError::Io {
        what: "reading the container",
        source,
    };
    let len = file.metadata().map_err(read_failed)?.len();
    // At most MAX_HEADER_LEN, a usize.
    let mut head = vec![0u8; len.min(MAX_HEADER_LEN as u64) as usize];
    FilePayload::new(file, 0, len)
        .read_at(0, &mut head)
        .map_err(read_failed)?;
    let (header, header_len) = Header::parse(&head)?;
    Ok((header, header_len as u64, len))
}

/// Decrypts the container `file` to `out` with bounded memory (see
/// [`StreamKey::decrypt_to`]: the length is checked before anything is written, only
/// authenticated chunks are written, but a modified chunk is found only when reached).
/// Returns the number of plaintext bytes written.
pub fn decrypt_file_to(
    file: &File,
    se: &dyn SecureElement,
    slot: &str,
    out: &mut dyn Write,
) -> Result<u64, CryptError> {
    let (key, payload) = open_file(file, se, slot)?;
    key.decrypt_to(&payload, out)
}

/// A rewrapped header.
#[derive(Debug)]
pub struct Rewrapped {
    /// The new header (the payload after the old header is kept byte for byte).
    pub header: Vec<u8>,
    /// Length of the old header: the payload starts there in the old file.
    pub old_header_len: usize,
    /// Fingerprints added.
    pub added: Vec<String>,
    /// Fingerprints removed.
    pub removed: Vec<String>,
}

/// Adds and removes recipients. `head` is the start of the container (at least its
/// header); the file key is opened with the element's key in `slot`. `remove` holds hex
/// fingerprint prefixes (at least [`MIN_FINGERPRINT_HEX`] digits) that must each match
/// exactly one recipient. Adding a recipient already present is an error, and so is
/// removing the last one.
pub fn rewrap(
    head: &[u8],
    se: &dyn SecureElement,
    slot: &str,
    add: &[RecipientKey],
    remove: &[String],
) -> Result<Rewrapped, CryptError> {
    let (mut header, old_header_len) = Header::parse(head)?;
    let file_key = open_file_key(&header, se, slot)?;
    let mut removed = Vec::new();
    for prefix in remove {
        let i = find_by_fingerprint(&header, prefix)?;
        removed.push(header.recipients.remove(i).fingerprint());
    }
    add_recipients(&mut header, &file_key, add)?;
    let added = header.recipients[header.recipients.len() - add.len()..]
        .iter()
        .map(Recipient::fingerprint)
        .collect();
    if header.recipients.is_empty() {
        return Err(CryptError::InvalidArgument(
            "removing every recipient would leave a container nobody can open".into(),
        ));
    }
    seal_header(&mut header, &file_key)?;
    Ok(Rewrapped {
        header: header.encode(),
        old_header_len,
        added,
        removed,
    })
}

fn find_by_fingerprint(header: &Header, prefix: &str) -> Result<usize, CryptError> {
    let prefix = prefix.to_ascii_lowercase();
    if prefix.len() < MIN_FINGERPRINT_HEX || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(CryptError::InvalidArgument(format!(
            "`{prefix}` is not a key id (at least {MIN_FINGERPRINT_HEX} hex digits)"
        )));
    }
    let matches: Vec<usize> = header
        .recipients
        .iter()
        .enumerate()
        .filter(|(_, r)| hex::encode(r.id).starts_with(&prefix))
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [i] => Ok(*i),
        [] => Err(CryptError::InvalidArgument(format!(
            "no recipient has key id {prefix}; recipients: {}",
            header
                .recipients
                .iter()
                .map(Recipient::fingerprint)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        _ => Err(CryptError::InvalidArgument(format!(
            "key id {prefix} matches {} recipients; give more digits",
            matches.len()
        ))),
    }
}

fn add_recipients(
    header: &mut Header,
    file_key: &FileKey,
    recipients: &[RecipientKey],
) -> Result<(), CryptError> {
    if header.recipients.is_empty() && recipients.is_empty() {
        return Err(CryptError::InvalidArgument(
            "at least one recipient is needed".into(),
        ));
    }
    for r in recipients {
        let id = recipient_id(&r.public, header.fixed.version);
        if header.recipients.iter().any(|o| o.id == id) {
            return Err(CryptError::InvalidArgument(format!(
                "{} is already a recipient",
                r.fingerprint()
            )));
        }
        if header.recipients.len() >= MAX_RECIPIENTS {
            return Err(CryptError::InvalidArgument(format!(
                "a container lists at most {MAX_RECIPIENTS} recipients"
            )));
        }
        let (enc, sealed) = hpke::seal(&r.key, WRAP_INFO, &id, file_key.as_ref())?;
        let wrapped_key: [u8; WRAPPED_KEY_LEN] = sealed
            .as_slice()
            .try_into()
            .map_err(|_| CryptError::Backend("unexpected HPKE ciphertext length".into()))?;
        header.recipients.push(Recipient {
            id,
            enc,
            wrapped_key,
        });
    }
    Ok(())
}

fn header_mac(header: &Header, file_key: &FileKey) -> Result<Hmac<Sha256>, CryptError> {
    let mut mac_key = Zeroizing::new([0u8; 32]);
    Hkdf::<Sha256>::new(None, file_key.as_ref())
        .expand(HEADER_MAC_INFO, mac_key.as_mut())
        .map_err(|_| CryptError::Backend("HKDF expansion failed".into()))?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(mac_key.as_ref())
        .map_err(|_| CryptError::Backend("HMAC key rejected".into()))?;
    mac.update(&header.authenticated_bytes());
    Ok(mac)
}

fn seal_header(header: &mut Header, file_key: &FileKey) -> Result<(), CryptError> {
    header.mac = header_mac(header, file_key)?.finalize().into_bytes().into();
    Ok(())
}

fn header_mac_matches(header: &Header, file_key: &FileKey) -> Result<bool, CryptError> {
    // `verify_slice` compares in constant time.
    Ok(header_mac(header, file_key)?
        .verify_slice(&header.mac)
        .is_ok())
}

fn getrandom(out: &mut [u8]) -> Result<(), CryptError> {
    use rand_core::RngCore;
    rand_core::OsRng
        .try_fill_bytes(out)
        .map_err(|e| CryptError::Backend(format!("random number generator: {e}")))
}
