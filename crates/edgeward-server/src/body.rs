//! Reading request bodies without letting clients hold the server's memory: every body must
//! arrive whole within the body timeout from its headers on (or reading fails with
//! [`BodyTimeout`], answered 408), each endpoint has a size limit checked against the
//! declared length before a byte is read and again as bytes arrive (413), and the bytes of
//! every body held in memory at once, over all connections, come out of one [`Budget`]
//! (503 when it is spent). Large uploads (forensic bundles) are not held at all: they are
//! streamed to disk (see `device_api`).

use std::{
    error::Error,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, Request},
    http::StatusCode,
};
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::app::{ApiError, Shared};

/// The body did not arrive within the body timeout.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0} s")]
pub struct BodyTimeout(pub u64);

/// A body that fails once its deadline has passed.
struct Timed {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    secs: u64,
}

/// `body`, failing with [`BodyTimeout`] unless it has been read whole within `secs` seconds.
pub fn with_deadline(body: Body, secs: u64) -> Body {
    Body::new(Timed {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(Duration::from_secs(secs))),
        secs,
    })
}

impl HttpBody for Timed {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if self.inner.is_end_stream() {
            return Poll::Ready(None);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let secs = self.secs;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(secs)))));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether `e`, or an error it wraps, is a [`BodyTimeout`].
pub fn is_timeout(e: &(dyn Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<BodyTimeout>() {
            return true;
        }
        next = e.source();
    }
    false
}

/// The memory request bodies may hold at once, in KiB.
pub struct Budget {
    kib: Arc<Semaphore>,
}

impl Budget {
    /// A budget of `mib` MiB.
    pub fn new(mib: u32) -> Self {
        Budget {
            kib: Arc::new(Semaphore::new(
                usize::try_from(mib)
                    .unwrap_or(usize::MAX / 1024)
                    .saturating_mul(1024),
            )),
        }
    }

    /// KiB not in use now.
    pub fn available_kib(&self) -> usize {
        self.kib.available_permits()
    }

    /// Takes `bytes` (rounded up to KiB) into `held`, or refuses.
    fn take(&self, held: &mut Option<OwnedSemaphorePermit>, bytes: usize) -> Result<(), ApiError> {
        let kib = u32::try_from(bytes.div_ceil(1024)).unwrap_or(u32::MAX);
        if kib == 0 {
            return Ok(());
        }
        let permit = self.kib.clone().try_acquire_many_owned(kib).map_err(|_| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many request bodies in flight; retry shortly",
            )
        })?;
        match held {
            Some(h) => h.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }
}

/// A body read whole, with its share of the budget (given back when this is dropped).
#[derive(Debug)]
pub struct Held {
    /// The bytes.
    pub bytes: Bytes,
    _budget: Option<OwnedSemaphorePermit>,
}

/// 413 for a body over `limit` bytes.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("the body exceeds {limit} bytes"),
    )
}

/// Maps a failure to read the body: 408 past the deadline, else 400 (the client broke off).
pub fn read_failed(e: axum::Error) -> ApiError {
    if is_timeout(&e) {
        ApiError::new(StatusCode::REQUEST_TIMEOUT, "timeout", e.to_string())
    } else {
        ApiError::bad_request(format!("reading the body: {e}"))
    }
}

/// Reads `body` whole: at most `limit` bytes (a declared length over it is refused before a
/// byte is read), every byte taken from `budget` as it arrives.
pub async fn read(mut body: Body, limit: usize, budget: &Budget) -> Result<Held, ApiError> {
    let declared = body.size_hint().lower();
    if declared > limit as u64 {
        return Err(too_large(limit));
    }
    let mut held = None;
    // The declared length is taken at once, so a body that will not fit is refused first.
    budget.take(&mut held, usize::try_from(declared).unwrap_or(limit))?;
    let mut taken = usize::try_from(declared).unwrap_or(limit);
    let mut buf = Vec::with_capacity(taken);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(read_failed)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if buf.len() + data.len() > limit {
            return Err(too_large(limit));
        }
        if buf.len() + data.len() > taken {
            budget.take(&mut held, buf.len() + data.len() - taken)?;
            taken = buf.len() + data.len();
        }
        buf.extend_from_slice(&data);
    }
    Ok(Held {
        bytes: Bytes::from(buf),
        _budget: held,
    })
}

/// Most bytes of an admin API body.
pub const MAX_ADMIN_BODY: usize = 64 * 1024;
/// Most bytes of an enrollment (a token and a CSR).
pub const MAX_ENROLL_BODY: usize = 32 * 1024;

/// The body of an admin or enrollment call, read under the budget: at most
/// [`MAX_ENROLL_BODY`] bytes on `/v1/enroll`, [`MAX_ADMIN_BODY`] elsewhere.
pub struct Small(pub Held);

impl FromRequest<Shared> for Small {
    type Rejection = ApiError;

    async fn from_request(req: Request, app: &Shared) -> Result<Self, ApiError> {
        let limit = if req.uri().path() == "/v1/enroll" {
            MAX_ENROLL_BODY
        } else {
            MAX_ADMIN_BODY
        };
        read(req.into_body(), limit, &app.body_budget)
            .await
            .map(Small)
    }
}
