//! Every error the HTTP surface can answer, and the one function that turns
//! each into a row of the error table in `docs/protocol.md`.
//!
//! Handlers return `Result<Response, ApiError>`; nothing else writes an error
//! status, so the JSON shape `{"error": code, "message": sentence}` and the
//! status for each case are decided here and only here.

use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use notify_hub::PublishError;

use crate::Response;
use crate::reply::json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong admin token: send `Authorization: Bearer <token>`")]
    Unauthorized,
    #[error("the body is not valid JSON of the form {{\"text\": \"...\"}}: {0}")]
    InvalidBody(String),
    #[error("the notification text is empty")]
    EmptyText,
    #[error("bad parameter `{param}`: {reason}")]
    BadQuery { param: &'static str, reason: String },
    #[error("not a valid WebSocket upgrade: {0}")]
    BadUpgrade(&'static str),
    #[error("the {what} is {len} bytes; the limit is {limit}")]
    TooLarge {
        what: &'static str,
        len: u64,
        limit: u64,
    },
    #[error("the request body must be `Content-Type: application/json`")]
    UnsupportedMediaType,
    #[error("too many publishes; retry after {} s", retry_after_secs(*retry_after))]
    RateLimited { retry_after: Duration },
    #[error("the server has too many connections; retry later")]
    TooManyConnections,
    #[error(
        "pages from origin `{0}` may not use this server; start it with `--allow-origin {0}` to allow them"
    )]
    OriginNotAllowed(String),
    #[error("no such path")]
    NotFound,
    #[error("method not allowed; this path accepts {allow}")]
    MethodNotAllowed { allow: &'static str },
    #[error("the request body did not arrive within {} s", .0.as_secs())]
    BodyTimeout(Duration),
    #[error(
        "publishing is unavailable right now ({0}); connected clients keep their connections, retry later"
    )]
    BackendUnavailable(String),
    #[error("the server failed to build this answer: {0}")]
    Internal(String),
}

fn retry_after_secs(wait: Duration) -> u64 {
    // Round up: a client that waits the advertised time must succeed.
    wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
}

impl ApiError {
    /// The status and the stable machine-readable code of each case.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::InvalidBody(_) => (StatusCode::BAD_REQUEST, "invalid_body"),
            ApiError::EmptyText => (StatusCode::BAD_REQUEST, "empty_text"),
            ApiError::BadQuery { .. } => (StatusCode::BAD_REQUEST, "bad_query"),
            ApiError::BadUpgrade(_) => (StatusCode::BAD_REQUEST, "bad_upgrade"),
            ApiError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            ApiError::UnsupportedMediaType => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            ApiError::TooManyConnections => {
                (StatusCode::SERVICE_UNAVAILABLE, "too_many_connections")
            }
            ApiError::OriginNotAllowed(_) => (StatusCode::FORBIDDEN, "origin_not_allowed"),
            ApiError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
            }
            ApiError::BodyTimeout(_) => (StatusCode::REQUEST_TIMEOUT, "body_timeout"),
            ApiError::BackendUnavailable(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "backend_unavailable")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal_error"),
        }
    }

    /// The answer a client sees: the JSON body plus the headers the status
    /// calls for (`WWW-Authenticate`, `Retry-After`, `Allow`).
    pub fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let body = serde_json::json!({"error": code, "message": self.to_string()});
        let mut response = json(status, body.to_string().into());
        let headers = response.headers_mut();
        match &self {
            ApiError::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::RateLimited { retry_after } => {
                headers.insert(header::RETRY_AFTER, retry_after_secs(*retry_after).into());
            }
            ApiError::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::BadUpgrade(_) => {
                headers.insert("sec-websocket-version", HeaderValue::from_static("13"));
            }
            ApiError::TooLarge { .. } | ApiError::BodyTimeout(_) => {
                // The unread rest of the body makes the connection unusable.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

impl From<PublishError> for ApiError {
    fn from(err: PublishError) -> Self {
        match err {
            PublishError::EmptyText => ApiError::EmptyText,
            PublishError::TextTooLong { len, limit } => ApiError::TooLarge {
                what: "notification text",
                len: len as u64,
                limit: limit as u64,
            },
            PublishError::Unavailable(reason) => ApiError::BackendUnavailable(reason),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn errors_are_json_with_code_and_message() {
        let response = ApiError::RateLimited {
            retry_after: Duration::from_millis(1500),
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"], "rate_limited");
        assert_eq!(value["message"], "too many publishes; retry after 2 s");
    }

    #[tokio::test]
    async fn a_server_failure_is_a_json_500() {
        let response = ApiError::Internal("template error: x".into()).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"], "internal_error");
        assert_eq!(
            value["message"],
            "the server failed to build this answer: template error: x"
        );
    }
}
