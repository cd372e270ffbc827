//! Device tokens, sent on every device API call as `Authorization: Device <token>`.
//!
//! - **v1** is exactly the best-practice recipe's `create_device_token`:
//!   `device_id:timestamp:hex(HMAC-SHA256(secret, "device_id:timestamp"))`, a bearer token
//!   valid within a time window (±300 s by default) inside the mTLS channel.
//! - **v2** also binds the request and a nonce, so a captured token is useless for any other
//!   request and, with the server's nonce cache, cannot be replayed:
//!   `v2:device_id:timestamp:nonce:hex(HMAC-SHA256(secret, m))` with
//!   `m = "edgeward-token-v2\n" id "\n" timestamp "\n" nonce "\n" METHOD "\n" target "\n" hex(SHA-256(body))`,
//!   where `nonce` is 32 lowercase hex digits (16 random bytes) and `target` the request's
//!   path and query as sent.
//!
//! The two are told apart by their number of `:`-separated fields (3 or 5); device ids never
//! contain `:`. The HMAC key is the UTF-8 bytes of the device's secret string.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::device_id;

/// Default accepted clock difference between device and server, in seconds.
pub const DEFAULT_WINDOW_SECS: u64 = 300;
/// Longest token accepted, in bytes.
pub const MAX_TOKEN_LEN: usize = 512;

const V2_DOMAIN: &str = "edgeward-token-v2";

/// Why a token was refused. Messages never include the secret or the expected MAC.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token does not have the v1 or v2 shape.
    #[error("malformed device token: {0}")]
    Malformed(&'static str),
    /// The timestamp is outside the accepted window.
    #[error("device token timestamp {timestamp} is {skew} s away from the server's time (window ±{window} s)")]
    OutsideWindow {
        /// The token's timestamp.
        timestamp: u64,
        /// Absolute difference to the server's clock.
        skew: u64,
        /// The accepted window.
        window: u64,
    },
    /// The MAC does not match (wrong secret, edited token, or another request for v2).
    #[error("device token MAC does not verify")]
    BadMac,
    /// A v2 token was checked without the request it must be bound to.
    #[error("a v2 device token needs the request it was made for")]
    MissingRequest,
}

/// The parts of an HTTP request a v2 token binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    /// The method, e.g. `POST` (compared as given; send it upper-case).
    pub method: &'a str,
    /// The path and query as sent, e.g. `/v1/device/telemetry`.
    pub target: &'a str,
    /// SHA-256 of the body (of the empty string when there is none).
    pub body_sha256: [u8; 32],
}

/// A parsed, not yet verified, token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token<'a> {
    /// The device the token claims to be from.
    pub device_id: &'a str,
    /// Unix seconds.
    pub timestamp: u64,
    /// The v2 nonce (`None` for v1).
    pub nonce: Option<[u8; 16]>,
    mac: [u8; 32],
}

impl<'a> Token<'a> {
    /// Parses a v1 or v2 token.
    pub fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed("too long"));
        }
        // The first six fields, without collecting: a sixth makes the token malformed.
        let mut split = token.split(':');
        let fields: [Option<&str>; 6] = std::array::from_fn(|_| split.next());
        let (id, ts, nonce, mac) = match fields {
            [Some(id), Some(ts), Some(mac), None, ..] => (id, ts, None, mac),
            [Some("v2"), Some(id), Some(ts), Some(nonce), Some(mac), None] => {
                (id, ts, Some(nonce), mac)
            }
            _ => {
                return Err(TokenError::Malformed(
                    "expected id:timestamp:mac or v2:id:timestamp:nonce:mac",
                ))
            }
        };
        device_id::validate(id).map_err(|_| TokenError::Malformed("invalid device id"))?;
        if ts.is_empty() || ts.len() > 19 || !ts.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::Malformed(
                "timestamp is not a decimal number of seconds",
            ));
        }
        let timestamp = ts
            .parse()
            .map_err(|_| TokenError::Malformed("timestamp out of range"))?;
        let nonce = match nonce {
            None => None,
            Some(n) => Some(lower_hex::<16>(n).ok_or(TokenError::Malformed(
                "nonce is not 32 lowercase hex digits",
            ))?),
        };
        let mac = lower_hex::<32>(mac)
            .ok_or(TokenError::Malformed("MAC is not 64 lowercase hex digits"))?;
        Ok(Token {
            device_id: id,
            timestamp,
            nonce,
            mac,
        })
    }

    /// Whether this is a v2 (request-bound, nonce-carrying) token.
    pub fn is_v2(&self) -> bool {
        self.nonce.is_some()
    }

    /// Verifies the MAC with `secret` and the timestamp against `now` ± `window`; a v2 token
    /// must be checked with the `request` it was sent with. Replay of a v2 nonce is the
    /// caller's to refuse (the server keeps the nonces of the window).
    pub fn verify(
        &self,
        secret: &str,
        now: u64,
        window: u64,
        request: Option<&Request<'_>>,
    ) -> Result<(), TokenError> {
        let mut mac = hmac(secret);
        match self.nonce {
            None => mac_v1(&mut mac, self.device_id, self.timestamp),
            Some(nonce) => {
                let request = request.ok_or(TokenError::MissingRequest)?;
                mac_v2(&mut mac, self.device_id, self.timestamp, &nonce, request);
            }
        }
        // Constant-time comparison.
        mac.verify_slice(&self.mac)
            .map_err(|_| TokenError::BadMac)?;
        let skew = now.abs_diff(self.timestamp);
        if skew > window {
            return Err(TokenError::OutsideWindow {
                timestamp: self.timestamp,
                skew,
                window,
            });
        }
        Ok(())
    }
}

fn hmac(secret: &str) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length")
}

/// Feeds the v1 message `device_id:timestamp` to `mac`, piece by piece (no allocation: this
/// runs on every device API call).
fn mac_v1(mac: &mut Hmac<Sha256>, device_id: &str, timestamp: u64) {
    let mut digits = [0u8; 20];
    mac.update(device_id.as_bytes());
    mac.update(b":");
    mac.update(decimal(timestamp, &mut digits));
}

/// Feeds the v2 message (see the module documentation) to `mac`, piece by piece.
fn mac_v2(
    mac: &mut Hmac<Sha256>,
    device_id: &str,
    timestamp: u64,
    nonce: &[u8; 16],
    r: &Request<'_>,
) {
    let (mut digits, mut nonce_hex, mut body_hex) = ([0u8; 20], [0u8; 32], [0u8; 64]);
    let hex_of = |bytes: &[u8], out: &mut [u8]| {
        hex::encode_to_slice(bytes, out).expect("the buffers hold exactly twice the bytes");
    };
    hex_of(nonce, &mut nonce_hex);
    hex_of(&r.body_sha256, &mut body_hex);
    for piece in [
        V2_DOMAIN.as_bytes(),
        b"\n",
        device_id.as_bytes(),
        b"\n",
        decimal(timestamp, &mut digits),
        b"\n",
        &nonce_hex,
        b"\n",
        r.method.as_bytes(),
        b"\n",
        r.target.as_bytes(),
        b"\n",
        &body_hex,
    ] {
        mac.update(piece);
    }
}

/// `n` in decimal ASCII, written at the end of `buf` (20 digits hold any u64).
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut start = buf.len();
    loop {
        start -= 1;
        // `n % 10` is below 10, so the cast cannot truncate.
        buf[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[start..];
        }
    }
}

/// The value of each byte as a lowercase hex digit, or `NOT_HEX`.
const HEX_VALUE: [u8; 256] = {
    let mut table = [NOT_HEX; 256];
    let mut i = 0;
    while i < 16 {
        table[b"0123456789abcdef"[i] as usize] = i as u8;
        i += 1;
    }
    table
};
const NOT_HEX: u8 = 0xff;

/// Decodes exactly `2 * N` lowercase hex digits (one table lookup per digit: this runs on
/// every device API call).
fn lower_hex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    // Any digit that is not lowercase hex sets bits above the low nibble.
    let mut invalid = 0u8;
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let (high, low) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        invalid |= high | low;
        *byte = (high << 4) | low;
    }
    (invalid < 16).then_some(out)
}

/// Makes a v1 token, exactly as the recipe's `create_device_token(device_id, secret_key)`.
pub fn create_v1(device_id: &str, secret: &str, timestamp: u64) -> String {
    let mut mac = hmac(secret);
    mac_v1(&mut mac, device_id, timestamp);
    format!(
        "{device_id}:{timestamp}:{}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Makes a v2 token for `request` with a fresh random `nonce`.
pub fn create_v2(
    device_id: &str,
    secret: &str,
    timestamp: u64,
    nonce: [u8; 16],
    request: &Request<'_>,
) -> String {
    let mut mac = hmac(secret);
    mac_v2(&mut mac, device_id, timestamp, &nonce, request);
    format!(
        "v2:{device_id}:{timestamp}:{}:{}",
        hex::encode(nonce),
        hex::encode(mac.finalize().into_bytes())
    )
}

/// SHA-256 of a request body, for [`Request::body_sha256`].
pub fn body_sha256(body: &[u8]) -> [u8; 32] {
    Sha256::digest(body).into()
}
