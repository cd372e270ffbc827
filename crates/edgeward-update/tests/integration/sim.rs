//! A TUF repository under the tests' control, served over real HTTP on loopback.
//!
//! Like the conformance suite's simulator: the test edits the `signed` objects, publishes
//! them (version bump, signatures by the role's current keys), and can make the server
//! misbehave per file (stream endlessly, stall, trickle) to play the attacker.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use edgeward_update::tuf::hash::sha256;
use edgeward_update::tuf::keys::Scheme;
use edgeward_update::tuf::signer::{sign_metadata, SigningKey};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// How the server answers for one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Behaviour {
    /// The file's bytes, then close.
    Normal,
    /// The file's bytes, then zeros forever (no Content-Length).
    Endless,
    /// The headers, then nothing at all.
    Stall,
    /// One byte every 300 ms.
    Trickle,
    /// The announced length, but the connection is closed after this many body bytes.
    Cut(usize),
    /// Like `Cut` for the next request only, then `Normal`.
    CutOnce(usize),
}

#[derive(Default)]
struct Served {
    files: BTreeMap<String, Vec<u8>>,
    behaviour: BTreeMap<String, Behaviour>,
}

/// The repository and its server.
pub(crate) struct SimRepo {
    /// Signed payloads by role name.
    pub(crate) signed: BTreeMap<String, Value>,
    /// Current signing keys by role name.
    pub(crate) signers: BTreeMap<String, Vec<SigningKey>>,
    served: Arc<Mutex<Served>>,
    /// `http://127.0.0.1:PORT/`.
    pub(crate) base: String,
}

/// `expires` `days` from now (negative: in the past).
pub(crate) fn expires_in(days: i64) -> String {
    let t = OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero ns")
        + time::Duration::days(days);
    t.format(&Rfc3339).expect("formats")
}

/// A new Ed25519 key.
pub(crate) fn new_key() -> SigningKey {
    SigningKey::generate(Scheme::Ed25519).expect("key").0
}

fn common(kind: &str) -> Value {
    json!({"_type": kind, "spec_version": "1.0.31", "version": 1, "expires": expires_in(30)})
}

impl SimRepo {
    /// A repository with one key per top-level role, everything published as version 1.
    pub(crate) fn new() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let base = format!("http://{}/", listener.local_addr().expect("addr"));
        let served = Arc::new(Mutex::new(Served::default()));
        let s = served.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        let mut repo = SimRepo {
            signed: BTreeMap::new(),
            signers: BTreeMap::new(),
            served,
            base,
        };
        let mut root = common("root");
        root["consistent_snapshot"] = json!(true);
        root["keys"] = json!({});
        root["roles"] = json!({});
        repo.signed.insert("root".into(), root);
        for role in ["root", "timestamp", "snapshot", "targets"] {
            repo.set_role_keys(role, vec![new_key()], 1);
        }
        let mut targets = common("targets");
        targets["targets"] = json!({});
        repo.signed.insert("targets".into(), targets);
        let mut snapshot = common("snapshot");
        snapshot["meta"] = json!({"targets.json": {"version": 1}});
        repo.signed.insert("snapshot".into(), snapshot);
        let mut timestamp = common("timestamp");
        timestamp["meta"] = json!({"snapshot.json": {"version": 1}});
        repo.signed.insert("timestamp".into(), timestamp);
        for role in ["root", "targets", "snapshot", "timestamp"] {
            repo.sign_and_serve(role);
        }
        repo
    }

    /// Replaces `role`'s keys in the root (not yet published) and its signers.
    pub(crate) fn set_role_keys(&mut self, role: &str, keys: Vec<SigningKey>, threshold: u64) {
        let root = self.signed.get_mut("root").expect("root");
        let ids: Vec<String> = keys.iter().map(|k| k.keyid().to_string()).collect();
        for k in &keys {
            root["keys"][k.keyid()] = k.public_json();
        }
        root["roles"][role] = json!({"keyids": ids, "threshold": threshold});
        self.signers.insert(role.to_string(), keys);
    }

    /// The metadata URL.
    pub(crate) fn metadata_url(&self) -> String {
        format!("{}metadata/", self.base)
    }

    /// The targets URL.
    pub(crate) fn targets_url(&self) -> String {
        format!("{}targets/", self.base)
    }

    /// Version 1 of root, as a device ships it.
    pub(crate) fn initial_root(&self) -> Vec<u8> {
        self.file("metadata/1.root.json").expect("root v1")
    }

    /// A served file.
    pub(crate) fn file(&self, path: &str) -> Option<Vec<u8>> {
        self.served.lock().expect("lock").files.get(path).cloned()
    }

    /// Serves `bytes` at `path`.
    pub(crate) fn serve_file(&self, path: &str, bytes: Vec<u8>) {
        self.served
            .lock()
            .expect("lock")
            .files
            .insert(path.to_string(), bytes);
    }

    /// Makes the server misbehave for `path`.
    pub(crate) fn behave(&self, path: &str, b: Behaviour) {
        self.served
            .lock()
            .expect("lock")
            .behaviour
            .insert(path.to_string(), b);
    }

    /// Signs `role` with its current signers and serves it (without bumping the version).
    pub(crate) fn sign_and_serve(&mut self, role: &str) -> Vec<u8> {
        let extra: Vec<&SigningKey> = Vec::new();
        self.sign_and_serve_with(role, &extra)
    }

    /// Like [`Self::sign_and_serve`], adding signatures by `extra` keys (e.g. the old
    /// root keys in a rotation).
    pub(crate) fn sign_and_serve_with(&mut self, role: &str, extra: &[&SigningKey]) -> Vec<u8> {
        let signed = &self.signed[role];
        let mut keys: Vec<&SigningKey> = self.signers[role].iter().collect();
        keys.extend(extra.iter().copied());
        let bytes = sign_metadata(signed, &keys).expect("sign");
        let version = signed["version"].as_u64().expect("version");
        let path = match role {
            "timestamp" => "metadata/timestamp.json".to_string(),
            _ => format!(
                "metadata/{version}.{}.json",
                edgeward_update::tuf::store::quote(role)
            ),
        };
        self.serve_file(&path, bytes.clone());
        if role != "root" && role != "timestamp" && role != "snapshot" {
            self.signed.get_mut("snapshot").expect("snapshot")["meta"][format!("{role}.json")] =
                json!({"version": version});
        }
        if role == "snapshot" {
            self.signed.get_mut("timestamp").expect("timestamp")["meta"]["snapshot.json"] =
                json!({"version": version});
        }
        bytes
    }

    /// Bumps the versions of `roles` and publishes them in order.
    pub(crate) fn publish(&mut self, roles: &[&str]) {
        for role in roles {
            let v = self.signed[*role]["version"].as_u64().expect("version");
            self.signed.get_mut(*role).expect("role")["version"] = json!(v + 1);
            self.sign_and_serve(role);
        }
    }

    /// Adds `data` as target `path` in `role` (not yet published) and serves it.
    pub(crate) fn add_target(
        &mut self,
        role: &str,
        path: &str,
        data: &[u8],
        custom: Option<Value>,
    ) {
        let digest = hex::encode(sha256(data));
        let mut entry = json!({"length": data.len(), "hashes": {"sha256": digest}});
        if let Some(c) = custom {
            entry["custom"] = c;
        }
        self.signed.get_mut(role).expect("role")["targets"][path] = entry;
        let served = match path.rsplit_once('/') {
            Some((dir, name)) => format!("targets/{dir}/{digest}.{name}"),
            None => format!("targets/{digest}.{path}"),
        };
        self.serve_file(&served, data.to_vec());
    }

    /// The served path of target `path` (consistent snapshot name).
    pub(crate) fn target_file_path(&self, role: &str, path: &str) -> String {
        let digest = self.signed[role]["targets"][path]["hashes"]["sha256"]
            .as_str()
            .expect("hash")
            .to_string();
        match path.rsplit_once('/') {
            Some((dir, name)) => format!("targets/{dir}/{digest}.{name}"),
            None => format!("targets/{digest}.{path}"),
        }
    }

    /// Delegates `paths` from `delegator` to a new role `name` with one new key.
    pub(crate) fn delegate(
        &mut self,
        delegator: &str,
        name: &str,
        paths: &[&str],
        terminating: bool,
    ) {
        let key = new_key();
        let d = self.signed.get_mut(delegator).expect("delegator");
        if d.get("delegations").is_none() {
            d["delegations"] = json!({"keys": {}, "roles": []});
        }
        d["delegations"]["keys"][key.keyid()] = key.public_json();
        d["delegations"]["roles"]
            .as_array_mut()
            .expect("roles")
            .push(
                json!({"name": name, "keyids": [key.keyid()], "threshold": 1,
                         "terminating": terminating, "paths": paths}),
            );
        self.signers.insert(name.to_string(), vec![key]);
        let mut t = common("targets");
        t["targets"] = json!({});
        self.signed.insert(name.to_string(), t);
        self.sign_and_serve(name);
    }
}

fn serve(mut stream: TcpStream, served: &Mutex<Served>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .trim_start_matches('/')
        .to_string();
    let mut range: Option<(usize, usize)> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h == "\r\n" {
            break;
        }
        if let Some(spec) = h
            .strip_prefix("range: bytes=")
            .or_else(|| h.strip_prefix("Range: bytes="))
        {
            range = spec
                .trim()
                .split_once('-')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().unwrap_or(usize::MAX))));
        }
    }
    let (file, behaviour) = {
        let mut s = served.lock().expect("lock");
        let b = s.behaviour.get(&path).copied().unwrap_or(Behaviour::Normal);
        if let Behaviour::CutOnce(_) = b {
            s.behaviour.insert(path.clone(), Behaviour::Normal);
        }
        (s.files.get(&path).cloned(), b)
    };
    let Some(body) = file else {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    if let (Some((a, b)), Behaviour::Normal | Behaviour::Cut(_) | Behaviour::CutOnce(_)) =
        (range, behaviour)
    {
        let total = body.len();
        let b = b.min(total.saturating_sub(1));
        if a > b {
            let _ = stream.write_all(
                b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
        let part = &body[a..=b];
        let head = format!(
            "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {a}-{b}/{total}\r\nConnection: close\r\n\r\n",
            part.len()
        );
        let _ = stream.write_all(head.as_bytes());
        let send = match behaviour {
            Behaviour::Cut(n) | Behaviour::CutOnce(n) => n.min(part.len()),
            _ => part.len(),
        };
        let _ = stream.write_all(&part[..send]);
        return;
    }
    match behaviour {
        Behaviour::Normal | Behaviour::Cut(_) | Behaviour::CutOnce(_) => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
        Behaviour::Endless => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            let _ = stream.write_all(&body);
            let zeros = vec![0u8; 64 * 1024];
            // Bounded so a broken client cannot keep the test running: 1 GiB at most.
            for _ in 0..16 * 1024 {
                if stream.write_all(&zeros).is_err() {
                    return;
                }
            }
        }
        Behaviour::Stall => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            std::thread::sleep(Duration::from_secs(10));
        }
        Behaviour::Trickle => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            for b in body {
                if stream.write_all(&[b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
}
