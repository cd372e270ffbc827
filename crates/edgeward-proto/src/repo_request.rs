//! What a device may ask of the update repository that edgeward-server serves
//! (`GET /v1/device/update/metadata/{name}`, `GET /v1/device/update/targets/{path}`): a
//! metadata file name or a target path, checked before the server opens anything, and an
//! HTTP `Range` header, parsed against the file's length (RFC 9110, single ranges; what
//! the server does not serve partially is answered whole). Both are untrusted input.

use std::path::PathBuf;

/// Which of the repository's two directories a file is served from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Area {
    /// `metadata/`: one file name, no directories.
    Metadata,
    /// `targets/`: a relative path.
    Targets,
}

impl Area {
    /// The directory's name in the repository.
    pub fn dir_name(self) -> &'static str {
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
        const COMPONENT: &str =
            "every path component must be non-empty and must not start with '.'";
        for (bad, why) in [
            ("..", COMPONENT),
            ("../x.json", COMPONENT),
            ("a/../../b", COMPONENT),
            ("/etc/passwd", COMPONENT),
            ("a//b", COMPONENT),
            (".hidden", COMPONENT),
            ("a\\b", "the path must not hold a backslash or NUL"),
            ("a\0b", "the path must not hold a backslash or NUL"),
            ("", "the path must be 1 to 1024 bytes long"),
        ] {
            assert_eq!(checked_path(Area::Targets, bad), Err(why), "{bad:?}");
        }
        assert_eq!(
            checked_path(Area::Targets, &"a".repeat(1025)),
            Err("the path must be 1 to 1024 bytes long")
        );
        for bad in ["sub/root.json", "root.txt"] {
            assert_eq!(
                checked_path(Area::Metadata, bad),
                Err("a metadata name is one file name ending in .json"),
                "{bad:?}"
            );
        }
    }
}
