//! Playbooks: which actions an alert sets off. A playbook is a TOML file of rules, each a
//! condition on the alert (its kinds, a minimum severity) and the actions to take; the first
//! rule that matches decides. Destructive actions (wipe, re-provisioning) wait for an
//! operator's approval unless the rule says otherwise in so many words.
//!
//! ```toml
//! [[rule]]
//! name = "compromise"
//! kinds = ["tamper", "attestation_failure", "foreign_model", "cloned_certificate"]
//! min_severity = "high"
//! actions = ["quarantine", "drop_sessions", "hold_updates", "collect_forensics", "notify", "wipe"]
//! ```
//!
//! The file is operator input read at start-up; it is still parsed as untrusted bytes:
//! bounded, unknown keys refused, every name checked, and a typed error saying where.

use serde::{Deserialize, Serialize};

use crate::alert::{Alert, Severity};

/// Largest playbook file accepted.
pub const MAX_PLAYBOOK_BYTES: usize = 64 * 1024;

/// Most rules in a playbook.
pub const MAX_RULES: usize = 256;

/// Something a playbook can do about an alert's device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Quarantine the device in the registry (it may then only poll commands and upload
    /// forensics).
    Quarantine,
    /// Close the device's live sessions on every transport.
    DropSessions,
    /// Hold the device's updates until the incident is closed.
    HoldUpdates,
    /// Ask the device for a signed forensic bundle.
    CollectForensics,
    /// Send the incident to the alert sinks.
    Notify,
    /// Wipe the device (needs approval unless the rule lists it in `without_approval`).
    Wipe,
    /// Send the device back to enrollment with a new token (needs approval likewise).
    Reprovision,
}

impl Action {
    /// Whether the action destroys something and therefore waits for approval by default.
    pub fn destructive(self) -> bool {
        matches!(self, Action::Wipe | Action::Reprovision)
    }

    /// Whether the action is part of containment (it moves an incident to `contained`).
    pub fn contains(self) -> bool {
        matches!(self, Action::Quarantine | Action::DropSessions)
    }
}

/// The alert kinds a rule can name (the `kind` of [`crate::alert::AlertKind`]).
pub const KINDS: &[&str] = &[
    "behaviour",
    "auth_failure_burst",
    "rate_limit_burst",
    "verification_failure",
    "attestation_failure",
    "foreign_model",
    "new_listening_port",
    "tamper",
    "boot_recovery",
    "outside_area",
    "impossible_travel",
    "cloned_certificate",
];

/// One rule of a playbook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Its name, shown in incident timelines.
    pub name: String,
    /// Alert kinds it applies to; empty applies to every kind.
    #[serde(default)]
    pub kinds: Vec<String>,
    /// The least severity it applies to.
    #[serde(default = "lowest")]
    pub min_severity: Severity,
    /// What to do, in order.
    pub actions: Vec<Action>,
    /// Destructive actions this rule may take without an operator's approval.
    #[serde(default)]
    pub without_approval: Vec<Action>,
}

fn lowest() -> Severity {
    Severity::Low
}

/// A playbook: rules tried in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    /// The rules.
    #[serde(default)]
    pub rule: Vec<Rule>,
}

/// Why a playbook was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaybookError {
    /// The file is larger than [`MAX_PLAYBOOK_BYTES`].
    #[error("the playbook is {0} bytes; at most {MAX_PLAYBOOK_BYTES} are accepted")]
    TooLarge(usize),
    /// Not valid TOML, or not the playbook's shape.
    #[error("the playbook is not valid: {0}")]
    Syntax(String),
    /// A rule is wrong.
    #[error("playbook rule {index} ({name:?}): {reason}")]
    Rule {
        /// The rule's position (from 1).
        index: usize,
        /// Its name.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// The default playbook: contain and investigate on compromise (tamper, failed attestation, a
/// model that is not the release's, a cloned certificate), notify on everything else of high
/// severity. Wipes are never automatic.
pub const DEFAULT_PLAYBOOK: &str = r#"
[[rule]]
name = "contain-compromise"
kinds = ["tamper", "attestation_failure", "foreign_model", "cloned_certificate"]
actions = ["quarantine", "drop_sessions", "hold_updates", "collect_forensics", "notify", "wipe"]

[[rule]]
name = "notify-high"
min_severity = "high"
actions = ["notify"]
"#;

impl Default for Playbook {
    fn default() -> Self {
        // The built-in text is checked by a test; an empty playbook is the safe fallback.
        Playbook::parse(DEFAULT_PLAYBOOK.as_bytes()).unwrap_or(Playbook { rule: Vec::new() })
    }
}

impl Playbook {
    /// Parses and checks a playbook file.
    pub fn parse(bytes: &[u8]) -> Result<Playbook, PlaybookError> {
        if bytes.len() > MAX_PLAYBOOK_BYTES {
            return Err(PlaybookError::TooLarge(bytes.len()));
        }
        let text = std::str::from_utf8(bytes)
            .map_err(|e| PlaybookError::Syntax(format!("not UTF-8: {e}")))?;
        let playbook: Playbook =
            toml::from_str(text).map_err(|e| PlaybookError::Syntax(e.message().to_string()))?;
        if playbook.rule.len() > MAX_RULES {
            return Err(PlaybookError::Syntax(format!(
                "{} rules; at most {MAX_RULES}",
                playbook.rule.len()
            )));
        }
        for (i, rule) in playbook.rule.iter().enumerate() {
            let bad = |reason: String| PlaybookError::Rule {
                index: i + 1,
                name: rule.name.chars().take(64).collect(),
                reason,
            };
            if rule.name.is_empty()
                || rule.name.len() > 64
                || !rule.name.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(bad(
                    "the name must be 1-64 printable ASCII characters".into()
                ));
            }
            if let Some(k) = rule.kinds.iter().find(|k| !KINDS.contains(&k.as_str())) {
                return Err(bad(format!(
                    "unknown alert kind {k:?} (known: {})",
                    KINDS.join(", ")
                )));
            }
            if rule.actions.is_empty() || rule.actions.len() > 16 || rule.kinds.len() > 64 {
                return Err(bad("a rule has 1-16 actions and at most 64 kinds".into()));
            }
            if let Some(a) = rule.without_approval.iter().find(|a| !a.destructive()) {
                return Err(bad(format!(
                    "{a:?} never needs approval; without_approval lists only wipe and reprovision"
                )));
            }
        }
        Ok(playbook)
    }

    /// The first rule matching `alert`, if any.
    pub fn matching(&self, alert: &Alert) -> Option<&Rule> {
        let kind = alert.kind.name();
        self.rule.iter().find(|r| {
            alert.severity >= r.min_severity
                && (r.kinds.is_empty() || r.kinds.iter().any(|k| k == kind))
        })
    }
}

impl Rule {
    /// Whether `action` waits for an operator's approval under this rule.
    pub fn needs_approval(&self, action: Action) -> bool {
        action.destructive() && !self.without_approval.contains(&action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertKind;

    fn alert(kind: AlertKind, severity: Severity) -> Alert {
        Alert {
            device: "cam-1".into(),
            kind,
            severity,
            at: 0,
            detail: String::new(),
        }
    }

    #[test]
    fn the_default_playbook_contains_on_compromise_and_waits_to_wipe() {
        let p = Playbook::parse(DEFAULT_PLAYBOOK.as_bytes()).expect("default parses");
        assert_eq!(p, Playbook::default());
        for kind in [
            AlertKind::Tamper,
            AlertKind::AttestationFailure,
            AlertKind::ForeignModel { hash: "ab".into() },
        ] {
            let rule = p.matching(&alert(kind, Severity::Critical)).expect("rule");
            assert_eq!(rule.name, "contain-compromise");
            assert!(rule.actions.contains(&Action::Quarantine));
            assert!(rule.needs_approval(Action::Wipe));
        }
        let behaviour = AlertKind::Behaviour { metric: "x".into() };
        assert!(p
            .matching(&alert(behaviour.clone(), Severity::Medium))
            .is_none());
        assert_eq!(
            p.matching(&alert(behaviour, Severity::High))
                .map(|r| r.actions.clone()),
            Some(vec![Action::Notify])
        );
    }

    #[test]
    fn bad_playbooks_are_refused_with_where() {
        let e = Playbook::parse(
            b"[[rule]]\nname = \"x\"\nkinds = [\"tampr\"]\nactions = [\"notify\"]\n",
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("rule 1") && e.to_string().contains("tampr"),
            "{e}"
        );
        let e = Playbook::parse(b"[[rule]]\nname = \"x\"\nactions = [\"launch\"]\n").unwrap_err();
        assert!(matches!(e, PlaybookError::Syntax(_)), "{e}");
        let e = Playbook::parse(
            b"[[rule]]\nname = \"x\"\nactions = [\"notify\"]\nwithout_approval = [\"notify\"]\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("never needs approval"), "{e}");
        let e = Playbook::parse(b"[[rule]]\nname = \"x\"\nactions = [\"notify\"]\ncolour = 1\n")
            .unwrap_err();
        assert!(matches!(e, PlaybookError::Syntax(_)), "{e}");
        assert!(matches!(
            Playbook::parse(&vec![b' '; MAX_PLAYBOOK_BYTES + 1]),
            Err(PlaybookError::TooLarge(_))
        ));
    }
}
