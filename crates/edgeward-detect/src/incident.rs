//! The incident lifecycle and the operator's requests about an incident. An incident moves
//! forward only: detected → contained → investigating → remediated → closed (a step may be
//! skipped, never undone; closing is possible from any open state). The request bodies come
//! from the admin API, so they are parsed here as untrusted bytes: bounded, unknown fields
//! refused, typed errors.

use serde::{Deserialize, Serialize};

/// Longest root-cause or lessons text accepted.
pub const MAX_TEXT: usize = 16 * 1024;

/// Largest request body accepted.
pub const MAX_REQUEST: usize = 64 * 1024;

/// Where an incident is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Opened by an alert; nothing done yet.
    Detected,
    /// The device is cut off (quarantined, sessions dropped).
    Contained,
    /// Evidence is being collected or examined.
    Investigating,
    /// The device was wiped, re-provisioned or released.
    Remediated,
    /// Over; the post-mortem is written.
    Closed,
}

impl Status {
    /// The status's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Detected => "detected",
            Status::Contained => "contained",
            Status::Investigating => "investigating",
            Status::Remediated => "remediated",
            Status::Closed => "closed",
        }
    }

    /// Whether an incident may move from `self` to `to`: forward only.
    pub fn may_become(self, to: Status) -> bool {
        to > self
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "detected" => Status::Detected,
            "contained" => Status::Contained,
            "investigating" => Status::Investigating,
            "remediated" => Status::Remediated,
            "closed" => Status::Closed,
            other => return Err(format!("unknown incident status {other:?}")),
        })
    }
}

/// A request the admin API refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub String);

/// `POST /v1/admin/incidents/{id}/close`: the post-mortem's operator fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseRequest {
    /// What caused the incident.
    #[serde(default)]
    pub root_cause: Option<String>,
    /// What was learned.
    #[serde(default)]
    pub lessons: Option<String>,
}

/// `POST /v1/admin/incidents/{id}/approve`: which pending action to approve (all pending
/// actions of the incident when absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The action's id.
    #[serde(default)]
    pub action: Option<i64>,
}

fn json<'a, T: Deserialize<'a> + Default>(body: &'a [u8], what: &str) -> Result<T, RequestError> {
    if body.len() > MAX_REQUEST {
        return Err(RequestError(format!(
            "{what}: {} bytes; at most {MAX_REQUEST}",
            body.len()
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| RequestError(format!("{what}: {e}")))
}

fn text(field: &str, value: &Option<String>) -> Result<(), RequestError> {
    match value {
        Some(v) if v.len() > MAX_TEXT => Err(RequestError(format!(
            "{field} is {} bytes; at most {MAX_TEXT}",
            v.len()
        ))),
        Some(v) if v.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            Err(RequestError(format!("{field} holds control characters")))
        }
        _ => Ok(()),
    }
}

/// Parses a close request (an empty body is an empty request).
pub fn close_request(body: &[u8]) -> Result<CloseRequest, RequestError> {
    let r: CloseRequest = json(body, "close request")?;
    text("root_cause", &r.root_cause)?;
    text("lessons", &r.lessons)?;
    Ok(r)
}

/// Parses an approve request (an empty body approves every pending action).
pub fn approve_request(body: &[u8]) -> Result<ApproveRequest, RequestError> {
    let r: ApproveRequest = json(body, "approve request")?;
    if r.action.is_some_and(|a| a < 1) {
        return Err(RequestError("action ids start at 1".into()));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_only_move_forward() {
        assert!(Status::Detected.may_become(Status::Contained));
        assert!(Status::Contained.may_become(Status::Closed));
        assert!(!Status::Investigating.may_become(Status::Contained));
        assert!(!Status::Closed.may_become(Status::Closed));
        for s in [
            "detected",
            "contained",
            "investigating",
            "remediated",
            "closed",
        ] {
            assert_eq!(s.parse::<Status>().map(|s| s.as_str()), Ok(s));
        }
        assert_eq!(
            "open".parse::<Status>(),
            Err("unknown incident status \"open\"".to_string())
        );
    }

    #[test]
    fn requests_are_bounded_and_strict() {
        assert_eq!(close_request(b"").unwrap(), CloseRequest::default());
        let r = close_request(br#"{"root_cause":"a stolen key","lessons":"rotate"}"#).unwrap();
        assert_eq!(r.root_cause.as_deref(), Some("a stolen key"));
        let unknown = close_request(br#"{"cause":"x"}"#).unwrap_err().0;
        assert!(
            unknown.starts_with("close request: unknown field `cause`"),
            "{unknown}"
        );
        assert_eq!(
            close_request(br#"{"lessons":"\u0007"}"#),
            Err(RequestError("lessons holds control characters".into()))
        );
        let long = format!("{{\"lessons\":\"{}\"}}", "x".repeat(MAX_TEXT + 1));
        assert_eq!(
            close_request(long.as_bytes()),
            Err(RequestError(format!(
                "lessons is {} bytes; at most {MAX_TEXT}",
                MAX_TEXT + 1
            )))
        );
        assert_eq!(approve_request(br#"{"action":3}"#).unwrap().action, Some(3));
        assert_eq!(
            approve_request(br#"{"action":0}"#),
            Err(RequestError("action ids start at 1".into()))
        );
        assert_eq!(
            approve_request(b"["),
            Err(RequestError(
                "approve request: EOF while parsing a list at line 1 column 1".into()
            ))
        );
    }
}
