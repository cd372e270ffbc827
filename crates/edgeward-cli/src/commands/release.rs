//! `edgeward release`: publishing signed releases to a TUF repository directory, listing
//! them, and rotating the repository's keys (rolling them out to devices through
//! edgeward-server: [`crate::commands::rollout`]).
//!
//! The repository (`--repo DIR`) can be served as it is by any static HTTP server or by
//! edgeward-server. Its keys live apart from it (`--keys`, default `DIR.keys`): the root
//! key encrypted with a passphrase (or the PKI's own `root.key` through `--root-key`),
//! the online signing key (`--targets-key`, e.g. the PKI's `signing.key`), and the
//! snapshot and timestamp keys. A directory that holds no repository yet is created on
//! the first publish.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use edgeward_update::delta::{ChunkIndex, Params};
use edgeward_update::release::{Kind, ReleaseInfo};
use edgeward_update::repo::{Expiry, Repository, RootKeys};
use edgeward_update::tuf::keys::Scheme;
use edgeward_update::tuf::signer::SigningKey;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use crate::outcome::{print_json, Failure, Outcome};
use crate::secrets::passphrase;

/// `edgeward release …`
#[derive(Subcommand, Debug)]
pub(crate) enum ReleaseCommand {
    /// Add files or directories as targets of a release and publish new metadata.
    #[command(disable_version_flag = true)]
    Publish(PublishArgs),
    /// List the targets of the repository with their release fields.
    List(RepoArgs),
    /// Write a new root version with new keys, signed by the old and the new root keys.
    RotateKeys(RotateArgs),
    /// Offer a published release to a share of devices, a list of devices or a hardware
    /// class (edgeward-server's admin API); the stage halts itself when too many revert.
    #[command(disable_version_flag = true)]
    Rollout(crate::commands::rollout::RolloutArgs),
    /// What devices reported about a release's rollout, and whether it halted.
    #[command(disable_version_flag = true)]
    Status(crate::commands::rollout::StatusArgs),
}

/// Where the repository and its keys are.
#[derive(Args, Debug)]
pub(crate) struct RepoArgs {
    /// The repository directory (metadata/ and targets/).
    #[arg(long)]
    pub(crate) repo: PathBuf,
}

/// The repository's keys.
#[derive(Args, Debug)]
pub(crate) struct KeyArgs {
    /// Directory of the repository's keys (default: REPO.keys beside the repository).
    #[arg(long)]
    pub(crate) keys: Option<PathBuf>,
    /// The root key (encrypted PKCS#8), e.g. the PKI's root.key; default KEYS/root.key.
    #[arg(long)]
    pub(crate) root_key: Option<PathBuf>,
    /// The online signing key (targets role), e.g. the PKI's signing.key; default
    /// KEYS/targets.key.
    #[arg(long)]
    pub(crate) targets_key: Option<PathBuf>,
    /// Environment variable holding the root key's passphrase.
    #[arg(long, default_value = "EDGEWARD_ROOT_PASSPHRASE")]
    pub(crate) passphrase_env: String,
}

/// `release publish`.
#[derive(Args, Debug)]
pub(crate) struct PublishArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    keys: KeyArgs,
    /// Release version (recorded in each target's custom fields).
    #[arg(long = "version", id = "release_version")]
    version: String,
    /// Hardware classes the release is for.
    #[arg(long, value_delimiter = ',', required = true)]
    hardware: Vec<String>,
    /// Anti-rollback counter: devices refuse releases below their secure element's.
    #[arg(long, default_value_t = 0)]
    security_counter: u64,
    /// What the release installs.
    #[arg(long, default_value = "firmware", value_parser = ["firmware", "app", "model"])]
    kind: String,
    /// Target path prefix (e.g. `models/`), for delegated roles' paths.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Targets role to publish in: `targets`, or a delegated role whose key is
    /// KEYS/ROLE.key.
    #[arg(long, default_value = "targets")]
    role: String,
    /// Files or directories (each file of a directory becomes a target DIRNAME/PATH).
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// `release rotate-keys`.
#[derive(Args, Debug)]
pub(crate) struct RotateArgs {
    #[command(flatten)]
    repo: RepoArgs,
    #[command(flatten)]
    keys: KeyArgs,
    /// Roles that get new keys (root, targets, snapshot, timestamp); the old keys are
    /// moved to KEYS/previous/ and no longer trusted by devices after their next check.
    #[arg(long = "role", value_delimiter = ',', default_value = "targets")]
    roles: Vec<String>,
}

/// Runs a `release` command.
pub(crate) fn run(cmd: ReleaseCommand, json: bool) -> Outcome {
    match cmd {
        ReleaseCommand::Publish(a) => publish(a, json),
        ReleaseCommand::List(a) => list(&a, json),
        ReleaseCommand::RotateKeys(a) => rotate(a, json),
        ReleaseCommand::Rollout(a) => crate::commands::rollout::rollout(a, json),
        ReleaseCommand::Status(a) => crate::commands::rollout::status(a, json),
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn op(e: impl std::fmt::Display) -> Failure {
    Failure::operator(e)
}

fn key_dir(repo: &Path, keys: &KeyArgs) -> PathBuf {
    keys.keys.clone().unwrap_or_else(|| {
        let mut name = repo.as_os_str().to_owned();
        name.push(".keys");
        PathBuf::from(name)
    })
}

/// Loads a PKCS#8 PEM key, decrypting it with the passphrase when it is encrypted.
fn load_key(path: &Path, passphrase_env: &str) -> Result<SigningKey, Failure> {
    let pem = Zeroizing::new(
        std::fs::read_to_string(path).map_err(|e| op(format!("{}: {e}", path.display())))?,
    );
    let der = if pem.contains("ENCRYPTED PRIVATE KEY") {
        let pass = passphrase(passphrase_env, "Root key passphrase: ", false)?;
        edgeward_pki::keyfile::decrypt_pkcs8(&pem, &pass)
            .map_err(|e| op(format!("{}: {e}", path.display())))?
    } else {
        edgeward_pki::keyfile::read_pkcs8(&pem)
            .map_err(|e| op(format!("{}: {e}", path.display())))?
    };
    SigningKey::from_pkcs8_der(&der).map_err(|e| op(format!("{}: {e}", path.display())))
}

/// Makes a new Ed25519 key and writes it to `path` (mode 0600), encrypted when
/// `passphrase` is given.
fn new_key(path: &Path, passphrase: Option<&[u8]>) -> Result<SigningKey, Failure> {
    let (key, der) = SigningKey::generate(Scheme::Ed25519).map_err(op)?;
    let pem = match passphrase {
        Some(p) => Zeroizing::new(edgeward_pki::keyfile::encrypt_pkcs8(&der, p).map_err(op)?),
        None => edgeward_pki::keyfile::pkcs8_pem(&der),
    };
    write_secret(path, pem.as_bytes())?;
    Ok(key)
}

/// Writes a private key file (mode 0600) atomically, refusing to replace one.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), Failure> {
    edgeward_fs::write_new(path, bytes, edgeward_fs::Access::Private)
        .map_err(|e| op(format!("{}: {e}", path.display())))
}

/// The key at `explicit`, else `dir/NAME.key`; created there when `create` and missing.
fn role_key(
    dir: &Path,
    name: &str,
    explicit: Option<&Path>,
    create: bool,
    passphrase_env: &str,
) -> Result<SigningKey, Failure> {
    let path = explicit.map_or_else(|| dir.join(format!("{name}.key")), Path::to_path_buf);
    if create && explicit.is_none() && !path.exists() {
        let pass = if name == "root" {
            Some(passphrase(
                passphrase_env,
                "New root key passphrase: ",
                true,
            )?)
        } else {
            None
        };
        return new_key(&path, pass.as_ref().map(|p| p.as_slice()));
    }
    load_key(&path, passphrase_env)
}

fn open_or_create(repo: &Path, keys: &KeyArgs) -> Result<(Repository, PathBuf), Failure> {
    let dir = key_dir(repo, keys);
    if repo.join("metadata/1.root.json").exists() {
        return Ok((
            Repository::open(repo, Expiry::default(), now()).map_err(op)?,
            dir,
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| op(format!("{}: {e}", dir.display())))?;
    let env = &keys.passphrase_env;
    let root = role_key(&dir, "root", keys.root_key.as_deref(), true, env)?;
    let targets = role_key(&dir, "targets", keys.targets_key.as_deref(), true, env)?;
    let snapshot = role_key(&dir, "snapshot", None, true, env)?;
    let timestamp = role_key(&dir, "timestamp", None, true, env)?;
    let repository = Repository::create(
        repo,
        &RootKeys {
            root: vec![&root],
            targets: &targets,
            snapshot: &snapshot,
            timestamp: &timestamp,
        },
        Expiry::default(),
        now(),
    )
    .map_err(op)?;
    Ok((repository, dir))
}

/// Each file to publish and its target path.
fn expand(files: &[PathBuf], prefix: &str) -> Result<Vec<(PathBuf, String)>, Failure> {
    let mut out = Vec::new();
    for f in files {
        let name = f
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| op(format!("{}: no UTF-8 file name", f.display())))?;
        if f.is_dir() {
            let mut stack = vec![(f.clone(), format!("{prefix}{name}"))];
            while let Some((dir, base)) = stack.pop() {
                let entries =
                    std::fs::read_dir(&dir).map_err(|e| op(format!("{}: {e}", dir.display())))?;
                for e in entries {
                    let e = e.map_err(|e| op(format!("{}: {e}", dir.display())))?;
                    let n = e
                        .file_name()
                        .into_string()
                        .map_err(|_| op("a file name is not UTF-8"))?;
                    let p = e.path();
                    if p.is_dir() {
                        stack.push((p, format!("{base}/{n}")));
                    } else {
                        out.push((p, format!("{base}/{n}")));
                    }
                }
            }
        } else {
            out.push((f.clone(), format!("{prefix}{name}")));
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn publish(a: PublishArgs, json: bool) -> Outcome {
    let kind = Kind::parse(&a.kind).ok_or_else(|| op("kind must be firmware, app or model"))?;
    let (mut repo, dir) = open_or_create(&a.repo.repo, &a.keys)?;
    let env = &a.keys.passphrase_env;
    let signer = if a.role == "targets" {
        role_key(&dir, "targets", a.keys.targets_key.as_deref(), false, env)?
    } else {
        role_key(&dir, &a.role, None, false, env)?
    };
    let snapshot = role_key(&dir, "snapshot", None, false, env)?;
    let timestamp = role_key(&dir, "timestamp", None, false, env)?;
    let info = ReleaseInfo {
        version: a.version.clone(),
        kind,
        hardware: a.hardware.clone(),
        security_counter: a.security_counter,
    };
    let mut published = Vec::new();
    for (file, path) in expand(&a.files, &a.prefix)? {
        let mut custom = info.to_custom();
        let reader =
            std::fs::File::open(&file).map_err(|e| op(format!("{}: {e}", file.display())))?;
        let index = ChunkIndex::build(std::io::BufReader::new(reader), Params::default())
            .map_err(|e| op(format!("{}: {e}", file.display())))?;
        custom["edgeward"]["chunks"] = index.to_json();
        let mut bundle_path = PathBuf::from(&file).into_os_string();
        bundle_path.push(".sig");
        let bundle_path = PathBuf::from(bundle_path);
        if bundle_path.is_file() {
            let bundle_target = format!("{path}.sig");
            repo.add_target(&a.role, &bundle_target, &bundle_path, None)
                .map_err(op)?;
            custom["edgeward"]["bundle"] = json!(bundle_target);
        }
        let entry = repo
            .add_target(&a.role, &path, &file, Some(custom))
            .map_err(op)?;
        published.push(json!({"target": path, "length": entry["length"],
                              "chunks": index.chunks.len(),
                              "bundle": entry["custom"]["edgeward"]["bundle"]}));
    }
    repo.publish(&[(a.role.as_str(), &[&signer])], &snapshot, &timestamp)
        .map_err(op)?;
    if json {
        print_json(
            &json!({"ok": true, "version": a.version, "role": a.role, "targets": published}),
        );
    } else {
        for p in &published {
            println!(
                "published {} ({} bytes, {} chunks) as {} in role {}",
                p["target"].as_str().unwrap_or(""),
                p["length"],
                p["chunks"],
                a.version,
                a.role
            );
        }
    }
    Ok(())
}

fn list(repo_args: &RepoArgs, json: bool) -> Outcome {
    let repo = Repository::open(&repo_args.repo, Expiry::default(), now()).map_err(op)?;
    let mut rows = Vec::new();
    for role in repo.role_names() {
        for (path, entry) in repo.targets(&role).into_iter().flatten() {
            let e = &entry["custom"]["edgeward"];
            rows.push(json!({
                "role": role, "target": path, "length": entry["length"],
                "version": e["version"], "kind": e["kind"], "hardware": e["hardware"],
                "security_counter": e["security_counter"], "chunks": e["chunks"]["count"],
                "bundle": e["bundle"],
            }));
        }
    }
    if json {
        print_json(&json!({"ok": true, "targets": rows}));
        return Ok(());
    }
    for r in &rows {
        let text = |v: &Value| v.as_str().map_or_else(|| "-".to_string(), str::to_string);
        let hw = r["hardware"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .unwrap_or_else(|| "-".into());
        println!(
            "{}\t{}\t{} bytes\tversion {}\t{}\thardware {}\tcounter {}\tchunks {}\t{}",
            text(&r["role"]),
            text(&r["target"]),
            r["length"],
            text(&r["version"]),
            text(&r["kind"]),
            hw,
            r["security_counter"],
            r["chunks"],
            text(&r["bundle"]),
        );
    }
    Ok(())
}

fn rotate(a: RotateArgs, json: bool) -> Outcome {
    let mut repo = Repository::open(&a.repo.repo, Expiry::default(), now()).map_err(op)?;
    let dir = key_dir(&a.repo.repo, &a.keys);
    let env = &a.keys.passphrase_env;
    for r in &a.roles {
        if !["root", "targets", "snapshot", "timestamp"].contains(&r.as_str()) {
            return Err(op(format!(
                "--role {r:?}: must be root, targets, snapshot or timestamp"
            )));
        }
    }
    let old_root = role_key(&dir, "root", a.keys.root_key.as_deref(), false, env)?;
    let version = repo.root()["version"].as_u64().unwrap_or(0);
    let previous = dir.join("previous");
    std::fs::create_dir_all(&previous).map_err(|e| op(format!("{}: {e}", previous.display())))?;
    let mut fresh: Vec<(String, SigningKey)> = Vec::new();
    for role in &a.roles {
        let path = dir.join(format!("{role}.key"));
        let explicit = (role == "root" && a.keys.root_key.is_some())
            || (role == "targets" && a.keys.targets_key.is_some());
        if path.exists() && !explicit {
            let old = previous.join(format!("{role}-root{version}.key"));
            std::fs::rename(&path, &old).map_err(|e| op(format!("{}: {e}", path.display())))?;
        }
        let pass = if role == "root" {
            Some(passphrase(env, "New root key passphrase: ", true)?)
        } else {
            None
        };
        fresh.push((
            role.clone(),
            new_key(&path, pass.as_ref().map(|p| p.as_slice()))?,
        ));
    }
    // A rotated role's new key was just written to KEYS/ROLE.key.
    let pick = |role: &str| -> Result<SigningKey, Failure> {
        if fresh.iter().any(|(r, _)| r == role) {
            load_key(&dir.join(format!("{role}.key")), env)
        } else if role == "targets" {
            role_key(&dir, "targets", a.keys.targets_key.as_deref(), false, env)
        } else {
            role_key(&dir, role, None, false, env)
        }
    };
    let targets = pick("targets")?;
    let snapshot = pick("snapshot")?;
    let timestamp = pick("timestamp")?;
    let replace: Vec<(&str, Vec<&SigningKey>)> =
        fresh.iter().map(|(r, k)| (r.as_str(), vec![k])).collect();
    let new_version = repo
        .rotate(&[&old_root], &replace, &targets, &snapshot, &timestamp)
        .map_err(op)?;
    let rotated: Vec<Value> = fresh
        .iter()
        .map(|(r, k)| json!({"role": r, "keyid": k.keyid()}))
        .collect();
    if json {
        print_json(&json!({"ok": true, "root_version": new_version, "rotated": rotated}));
    } else {
        for (r, k) in &fresh {
            println!("role {r}: new key {}", k.keyid());
        }
        println!("root version {new_version} signed by the old and the new root keys");
    }
    Ok(())
}
