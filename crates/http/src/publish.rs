//! `POST /api/notifications`: the admin publishes, the hub broadcasts.
//!
//! Checks run cheapest first and nothing is read that a check can refuse:
//! the token, the rate limit, the content type, the declared length, then the
//! body itself, read under both a size limit (a body may lie about or omit its
//! length) and a time limit (a slow body must not hold a task forever).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, StatusCode, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use notify_hub::Hub;
use serde::Deserialize;

use crate::admin::AdminToken;
use crate::error::ApiError;
use crate::reply::json;
use crate::{Request, Response};

/// The path publishing is served on.
pub const PATH: &str = "/api/notifications";

/// Room for JSON around the text: `{"text": ""}` and some white space.
const JSON_ENVELOPE_BYTES: usize = 256;
/// Every byte of text may arrive escaped as `\u00XX`, six bytes on the wire.
const WORST_CASE_ESCAPE: usize = 6;

/// Limits on publishing.
#[derive(Debug, Clone)]
pub struct PublishLimits {
    /// Largest body read, in bytes.
    pub max_body_bytes: usize,
    /// Longest a client may take to send its body.
    pub body_timeout: Duration,
    /// Sustained publishes per second, and how many may come at once.
    pub rate_per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl PublishLimits {
    /// Defaults derived from the hub's text limit, so that any valid text
    /// fits in a body however it is escaped.
    pub fn for_text_limit(max_text_bytes: usize) -> Self {
        PublishLimits {
            max_body_bytes: max_text_bytes * WORST_CASE_ESCAPE + JSON_ENVELOPE_BYTES,
            body_timeout: Duration::from_secs(10),
            rate_per_second: NonZeroU32::new(100).expect("non-zero"),
            burst: NonZeroU32::new(200).expect("non-zero"),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishBody {
    text: String,
}

/// Handles publish requests for one hub.
#[derive(Debug)]
pub struct Publisher {
    hub: Hub,
    token: AdminToken,
    limits: PublishLimits,
    rate: DefaultDirectRateLimiter,
}

impl Publisher {
    pub fn new(hub: Hub, token: AdminToken, limits: PublishLimits) -> Arc<Self> {
        let quota = Quota::per_second(limits.rate_per_second).allow_burst(limits.burst);
        Arc::new(Publisher {
            hub,
            token,
            limits,
            rate: RateLimiter::direct(quota),
        })
    }

    pub fn token(&self) -> &AdminToken {
        &self.token
    }

    pub async fn handle(&self, req: Request) -> Result<Response, ApiError> {
        self.token.check(req.headers())?;
        if let Err(not_until) = self.rate.check() {
            let retry_after = not_until.wait_time_from(DefaultClock::default().now());
            return Err(ApiError::RateLimited { retry_after });
        }
        require_json(req.headers())?;
        let limit = self.limits.max_body_bytes as u64;
        if let Some(len) = declared_length(req.headers())?
            && len > limit
        {
            return Err(ApiError::TooLarge {
                what: "request body",
                len,
                limit,
            });
        }
        let body = Limited::new(req.into_body(), self.limits.max_body_bytes);
        let bytes = match tokio::time::timeout(self.limits.body_timeout, body.collect()).await {
            Err(_) => return Err(ApiError::BodyTimeout(self.limits.body_timeout)),
            Ok(Err(err)) if err.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(ApiError::TooLarge {
                    what: "request body",
                    len: limit + 1,
                    limit,
                });
            }
            Ok(Err(err)) => return Err(ApiError::InvalidBody(format!("could not read it: {err}"))),
            Ok(Ok(collected)) => collected.to_bytes(),
        };
        let text = parse_body(&bytes)?;
        let notification = self.hub.publish(&text).await?;
        let answer = serde_json::json!({
            "id": notification.id(),
            "published_at": notification.published_at(),
            "epoch": self.hub.epoch().as_str(),
        });
        Ok(json(StatusCode::CREATED, answer.to_string().into()))
    }
}

/// The text of a publish body, `{"text": "..."}`; anything else is a 400.
/// (Whether the text is empty or too long is the hub's to say.)
pub fn parse_body(bytes: &[u8]) -> Result<String, ApiError> {
    let invalid = |e: serde_json::Error| ApiError::InvalidBody(e.to_string());
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(invalid)?;
    // A derived struct would also take the array `["text"]`.
    if !value.is_object() {
        return Err(ApiError::InvalidBody(
            "expected a JSON object: {\"text\": \"...\"}".into(),
        ));
    }
    let body = PublishBody::deserialize(value).map_err(invalid)?;
    Ok(body.text)
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let essence = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match essence {
        Some(t) if t.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

fn declared_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ApiError::InvalidBody("Content-Length is not a number".into()))
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_object_with_a_text_string_is_a_body() {
        assert_eq!(parse_body(br#"{"text": "hi"}"#).unwrap(), "hi");
        for bad in [
            &br#"["hi"]"#[..],
            br#""hi""#,
            br#"{"text": 1}"#,
            br#"{"text": "hi", "extra": 1}"#,
            br#"{}"#,
            br#"{"text": "hi"} trailing"#,
            b"\xff",
        ] {
            let err = parse_body(bad).unwrap_err();
            assert_eq!(
                err.status_and_code().1,
                "invalid_body",
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(require_json(&headers).is_err());
        for ok in ["application/json", "Application/JSON; charset=utf-8"] {
            headers.insert(header::CONTENT_TYPE, ok.parse().unwrap());
            assert!(require_json(&headers).is_ok(), "{ok}");
        }
        headers.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        assert!(require_json(&headers).is_err());
    }

    #[test]
    fn any_valid_text_fits_the_body_limit() {
        let limits = PublishLimits::for_text_limit(4096);
        let worst = serde_json::json!({"text": "\u{1}".repeat(4096)}).to_string();
        assert!(
            worst.len() <= limits.max_body_bytes,
            "{} bytes",
            worst.len()
        );
    }
}
