//! `edgeward model encrypt | decrypt | rewrap | inspect`: encrypted model containers (the
//! format and its guarantees are in `edgeward_model::crypt` and `docs/encrypted-models.md`).

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
};

use clap::Args;
use edgeward_core::keys::PublicKey;
use edgeward_fs::{Access, AtomicFile};
use edgeward_model::crypt::{
    self,
    container::{Header, MAX_HEADER_LEN, MAX_PLAINTEXT_LEN},
    CryptError, EncryptOptions, RecipientKey,
};
use serde_json::json;

use crate::{
    args::parse_size,
    outcome::{print_json, read_operator_file, Failure, Outcome},
};

/// Arguments of `model encrypt`.
#[derive(Args, Debug)]
pub(crate) struct ModelEncryptArgs {
    /// The model file to encrypt.
    pub(crate) input: PathBuf,
    /// Where to write the container.
    #[arg(short = 'o', long = "output")]
    pub(crate) output: PathBuf,
    /// A recipient: a device certificate or a P-256 public key, PEM (repeatable).
    #[arg(long, required = true)]
    pub(crate) recipient: Vec<PathBuf>,
    /// Plaintext bytes per chunk (4KiB to 16MiB).
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub(crate) chunk_size: u64,
    /// Container format: 2 names recipients by key id; 1 (by SHA-256 of the key's DER) is
    /// for devices whose Edgeward predates version 2.
    #[arg(long, default_value_t = crypt::container::VERSION,
          value_parser = clap::value_parser!(u8).range(1..=2))]
    pub(crate) format_version: u8,
}

/// Arguments of `model decrypt`.
#[derive(Args, Debug)]
pub(crate) struct ModelDecryptArgs {
    /// The container.
    pub(crate) input: PathBuf,
    /// Where to write the plaintext model (`-`: standard output).
    #[arg(short = 'o', long = "output")]
    pub(crate) output: PathBuf,
    /// The secure element holding the device key (e.g. soft:/var/lib/edgeward/se).
    #[arg(long, env = "EDGEWARD_SE")]
    pub(crate) se: String,
    /// The element slot of the device key.
    #[arg(long, default_value = "device")]
    pub(crate) slot: String,
}

/// Arguments of `model rewrap`.
#[derive(Args, Debug)]
pub(crate) struct ModelRewrapArgs {
    /// The container (rewritten in place unless -o is given).
    pub(crate) input: PathBuf,
    /// A recipient to add: device certificate or P-256 public key, PEM (repeatable).
    #[arg(long)]
    pub(crate) add: Vec<PathBuf>,
    /// A recipient to remove, by key id as `inspect` prints it (8+ hex digits; repeatable).
    #[arg(long)]
    pub(crate) remove: Vec<String>,
    /// The secure element of a current recipient (it opens the file key).
    #[arg(long, env = "EDGEWARD_SE")]
    pub(crate) se: String,
    /// The element slot of that recipient's key.
    #[arg(long, default_value = "device")]
    pub(crate) slot: String,
    /// Write the rewrapped container here instead of in place.
    #[arg(short = 'o', long = "output")]
    pub(crate) output: Option<PathBuf>,
}

/// Arguments of `model inspect`.
#[derive(Args, Debug)]
pub(crate) struct ModelInspectArgs {
    /// The container.
    pub(crate) input: PathBuf,
}

impl From<CryptError> for Failure {
    fn from(e: CryptError) -> Self {
        if e.is_rejection() {
            Failure::rejected(e)
        } else {
            Failure::operator(e)
        }
    }
}

/// `edgeward model encrypt IN -o OUT --recipient PEM…`.
pub(crate) fn encrypt(a: ModelEncryptArgs, json: bool) -> Outcome {
    let recipients = a
        .recipient
        .iter()
        .map(|p| load_recipient(p))
        .collect::<Result<Vec<_>, _>>()?;
    let len = std::fs::metadata(&a.input)
        .map_err(|e| Failure::operator(format!("{}: {e}", a.input.display())))?
        .len();
    if len > MAX_PLAINTEXT_LEN {
        return Err(Failure::operator(format!(
            "{} is {len} bytes; a container holds at most {MAX_PLAINTEXT_LEN}",
            a.input.display()
        )));
    }
    let chunk_size =
        u32::try_from(a.chunk_size).map_err(|_| Failure::operator("--chunk-size is too large"))?;
    let plaintext = zeroize::Zeroizing::new(read_operator_file(&a.input)?);
    let container = crypt::encrypt(
        &plaintext,
        &recipients,
        EncryptOptions {
            chunk_size,
            version: a.format_version,
        },
    )?;
    write_atomic(&a.output, &[&container])?;
    let fingerprints: Vec<String> = recipients.iter().map(RecipientKey::fingerprint).collect();
    if json {
        print_json(&json!({
            "encrypted": a.input,
            "output": a.output,
            "bytes": container.len(),
            "chunk_size": chunk_size,
            "version": a.format_version,
            "recipients": fingerprints,
        }));
    } else {
        println!(
            "encrypted {} → {} for {} recipient{}: {}",
            a.input.display(),
            a.output.display(),
            fingerprints.len(),
            if fingerprints.len() == 1 { "" } else { "s" },
            fingerprints.join(", ")
        );
    }
    Ok(())
}

/// `edgeward model decrypt IN -o OUT --se URI [--slot NAME]` (debugging only).
pub(crate) fn decrypt(a: ModelDecryptArgs, json: bool) -> Outcome {
    let target = if a.output == Path::new("-") {
        "standard output".to_string()
    } else {
        a.output.display().to_string()
    };
    eprintln!(
        "edgeward: warning: `model decrypt` writes the plaintext model to {target} — for debugging only; devices load models with the verified in-memory path"
    );
    let se = open_element(&a.se)?;
    let container = File::open(&a.input).map_err(|e| io_failure(&a.input, e))?;
    if a.output == Path::new("-") {
        // Streams: the length is checked first and only authenticated chunks are written,
        // but a chunk modified mid-file is found after the chunks before it were written
        // (the exit status says so; see docs/encrypted-models.md).
        let mut out = std::io::stdout().lock();
        crypt::decrypt_file_to(&container, &*se, &a.slot, &mut out)?;
        return Ok(());
    }
    // To a 0600 temporary file beside the output, renamed only once every chunk
    // authenticated; removed on any failure.
    let dir = parent_dir(&a.output);
    let mut tmp = AtomicFile::create(&a.output, Access::Private).map_err(|e| io_failure(dir, e))?;
    let len = crypt::decrypt_file_to(&container, &*se, &a.slot, &mut tmp)?;
    tmp.commit().map_err(|e| io_failure(&a.output, e))?;
    if json {
        print_json(&json!({
            "decrypted": a.input,
            "output": a.output,
            "bytes": len,
            "slot": a.slot,
        }));
    } else {
        println!(
            "decrypted {} → {} ({} bytes)",
            a.input.display(),
            a.output.display(),
            len
        );
    }
    Ok(())
}

/// `edgeward model rewrap IN [--add PEM…] [--remove KEY_ID…] --se URI`.
pub(crate) fn rewrap(a: ModelRewrapArgs, json: bool) -> Outcome {
    if a.add.is_empty() && a.remove.is_empty() {
        return Err(Failure::operator("nothing to do: give --add or --remove"));
    }
    let add = a
        .add
        .iter()
        .map(|p| load_recipient(p))
        .collect::<Result<Vec<_>, _>>()?;
    let se = open_element(&a.se)?;
    let mut file = File::open(&a.input).map_err(|e| io_failure(&a.input, e))?;
    let head = read_head(&mut file, &a.input)?;
    let rewrapped = crypt::rewrap(&head, &*se, &a.slot, &add, &a.remove)?;
    // Only the header changes: the payload is copied byte for byte.
    file.seek(SeekFrom::Start(rewrapped.old_header_len as u64))
        .map_err(|e| io_failure(&a.input, e))?;
    let output = a.output.as_deref().unwrap_or(&a.input);
    let dir = parent_dir(output);
    let mut tmp = AtomicFile::create(output, Access::Private).map_err(|e| io_failure(dir, e))?;
    tmp.write_all(&rewrapped.header)
        .and_then(|()| std::io::copy(&mut file, &mut tmp).map(|_| ()))
        .and_then(|()| tmp.commit())
        .map_err(|e| io_failure(output, e))?;
    if json {
        print_json(&json!({
            "rewrapped": a.input,
            "output": output,
            "added": rewrapped.added,
            "removed": rewrapped.removed,
        }));
    } else {
        println!(
            "rewrapped {} (added: {}; removed: {})",
            output.display(),
            list_or_none(&rewrapped.added),
            list_or_none(&rewrapped.removed)
        );
    }
    Ok(())
}

/// `edgeward model inspect IN [--json]`: the header, unauthenticated (no key needed).
pub(crate) fn inspect(a: ModelInspectArgs, json: bool) -> Outcome {
    let mut file = File::open(&a.input).map_err(|e| io_failure(&a.input, e))?;
    let file_len = file.metadata().map_err(|e| io_failure(&a.input, e))?.len();
    let head = read_head(&mut file, &a.input)?;
    let (header, header_len) = Header::parse(&head)?;
    let f = &header.fixed;
    let expected = header_len as u64 + f.payload_len();
    let payload = match file_len.cmp(&expected) {
        std::cmp::Ordering::Equal => "complete length",
        std::cmp::Ordering::Less => "truncated",
        std::cmp::Ordering::Greater => "trailing data",
    };
    // What a recipient id hashes: the key id's PEM text from version 2, the SPKI DER before.
    let (ids, ids_text) = if f.version == crypt::container::VERSION_SPKI_IDS {
        ("sha256-spki", "sha256 spki")
    } else {
        ("sha256-pem", "key id, sha256 pem")
    };
    if json {
        print_json(&json!({
            "format": "edgeward-model-crypt",
            "version": f.version,
            "recipient_ids": ids,
            "cipher": "AES-256-GCM STREAM",
            "hpke": "DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM",
            "chunk_size": f.chunk_size,
            "chunks": f.chunk_count(),
            "plaintext_bytes": f.plaintext_len,
            "header_bytes": header_len,
            "file_bytes": file_len,
            "payload": payload,
            "recipients": header.recipients.iter().map(|r| json!({
                "fingerprint": r.fingerprint(),
                "id": hex::encode(r.id),
            })).collect::<Vec<_>>(),
        }));
    } else {
        println!("format:     edgeward-model-crypt v{}", f.version);
        println!("cipher:     AES-256-GCM STREAM");
        println!("hpke:       DHKEM(P-256, HKDF-SHA256), HKDF-SHA256, AES-256-GCM");
        println!("chunks:     {} of {} bytes", f.chunk_count(), f.chunk_size);
        println!("plaintext:  {} bytes", f.plaintext_len);
        println!("file:       {file_len} bytes ({payload})");
        println!("recipients: {}", header.recipients.len());
        for r in &header.recipients {
            println!("  {}  ({ids_text} {})", r.fingerprint(), hex::encode(r.id));
        }
    }
    Ok(())
}

fn load_recipient(path: &Path) -> Result<RecipientKey, Failure> {
    let pem = read_operator_file(path)?;
    let key = PublicKey::from_pem(&pem)
        .map_err(|e| Failure::operator(format!("{}: {e}", path.display())))?;
    RecipientKey::new(&key).map_err(|e| Failure::operator(format!("{}: {e}", path.display())))
}

fn open_element(uri: &str) -> Result<Box<dyn edgeward_se::SecureElement>, Failure> {
    edgeward_se::open(uri).map_err(|e| Failure::operator(format!("--se {uri}: {e}")))
}

/// The start of the file, long enough for any header.
fn read_head(file: &mut File, path: &Path) -> Result<Vec<u8>, Failure> {
    let mut head = Vec::new();
    file.take(MAX_HEADER_LEN as u64)
        .read_to_end(&mut head)
        .map_err(|e| io_failure(path, e))?;
    Ok(head)
}

/// Writes `parts` to `path` through a temporary file in the same directory (mode 0600).
fn write_atomic(path: &Path, parts: &[&[u8]]) -> Result<(), Failure> {
    let dir = parent_dir(path);
    let mut tmp = AtomicFile::create(path, Access::Private).map_err(|e| io_failure(dir, e))?;
    for part in parts {
        tmp.write_all(part).map_err(|e| io_failure(path, e))?;
    }
    tmp.commit().map_err(|e| io_failure(path, e))
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn io_failure(path: &Path, e: std::io::Error) -> Failure {
    Failure::operator(format!("{}: {e}", path.display()))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}
