//! The MQTT side of the device↔cloud contract: which topics a device publishes and reads,
//! and the reply the server publishes for each request. Every device topic lives under
//! `devices/<device id>/`; the broker's ACL lets a device publish only under its own id
//! (its certificate's identity is its MQTT user name) and read only its own replies.
//!
//! | topic | who publishes | payload |
//! |---|---|---|
//! | `devices/ID/telemetry` | device | a telemetry batch ([`crate::api::telemetry`]) |
//! | `devices/ID/poll` | device | empty: "send me my pending commands" |
//! | `devices/ID/result/CMD` | device | a command result ([`crate::api::command_result`]) |
//! | `devices/ID/commands` | server | the pending signed commands ([`crate::command::parse_delivery`]) |
//! | `devices/ID/acks` | server | a [`Reply`] to a telemetry batch, poll or result |

use serde::{Deserialize, Serialize};

use crate::device_id;

/// The prefix of every device topic.
pub const PREFIX: &str = "devices/";
/// Largest payload either side accepts on a device topic (the device API's body limit).
pub const MAX_PAYLOAD: usize = 1024 * 1024;
/// Longest command id accepted in a result topic, in digits.
const MAX_ID_DIGITS: usize = 18;

/// What a device asks for on one of its topics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Up {
    /// A telemetry batch (`devices/ID/telemetry`).
    Telemetry,
    /// A command poll (`devices/ID/poll`).
    Poll,
    /// The result of command `CMD` (`devices/ID/result/CMD`).
    Result(i64),
}

impl Up {
    /// The request's name in a [`Reply`]: `telemetry`, `poll` or `result/CMD`.
    pub fn name(&self) -> String {
        match self {
            Up::Telemetry => "telemetry".into(),
            Up::Poll => "poll".into(),
            Up::Result(id) => format!("result/{id}"),
        }
    }
}

/// Why a topic or payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    /// Not under `devices/`.
    #[error("topic {0:?} is not under devices/")]
    NotDevice(String),
    /// The device id segment is not a device id.
    #[error("topic names an invalid device id: {0}")]
    DeviceId(#[from] device_id::DeviceIdError),
    /// Not one of the topics a device publishes.
    #[error("devices/ID/{0:?} is not a device request topic")]
    Unknown(String),
    /// A result topic whose command id is not a positive integer.
    #[error("command id {0:?} is not a positive integer")]
    CommandId(String),
    /// A payload larger than [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes exceeds {MAX_PAYLOAD}")]
    TooLarge(usize),
}

/// A device's request as the server receives it from the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The device the topic names (the broker let only that device publish there).
    pub device: &'a str,
    /// What it asks for.
    pub up: Up,
    /// The payload.
    pub payload: &'a [u8],
}

/// Decodes a device request from its topic and payload (bounded, total: bad input gives an
/// error, never a panic). The payload's content is checked by the handler of its kind.
pub fn decode<'a>(topic: &'a str, payload: &'a [u8]) -> Result<Request<'a>, TopicError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(TopicError::TooLarge(payload.len()));
    }
    let rest = topic
        .strip_prefix(PREFIX)
        .ok_or_else(|| TopicError::NotDevice(bounded(topic)))?;
    let (device, what) = rest
        .split_once('/')
        .ok_or_else(|| TopicError::Unknown(String::new()))?;
    device_id::validate(device)?;
    let up = match what {
        "telemetry" => Up::Telemetry,
        "poll" => Up::Poll,
        w => match w.strip_prefix("result/") {
            Some(id) => Up::Result(command_id(id)?),
            None => return Err(TopicError::Unknown(bounded(w))),
        },
    };
    Ok(Request {
        device,
        up,
        payload,
    })
}

fn command_id(text: &str) -> Result<i64, TopicError> {
    let refuse = || TopicError::CommandId(bounded(text));
    // Canonical digits only (no sign, no leading zero), so a topic names one id one way.
    if text.is_empty()
        || text.len() > MAX_ID_DIGITS
        || text.starts_with('0')
        || !text.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(refuse());
    }
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(refuse)
}

/// At most 64 characters of untrusted text, for an error message.
fn bounded(text: &str) -> String {
    text.chars().take(64).collect()
}

/// Splits a broker address `HOST:PORT` (`[V6]:PORT` too).
pub fn host_port(broker: &str) -> Result<(String, u16), String> {
    let (host, port) = broker
        .rsplit_once(':')
        .ok_or_else(|| format!("broker {broker:?} is not HOST:PORT"))?;
    let port = port
        .parse()
        .map_err(|_| format!("broker {broker:?}: bad port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(format!("broker {broker:?} names no host"));
    }
    Ok((host.to_string(), port))
}

/// The topic a device publishes `up` on.
pub fn request_topic(device: &str, up: Up) -> String {
    format!("{PREFIX}{device}/{}", up.name())
}

/// The topic the server publishes a device's pending commands on.
pub fn commands_topic(device: &str) -> String {
    format!("{PREFIX}{device}/commands")
}

/// The topic the server publishes its replies to a device on.
pub fn acks_topic(device: &str) -> String {
    format!("{PREFIX}{device}/acks")
}

/// The server's answer to one device request, on `devices/ID/acks`: the HTTP status the
/// device API would have answered, with its body on success or its refusal otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// The request answered ([`Up::name`]).
    pub request: String,
    /// 200 on success, else the device API's status for the same refusal.
    pub status: u16,
    /// The answer on success (the device API's JSON body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// The refusal's code (`quarantined`, `rate_limited`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was wrong.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Parses a reply (bounded by [`MAX_PAYLOAD`]).
pub fn parse_reply(payload: &[u8]) -> Result<Reply, String> {
    if payload.len() > MAX_PAYLOAD {
        return Err(TopicError::TooLarge(payload.len()).to_string());
    }
    serde_json::from_slice(payload).map_err(|e| format!("MQTT reply: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_topics_decode_and_everything_else_is_refused() {
        let r = decode("devices/cam-1/telemetry", b"{}").expect("telemetry");
        assert_eq!((r.device, r.up), ("cam-1", Up::Telemetry));
        assert_eq!(
            decode("devices/cam-1/poll", b"").expect("poll").up,
            Up::Poll
        );
        assert_eq!(
            decode("devices/cam-1/result/42", b"{}").expect("result").up,
            Up::Result(42)
        );
        for (topic, want) in [
            ("other/cam-1/telemetry", "is not under devices/"),
            ("devices/cam-1", "is not a device request topic"),
            ("devices/cam+1/telemetry", "invalid device id"),
            ("devices/#/telemetry", "invalid device id"),
            ("devices//telemetry", "invalid device id"),
            ("devices/cam-1/commands", "is not a device request topic"),
            ("devices/cam-1/telemetry/x", "is not a device request topic"),
            ("devices/cam-1/result/0", "is not a positive integer"),
            ("devices/cam-1/result/07", "is not a positive integer"),
            ("devices/cam-1/result/+7", "is not a positive integer"),
            ("devices/cam-1/result/-3", "is not a positive integer"),
            (
                "devices/cam-1/result/99999999999999999999",
                "is not a positive integer",
            ),
        ] {
            let e = decode(topic, b"").expect_err(topic).to_string();
            assert!(e.contains(want), "{topic}: {e}");
        }
        let big = vec![b' '; MAX_PAYLOAD + 1];
        assert_eq!(
            decode("devices/cam-1/telemetry", &big),
            Err(TopicError::TooLarge(MAX_PAYLOAD + 1))
        );
    }

    #[test]
    fn topics_round_trip_and_replies_parse() {
        for up in [Up::Telemetry, Up::Poll, Up::Result(7)] {
            let topic = request_topic("cam-1", up);
            assert_eq!(decode(&topic, b"").expect("decode").up, up);
        }
        let reply = Reply {
            request: "telemetry".into(),
            status: 403,
            body: None,
            error: Some("quarantined".into()),
            message: Some("device cam-1 is quarantined".into()),
        };
        let text = serde_json::to_vec(&reply).expect("json");
        assert_eq!(parse_reply(&text), Ok(reply));
        let unknown = parse_reply(b"{\"request\":\"poll\",\"status\":200,\"x\":1}").unwrap_err();
        assert!(
            unknown.starts_with("MQTT reply: unknown field `x`"),
            "{unknown}"
        );
        assert_eq!(host_port("[::1]:8883"), Ok(("::1".into(), 8883)));
        assert_eq!(host_port("b.example:1"), Ok(("b.example".into(), 1)));
        assert_eq!(
            host_port("broker"),
            Err("broker \"broker\" is not HOST:PORT".into())
        );
        assert_eq!(
            host_port(":8883"),
            Err("broker \":8883\" names no host".into())
        );
        assert_eq!(
            host_port("b.example:x"),
            Err("broker \"b.example:x\": bad port".into())
        );
    }
}
