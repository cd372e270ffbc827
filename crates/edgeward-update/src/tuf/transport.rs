//! Fetching bytes from a repository with hard bounds.
//!
//! Every fetch has a byte limit (the signed length, or a fixed cap when the length is not
//! known yet): one byte past it ends the transfer with [`FetchError::TooLarge`] (endless
//! data attack). A transfer that stalls longer than the stall timeout, or that stays below
//! a minimum average rate after a grace period, ends with [`FetchError::Stalled`] or
//! [`FetchError::TooSlow`] (slow retrieval attack). Bytes are handed to a sink as they
//! arrive, so large targets are never held in memory.
//!
//! Two transports: HTTP(S) with reqwest (optionally mutual TLS, for the Edgeward device
//! API) and `file://` for a repository in a plain directory.

use std::io::{self, Read};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The repository does not have the file (HTTP 403/404, or no such file).
    #[error("{url}: not found")]
    NotFound {
        /// What was fetched.
        url: String,
    },
    /// The server answered with another error status.
    #[error("{url}: server answered HTTP {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// HTTP status.
        status: u16,
    },
    /// More bytes than allowed arrived (endless data).
    #[error("{url}: more than the allowed {limit} bytes arrived; transfer cut")]
    TooLarge {
        /// What was fetched.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// No byte arrived for the stall timeout (slow retrieval).
    #[error("{url}: no data for {secs} s after {bytes} bytes; transfer abandoned")]
    Stalled {
        /// What was fetched.
        url: String,
        /// Seconds waited.
        secs: u64,
        /// Bytes received before the stall.
        bytes: u64,
    },
    /// The average rate stayed below the minimum (slow retrieval by trickling).
    #[error("{url}: {bytes} bytes in {secs} s is below the minimum rate of {min_rate} B/s; transfer abandoned")]
    TooSlow {
        /// What was fetched.
        url: String,
        /// Bytes received.
        bytes: u64,
        /// Seconds elapsed.
        secs: u64,
        /// Minimum bytes per second.
        min_rate: u64,
    },
    /// The connection or the request failed.
    #[error("{url}: {reason}")]
    Network {
        /// What was fetched.
        url: String,
        /// The underlying error.
        reason: String,
    },
    /// The sink refused the bytes (e.g. a write to disk failed, or bytes did not verify).
    #[error("{url}: {source}")]
    Sink {
        /// What was fetched.
        url: String,
        /// The sink's error.
        source: io::Error,
    },
}

fn network(url: &str, reason: impl Into<String>) -> FetchError {
    FetchError::Network {
        url: url.to_string(),
        reason: reason.into(),
    }
}

impl FetchError {
    /// Whether the file simply is not there (which ends the root chain normally).
    pub fn is_not_found(&self) -> bool {
        matches!(self, FetchError::NotFound { .. })
    }
}

/// Limits every transfer obeys.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest wait for the next byte.
    pub stall_timeout: Duration,
    /// After this long, the average rate must be at least `min_rate`.
    pub grace: Duration,
    /// Minimum average bytes per second after the grace period.
    pub min_rate: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            stall_timeout: Duration::from_secs(30),
            grace: Duration::from_secs(30),
            min_rate: 1024,
        }
    }
}

/// Where bytes go as they arrive; an error aborts the transfer.
pub type Sink<'a> = dyn FnMut(&[u8]) -> io::Result<()> + 'a;

/// A source of repository files.
pub trait Transport {
    /// Fetches `url` from byte `offset` on, handing at most `limit` bytes to `sink`; more
    /// than `limit` is [`FetchError::TooLarge`]. Returns the number of bytes handed over.
    fn fetch(
        &self,
        url: &str,
        offset: u64,
        limit: u64,
        sink: &mut Sink<'_>,
    ) -> Result<u64, FetchError>;

    /// Fetches exactly `len` bytes of `url` starting at byte `offset` (an HTTP range
    /// request), handing them to `sink`; fewer bytes, or a server that ignores the range,
    /// is an error. Used for chunks of a delta update and to resume a download.
    fn fetch_range(
        &self,
        url: &str,
        offset: u64,
        len: u64,
        sink: &mut Sink<'_>,
    ) -> Result<(), FetchError>;

    /// Fetches a whole (small) file into memory, at most `limit` bytes.
    fn fetch_bytes(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let mut out = Vec::new();
        self.fetch(url, 0, limit, &mut |chunk| {
            out.extend_from_slice(chunk);
            Ok(())
        })?;
        Ok(out)
    }
}

/// Copies `reader` into `sink` under `limits`, at most `limit` bytes.
fn pump(
    url: &str,
    reader: &mut dyn Read,
    limit: u64,
    limits: &Limits,
    sink: &mut Sink<'_>,
) -> Result<u64, FetchError> {
    let started = Instant::now();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return Err(FetchError::Stalled {
                    url: url.to_string(),
                    secs: limits.stall_timeout.as_secs(),
                    bytes: total,
                })
            }
            Err(e) => return Err(network(url, error_chain(&e))),
        };
        if total + n as u64 > limit {
            return Err(FetchError::TooLarge {
                url: url.to_string(),
                limit,
            });
        }
        total += n as u64;
        sink(&buf[..n]).map_err(|source| FetchError::Sink {
            url: url.to_string(),
            source,
        })?;
        let elapsed = started.elapsed();
        if elapsed > limits.grace && total < limits.min_rate.saturating_mul(elapsed.as_secs()) {
            return Err(FetchError::TooSlow {
                url: url.to_string(),
                bytes: total,
                secs: elapsed.as_secs(),
                min_rate: limits.min_rate,
            });
        }
    }
}

fn is_timeout(e: &io::Error) -> bool {
    if e.kind() == io::ErrorKind::TimedOut {
        return true;
    }
    let mut source: Option<&dyn std::error::Error> = e.get_ref().map(|s| s as _);
    while let Some(s) = source {
        if let Some(r) = s.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return true;
            }
        }
        source = s.source();
    }
    false
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

/// TLS settings for HTTPS: the roots to trust and, for mutual TLS, the client identity.
#[derive(Clone, Default)]
pub struct TlsConfig {
    /// PEM certificates of the CAs that may sign the server's certificate.
    pub roots_pem: Vec<u8>,
    /// PEM client certificate chain followed by its PKCS#8 private key.
    pub identity_pem: Option<Vec<u8>>,
}

/// Makes the `Authorization` header value for a request to a URL, fresh for each request
/// (an Edgeward device token carries its time, so one made at start would age out).
pub type Authorize = std::sync::Arc<dyn Fn(&str) -> String + Send + Sync>;

/// HTTP(S) transport.
pub struct HttpTransport {
    client: reqwest::blocking::Client,
    limits: Limits,
    authorize: Option<Authorize>,
}

impl HttpTransport {
    /// A plain-HTTP (or HTTPS with no extra roots) transport.
    pub fn new(limits: Limits) -> Result<Self, FetchError> {
        Self::build(limits, None)
    }

    /// An HTTPS transport trusting `tls.roots_pem`, presenting `tls.identity_pem`.
    pub fn with_tls(limits: Limits, tls: &TlsConfig) -> Result<Self, FetchError> {
        Self::build(limits, Some(tls))
    }

    fn build(limits: Limits, tls: Option<&TlsConfig>) -> Result<Self, FetchError> {
        let setup = |reason: String| FetchError::Network {
            url: "(client setup)".into(),
            reason,
        };
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(limits.stall_timeout)
            .connect_timeout(limits.stall_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .use_rustls_tls();
        if let Some(tls) = tls {
            for cert in reqwest::Certificate::from_pem_bundle(&tls.roots_pem)
                .map_err(|e| setup(format!("CA certificates: {e}")))?
            {
                builder = builder.add_root_certificate(cert);
            }
            if let Some(identity) = &tls.identity_pem {
                builder = builder.identity(
                    reqwest::Identity::from_pem(identity)
                        .map_err(|e| setup(format!("client identity: {e}")))?,
                );
            }
        }
        let client = builder.build().map_err(|e| setup(error_chain(&e)))?;
        Ok(HttpTransport {
            client,
            limits,
            authorize: None,
        })
    }

    /// An HTTPS transport on a ready TLS configuration: a `rustls::ClientConfig` of the
    /// rustls version reqwest links (0.23), e.g. one whose client key stays inside a secure
    /// element (the Edgeward agent's mutual TLS). Anything else is refused.
    pub fn with_preconfigured_tls(
        limits: Limits,
        tls: impl std::any::Any,
    ) -> Result<Self, FetchError> {
        let client = reqwest::blocking::Client::builder()
            .timeout(limits.stall_timeout)
            .connect_timeout(limits.stall_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .use_preconfigured_tls(tls)
            .build()
            .map_err(|e| FetchError::Network {
                url: "(client setup)".into(),
                reason: error_chain(&e),
            })?;
        Ok(HttpTransport {
            client,
            limits,
            authorize: None,
        })
    }

    /// Sends `Authorization: authorize(url)` with every request (the Edgeward device API
    /// wants a device token besides the client certificate).
    pub fn with_authorization(mut self, authorize: Authorize) -> Self {
        self.authorize = Some(authorize);
        self
    }

    fn get(&self, url: &str) -> reqwest::blocking::RequestBuilder {
        let request = self.client.get(url);
        match &self.authorize {
            Some(authorize) => request.header(reqwest::header::AUTHORIZATION, authorize(url)),
            None => request,
        }
    }
}

impl Transport for HttpTransport {
    fn fetch(
        &self,
        url: &str,
        offset: u64,
        limit: u64,
        sink: &mut Sink<'_>,
    ) -> Result<u64, FetchError> {
        let mut request = self.get(url);
        if offset > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={offset}-"));
        }
        let mut response = request.send().map_err(|e| {
            if e.is_timeout() {
                FetchError::Stalled {
                    url: url.to_string(),
                    secs: self.limits.stall_timeout.as_secs(),
                    bytes: 0,
                }
            } else {
                network(url, error_chain(&e))
            }
        })?;
        let status = response.status().as_u16();
        match status {
            200 if offset == 0 => {}
            206 if offset > 0 => {
                let range = response
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !range.starts_with(&format!("bytes {offset}-")) {
                    return Err(network(
                        url,
                        format!("asked for bytes from {offset}, got range {range:?}"),
                    ));
                }
            }
            200 => {
                // The server ignored the range: skip what we already have.
                let mut skip = offset;
                let mut discard = |chunk: &[u8]| -> io::Result<()> {
                    let take = (chunk.len() as u64).min(skip) as usize;
                    skip -= take as u64;
                    sink(&chunk[take..])
                };
                let n = pump(
                    url,
                    &mut response,
                    offset + limit,
                    &self.limits,
                    &mut discard,
                )?;
                return Ok(n.saturating_sub(offset));
            }
            403 | 404 => {
                return Err(FetchError::NotFound {
                    url: url.to_string(),
                })
            }
            _ => {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status,
                })
            }
        }
        if let Some(len) = response.content_length() {
            if len > limit {
                return Err(FetchError::TooLarge {
                    url: url.to_string(),
                    limit,
                });
            }
        }
        pump(url, &mut response, limit, &self.limits, sink)
    }

    fn fetch_range(
        &self,
        url: &str,
        offset: u64,
        len: u64,
        sink: &mut Sink<'_>,
    ) -> Result<(), FetchError> {
        if len == 0 {
            return Ok(());
        }
        let last = offset + len - 1;
        let mut response = self
            .get(url)
            .header(reqwest::header::RANGE, format!("bytes={offset}-{last}"))
            .send()
            .map_err(|e| {
                if e.is_timeout() {
                    FetchError::Stalled {
                        url: url.to_string(),
                        secs: self.limits.stall_timeout.as_secs(),
                        bytes: 0,
                    }
                } else {
                    network(url, error_chain(&e))
                }
            })?;
        match response.status().as_u16() {
            206 => {}
            403 | 404 => {
                return Err(FetchError::NotFound {
                    url: url.to_string(),
                })
            }
            200 => {
                return Err(network(
                    url,
                    format!("asked for bytes {offset}-{last}, the server ignored the range"),
                ))
            }
            status => {
                return Err(FetchError::Status {
                    url: url.to_string(),
                    status,
                })
            }
        }
        let range = response
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !range.starts_with(&format!("bytes {offset}-{last}/")) {
            return Err(network(
                url,
                format!("asked for bytes {offset}-{last}, got range {range:?}"),
            ));
        }
        let got = pump(url, &mut response, len, &self.limits, sink)?;
        exact(url, got, len)
    }
}

/// A short range response is a network failure (a cut connection), worth retrying.
fn exact(url: &str, got: u64, len: u64) -> Result<(), FetchError> {
    if got == len {
        Ok(())
    } else {
        Err(network(
            url,
            format!("connection ended after {got} of {len} bytes"),
        ))
    }
}

/// A repository in a local directory, addressed by `file://` URLs.
pub struct FileTransport {
    limits: Limits,
}

impl FileTransport {
    /// A transport for `file://` URLs.
    pub fn new(limits: Limits) -> Self {
        FileTransport { limits }
    }
}

impl Transport for FileTransport {
    fn fetch(
        &self,
        url: &str,
        offset: u64,
        limit: u64,
        sink: &mut Sink<'_>,
    ) -> Result<u64, FetchError> {
        let path = file_url_path(url)?;
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FetchError::NotFound {
                    url: url.to_string(),
                })
            }
            Err(e) => return Err(network(url, e.to_string())),
        };
        if offset > 0 {
            io::Seek::seek(&mut file, io::SeekFrom::Start(offset))
                .map_err(|e| network(url, e.to_string()))?;
        }
        pump(url, &mut file, limit, &self.limits, sink)
    }

    fn fetch_range(
        &self,
        url: &str,
        offset: u64,
        len: u64,
        sink: &mut Sink<'_>,
    ) -> Result<(), FetchError> {
        let path = file_url_path(url)?;
        let mut file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FetchError::NotFound {
                    url: url.to_string(),
                })
            }
            Err(e) => return Err(network(url, e.to_string())),
        };
        io::Seek::seek(&mut file, io::SeekFrom::Start(offset))
            .map_err(|e| network(url, e.to_string()))?;
        let got = pump(url, &mut file.take(len), len, &self.limits, sink)?;
        exact(url, got, len)
    }
}

/// Decodes a `file://` URL to a path (percent-decoding each byte).
fn file_url_path(url: &str) -> Result<PathBuf, FetchError> {
    let rest = url
        .strip_prefix("file://")
        .ok_or_else(|| network(url, "not a file:// URL"))?;
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hi = (bytes[i + 1] as char).to_digit(16);
            let lo = (bytes[i + 2] as char).to_digit(16);
            if let (Some(hi), Some(lo)) = (hi, lo) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    use std::os::unix::ffi::OsStringExt;
    Ok(PathBuf::from(std::ffi::OsString::from_vec(out)))
}

/// Dispatches on the URL scheme: `file://` to [`FileTransport`], anything else to HTTP.
pub struct AnyTransport {
    http: HttpTransport,
    file: FileTransport,
}

impl AnyTransport {
    /// Both transports with the same limits; HTTPS with `tls` when given.
    pub fn new(limits: Limits, tls: Option<&TlsConfig>) -> Result<Self, FetchError> {
        Ok(AnyTransport {
            http: HttpTransport::build(limits, tls)?,
            file: FileTransport::new(limits),
        })
    }

    /// Both transports; HTTP(S) on a ready TLS configuration (see
    /// [`HttpTransport::with_preconfigured_tls`]).
    pub fn with_preconfigured_tls(
        limits: Limits,
        tls: impl std::any::Any,
    ) -> Result<Self, FetchError> {
        Ok(AnyTransport {
            http: HttpTransport::with_preconfigured_tls(limits, tls)?,
            file: FileTransport::new(limits),
        })
    }

    /// Sends `Authorization: authorize(url)` with every HTTP request.
    pub fn with_authorization(mut self, authorize: Authorize) -> Self {
        self.http = self.http.with_authorization(authorize);
        self
    }
}

impl Transport for AnyTransport {
    fn fetch(
        &self,
        url: &str,
        offset: u64,
        limit: u64,
        sink: &mut Sink<'_>,
    ) -> Result<u64, FetchError> {
        if url.starts_with("file://") {
            self.file.fetch(url, offset, limit, sink)
        } else {
            self.http.fetch(url, offset, limit, sink)
        }
    }

    fn fetch_range(
        &self,
        url: &str,
        offset: u64,
        len: u64,
        sink: &mut Sink<'_>,
    ) -> Result<(), FetchError> {
        if url.starts_with("file://") {
            self.file.fetch_range(url, offset, len, sink)
        } else {
            self.http.fetch_range(url, offset, len, sink)
        }
    }
}
