//! The `pkcs11` backend: any PKCS#11 token (SE050, ATECC608 via its PKCS#11 shim, YubiHSM,
//! a cloud HSM; SoftHSM2 in tests) through the `cryptoki` crate. Private and sealing keys
//! are generated inside the token with `CKA_TOKEN`, `CKA_SENSITIVE` and not
//! `CKA_EXTRACTABLE`, so they never leave it.
//!
//! Object mapping (labels; `CKA_ID` equals the label for keys):
//! * key pair in slot S: `CKO_PRIVATE_KEY` + `CKO_PUBLIC_KEY` labelled `edgeward:key:S`;
//! * sealing key: `CKO_SECRET_KEY` (`CKK_AES`, 256 bits) labelled `edgeward:seal`, generated
//!   on first use, used with `CKM_AES_GCM`;
//! * certificate in slot S: `CKO_DATA` labelled `edgeward:cert:S` (`CKA_APPLICATION`
//!   `edgeward`), the DER in `CKA_VALUE`;
//! * counter N: `CKO_DATA` labelled `edgeward:counter:N`; time floor: `CKO_DATA` labelled
//!   `edgeward:time-floor`; both an 8-byte big-endian `CKA_VALUE` updated read-check-write.
//!
//! Tokens without `CKM_ECDSA_SHA256` are handled by hashing on the host and signing with
//! `CKM_ECDSA`; the token's raw `r‖s` is converted to DER. ECDH derives a session-only
//! `CKK_GENERIC_SECRET` with `CKM_ECDH1_DERIVE` (null KDF), reads its value (the shared
//! x-coordinate) and destroys it.

use std::{
    path::{Path, PathBuf},
    sync::{Mutex, MutexGuard, OnceLock},
};

use cryptoki::{
    context::{CInitializeArgs, Pkcs11},
    error::{Error as CkError, RvError},
    mechanism::{
        aead::GcmParams,
        eddsa::{EddsaParams, EddsaSignatureScheme},
        elliptic_curve::{EcKdf, Ecdh1DeriveParams},
        Mechanism, MechanismType,
    },
    object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle},
    session::{Session, UserType},
    slot::Slot,
    types::AuthPin,
};
use edgeward_core::keys::PublicKey;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{
    checks,
    names::check_name,
    sealed::{encode_sealed_blob, no_sealing_key, not_authentic, parse_sealed_blob, NONCE_LEN},
    KeyAlgorithm, SeError, SecureElement,
};

const BACKEND: &str = "pkcs11";
/// DER of the P-256 curve OID (`CKA_EC_PARAMS`).
const P256_PARAMS: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
/// DER of the Ed25519 OID (`CKA_EC_PARAMS` for `CKK_EC_EDWARDS`).
const ED25519_PARAMS: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
const SEAL_LABEL: &str = "edgeward:seal";
const TIME_FLOOR_LABEL: &str = "edgeward:time-floor";
const SEAL_AAD: &[u8] = b"edgeward-se/pkcs11/seal/v1";
/// Version byte of a sealed blob: version ‖ 12-byte IV ‖ AES-GCM ciphertext ‖ 16-byte tag.
/// Largest certificate stored.
pub const MAX_CERTIFICATE_LEN: usize = 16 * 1024;

/// The process-wide context for a PKCS#11 module. PKCS#11 allows one `C_Initialize` per
/// process, so every element (and a test inspecting the token) shares it.
pub fn shared_context(module: &Path) -> Result<Pkcs11, SeError> {
    static CONTEXTS: OnceLock<Mutex<Vec<(PathBuf, Pkcs11)>>> = OnceLock::new();
    let mut contexts = CONTEXTS
        .get_or_init(|| Mutex::new(Vec::new()))
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    let key = module
        .canonicalize()
        .map_err(|e| backend_error(format!("PKCS#11 module {}: {e}", module.display())))?;
    if let Some((_, ctx)) = contexts.iter().find(|(p, _)| *p == key) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(&key)
        .map_err(|e| backend_error(format!("cannot load PKCS#11 module {}: {e}", key.display())))?;
    match ctx.initialize(CInitializeArgs::OsThreads) {
        Ok(()) | Err(CkError::AlreadyInitialized) => {}
        Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(e) => return Err(ck("C_Initialize", e)),
    }
    contexts.push((key, ctx.clone()));
    Ok(ctx)
}

/// A token data object and its `CKA_VALUE`.
type DataObject = (ObjectHandle, Vec<u8>);

/// An element on a PKCS#11 token (see the module documentation for the object mapping).
pub struct Pkcs11Element {
    ctx: Pkcs11,
    slot: Slot,
    token: String,
    session: Mutex<Session>,
}

impl std::fmt::Debug for Pkcs11Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Element")
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Element {
    /// Opens the token labelled `token` in `module` and logs in with `pin`.
    pub fn open(module: &Path, token: &str, pin: AuthPin) -> Result<Self, SeError> {
        let ctx = shared_context(module)?;
        let slots = ctx
            .get_slots_with_initialized_token()
            .map_err(|e| ck("C_GetSlotList", e))?;
        let mut found = None;
        for slot in slots {
            let info = ctx
                .get_token_info(slot)
                .map_err(|e| ck("C_GetTokenInfo", e))?;
            if info.label().trim_end() == token {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| {
            SeError::InvalidArgument(format!(
                "no initialised token labelled `{token}` in {}",
                module.display()
            ))
        })?;
        let session = ctx
            .open_rw_session(slot)
            .map_err(|e| ck("C_OpenSession", e))?;
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(CkError::Pkcs11(RvError::PinIncorrect, _)) => {
                return Err(SeError::InvalidArgument(format!(
                    "wrong user PIN for token `{token}`"
                )))
            }
            Err(e) => return Err(ck("C_Login", e)),
        }
        Ok(Pkcs11Element {
            ctx,
            slot,
            token: token.to_owned(),
            session: Mutex::new(session),
        })
    }

    /// The token's label.
    pub fn token(&self) -> &str {
        &self.token
    }

    fn session(&self) -> MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_mechanism(&self, mechanism: MechanismType) -> Result<bool, SeError> {
        Ok(self
            .ctx
            .get_mechanism_list(self.slot)
            .map_err(|e| ck("C_GetMechanismList", e))?
            .contains(&mechanism))
    }

    /// The private key in `slot` and its algorithm.
    fn private_key(
        &self,
        session: &Session,
        slot: &str,
    ) -> Result<(ObjectHandle, KeyAlgorithm), SeError> {
        check_name("slot", slot)?;
        let handle = find_one(session, ObjectClass::PRIVATE_KEY, &key_label(slot))?
            .ok_or_else(|| SeError::NoSuchKey(slot.to_owned()))?;
        let attrs = session
            .get_attributes(handle, &[AttributeType::KeyType])
            .map_err(|e| ck("C_GetAttributeValue", e))?;
        let algorithm = match attrs.first() {
            Some(Attribute::KeyType(t)) if *t == KeyType::EC => KeyAlgorithm::P256,
            Some(Attribute::KeyType(t)) if *t == KeyType::EC_EDWARDS => KeyAlgorithm::Ed25519,
            _ => {
                return Err(backend_error(format!(
                    "the private key labelled {} is neither EC nor EdDSA",
                    key_label(slot)
                )))
            }
        };
        Ok((handle, algorithm))
    }

    fn ecdsa_sign(
        &self,
        session: &Session,
        key: ObjectHandle,
        digest: &[u8; 32],
    ) -> Result<Vec<u8>, SeError> {
        let raw = session
            .sign(&Mechanism::Ecdsa, key, digest)
            .map_err(|e| ck("C_Sign (CKM_ECDSA)", e))?;
        let sig = p256::ecdsa::Signature::from_slice(&raw).map_err(|_| {
            backend_error(format!(
                "the token returned a {}-byte ECDSA signature (64-byte r‖s expected)",
                raw.len()
            ))
        })?;
        Ok(sig.to_der().as_bytes().to_vec())
    }

    /// Every token data object labelled `label` with its value. Usually one; two after a
    /// crash between writing a new value and destroying the old one.
    fn read_data(&self, session: &Session, label: &str) -> Result<Vec<DataObject>, SeError> {
        let handles = session
            .find_objects(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .map_err(|e| ck("C_FindObjects", e))?;
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            let attrs = session
                .get_attributes(handle, &[AttributeType::Value])
                .map_err(|e| ck("C_GetAttributeValue", e))?;
            match attrs.into_iter().next() {
                Some(Attribute::Value(v)) => out.push((handle, v)),
                _ => return Err(backend_error(format!("data object {label} has no value"))),
            }
        }
        Ok(out)
    }

    /// Replaces the value of data object `label`: creates the new object first, then
    /// destroys the `old` ones (many tokens, SoftHSM2 among them, refuse to modify
    /// `CKA_VALUE`). A crash in between leaves both, and readers take the largest counter.
    fn write_data(
        &self,
        session: &Session,
        label: &str,
        old: &[DataObject],
        value: &[u8],
    ) -> Result<(), SeError> {
        session
            .create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Application(b"edgeward".to_vec()),
                Attribute::Value(value.to_vec()),
            ])
            .map_err(|e| ck("C_CreateObject", e))?;
        for (handle, _) in old {
            session
                .destroy_object(*handle)
                .map_err(|e| ck("C_DestroyObject", e))?;
        }
        Ok(())
    }

    /// The largest value among the data objects labelled `label` (0 when there is none).
    fn read_u64(&self, session: &Session, label: &str) -> Result<(Vec<DataObject>, u64), SeError> {
        let objects = self.read_data(session, label)?;
        let mut max = 0;
        for (_, bytes) in &objects {
            let array: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                backend_error(format!(
                    "data object {label} holds {} bytes (8 expected)",
                    bytes.len()
                ))
            })?;
            max = max.max(u64::from_be_bytes(array));
        }
        Ok((objects, max))
    }

    fn seal_key(&self, session: &Session, create: bool) -> Result<Option<ObjectHandle>, SeError> {
        if let Some(handle) = find_one(session, ObjectClass::SECRET_KEY, SEAL_LABEL)? {
            return Ok(Some(handle));
        }
        if !create {
            return Ok(None);
        }
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Label(SEAL_LABEL.as_bytes().to_vec()),
                    Attribute::Id(SEAL_LABEL.as_bytes().to_vec()),
                ],
            )
            .map(Some)
            .map_err(|e| ck("C_GenerateKey (sealing key)", e))
    }
}

impl SecureElement for Pkcs11Element {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn generate_key(&self, slot: &str, algorithm: KeyAlgorithm) -> Result<PublicKey, SeError> {
        check_name("slot", slot)?;
        let session = self.session();
        let label = key_label(slot);
        if find_one(&session, ObjectClass::PRIVATE_KEY, &label)?.is_some() {
            return Err(SeError::SlotOccupied(slot.to_owned()));
        }
        let (mechanism, params, derive) = match algorithm {
            KeyAlgorithm::P256 => (Mechanism::EccKeyPairGen, P256_PARAMS, true),
            KeyAlgorithm::Ed25519 => {
                if !self.has_mechanism(MechanismType::ECC_EDWARDS_KEY_PAIR_GEN)?
                    || !self.has_mechanism(MechanismType::EDDSA)?
                {
                    return Err(SeError::Unsupported {
                        backend: BACKEND,
                        what: format!("Ed25519 on token `{}` (no CKM_EDDSA)", self.token),
                    });
                }
                (Mechanism::EccEdwardsKeyPairGen, ED25519_PARAMS, false)
            }
        };
        let id = label.as_bytes().to_vec();
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(params.to_vec()),
            Attribute::Label(id.clone()),
            Attribute::Id(id.clone()),
        ];
        let mut private_template = vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(id.clone()),
            Attribute::Id(id),
        ];
        if derive {
            private_template.push(Attribute::Derive(true));
        }
        let (public, _private) = session
            .generate_key_pair(&mechanism, &public_template, &private_template)
            .map_err(|e| ck("C_GenerateKeyPair", e))?;
        read_public_key(&session, public, algorithm)
    }

    fn public_key(&self, slot: &str) -> Result<PublicKey, SeError> {
        let session = self.session();
        let (_, algorithm) = self.private_key(&session, slot)?;
        let public =
            find_one(&session, ObjectClass::PUBLIC_KEY, &key_label(slot))?.ok_or_else(|| {
                backend_error(format!(
                    "token holds no public key labelled {}",
                    key_label(slot)
                ))
            })?;
        read_public_key(&session, public, algorithm)
    }

    fn sign(&self, slot: &str, message: &[u8]) -> Result<Vec<u8>, SeError> {
        let session = self.session();
        let (key, algorithm) = self.private_key(&session, slot)?;
        match algorithm {
            KeyAlgorithm::P256 => self.ecdsa_sign(&session, key, &Sha256::digest(message).into()),
            KeyAlgorithm::Ed25519 => session
                .sign(
                    &Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure)),
                    key,
                    message,
                )
                .map_err(|e| ck("C_Sign (CKM_EDDSA)", e)),
        }
    }

    fn sign_digest(&self, slot: &str, digest: &[u8; 32]) -> Result<Vec<u8>, SeError> {
        let session = self.session();
        let (key, algorithm) = self.private_key(&session, slot)?;
        if algorithm != KeyAlgorithm::P256 {
            return Err(not_p256(slot, "sign a digest"));
        }
        self.ecdsa_sign(&session, key, digest)
    }

    fn ecdh(&self, slot: &str, peer_sec1: &[u8]) -> Result<Zeroizing<[u8; 32]>, SeError> {
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        let session = self.session();
        let (key, algorithm) = self.private_key(&session, slot)?;
        if algorithm != KeyAlgorithm::P256 {
            return Err(not_p256(slot, "do ECDH"));
        }
        let peer = checks::parse_peer(peer_sec1)?;
        let peer_point = peer.to_encoded_point(false);
        let params = Ecdh1DeriveParams::new(EcKdf::null(), peer_point.as_bytes());
        let derived = session
            .derive_key(
                &Mechanism::Ecdh1Derive(params),
                key,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::GENERIC_SECRET),
                    Attribute::ValueLen(32.into()),
                    Attribute::Token(false),
                    Attribute::Sensitive(false),
                    Attribute::Extractable(true),
                ],
            )
            .map_err(|e| ck("C_DeriveKey (CKM_ECDH1_DERIVE)", e))?;
        let value = session.get_attributes(derived, &[AttributeType::Value]);
        // The session object would vanish with the session anyway; destroy it now.
        let destroyed = session.destroy_object(derived);
        let value = value.map_err(|e| ck("C_GetAttributeValue (shared secret)", e))?;
        destroyed.map_err(|e| ck("C_DestroyObject (shared secret)", e))?;
        let mut out = Zeroizing::new([0u8; 32]);
        match value.into_iter().next() {
            Some(Attribute::Value(v)) if v.len() == 32 => {
                let v = Zeroizing::new(v);
                out.copy_from_slice(&v);
                Ok(out)
            }
            _ => Err(backend_error("the token returned no 32-byte ECDH secret")),
        }
    }

    fn random(&self, out: &mut [u8]) -> Result<(), SeError> {
        let session = self.session();
        for chunk in out.chunks_mut(1024) {
            session
                .generate_random_slice(chunk)
                .map_err(|e| ck("C_GenerateRandom", e))?;
        }
        Ok(())
    }

    fn counter(&self, name: &str) -> Result<u64, SeError> {
        check_name("counter", name)?;
        let session = self.session();
        Ok(self.read_u64(&session, &counter_label(name))?.1)
    }

    fn increment_counter(&self, name: &str) -> Result<u64, SeError> {
        check_name("counter", name)?;
        let session = self.session();
        let label = counter_label(name);
        let (old, value) = self.read_u64(&session, &label)?;
        let next = value
            .checked_add(1)
            .ok_or_else(|| backend_error(format!("counter `{name}` is exhausted")))?;
        self.write_data(&session, &label, &old, &next.to_be_bytes())?;
        Ok(next)
    }

    fn time_floor(&self) -> Result<u64, SeError> {
        let session = self.session();
        Ok(self.read_u64(&session, TIME_FLOOR_LABEL)?.1)
    }

    fn raise_time_floor(&self, unix_seconds: u64) -> Result<u64, SeError> {
        let session = self.session();
        let (old, current) = self.read_u64(&session, TIME_FLOOR_LABEL)?;
        if unix_seconds <= current {
            return Ok(current);
        }
        self.write_data(
            &session,
            TIME_FLOOR_LABEL,
            &old,
            &unix_seconds.to_be_bytes(),
        )?;
        Ok(unix_seconds)
    }

    fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SeError> {
        checks::check_seal_len(plaintext)?;
        let session = self.session();
        let key = self
            .seal_key(&session, true)?
            .ok_or_else(|| backend_error("no sealing key"))?;
        let mut iv = [0u8; NONCE_LEN];
        session
            .generate_random_slice(&mut iv)
            .map_err(|e| ck("C_GenerateRandom", e))?;
        let mut iv_param = iv;
        let params = GcmParams::new(&mut iv_param, SEAL_AAD, 128.into())
            .map_err(|e| ck("CKM_AES_GCM parameters", e))?;
        let ciphertext = session
            .encrypt(&Mechanism::AesGcm(params), key, plaintext)
            .map_err(|e| ck("C_Encrypt (CKM_AES_GCM)", e))?;
        Ok(encode_sealed_blob(&iv, &ciphertext))
    }

    fn unseal(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SeError> {
        let parsed = parse_sealed_blob(blob)?;
        let session = self.session();
        let key = self.seal_key(&session, false)?.ok_or_else(no_sealing_key)?;
        let mut iv = *parsed.nonce;
        let params = GcmParams::new(&mut iv, SEAL_AAD, 128.into())
            .map_err(|e| ck("CKM_AES_GCM parameters", e))?;
        session
            .decrypt(&Mechanism::AesGcm(params), key, parsed.ciphertext)
            .map(Zeroizing::new)
            // Tokens report a failed tag check differently (SoftHSM2: CKR_GENERAL_ERROR);
            // every refusal of a well-formed blob is a rejection.
            .map_err(|_| not_authentic())
    }

    fn store_certificate(&self, slot: &str, der: &[u8]) -> Result<(), SeError> {
        check_name("slot", slot)?;
        checks::check_certificate_len(der, MAX_CERTIFICATE_LEN)?;
        let session = self.session();
        let label = cert_label(slot);
        let old = self.read_data(&session, &label)?;
        self.write_data(&session, &label, &old, der)
    }

    fn certificate(&self, slot: &str) -> Result<Option<Vec<u8>>, SeError> {
        check_name("slot", slot)?;
        let session = self.session();
        // After a crash mid-replacement two may exist; the later-created one is unknown, so
        // a certificate is only returned when it is unambiguous.
        let mut objects = self.read_data(&session, &cert_label(slot))?;
        match objects.len() {
            0 => Ok(None),
            1 => Ok(objects.pop().map(|(_, v)| v)),
            n => Err(backend_error(format!(
                "{n} certificates labelled {} (store the certificate again)",
                cert_label(slot)
            ))),
        }
    }

    fn destroy_key(&self, slot: &str) -> Result<(), SeError> {
        check_name("slot", slot)?;
        let session = self.session();
        let label = key_label(slot);
        let private = find_all(&session, ObjectClass::PRIVATE_KEY, &label)?;
        if private.is_empty() {
            return Err(SeError::NoSuchKey(slot.to_owned()));
        }
        let public = find_all(&session, ObjectClass::PUBLIC_KEY, &label)?;
        let certificates = self.read_data(&session, &cert_label(slot))?;
        // The private key first: once it is gone the slot cannot sign, even if the rest fails.
        let handles = private
            .into_iter()
            .chain(public)
            .chain(certificates.into_iter().map(|(handle, _)| handle));
        for handle in handles {
            session
                .destroy_object(handle)
                .map_err(|e| ck("C_DestroyObject", e))?;
        }
        Ok(())
    }

    fn wipe(&self) -> Result<(), SeError> {
        let session = self.session();
        let objects = session
            .find_objects(&[Attribute::Token(true)])
            .map_err(|e| ck("C_FindObjects", e))?;
        // The sealing key first: from then on no sealed blob opens, even if the wipe stops.
        let mut ordered = Vec::with_capacity(objects.len());
        for handle in objects {
            let label = object_label(&session, handle)?;
            let seal = label == SEAL_LABEL;
            if seal || label.starts_with("edgeward:key:") || label.starts_with("edgeward:cert:") {
                ordered.push((!seal, handle));
            }
        }
        ordered.sort_by_key(|(later, _)| *later);
        for (_, handle) in ordered {
            session
                .destroy_object(handle)
                .map_err(|e| ck("C_DestroyObject", e))?;
        }
        Ok(())
    }
}

/// Every token object of `class` labelled `label`.
fn find_all(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Vec<ObjectHandle>, SeError> {
    session
        .find_objects(&[
            Attribute::Class(class),
            Attribute::Token(true),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .map_err(|e| ck("C_FindObjects", e))
}

fn find_one(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Option<ObjectHandle>, SeError> {
    let found = find_all(session, class, label)?;
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        _ => Err(backend_error(format!(
            "the token holds {} objects labelled {label} of one class (expected one)",
            found.len()
        ))),
    }
}

fn object_label(session: &Session, handle: ObjectHandle) -> Result<String, SeError> {
    let attrs = session
        .get_attributes(handle, &[AttributeType::Label])
        .map_err(|e| ck("C_GetAttributeValue (label)", e))?;
    Ok(match attrs.into_iter().next() {
        Some(Attribute::Label(l)) => String::from_utf8_lossy(&l).into_owned(),
        _ => String::new(),
    })
}

fn read_public_key(
    session: &Session,
    handle: ObjectHandle,
    algorithm: KeyAlgorithm,
) -> Result<PublicKey, SeError> {
    let attrs = session
        .get_attributes(handle, &[AttributeType::EcPoint])
        .map_err(|e| ck("C_GetAttributeValue (CKA_EC_POINT)", e))?;
    let Some(Attribute::EcPoint(point)) = attrs.into_iter().next() else {
        return Err(backend_error("the public key has no CKA_EC_POINT"));
    };
    let raw = unwrap_octet_string(&point);
    let bad = |what: &str| {
        backend_error(format!(
            "CKA_EC_POINT is not a valid {what} point ({} bytes)",
            point.len()
        ))
    };
    match algorithm {
        KeyAlgorithm::P256 => p256::ecdsa::VerifyingKey::from_sec1_bytes(raw)
            .map(PublicKey::P256)
            .map_err(|_| bad("P-256")),
        KeyAlgorithm::Ed25519 => {
            let bytes: &[u8; 32] = raw.try_into().map_err(|_| bad("Ed25519"))?;
            ed25519_dalek::VerifyingKey::from_bytes(bytes)
                .map(PublicKey::Ed25519)
                .map_err(|_| bad("Ed25519"))
        }
    }
}

/// `CKA_EC_POINT` is a DER OCTET STRING per the standard; some tokens return the raw point.
fn unwrap_octet_string(point: &[u8]) -> &[u8] {
    match point {
        [0x04, len, rest @ ..] if usize::from(*len) == rest.len() && *len < 0x80 => rest,
        _ => point,
    }
}

fn key_label(slot: &str) -> String {
    format!("edgeward:key:{slot}")
}

fn cert_label(slot: &str) -> String {
    format!("edgeward:cert:{slot}")
}

fn counter_label(name: &str) -> String {
    format!("edgeward:counter:{name}")
}

fn not_p256(slot: &str, what: &str) -> SeError {
    SeError::InvalidArgument(format!(
        "slot `{slot}` holds an Ed25519 key, which cannot {what} (P-256 only)"
    ))
}

fn ck(what: &str, e: CkError) -> SeError {
    backend_error(format!("{what}: {e}"))
}

fn backend_error(message: impl Into<String>) -> SeError {
    SeError::Backend {
        backend: BACKEND,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_octet_string_is_unwrapped_only_when_well_formed() {
        let raw = [4u8; 65];
        let mut wrapped = vec![0x04, 65];
        wrapped.extend_from_slice(&raw);
        assert_eq!(unwrap_octet_string(&wrapped), &raw[..]);
        assert_eq!(unwrap_octet_string(&raw), &raw[..]);
        assert_eq!(unwrap_octet_string(&[0x04, 5, 1]), &[0x04, 5, 1][..]);
    }
}
