//! Device-token tests: the published vector, the time window, every single-digit change,
//! request binding of v2, and tokens made by the best-practice recipe's Python function.

use edgeward_proto::token::{
    body_sha256, create_v1, create_v2, Request, Token, TokenError, DEFAULT_WINDOW_SECS,
};

const SECRET: &str = "device-secret-0001";
const VECTOR: &str =
    "dev-001:1700000000:b35b263079fb5b583d477aea87a517d76d43b48d0c36298fee36589da142846e";
const T: u64 = 1_700_000_000;

fn check(token: &str, now: u64) -> Result<(), TokenError> {
    Token::parse(token)?.verify(SECRET, now, DEFAULT_WINDOW_SECS, None)
}

#[test]
fn the_vector_is_accepted_in_the_window_only() {
    assert_eq!(create_v1("dev-001", SECRET, T), VECTOR);
    let t = Token::parse(VECTOR).expect("parse");
    assert_eq!((t.device_id, t.timestamp, t.is_v2()), ("dev-001", T, false));
    for now in [T, T - 300, T + 300] {
        assert_eq!(check(VECTOR, now), Ok(()), "now = {now}");
    }
    for now in [T - 301, T + 301] {
        assert!(
            matches!(
                check(VECTOR, now),
                Err(TokenError::OutsideWindow { skew: 301, .. })
            ),
            "now = {now}"
        );
    }
}

#[test]
fn any_one_changed_hex_digit_is_refused() {
    let mac_start = VECTOR.rfind(':').expect("colon") + 1;
    for i in mac_start..VECTOR.len() {
        for replacement in "0123456789abcdefABCDEF".chars() {
            if VECTOR.as_bytes()[i] as char == replacement {
                continue;
            }
            let mut edited = VECTOR.to_string();
            edited.replace_range(i..=i, &replacement.to_string());
            // An upper-case digit is not the canonical spelling: refused before the MAC.
            let expected = if replacement.is_ascii_uppercase() {
                TokenError::Malformed("MAC is not 64 lowercase hex digits")
            } else {
                TokenError::BadMac
            };
            assert_eq!(check(&edited, T), Err(expected), "{edited}");
        }
    }
    // Changing the id or the timestamp breaks the MAC too.
    assert_eq!(
        check(&VECTOR.replace("dev-001", "dev-002"), T),
        Err(TokenError::BadMac)
    );
    assert_eq!(
        check(&VECTOR.replace("1700000000", "1700000001"), T),
        Err(TokenError::BadMac)
    );
    assert_eq!(
        Token::parse(VECTOR)
            .expect("parse")
            .verify("other-secret", T, 300, None),
        Err(TokenError::BadMac)
    );
}

#[test]
fn malformed_tokens_are_refused_without_panicking() {
    for bad in [
        "",
        ":",
        "dev-001:1700000000",
        "dev-001:17e8:b35b",
        "dev 001:1700000000:b35b263079fb5b583d477aea87a517d76d43b48d0c36298fee36589da142846e",
        "dev-001:-1:b35b263079fb5b583d477aea87a517d76d43b48d0c36298fee36589da142846e",
        "dev-001:99999999999999999999:b35b263079fb5b583d477aea87a517d76d43b48d0c36298fee36589da142846e",
        "v2:dev-001:1700000000:xyz:b35b263079fb5b583d477aea87a517d76d43b48d0c36298fee36589da142846e",
        "a:b:c:d",
    ] {
        assert!(matches!(Token::parse(bad), Err(TokenError::Malformed(_))), "{bad:?}");
    }
    assert!(matches!(
        Token::parse(&"a".repeat(10_000)),
        Err(TokenError::Malformed("too long"))
    ));
}

#[test]
fn v2_binds_the_request_and_the_nonce() {
    let body = br#"{"temp": 41.5}"#;
    let req = Request {
        method: "POST",
        target: "/v1/device/telemetry",
        body_sha256: body_sha256(body),
    };
    let nonce = [0x42; 16];
    let token = create_v2("dev-001", SECRET, T, nonce, &req);
    let parsed = Token::parse(&token).expect("parse");
    assert_eq!(parsed.nonce, Some(nonce));
    assert_eq!(parsed.verify(SECRET, T, 300, Some(&req)), Ok(()));
    assert_eq!(
        parsed.verify(SECRET, T, 300, None),
        Err(TokenError::MissingRequest)
    );
    for other in [
        Request {
            method: "GET",
            ..req
        },
        Request {
            target: "/v1/device/commands",
            ..req
        },
        Request {
            body_sha256: body_sha256(br#"{"temp": 99}"#),
            ..req
        },
    ] {
        assert_eq!(
            parsed.verify(SECRET, T, 300, Some(&other)),
            Err(TokenError::BadMac),
            "{other:?}"
        );
    }
    // The timestamp's last digit changed: inside the window, so the MAC refuses it.
    let mut tampered = token.clone();
    assert_eq!(&token[..21], "v2:dev-001:1700000000");
    tampered.replace_range(20..21, "1");
    assert_eq!(
        Token::parse(&tampered).and_then(|t| t.verify(SECRET, T, 300, Some(&req))),
        Err(TokenError::BadMac)
    );
}

/// `create_device_token` exactly as the best-practice guide gives it, run by Python.
const RECIPE: &str = r#"
import hmac
import hashlib
import time
def create_device_token(device_id, secret_key):
    timestamp = str(int(time.time()))
    message = f"{device_id}:{timestamp}"
    signature = hmac.new(
        secret_key.encode(),
        message.encode(),
        hashlib.sha256
    ).hexdigest()
    return f"{device_id}:{timestamp}:{signature}"

import sys
print(create_device_token(sys.argv[1], sys.argv[2]))
"#;

#[test]
fn tokens_from_the_python_recipe_are_accepted() {
    let secret = edgeward_proto::secret::derive(&[9u8; 32], "cam-17");
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(RECIPE)
        .arg("cam-17")
        .arg(secret.as_str())
        .output()
        .expect("python3 runs (scripts/test.sh installs it)");
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).expect("utf8");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let parsed = Token::parse(token.trim()).expect("parse");
    assert_eq!(parsed.device_id, "cam-17");
    assert_eq!(
        parsed.verify(&secret, now, DEFAULT_WINDOW_SECS, None),
        Ok(())
    );
    assert_eq!(
        parsed.verify("wrong", now, DEFAULT_WINDOW_SECS, None),
        Err(TokenError::BadMac)
    );
}

/// The v2 message exactly as docs/server.md gives it, computed by Python's `hmac`: a
/// device written in another language can make tokens the server accepts.
const V2_BY_PYTHON: &str = r#"
import hashlib, hmac, sys
device_id, secret, timestamp, nonce, method, target, body = sys.argv[1:8]
message = "\n".join(["edgeward-token-v2", device_id, timestamp, nonce, method, target,
                     hashlib.sha256(body.encode()).hexdigest()])
mac = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
print(f"v2:{device_id}:{timestamp}:{nonce}:{mac}")
"#;

#[test]
fn v2_tokens_match_an_independent_implementation() {
    let body = r#"{"records":[{"temp":41.5}]}"#;
    for (timestamp, target) in [
        (T, "/v1/device/telemetry"),
        (0, "/v1/device/commands/17/result?x=1"),
        (9_999_999_999, "/"),
    ] {
        let nonce = [0xa5; 16];
        let req = Request {
            method: "POST",
            target,
            body_sha256: body_sha256(body.as_bytes()),
        };
        let out = std::process::Command::new("python3")
            .arg("-c")
            .arg(V2_BY_PYTHON)
            .args([
                "dev-001",
                SECRET,
                &timestamp.to_string(),
                &hex::encode(nonce),
            ])
            .args(["POST", target, body])
            .output()
            .expect("python3 runs (scripts/test.sh installs it)");
        assert!(out.status.success(), "{out:?}");
        let by_python = String::from_utf8(out.stdout).expect("utf8");
        assert_eq!(
            create_v2("dev-001", SECRET, timestamp, nonce, &req),
            by_python.trim()
        );
    }
}

#[test]
fn v1_timestamps_are_written_in_plain_decimal() {
    use hmac::{Hmac, Mac};
    for timestamp in [0, 7, 10, 1_700_000_000, u64::MAX] {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
        mac.update(format!("dev-001:{timestamp}").as_bytes());
        assert_eq!(
            create_v1("dev-001", SECRET, timestamp),
            format!(
                "dev-001:{timestamp}:{}",
                hex::encode(mac.finalize().into_bytes())
            )
        );
    }
}

#[test]
fn a_token_with_more_than_five_fields_is_malformed() {
    for token in ["a:b:c:d:e:f", "v2:a:1:b:c:d", "a:1", "", ":::::::"] {
        assert!(
            matches!(Token::parse(token), Err(TokenError::Malformed(_))),
            "{token:?}"
        );
    }
}

#[test]
fn only_lowercase_hex_digits_parse_as_a_mac() {
    let mac_start = VECTOR.rfind(':').expect("colon") + 1;
    for position in [mac_start, VECTOR.len() - 1] {
        for c in (0u8..=0x7f).map(char::from).chain(['é', '\u{ff10}']) {
            let mut edited = VECTOR.to_string();
            edited.replace_range(position..=position, &c.to_string());
            let parsed = Token::parse(&edited);
            if c.is_ascii_digit() || ('a'..='f').contains(&c) {
                assert!(parsed.is_ok(), "{c:?} at {position}");
            } else {
                assert!(
                    matches!(parsed, Err(TokenError::Malformed(_))),
                    "{c:?} at {position}: {parsed:?}"
                );
            }
        }
    }
}
