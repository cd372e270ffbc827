//! `edgeward-inference-worker`: the only process that ever holds the model's plaintext.
//! Started by the agent ([`super::supervisor`]) with a socket pair as its standard input, it
//! hardens itself before it receives anything secret, decrypts and checks the weights,
//! installs its system call filter, tells the agent it is ready, and serves inference
//! requests one connection at a time until the agent goes away (its channel closes) — while
//! the agent says the device is quarantined, every request is refused with
//! [`ErrorCode::Quarantined`].

use std::{
    fs::File,
    io::Write,
    os::{fd::AsFd, unix::net::UnixListener, unix::net::UnixStream},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use edgeward_core::statement::Statement;
use edgeward_proto::inference::{read_frame, write_frame, ErrorCode, Request, Response};
use sha2::{Digest, Sha256};

use super::{
    handoff::{self, Message},
    mlp::Mlp,
    sandbox::{self, MemoryLock},
};

/// How long one connection may stay silent before the worker drops it (it serves one
/// connection at a time).
const IDLE: Duration = Duration::from_secs(30);

/// The control thread's stack (it only reads small frames; locked memory is scarce).
const CONTROL_STACK: usize = 64 * 1024;

/// A system call the worker makes once sandboxed, to show the filter kills it (tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// `socket(AF_INET, …)`: the network.
    Socket,
    /// Starting a program (`clone`/`execve`).
    Exec,
}

impl std::str::FromStr for Probe {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "socket" => Ok(Probe::Socket),
            "exec" => Ok(Probe::Exec),
            other => Err(format!("unknown probe {other:?} (socket, exec)")),
        }
    }
}

/// Exit status when the probed system call was not stopped.
pub const PROBE_SURVIVED: u8 = 70;

fn log(message: impl std::fmt::Display) {
    let _ = writeln!(
        std::io::stderr(),
        "edgeward-inference-worker[{}]: {message}",
        std::process::id()
    );
}

/// Runs the worker; returns the process's exit status.
pub fn run(probe: Option<Probe>) -> u8 {
    if let Err(e) = sandbox::harden_process() {
        log(format_args!("cannot harden the process: {e}"));
        return 1;
    }
    let channel = match std::io::stdin()
        .as_fd()
        .try_clone_to_owned()
        .map(UnixStream::from)
    {
        Ok(c) => c,
        Err(e) => {
            log(format_args!(
                "standard input is not the agent's channel: {e}"
            ));
            return 1;
        }
    };
    match start(&channel, probe) {
        Ok(()) => 0,
        Err(e) => {
            log(&e);
            let _ = Message::Failed(e).write(&mut &channel);
            1
        }
    }
}

fn start(channel: &UnixStream, probe: Option<Probe>) -> Result<(), String> {
    let (model, listener) = handoff::receive_descriptors(channel).map_err(|e| e.to_string())?;
    // Before any thread exists, so every thread inherits the ruleset.
    match sandbox::restrict_paths_and_network().map_err(|e| e.to_string())? {
        landlock::RulesetStatus::FullyEnforced => {}
        other => log(format_args!(
            "warning: Landlock is {other:?} on this kernel; paths and ports are not restricted"
        )),
    }
    // Decryption's threads exist before the memory is locked: under MCL_FUTURE a thread's
    // stack made later counts against the locked-memory limit at once.
    rayon::ThreadPoolBuilder::new()
        .build_global()
        .map_err(|e| format!("decryption threads: {e}"))?;
    // Every pool thread has started (and made its start-up system calls) before the filter.
    rayon::broadcast(|_| ());
    match sandbox::lock_memory().map_err(|e| e.to_string())? {
        MemoryLock::Locked => {}
        MemoryLock::Refused(why) => log(format_args!(
            "warning: memory NOT locked, the weights may reach swap: {why}"
        )),
    }
    let (file_key, quarantined, statement) = match Message::read(&mut &*channel) {
        Ok(Some(Message::Start {
            file_key,
            quarantined,
            statement,
        })) => (file_key, quarantined, statement),
        Ok(other) => return Err(format!("expected the start message, got {other:?}")),
        Err(e) => return Err(e.to_string()),
    };
    let (statement, _) =
        Statement::parse_any(&statement).map_err(|e| format!("the statement: {e}"))?;
    let plaintext = edgeward_model::secure_load::open_with_key(
        &File::from(model),
        &file_key,
        &statement.manifest,
    )
    .map_err(|e| format!("the model: {e}"))?;
    drop(file_key);
    let sha256: [u8; 32] = Sha256::digest(&plaintext[..]).into();
    let mlp = Mlp::from_safetensors(&plaintext).map_err(|e| format!("the model: {e}"))?;
    // The runtime copied the weights into its own zeroizing buffers.
    drop(plaintext);

    let quarantine = Arc::new(AtomicBool::new(quarantined));
    let mut control = channel.try_clone().map_err(|e| e.to_string())?;
    let flag = Arc::clone(&quarantine);
    let started = Arc::new(std::sync::Barrier::new(2));
    let control_started = Arc::clone(&started);
    std::thread::Builder::new()
        .stack_size(CONTROL_STACK)
        .spawn(move || {
            control_started.wait();
            control_loop(&mut control, &flag)
        })
        .map_err(|e| e.to_string())?;
    // The control thread's start-up system calls are made before the filter.
    started.wait();

    sandbox::apply_seccomp().map_err(|e| e.to_string())?;
    let (inputs, outputs) = (mlp.inputs() as u32, mlp.outputs() as u32);
    Message::Ready {
        sha256,
        inputs,
        outputs,
    }
    .write(&mut &*channel)
    .map_err(|e| e.to_string())?;
    log(format_args!(
        "serving model {} ({inputs} inputs, {outputs} outputs)",
        hex::encode(sha256)
    ));
    if let Some(p) = probe {
        run_probe(p);
        return Err(format!("the {p:?} probe was not stopped"));
    }
    serve(&UnixListener::from(listener), &mlp, &sha256, &quarantine);
    Ok(())
}

/// Applies the agent's quarantine messages and acknowledges each once applied; exits the
/// process when the agent is gone.
fn control_loop(control: &mut UnixStream, flag: &AtomicBool) -> ! {
    loop {
        match Message::read(control) {
            Ok(Some(Message::Quarantine(q))) => {
                flag.store(q, Ordering::SeqCst);
                log(if q {
                    "quarantined: refusing every request"
                } else {
                    "released: serving"
                });
                // The agent waits for this: an agent that cannot tell refusals have begun
                // stops the worker instead.
                if Message::Applied(q).write(control).is_err() {
                    std::process::exit(0);
                }
            }
            Ok(Some(other)) => log(format_args!("ignored {other:?} from the agent")),
            // The agent is gone: so is the worker (its memory with it).
            Ok(None) | Err(_) => std::process::exit(0),
        }
    }
}

fn run_probe(p: Probe) {
    let outcome = match p {
        Probe::Socket => std::net::TcpStream::connect("127.0.0.1:9").map(drop),
        Probe::Exec => std::process::Command::new("/bin/true").status().map(drop),
    };
    log(format_args!("probe {p:?} returned {outcome:?}"));
    std::process::exit(i32::from(PROBE_SURVIVED));
}

fn serve(listener: &UnixListener, mlp: &Mlp, sha256: &[u8; 32], quarantine: &AtomicBool) {
    for conn in listener.incoming() {
        let mut conn = match conn {
            Ok(c) => c,
            Err(e) => {
                log(format_args!("accept: {e}"));
                continue;
            }
        };
        if conn.set_read_timeout(Some(IDLE)).is_err() {
            continue;
        }
        loop {
            let response = match read_frame(&mut conn) {
                Ok(None) => break,
                Ok(Some(body)) => answer(&body, mlp, sha256, quarantine),
                Err(e) => {
                    let _ = write_frame(
                        &mut conn,
                        &Response::Error {
                            code: ErrorCode::Malformed,
                            message: e.to_string(),
                        }
                        .encode(),
                    );
                    break;
                }
            };
            if write_frame(&mut conn, &response.encode()).is_err() {
                break;
            }
        }
    }
}

/// The answer to one request frame.
pub fn answer(body: &[u8], mlp: &Mlp, sha256: &[u8; 32], quarantine: &AtomicBool) -> Response {
    if quarantine.load(Ordering::SeqCst) {
        return Response::Error {
            code: ErrorCode::Quarantined,
            message: "the device is quarantined; inference is stopped".into(),
        };
    }
    match Request::decode(body) {
        Ok(Request::Info) => Response::Model {
            sha256: *sha256,
            inputs: mlp.inputs() as u32,
            outputs: mlp.outputs() as u32,
        },
        Ok(Request::Infer(input)) => match mlp.infer(&input) {
            Some(output) => Response::Output(output),
            None => Response::Error {
                code: ErrorCode::BadInput,
                message: format!(
                    "the model takes {} values, not {}",
                    mlp.inputs(),
                    input.len()
                ),
            },
        },
        Err(e) => Response::Error {
            code: ErrorCode::Malformed,
            message: e.to_string(),
        },
    }
}
