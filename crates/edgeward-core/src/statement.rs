//! The in-toto statement of OpenSSF model-signing v1.0: one subject (the artifact's name
//! and root digest) and a predicate listing the serialization and every resource digest.
//!
//! Edgeward adds one optional predicate object, `edgeward`: `signed_at` (Unix seconds), so a
//! verifier can judge the signing certificate at signing time, and for boot-chain stages the
//! optional `stage`, `hardware` and `security_counter` ([`BootClaims`]), which the signature
//! thereby covers. model-signing v1.0 verifiers ignore predicate fields they do not know, as
//! its specification requires.

use alloc::{
    collections::{BTreeMap, BTreeSet},
    format,
    string::String,
    vec,
    vec::Vec,
};

use serde::{Deserialize, Serialize};

use crate::{
    manifest::{ItemKey, Manifest, Method, Serialization},
    size_limits::{MAX_IGNORE_PATHS, MAX_RESOURCES},
    Error, Sha256Digest,
};

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// The model-signing predicate type this crate reads and writes.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The predicate type of model_signing v0.2, whose statement lists one subject per file and
/// no serialization (read for compatibility, never written).
pub const PREDICATE_TYPE_V0_2: &str = "https://model_signing/Digests/v0.1";

/// Which statement layout a bundle carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementVersion {
    /// `https://model_signing/signature/v1.0` (model_signing v0.3 and later, and Edgeward).
    V1,
    /// `https://model_signing/Digests/v0.1` (model_signing v0.2: files as subjects).
    V0_2,
}

#[derive(Deserialize)]
struct HeadJson {
    #[serde(rename = "_type")]
    type_: String,
    #[serde(rename = "predicateType")]
    predicate_type: String,
}

#[derive(Deserialize)]
struct LegacyStatementJson {
    subject: Vec<SubjectJson>,
}

/// A parsed and self-consistent statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The artifact's manifest.
    pub manifest: Manifest,
    /// When the signer says it signed (Unix seconds), if the signer recorded it. Edgeward
    /// always records it; with it the statement also carries the manifest's empty files.
    pub signed_at: Option<u64>,
    /// Boot-chain claims (stage, hardware class, security counter), all optional.
    pub boot: BootClaims,
}

/// Longest stage name or hardware class a statement may carry.
pub const MAX_CLAIM_NAME_BYTES: usize = 64;

/// What a signer says about an image that is one stage of a boot chain. Each field is
/// optional and, being part of the signed statement, cannot be changed without breaking the
/// signature.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BootClaims {
    /// The chain stage the image is for (`[A-Za-z0-9._-]`, at most 64 bytes).
    pub stage: Option<String>,
    /// The hardware class the image is built for (same alphabet and bound).
    pub hardware: Option<String>,
    /// The image's anti-rollback security counter.
    pub security_counter: Option<u64>,
}

impl BootClaims {
    /// Whether no claim is made.
    pub fn is_empty(&self) -> bool {
        self.stage.is_none() && self.hardware.is_none() && self.security_counter.is_none()
    }
}

/// Checks a stage name or hardware class: 1 to [`MAX_CLAIM_NAME_BYTES`] bytes of
/// `[A-Za-z0-9._-]`.
pub fn validate_claim_name(what: &'static str, name: &str) -> Result<(), Error> {
    let ok_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-');
    if name.is_empty() || name.len() > MAX_CLAIM_NAME_BYTES || !name.bytes().all(ok_char) {
        return Err(Error::malformed(
            what,
            format!("{name:?} is not 1 to {MAX_CLAIM_NAME_BYTES} characters of [A-Za-z0-9._-]"),
        ));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
struct StatementJson {
    #[serde(rename = "_type")]
    type_: String,
    subject: Vec<SubjectJson>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    predicate: PredicateJson,
}

#[derive(Serialize, Deserialize)]
struct SubjectJson {
    name: String,
    digest: DigestSetJson,
}

#[derive(Serialize, Deserialize)]
struct DigestSetJson {
    sha256: String,
}

#[derive(Serialize, Deserialize)]
struct PredicateJson {
    serialization: SerializationJson,
    resources: Vec<ResourceJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    edgeward: Option<EdgewardJson>,
}

#[derive(Serialize, Deserialize)]
struct SerializationJson {
    method: String,
    hash_type: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "integral_number"
    )]
    shard_size: Option<u64>,
    allow_symlinks: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ignore_paths: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct ResourceJson {
    name: String,
    algorithm: String,
    digest: String,
}

#[derive(Serialize, Deserialize)]
struct EdgewardJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signed_at: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    empty_files: BTreeSet<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stage: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hardware: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    security_counter: Option<u64>,
}

/// Decodes 64 hex digits into a digest.
pub fn parse_digest(what: &'static str, hex_str: &str) -> Result<Sha256Digest, Error> {
    let mut out = [0u8; 32];
    if hex_str.len() != 64 {
        return Err(Error::malformed(
            what,
            format!("{} hex digits (expected 64)", hex_str.len()),
        ));
    }
    hex::decode_to_slice(hex_str, &mut out).map_err(|e| Error::malformed(what, e))?;
    Ok(out)
}

impl Statement {
    /// Parses statement JSON and checks it: statement and predicate types, one subject,
    /// SHA-256 only, every resource's algorithm matching the serialization, no duplicate
    /// resources, and the subject digest equal to the digest over the resources.
    pub fn parse(json: &[u8]) -> Result<Self, Error> {
        match Self::parse_any(json)? {
            (statement, StatementVersion::V1) => Ok(statement),
            (_, StatementVersion::V0_2) => Err(Error::unsupported(
                "predicate type",
                format!("{PREDICATE_TYPE_V0_2:?} (expected {PREDICATE_TYPE})"),
            )),
        }
    }

    /// Parses a statement of either layout: the v1.0 predicate, or model_signing v0.2's
    /// files-as-subjects layout, which becomes a files manifest with no model name.
    pub fn parse_any(json: &[u8]) -> Result<(Self, StatementVersion), Error> {
        let head: HeadJson =
            serde_json::from_slice(json).map_err(|e| Error::malformed("statement JSON", e))?;
        if head.type_ != STATEMENT_TYPE {
            return Err(Error::unsupported(
                "statement type",
                format!("{:?}", head.type_),
            ));
        }
        match head.predicate_type.as_str() {
            PREDICATE_TYPE => Self::parse_v1(json).map(|s| (s, StatementVersion::V1)),
            PREDICATE_TYPE_V0_2 => Self::parse_v0_2(json).map(|s| (s, StatementVersion::V0_2)),
            other => Err(Error::unsupported(
                "predicate type",
                format!("{other:?} (expected {PREDICATE_TYPE} or {PREDICATE_TYPE_V0_2})"),
            )),
        }
    }

    fn parse_v0_2(json: &[u8]) -> Result<Self, Error> {
        let raw: LegacyStatementJson =
            serde_json::from_slice(json).map_err(|e| Error::malformed("statement JSON", e))?;
        if raw.subject.is_empty() || raw.subject.len() > MAX_RESOURCES {
            return Err(Error::malformed(
                "statement",
                format!(
                    "{} subjects (expected 1–{MAX_RESOURCES})",
                    raw.subject.len()
                ),
            ));
        }
        let mut items = BTreeMap::new();
        for subject in &raw.subject {
            let key = ItemKey::parse(&subject.name, Method::Files)?;
            let digest = parse_digest("subject digest", &subject.digest.sha256)?;
            if items.insert(key, digest).is_some() {
                return Err(Error::malformed(
                    "statement",
                    format!("subject {:?} is listed twice", subject.name),
                ));
            }
        }
        Ok(Statement {
            manifest: Manifest {
                model_name: String::new(),
                serialization: Serialization {
                    method: Method::Files,
                    allow_symlinks: false,
                    ignore_paths: Vec::new(),
                },
                items,
                empty_files: BTreeSet::new(),
            },
            signed_at: None,
            boot: BootClaims::default(),
        })
    }

    fn parse_v1(json: &[u8]) -> Result<Self, Error> {
        let raw: StatementJson =
            serde_json::from_slice(json).map_err(|e| Error::malformed("statement JSON", e))?;
        let [subject] = raw.subject.as_slice() else {
            return Err(Error::malformed(
                "statement",
                format!("{} subjects (expected exactly one)", raw.subject.len()),
            ));
        };
        let subject_digest = parse_digest("subject digest", &subject.digest.sha256)?;
        let serialization = parse_serialization(&raw.predicate.serialization)?;
        let algorithm = serialization.item_algorithm();
        let resources = &raw.predicate.resources;
        if resources.len() > MAX_RESOURCES {
            return Err(Error::malformed(
                "statement",
                format!(
                    "{} resources exceeds the limit of {MAX_RESOURCES}",
                    resources.len()
                ),
            ));
        }
        let mut items = BTreeMap::new();
        let mut listed_root = sha2_stream();
        for r in resources {
            if r.algorithm != algorithm {
                return Err(Error::unsupported(
                    "resource digest algorithm",
                    format!(
                        "{:?} for {:?} (the serialization requires {algorithm:?})",
                        r.algorithm, r.name
                    ),
                ));
            }
            let key = ItemKey::parse(&r.name, serialization.method)?;
            let digest = parse_digest("resource digest", &r.digest)?;
            sha2::Digest::update(&mut listed_root, digest);
            if items.insert(key, digest).is_some() {
                return Err(Error::malformed(
                    "statement",
                    format!("resource {:?} is listed twice", r.name),
                ));
            }
        }
        let listed: Sha256Digest = sha2::Digest::finalize(listed_root).into();
        if listed != subject_digest {
            return Err(Error::malformed(
                "statement",
                "the subject digest does not match the listed resource digests",
            ));
        }
        let (signed_at, empty_files, boot) = match raw.predicate.edgeward {
            Some(e) => (
                e.signed_at,
                e.empty_files,
                BootClaims {
                    stage: e.stage,
                    hardware: e.hardware,
                    security_counter: e.security_counter,
                },
            ),
            None => (None, BTreeSet::new(), BootClaims::default()),
        };
        if let Some(stage) = &boot.stage {
            validate_claim_name("signed stage name", stage)?;
        }
        if let Some(hardware) = &boot.hardware {
            validate_claim_name("signed hardware class", hardware)?;
        }
        if empty_files.len() > MAX_RESOURCES {
            return Err(Error::malformed("statement", "too many empty files listed"));
        }
        for path in &empty_files {
            crate::manifest::validate_path(path)?;
        }
        Ok(Statement {
            manifest: Manifest {
                model_name: subject.name.clone(),
                serialization,
                items,
                empty_files,
            },
            signed_at,
            boot,
        })
    }

    /// Serializes the statement as model-signing does (resources in canonical order).
    pub fn to_json(&self) -> Vec<u8> {
        let m = &self.manifest;
        let algorithm = m.serialization.item_algorithm();
        let json = StatementJson {
            type_: String::from(STATEMENT_TYPE),
            subject: vec![SubjectJson {
                name: m.model_name.clone(),
                digest: DigestSetJson {
                    sha256: hex::encode(m.root_digest()),
                },
            }],
            predicate_type: String::from(PREDICATE_TYPE),
            predicate: PredicateJson {
                serialization: SerializationJson {
                    method: String::from(match m.serialization.method {
                        Method::Files => "files",
                        Method::Shards { .. } => "shards",
                    }),
                    hash_type: String::from("sha256"),
                    shard_size: match m.serialization.method {
                        Method::Files => None,
                        Method::Shards { shard_size } => Some(shard_size),
                    },
                    allow_symlinks: m.serialization.allow_symlinks,
                    ignore_paths: m.serialization.ignore_paths.clone(),
                },
                resources: m
                    .items
                    .iter()
                    .map(|(k, d)| ResourceJson {
                        name: k.name(),
                        algorithm: algorithm.clone(),
                        digest: hex::encode(d),
                    })
                    .collect(),
                edgeward: (self.signed_at.is_some() || !self.boot.is_empty()).then(|| {
                    EdgewardJson {
                        signed_at: self.signed_at,
                        empty_files: m.empty_files.clone(),
                        stage: self.boot.stage.clone(),
                        hardware: self.boot.hardware.clone(),
                        security_counter: self.boot.security_counter,
                    }
                }),
            },
        };
        serde_json::to_vec_pretty(&json).unwrap_or_default()
    }
}

/// A whole non-negative number written as an integer or, as model-signing's Python API
/// writes it (protobuf `Struct` numbers are doubles), as a float with no fraction.
fn integral_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    if let Some(u) = n.as_u64() {
        return Ok(Some(u));
    }
    match n.as_f64() {
        Some(f) if (1.0..=9_007_199_254_740_992.0).contains(&f) && (f as u64) as f64 == f => {
            Ok(Some(f as u64))
        }
        _ => Err(serde::de::Error::custom(format!(
            "{n} is not a whole number of bytes"
        ))),
    }
}

fn sha2_stream() -> sha2::Sha256 {
    <sha2::Sha256 as sha2::Digest>::new()
}

fn parse_serialization(s: &SerializationJson) -> Result<Serialization, Error> {
    if s.hash_type != "sha256" {
        return Err(Error::unsupported(
            "hash type",
            format!("{:?} (Edgeward accepts sha256)", s.hash_type),
        ));
    }
    let method = match (s.method.as_str(), s.shard_size) {
        ("files", None) => Method::Files,
        ("shards", Some(size)) if size > 0 => Method::Shards { shard_size: size },
        ("shards", _) => {
            return Err(Error::malformed(
                "serialization",
                "shards without a positive shard_size",
            ))
        }
        ("files", Some(_)) => {
            return Err(Error::malformed("serialization", "files with a shard_size"))
        }
        (other, _) => {
            return Err(Error::unsupported(
                "serialization method",
                format!("{other:?}"),
            ))
        }
    };
    if s.ignore_paths.len() > MAX_IGNORE_PATHS {
        return Err(Error::malformed("serialization", "too many ignore_paths"));
    }
    for p in &s.ignore_paths {
        if p == "." {
            return Err(Error::malformed(
                "serialization",
                "ignore path \".\" would ignore everything",
            ));
        }
        crate::manifest::validate_path(p)?;
    }
    Ok(Serialization {
        method,
        allow_symlinks: s.allow_symlinks,
        ignore_paths: s.ignore_paths.clone(),
    })
}

#[cfg(test)]
mod boot_claims_tests {
    use super::*;
    use crate::manifest::Method;

    fn statement(boot: BootClaims) -> Statement {
        let mut items = BTreeMap::new();
        items.insert(
            ItemKey {
                path: ".".into(),
                range: None,
            },
            [7u8; 32],
        );
        Statement {
            manifest: Manifest {
                model_name: "os.img".into(),
                serialization: Serialization {
                    method: Method::Files,
                    allow_symlinks: false,
                    ignore_paths: Vec::new(),
                },
                items,
                empty_files: BTreeSet::new(),
            },
            signed_at: Some(1_700_000_000),
            boot,
        }
    }

    #[test]
    fn boot_claims_round_trip() {
        let s = statement(BootClaims {
            stage: Some("os".into()),
            hardware: Some("sim-board-v1".into()),
            security_counter: Some(7),
        });
        assert_eq!(Statement::parse(&s.to_json()).unwrap(), s);
        let plain = statement(BootClaims::default());
        let json = plain.to_json();
        assert!(!String::from_utf8_lossy(&json).contains("security_counter"));
        assert_eq!(Statement::parse(&json).unwrap(), plain);
    }

    #[test]
    fn bad_claim_names_are_refused() {
        for bad in ["", "a b", "x/../y", &"a".repeat(65)] {
            let s = statement(BootClaims {
                stage: Some(bad.into()),
                ..BootClaims::default()
            });
            let err = Statement::parse(&s.to_json()).unwrap_err();
            assert!(err.to_string().contains("signed stage name"), "{err}");
        }
    }
}
