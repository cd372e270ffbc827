//! Canonical JSON as TUF signs it.
//!
//! TUF signatures cover the "canonical JSON" form of the `signed` object, in the OLPC
//! flavour that securesystemslib (and so every TUF implementation) writes: object keys
//! sorted by code point, no insignificant whitespace, strings escaped only for `"` and `\`
//! (everything else, control characters and non-ASCII included, as raw UTF-8), integers
//! only. A float anywhere makes the document unsignable, so it is refused.

use serde_json::Value;

/// Why a JSON value has no canonical form.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CanonicalError {
    /// Canonical JSON has integers only.
    #[error("canonical JSON has no floating-point numbers (found {0})")]
    Float(String),
}

/// The canonical encoding of `value`.
pub fn encode(value: &Value) -> Result<Vec<u8>, CanonicalError> {
    let mut out = Vec::with_capacity(1024);
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), CanonicalError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => {
            if n.is_f64() {
                return Err(CanonicalError::Float(n.to_string()));
            }
            out.extend_from_slice(n.to_string().as_bytes());
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // Sorted explicitly: serde_json keeps insertion order when another crate in
            // the build turns on its `preserve_order` feature.
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for &b in s.as_bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sorts_keys_and_escapes_only_quote_and_backslash() {
        let v = json!({"b": [1, -2, true, null], "a": "q\"\\\n\u{e9}", "": {}});
        assert_eq!(
            encode(&v).unwrap(),
            "{\"\":{},\"a\":\"q\\\"\\\\\n\u{e9}\",\"b\":[1,-2,true,null]}".as_bytes()
        );
    }

    #[test]
    fn refuses_floats() {
        assert_eq!(
            encode(&json!({"x": 1.5})),
            Err(CanonicalError::Float("1.5".into()))
        );
    }

    #[test]
    fn sorts_by_code_point_not_by_utf16() {
        // U+FF61 sorts before U+1F600 by code point (and by UTF-8 bytes), after it in UTF-16.
        let v = json!({"\u{1F600}": 1, "\u{FF61}": 2});
        let s = String::from_utf8(encode(&v).unwrap()).unwrap();
        assert!(s.find('\u{FF61}').unwrap() < s.find('\u{1F600}').unwrap());
    }
}
