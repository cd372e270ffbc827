//! The inference worker's hardening, each layer against a different way of reaching the
//! decrypted weights (docs/agent.md, "Isolated inference", says what each one blocks and
//! what none of them blocks: root):
//!
//! - not dumpable (`PR_SET_DUMPABLE` 0): no `ptrace` attach and no `/proc/PID/mem` for
//!   processes of the same user, and no core dump;
//! - `RLIMIT_CORE` 0: no core file even if dumpability came back;
//! - `mlockall`: the weights are never written to swap;
//! - `PR_SET_NO_NEW_PRIVS`: nothing it runs gains privileges (and Landlock and seccomp need it);
//! - Landlock: no file system path and no TCP port at all (the model file and the socket
//!   arrive as open descriptors), no signals or abstract sockets outside the worker;
//! - seccomp: once the model is loaded, only the system calls serving needs; any other
//!   kills the process.

use landlock::{Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetStatus, Scope, ABI};
use rustix::process::{Resource, Rlimit};
use seccompiler::{BpfProgram, SeccompAction, SeccompFilter, TargetArch};

/// Why a hardening step failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// A process attribute could not be set.
    #[error("{what}: {source}")]
    Os {
        /// Which step.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// The Landlock ruleset could not be built or enforced.
    #[error("landlock: {0}")]
    Landlock(String),
    /// The seccomp filter could not be built or installed.
    #[error("seccomp: {0}")]
    Seccomp(String),
}

fn os(what: &'static str) -> impl FnOnce(rustix::io::Errno) -> SandboxError {
    move |e| SandboxError::Os {
        what,
        source: e.into(),
    }
}

/// The first thing the worker does: not dumpable, no core files, no new privileges, and
/// killed when the agent dies.
pub fn harden_process() -> Result<(), SandboxError> {
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .map_err(os("PR_SET_DUMPABLE"))?;
    rustix::process::setrlimit(
        Resource::Core,
        Rlimit {
            current: Some(0),
            maximum: Some(0),
        },
    )
    .map_err(os("RLIMIT_CORE"))?;
    rustix::thread::set_no_new_privs(true).map_err(os("PR_SET_NO_NEW_PRIVS"))?;
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .map_err(os("PR_SET_PDEATHSIG"))?;
    Ok(())
}

/// Whether the worker's memory is locked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MemoryLock {
    /// Every page, current and future, is locked in RAM.
    Locked,
    /// The locked-memory limit forbids it (the reason names the limit): the worker runs, but
    /// its pages may be swapped out.
    Refused(String),
}

/// Locks all current and future pages. A refusal because of `RLIMIT_MEMLOCK` (ENOMEM under a
/// finite limit, or EPERM) is returned as [`MemoryLock::Refused`]; any other failure is an
/// error.
pub fn lock_memory() -> Result<MemoryLock, SandboxError> {
    use rustix::mm::MlockAllFlags;
    match rustix::mm::mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE) {
        Ok(()) => Ok(MemoryLock::Locked),
        Err(e) if e == rustix::io::Errno::PERM || e == rustix::io::Errno::NOMEM => {
            let limit = rustix::process::getrlimit(Resource::Memlock);
            match limit.current {
                None if e == rustix::io::Errno::NOMEM => Err(SandboxError::Os {
                    what: "mlockall (out of memory with no locked-memory limit)",
                    source: e.into(),
                }),
                cur => Ok(MemoryLock::Refused(format!(
                    "mlockall: {e}; RLIMIT_MEMLOCK is {} (raise it: the agent does when it is \
                     root, or LimitMEMLOCK= in the unit)",
                    cur.map_or_else(|| "unlimited".into(), |b| format!("{} KiB", b / 1024))
                ))),
            }
        }
        Err(e) => Err(SandboxError::Os {
            what: "mlockall",
            source: e.into(),
        }),
    }
}

/// Restricts the calling thread (and the threads it starts later) with Landlock: every file
/// system access right and TCP bind/connect handled with no rule allowing any, and signals
/// and abstract Unix sockets scoped to the worker. Returns how much the kernel enforces.
pub fn restrict_paths_and_network() -> Result<RulesetStatus, SandboxError> {
    // ABI 6 has every right the worker must lose; newer ones only add logging controls.
    let abi = ABI::V6;
    let err = |e: landlock::RulesetError| SandboxError::Landlock(e.to_string());
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(err)?
        .handle_access(AccessNet::from_all(abi))
        .map_err(err)?
        .scope(Scope::from_all(abi))
        .map_err(err)?
        .create()
        .map_err(err)?
        .restrict_self()
        .map_err(err)?;
    Ok(status.ruleset)
}

/// The system calls the worker makes while serving: socket I/O on descriptors it already
/// has (accept, read, write, timeouts, descriptor flags), memory management, threads parking, signals
/// (returning from a handler, aborting), time and randomness. Not `socket`, `connect`,
/// `open*`, `execve`, `clone`, `ptrace`, `process_vm_*` or anything else.
const SERVING: &[libc::c_long] = &[
    libc::SYS_read,
    libc::SYS_write,
    libc::SYS_close,
    libc::SYS_accept4,
    libc::SYS_recvfrom,
    libc::SYS_sendto,
    libc::SYS_setsockopt,
    libc::SYS_fcntl,
    libc::SYS_shutdown,
    libc::SYS_futex,
    libc::SYS_sched_yield,
    libc::SYS_mmap,
    libc::SYS_munmap,
    libc::SYS_mremap,
    libc::SYS_mprotect,
    libc::SYS_madvise,
    libc::SYS_brk,
    libc::SYS_rt_sigaction,
    libc::SYS_rt_sigprocmask,
    libc::SYS_rt_sigreturn,
    libc::SYS_sigaltstack,
    libc::SYS_restart_syscall,
    libc::SYS_clock_gettime,
    libc::SYS_getrandom,
    libc::SYS_getpid,
    libc::SYS_gettid,
    libc::SYS_tgkill,
    libc::SYS_exit,
    libc::SYS_exit_group,
    // What the C library does on a thread's behalf (restartable sequences, robust futexes).
    libc::SYS_rseq,
    libc::SYS_set_robust_list,
];

/// The worker's filter: [`SERVING`] allowed, everything else kills the process.
pub fn seccomp_filter() -> Result<BpfProgram, SandboxError> {
    let err = |e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string());
    let arch = TargetArch::try_from(std::env::consts::ARCH)
        .map_err(|e| SandboxError::Seccomp(format!("{}: {e}", std::env::consts::ARCH)))?;
    let rules = SERVING.iter().map(|&n| (n, Vec::new())).collect();
    SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(err)?
    .try_into()
    .map_err(err)
}

/// Installs [`seccomp_filter`] on every thread of the process.
pub fn apply_seccomp() -> Result<(), SandboxError> {
    let filter = seccomp_filter()?;
    seccompiler::apply_filter_all_threads(&filter).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_for_this_machine() {
        let program = seccomp_filter().expect("filter");
        assert!(program.len() > SERVING.len());
    }
}
