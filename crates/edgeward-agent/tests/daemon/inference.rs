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
    time::{Duration, Instant},
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
use edgeward_proto::inference::{
    read_frame, write_frame, ErrorCode, MetricsReport, Request, Response,
};
use edgeward_se::{KeyAlgorithm, SecureElement};
use serde_json::Value;
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

/// Polls `f` until it holds; fails after `secs` seconds (a deadline, not a timing claim).
pub(crate) fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out after {secs} s waiting for {what}");
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

    // The worker acknowledges a quarantine change once its request path sees it: the very
    // next request is refused, and served again after the release.
    worker.set_quarantined(true).expect("quarantine");
    assert!(matches!(
        fx.ask(&Request::Info.encode()),
        Response::Error {
            code: ErrorCode::Quarantined,
            ..
        }
    ));
    assert!(matches!(
        fx.ask(&Request::Infer(input).encode()),
        Response::Error {
            code: ErrorCode::Quarantined,
            ..
        }
    ));
    worker.set_quarantined(false).expect("release");
    assert!(matches!(
        fx.ask(&Request::Info.encode()),
        Response::Model { .. }
    ));
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

/// The system's Python (scripts/test.sh installs `python3`): the probe needs only its standard
/// library, and the worker's user must be able to run it (a venv or pyenv under /root is not
/// reachable by that user).
const PYTHON: &str = "/usr/bin/python3";

/// What a process of the worker's user gets trying to read process `pid`: 0 for success,
/// else the errno, for ptrace attach, reading /proc/PID/maps, and reading a byte of the
/// first mapping through /proc/PID/mem.
fn probe_as_worker_user(pid: u32) -> Value {
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
try:
    with open(f"/proc/{pid}/maps", "rb") as f:
        first = int(f.readline().split(b"-")[0], 16)
    out["maps"] = 0
except OSError as e:
    first, out["maps"] = None, e.errno
try:
    with open(f"/proc/{pid}/mem", "rb") as f:
        if first is not None:
            f.seek(first)
            f.read(1)
    out["mem"] = 0
except OSError as e:
    out["mem"] = e.errno
print(json.dumps(out))
"#;
    let out = Command::new(PYTHON)
        .args(["-c", script, &pid.to_string()])
        .uid(uid)
        .gid(gid)
        .output()
        .expect("/usr/bin/python3");
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
        .args(["-c", r#"ulimit -c "$(ulimit -H -c)" && exec sleep 600"#])
        .current_dir(dir)
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .spawn()
        .expect("sleep");
    // Until the shell has become `sleep`, its core limit may still be 0.
    let comm = format!("/proc/{}/comm", child.id());
    until(30, "the shell to exec sleep", || {
        fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep")
    });
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
        until(30, "the worker to die of the signal", || {
            rustix::process::kill_process(pid, signal).expect("signal");
            !worker.running()
        });
        let status = worker.wait().expect("wait");
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

/// The worker of process `agent`, found in /proc by its parent.
fn worker_of(agent: u32) -> Option<u32> {
    fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let parent = status.lines().find_map(|l| l.strip_prefix("PPid:"))?.trim();
        // The kernel keeps 15 bytes of the name.
        (comm.trim() == &WORKER_NAME[..15] && parent == agent.to_string()).then_some(pid)
    })
}

const WORKER_NAME: &str = "edgeward-inference-worker";

/// Whether a stored telemetry record of `id` satisfies `f`.
async fn a_record(server: &crate::common::Server, id: &str, f: impl Fn(&Value) -> bool) -> bool {
    server.telemetry(id).await.iter().any(|b| {
        b["records"]
            .as_array()
            .is_some_and(|records| records.iter().any(&f))
    })
}

/// The daemon end to end: the agent enrolls, starts the worker as its own user with the
/// model's key released by the element, the application infers over the local socket and
/// reports its measurements on the metrics socket, and they reach the server's registry with
/// the telemetry (with the hash of the model the worker serves); the server's signed
/// `quarantine` command stops inference before its result is posted, `release` resumes it,
/// and the worker ends with the agent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_runs_the_worker_reports_inference_metrics_and_quarantine_stops_it() {
    use crate::common::{agent_config, device_id, wait_for, Server};
    let server = Server::start().await;
    let id = device_id("infer");
    let token = server.register(&id).await;
    let fx = Fixture::new();
    let c = &fx.config;
    let metrics_socket = fx.dir.path().join("metrics.sock");
    let extra = format!(
        "inference_socket = \"{}\"\n[inference]\nmodel = \"{}\"\nsignature = \"{}\"\ntrust_roots = \"{}\"\ncrls = \"{}\"\nkey_slot = \"device\"\nsocket = \"{}\"\nworker = \"{}\"\n",
        metrics_socket.display(),
        c.model.display(),
        c.signature.display(),
        c.trust_roots.display(),
        c.crls.as_ref().expect("crl").display(),
        c.socket.display(),
        c.worker_exe().display(),
    );
    // The agent opens the fixture's element (soft:DIR/se), which holds the model's key.
    let config = agent_config(&server, fx.dir.path(), &token, &extra);
    let log = fx.dir.path().join("agent.log");
    let mut agent = Command::new(env!("CARGO_BIN_EXE_edgeward-agent"))
        .args(["run", "--config"])
        .arg(&config)
        .stderr(fs::File::create(&log).expect("log"))
        .spawn()
        .expect("agent starts");
    let digest = hex::encode(Sha256::digest(DIGITS));

    wait_for(60, "telemetry naming the worker's model", || async {
        a_record(&server, &id, |r| {
            r["inference"]["worker"]
                == serde_json::json!({"model_sha256": digest, "state": "serving"})
        })
        .await
    })
    .await;
    let worker = worker_of(agent.id()).expect("the agent's worker");
    let (uid, _) = lookup_user(USER).expect("user");
    assert_eq!(
        status_field(worker, "Uid").split_whitespace().next(),
        Some(uid.to_string().as_str())
    );
    assert_eq!(status_field(worker, "Seccomp"), "2");

    // The application: infers over the inference socket, reports on the metrics socket.
    let Response::Model { sha256, .. } = fx.ask(&Request::Info.encode()) else {
        panic!("no model description");
    };
    assert_eq!(hex::encode(sha256), digest);
    let started = Instant::now();
    let n = 20;
    for k in 0..n {
        let input: Vec<f32> = (0..64).map(|i| ((i + k) % 17) as f32 / 16.0).collect();
        let Response::Output(out) = fx.ask(&Request::Infer(input.clone()).encode()) else {
            panic!("no output");
        };
        assert_eq!(out.len(), 10);
    }
    let took = started.elapsed().as_secs_f64();
    let report = MetricsReport {
        inferences_per_sec: n as f64 / took,
        latency_ms: took * 1000.0 / n as f64,
        model_sha256: digest.clone(),
    };
    let mut m = UnixStream::connect(&metrics_socket).expect("metrics socket");
    write_frame(&mut m, &report.encode()).expect("report");
    wait_for(30, "the application's report in the telemetry", || async {
        a_record(&server, &id, |r| {
            // Through JSON twice: equal to the last bit or one off.
            let near = |v: &Value, want: f64| {
                v.as_f64()
                    .is_some_and(|x| (x - want).abs() <= want.abs() * 1e-12)
            };
            near(&r["metrics"]["inference_rate"], report.inferences_per_sec)
                && near(&r["metrics"]["inference_latency_ms"], report.latency_ms)
                && r["inference"]["model_sha256"] == digest.as_str()
                && r["inference"]["worker"]["model_sha256"] == digest.as_str()
        })
        .await
    })
    .await;
    drop(m);

    // The signed quarantine command: the worker refuses before the result is posted.
    let (cid, _) = server
        .command(
            &id,
            "quarantine",
            serde_json::json!({ "reason": "extraction" }),
        )
        .await;
    let o = server.answered(&id, cid).await;
    assert_eq!(o["status"], "done", "{o}");
    assert!(matches!(
        fx.ask(&Request::Infer(vec![0.5; 64]).encode()),
        Response::Error {
            code: ErrorCode::Quarantined,
            ..
        }
    ));
    assert_eq!(
        worker_of(agent.id()),
        Some(worker),
        "the same worker, refusing"
    );
    let (cid, _) = server.command(&id, "release", Value::Null).await;
    let o = server.answered(&id, cid).await;
    assert_eq!(o["status"], "done", "{o}");
    assert!(matches!(
        fx.ask(&Request::Infer(vec![0.5; 64]).encode()),
        Response::Output(_)
    ));

    // The worker ends with the agent.
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(agent.id().to_string())
        .status();
    assert_eq!(agent.wait().expect("wait").code(), Some(0));
    until(30, "the worker to end with the agent", || {
        !Path::new(&format!("/proc/{worker}")).exists()
    });
    let log = fs::read_to_string(&log).expect("log");
    assert!(log.contains("inference worker serving"), "{log}");
}
