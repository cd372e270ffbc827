//! The `tpm` backend: a TPM 2.0 (a discrete or firmware TPM through `/dev/tpmrm0`, swtpm in
//! tests) through `tss-esapi`. Keys are generated inside the TPM under a storage key and never
//! leave it; the state directory only holds TPM-wrapped blobs (see `docs/secure-element.md`).
//!
//! * storage key (SRK): a primary ECC P-256 restricted decryption key in the owner hierarchy,
//!   re-created on demand from a template whose `unique` field is a random seed kept in NV
//!   ([`nv::SEED_INDEX`]); a wipe undefines the seed, so every blob made under the old SRK
//!   becomes unloadable;
//! * slot keys: one unrestricted P-256 key per slot with `sign` and `decrypt`, used by
//!   TPM2_Sign (ECDSA over a host SHA-256 digest) and TPM2_ECDH_ZGen;
//! * sealing: a sealed-data object holding a 32-byte AES-256-GCM key used on the host;
//! * counters, time floor: NV indices (see [`nv`]);
//! * PCRs: TPM2_PCR_Extend / TPM2_PCR_Read on the SHA-256 bank.

mod nv;
mod objects;
mod store;

use std::{path::Path, str::FromStr, sync::Mutex};

use aes_gcm::{aead::Aead, Aes256Gcm, KeyInit, Nonce};
use edgeward_core::keys::PublicKey;
use sha2::{Digest as _, Sha256};
use tss_esapi::{
    attributes::SessionAttributesBuilder,
    constants::{
        tss::{TPM2_RH_NULL, TPM2_ST_HASHCHECK},
        SessionType,
    },
    handles::{KeyHandle, ObjectHandle, PcrHandle, SessionHandle},
    interface_types::{algorithm::HashingAlgorithm, resource_handles::Hierarchy},
    structures::{
        Digest, DigestValues, HashScheme, HashcheckTicket, PcrSelectionListBuilder, PcrSlot,
        Private, Public, SensitiveData, Signature, SignatureScheme, SymmetricDefinition,
    },
    traits::{Marshall, UnMarshall},
    tss2_esys::TPMT_TK_HASHCHECK,
    Context, TctiNameConf,
};
use zeroize::Zeroizing;

use crate::{
    checks,
    names::check_name,
    sealed::{encode_sealed_blob, no_sealing_key, not_authentic, parse_sealed_blob, NONCE_LEN},
    KeyAlgorithm, SeError, SecureElement,
};
use nv::PASSWORD;
use store::{Store, MAX_FILE_LEN};

const BACKEND: &str = "tpm";
const SEAL_AAD: &[u8] = b"edgeward-se/tpm/seal/v1";
/// Version byte of a sealed blob: version ‖ 12-byte IV ‖ AES-256-GCM ciphertext ‖ 16-byte tag.
/// Largest certificate stored.
pub const MAX_CERTIFICATE_LEN: usize = 16 * 1024;
/// Number of PCRs addressable through [`SecureElement::extend_pcr`].
pub const PCR_COUNT: u8 = 24;
const SEED_LEN: usize = 32;
const RANDOM_CHUNK: usize = 32;

/// The TPM connection and the storage key while it is loaded.
struct State {
    ctx: Context,
    srk: Option<KeyHandle>,
}

/// An element on a TPM 2.0 (see the module documentation for the object mapping).
pub struct TpmElement {
    tcti: String,
    store: Store,
    state: Mutex<State>,
}

impl std::fmt::Debug for TpmElement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TpmElement")
            .field("tcti", &self.tcti)
            .field("state_dir", &self.store)
            .finish_non_exhaustive()
    }
}

impl TpmElement {
    /// Connects to the TPM named by the TSS TCTI configuration `tcti` and keeps the backend's
    /// blobs in `state_dir` (created 0700 when absent).
    pub fn open(tcti: &str, state_dir: &Path) -> Result<Self, SeError> {
        let conf = TctiNameConf::from_str(tcti)
            .map_err(|e| SeError::InvalidArgument(format!("TCTI configuration `{tcti}`: {e}")))?;
        let store = Store::open(state_dir)?;
        let ctx = Context::new(conf)
            .map_err(|e| backend_error(format!("cannot connect to the TPM at `{tcti}`: {e}")))?;
        Ok(TpmElement {
            tcti: tcti.to_owned(),
            store,
            state: Mutex::new(State { ctx, srk: None }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` with the object `slot`'s key loaded (for diagnostics and tests that drive the
    /// TPM directly, e.g. to check the key's attributes); the key is flushed afterwards.
    pub fn with_loaded_key<R>(
        &self,
        slot: &str,
        f: impl FnOnce(&mut Context, KeyHandle) -> R,
    ) -> Result<R, SeError> {
        self.with_key_state(slot, |state, handle| f(&mut state.ctx, handle))
    }

    fn with_key_state<R>(
        &self,
        slot: &str,
        f: impl FnOnce(&mut State, KeyHandle) -> R,
    ) -> Result<R, SeError> {
        check_name("slot", slot)?;
        let (public, private) = self.read_key_files(slot)?;
        let mut state = self.state();
        let handle = load(&mut state, public, private, || {
            SeError::NoSuchKey(slot.to_owned())
        })?;
        let result = f(&mut state, handle);
        flush(&mut state.ctx, handle)?;
        Ok(result)
    }

    fn key_paths(&self, slot: &str) -> (std::path::PathBuf, std::path::PathBuf) {
        (
            self.store.path("keys", &format!("{slot}.pub")),
            self.store.path("keys", &format!("{slot}.priv")),
        )
    }

    /// The stored public and private parts of `slot`'s key (the private file, written last,
    /// is what makes the slot occupied).
    fn read_key_files(&self, slot: &str) -> Result<(Public, Private), SeError> {
        let (pub_path, priv_path) = self.key_paths(slot);
        let private = self
            .store
            .read(&priv_path, MAX_FILE_LEN)?
            .ok_or_else(|| SeError::NoSuchKey(slot.to_owned()))?;
        let public = self
            .store
            .read(&pub_path, MAX_FILE_LEN)?
            .ok_or_else(|| SeError::NoSuchKey(slot.to_owned()))?;
        decode_blobs(&public, &private, &format!("key in slot `{slot}`"))
    }

    fn with_key<R>(
        &self,
        slot: &str,
        f: impl FnOnce(&mut Context, KeyHandle) -> Result<R, SeError>,
    ) -> Result<R, SeError> {
        self.with_loaded_key(slot, f)?
    }

    /// The sealing key, unsealed from the sealed-data object; created when `create` and absent.
    fn sealing_key(&self, create: bool) -> Result<Option<Zeroizing<[u8; 32]>>, SeError> {
        let pub_path = self.store.path("", "seal.pub");
        let priv_path = self.store.path("", "seal.priv");
        let mut state = self.state();
        let stored = match self.store.read(&priv_path, MAX_FILE_LEN)? {
            Some(private) => self
                .store
                .read(&pub_path, MAX_FILE_LEN)?
                .map(|public| (public, private)),
            None => None,
        };
        if let Some((public, private)) = stored {
            let (public, private) = decode_blobs(&public, &private, "sealing object")?;
            let handle = load(&mut state, public, private, sealing_missing)?;
            let unsealed =
                with_encrypted_session(&mut state, |ctx| ctx.unseal(ObjectHandle::from(handle)));
            flush(&mut state.ctx, handle)?;
            let unsealed = unsealed.map_err(|e| tss("TPM2_Unseal", e))?;
            if unsealed.value().len() != 32 {
                return Err(backend_error(
                    "the sealed-data object does not hold a 32-byte key",
                ));
            }
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(unsealed.value());
            return Ok(Some(key));
        }
        if !create {
            return Ok(None);
        }
        let mut key = Zeroizing::new([0u8; 32]);
        random_into(&mut state.ctx, &mut key[..])?;
        let srk = srk(&mut state, true)?.ok_or_else(sealing_missing)?;
        let sensitive = SensitiveData::try_from(key.to_vec()).map_err(|e| tss("sealed data", e))?;
        let created = state.ctx.execute_with_session(PASSWORD, |ctx| {
            ctx.create(
                srk,
                objects::sealed_template()?,
                None,
                Some(sensitive),
                None,
                None,
            )
            .map_err(|e| tss("TPM2_Create (sealed data)", e))
        })?;
        self.store
            .write(&pub_path, &marshall(&created.out_public)?, true)?;
        self.store
            .write(&priv_path, created.out_private.value(), false)?;
        Ok(Some(key))
    }
}

impl Drop for TpmElement {
    fn drop(&mut self) {
        let mut state = self.state();
        if let Some(srk) = state.srk.take() {
            // Nothing useful to do on failure: the TPM drops transient objects on restart.
            let _ = flush(&mut state.ctx, srk);
        }
    }
}

impl SecureElement for TpmElement {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn generate_key(&self, slot: &str, algorithm: KeyAlgorithm) -> Result<PublicKey, SeError> {
        check_name("slot", slot)?;
        if algorithm == KeyAlgorithm::Ed25519 {
            return Err(SeError::Unsupported {
                backend: BACKEND,
                what: "Ed25519 (TPM 2.0 has no EdDSA)".into(),
            });
        }
        let (pub_path, priv_path) = self.key_paths(slot);
        if self.store.read(&priv_path, MAX_FILE_LEN)?.is_some() {
            return Err(SeError::SlotOccupied(slot.to_owned()));
        }
        let mut state = self.state();
        let srk = srk(&mut state, true)?.ok_or_else(|| backend_error("no storage key"))?;
        let created = state.ctx.execute_with_session(PASSWORD, |ctx| {
            ctx.create(srk, objects::slot_key_template()?, None, None, None, None)
                .map_err(|e| tss("TPM2_Create (P-256 key)", e))
        })?;
        let public = objects::public_key(&created.out_public)?;
        self.store
            .write(&pub_path, &marshall(&created.out_public)?, true)?;
        self.store
            .write(&priv_path, created.out_private.value(), false)
            .map_err(|e| match self.store.read(&priv_path, MAX_FILE_LEN) {
                Ok(Some(_)) => SeError::SlotOccupied(slot.to_owned()),
                _ => e,
            })?;
        Ok(public)
    }

    fn public_key(&self, slot: &str) -> Result<PublicKey, SeError> {
        // Loading proves the TPM accepts the public part as the private part's twin.
        self.with_key(slot, |ctx, handle| {
            let (public, _, _) = ctx
                .read_public(handle)
                .map_err(|e| tss("TPM2_ReadPublic", e))?;
            objects::public_key(&public)
        })
    }

    fn sign(&self, slot: &str, message: &[u8]) -> Result<Vec<u8>, SeError> {
        let digest: [u8; 32] = Sha256::digest(message).into();
        self.sign_digest(slot, &digest)
    }

    fn sign_digest(&self, slot: &str, digest: &[u8; 32]) -> Result<Vec<u8>, SeError> {
        let digest = Digest::try_from(digest.to_vec()).map_err(|e| tss("digest", e))?;
        let ticket = HashcheckTicket::try_from(TPMT_TK_HASHCHECK {
            tag: TPM2_ST_HASHCHECK,
            hierarchy: TPM2_RH_NULL,
            digest: Default::default(),
        })
        .map_err(|e| tss("hashcheck ticket", e))?;
        let scheme = SignatureScheme::EcDsa {
            hash_scheme: HashScheme::new(HashingAlgorithm::Sha256),
        };
        self.with_key(slot, |ctx, handle| {
            let signature = ctx
                .execute_with_session(PASSWORD, |ctx| ctx.sign(handle, digest, scheme, ticket))
                .map_err(|e| tss("TPM2_Sign", e))?;
            match signature {
                Signature::EcDsa(ecc) => objects::der_signature(&ecc),
                _ => Err(backend_error("TPM2_Sign returned a non-ECDSA signature")),
            }
        })
    }

    fn ecdh(&self, slot: &str, peer_sec1: &[u8]) -> Result<Zeroizing<[u8; 32]>, SeError> {
        let peer = checks::parse_peer(peer_sec1)?;
        let point = objects::ecc_point(&peer)?;
        self.with_key_state(slot, |state, handle| {
            let z = with_encrypted_session(state, |ctx| ctx.ecdh_z_gen(handle, point))
                .map_err(|e| tss("TPM2_ECDH_ZGen", e))?;
            let mut shared = Zeroizing::new([0u8; 32]);
            objects::coordinate_into(z.x().value(), &mut shared)?;
            Ok(shared)
        })?
    }

    fn random(&self, out: &mut [u8]) -> Result<(), SeError> {
        random_into(&mut self.state().ctx, out)
    }

    fn counter(&self, name: &str) -> Result<u64, SeError> {
        check_name("counter", name)?;
        let mut state = self.state();
        match nv::counter(&mut state.ctx, name, false)? {
            None => Ok(0),
            Some(counter) => {
                let value = counter.value(&mut state.ctx);
                counter.close(&mut state.ctx)?;
                value
            }
        }
    }

    fn increment_counter(&self, name: &str) -> Result<u64, SeError> {
        check_name("counter", name)?;
        let mut state = self.state();
        let counter = nv::counter(&mut state.ctx, name, true)?
            .ok_or_else(|| backend_error(format!("counter `{name}` was not created")))?;
        let value = counter.increment(&mut state.ctx);
        counter.close(&mut state.ctx)?;
        value
    }

    fn time_floor(&self) -> Result<u64, SeError> {
        let mut state = self.state();
        let Some(handle) = nv::find(&mut state.ctx, nv::TIME_FLOOR_INDEX)? else {
            return Ok(0);
        };
        let value = nv::read_u64(&mut state.ctx, handle);
        nv::close(&mut state.ctx, handle)?;
        Ok(value?.unwrap_or(0))
    }

    fn raise_time_floor(&self, unix_seconds: u64) -> Result<u64, SeError> {
        let mut state = self.state();
        let ctx = &mut state.ctx;
        let handle = match nv::find(ctx, nv::TIME_FLOOR_INDEX)? {
            Some(handle) => handle,
            None => nv::define_ordinary(ctx, nv::TIME_FLOOR_INDEX, 8, false)?,
        };
        let result = nv::read_u64(ctx, handle).and_then(|current| {
            let current = current.unwrap_or(0);
            if unix_seconds > current {
                nv::write_as_owner(ctx, handle, &unix_seconds.to_be_bytes())?;
                Ok(unix_seconds)
            } else {
                Ok(current)
            }
        });
        nv::close(ctx, handle)?;
        result
    }

    fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SeError> {
        checks::check_seal_len(plaintext)?;
        let key = self
            .sealing_key(true)?
            .ok_or_else(|| backend_error("no sealing key"))?;
        let mut iv = [0u8; NONCE_LEN];
        getrandom::getrandom(&mut iv).map_err(|e| backend_error(format!("getrandom: {e}")))?;
        let cipher = Aes256Gcm::new_from_slice(key.as_slice())
            .map_err(|_| backend_error("AES-256-GCM key setup"))?;
        let ciphertext = cipher
            .encrypt(
                Nonce::from_slice(&iv),
                aes_gcm::aead::Payload {
                    msg: plaintext,
                    aad: SEAL_AAD,
                },
            )
            .map_err(|_| backend_error("AES-256-GCM encryption failed"))?;
        Ok(encode_sealed_blob(&iv, &ciphertext))
    }

    fn unseal(&self, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, SeError> {
        let parsed = parse_sealed_blob(blob)?;
        let key = self.sealing_key(false)?.ok_or_else(no_sealing_key)?;
        let cipher = Aes256Gcm::new_from_slice(key.as_slice())
            .map_err(|_| backend_error("AES-256-GCM key setup"))?;
        cipher
            .decrypt(
                Nonce::from_slice(parsed.nonce),
                aes_gcm::aead::Payload {
                    msg: parsed.ciphertext,
                    aad: SEAL_AAD,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| not_authentic())
    }

    fn store_certificate(&self, slot: &str, der: &[u8]) -> Result<(), SeError> {
        check_name("slot", slot)?;
        checks::check_certificate_len(der, MAX_CERTIFICATE_LEN)?;
        self.store
            .write(&self.store.path("certs", &format!("{slot}.der")), der, true)
    }

    fn certificate(&self, slot: &str) -> Result<Option<Vec<u8>>, SeError> {
        check_name("slot", slot)?;
        self.store.read(
            &self.store.path("certs", &format!("{slot}.der")),
            MAX_CERTIFICATE_LEN,
        )
    }

    fn destroy_key(&self, slot: &str) -> Result<(), SeError> {
        check_name("slot", slot)?;
        let (pub_path, priv_path) = self.key_paths(slot);
        let certificate = self.store.path("certs", &format!("{slot}.der"));
        // Held so that no load of this slot's blobs runs while they go.
        let _state = self.state();
        self.store
            .destroy_slot(slot, &priv_path, &[&pub_path, &certificate])
    }

    fn wipe(&self) -> Result<(), SeError> {
        let mut state = self.state();
        if let Some(srk) = state.srk.take() {
            flush(&mut state.ctx, srk)?;
        }
        // Undefining the seed first makes every blob unloadable even if deleting files fails.
        if let Some(seed) = nv::find(&mut state.ctx, nv::SEED_INDEX)? {
            nv::undefine(&mut state.ctx, seed)?;
        }
        self.store.remove_all_in("keys")?;
        self.store.remove_all_in("certs")?;
        self.store.remove(&self.store.path("", "seal.priv"))?;
        self.store.remove(&self.store.path("", "seal.pub"))
    }

    fn extend_pcr(&self, pcr: u8, digest: &[u8; 32]) -> Result<[u8; 32], SeError> {
        let handle = pcr_handle(pcr)?;
        let mut values = DigestValues::new();
        values.set(
            HashingAlgorithm::Sha256,
            Digest::try_from(digest.to_vec()).map_err(|e| tss("digest", e))?,
        );
        self.state()
            .ctx
            .execute_with_session(PASSWORD, |ctx| ctx.pcr_extend(handle, values))
            .map_err(|e| tss("TPM2_PCR_Extend", e))?;
        self.read_pcr(pcr)
    }

    fn read_pcr(&self, pcr: u8) -> Result<[u8; 32], SeError> {
        pcr_handle(pcr)?;
        let slot = PcrSlot::try_from(1u32 << pcr).map_err(|e| tss("PCR slot", e))?;
        let selection = PcrSelectionListBuilder::new()
            .with_selection(HashingAlgorithm::Sha256, &[slot])
            .build()
            .map_err(|e| tss("PCR selection", e))?;
        let (_, _, digests) = self
            .state()
            .ctx
            .execute_without_session(|ctx| ctx.pcr_read(selection))
            .map_err(|e| tss("TPM2_PCR_Read", e))?;
        let value = digests
            .value()
            .first()
            .ok_or_else(|| backend_error(format!("the TPM has no SHA-256 PCR {pcr}")))?;
        value
            .value()
            .try_into()
            .map_err(|_| backend_error("a SHA-256 PCR value is not 32 bytes"))
    }
}

/// Parses a slot's state-dir files — the marshalled `TPMT_PUBLIC` and the `TPM2B_PRIVATE`
/// buffer — and returns the key's P-256 public key. The files are untrusted (whoever can
/// write the state dir controls them); the TPM itself checks at TPM2_Load that the private
/// part is its own and belongs to this public part.
pub fn parse_key_files(public: &[u8], private: &[u8]) -> Result<PublicKey, SeError> {
    let (public, _) = decode_blobs(public, private, "key")?;
    objects::public_key(&public)
}

fn pcr_handle(pcr: u8) -> Result<PcrHandle, SeError> {
    if pcr >= PCR_COUNT {
        return Err(SeError::InvalidArgument(format!(
            "PCR {pcr} does not exist (0 to {} on a PC-client TPM)",
            PCR_COUNT - 1
        )));
    }
    PcrHandle::try_from(u32::from(pcr)).map_err(|e| tss("PCR handle", e))
}

/// The storage key, loaded (re-created from its seed) if needed. `None` when the seed does
/// not exist and `create` is false.
fn srk(state: &mut State, create: bool) -> Result<Option<KeyHandle>, SeError> {
    if let Some(handle) = state.srk {
        return Ok(Some(handle));
    }
    let ctx = &mut state.ctx;
    let seed = match nv::find(ctx, nv::SEED_INDEX)? {
        Some(handle) => {
            let seed = nv::read(ctx, handle, SEED_LEN as u16);
            let seed = match seed {
                Ok(Some(seed)) => Ok(seed),
                // Defined but never written: a crash while provisioning; write it now.
                Ok(None) => {
                    let seed = random_array(ctx)?.to_vec();
                    nv::write_once(ctx, handle, &seed).map(|()| seed)
                }
                Err(e) => Err(e),
            };
            nv::close(ctx, handle)?;
            seed?
        }
        None if !create => return Ok(None),
        None => {
            let seed = random_array(ctx)?.to_vec();
            let handle = nv::define_ordinary(ctx, nv::SEED_INDEX, SEED_LEN, true)?;
            let written = nv::write_once(ctx, handle, &seed);
            nv::close(ctx, handle)?;
            written?;
            seed
        }
    };
    let template = objects::storage_key_template(&seed)?;
    let primary = ctx
        .execute_with_session(PASSWORD, |ctx| {
            ctx.create_primary(Hierarchy::Owner, template, None, None, None, None)
        })
        .map_err(|e| tss("TPM2_CreatePrimary (storage key)", e))?;
    state.srk = Some(primary.key_handle);
    Ok(Some(primary.key_handle))
}

/// Loads a blob pair under the storage key; `missing` makes the error when there is no
/// storage key (the element was wiped after the blob was made).
fn load(
    state: &mut State,
    public: Public,
    private: Private,
    missing: impl FnOnce() -> SeError,
) -> Result<KeyHandle, SeError> {
    let srk = srk(state, false)?.ok_or_else(missing)?;
    state
        .ctx
        .execute_with_session(PASSWORD, |ctx| ctx.load(srk, private, public))
        .map_err(|e| tss("TPM2_Load", e))
}

/// Runs `f` (one command) under an HMAC session salted with the storage key and with
/// response-parameter encryption (AES-128-CFB), so a secret the TPM returns (the unsealed
/// key, an ECDH result) does not cross the bus or socket in the clear and a passive observer
/// cannot derive the session key. The session is flushed afterwards.
fn with_encrypted_session<T>(
    state: &mut State,
    f: impl FnOnce(&mut Context) -> tss_esapi::Result<T>,
) -> tss_esapi::Result<T> {
    let salt_key = state.srk;
    let ctx = &mut state.ctx;
    let session = ctx
        .start_auth_session(
            salt_key,
            None,
            None,
            SessionType::Hmac,
            SymmetricDefinition::AES_128_CFB,
            HashingAlgorithm::Sha256,
        )?
        .ok_or(tss_esapi::Error::WrapperError(
            tss_esapi::WrapperErrorKind::WrongValueFromTpm,
        ))?;
    let (attributes, mask) = SessionAttributesBuilder::new()
        .with_continue_session(true)
        .with_encrypt(true)
        .build();
    let result = ctx
        .tr_sess_set_attributes(session, attributes, mask)
        .and_then(|()| ctx.execute_with_session(Some(session), f));
    let flushed = ctx.flush_context(ObjectHandle::from(SessionHandle::from(session)));
    let value = result?;
    flushed.map(|()| value)
}

fn flush(ctx: &mut Context, handle: KeyHandle) -> Result<(), SeError> {
    ctx.flush_context(ObjectHandle::from(handle))
        .map_err(|e| tss("TPM2_FlushContext", e))
}

fn decode_blobs(public: &[u8], private: &[u8], what: &str) -> Result<(Public, Private), SeError> {
    let public = Public::unmarshall(public)
        .map_err(|e| backend_error(format!("the public part of the {what} is malformed: {e}")))?;
    let private = Private::try_from(private.to_vec())
        .map_err(|e| backend_error(format!("the private part of the {what} is malformed: {e}")))?;
    Ok((public, private))
}

fn marshall(public: &Public) -> Result<Vec<u8>, SeError> {
    public.marshall().map_err(|e| tss("marshal TPMT_PUBLIC", e))
}

fn random_array(ctx: &mut Context) -> Result<[u8; 32], SeError> {
    let mut out = [0u8; 32];
    random_into(ctx, &mut out)?;
    Ok(out)
}

/// Fills `out` from TPM2_GetRandom (at most 32 bytes per call, which every TPM returns).
fn random_into(ctx: &mut Context, out: &mut [u8]) -> Result<(), SeError> {
    for chunk in out.chunks_mut(RANDOM_CHUNK) {
        let bytes = ctx
            .execute_without_session(|ctx| ctx.get_random(chunk.len()))
            .map_err(|e| tss("TPM2_GetRandom", e))?;
        if bytes.value().len() != chunk.len() {
            return Err(backend_error(format!(
                "TPM2_GetRandom returned {} bytes, not {}",
                bytes.value().len(),
                chunk.len()
            )));
        }
        chunk.copy_from_slice(bytes.value());
    }
    Ok(())
}

fn sealing_missing() -> SeError {
    SeError::Unseal("this element has no storage key (wiped, or never provisioned)".into())
}

/// A backend error with `message`.
fn backend_error(message: impl Into<String>) -> SeError {
    SeError::Backend {
        backend: BACKEND,
        message: message.into(),
    }
}

/// A `tss-esapi` error from `operation`.
fn tss(operation: &str, e: tss_esapi::Error) -> SeError {
    backend_error(format!("{operation}: {e}"))
}
