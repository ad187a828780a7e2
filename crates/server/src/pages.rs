//! The pages and their assets: the side-by-side lab (`/`), the admin page
//! (`/admin`), the original Socket.IO demo (`/seed`) and the page the
//! write-ups copied, as it was (`/socket.html`), the static files under
//! `/static/`, and `/api/time`, which the lab uses to correct latency for
//! the browser's clock offset.
//!
//! Templates are askama files in `web/templates/`, compiled into the binary;
//! the JavaScript and CSS in `web/static/` are embedded with `include_str!`,
//! so the binary serves everything itself, from any working directory, with
//! no build step and no CDN.

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

use askama::Template;
use http::{HeaderValue, Method, StatusCode, header};
use notify_http::{ApiError, Query, Request, Response, allow, reply};
use notify_hub::Hub;

/// One pane of the lab: a transport, where its code lives on each side.
#[derive(Debug)]
pub struct Pane {
    pub id: &'static str,
    pub title: &'static str,
    pub summary: &'static str,
    pub source: &'static str,
    pub module: &'static str,
}

/// The lab's panes, in the order the page shows them.
pub const PANES: &[Pane] = &[
    Pane {
        id: notify_short_poll::NAME,
        title: "Short polling",
        summary: "Asks every few seconds whether anything is new; most answers are empty.",
        source: "crates/short-poll/src/lib.rs",
        module: "web/static/transports/short-poll.js",
    },
    Pane {
        id: notify_long_poll::NAME,
        title: "Long polling",
        summary: "Asks once; the server holds the request until something is published or the timeout passes.",
        source: "crates/long-poll/src/lib.rs",
        module: "web/static/transports/long-poll.js",
    },
    Pane {
        id: notify_websocket::NAME,
        title: "WebSocket",
        summary: "One handshake (101 Switching Protocols), then the server pushes a frame per notification.",
        source: "crates/websocket/src/lib.rs",
        module: "web/static/transports/websocket.js",
    },
    Pane {
        id: notify_sse::NAME,
        title: "Server-Sent Events",
        summary: "One response that never ends; the browser's EventSource reads an event per notification and resumes by itself.",
        source: "crates/sse/src/lib.rs",
        module: "web/static/transports/sse.js",
    },
    Pane {
        id: notify_socketio::NAME,
        title: "Socket.IO",
        summary: "The library most write-ups use: a handshake over polling, an upgrade to WebSocket, heartbeats and reconnects built in. It resumes without loss only because this page passes its cursor in the connect auth.",
        source: "crates/socketio/src/lib.rs",
        module: "web/static/transports/socketio.js",
    },
    Pane {
        id: notify_webtransport::NAME,
        title: "WebTransport",
        summary: "A session over HTTP/3 on QUIC (UDP); the server writes a line per notification on one stream. Shown when the server has a certificate (--tls-*). The lab's drop and freeze act on TCP connections, so this pane has neither.",
        source: "crates/webtransport/src/lib.rs",
        module: "web/static/transports/webtransport.js",
    },
    Pane {
        id: "auto",
        title: "Auto (with fallback)",
        summary: "Tries WebTransport where the server and the browser have it, then WebSocket, then SSE, then long polling, then short polling, keeping one cursor across switches. Refuse transports to watch it fall back.",
        source: "all of the above",
        module: "web/static/transports/auto.js",
    },
];

#[derive(Template)]
#[template(path = "lab.html")]
struct LabPage<'a> {
    page: &'static str,
    epoch: &'a str,
    backend: &'static str,
    process: &'a str,
    panes: Vec<&'static Pane>,
    webtransport: Option<WtTarget>,
}

/// Where the page's WebTransport sessions go: the UDP port, and the hex
/// SHA-256 of a generated certificate (empty for one an authority signed).
#[derive(Debug)]
struct WtTarget {
    port: u16,
    hash: String,
}

#[derive(Template)]
#[template(path = "seed.html")]
struct SeedPage<'a> {
    page: &'static str,
    epoch: &'a str,
    backend: &'static str,
    process: &'a str,
    /// The socket.io client the page runs: today's (`4.8.4`), or the
    /// write-up's (`1.3.5`) with `?client=1.3.5`.
    client: &'static str,
}

#[derive(Template)]
#[template(path = "admin.html")]
struct AdminPage<'a> {
    page: &'static str,
    epoch: &'a str,
    backend: &'static str,
    process: &'a str,
    max_text_bytes: usize,
}

/// Which hub backend serves, and which process: with several processes
/// sharing a Redis, each lab page says which one it talks to (every pane
/// of a page talks to the origin that served it).
fn backend(hub: &Hub) -> &'static str {
    if hub.is_shared() {
        "redis"
    } else {
        "in-memory"
    }
}

fn process(req: &Request) -> String {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("?");
    format!("pid {} at {host}", std::process::id())
}

/// One file of `web/static/`, embedded: (its URL path, type, content).
macro_rules! asset {
    ($file:literal, $content_type:expr) => {
        (
            concat!("/static/", $file),
            $content_type,
            include_str!(concat!("../../../web/static/", $file)),
        )
    };
}

/// The files under `/static/`.
const STATIC_FILES: &[(&str, &str, &str)] = &[
    asset!("lab.css", "text/css; charset=utf-8"),
    asset!("lab.js", JS),
    asset!("admin.js", JS),
    asset!("clock.js", JS),
    asset!("wire-view.js", JS),
    asset!("tabs.js", JS),
    asset!("transports/cursor.js", JS),
    asset!("transports/liveness.js", JS),
    asset!("transports/short-poll.js", JS),
    asset!("transports/long-poll.js", JS),
    asset!("transports/websocket.js", JS),
    asset!("transports/sse.js", JS),
    asset!("transports/auto.js", JS),
    asset!("transports/socketio.js", JS),
    asset!("transports/webtransport.js", JS),
    asset!("seed.js", JS),
    asset!("vendor/socket.io.esm.min.js", JS),
    asset!("vendor/socket.io-1.3.5.js", JS),
    asset!("vendor/jquery-1.4.2.min.js", JS),
];

/// Browsers refuse to run an ES module served with another type.
const JS: &str = "text/javascript; charset=utf-8";

/// Scripts and styles come from this origin only, and nothing inline runs:
/// a notification that sneaks markup into the page still cannot execute.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

pub fn lab(
    req: &Request,
    hub: &Hub,
    webtransport: Option<&notify_webtransport::WebTransport>,
) -> Result<Response, ApiError> {
    allow(req, &Method::GET, "GET")?;
    let process = process(req);
    let page = LabPage {
        page: "lab",
        epoch: hub.epoch().as_str(),
        backend: backend(hub),
        process: &process,
        // The WebTransport pane only where the server serves it.
        panes: PANES
            .iter()
            .filter(|pane| pane.id != notify_webtransport::NAME || webtransport.is_some())
            .collect(),
        webtransport: webtransport.map(|wt| WtTarget {
            port: wt.local_addr().port(),
            hash: wt.certificate_hash_hex().unwrap_or_default(),
        }),
    };
    html(page.render())
}

pub fn admin(req: &Request, hub: &Hub) -> Result<Response, ApiError> {
    allow(req, &Method::GET, "GET")?;
    let process = process(req);
    let page = AdminPage {
        page: "admin",
        epoch: hub.epoch().as_str(),
        backend: backend(hub),
        process: &process,
        max_text_bytes: hub.config().max_text_bytes,
    };
    html(page.render())
}

/// `/seed`: the original Socket.IO demo, reproduced on this server.
pub fn seed(req: &Request, hub: &Hub) -> Result<Response, ApiError> {
    allow(req, &Method::GET, "GET")?;
    let process = process(req);
    let client = match Query::from_uri(req.uri()).get("client") {
        Some("1.3.5") => "1.3.5",
        _ => "4.8.4",
    };
    let page = SeedPage {
        page: "seed",
        epoch: hub.epoch().as_str(),
        backend: backend(hub),
        process: &process,
        client,
    };
    html(page.render())
}

/// The page the write-ups of this feature copied: Flask-SocketIO's example
/// page of December 2015 (`example/templates/index.html` at commit
/// 68efeac, MIT; see `web/static/vendor/README.md`), kept byte for byte.
const WRITE_UP_PAGE: &str = include_str!("../../../web/static/vendor/flask-socketio-example.html");

/// The page's two CDN scripts, and the vendored copies served instead: the
/// only change made to it, here where it can be read.
const CDN_TO_VENDORED: [(&str, &str); 2] = [
    (
        "//code.jquery.com/jquery-1.4.2.min.js",
        "/static/vendor/jquery-1.4.2.min.js",
    ),
    (
        "//cdnjs.cloudflare.com/ajax/libs/socket.io/1.3.5/socket.io.min.js",
        "/static/vendor/socket.io-1.3.5.js",
    ),
];

/// The page as served, and a Content-Security-Policy that lets its one
/// inline script run, by that script's hash, and nothing else inline: what
/// the page appends to itself is what other visitors typed.
struct WriteUpPage {
    html: String,
    policy: HeaderValue,
}

static WRITE_UP: LazyLock<WriteUpPage> = LazyLock::new(|| {
    let html = CDN_TO_VENDORED
        .iter()
        .fold(WRITE_UP_PAGE.to_owned(), |html, (cdn, vendored)| {
            html.replace(cdn, vendored)
        });
    let policy = match inline_script(&html) {
        Some(script) => {
            let digest = ring::digest::digest(&ring::digest::SHA256, script.as_bytes());
            let hash = base64::engine::general_purpose::STANDARD.encode(digest);
            CONTENT_SECURITY_POLICY.replace(
                "script-src 'self'",
                &format!("script-src 'self' 'sha256-{hash}'"),
            )
        }
        None => CONTENT_SECURITY_POLICY.to_owned(),
    };
    WriteUpPage {
        html,
        policy: HeaderValue::from_str(&policy)
            .unwrap_or(HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
    }
});

/// The text of the page's one inline `<script>` (the one without `src`),
/// which is what a CSP hash covers.
fn inline_script(html: &str) -> Option<&str> {
    const OPEN: &str = r#"<script type="text/javascript" charset="utf-8">"#;
    let start = html.find(OPEN)? + OPEN.len();
    let end = start + html[start..].find("</script>")?;
    Some(&html[start..end])
}

/// `/socket.html`: the page the write-ups copied, as it was, on the
/// write-up's own socket.io client (1.3.5) and jQuery (1.4.2), both served
/// from here. Its server side is namespace `/test` (`demo.rs`).
pub fn write_up(req: &Request) -> Result<Response, ApiError> {
    allow(req, &Method::GET, "GET")?;
    let page = &*WRITE_UP;
    let mut response = html(Ok(page.html.clone()))?;
    response
        .headers_mut()
        .insert(header::CONTENT_SECURITY_POLICY, page.policy.clone());
    Ok(response)
}

fn html(rendered: askama::Result<String>) -> Result<Response, ApiError> {
    // Rendering fails only on a formatting error inside a template, which
    // the page tests would catch; it is answered like any other error.
    let body = rendered.map_err(|err| ApiError::Internal(format!("template error: {err}")))?;
    let mut response = hyper::Response::new(reply::full(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// A file under `/static/`, or `None` when there is no such file.
pub fn static_file(req: &Request) -> Option<Result<Response, ApiError>> {
    let (_, content_type, content) = STATIC_FILES
        .iter()
        .find(|(path, _, _)| *path == req.uri().path())?;
    Some(allow(req, &Method::GET, "GET").map(|()| {
        let mut response = hyper::Response::new(reply::full(*content));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // Revalidate every time: a rebuilt server serves the edited files
        // (they are embedded), and a page reload should see them.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }))
}

/// `{"now_ms": <server clock, ms since the Unix epoch>, "process": "pid … at …", "epoch": "…"}`.
/// The lab also reads which process answered and its hub's epoch, to say
/// in plain words when the server it talks to restarted.
pub fn time(req: &Request, hub: &Hub) -> Result<Response, ApiError> {
    allow(req, &Method::GET, "GET")?;
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let body = serde_json::json!({
        "now_ms": now_ms as u64,
        "process": process(req),
        "epoch": hub.epoch().as_str(),
    });
    Ok(reply::json(StatusCode::OK, body.to_string().into()))
}
