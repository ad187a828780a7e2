//! What a browser's requests weigh: the headers Chromium sends with each
//! kind of request these clients make, so that the harness's byte counts
//! can be those of a page and not of a client that sends only `Host`.
//!
//! The sets below were captured from headless Chromium 156 on Linux,
//! against a server that printed each request's head: a `fetch()` (the
//! pollers), an `EventSource`, a `new WebSocket()`, all to the page's own
//! origin. Two changes: the User-Agent says `Chrome`, as a desktop
//! browser's does, where the headless one said `HeadlessChrome`; and
//! `Accept-Encoding` (and the WebSocket's permessage-deflate offer) are
//! left to the clients' own compression switch, so that what headers cost
//! and what compression saves can be measured apart. A site's cookies, which
//! a browser would add, are not invented here.
//!
//! A client population asks for them in its [`Counters`]
//! (`browser_headers`), which every connection of it is given.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, header};

use crate::Counters;

/// Which browser API a request is made by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    Fetch,
    EventSource,
    WebSocket,
}

const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
const ACCEPT_LANGUAGE: &str = "en-US,en;q=0.9";

/// Adds a browser's headers to a request of a connection counting into
/// `counters`, when they ask for them.
pub(crate) fn add(
    headers: &mut HeaderMap,
    addr: SocketAddr,
    method: &Method,
    api: Api,
    counters: Option<&Arc<Counters>>,
) {
    if counters.is_some_and(|c| c.browser_headers) {
        add_always(headers, addr, method, api);
    }
}

/// Adds, where the request has not set them, the headers `api` sends with
/// a request of `method` from a page served by `addr`, in Chromium's order.
fn add_always(headers: &mut HeaderMap, addr: SocketAddr, method: &Method, api: Api) {
    let origin = format!("http://{addr}");
    let referer = format!("{origin}/");
    let mut set: Vec<(&str, String)> = Vec::new();
    let mut push = |name: &'static str, value: &str| set.push((name, value.to_owned()));
    match api {
        Api::Fetch | Api::EventSource => {
            if api == Api::EventSource {
                push("pragma", "no-cache");
                push("cache-control", "no-cache");
            }
            push("sec-ch-ua-platform", "\"Linux\"");
            push("user-agent", USER_AGENT);
            push(
                "accept",
                if api == Api::EventSource {
                    "text/event-stream"
                } else {
                    "*/*"
                },
            );
            push(
                "sec-ch-ua",
                "\"Not:A-Brand\";v=\"8\", \"Chromium\";v=\"156\"",
            );
            push("sec-ch-ua-mobile", "?0");
            if method == Method::POST {
                push("origin", &origin);
            }
            push("sec-fetch-site", "same-origin");
            push("sec-fetch-mode", "cors");
            push("sec-fetch-dest", "empty");
            push("referer", &referer);
            push("accept-language", ACCEPT_LANGUAGE);
        }
        Api::WebSocket => {
            push("pragma", "no-cache");
            push("cache-control", "no-cache");
            push("user-agent", USER_AGENT);
            push("origin", &origin);
            push("accept-language", ACCEPT_LANGUAGE);
        }
    }
    for (name, value) in set {
        let name = HeaderName::from_static(name);
        if !headers.contains_key(&name)
            && let Ok(value) = HeaderValue::from_str(&value)
        {
            headers.insert(name, value);
        }
    }
    // A browser's keep-alive connections say so.
    if api != Api::WebSocket && !headers.contains_key(header::CONNECTION) {
        headers.insert(header::CONNECTION, HeaderValue::from_static("keep-alive"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_api_gets_its_set_and_keeps_what_the_request_set() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let mut fetch = HeaderMap::new();
        add_always(&mut fetch, addr, &Method::GET, Api::Fetch);
        assert_eq!(fetch["referer"], "http://127.0.0.1:8080/");
        assert_eq!(fetch["sec-fetch-mode"], "cors");
        assert!(!fetch.contains_key("origin"), "a same-origin GET has none");
        let mut post = HeaderMap::new();
        add_always(&mut post, addr, &Method::POST, Api::Fetch);
        assert_eq!(post["origin"], "http://127.0.0.1:8080");
        let mut stream = HeaderMap::new();
        stream.insert("last-event-id", HeaderValue::from_static("7"));
        add_always(&mut stream, addr, &Method::GET, Api::EventSource);
        assert_eq!(stream["accept"], "text/event-stream");
        assert_eq!(stream["last-event-id"], "7");
        let mut ws = HeaderMap::new();
        add_always(&mut ws, addr, &Method::GET, Api::WebSocket);
        assert_eq!(ws["origin"], "http://127.0.0.1:8080");
        assert!(!ws.contains_key("referer"));
        assert!(
            !ws.contains_key(header::ACCEPT_ENCODING),
            "compression is its own switch"
        );
        // Some 400 bytes of header lines, as the captured requests had
        // beside their `Host`, `Connection` and `Accept-Encoding`.
        let size: usize = fetch
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 4)
            .sum();
        assert!((350..=500).contains(&size), "{size} bytes");
    }
}
