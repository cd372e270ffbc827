//! Secure boot for an Edgeward device: every stage verified under the root before anything
//! after it is touched, measured into a register with a replayable event log, guarded by
//! anti-rollback counters in the secure element.
