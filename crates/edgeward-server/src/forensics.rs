//! Forensic bundles (up to 16 MiB each) are never held in memory: they are written to the
//! data directory as they arrive and hashed on the way, then kept under their SHA-256
//! (`forensics/<sha256>`, 0600) once the gate's last check has passed, or removed.

use std::path::PathBuf;

use axum::{body::Body, http::StatusCode};
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::{
    app::{ApiError, Shared},
    body::{read_failed, too_large},
};

/// The directory, inside the data directory, that holds the bundles.
pub const DIR: &str = "forensics";

/// A bundle received into a temporary file; removed when dropped unless kept.
pub struct Incoming {
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Its length.
    pub bytes: u64,
    dir: PathBuf,
    temp: Option<PathBuf>,
}

impl Incoming {
    /// The temporary file holding the bundle until it is kept.
    pub fn path(&self) -> Result<&std::path::Path, ApiError> {
        self.temp
            .as_deref()
            .ok_or_else(|| ApiError::internal("a forensic bundle already kept"))
    }

    /// Keeps the bundle as `forensics/<sha256>`; returns that path, relative to the data
    /// directory (what the registry records).
    pub fn keep(mut self) -> Result<String, ApiError> {
        let name = format!("{DIR}/{}", hex::encode(self.sha256));
        let Some(temp) = self.temp.take() else {
            return Err(ApiError::internal("a forensic bundle kept twice"));
        };
        std::fs::rename(&temp, self.dir.join(hex::encode(self.sha256))).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            ApiError::internal(format!("keeping {}: {e}", temp.display()))
        })?;
        Ok(name)
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if let Some(temp) = &self.temp {
            let _ = std::fs::remove_file(temp);
        }
    }
}

/// Streams `body` (at most `limit` bytes) into a temporary file under the data directory,
/// hashing it on the way.
pub async fn receive(app: &Shared, mut body: Body, limit: usize) -> Result<Incoming, ApiError> {
    if http_body::Body::size_hint(&body).lower() > limit as u64 {
        return Err(too_large(limit));
    }
    let dir = app.config.data_dir.join(DIR);
    tokio::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", dir.display())))?;
    let mut random = [0u8; 12];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut random);
    let temp = dir.join(format!(".incoming-{}", hex::encode(random)));
    let mut incoming = Incoming {
        sha256: [0; 32],
        bytes: 0,
        dir,
        temp: Some(temp.clone()),
    };
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", temp.display())))?;
    let mut hash = Sha256::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(read_failed)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        incoming.bytes += data.len() as u64;
        if incoming.bytes > limit as u64 {
            return Err(too_large(limit));
        }
        hash.update(&data);
        file.write_all(&data).await.map_err(|e| {
            ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage",
                format!("the forensic bundle could not be stored: {e}"),
            )
        })?;
    }
    file.sync_all()
        .await
        .map_err(|e| ApiError::internal(format!("{}: {e}", temp.display())))?;
    incoming.sha256 = hash.finalize().into();
    Ok(incoming)
}
