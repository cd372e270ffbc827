//! The update repository over the device API: the TUF repository directory named by
//! `update_repo` (as `edgeward release publish` writes it: consistent snapshots,
//! `metadata/N.ROLE.json`, `metadata/timestamp.json`, `targets/DIR/SHA256.NAME`) served
//! read-only, behind the device gate, so a device that is quarantined or revoked gets no
//! update (holding updates is part of containment).
//!
//! `GET /v1/device/update/metadata/{name}` and `GET /v1/device/update/targets/{path}` map
//! URL paths to files exactly as a static HTTP server would, so the same client works
//! against both. What the server adds: names and paths are checked before any file is
//! opened (no `..`, no empty, hidden or absolute component, no backslash or NUL), the file
//! must resolve (symbolic links followed) inside the repository's own directory and be a
//! regular file, and targets answer single HTTP range requests (`206`, resumable downloads
//! and delta chunks); the name and range parsers are `edgeward_proto::repo_request`.
//! Bytes are streamed from disk, never held whole.
//!
//! A device whose updates an incident holds gets no target (403 `updates_held`), and
//! target bytes are charged to the device's download budget (`update_limit`, in KiB, a
//! range request by the bytes it asks for) before they are sent: a device cannot pull
//! unbounded data, and a delta's many small ranges cost what they fetch.
//!
//! Nothing here is trusted by the device: TUF metadata verifies every byte, so the checks
//! protect the server's files, not the devices.

use std::{
    io::{Seek, SeekFrom},
    path::Path as FsPath,
    pin::Pin,
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequestParts, Path, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::io::{AsyncRead, ReadBuf};

use edgeward_proto::{
    gcra::Decision,
    repo_request::{checked_path, parse_range, Area, RangeRequest},
};

use crate::{
    app::{ApiError, Shared},
    device_api::Gated,
};

/// Most bytes read from disk per body frame.
const FRAME: usize = 64 * 1024;

/// The update routes of the device API.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/v1/device/update/metadata/{name}", get(metadata))
        .route("/v1/device/update/targets/{*path}", get(target))
}

async fn metadata(State(app): State<Shared>, mut call: Gated) -> Result<Response, ApiError> {
    let Path(name) = Path::<String>::from_request_parts(&mut call.parts, &app)
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    serve(&app, Area::Metadata, &name, &call.parts.headers, None).await
}

async fn target(State(app): State<Shared>, mut call: Gated) -> Result<Response, ApiError> {
    let Path(path) = Path::<String>::from_request_parts(&mut call.parts, &app)
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    if crate::incidents::store::updates_held(&app.db, &call.device).await? {
        crate::device_gate::refused(&app, "updates_held");
        return Err(ApiError::forbidden(
            "updates_held",
            "an open incident holds this device's updates",
        ));
    }
    serve(
        &app,
        Area::Targets,
        &path,
        &call.parts.headers,
        Some(&call.device),
    )
    .await
}

/// Charges `len` bytes served to `device` against its download budget: refused with 429
/// (and when to retry) while the budget is spent, with 403 if one request asks for more
/// than the whole burst (it could never pass; the device must ask for ranges).
async fn charge(app: &Shared, device: &str, len: u64) -> Result<(), ApiError> {
    let limit = app.config.update_limit;
    let cost = limit.cost(len);
    if cost > u64::from(limit.burst_kib) {
        return Err(too_large(cost, limit.burst_kib));
    }
    let cost = u32::try_from(cost).map_err(|_| too_large(cost, limit.burst_kib))?;
    let key = format!("upd:{device}");
    match app
        .store
        .check_n(&key, &limit.quota(), app.clock.now_ns(), cost)
        .await
        .map_err(ApiError::unavailable)?
    {
        Decision::Allow { .. } => {
            app.metrics
                .add("edgeward_update_bytes_total", String::new(), len);
            Ok(())
        }
        Decision::Deny { retry_after_ns } => {
            crate::device_gate::refused(app, "update_bytes");
            Err(ApiError::rate_limited(retry_after_ns))
        }
    }
}

fn too_large(cost: u64, burst: u32) -> ApiError {
    ApiError::forbidden(
        "update_burst",
        format!(
            "this request asks for {cost} KiB, more than a device may fetch at once ({burst} KiB, update_limit.burst_kib): ask for ranges"
        ),
    )
}

/// An open file, positioned at the start of what is served, and its length.
struct Opened {
    file: std::fs::File,
    length: u64,
}

/// Opens `relative` under `root/area`, refusing anything that resolves outside it or is
/// not a regular file (both answered as not found: the device learns nothing more).
fn open_inside(root: &FsPath, area: Area, relative: &FsPath) -> Result<Opened, ApiError> {
    let not_found = || ApiError::not_found("no such file in the update repository");
    let base = root
        .join(area.dir_name())
        .canonicalize()
        .map_err(|_| not_found())?;
    let resolved = base
        .join(relative)
        .canonicalize()
        .map_err(|_| not_found())?;
    if !resolved.starts_with(&base) {
        return Err(not_found());
    }
    let file = std::fs::File::open(&resolved).map_err(|_| not_found())?;
    let meta = file.metadata().map_err(ApiError::internal)?;
    if !meta.is_file() {
        return Err(not_found());
    }
    Ok(Opened {
        file,
        length: meta.len(),
    })
}

/// Serves `requested` from `area`; for a target, the bytes are charged to `device`'s
/// download budget first.
async fn serve(
    app: &Shared,
    area: Area,
    requested: &str,
    headers: &HeaderMap,
    device: Option<&str>,
) -> Result<Response, ApiError> {
    let Some(root) = app.config.update_repo.clone() else {
        return Err(ApiError::not_found(
            "this server has no update repository (update_repo)",
        ));
    };
    let relative = checked_path(area, requested).map_err(ApiError::bad_request)?;
    let range_header = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (file, length, range) = tokio::task::spawn_blocking(move || {
        let mut opened = open_inside(&root, area, &relative)?;
        let range = match area {
            Area::Targets => parse_range(range_header.as_deref(), opened.length),
            Area::Metadata => RangeRequest::Whole,
        };
        if let RangeRequest::Part(r) = range {
            opened
                .file
                .seek(SeekFrom::Start(r.start))
                .map_err(ApiError::internal)?;
        }
        Ok::<_, ApiError>((opened.file, opened.length, range))
    })
    .await
    .map_err(ApiError::internal)??;
    let content_type = match area {
        Area::Metadata => "application/json",
        Area::Targets => "application/octet-stream",
    };
    let (status, start, len) = match range {
        RangeRequest::Whole => (StatusCode::OK, 0, length),
        RangeRequest::Part(r) => (StatusCode::PARTIAL_CONTENT, r.start, r.len),
        RangeRequest::Unsatisfiable => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range",
                format!("the file has {length} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{length}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    if let Some(device) = device {
        charge(app, device, len).await?;
    }
    let body = Body::new(FileBody {
        file: tokio::fs::File::from_std(file),
        remaining: len,
        buf: vec![0; FRAME.min(usize::try_from(len).unwrap_or(FRAME)).max(1)],
    });
    let mut response = (status, body).into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if area == Area::Targets {
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if status == StatusCode::PARTIAL_CONTENT {
        let value = format!("bytes {start}-{}/{length}", start + len - 1);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&value).map_err(ApiError::internal)?,
        );
    }
    Ok(response)
}

/// Exactly `remaining` bytes of an open file, a frame at a time; a file that ends early
/// (replaced while it was served) ends the body with an error rather than short.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: Vec<u8>,
}

impl HttpBody for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let this = &mut *self;
        let want = usize::try_from(this.remaining)
            .unwrap_or(usize::MAX)
            .min(this.buf.len());
        let mut read = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut read) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Ok(())) if read.filled().is_empty() => {
                Poll::Ready(Some(Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file ended before its length",
                ))))
            }
            Poll::Ready(Ok(())) => {
                let chunk = Bytes::copy_from_slice(read.filled());
                this.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}
