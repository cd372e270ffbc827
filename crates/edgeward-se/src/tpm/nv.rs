//! The TPM's non-volatile indices the backend owns: the storage-key seed (whose deletion is
//! the wipe), the time floor, and one pair of indices per monotonic counter.
//!
//! Index map (all in the owner range `0x0100_0000..0x0140_0000`):
//! * `0x0127_FF00` — storage-key seed, 32 random bytes, write-once;
//! * `0x0127_FF01` — time floor, 8 bytes big-endian, written by the owner only;
//! * `0x0128_0000 + 2k` — counter (`TPM_NT_COUNTER`), and `+ 1` its record: the counter's
//!   starting value (8 bytes) and SHA-256 of its name (32 bytes), write-once. `k` is 18 bits
//!   of SHA-256 over the name (and a probe number, so two names that collide move on).
//!
//! A fresh `TPM_NT_COUNTER` starts at the highest value any counter on the TPM ever held, so
//! the element's value is the TPM value minus the recorded start. The record is "write-once"
//! because its only write authorization is a policy of `TPM2_PolicyNvWritten(NO)`: once
//! written, nobody (not even the owner) can change it, only undefine it with owner
//! authorization — which the documentation lists as the owner-auth caveat.

use sha2::{Digest as _, Sha256};
use tss_esapi::{
    attributes::NvIndexAttributesBuilder,
    constants::{CapabilityType, NvIndexType, SessionType},
    handles::{NvIndexHandle, NvIndexTpmHandle, ObjectHandle, TpmHandle},
    interface_types::{
        algorithm::HashingAlgorithm,
        resource_handles::{NvAuth, Provision},
        session_handles::{AuthSession, PolicySession},
    },
    structures::{
        CapabilityData, Digest, MaxNvBuffer, NvPublic, NvPublicBuilder, SymmetricDefinition,
    },
    Context,
};

use super::{backend_error, tss};
use crate::SeError;

/// The storage-key seed index.
pub(super) const SEED_INDEX: u32 = 0x0127_FF00;
/// The time-floor index.
pub(super) const TIME_FLOOR_INDEX: u32 = 0x0127_FF01;
const COUNTER_BASE: u32 = 0x0128_0000;
const COUNTER_HASH_BITS: u32 = 18;
const PROBES: u8 = 4;
const RECORD_LEN: usize = 8 + 32;
/// `TPM_CC_PolicyNvWritten`.
const TPM_CC_POLICY_NV_WRITTEN: u32 = 0x0000_018F;

/// A password session with the empty authorization value (owner and index auth are empty).
pub(super) const PASSWORD: Option<AuthSession> = Some(AuthSession::Password);

/// The ESYS handle of NV index `index`, or `None` when it is not defined. Existence is
/// asked with TPM2_GetCapability first, so an absent index is not a TPM error (which the TSS
/// would log to stderr).
pub(super) fn find(ctx: &mut Context, index: u32) -> Result<Option<NvIndexHandle>, SeError> {
    let tpm_handle = NvIndexTpmHandle::new(index).map_err(|e| tss("NV index handle", e))?;
    let (data, _) = ctx
        .execute_without_session(|ctx| ctx.get_capability(CapabilityType::Handles, index, 1))
        .map_err(|e| tss("TPM2_GetCapability (handles)", e))?;
    let defined = matches!(data, CapabilityData::Handles(list)
        if list.first() == Some(&TpmHandle::NvIndex(tpm_handle)));
    if !defined {
        return Ok(None);
    }
    ctx.execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(tpm_handle)))
        .map(|handle| Some(NvIndexHandle::from(handle)))
        .map_err(|e| tss("TPM2_NV_ReadPublic", e))
}

/// Releases the ESYS resource of `handle` (the index itself stays defined).
pub(super) fn close(ctx: &mut Context, handle: NvIndexHandle) -> Result<(), SeError> {
    let mut object = ObjectHandle::from(handle);
    ctx.tr_close(&mut object)
        .map_err(|e| tss("Esys_TR_Close", e))
}

/// Reads `len` bytes of an index; `None` when it was defined but never written.
pub(super) fn read(
    ctx: &mut Context,
    handle: NvIndexHandle,
    len: u16,
) -> Result<Option<Vec<u8>>, SeError> {
    let (public, _) = ctx
        .execute_without_session(|ctx| ctx.nv_read_public(handle))
        .map_err(|e| tss("TPM2_NV_ReadPublic", e))?;
    if !public.attributes().written() {
        return Ok(None);
    }
    ctx.execute_with_session(PASSWORD, |ctx| {
        ctx.nv_read(NvAuth::NvIndex(handle), handle, len, 0)
    })
    .map(|data| Some(data.value().to_vec()))
    .map_err(|e| tss("TPM2_NV_Read", e))
}

/// Reads an 8-byte big-endian value; `None` when never written.
pub(super) fn read_u64(ctx: &mut Context, handle: NvIndexHandle) -> Result<Option<u64>, SeError> {
    match read(ctx, handle, 8)? {
        None => Ok(None),
        Some(bytes) => {
            let array: [u8; 8] = bytes.as_slice().try_into().map_err(|_| {
                backend_error(format!("an NV index returned {} bytes, not 8", bytes.len()))
            })?;
            Ok(Some(u64::from_be_bytes(array)))
        }
    }
}

/// Defines an ordinary index of `len` bytes that is readable with its (empty) auth value and
/// writable by the owner (`write_once == false`) or exactly once (`write_once == true`).
pub(super) fn define_ordinary(
    ctx: &mut Context,
    index: u32,
    len: usize,
    write_once: bool,
) -> Result<NvIndexHandle, SeError> {
    let builder = NvIndexAttributesBuilder::new()
        .with_nv_index_type(NvIndexType::Ordinary)
        .with_auth_read(true)
        .with_no_da(true);
    let builder = if write_once {
        builder.with_policy_write(true)
    } else {
        builder.with_owner_write(true)
    };
    let attributes = builder.build().map_err(|e| tss("NV attributes", e))?;
    let mut public = NvPublicBuilder::new()
        .with_nv_index(NvIndexTpmHandle::new(index).map_err(|e| tss("NV index handle", e))?)
        .with_index_name_algorithm(HashingAlgorithm::Sha256)
        .with_index_attributes(attributes)
        .with_data_area_size(len);
    if write_once {
        public = public.with_index_auth_policy(write_once_policy()?);
    }
    define(ctx, public.build().map_err(|e| tss("NV public area", e))?)
}

fn define(ctx: &mut Context, public: NvPublic) -> Result<NvIndexHandle, SeError> {
    ctx.execute_with_session(PASSWORD, |ctx| {
        ctx.nv_define_space(Provision::Owner, None, public)
    })
    .map_err(|e| tss("TPM2_NV_DefineSpace", e))
}

/// Writes an owner-writable index.
pub(super) fn write_as_owner(
    ctx: &mut Context,
    handle: NvIndexHandle,
    data: &[u8],
) -> Result<(), SeError> {
    let buffer = MaxNvBuffer::try_from(data.to_vec()).map_err(|e| tss("NV buffer", e))?;
    ctx.execute_with_session(PASSWORD, |ctx| {
        ctx.nv_write(NvAuth::Owner, handle, buffer, 0)
    })
    .map_err(|e| tss("TPM2_NV_Write", e))
}

/// Writes a write-once index through a policy session asserting it was never written.
pub(super) fn write_once(
    ctx: &mut Context,
    handle: NvIndexHandle,
    data: &[u8],
) -> Result<(), SeError> {
    let buffer = MaxNvBuffer::try_from(data.to_vec()).map_err(|e| tss("NV buffer", e))?;
    let session = ctx
        .start_auth_session(
            None,
            None,
            None,
            SessionType::Policy,
            SymmetricDefinition::Null,
            HashingAlgorithm::Sha256,
        )
        .map_err(|e| tss("TPM2_StartAuthSession", e))?
        .ok_or_else(|| backend_error("the TPM returned no policy session"))?;
    let result = PolicySession::try_from(session)
        .and_then(|policy| ctx.policy_nv_written(policy, false))
        .and_then(|()| {
            ctx.execute_with_session(Some(session), |ctx| {
                ctx.nv_write(NvAuth::NvIndex(handle), handle, buffer, 0)
            })
        });
    let flushed = ctx.flush_context(ObjectHandle::from(tss_esapi::handles::SessionHandle::from(
        session,
    )));
    result.map_err(|e| tss("TPM2_NV_Write (write-once)", e))?;
    flushed.map_err(|e| tss("TPM2_FlushContext", e))
}

/// Undefines an index (owner authorization).
pub(super) fn undefine(ctx: &mut Context, handle: NvIndexHandle) -> Result<(), SeError> {
    ctx.execute_with_session(PASSWORD, |ctx| {
        ctx.nv_undefine_space(Provision::Owner, handle)
    })
    .map_err(|e| tss("TPM2_NV_UndefineSpace", e))
}

/// The policy digest of `TPM2_PolicyNvWritten(NO)`:
/// SHA-256(0³² ‖ TPM_CC_PolicyNvWritten ‖ 0x00).
fn write_once_policy() -> Result<Digest, SeError> {
    let mut h = Sha256::new();
    h.update([0u8; 32]);
    h.update(TPM_CC_POLICY_NV_WRITTEN.to_be_bytes());
    h.update([0u8]);
    Digest::try_from(h.finalize().to_vec()).map_err(|e| tss("policy digest", e))
}

/// A counter's pair of indices.
struct CounterIndices {
    counter: u32,
    record: u32,
}

fn counter_indices(name: &str, probe: u8) -> CounterIndices {
    let mut h = Sha256::new();
    h.update(b"edgeward-se/tpm/counter\0");
    h.update(name.as_bytes());
    h.update([probe]);
    let digest = h.finalize();
    let k = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
        >> (32 - COUNTER_HASH_BITS);
    let counter = COUNTER_BASE + 2 * k;
    CounterIndices {
        counter,
        record: counter + 1,
    }
}

fn name_hash(name: &str) -> [u8; 32] {
    Sha256::digest(name.as_bytes()).into()
}

/// A counter as found on the TPM.
pub(super) struct Counter {
    handle: NvIndexHandle,
    start: u64,
}

/// Finds counter `name`; `None` when it was never incremented. With `create`, defines it
/// (and its record) when absent.
pub(super) fn counter(
    ctx: &mut Context,
    name: &str,
    create: bool,
) -> Result<Option<Counter>, SeError> {
    let wanted = name_hash(name);
    for probe in 0..PROBES {
        let indices = counter_indices(name, probe);
        let record = match find(ctx, indices.record)? {
            Some(handle) => {
                let bytes = read(ctx, handle, RECORD_LEN as u16)?;
                Some((handle, bytes))
            }
            None => None,
        };
        match record {
            Some((handle, Some(bytes))) => {
                close(ctx, handle)?;
                if bytes.len() != RECORD_LEN {
                    return Err(backend_error(format!(
                        "counter record 0x{:08x} holds {} bytes (expected {RECORD_LEN})",
                        indices.record,
                        bytes.len()
                    )));
                }
                if bytes[8..] != wanted {
                    continue; // another name's counter: probe on
                }
                let mut start = [0u8; 8];
                start.copy_from_slice(&bytes[..8]);
                let handle = find(ctx, indices.counter)?.ok_or_else(|| {
                    backend_error(format!(
                        "counter `{name}` has a record but its NV index 0x{:08x} is gone",
                        indices.counter
                    ))
                })?;
                return Ok(Some(Counter {
                    handle,
                    start: u64::from_be_bytes(start),
                }));
            }
            // Defined but never written: a crash between defining and writing it.
            Some((handle, None)) => {
                return finish_counter(ctx, &indices, handle, &wanted).map(Some)
            }
            None if !create => return Ok(None),
            None => {
                let record = define_ordinary(ctx, indices.record, RECORD_LEN, true)?;
                return finish_counter(ctx, &indices, record, &wanted).map(Some);
            }
        }
    }
    Err(backend_error(format!(
        "counter `{name}`: all {PROBES} NV index pairs it may use belong to other counters"
    )))
}

/// Defines (if needed) and initialises the counter index, then writes its record.
fn finish_counter(
    ctx: &mut Context,
    indices: &CounterIndices,
    record: NvIndexHandle,
    wanted: &[u8; 32],
) -> Result<Counter, SeError> {
    let handle = match find(ctx, indices.counter)? {
        Some(handle) => handle,
        None => {
            let attributes = NvIndexAttributesBuilder::new()
                .with_nv_index_type(NvIndexType::Counter)
                .with_owner_write(true)
                .with_auth_read(true)
                .with_no_da(true)
                .build()
                .map_err(|e| tss("NV attributes", e))?;
            let public = NvPublicBuilder::new()
                .with_nv_index(
                    NvIndexTpmHandle::new(indices.counter)
                        .map_err(|e| tss("NV index handle", e))?,
                )
                .with_index_name_algorithm(HashingAlgorithm::Sha256)
                .with_index_attributes(attributes)
                .with_data_area_size(8)
                .build()
                .map_err(|e| tss("NV public area", e))?;
            define(ctx, public)?
        }
    };
    let start = match read_u64(ctx, handle)? {
        Some(value) => value,
        None => {
            increment(ctx, handle)?;
            read_u64(ctx, handle)?
                .ok_or_else(|| backend_error("a counter stayed uninitialised after an increment"))?
        }
    };
    let mut bytes = [0u8; RECORD_LEN];
    bytes[..8].copy_from_slice(&start.to_be_bytes());
    bytes[8..].copy_from_slice(wanted);
    write_once(ctx, record, &bytes)?;
    close(ctx, record)?;
    Ok(Counter { handle, start })
}

fn increment(ctx: &mut Context, handle: NvIndexHandle) -> Result<(), SeError> {
    ctx.execute_with_session(PASSWORD, |ctx| ctx.nv_increment(NvAuth::Owner, handle))
        .map_err(|e| tss("TPM2_NV_Increment", e))
}

impl Counter {
    /// The element's value of the counter (TPM value minus its recorded start).
    pub(super) fn value(&self, ctx: &mut Context) -> Result<u64, SeError> {
        let raw = read_u64(ctx, self.handle)?
            .ok_or_else(|| backend_error("a recorded counter is uninitialised"))?;
        raw.checked_sub(self.start).ok_or_else(|| {
            backend_error("a TPM counter is below its recorded start (the TPM was cleared?)")
        })
    }

    /// Adds one and returns the new value.
    pub(super) fn increment(&self, ctx: &mut Context) -> Result<u64, SeError> {
        increment(ctx, self.handle)?;
        self.value(ctx)
    }

    /// Releases the ESYS resource.
    pub(super) fn close(self, ctx: &mut Context) -> Result<(), SeError> {
        close(ctx, self.handle)
    }
}
