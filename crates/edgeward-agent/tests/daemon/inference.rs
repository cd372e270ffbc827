//! The isolated inference worker, started the way the daemon starts it (the real worker
//! binary, a real key hierarchy, a signed model encrypted to a soft element's key): it
//! serves the verified digits model over its socket and refuses while quarantined; a second
//! process of the worker's own user (setuid in the child before exec) can neither ptrace it
//! nor open its /proc/PID/mem, though it can do both to an unprotected process of the same
//! user; SIGABRT and SIGSEGV leave no core dump where an unprotected process leaves one; a
//! system call outside its filter kills it with SIGSYS. These tests need root (to create
//! the worker's user and switch to it), as the suite runs.

use std::{
    fs,
    os::unix::{fs::PermissionsExt, net::UnixStream, process::CommandExt, process::ExitStatusExt},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use edgeward_agent::inference::{
    supervisor::{lookup_user, Worker},
    worker::Probe,
    InferenceConfig,
};
use edgeward_artifact::{
    bundle_signing::{sign_path, SignOptions},
    NoProgress,
};
use edgeward_core::{keys::SigningKey, pem};
use edgeward_model::crypt::{self, EncryptOptions, RecipientKey};
use edgeward_proto::inference::{read_frame, write_frame, ErrorCode, Request, Response};
use edgeward_se::{KeyAlgorithm, SecureElement};
use sha2::{Digest, Sha256};

const DIGITS: &[u8] = include_bytes!("../../../edgeward-model/tests/data/digits-mlp.safetensors");
const USER: &str = "edgeward-infer";

struct Fixture {
    dir: tempfile::TempDir,
    se: Box<dyn SecureElement>,
    config: InferenceConfig,
}

impl Fixture {
    /// A signed digits model encrypted to the element's `device` key.
    fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        // The worker's user must reach its working directory (the socket's).
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let now = time::OffsetDateTime::now_utc();
        let pki = edgeward_pki::Hierarchy::init(
            &dir.path().join("pki"),
            "Inference Test",
            b"inference-test-pass",
            90,
            KeyAlgorithm::P256,
            now,
        )
        .expect("pki");
        let plain = dir.path().join("digits.safetensors");
        fs::write(&plain, DIGITS).expect("write");
        let key = SigningKey::from_pem(&fs::read(pki.path("signing.key")).expect("key"), None)
            .expect("signing key");
        let chain = pem::parse_labelled(
            &fs::read(pki.path("signing-chain.pem")).expect("chain"),
            "CERTIFICATE",
        )
        .expect("chain");
        let bundle = sign_path(
            &plain,
            &key,
            Some(chain),
            &SignOptions {
                shard_size: None,
                ignore_paths: vec![],
                ignore_git_paths: true,
                signed_at: now.unix_timestamp() as u64,
            },
            &NoProgress,
        )
        .expect("sign");
        fs::write(dir.path().join("digits.sig.json"), bundle.to_json()).expect("bundle");
        fs::remove_file(&plain).expect("only the encrypted model stays");
        let se = edgeward_se::open(&format!("soft:{}", dir.path().join("se").display()))
            .expect("element");
        let device = se
            .generate_key("device", KeyAlgorithm::P256)
            .expect("device key");
        let container = crypt::encrypt(
            DIGITS,
            &[RecipientKey::new(&device).expect("recipient")],
            EncryptOptions::default(),
        )
        .expect("encrypt");
        fs::write(dir.path().join("digits.ewm"), container).expect("container");
        let config = InferenceConfig {
            model: dir.path().join("digits.ewm"),
            signature: dir.path().join("digits.sig.json"),
            trust_roots: pki.path("root.pem"),
            crls: Some(pki.path("crl.pem")),
            key_slot: Some("device".into()),
            socket: dir.path().join("run/inference.sock"),
            user: USER.into(),
            worker: Some(PathBuf::from(env!(
                "CARGO_BIN_EXE_edgeward-inference-worker"
            ))),
            memlock_mib: 1024,
        };
        Fixture { dir, se, config }
    }

    fn start(&self, quarantined: bool, probe: Option<Probe>) -> Worker {
        Worker::start(&self.config, self.se.as_ref(), "unused", quarantined, probe)
            .expect("the worker starts")
    }

    fn ask(&self, request: &[u8]) -> Response {
        let mut s = UnixStream::connect(&self.config.socket).expect("connect");
        write_frame(&mut s, request).expect("send");
        let body = read_frame(&mut s).expect("answer").expect("a frame");
        Response::decode(&body).expect("a response")
    }
}

/// The digits model computed independently of the worker's runtime.
fn reference(input: &[f32]) -> Vec<f32> {
    let t = safetensors::SafeTensors::deserialize(DIGITS).expect("model");
    let f = |name: &str| -> Vec<f32> {
        t.tensor(name)
            .expect("tensor")
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    let dense = |w: &[f32], b: &[f32], x: &[f32]| -> Vec<f32> {
        b.iter()
            .enumerate()
            .map(|(o, bias)| {
                w[o * x.len()..(o + 1) * x.len()]
                    .iter()
                    .zip(x)
                    .map(|(w, x)| w * x)
                    .sum::<f32>()
                    + bias
            })
            .collect()
    };
    let hidden: Vec<f32> = dense(&f("fc1.weight"), &f("fc1.bias"), input)
        .into_iter()
        .map(|v| v.max(0.0))
        .collect();
    dense(&f("fc2.weight"), &f("fc2.bias"), &hidden)
}

fn status_field(pid: u32, field: &str) -> String {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

#[test]
fn the_worker_serves_the_verified_model_and_stops_serving_in_quarantine() {
    let fx = Fixture::new();
    let mut worker = fx.start(false, None);
    let digest: [u8; 32] = Sha256::digest(DIGITS).into();
    assert_eq!(worker.model_sha256, digest);

    // Its own user, filtered, no new privileges, memory locked.
    let (uid, _) = lookup_user(USER).expect("the worker's user was created");
    assert_eq!(
        status_field(worker.pid(), "Uid").split_whitespace().next(),
        Some(uid.to_string().as_str())
    );
    assert_eq!(status_field(worker.pid(), "Seccomp"), "2");
    assert_eq!(status_field(worker.pid(), "NoNewPrivs"), "1");
    // Locked when the limit allows (root without CAP_SYS_RESOURCE cannot raise it; the
    // worker then warns and runs unlocked, as documented).
    let limits = fs::read_to_string(format!("/proc/{}/limits", worker.pid())).expect("limits");
    let memlock = limits
        .lines()
        .find(|l| l.starts_with("Max locked memory"))
        .and_then(|l| l.split_whitespace().nth(3))
        .expect("memlock limit");
    if memlock == "unlimited" || memlock.parse::<u64>().is_ok_and(|b| b >= 512 << 20) {
        assert_ne!(status_field(worker.pid(), "VmLck"), "0 kB");
    }

    assert_eq!(
        fx.ask(&Request::Info.encode()),
        Response::Model {
            sha256: digest,
            inputs: 64,
            outputs: 10
        }
    );
    let input: Vec<f32> = (0..64).map(|i| (i % 17) as f32 / 16.0).collect();
    let Response::Output(out) = fx.ask(&Request::Infer(input.clone()).encode()) else {
        panic!("no output");
    };
    let expected = reference(&input);
    assert_eq!(out.len(), 10);
    for (a, b) in out.iter().zip(&expected) {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "{out:?} vs {expected:?}"
        );
    }
    assert!(matches!(
        fx.ask(&Request::Infer(vec![1.0; 63]).encode()),
        Response::Error {
            code: ErrorCode::BadInput,
            ..
        }
    ));
    assert!(matches!(
        fx.ask(&[0x7f, 1, 2]),
        Response::Error {
            code: ErrorCode::Malformed,
            ..
        }
    ));

    worker.set_quarantined(true).expect("quarantine");
    // The control message and the next request race; the refusal is what the request after
    // the worker read it gets, so ask until it arrives (the worker answers in order).
    let refused = (0..1000).find_map(|_| match fx.ask(&Request::Info.encode()) {
        r @ Response::Error { .. } => Some(r),
        _ => None,
    });
    assert!(
        matches!(
            refused,
            Some(Response::Error {
                code: ErrorCode::Quarantined,
                ..
            })
        ),
        "{refused:?}"
    );
    worker.set_quarantined(false).expect("release");
    let served =
        (0..1000).any(|_| matches!(fx.ask(&Request::Info.encode()), Response::Model { .. }));
    assert!(served, "released, the worker serves again");
    assert!(worker.running());
}

#[test]
fn a_model_that_does_not_match_its_signature_is_not_served() {
    let fx = Fixture::new();
    let device = fx.se.public_key("device").expect("key");
    let mut other = DIGITS.to_vec();
    let n = other.len();
    other[n - 1] ^= 1;
    let container = crypt::encrypt(
        &other,
        &[RecipientKey::new(&device).expect("recipient")],
        EncryptOptions::default(),
    )
    .expect("encrypt");
    fs::write(&fx.config.model, container).expect("swap the model");
    let err =
        Worker::start(&fx.config, fx.se.as_ref(), "unused", false, None).expect_err("refused");
    assert!(
        err.to_string().contains("does not match its signature"),
        "{err}"
    );
}

const PYTHON: &str = "/var/cache/edgeward/venv/bin/python";

/// What a process of the worker's user gets trying to read process `pid`: 0 for success,
/// else the errno, for ptrace attach, opening /proc/PID/mem and /proc/PID/maps.
fn probe_as_worker_user(pid: u32) -> serde_json::Value {
    let (uid, gid) = lookup_user(USER).expect("user");
    let script = r#"
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
pid = int(sys.argv[1])
out = {"uid": os.getuid()}
if libc.ptrace(16, pid, None, None) == 0:
    out["ptrace"] = 0
    os.waitpid(pid, 0x40000000)
    libc.ptrace(17, pid, None, None)
else:
    out["ptrace"] = ctypes.get_errno()
for name in ("mem", "maps"):
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            f.read(1)
        out[name] = 0
    except OSError as e:
        out[name] = e.errno
print(json.dumps(out))
"#;
    let out = Command::new(PYTHON)
        .args(["-c", script, &pid.to_string()])
        .uid(uid)
        .gid(gid)
        .output()
        .expect("python (scripts/test.sh makes the venv)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

/// A process of the worker's user with none of its protections (and core dumps allowed).
fn unprotected(dir: &Path) -> std::process::Child {
    let (uid, gid) = lookup_user(USER).expect("user");
    // It raises its own soft core limit to the hard one (no capability needed), then sleeps.
    let child = Command::new("sh")
        .args(["-c", "ulimit -c hard && exec sleep 600"])
        .current_dir(dir)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep");
    // Until the shell has become `sleep`, its core limit may still be 0.
    let comm = format!("/proc/{}/comm", child.id());
    let became = (0..100_000).any(|_| {
        std::thread::yield_now();
        fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep")
    });
    assert!(became, "the shell did not exec sleep");
    child
}

#[test]
fn a_process_of_the_same_user_cannot_read_the_workers_memory() {
    let fx = Fixture::new();
    let worker = fx.start(false, None);
    let (uid, _) = lookup_user(USER).expect("user");

    let mut control = unprotected(&fx.dir.path().join("run"));
    let open = probe_as_worker_user(control.id());
    let _ = control.kill();
    let _ = control.wait();
    assert_eq!(
        open,
        serde_json::json!({"uid": uid, "ptrace": 0, "mem": 0, "maps": 0}),
        "the prober can read an unprotected process of its user"
    );

    let shut = probe_as_worker_user(worker.pid());
    assert_eq!(
        shut,
        serde_json::json!({"uid": uid, "ptrace": 1, "mem": 13, "maps": 13}),
        "EPERM for ptrace, EACCES for /proc/PID/mem and maps"
    );

    // Root still can (the documented limit): the weights are in the worker's memory.
    let needle = &DIGITS[DIGITS.len() - 256..];
    assert!(
        memory_contains(worker.pid(), needle),
        "the weights are in the worker, readable by root only"
    );
}

/// Whether root finds `needle` in the writable mappings of `pid`.
fn memory_contains(pid: u32, needle: &[u8]) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mut mem = fs::File::open(format!("/proc/{pid}/mem")).expect("mem");
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with("rw") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (a, b) = (
            u64::from_str_radix(a, 16).expect("hex"),
            u64::from_str_radix(b, 16).expect("hex"),
        );
        let mut buf = vec![0u8; (b - a) as usize];
        if mem.seek(SeekFrom::Start(a)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            return true;
        }
    }
    false
}

fn cores(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("core"))
        .collect()
}

#[test]
fn a_crashing_worker_leaves_no_core_dump() {
    let fx = Fixture::new();
    let run = fx.dir.path().join("run");
    let pattern = fs::read_to_string("/proc/sys/kernel/core_pattern").expect("core_pattern");
    // The first start makes the worker's directory (its user's).
    drop(fx.start(false, None));

    // The same crash of an unprotected process of the worker's user, in the worker's working
    // directory, dumps core (when the kernel writes cores to the working directory).
    let mut control = unprotected(&run);
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&control),
        rustix::process::Signal::ABORT,
    )
    .expect("abort");
    let status = control.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGABRT));
    if !pattern.starts_with('|') && !pattern.contains('/') {
        assert!(status.core_dumped(), "the unprotected process dumps core");
        assert!(!cores(&run).is_empty());
        for c in cores(&run) {
            fs::remove_file(run.join(c)).expect("remove the control's core");
        }
    }

    for signal in [
        rustix::process::Signal::ABORT,
        rustix::process::Signal::SEGV,
    ] {
        let mut worker = fx.start(false, None);
        let pid = rustix::process::Pid::from_raw(worker.pid() as i32).expect("pid");
        // Rust's runtime handles the first SIGSEGV (its stack-overflow check) and restores
        // the default: send until the worker is gone.
        let mut status = None;
        for _ in 0..10_000 {
            rustix::process::kill_process(pid, signal).expect("signal");
            if !worker.running() {
                status = Some(worker.wait().expect("wait"));
                break;
            }
            std::thread::yield_now();
        }
        let status = status.expect("the worker died of the signal");
        assert_eq!(status.signal(), Some(signal.as_raw()), "{status:?}");
        assert!(!status.core_dumped(), "{signal:?} dumped core");
        assert!(cores(&run).is_empty(), "{:?}", cores(&run));
    }
}

#[test]
fn a_system_call_outside_the_filter_kills_the_worker() {
    let fx = Fixture::new();
    for probe in [Probe::Socket, Probe::Exec] {
        let mut worker = fx.start(false, Some(probe));
        let status = worker.wait().expect("wait");
        assert_eq!(status.signal(), Some(libc::SIGSYS), "{probe:?}: {status:?}");
        assert!(!status.core_dumped());
    }
}
