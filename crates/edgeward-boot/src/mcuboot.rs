//! MCUboot images as `imgtool sign` writes them: a 32-byte header, the image, a protected
//! TLV area (covered by the hash: security counter, dependencies, custom TLVs) and an
//! unprotected one (the SHA-256, the key hash or key, the signature).
//!
//! [`Image::parse`] checks every offset and length against the buffer and reads the header
//! flags; [`Image::verify`] recomputes the hash and checks the key and signature exactly as
//! MCUboot's bootloader does, for every key type imgtool signs with: ECDSA P-256 (SHA-256)
//! and P-384 (SHA-384), Ed25519 over the hash (SHA-256 or SHA-512) or, with `SIG_PURE`, over
//! the hashed bytes themselves (SHA-512 key hash), and RSA-2048/3072 (PSS, SHA-256; the key
//! hash is over the PKCS#1 key, not the SubjectPublicKeyInfo). Little-endian images only.
//! Compressed images verify (the signature covers the compressed payload); encrypted ones are
//! refused, since their hash covers the plaintext only the device's key reveals.

use std::fmt;

use edgeward_core::{digest::HashAlg, keys::PublicKey, raw_signature, sha256};

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
/// TLV: SHA-384 of the same.
pub const TLV_SHA384: u16 = 0x11;
/// TLV: SHA-512 of the same.
pub const TLV_SHA512: u16 = 0x12;
/// TLV: RSA-2048 PSS signature.
pub const TLV_RSA2048: u16 = 0x20;
/// TLV: ECDSA signature (DER).
pub const TLV_ECDSA_SIG: u16 = 0x22;
/// TLV: RSA-3072 PSS signature.
pub const TLV_RSA3072: u16 = 0x23;
/// TLV: Ed25519 signature.
pub const TLV_ED25519: u16 = 0x24;
/// TLV: the signature covers the hashed bytes themselves (pure Ed25519).
pub const TLV_SIG_PURE: u16 = 0x25;
/// Protected TLV: a dependency on another image (image id, minimum version).
pub const TLV_DEPENDENCY: u16 = 0x40;
/// Protected TLV: security counter (u32).
pub const TLV_SEC_CNT: u16 = 0x50;
/// Protected vendor TLV Edgeward reads as the image's hardware class (ASCII), set with
/// `imgtool sign --custom-tlv 0xa0 CLASS`.
pub const TLV_EDGEWARD_HARDWARE: u16 = 0x00a0;

/// Header flags as imgtool sets them, with the names MCUboot gives them.
pub const FLAGS: [(u32, &str); 9] = [
    (0x0000_0001, "PIC"),
    (0x0000_0004, "ENCRYPTED_AES128"),
    (0x0000_0008, "ENCRYPTED_AES256"),
    (0x0000_0010, "NON_BOOTABLE"),
    (0x0000_0020, "RAM_LOAD"),
    (0x0000_0100, "ROM_FIXED"),
    (0x0000_0200, "COMPRESSED_LZMA1"),
    (0x0000_0400, "COMPRESSED_LZMA2"),
    (0x0000_0800, "COMPRESSED_ARM_THUMB"),
];
const F_ENCRYPTED: u32 = 0x4 | 0x8;
const F_NON_BOOTABLE: u32 = 0x10;
const F_RAM_LOAD: u32 = 0x20;
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

/// A dependency on another image: it must be present at at least this version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dependency {
    /// The other image's id.
    pub image_id: u8,
    /// The lowest acceptable version.
    pub min_version: Version,
}

/// What the header and protected TLVs say about an image (read without verifying it, so a
/// refusal can still say what the image claims to be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// The version.
    pub version: Version,
    /// The raw header flags.
    pub flags: u32,
    /// The names of the flags set ([`FLAGS`]); unknown bits as `0x…`.
    pub flag_names: Vec<String>,
    /// The load address (meaningful with `RAM_LOAD`).
    pub load_addr: u32,
    /// Image size in bytes (without header and TLVs).
    pub img_size: u32,
    /// The security counter TLV, if present.
    pub security_counter: Option<u32>,
    /// The Edgeward hardware-class TLV, if present.
    pub hardware: Option<String>,
    /// Dependency TLVs.
    pub dependencies: Vec<Dependency>,
}

impl ImageInfo {
    /// Whether the image is marked as not to be booted (a data or dependency-only image).
    pub fn non_bootable(&self) -> bool {
        self.flags & F_NON_BOOTABLE != 0
    }
    /// Whether the bootloader copies the image to RAM at [`ImageInfo::load_addr`].
    pub fn ram_load(&self) -> bool {
        self.flags & F_RAM_LOAD != 0
    }
    /// Whether the payload is encrypted.
    pub fn encrypted(&self) -> bool {
        self.flags & F_ENCRYPTED != 0
    }
    /// Whether the payload is compressed.
    pub fn compressed(&self) -> bool {
        self.flags & F_COMPRESSED != 0
    }
}

/// How the image names its signer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyReference {
    /// A hash of the public key (`KEYHASH`, imgtool's default), hex.
    Hash(String),
    /// The public key itself (`PUBKEY`, `imgtool sign --public-key-format full`).
    Full,
}

/// What a verified image says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedImage {
    /// SHA-256 over header, image and protected TLVs: what measured boot extends, whatever
    /// hash the image itself records.
    pub hash: [u8; 32],
    /// The hash the image records and the signature covers.
    pub image_hash: Vec<u8>,
    /// Its algorithm.
    pub hash_alg: HashAlg,
    /// The signature algorithm, e.g. `ecdsa-p384-sha384`, `ed25519-pure`, `rsa3072-pss-sha256`.
    pub signature_alg: String,
    /// How the image named its key.
    pub key_reference: KeyReference,
    /// Header and protected-TLV facts.
    pub info: ImageInfo,
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

/// What a key type calls for in an image: its signature TLV(s), the hashes allowed, how its
/// key is encoded for the key hash and `PUBKEY`, and its name.
struct KeyProfile {
    sig_tlvs: &'static [u16],
    hashes: &'static [HashAlg],
    encoded: Vec<u8>,
    name: String,
}

fn key_profile(key: &PublicKey) -> Result<KeyProfile, McubootError> {
    let spki = key.to_spki_der();
    Ok(match key {
        PublicKey::P256(_) => KeyProfile {
            sig_tlvs: &[TLV_ECDSA_SIG],
            hashes: &[HashAlg::Sha256],
            encoded: spki,
            name: "ECDSA P-256".into(),
        },
        PublicKey::P384(_) => KeyProfile {
            sig_tlvs: &[TLV_ECDSA_SIG],
            hashes: &[HashAlg::Sha384],
            encoded: spki,
            name: "ECDSA P-384".into(),
        },
        PublicKey::Ed25519(_) => KeyProfile {
            sig_tlvs: &[TLV_ED25519],
            hashes: &[HashAlg::Sha256, HashAlg::Sha512],
            encoded: spki,
            name: "Ed25519".into(),
        },
        PublicKey::Rsa(k) => {
            use rsa::{pkcs1::EncodeRsaPublicKey, traits::PublicKeyParts};
            let bits = k.n().bits();
            let tlv: &'static [u16] = match bits {
                2048 => &[TLV_RSA2048],
                3072 => &[TLV_RSA3072],
                _ => {
                    return Err(McubootError::Unsupported(format!(
                        "RSA-{bits} keys (MCUboot signs with RSA-2048 and RSA-3072)"
                    )))
                }
            };
            KeyProfile {
                sig_tlvs: tlv,
                hashes: &[HashAlg::Sha256],
                // MCUboot hashes and embeds an RSA key as PKCS#1 RSAPublicKey.
                encoded: k
                    .to_pkcs1_der()
                    .map(|d| d.as_bytes().to_vec())
                    .map_err(|e| McubootError::Unsupported(format!("RSA key encoding: {e}")))?,
                name: format!("RSA-{bits}"),
            }
        }
        PublicKey::P521(_) => {
            return Err(McubootError::Unsupported(
                "ECDSA P-521 keys (MCUboot signs with P-256 and P-384)".into(),
            ))
        }
    })
}

/// The key type an image's signature TLV stands for, for messages.
fn signature_tlv_name(kind: u16, len: usize) -> Option<&'static str> {
    match kind {
        TLV_ECDSA_SIG if len > 80 => Some("ECDSA P-384"),
        TLV_ECDSA_SIG => Some("ECDSA P-256"),
        TLV_ED25519 => Some("Ed25519"),
        TLV_RSA2048 => Some("RSA-2048"),
        TLV_RSA3072 => Some("RSA-3072"),
        _ => None,
    }
}

fn hash_tlv_alg(kind: u16) -> Option<HashAlg> {
    match kind {
        TLV_SHA256 => Some(HashAlg::Sha256),
        TLV_SHA384 => Some(HashAlg::Sha384),
        TLV_SHA512 => Some(HashAlg::Sha512),
        _ => None,
    }
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
    // The area stays inside the file and every TLV inside the area: a TLV reaching past its
    // area would be read from bytes the area (and, for the protected one, the hash) does
    // not cover.
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
        // The hash covers the header, the image and the protected area: the header's size of
        // that area and the area's own length must agree, or the bytes hashed and the TLVs
        // trusted as protected (security counter, hardware class, dependencies) could differ.
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
            // With no size in the header the hash stops at the image: TLVs in such an area
            // would look protected while no signature covers them.
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
        // Two security counters (or hardware classes) would let each reader pick the one
        // that suits it: one value or none.
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

    /// Dependency TLVs: image id (1 byte, 3 reserved), then the minimum version.
    pub fn dependencies(&self) -> Result<Vec<Dependency>, McubootError> {
        self.protected
            .iter()
            .filter(|t| t.kind == TLV_DEPENDENCY)
            .map(|t| {
                let v = self.value(t);
                if v.len() != 12 {
                    return Err(malformed(format!(
                        "dependency TLV of {} bytes (expected 12)",
                        v.len()
                    )));
                }
                Ok(Dependency {
                    image_id: v[0],
                    min_version: Version {
                        major: v[4],
                        minor: v[5],
                        revision: u16_at(v, 6).unwrap_or(0),
                        build: u32_at(v, 8).unwrap_or(0),
                    },
                })
            })
            .collect()
    }

    /// What the header and protected TLVs claim (nothing verified).
    pub fn info(&self) -> Result<ImageInfo, McubootError> {
        let flags = self.header.flags;
        let mut flag_names: Vec<String> = FLAGS
            .iter()
            .filter(|(bit, _)| flags & bit != 0)
            .map(|(_, name)| (*name).to_string())
            .collect();
        let unknown = FLAGS.iter().fold(flags, |f, (bit, _)| f & !bit);
        if unknown != 0 {
            flag_names.push(format!("{unknown:#010x}"));
        }
        Ok(ImageInfo {
            version: self.header.version,
            flags,
            flag_names,
            load_addr: self.header.load_addr,
            img_size: self.header.img_size,
            security_counter: self.security_counter()?,
            hardware: self.hardware()?,
            dependencies: self.dependencies()?,
        })
    }

    /// The one hash TLV (SHA-256, SHA-384 or SHA-512) and its algorithm.
    fn hash_tlv(&self) -> Result<(HashAlg, &'a [u8]), McubootError> {
        let mut found = self
            .unprotected
            .iter()
            .filter_map(|t| hash_tlv_alg(t.kind).map(|alg| (alg, self.value(t))));
        match (found.next(), found.next()) {
            (Some(one), None) => Ok(one),
            // Two hash TLVs would let an image show one hash to a checker and another to
            // the signature check.
            (Some(_), Some(_)) => Err(malformed("more than one image-hash TLV")),
            (None, _) => Err(malformed("no image-hash TLV (SHA-256, SHA-384 or SHA-512)")),
        }
    }

    /// Verifies the image under `key`, in MCUboot's order: the key type must match the
    /// image's signature TLV, the recorded hash must be the one the key type uses and equal
    /// the recomputed one, the key hash (or embedded key) must name `key`, and a signature
    /// must verify.
    pub fn verify(&self, key: &PublicKey) -> Result<VerifiedImage, McubootError> {
        let info = self.info()?;
        if info.encrypted() {
            // The hash and signature cover the plaintext, which only the device's
            // decryption key reveals: nothing here could be checked against the bytes.
            return Err(McubootError::Unsupported(format!(
                "encrypted image ({}): its hash covers the plaintext, which only the device's decryption key reveals; verify the image before encryption",
                info.flag_names.join(", ")
            )));
        }
        let profile = key_profile(key)?;
        let sig_tlvs: Vec<&Tlv> = self
            .unprotected
            .iter()
            .filter(|t| signature_tlv_name(t.kind, t.len).is_some())
            .collect();
        let ours: Vec<&Tlv> = sig_tlvs
            .iter()
            .copied()
            // P-256 and P-384 share the ECDSA TLV; the signature's length tells them apart.
            .filter(|t| {
                profile.sig_tlvs.contains(&t.kind)
                    && signature_tlv_name(t.kind, t.len) == Some(profile.name.as_str())
            })
            .collect();
        // The key type is decided first: a key hash compared across key types only ever
        // says "mismatch", which hides that the operator passed the wrong kind of key.
        if ours.is_empty() {
            let theirs: Vec<&str> = sig_tlvs
                .iter()
                .filter_map(|t| signature_tlv_name(t.kind, t.len))
                .collect();
            return Err(if theirs.is_empty() {
                McubootError::BadSignature(format!(
                    "the image carries no signature TLV (expected {})",
                    profile.name
                ))
            } else {
                McubootError::KeyMismatch(format!(
                    "the image is signed with {}, the trusted key {} is {}",
                    theirs.join(" and "),
                    key.fingerprint(),
                    profile.name
                ))
            });
        }
        let pure_tlv = self.unprotected.iter().find(|t| t.kind == TLV_SIG_PURE);
        let pure = match pure_tlv {
            None => false,
            // SIG_PURE is a boolean; only "true" changes what is signed.
            Some(t) if self.value(t) == [1] => true,
            Some(_) => return Err(malformed("the SIG_PURE TLV is not the single byte 1")),
        };
        if pure && !matches!(key, PublicKey::Ed25519(_)) {
            return Err(McubootError::Unsupported(format!(
                "a pure signature (SIG_PURE) with an {} key: only Ed25519 signs the image bytes themselves",
                profile.name
            )));
        }
        let hashed = &self.bytes[..self.hashed_len];
        let (hash_alg, recorded) = self.hash_tlv()?;
        // Pure Ed25519 hashes with SHA-512 (imgtool refuses anything else); otherwise the
        // key type fixes the hash, so an image cannot downgrade it.
        let allowed: &[HashAlg] = if pure {
            &[HashAlg::Sha512]
        } else {
            profile.hashes
        };
        if !allowed.contains(&hash_alg) {
            return Err(McubootError::Unsupported(format!(
                "a {} image hash with an {} key{} (MCUboot expects {})",
                hash_alg.name(),
                profile.name,
                if pure { " signing purely" } else { "" },
                allowed
                    .iter()
                    .map(|h| h.name())
                    .collect::<Vec<_>>()
                    .join(" or ")
            )));
        }
        let image_hash = hash_alg.digest(hashed);
        if recorded != image_hash.as_slice() {
            return Err(McubootError::Integrity(format!(
                "{} over header, image and protected TLVs is {}, the image says {}: the image was changed after signing",
                hash_alg.name(),
                hex::encode(&image_hash),
                hex::encode(recorded)
            )));
        }
        let key_hash = hash_alg.digest(&profile.encoded);
        let mut key_reference = None;
        for t in &self.unprotected {
            let v = self.value(t);
            match t.kind {
                TLV_KEYHASH if v != key_hash.as_slice() => {
                    return Err(McubootError::KeyMismatch(format!(
                        "signed by the {} key with {} hash {}, the trusted key {} has hash {}",
                        profile.name,
                        hash_alg.name(),
                        hex::encode(v),
                        key.fingerprint(),
                        hex::encode(&key_hash)
                    )))
                }
                TLV_KEYHASH => key_reference = Some(KeyReference::Hash(hex::encode(v))),
                TLV_PUBKEY if v != profile.encoded.as_slice() => {
                    return Err(McubootError::KeyMismatch(format!(
                        "the image carries another {} public key than the trusted key {}",
                        profile.name,
                        key.fingerprint()
                    )))
                }
                TLV_PUBKEY => key_reference = Some(KeyReference::Full),
                _ => {}
            }
        }
        // MCUboot refuses an image that names no key at all.
        let key_reference = key_reference
            .ok_or_else(|| malformed("no key-hash or public-key TLV names the signer"))?;
        let mut last_error = String::new();
        for t in ours {
            let sig = self.value(t);
            let result = match key {
                PublicKey::P256(_) | PublicKey::P384(_) => raw_signature::verify_prehash(
                    key,
                    hash_alg,
                    &image_hash,
                    strip_der_padding(sig),
                ),
                PublicKey::Rsa(_) => raw_signature::verify_prehash(key, hash_alg, &image_hash, sig),
                _ if pure => raw_signature::verify_message(key, hashed, sig),
                _ => raw_signature::verify_message(key, &image_hash, sig),
            };
            match result {
                Ok(()) => {
                    let signature_alg = match key {
                        PublicKey::Ed25519(_) if pure => "ed25519-pure".to_string(),
                        PublicKey::Ed25519(_) => format!("ed25519-over-{}", hash_alg.name()),
                        PublicKey::Rsa(_) => format!(
                            "{}-pss-{}",
                            profile.name.to_lowercase().replace('-', ""),
                            hash_alg.name()
                        ),
                        other => other.algorithm().to_string(),
                    };
                    let hash = match <[u8; 32]>::try_from(image_hash.as_slice()) {
                        Ok(h) if hash_alg == HashAlg::Sha256 => h,
                        _ => sha256(hashed),
                    };
                    return Ok(VerifiedImage {
                        hash,
                        image_hash,
                        hash_alg,
                        signature_alg,
                        key_reference,
                        version: info.version,
                        security_counter: info.security_counter,
                        hardware: info.hardware.clone(),
                        img_size: info.img_size,
                        info,
                        pure,
                    });
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(McubootError::BadSignature(last_error))
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
        let key = edgeward_core::keys::SigningKey::from_pem(TEST_P256_KEY, None).unwrap();
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
        let mut enc = b;
        enc[16] = 0x4;
        let key = edgeward_core::keys::SigningKey::from_pem(TEST_P256_KEY, None).unwrap();
        let image = Image::parse(&enc).unwrap();
        assert_eq!(image.info().unwrap().flag_names, ["ENCRYPTED_AES128"]);
        assert!(matches!(
            image.verify(&key.public_key()),
            Err(McubootError::Unsupported(_))
        ));
    }

    /// A P-256 key for these unit tests only (made with `openssl genpkey`); no image here is
    /// signed with it.
    const TEST_P256_KEY: &[u8] = b"-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgHGlXp4nUwC3+CDn9
kGPtURFS760oE6auV3iAxiOAqFyhRANCAARPK0xiNzwRvKPHipzXI4rEj2JvWWrs
choJaQ5hbLxXxpXSCsRIqG9VQkhijB6fMfk/T++am0Cho23xxKmd9XRb
-----END PRIVATE KEY-----
";
}
