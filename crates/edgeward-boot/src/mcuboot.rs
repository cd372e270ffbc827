//! MCUboot images as `imgtool sign` writes them: a 32-byte header, the image, a protected
//! TLV area (covered by the hash: security counter, dependencies, custom TLVs) and an
//! unprotected one (the SHA-256, the key hash or key, the signature).
//!
//! [`Image::parse`] checks every offset and length against the buffer; [`Image::verify`]
//! recomputes the hash and checks the signature (ECDSA P-256 over the hash, or Ed25519 over
//! the hash or, with `SIG_PURE`, over the hashed bytes), exactly as MCUboot's bootloader.
//! Little-endian images only; encrypted and compressed images are refused.

use std::fmt;

use edgeward_core::{keys::PublicKey, rawsig, sha256};

/// Largest image accepted (MCUboot images fill a flash slot; 64 MiB is far above any MCU).
pub const MAX_IMAGE_BYTES: usize = 64 * 1024 * 1024;
/// The header's magic number.
pub const IMAGE_MAGIC: u32 = 0x96f3_b83d;
/// Size of the fixed header.
pub const HEADER_SIZE: usize = 32;
/// Magic of the unprotected TLV area.
pub const TLV_INFO_MAGIC: u16 = 0x6907;
/// Magic of the protected TLV area.
pub const TLV_PROT_INFO_MAGIC: u16 = 0x6908;

/// TLV: SHA-256 of the public key (SubjectPublicKeyInfo DER).
pub const TLV_KEYHASH: u16 = 0x01;
/// TLV: the public key itself.
pub const TLV_PUBKEY: u16 = 0x02;
/// TLV: SHA-256 of header, image and protected TLVs.
pub const TLV_SHA256: u16 = 0x10;
/// TLV: ECDSA signature (DER).
pub const TLV_ECDSA_SIG: u16 = 0x22;
/// TLV: Ed25519 signature.
pub const TLV_ED25519: u16 = 0x24;
/// TLV: the signature covers the hashed bytes themselves (pure Ed25519).
pub const TLV_SIG_PURE: u16 = 0x25;
/// Protected TLV: security counter (u32).
pub const TLV_SEC_CNT: u16 = 0x50;
/// Protected vendor TLV Edgeward reads as the image's hardware class (ASCII), set with
/// `imgtool sign --custom-tlv 0xa0 CLASS`.
pub const TLV_EDGEWARD_HARDWARE: u16 = 0x00a0;

const F_ENCRYPTED: u32 = 0x4 | 0x8;
const F_COMPRESSED: u32 = 0x200 | 0x400 | 0x800;

/// Why an image was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum McubootError {
    /// The bytes are not a well-formed image.
    #[error("malformed MCUboot image: {0}")]
    Malformed(String),
    /// A well-formed image using something Edgeward does not accept.
    #[error("unsupported MCUboot image: {0}")]
    Unsupported(String),
    /// The recomputed hash differs from the image's SHA-256 TLV.
    #[error("MCUboot image hash mismatch: {0}")]
    Integrity(String),
    /// The image names another key than the trusted one.
    #[error("MCUboot key mismatch: {0}")]
    KeyMismatch(String),
    /// No signature verifies under the trusted key.
    #[error("MCUboot signature does not verify: {0}")]
    BadSignature(String),
}

fn malformed(m: impl Into<String>) -> McubootError {
    McubootError::Malformed(m.into())
}

/// The image version, `major.minor.revision+build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Major.
    pub major: u8,
    /// Minor.
    pub minor: u8,
    /// Revision.
    pub revision: u16,
    /// Build number.
    pub build: u32,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{}.{}+{}",
            self.major, self.minor, self.revision, self.build
        )
    }
}

/// The fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Load address.
    pub load_addr: u32,
    /// Header size (the image starts here).
    pub hdr_size: u16,
    /// Size of the protected TLV area, its info header included (0 when absent).
    pub protect_tlv_size: u16,
    /// Image size.
    pub img_size: u32,
    /// Flags.
    pub flags: u32,
    /// Version.
    pub version: Version,
}

/// One TLV: its type and where its value lies in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tlv {
    /// Type.
    pub kind: u16,
    /// Offset of the value.
    pub offset: usize,
    /// Length of the value.
    pub len: usize,
}

/// A parsed image borrowing its bytes.
#[derive(Debug, Clone)]
pub struct Image<'a> {
    bytes: &'a [u8],
    /// The header.
    pub header: Header,
    /// Protected TLVs (covered by the hash).
    pub protected: Vec<Tlv>,
    /// Unprotected TLVs.
    pub unprotected: Vec<Tlv>,
    hashed_len: usize,
}

/// What a verified image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    /// SHA-256 over header, image and protected TLVs (what MCUboot measures).
    pub hash: [u8; 32],
    /// The version.
    pub version: Version,
    /// The security counter TLV, if present.
    pub security_counter: Option<u32>,
    /// The Edgeward hardware-class TLV, if present.
    pub hardware: Option<String>,
    /// Image size in bytes (without header and TLVs).
    pub img_size: u32,
    /// Whether the signature is pure Ed25519 over the hashed bytes.
    pub pure: bool,
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(off..off.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(off..off.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Parses the TLVs of the area at `start` with `magic`; returns them and the area's end.
fn parse_area(
    b: &[u8],
    start: usize,
    magic: u16,
    what: &str,
) -> Result<(Vec<Tlv>, usize), McubootError> {
    let found = u16_at(b, start).ok_or_else(|| {
        malformed(format!(
            "the {what} TLV area is missing (the file ends at {})",
            b.len()
        ))
    })?;
    if found != magic {
        return Err(malformed(format!(
            "the {what} TLV area at offset {start} has magic {found:#06x} (expected {magic:#06x})"
        )));
    }
    let total = u16_at(b, start + 2).map(usize::from).unwrap_or(0);
    let end = start
        .checked_add(total)
        .filter(|&e| total >= 4 && e <= b.len())
        .ok_or_else(|| {
            malformed(format!(
                "the {what} TLV area claims {total} bytes from offset {start}, beyond the file ({} bytes)",
                b.len()
            ))
        })?;
    let mut tlvs = Vec::new();
    let mut off = start + 4;
    while off < end {
        let (Some(kind), Some(len)) = (u16_at(b, off), u16_at(b, off + 2)) else {
            return Err(malformed(format!(
                "a {what} TLV header at offset {off} is cut off"
            )));
        };
        let value = off + 4;
        let next = value + usize::from(len);
        if next > end {
            return Err(malformed(format!(
                "{what} TLV {kind:#06x} at offset {off} ({len} bytes) overruns its area (ends at {end})"
            )));
        }
        tlvs.push(Tlv {
            kind,
            offset: value,
            len: usize::from(len),
        });
        off = next;
    }
    Ok((tlvs, end))
}

impl<'a> Image<'a> {
    /// Parses `bytes` (bounded by [`MAX_IMAGE_BYTES`]); trailing bytes after the TLVs (slot
    /// padding, the trailer) are allowed.
    pub fn parse(bytes: &'a [u8]) -> Result<Image<'a>, McubootError> {
        if bytes.len() > MAX_IMAGE_BYTES {
            return Err(malformed(format!(
                "{} bytes exceeds the limit of {MAX_IMAGE_BYTES}",
                bytes.len()
            )));
        }
        if bytes.len() < HEADER_SIZE {
            return Err(malformed(format!(
                "{} bytes is shorter than the {HEADER_SIZE}-byte header",
                bytes.len()
            )));
        }
        let r32 = |o| u32_at(bytes, o).unwrap_or(0);
        let r16 = |o| u16_at(bytes, o).unwrap_or(0);
        let magic = r32(0);
        if magic != IMAGE_MAGIC {
            if magic.swap_bytes() == IMAGE_MAGIC {
                return Err(McubootError::Unsupported(
                    "big-endian image (imgtool --endian big)".into(),
                ));
            }
            return Err(malformed(format!(
                "bad magic {magic:#010x} (expected {IMAGE_MAGIC:#010x}); not an MCUboot image"
            )));
        }
        let header = Header {
            load_addr: r32(4),
            hdr_size: r16(8),
            protect_tlv_size: r16(10),
            img_size: r32(12),
            flags: r32(16),
            version: Version {
                major: bytes[20],
                minor: bytes[21],
                revision: r16(22),
                build: r32(24),
            },
        };
        if usize::from(header.hdr_size) < HEADER_SIZE {
            return Err(malformed(format!(
                "header size {} is below {HEADER_SIZE}",
                header.hdr_size
            )));
        }
        if header.flags & F_ENCRYPTED != 0 {
            return Err(McubootError::Unsupported("encrypted image".into()));
        }
        if header.flags & F_COMPRESSED != 0 {
            return Err(McubootError::Unsupported("compressed image".into()));
        }
        let image_end = usize::from(header.hdr_size)
            .checked_add(header.img_size as usize)
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                malformed(format!(
                    "header size {} + image size {} exceeds the file ({} bytes)",
                    header.hdr_size,
                    header.img_size,
                    bytes.len()
                ))
            })?;
        let (protected, hashed_len) = if header.protect_tlv_size > 0 {
            let (tlvs, end) = parse_area(bytes, image_end, TLV_PROT_INFO_MAGIC, "protected")?;
            if end - image_end != usize::from(header.protect_tlv_size) {
                return Err(malformed(format!(
                    "the header says the protected TLVs take {} bytes, the area says {}",
                    header.protect_tlv_size,
                    end - image_end
                )));
            }
            (tlvs, end)
        } else {
            if u16_at(bytes, image_end) == Some(TLV_PROT_INFO_MAGIC) {
                return Err(malformed(
                    "a protected TLV area is present but the header gives it no size",
                ));
            }
            (Vec::new(), image_end)
        };
        let (unprotected, _) = parse_area(bytes, hashed_len, TLV_INFO_MAGIC, "unprotected")?;
        Ok(Image {
            bytes,
            header,
            protected,
            unprotected,
            hashed_len,
        })
    }

    fn value(&self, t: &Tlv) -> &'a [u8] {
        &self.bytes[t.offset..t.offset + t.len]
    }

    /// The one protected TLV of `kind`, if any (a repeated one is malformed).
    fn protected_one(&self, kind: u16) -> Result<Option<&'a [u8]>, McubootError> {
        let mut found = self.protected.iter().filter(|t| t.kind == kind);
        let first = found.next().map(|t| self.value(t));
        if found.next().is_some() {
            return Err(malformed(format!(
                "protected TLV {kind:#06x} appears twice"
            )));
        }
        Ok(first)
    }

    /// The security counter TLV, if present.
    pub fn security_counter(&self) -> Result<Option<u32>, McubootError> {
        match self.protected_one(TLV_SEC_CNT)? {
            None => Ok(None),
            Some(v) => v
                .try_into()
                .map(|a: [u8; 4]| Some(u32::from_le_bytes(a)))
                .map_err(|_| {
                    malformed(format!(
                        "security counter TLV of {} bytes (expected 4)",
                        v.len()
                    ))
                }),
        }
    }

    /// The Edgeward hardware-class TLV, if present.
    pub fn hardware(&self) -> Result<Option<String>, McubootError> {
        match self.protected_one(TLV_EDGEWARD_HARDWARE)? {
            None => Ok(None),
            Some(v) => {
                let s = std::str::from_utf8(v)
                    .map_err(|_| malformed("the hardware-class TLV is not UTF-8"))?;
                edgeward_core::statement::validate_claim_name("hardware-class TLV", s)
                    .map_err(|e| malformed(e.to_string()))?;
                Ok(Some(s.to_string()))
            }
        }
    }

    /// Verifies the image under `key`: the hash, the key hash (or key), the signature.
    pub fn verify(&self, key: &PublicKey) -> Result<VerifiedImage, McubootError> {
        let hashed = &self.bytes[..self.hashed_len];
        let hash = sha256(hashed);
        let pure = self.unprotected.iter().any(|t| t.kind == TLV_SIG_PURE);
        let mut hash_tlvs = self.unprotected.iter().filter(|t| t.kind == TLV_SHA256);
        match (hash_tlvs.next(), hash_tlvs.next()) {
            (Some(t), None) => {
                if self.value(t) != hash {
                    return Err(McubootError::Integrity(format!(
                        "SHA-256 over header, image and protected TLVs is {}, the image says {}: the image was changed after signing",
                        hex::encode(hash),
                        hex::encode(self.value(t))
                    )));
                }
            }
            (Some(_), Some(_)) => return Err(malformed("two SHA-256 TLVs")),
            (None, _) if pure => {}
            (None, _) => {
                let other = self
                    .unprotected
                    .iter()
                    .find(|t| matches!(t.kind, 0x11 | 0x12))
                    .map(|t| format!("SHA-{} TLV", if t.kind == 0x11 { 384 } else { 512 }));
                return Err(match other {
                    Some(o) => {
                        McubootError::Unsupported(format!("{o} (Edgeward verifies SHA-256 images)"))
                    }
                    None => malformed("no SHA-256 TLV"),
                });
            }
        }
        let spki = key.to_spki_der();
        let key_hash = sha256(&spki);
        for t in &self.unprotected {
            let v = self.value(t);
            if t.kind == TLV_KEYHASH && v != key_hash {
                return Err(McubootError::KeyMismatch(format!(
                    "signed by the key with hash {}, the trusted key {} has hash {}",
                    hex::encode(v),
                    key.fingerprint(),
                    hex::encode(key_hash)
                )));
            }
            if t.kind == TLV_PUBKEY && v != spki {
                return Err(McubootError::KeyMismatch(format!(
                    "the image carries another public key than the trusted key {}",
                    key.fingerprint()
                )));
            }
        }
        let (sig_kind, alg) = match key {
            PublicKey::P256(_) => (TLV_ECDSA_SIG, "ECDSA P-256"),
            PublicKey::Ed25519(_) => (TLV_ED25519, "Ed25519"),
            PublicKey::Rsa(_) => {
                return Err(McubootError::Unsupported(
                    "RSA keys (Edgeward verifies ECDSA P-256 and Ed25519 images)".into(),
                ))
            }
        };
        if pure && sig_kind != TLV_ED25519 {
            return Err(McubootError::Unsupported(
                "SIG_PURE with a non-Ed25519 key".into(),
            ));
        }
        let mut last_error = None;
        for t in self.unprotected.iter().filter(|t| t.kind == sig_kind) {
            let sig = self.value(t);
            let result = match key {
                PublicKey::P256(_) => rawsig::verify_digest(key, &hash, strip_der_padding(sig)),
                _ if pure => rawsig::verify_message(key, hashed, sig),
                _ => rawsig::verify_message(key, &hash, sig),
            };
            match result {
                Ok(()) => {
                    return Ok(VerifiedImage {
                        hash,
                        version: self.header.version,
                        security_counter: self.security_counter()?,
                        hardware: self.hardware()?,
                        img_size: self.header.img_size,
                        pure,
                    })
                }
                Err(e) => last_error = Some(e.to_string()),
            }
        }
        Err(McubootError::BadSignature(last_error.unwrap_or_else(
            || {
                let kinds: Vec<String> = self
                    .unprotected
                    .iter()
                    .map(|t| format!("{:#04x}", t.kind))
                    .collect();
                format!(
                    "the image has no {alg} signature TLV (TLVs: {})",
                    kinds.join(", ")
                )
            },
        )))
    }
}

/// `imgtool --pad-sig` pads ECDSA signatures with zeros to a fixed length: cut them off
/// after the DER SEQUENCE's own length (short form; P-256 signatures are < 128 bytes).
fn strip_der_padding(sig: &[u8]) -> &[u8] {
    match sig {
        [0x30, len, ..] if *len < 0x80 && sig.len() > usize::from(*len) + 2 => {
            let (der, pad) = sig.split_at(usize::from(*len) + 2);
            if pad.iter().all(|&b| b == 0) {
                der
            } else {
                sig
            }
        }
        _ => sig,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal(img: &[u8], prot: &[(u16, &[u8])], unprot: &[(u16, &[u8])]) -> Vec<u8> {
        let tlv_area = |magic: u16, tlvs: &[(u16, &[u8])]| {
            let mut body = Vec::new();
            for (k, v) in tlvs {
                body.extend_from_slice(&k.to_le_bytes());
                body.extend_from_slice(&(v.len() as u16).to_le_bytes());
                body.extend_from_slice(v);
            }
            let mut out = magic.to_le_bytes().to_vec();
            out.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
            out.extend(body);
            out
        };
        let p = if prot.is_empty() {
            Vec::new()
        } else {
            tlv_area(TLV_PROT_INFO_MAGIC, prot)
        };
        let mut b = Vec::new();
        b.extend_from_slice(&IMAGE_MAGIC.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&32u16.to_le_bytes());
        b.extend_from_slice(&(p.len() as u16).to_le_bytes());
        b.extend_from_slice(&(img.len() as u32).to_le_bytes());
        b.extend_from_slice(&[0u8; 16]);
        b.extend_from_slice(img);
        b.extend(p);
        let hash = sha256(&b);
        let mut u: Vec<(u16, &[u8])> = vec![(TLV_SHA256, &hash)];
        u.extend_from_slice(unprot);
        b.extend(tlv_area(TLV_INFO_MAGIC, &u));
        b
    }

    #[test]
    fn parses_and_hashes_a_minimal_image() {
        let b = minimal(b"hello", &[(TLV_SEC_CNT, &7u32.to_le_bytes())], &[]);
        let img = Image::parse(&b).unwrap();
        assert_eq!(img.security_counter().unwrap(), Some(7));
        let key = edgeward_core::keys::SigningKey::from_pkcs8_der(&test_p256_pkcs8()).unwrap();
        let err = img.verify(&key.public_key()).unwrap_err();
        assert!(matches!(err, McubootError::BadSignature(_)), "{err}");
    }

    #[test]
    fn refuses_bounds_violations() {
        let b = minimal(b"hello", &[], &[]);
        for cut in [0, 10, 31, 36, b.len() - 1] {
            assert!(Image::parse(&b[..cut]).is_err(), "cut at {cut}");
        }
        let mut big = b.clone();
        big[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Image::parse(&big),
            Err(McubootError::Malformed(_))
        ));
        let mut enc = b.clone();
        enc[16] = 0x4;
        assert!(matches!(
            Image::parse(&enc),
            Err(McubootError::Unsupported(_))
        ));
    }

    fn test_p256_pkcs8() -> Vec<u8> {
        rcgen::KeyPair::generate().unwrap().serialize_der()
    }
}
