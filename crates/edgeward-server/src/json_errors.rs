//! One error shape on every listener. The handlers answer refusals as [`ApiError`]'s JSON
//! `{"error": code, "message": text}`, but axum answers some on its own before a handler
//! runs: a path or query that does not parse (`text/plain` 400), an unknown path (an empty
//! 404), a known path with another method (an empty 405 with `Allow`). Clients and the
//! OpenAPI document expect the JSON shape for all of them, so the routers get a fallback that
//! answers 404 as JSON and a response mapping that rewrites any remaining non-JSON refusal
//! into the JSON shape, keeping its status and headers (`Allow`, `Retry-After`).

use axum::{
    body::Body,
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::json;

use crate::app::ApiError;

/// The most of a plain-text refusal's body kept as the JSON message (axum's own are short).
const MAX_MESSAGE: usize = 1024;

/// The fallback of every router: no route has this path.
pub async fn not_found() -> Response {
    ApiError::not_found("no such route").into_response()
}

/// The machine-readable code of a refusal axum made itself.
fn code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::REQUEST_TIMEOUT => "timeout",
        StatusCode::PAYLOAD_TOO_LARGE => "too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::TOO_MANY_REQUESTS => "rate_limited",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "refused",
    }
}

/// Whether `response` already carries a JSON body.
fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Rewrites a refusal (4xx, 5xx) that is not JSON into the JSON error shape; everything
/// else passes unchanged. A 5xx's text is not sent (it is internal), a 4xx's is the message.
pub async fn json_refusals(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let reason = status.canonical_reason().unwrap_or("refused");
    let message = if text.is_empty() || status.is_server_error() {
        reason.to_ascii_lowercase()
    } else {
        text
    };
    let body = json!({ "error": code(status), "message": message }).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn rewritten(response: Response) -> (StatusCode, Option<String>, serde_json::Value) {
        let r = json_refusals(response).await;
        let status = r.status();
        let allow = r
            .headers()
            .get(header::ALLOW)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        assert_eq!(
            r.headers().get(header::CONTENT_TYPE).expect("type"),
            "application/json"
        );
        let body = axum::body::to_bytes(r.into_body(), 4096)
            .await
            .expect("body");
        (status, allow, serde_json::from_slice(&body).expect("json"))
    }

    #[tokio::test]
    async fn plain_refusals_become_json_and_keep_status_and_headers() {
        let plain = (StatusCode::BAD_REQUEST, "Invalid URL: bad id").into_response();
        let (status, _, v) = rewritten(plain).await;
        assert_eq!(status, 400);
        assert_eq!(v["error"], "bad_request");
        assert_eq!(v["message"], "Invalid URL: bad id");

        let mut empty = StatusCode::METHOD_NOT_ALLOWED.into_response();
        empty
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET,HEAD"));
        let (status, allow, v) = rewritten(empty).await;
        assert_eq!(status, 405);
        assert_eq!(allow.as_deref(), Some("GET,HEAD"));
        assert_eq!(v["error"], "method_not_allowed");
        assert_eq!(v["message"], "method not allowed");

        let internal = (StatusCode::INTERNAL_SERVER_ERROR, "secret detail").into_response();
        let (_, _, v) = rewritten(internal).await;
        assert_eq!(v["error"], "internal");
        assert_eq!(v["message"], "internal server error");
    }

    #[tokio::test]
    async fn json_and_successful_answers_pass_unchanged() {
        let ok = (StatusCode::OK, "ok").into_response();
        let r = json_refusals(ok).await;
        assert_eq!(
            axum::body::to_bytes(r.into_body(), 16).await.expect("body"),
            "ok"
        );
        let refusal = ApiError::forbidden("role", "needs admin").into_response();
        let (status, _, v) = rewritten(refusal).await;
        assert_eq!(status, 403);
        assert_eq!(v["error"], "role");
    }
}
