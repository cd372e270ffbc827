//! Every route the server declares, read from its source (`.route("PATH", get(…).post(…))`
//! in `src/`), so that tests over "every route" cannot miss one added later: the role matrix
//! (`roles`) and the OpenAPI spec (`openapi`) are each compared with this list, and a route
//! missing from either fails the suite. Axum's router cannot list its routes, and the source
//! is what declares them.

use std::{collections::BTreeSet, path::Path};

/// The HTTP methods axum's method routers are made with.
const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

/// `(METHOD, path)` of every route declared in the server's source.
pub(crate) fn declared() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    for file in rust_files(&src) {
        let text = std::fs::read_to_string(&file).expect("source");
        for (method, path) in routes_in(&text) {
            out.insert((method, path));
        }
    }
    assert!(
        out.len() >= 10,
        "the route scan found only {out:?}: did the routing code change form?"
    );
    out
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The routes of one source file: each `.route(` call's path and the methods of its method
/// router (the calls at its top level: `post(a).get(b)`, not a handler's own calls).
fn routes_in(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(".route(") {
        rest = &rest[at + ".route(".len()..];
        let args = rest.trim_start();
        let Some(args) = args.strip_prefix('"') else {
            continue;
        };
        let Some(end) = args.find('"') else { break };
        let path = args[..end].to_string();
        let span = call_arguments(&args[end + 1..]);
        for method in top_level_calls(span) {
            out.push((method.to_uppercase(), path.clone()));
        }
    }
    out
}

/// The text up to the parenthesis closing the call whose arguments start at `s`.
fn call_arguments(s: &str) -> &str {
    let (mut depth, mut in_str) = (0i32, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => in_str = !in_str,
            _ if in_str => {}
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => return &s[..i],
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    s
}

/// Method names called at nesting depth 0 of `span`.
fn top_level_calls(span: &str) -> Vec<&'static str> {
    let (mut depth, mut in_str) = (0i32, false);
    let mut found = Vec::new();
    let bytes = span.as_bytes();
    for (i, c) in span.char_indices() {
        match c {
            '"' => in_str = !in_str,
            _ if in_str => {}
            '(' => {
                if depth == 0 {
                    let head = &span[..i];
                    let start = head
                        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                        .map_or(0, |p| p + 1);
                    let name = &head[start..];
                    let before = bytes.get(start.wrapping_sub(1)).copied();
                    if let Some(m) = METHODS.iter().find(|m| **m == name) {
                        // `post(h)`, `.get(h)` or `axum::routing::post(h)`.
                        if matches!(before, None | Some(b'.' | b':' | b' ' | b'\n' | b',')) {
                            found.push(*m);
                        }
                    }
                }
                depth += 1;
            }
            '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    found
}

#[test]
fn the_scan_reads_the_forms_the_routers_use() {
    let text = r#"
        Router::new()
            .route("/a", post(add).get(list))
            .route(
                "/b/{id}",
                post(crate::x::handler),
            )
            .route("/c", axum::routing::post(enrollment::enroll))
            .route("/d", get(|| async { ([("content-type", "application/json")], get_it()) }))
    "#;
    let found = routes_in(text);
    let expected: Vec<(String, String)> = [
        ("POST", "/a"),
        ("GET", "/a"),
        ("POST", "/b/{id}"),
        ("POST", "/c"),
        ("GET", "/d"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(found, expected);
}
