//! The agent's side of the inference worker: verify the model's signature, have the element
//! release its file key, bind the inference socket, start the worker as its own user, hand
//! it the key and descriptors ([`super::handoff`]), wait until it serves, and tell it about
//! quarantine. Dropping a [`Worker`] kills it (its memory, weights included, goes with it).

use std::{
    fs,
    os::unix::{
        fs::PermissionsExt,
        net::{UnixListener, UnixStream},
        process::CommandExt,
    },
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use edgeward_core::{bundle::Bundle, cert_policy::Policy, civil::unix_now, pem, verify::Trust};
use edgeward_model::secure_load::release_key;
use edgeward_se::SecureElement;

use super::{handoff::Message, worker::Probe, InferenceConfig};
use crate::{files, AgentError};

/// Largest signature bundle, trust-root or CRL file read.
const MAX_PKI_FILE: u64 = 4 << 20;
/// How long the worker may take to decrypt and check the model before it is given up on.
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the worker may take to acknowledge a quarantine change (its control thread
/// answers at once; the agent blocks while it waits).
pub const APPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    channel: UnixStream,
    /// SHA-256 of the plaintext model it serves.
    pub model_sha256: [u8; 32],
    /// The model's inputs and outputs.
    pub shape: (u32, u32),
    /// Whether it was told the device is quarantined.
    pub quarantined: bool,
}

fn protocol(what: &str) -> impl Fn(String) -> AgentError + '_ {
    move |e| AgentError::Protocol(format!("{what}: {e}"))
}

fn read_pki(path: &Path) -> Result<Vec<u8>, AgentError> {
    files::read_bounded(path, MAX_PKI_FILE)?
        .ok_or_else(|| AgentError::Config(format!("{} does not exist", path.display())))
}

/// The uid and gid of `user` from `/etc/passwd`.
pub fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let passwd = fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        match f[..] {
            [name, _, uid, gid, ..] if name == user => Some((uid.parse().ok()?, gid.parse().ok()?)),
            _ => None,
        }
    })
}

/// The worker's uid and gid: `user`'s, created as a system user (no home, no shell) when it
/// does not exist. `None` when the agent is not root: the worker then runs as the agent's
/// user (still not dumpable, so other processes of that user cannot read it; see the docs).
pub fn worker_identity(user: &str) -> Result<Option<(u32, u32)>, AgentError> {
    if !rustix::process::geteuid().is_root() {
        tracing::warn!(
            user,
            "the agent is not root: the inference worker runs as the agent's own user"
        );
        return Ok(None);
    }
    if let Some(ids) = lookup_user(user) {
        return Ok(Some(ids));
    }
    let status = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ])
        .status()
        .map_err(|e| AgentError::Config(format!("useradd {user}: {e}")))?;
    match lookup_user(user) {
        Some(ids) => {
            tracing::info!(user, "created the inference worker's system user");
            Ok(Some(ids))
        }
        None => Err(AgentError::Config(format!(
            "the user {user} does not exist and useradd failed ({status})"
        ))),
    }
}

/// The worker's directory: the socket's, created (0755, the worker's) when missing. It is
/// the worker's working directory, so that a core dump would land there were the worker's
/// protections missing (its tests show none does).
fn runtime_dir(socket: &Path, ids: Option<(u32, u32)>) -> Result<std::path::PathBuf, AgentError> {
    let dir = socket
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| Path::new("/"))
        .to_path_buf();
    if !dir.exists() {
        fs::create_dir_all(&dir).map_err(|e| AgentError::io(&dir, e))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755))
            .map_err(|e| AgentError::io(&dir, e))?;
        if let Some((uid, gid)) = ids {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .map_err(|e| AgentError::io(&dir, e))?;
        }
    }
    Ok(dir)
}

/// Binds the inference socket: mode 0660, group the worker's (applications that may infer
/// join that group).
fn bind(socket: &Path, ids: Option<(u32, u32)>) -> Result<UnixListener, AgentError> {
    match fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(AgentError::io(socket, e)),
    }
    let listener = UnixListener::bind(socket).map_err(|e| AgentError::io(socket, e))?;
    fs::set_permissions(socket, fs::Permissions::from_mode(0o660))
        .map_err(|e| AgentError::io(socket, e))?;
    if let Some((_, gid)) = ids {
        std::os::unix::fs::chown(socket, None, Some(gid)).map_err(|e| AgentError::io(socket, e))?;
    }
    Ok(listener)
}

impl Worker {
    /// Verifies the model, has the element release its key (slot `inference.key_slot`, else
    /// `default_slot`), and starts the worker; returns once it serves. `probe` is for tests:
    /// the worker attempts that forbidden system call instead of serving.
    pub fn start(
        config: &InferenceConfig,
        element: &dyn SecureElement,
        default_slot: &str,
        quarantined: bool,
        probe: Option<Probe>,
    ) -> Result<Worker, AgentError> {
        let bundle = Bundle::parse(&read_pki(&config.signature)?)
            .map_err(|e| AgentError::Config(format!("{}: {e}", config.signature.display())))?;
        let roots = pem::parse_labelled(&read_pki(&config.trust_roots)?, "CERTIFICATE")
            .map_err(|e| AgentError::Config(format!("{}: {e}", config.trust_roots.display())))?;
        let crls = match &config.crls {
            Some(p) => pem::parse_labelled(&read_pki(p)?, "X509 CRL")
                .map_err(|e| AgentError::Config(format!("{}: {e}", p.display())))?,
            None => Vec::new(),
        };
        let trust = Trust::Roots {
            roots: &roots,
            crls: &crls,
            policy: Policy::default(),
        };
        let model = fs::File::open(&config.model).map_err(|e| AgentError::io(&config.model, e))?;
        let slot = config.key_slot.as_deref().unwrap_or(default_slot);
        // The signature is verified before the element is asked for anything.
        let released = release_key(&model, &bundle, &trust, unix_now(), element, slot)
            .map_err(|e| AgentError::Protocol(format!("model {}: {e}", config.model.display())))?;
        let statement = released.verified.statement.to_json();

        let ids = worker_identity(&config.user)?;
        let dir = runtime_dir(&config.socket, ids)?;
        let listener = bind(&config.socket, ids)?;
        let (channel, theirs) = UnixStream::pair().map_err(|e| AgentError::io("socketpair", e))?;
        let exe = config.worker_exe();
        let mut command = Command::new(&exe);
        command
            .env_clear()
            .current_dir(&dir)
            .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        if let Some(p) = probe {
            command.arg("--probe").arg(match p {
                Probe::Socket => "socket",
                Probe::Exec => "exec",
            });
        }
        if let Some((uid, gid)) = ids {
            // std clears the supplementary groups when root sets a uid.
            command.uid(uid).gid(gid);
        }
        let child = command.spawn().map_err(|e| AgentError::io(&exe, e))?;
        // The command holds the worker's end of the channel: closed here, so that the
        // worker's exit is seen as the channel's end.
        drop(command);
        let mut worker = Worker {
            child,
            channel,
            model_sha256: [0; 32],
            shape: (0, 0),
            quarantined,
        };
        if ids.is_some() {
            // Root may raise the worker's locked-memory limit; the worker locks its memory
            // only after it has the descriptors, which are sent after this.
            let bytes = config.memlock_mib.saturating_mul(1 << 20);
            let limit = rustix::process::Rlimit {
                current: Some(bytes),
                maximum: Some(bytes),
            };
            let pid = rustix::process::Pid::from_child(&worker.child);
            if let Err(e) =
                rustix::process::prlimit(Some(pid), rustix::process::Resource::Memlock, limit)
            {
                tracing::warn!(error = %e, "cannot raise the worker's locked-memory limit");
            }
        }
        super::handoff::send_descriptors(&worker.channel, &model, &listener)
            .map_err(|e| protocol("worker")(e.to_string()))?;
        drop((model, listener));
        Message::Start {
            file_key: released.file_key,
            quarantined,
            statement,
        }
        .write(&mut &worker.channel)
        .map_err(|e| protocol("worker")(e.to_string()))?;
        worker
            .channel
            .set_read_timeout(Some(START_TIMEOUT))
            .map_err(|e| AgentError::io("worker channel", e))?;
        match Message::read(&mut &worker.channel) {
            Ok(Some(Message::Ready {
                sha256,
                inputs,
                outputs,
            })) => {
                worker.model_sha256 = sha256;
                worker.shape = (inputs, outputs);
                tracing::info!(pid = worker.pid(), model = %hex::encode(sha256), socket = %config.socket.display(), "inference worker serving");
                Ok(worker)
            }
            Ok(Some(Message::Failed(why))) => {
                Err(AgentError::Protocol(format!("inference worker: {why}")))
            }
            Ok(other) => {
                let status = worker.child.wait().ok();
                Err(AgentError::Protocol(format!(
                    "inference worker ended without serving ({other:?}, {status:?})"
                )))
            }
            Err(e) => Err(protocol("inference worker")(e.to_string())),
        }
    }

    /// The worker's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Tells the worker the device entered or left quarantine and waits (at most
    /// [`APPLY_TIMEOUT`]) until it acknowledges: when this returns `Ok`, every request the
    /// worker reads from then on is refused (or served). On an error the caller must stop
    /// the worker (drop it): its state is unknown.
    pub fn set_quarantined(&mut self, on: bool) -> Result<(), AgentError> {
        let failed = |e: String| AgentError::Protocol(format!("inference worker: {e}"));
        Message::Quarantine(on)
            .write(&mut &self.channel)
            .map_err(|e| failed(e.to_string()))?;
        self.channel
            .set_read_timeout(Some(APPLY_TIMEOUT))
            .map_err(|e| AgentError::io("worker channel", e))?;
        match Message::read(&mut &self.channel) {
            Ok(Some(Message::Applied(q))) if q == on => {
                self.quarantined = on;
                Ok(())
            }
            Ok(other) => Err(failed(format!("answered {other:?} to a quarantine change"))),
            Err(e) => Err(failed(e.to_string())),
        }
    }

    /// Whether the worker still runs (false once it exited, e.g. killed by its filter).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the worker to exit (tests).
    pub fn wait(&mut self) -> std::io::Result<std::process::ExitStatus> {
        self.child.wait()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
