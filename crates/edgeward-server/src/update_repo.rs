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
//! and delta chunks). Bytes are streamed from disk, never held whole.
//!
//! Nothing here is trusted by the device: TUF metadata verifies every byte, so the checks
//! protect the server's files, not the devices.

use std::{
    io::{Seek, SeekFrom},
    path::{Path as FsPath, PathBuf},
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

/// Which of the repository's two directories a file is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// `metadata/`: one file name, no directories.
    Metadata,
    /// `targets/`: a relative path.
    Targets,
}

impl Area {
    fn dir(self) -> &'static str {
        match self {
            Area::Metadata => "metadata",
            Area::Targets => "targets",
        }
    }
}

/// Checks a requested name (metadata) or path (targets) and returns it as a relative path:
/// components that are not empty, `.`, `..` or hidden, with no backslash or NUL; metadata
/// names are one component ending in `.json`. What was wrong otherwise.
pub fn checked_path(area: Area, requested: &str) -> Result<PathBuf, &'static str> {
    if requested.is_empty() || requested.len() > 1024 {
        return Err("the path must be 1 to 1024 bytes long");
    }
    if requested.contains(['\\', '\0']) {
        return Err("the path must not hold a backslash or NUL");
    }
    let mut out = PathBuf::new();
    for component in requested.split('/') {
        if component.is_empty() || component.starts_with('.') {
            return Err("every path component must be non-empty and must not start with '.'");
        }
        out.push(component);
    }
    if area == Area::Metadata && (requested.contains('/') || !requested.ends_with(".json")) {
        return Err("a metadata name is one file name ending in .json");
    }
    Ok(out)
}

/// A single byte range of a file of known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// Number of bytes (at least one).
    pub len: u64,
}

/// What a `Range` header asks of a file of `length` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeRequest {
    /// The whole file (no `Range`, or one this server does not serve partially: several
    /// ranges or a malformed header, which RFC 9110 lets a server ignore).
    Whole,
    /// One satisfiable range.
    Part(ByteRange),
    /// A range that starts past the end (416).
    Unsatisfiable,
}

/// Parses `Range: bytes=FIRST-LAST | FIRST- | -SUFFIX` against a file of `length` bytes.
pub fn parse_range(header: Option<&str>, length: u64) -> RangeRequest {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return RangeRequest::Whole;
    };
    if spec.contains(',') {
        return RangeRequest::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Whole;
    };
    let number = |s: &str| -> Option<u64> {
        (!s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (first.is_empty(), number(first), number(last)) {
        // A suffix: the last N bytes.
        (true, _, Some(n)) if n == 0 || length == 0 => RangeRequest::Unsatisfiable,
        (true, _, Some(n)) => {
            let len = n.min(length);
            RangeRequest::Part(ByteRange {
                start: length - len,
                len,
            })
        }
        (false, Some(start), _) if start >= length => RangeRequest::Unsatisfiable,
        (false, Some(start), None) if last.is_empty() => RangeRequest::Part(ByteRange {
            start,
            len: length - start,
        }),
        (false, Some(start), Some(end)) if end >= start => RangeRequest::Part(ByteRange {
            start,
            len: end.min(length - 1) - start + 1,
        }),
        _ => RangeRequest::Whole,
    }
}

async fn metadata(State(app): State<Shared>, mut call: Gated) -> Result<Response, ApiError> {
    let Path(name) = Path::<String>::from_request_parts(&mut call.parts, &app)
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    serve(&app, Area::Metadata, &name, &call.parts.headers).await
}

async fn target(State(app): State<Shared>, mut call: Gated) -> Result<Response, ApiError> {
    let Path(path) = Path::<String>::from_request_parts(&mut call.parts, &app)
        .await
        .map_err(|e| ApiError::bad_request(e.body_text()))?;
    serve(&app, Area::Targets, &path, &call.parts.headers).await
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
        .join(area.dir())
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

async fn serve(
    app: &Shared,
    area: Area,
    requested: &str,
    headers: &HeaderMap,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        let part = |start, len| RangeRequest::Part(ByteRange { start, len });
        assert_eq!(parse_range(None, 10), RangeRequest::Whole);
        assert_eq!(parse_range(Some("bytes=0-3"), 10), part(0, 4));
        assert_eq!(parse_range(Some("bytes=4-"), 10), part(4, 6));
        assert_eq!(parse_range(Some("bytes=8-100"), 10), part(8, 2));
        assert_eq!(parse_range(Some("bytes=-3"), 10), part(7, 3));
        assert_eq!(parse_range(Some("bytes=-30"), 10), part(0, 10));
        assert_eq!(
            parse_range(Some("bytes=10-"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-0"), 10),
            RangeRequest::Unsatisfiable
        );
        assert_eq!(
            parse_range(Some("bytes=-1"), 0),
            RangeRequest::Unsatisfiable
        );
        for ignored in [
            "bytes=5-2",
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=a-b",
            "bytes=+1-2",
            "bytes=99999999999999999999999-",
            "bytes=-",
        ] {
            assert_eq!(
                parse_range(Some(ignored), 10),
                RangeRequest::Whole,
                "{ignored}"
            );
        }
    }

    #[test]
    fn traversal_and_odd_names_are_refused() {
        assert!(checked_path(Area::Metadata, "3.root.json").is_ok());
        assert!(checked_path(Area::Metadata, "timestamp.json").is_ok());
        assert!(checked_path(Area::Targets, "fw/abcd.fw.img").is_ok());
        for bad in [
            "..",
            "../x.json",
            "a/../../b",
            "/etc/passwd",
            "a//b",
            ".hidden",
            "a\\b",
            "a\0b",
            "",
        ] {
            assert!(checked_path(Area::Targets, bad).is_err(), "{bad:?}");
        }
        assert!(checked_path(Area::Metadata, "sub/root.json").is_err());
        assert!(checked_path(Area::Metadata, "root.txt").is_err());
    }
}
