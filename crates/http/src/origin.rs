//! Which pages may use the server: its own origin always, and the origins
//! named with `--allow-origin`. A browser says where a page comes from in
//! `Origin` on every cross-origin request, on every WebSocket handshake and
//! on same-origin `POST`s; a request without one is not a page's
//! cross-origin request, and is not this module's business.
//!
//! For an allowed foreign origin the answer carries CORS headers (with
//! credentials, so a page may send cookies, and `fetch`es with an
//! `Authorization` header pass their preflight); a foreign origin not on
//! the list gets `403 origin_not_allowed`, which names the flag. WebSockets
//! are not protected by CORS at all, so for them this check is the only
//! one.

use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use crate::error::ApiError;
use crate::{Request, Response, reply};

/// The origins allowed besides the server's own.
#[derive(Debug, Clone, Default)]
pub struct Origins {
    /// Without a trailing `/`, as browsers send them.
    allowed: Vec<String>,
}

impl Origins {
    pub fn new(allowed: &[String]) -> Self {
        Origins {
            allowed: allowed
                .iter()
                .map(|o| o.trim_end_matches('/').to_owned())
                .collect(),
        }
    }

    /// `None` for a request without `Origin` or from the server's own
    /// origin (`authority` is the `Host` the request was sent to);
    /// `Some(origin)` for a foreign origin on the list; `Err` for any other.
    pub fn check(
        &self,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Result<Option<HeaderValue>, ApiError> {
        let Some(value) = headers.get(header::ORIGIN) else {
            return Ok(None);
        };
        let origin = value.to_str().unwrap_or("").trim_end_matches('/');
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or(authority)
            .unwrap_or("");
        let same_origin = !host.is_empty()
            && origin.split_once("://").is_some_and(|(scheme, rest)| {
                matches!(scheme, "http" | "https") && rest.eq_ignore_ascii_case(host)
            });
        if same_origin {
            Ok(None)
        } else if self.allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            Ok(Some(value.clone()))
        } else {
            Err(ApiError::OriginNotAllowed(origin.to_owned()))
        }
    }
}

/// What a request to a transport or the publish API gets before its
/// handler runs ([`Origins::admit`]).
#[derive(Debug)]
pub enum FromPage {
    /// Go on; with an origin, let it read the answer ([`allow_cors`]).
    Proceed(Option<HeaderValue>),
    /// The whole answer already: a preflight's, or the 403.
    Answered(Response),
}

impl Origins {
    /// Sorts a request to a transport or the publish API by its `Origin`.
    pub fn admit(&self, req: &Request) -> FromPage {
        let authority = req.uri().authority().map(|a| a.as_str());
        match self.check(req.headers(), authority) {
            Ok(Some(origin)) if is_preflight(req.method(), req.headers()) => {
                FromPage::Answered(preflight(origin))
            }
            Ok(cors) => FromPage::Proceed(cors),
            Err(refused) => FromPage::Answered(refused.into_response()),
        }
    }
}

/// Lets the page at `origin` read `response`, with credentials.
pub fn allow_cors(response: &mut Response, origin: HeaderValue) {
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    h.insert(
        header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
        HeaderValue::from_static("true"),
    );
    h.append(header::VARY, HeaderValue::from_static("Origin"));
}

/// The answer to a CORS preflight (`OPTIONS` with
/// `Access-Control-Request-Method`) from an allowed origin: the methods and
/// headers the transports and the publish API use, for ten minutes.
fn preflight(origin: HeaderValue) -> Response {
    let mut response = reply::text(StatusCode::NO_CONTENT, "");
    let h = response.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, last-event-id"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    allow_cors(&mut response, origin);
    response
}

/// Whether `method` and `headers` are a CORS preflight.
fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        if let Some(host) = host {
            h.insert(header::HOST, host.parse().unwrap());
        }
        h
    }

    #[test]
    fn own_listed_and_foreign_origins() {
        let origins = Origins::new(&["http://localhost:5000/".into()]);
        let own = Some("127.0.0.1:8080");
        assert_eq!(origins.check(&headers(None, own), None).unwrap(), None);
        assert_eq!(
            origins
                .check(&headers(Some("http://127.0.0.1:8080"), own), None)
                .unwrap(),
            None,
            "same origin"
        );
        assert_eq!(
            origins
                .check(&headers(Some("https://127.0.0.1:8080"), None), own)
                .unwrap(),
            None,
            "same origin over HTTP/2, which has no Host header"
        );
        assert_eq!(
            origins
                .check(&headers(Some("http://localhost:5000"), own), None)
                .unwrap()
                .unwrap(),
            "http://localhost:5000"
        );
        for foreign in ["http://evil.example", "null", "http://localhost:5001"] {
            let refused = origins.check(&headers(Some(foreign), own), None);
            assert!(
                matches!(refused, Err(ApiError::OriginNotAllowed(_))),
                "{foreign}"
            );
        }
    }
}
