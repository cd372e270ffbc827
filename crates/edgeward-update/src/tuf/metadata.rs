//! The four TUF roles' `signed` payloads, read from untrusted JSON.
//!
//! Every field the specification defines is checked for type and range; fields it does
//! not define are allowed (they are covered by the signature all the same, since the
//! signature is checked over the canonical form of the whole `signed` object, see
//! [`super::envelope`]). Parsing never panics: bad input gives a [`MetadataError`] that
//! names the field.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
use time::format_description::FormatItem;
use time::macros::format_description;
use time::PrimitiveDateTime;

use super::keys::PublicKey;

/// The format of `expires`: UTC, whole seconds, a literal `Z`.
const EXPIRES_FORMAT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// The major version of the specification this client implements.
const SPEC_MAJOR: &str = "1";

/// A field of untrusted metadata that is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct MetadataError {
    /// Dotted path of the field, e.g. `signed.roles.root.threshold`.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

fn err<T>(field: &str, reason: impl Into<String>) -> Result<T, MetadataError> {
    Err(MetadataError {
        field: field.to_string(),
        reason: reason.into(),
    })
}

/// The top-level role types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleType {
    /// `root`
    Root,
    /// `timestamp`
    Timestamp,
    /// `snapshot`
    Snapshot,
    /// `targets` (top-level or delegated)
    Targets,
}

impl RoleType {
    /// The `_type` string.
    pub fn name(self) -> &'static str {
        match self {
            RoleType::Root => "root",
            RoleType::Timestamp => "timestamp",
            RoleType::Snapshot => "snapshot",
            RoleType::Targets => "targets",
        }
    }
}

/// The names of the top-level roles, which delegations may not reuse.
pub const TOP_LEVEL_ROLES: [&str; 4] = ["root", "timestamp", "snapshot", "targets"];

/// Fields every role has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Common {
    /// Metadata version, ≥ 1.
    pub version: u64,
    /// Expiry in seconds since the Unix epoch (UTC).
    pub expires: i64,
}

impl Common {
    /// Whether the metadata has expired at `now` (seconds since the epoch): TUF requires
    /// the expiry to be strictly later than the update's start time.
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.expires
    }
}

/// A role's keys and threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Role {
    /// Key ids allowed to sign, each listed once.
    pub keyids: Vec<String>,
    /// Signatures needed, ≥ 1.
    pub threshold: u64,
}

/// `root` metadata.
#[derive(Debug, Clone)]
pub struct Root {
    /// Version and expiry.
    pub common: Common,
    /// Whether metadata and targets are fetched by versioned / hash-prefixed names.
    pub consistent_snapshot: bool,
    /// Keys by key id.
    pub keys: BTreeMap<String, PublicKey>,
    /// The four top-level roles (other names are kept but unused).
    pub roles: BTreeMap<String, Role>,
}

impl Root {
    /// The definition of a top-level role (present by construction).
    pub fn role(&self, name: &str) -> Option<&Role> {
        self.roles.get(name)
    }
}

/// Hash algorithm name → lowercase hex digest.
pub type Hashes = BTreeMap<String, String>;

/// What a timestamp says about snapshot, or a snapshot about a targets role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaFile {
    /// Version of the referred metadata.
    pub version: u64,
    /// Its exact length, when given.
    pub length: Option<u64>,
    /// Its hashes, when given (never empty when present).
    pub hashes: Option<Hashes>,
}

/// `timestamp` metadata.
#[derive(Debug, Clone)]
pub struct Timestamp {
    /// Version and expiry.
    pub common: Common,
    /// `meta["snapshot.json"]`.
    pub snapshot: MetaFile,
}

/// `snapshot` metadata.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Version and expiry.
    pub common: Common,
    /// `ROLE.json` → what it must be.
    pub meta: BTreeMap<String, MetaFile>,
}

/// One target file in targets metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetFile {
    /// Exact length in bytes.
    pub length: u64,
    /// Hashes, at least one.
    pub hashes: Hashes,
    /// The application-specific `custom` object, if any.
    pub custom: Option<Value>,
}

/// `targets` metadata (top-level or delegated).
#[derive(Debug, Clone)]
pub struct Targets {
    /// Version and expiry.
    pub common: Common,
    /// Target path → file.
    pub targets: BTreeMap<String, TargetFile>,
    /// Roles this role delegates to.
    pub delegations: Option<Delegations>,
}

/// A targets role's delegations.
#[derive(Debug, Clone)]
pub struct Delegations {
    /// Keys by key id.
    pub keys: BTreeMap<String, PublicKey>,
    /// The delegated roles.
    pub roles: DelegatedRoles,
}

/// Delegated roles, as an ordered list or as TAP 15 hash bins.
#[derive(Debug, Clone)]
pub enum DelegatedRoles {
    /// Roles in order of appearance (search order).
    List(Vec<DelegatedRole>),
    /// Succinct hash-bin delegation.
    Succinct(SuccinctRoles),
}

/// One delegation.
#[derive(Debug, Clone)]
pub struct DelegatedRole {
    /// Role name (also its metadata file name).
    pub name: String,
    /// Keys and threshold.
    pub role: Role,
    /// Whether the search stops here even when this role does not know the target.
    pub terminating: bool,
    /// Which target paths the role may sign for.
    pub scope: PathScope,
}

/// The target paths a delegated role is trusted for.
#[derive(Debug, Clone)]
pub enum PathScope {
    /// Shell-style patterns, matched per `/`-separated component.
    Paths(Vec<String>),
    /// Hex prefixes of the SHA-256 of the target path.
    HashPrefixes(Vec<String>),
}

/// TAP 15: `2^bit_length` bins named `PREFIX-HEX`, one key set for all.
#[derive(Debug, Clone)]
pub struct SuccinctRoles {
    /// Keys and threshold of every bin.
    pub role: Role,
    /// Number of leading hash bits that choose the bin (1..=32).
    pub bit_length: u32,
    /// Bin name prefix.
    pub name_prefix: String,
}

impl PathScope {
    /// Whether `target` is inside this scope.
    pub fn contains(&self, target: &str) -> bool {
        match self {
            PathScope::Paths(patterns) => patterns.iter().any(|p| path_matches(target, p)),
            PathScope::HashPrefixes(prefixes) => {
                let digest = hex::encode(super::hash::sha256(target.as_bytes()));
                prefixes.iter().any(|p| digest.starts_with(p.as_str()))
            }
        }
    }
}

impl SuccinctRoles {
    /// The bin responsible for `target`.
    pub fn bin_for(&self, target: &str) -> String {
        let digest = super::hash::sha256(target.as_bytes());
        let first = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let bin = u64::from(first) >> (32 - self.bit_length);
        let width = format!("{:x}", (1u64 << self.bit_length) - 1).len();
        format!("{}-{:0width$x}", self.name_prefix, bin)
    }
}

/// Whether `target` matches `pattern`: both split on `/`, the same number of components,
/// each component matched as a shell glob (`*`, `?`, `[set]`, `[!set]`) — so `*` never
/// crosses a `/`.
pub fn path_matches(target: &str, pattern: &str) -> bool {
    let t: Vec<&str> = target.split('/').collect();
    let p: Vec<&str> = pattern.split('/').collect();
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| glob(t.as_bytes(), p.as_bytes()))
}

/// fnmatch-style glob on one path component (no `/` inside either side).
fn glob(text: &[u8], pat: &[u8]) -> bool {
    // Iterative matcher with one backtrack point for the last `*`: linear-ish, no recursion.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, t));
                    p += 1;
                    continue;
                }
                b'?' => {
                    // One character (a whole UTF-8 sequence).
                    t += utf8_len(text[t]).min(text.len() - t);
                    p += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next_p, width)) = class(&pat[p..], &text[t..]) {
                        if matched {
                            t += width;
                            p += next_p;
                            continue;
                        }
                    } else if text[t] == b'[' {
                        // An unclosed `[` is a literal.
                        t += 1;
                        p += 1;
                        continue;
                    }
                }
                c if c == text[t] => {
                    t += 1;
                    p += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sp, st)) => {
                let st = st + utf8_len(text[st]).min(text.len() - st);
                star = Some((sp, st));
                p = sp + 1;
                t = st;
            }
            None => return false,
        }
    }
    pat[p..].iter().all(|&c| c == b'*')
}

fn utf8_len(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Matches a `[...]` class at the start of `pat` against the character at the start of
/// `text`: `Some((matched, pattern bytes used, text bytes used))`, `None` when the class
/// is not closed.
fn class(pat: &[u8], text: &[u8]) -> Option<(bool, usize, usize)> {
    let mut i = 1;
    let negate = matches!(pat.get(i), Some(b'!'));
    if negate {
        i += 1;
    }
    let start = i;
    // A `]` right after `[` or `[!` is a member, as in fnmatch.
    let search_from = if pat.get(start) == Some(&b']') {
        start + 1
    } else {
        start
    };
    let close = search_from + pat.get(search_from..)?.iter().position(|&c| c == b']')?;
    let width = utf8_len(text[0]).min(text.len());
    let ch = std::str::from_utf8(&text[..width]).ok()?.chars().next()?;
    let set = std::str::from_utf8(&pat[start..close]).ok()?;
    let chars: Vec<char> = set.chars().collect();
    let mut found = false;
    let mut k = 0;
    while k < chars.len() {
        if k + 2 < chars.len() && chars[k + 1] == '-' {
            found |= chars[k] <= ch && ch <= chars[k + 2];
            k += 3;
        } else {
            found |= chars[k] == ch;
            k += 1;
        }
    }
    Some((found != negate, close + 1, width))
}

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, MetadataError> {
    v.as_object()
        .map_or_else(|| err(field, "must be an object"), Ok)
}

fn member<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    name: &str,
) -> Result<&'a Value, MetadataError> {
    obj.get(name)
        .map_or_else(|| err(&format!("{field}.{name}"), "is missing"), Ok)
}

fn string<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    name: &str,
) -> Result<&'a str, MetadataError> {
    member(obj, field, name)?
        .as_str()
        .map_or_else(|| err(&format!("{field}.{name}"), "must be a string"), Ok)
}

fn uint(obj: &Map<String, Value>, field: &str, name: &str) -> Result<u64, MetadataError> {
    member(obj, field, name)?.as_u64().map_or_else(
        || err(&format!("{field}.{name}"), "must be a non-negative integer"),
        Ok,
    )
}

fn positive(obj: &Map<String, Value>, field: &str, name: &str) -> Result<u64, MetadataError> {
    match uint(obj, field, name)? {
        0 => err(&format!("{field}.{name}"), "must be at least 1"),
        n => Ok(n),
    }
}

fn string_list(v: &Value, field: &str) -> Result<Vec<String>, MetadataError> {
    let items = v
        .as_array()
        .map_or_else(|| err(field, "must be a list"), Ok)?;
    items
        .iter()
        .map(|i| {
            i.as_str()
                .map(str::to_string)
                .map_or_else(|| err(field, "must hold strings only"), Ok)
        })
        .collect()
}

/// Reads the fields every role has, checking `_type` and `spec_version`.
fn common(signed: &Map<String, Value>, expected: RoleType) -> Result<Common, MetadataError> {
    let kind = string(signed, "signed", "_type")?;
    if kind != expected.name() {
        return err(
            "signed._type",
            format!("is {kind:?}, expected {:?}", expected.name()),
        );
    }
    let spec = string(signed, "signed", "spec_version")?;
    let parts: Vec<&str> = spec.split('.').collect();
    if !(2..=3).contains(&parts.len())
        || parts
            .iter()
            .any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return err(
            "signed.spec_version",
            format!("{spec:?} is not MAJOR.MINOR[.PATCH]"),
        );
    }
    if parts[0] != SPEC_MAJOR {
        return err(
            "signed.spec_version",
            format!("{spec:?} is not a 1.x specification version"),
        );
    }
    let version = positive(signed, "signed", "version")?;
    let expires_text = string(signed, "signed", "expires")?;
    let expires = PrimitiveDateTime::parse(expires_text, EXPIRES_FORMAT)
        .map_err(|e| MetadataError {
            field: "signed.expires".into(),
            reason: format!("{expires_text:?} is not YYYY-MM-DDTHH:MM:SSZ: {e}"),
        })?
        .assume_utc()
        .unix_timestamp();
    Ok(Common { version, expires })
}

fn keys(v: &Value, field: &str) -> Result<BTreeMap<String, PublicKey>, MetadataError> {
    let mut out = BTreeMap::new();
    for (keyid, key) in object(v, field)? {
        let f = format!("{field}.{keyid}");
        let obj = object(key, &f)?;
        let keytype = string(obj, &f, "keytype")?;
        let scheme = string(obj, &f, "scheme")?;
        let keyval = object(member(obj, &f, "keyval")?, &format!("{f}.keyval"))?;
        let public = string(keyval, &format!("{f}.keyval"), "public")?;
        let key = PublicKey::from_metadata(keytype, scheme, public);
        if let Some(reason) = key.unusable_reason() {
            tracing::info!(keyid, reason, "key cannot verify signatures");
        }
        out.insert(keyid.clone(), key);
    }
    Ok(out)
}

fn role(obj: &Map<String, Value>, field: &str) -> Result<Role, MetadataError> {
    let keyids = string_list(member(obj, field, "keyids")?, &format!("{field}.keyids"))?;
    let mut seen = BTreeSet::new();
    if let Some(dup) = keyids.iter().find(|k| !seen.insert(k.as_str())) {
        return err(&format!("{field}.keyids"), format!("lists key {dup} twice"));
    }
    let threshold = positive(obj, field, "threshold")?;
    Ok(Role { keyids, threshold })
}

fn hashes(v: &Value, field: &str) -> Result<Hashes, MetadataError> {
    let obj = object(v, field)?;
    if obj.is_empty() {
        return err(field, "must list at least one hash");
    }
    obj.iter()
        .map(|(alg, digest)| match digest.as_str() {
            Some(d) => Ok((alg.clone(), d.to_string())),
            None => err(&format!("{field}.{alg}"), "must be a string"),
        })
        .collect()
}

fn meta_file(v: &Value, field: &str) -> Result<MetaFile, MetadataError> {
    let obj = object(v, field)?;
    let version = positive(obj, field, "version")?;
    let length = match obj.get("length") {
        None => None,
        Some(_) => Some(uint(obj, field, "length")?),
    };
    let hashes = match obj.get("hashes") {
        None => None,
        Some(h) => Some(hashes(h, &format!("{field}.hashes"))?),
    };
    Ok(MetaFile {
        version,
        length,
        hashes,
    })
}

impl Root {
    /// Reads root metadata from its `signed` object.
    pub fn from_signed(signed: &Value) -> Result<Self, MetadataError> {
        let obj = object(signed, "signed")?;
        let common = common(obj, RoleType::Root)?;
        let consistent_snapshot = match obj.get("consistent_snapshot") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return err("signed.consistent_snapshot", "must be a boolean"),
        };
        let keys = keys(member(obj, "signed", "keys")?, "signed.keys")?;
        let mut roles = BTreeMap::new();
        for (name, r) in object(member(obj, "signed", "roles")?, "signed.roles")? {
            let f = format!("signed.roles.{name}");
            roles.insert(name.clone(), role(object(r, &f)?, &f)?);
        }
        for name in TOP_LEVEL_ROLES {
            if !roles.contains_key(name) {
                return err("signed.roles", format!("has no {name:?} role"));
            }
        }
        Ok(Root {
            common,
            consistent_snapshot,
            keys,
            roles,
        })
    }
}

impl Timestamp {
    /// Reads timestamp metadata from its `signed` object.
    pub fn from_signed(signed: &Value) -> Result<Self, MetadataError> {
        let obj = object(signed, "signed")?;
        let common = common(obj, RoleType::Timestamp)?;
        let meta = object(member(obj, "signed", "meta")?, "signed.meta")?;
        if meta.len() != 1 {
            return err("signed.meta", "must list exactly snapshot.json");
        }
        let snapshot = meta_file(
            member(meta, "signed.meta", "snapshot.json")?,
            "signed.meta.snapshot.json",
        )?;
        Ok(Timestamp { common, snapshot })
    }
}

impl Snapshot {
    /// Reads snapshot metadata from its `signed` object.
    pub fn from_signed(signed: &Value) -> Result<Self, MetadataError> {
        let obj = object(signed, "signed")?;
        let common = common(obj, RoleType::Snapshot)?;
        let mut meta = BTreeMap::new();
        for (name, m) in object(member(obj, "signed", "meta")?, "signed.meta")? {
            meta.insert(name.clone(), meta_file(m, &format!("signed.meta.{name}"))?);
        }
        Ok(Snapshot { common, meta })
    }
}

impl Targets {
    /// Reads targets metadata from its `signed` object.
    pub fn from_signed(signed: &Value) -> Result<Self, MetadataError> {
        let obj = object(signed, "signed")?;
        let common = common(obj, RoleType::Targets)?;
        let mut targets = BTreeMap::new();
        for (path, t) in object(member(obj, "signed", "targets")?, "signed.targets")? {
            let f = format!("signed.targets.{path}");
            let tobj = object(t, &f)?;
            let length = uint(tobj, &f, "length")?;
            let hashes = hashes(member(tobj, &f, "hashes")?, &format!("{f}.hashes"))?;
            let custom = match tobj.get("custom") {
                None => None,
                Some(c @ Value::Object(_)) => Some(c.clone()),
                Some(_) => return err(&format!("{f}.custom"), "must be an object"),
            };
            targets.insert(
                path.clone(),
                TargetFile {
                    length,
                    hashes,
                    custom,
                },
            );
        }
        let delegations = match obj.get("delegations") {
            None => None,
            Some(d) => Some(delegations(d)?),
        };
        Ok(Targets {
            common,
            targets,
            delegations,
        })
    }
}

fn delegations(v: &Value) -> Result<Delegations, MetadataError> {
    let field = "signed.delegations";
    let obj = object(v, field)?;
    let keys = keys(member(obj, field, "keys")?, &format!("{field}.keys"))?;
    let roles = match (obj.get("roles"), obj.get("succinct_roles")) {
        (Some(_), Some(_)) => return err(field, "has both roles and succinct_roles"),
        (None, None) => return err(field, "has neither roles nor succinct_roles"),
        (Some(list), None) => {
            let items = list
                .as_array()
                .map_or_else(|| err(&format!("{field}.roles"), "must be a list"), Ok)?;
            let mut names = BTreeSet::new();
            let mut roles = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let f = format!("{field}.roles[{i}]");
                let r = delegated_role(item, &f)?;
                if TOP_LEVEL_ROLES.contains(&r.name.as_str()) {
                    return err(
                        &f,
                        format!("delegates to the top-level role name {:?}", r.name),
                    );
                }
                if !names.insert(r.name.clone()) {
                    return err(&f, format!("delegates to {:?} twice", r.name));
                }
                roles.push(r);
            }
            DelegatedRoles::List(roles)
        }
        (None, Some(s)) => {
            let f = format!("{field}.succinct_roles");
            let sobj = object(s, &f)?;
            let bit_length = uint(sobj, &f, "bit_length")?;
            if !(1..=32).contains(&bit_length) {
                return err(&format!("{f}.bit_length"), "must be between 1 and 32");
            }
            DelegatedRoles::Succinct(SuccinctRoles {
                role: role(sobj, &f)?,
                bit_length: bit_length as u32,
                name_prefix: string(sobj, &f, "name_prefix")?.to_string(),
            })
        }
    };
    Ok(Delegations { keys, roles })
}

fn delegated_role(v: &Value, field: &str) -> Result<DelegatedRole, MetadataError> {
    let obj = object(v, field)?;
    let name = string(obj, field, "name")?.to_string();
    let terminating = match member(obj, field, "terminating")? {
        Value::Bool(b) => *b,
        _ => return err(&format!("{field}.terminating"), "must be a boolean"),
    };
    let scope = match (obj.get("paths"), obj.get("path_hash_prefixes")) {
        (Some(_), Some(_)) => return err(field, "has both paths and path_hash_prefixes"),
        (None, None) => return err(field, "has neither paths nor path_hash_prefixes"),
        (Some(p), None) => PathScope::Paths(string_list(p, &format!("{field}.paths"))?),
        (None, Some(p)) => {
            PathScope::HashPrefixes(string_list(p, &format!("{field}.path_hash_prefixes"))?)
        }
    };
    Ok(DelegatedRole {
        name,
        role: role(obj, field)?,
        terminating,
        scope,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_is_per_component_and_case_sensitive() {
        assert!(path_matches("README.md", "*.md"));
        assert!(!path_matches("releases/README.md", "*.md"));
        assert!(path_matches("releases/x/x_v1", "releases/*/*"));
        assert!(path_matches("foo-1.tgz", "foo-?.tgz"));
        assert!(!path_matches("foo-alpha.tgz", "foo-?.tgz"));
        assert!(!path_matches("README.MD", "*.md"));
        assert!(path_matches("a.py", "[a-c].py"));
        assert!(!path_matches("d.py", "[a-c].py"));
        assert!(path_matches("d.py", "[!a-c].py"));
        assert!(path_matches("]x", "[]]x"));
        assert!(path_matches("[x", "[x"));
        assert!(path_matches("", "*"));
        assert!(!path_matches("a/b", "*"));
        assert!(path_matches("model-é.bin", "model-?.bin"));
    }

    #[test]
    fn succinct_bins_are_named_with_fixed_width() {
        let s = SuccinctRoles {
            role: Role {
                keyids: vec![],
                threshold: 1,
            },
            bit_length: 8,
            name_prefix: "bin".into(),
        };
        // sha256("a") starts with ca978112…
        assert_eq!(s.bin_for("a"), "bin-ca");
    }
}
