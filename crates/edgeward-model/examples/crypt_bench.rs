//! Measurements for `bench/model-crypt.sh` (run in release mode):
//!
//! - `crypt_bench aes` — AES-256-GCM STREAM throughput on one core with 16 KiB chunks
//!   (one chunk per call, as `openssl speed -evp aes-256-gcm -bytes 16384` measures).
//! - `crypt_bench load MODEL.safetensors SE_DIR` — a plain load (read + parse) and a signed
//!   plain load, against the verified secure load of the same model signed and encrypted for
//!   a soft element; prints median times and ratios.

use std::time::{Duration, Instant};

use edgeward_artifact::{hashing, NoProgress};
use edgeward_core::{
    keys::SigningKey,
    manifest::{Method, Serialization},
    sign::sign_manifest,
    verify::{verify_bundle, Trust},
};
use edgeward_model::{
    crypt::{self, container::FixedHeader, stream::StreamKey, EncryptOptions, RecipientKey},
    secure_load,
};

/// Shard size of the MiniLM signature (`SHARD_MIB`, default 2): small enough that a 90 MB
/// model's shards spread evenly over the cores, each hashed right after it is decrypted.
static SHARD: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
    std::env::var("SHARD_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(2)
        << 20
});

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("aes") => aes(),
        Some("load") if args.len() == 4 => load(&args[2], &args[3]),
        Some("pubkey") if args.len() == 3 => print!("{}", device_key(&args[2]).1.to_pem()),
        _ => {
            eprintln!("usage: crypt_bench aes | pubkey SE_DIR | load MODEL.safetensors SE_DIR");
            std::process::exit(2);
        }
    }
}

fn aes() {
    let fixed = FixedHeader {
        version: crypt::container::VERSION,
        chunk_size: 16 * 1024,
        plaintext_len: 16 * 1024,
        salt: [1; 16],
    };
    let key = StreamKey::derive(&[7; 32], &fixed).expect("key");
    let pt = vec![0x5a; 16 * 1024];
    let ct = key.encrypt(&pt).expect("encrypt");
    let encrypt = || drop(key.encrypt(&pt));
    let decrypt = || drop(key.decrypt(&ct));
    let cases: [(&str, &dyn Fn()); 2] = [("encrypt", &encrypt), ("decrypt", &decrypt)];
    for (name, f) in cases {
        let mut best = 0f64;
        for _ in 0..3 {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_secs(1) {
                for _ in 0..256 {
                    f();
                }
                n += 256;
            }
            best = best.max(n as f64 * 16384.0 / start.elapsed().as_secs_f64());
        }
        println!("aes-256-gcm-16k-{name} {:.0} kB/s", best / 1000.0);
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Median time until `f` returns what it loaded; dropping that (the plain buffer's free, the
/// secure plaintext's zeroization) happens after the clock stops and is timed separately.
fn time_ready<T>(runs: usize, mut f: impl FnMut() -> T) -> Duration {
    drop(f());
    median(
        (0..runs)
            .map(|_| {
                let s = Instant::now();
                let loaded = f();
                let elapsed = s.elapsed();
                drop(loaded);
                elapsed
            })
            .collect(),
    )
}

fn time(runs: usize, mut f: impl FnMut()) -> Duration {
    f();
    median(
        (0..runs)
            .map(|_| {
                let s = Instant::now();
                f();
                s.elapsed()
            })
            .collect(),
    )
}

/// The soft element in `dir` and its device key (generated on first use).
fn device_key(
    dir: &str,
) -> (
    Box<dyn edgeward_se::SecureElement>,
    edgeward_core::keys::PublicKey,
) {
    let se = edgeward_se::open(&format!("soft:{dir}")).expect("element");
    let key = se
        .public_key("device")
        .or_else(|_| se.generate_key("device", edgeward_se::KeyAlgorithm::P256))
        .expect("device key");
    (se, key)
}

fn load(model: &str, se_dir: &str) {
    let model = std::path::Path::new(model);
    let (se, device) = device_key(se_dir);
    let signer = SigningKey::from_pkcs8_der(
        &rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .expect("key")
            .serialize_der(),
    )
    .expect("signing key");
    let manifest = hashing::manifest_of(
        model,
        &Serialization {
            method: Method::Shards { shard_size: *SHARD },
            allow_symlinks: false,
            ignore_paths: vec![],
        },
        &NoProgress,
    )
    .expect("hash");
    let bundle = sign_manifest(manifest, None, &signer, None).expect("sign");
    let public = signer.public_key();
    let trust = Trust::PublicKey(&public);
    let plain = std::fs::read(model).expect("model");
    let container = crypt::encrypt(
        &plain,
        &[RecipientKey::new(&device).expect("recipient")],
        EncryptOptions::default(),
    )
    .expect("encrypt");
    let enc_path = std::env::temp_dir().join("edgeward-bench-model.ewm");
    std::fs::write(&enc_path, &container).expect("write");
    drop((plain, container));

    let count = |st: &safetensors::SafeTensors<'_>| {
        st.tensors()
            .iter()
            .map(|(_, t)| t.data().len())
            .sum::<usize>()
    };
    let runs = 15;
    let plain_t = time(runs, || {
        let bytes = std::fs::read(model).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
        assert!(count(&st) > 0);
    });
    let signed_t = time(runs, || {
        verify_bundle(&bundle, &trust, 0).expect("verify");
        let v = edgeward_artifact::bundle_signing::verify_path(
            model,
            &bundle,
            &trust,
            0,
            &[],
            &NoProgress,
        )
        .expect("verify");
        drop(v);
        let bytes = std::fs::read(model).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse");
        assert!(count(&st) > 0);
    });
    let secure_t = time(runs, || {
        let m = secure_load::open_verified(&enc_path, &bundle, &trust, 0, &*se, "device")
            .expect("secure load");
        let st = m.safetensors().expect("parse");
        assert!(count(&st) > 0);
    });
    let plain_ready_t = time_ready(runs, || {
        let bytes = std::fs::read(model).expect("read");
        assert!(count(&safetensors::SafeTensors::deserialize(&bytes).expect("parse")) > 0);
        bytes
    });
    let secure_ready_t = time_ready(runs, || {
        let m = secure_load::open_verified(&enc_path, &bundle, &trust, 0, &*se, "device")
            .expect("secure load");
        assert!(count(&m.safetensors().expect("parse")) > 0);
        m
    });
    // Where the secure load's time goes, phase by phase (each timed alone).
    let verify_t = time(runs, || {
        drop(verify_bundle(&bundle, &trust, 0).expect("verify"))
    });
    let open_t = time(runs, || {
        let file = std::fs::File::open(&enc_path).expect("open");
        drop(crypt::open_file(&file, &*se, "device").expect("open"));
    });
    let read_t = time(runs, || drop(std::fs::read(&enc_path).expect("read")));
    let mut decrypt_t = Vec::new();
    for _ in 0..runs {
        let s = Instant::now();
        let file = std::fs::File::open(&enc_path).expect("open");
        let (key, payload) = crypt::open_file(&file, &*se, "device").expect("open");
        let (bytes, _) = key
            .decrypt_with(&payload, 1 << 20, &|| (), &|_, _| ())
            .expect("decrypt");
        decrypt_t.push(s.elapsed());
        drop(bytes);
    }
    let decrypt_t = median(decrypt_t);
    let plaintext = std::fs::read(model).expect("model");
    let hash_t = time(runs, || {
        use rayon::prelude::*;
        use sha2::Digest;
        let d: Vec<[u8; 32]> = plaintext
            .par_chunks(8 << 20)
            .map(|c| sha2::Sha256::digest(c).into())
            .collect();
        assert!(!d.is_empty());
    });
    let mut wipe_t = Vec::new();
    for _ in 0..runs {
        let m = secure_load::open_verified(&enc_path, &bundle, &trust, 0, &*se, "device")
            .expect("secure load");
        let s = Instant::now();
        drop(m);
        wipe_t.push(s.elapsed());
    }
    let wipe_t = median(wipe_t);
    let _ = std::fs::remove_file(&enc_path);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "model {} ({} bytes)",
        model.display(),
        std::fs::metadata(model).map(|m| m.len()).unwrap_or(0)
    );
    println!(
        "plain load (read + parse)               {:8.1} ms",
        ms(plain_t)
    );
    println!(
        "signed plain load (verify + read+parse) {:8.1} ms",
        ms(signed_t)
    );
    println!(
        "encrypted+signed verified load          {:8.1} ms",
        ms(secure_t)
    );
    println!("phases of the secure load, each alone (median ms):");
    println!(
        "  verify signature bundle                 {:8.1}",
        ms(verify_t)
    );
    println!(
        "  parse header + unwrap key in element    {:8.1}",
        ms(open_t)
    );
    println!(
        "  read the container (fs::read, 1 core)   {:8.1}",
        ms(read_t)
    );
    println!(
        "  open+read+decrypt in place (no hash)  {:8.1}",
        ms(decrypt_t)
    );
    println!(
        "  SHA-256 8 MiB shards (both cores)       {:8.1}",
        ms(hash_t)
    );
    println!(
        "  zeroize on drop (both cores)            {:8.1}",
        ms(wipe_t)
    );
    println!(
        "ratio secure/plain {:.2}x  secure/signed-plain {:.2}x  (load and unload)",
        ms(secure_t) / ms(plain_t),
        ms(secure_t) / ms(signed_t)
    );
    println!(
        "until the tensors are usable: plain {:.1} ms, secure {:.1} ms, ratio {:.2}x (unload not counted: the secure plaintext's zeroization is paid when the model is dropped)",
        ms(plain_ready_t),
        ms(secure_ready_t),
        ms(secure_ready_t) / ms(plain_ready_t)
    );
}
