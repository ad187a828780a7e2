//! The pages the combined server serves to browsers, checked over real
//! sockets: the lab and admin pages, their embedded assets, the time
//! endpoint, and the wire stream with secrets redacted. What the pages do in
//! a browser is tested in headless Chromium (web/e2e).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use notify_server::TransportConfig;
use notify_test_support::{PATIENCE, TEST_TOKEN, TestConfig, TestServer};

async fn server() -> TestServer {
    TestServer::start_with(TestConfig::default(), |ctx| {
        notify_server::router(ctx, TransportConfig::default()).1
    })
    .await
}

async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    server.http.get(server.url(path)).send().await.unwrap()
}

#[tokio::test]
async fn the_lab_has_a_pane_per_transport_and_loads_its_module() {
    let server = server().await;
    let response = get(&server, "/").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = response.text().await.unwrap();
    for pane in [
        "short-poll",
        "long-poll",
        "websocket",
        "sse",
        "socketio",
        "auto",
    ] {
        assert!(html.contains(&format!("id=\"pane-{pane}\"")), "pane {pane}");
        assert!(
            html.contains(&format!("web/static/transports/{pane}.js")),
            "module named for {pane}"
        );
    }
    assert!(html.contains(r#"<script type="module" src="/static/lab.js">"#));
    assert!(
        html.contains(server.hub().epoch().as_str()),
        "shows the epoch"
    );
    assert!(html.contains("hub: in-memory"), "shows the backend");
    assert!(
        html.contains(&format!("pid {} at ", std::process::id())),
        "shows the process"
    );
}

#[tokio::test]
async fn the_admin_page_has_the_publish_form() {
    let server = server().await;
    let html = get(&server, "/admin").await.text().await.unwrap();
    assert!(html.contains(r#"<form id="publish""#));
    assert!(
        html.contains(r#"data-max-bytes="4096""#),
        "the limit, in bytes"
    );
    assert!(!html.contains("maxlength"), "nothing cuts a pasted text");
    assert!(html.contains(r#"src="/static/admin.js""#));
}

#[tokio::test]
async fn the_seed_page_is_the_socketio_demo() {
    let server = server().await;
    let response = get(&server, "/seed").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains(r#"<form id="broadcast""#));
    assert!(html.contains("my broadcast event"));
    assert!(html.contains(r#"src="/static/seed.js""#));
}

#[tokio::test]
async fn the_write_ups_page_is_served_as_it_was_with_its_scripts_from_here() {
    let server = server().await;
    let response = get(&server, "/socket.html").await;
    assert_eq!(response.status(), 200);
    let policy = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = response.text().await.unwrap();
    let original = include_str!("../../../web/static/vendor/flask-socketio-example.html");
    // Only the two script addresses differ from the original.
    let changed: Vec<(&str, &str)> = original
        .lines()
        .zip(html.lines())
        .filter(|(was, is)| was != is)
        .collect();
    assert_eq!(changed.len(), 2, "{changed:#?}");
    assert_eq!(original.lines().count(), html.lines().count());
    for script in [
        "/static/vendor/jquery-1.4.2.min.js",
        "/static/vendor/socket.io-1.3.5.js",
    ] {
        assert!(html.contains(&format!(r#"src="{script}""#)), "{script}");
        let served = get(&server, script).await;
        assert_eq!(served.status(), 200, "{script}");
    }
    // Its inline script may run, by its hash; nothing else inline may.
    assert!(policy.contains("script-src 'self' 'sha256-"), "{policy}");
    assert!(!policy.contains("unsafe-inline"), "{policy}");
}

#[tokio::test]
async fn every_script_the_pages_import_is_served_as_javascript() {
    let server = server().await;
    let mut pending = vec![
        "/static/lab.js".to_owned(),
        "/static/admin.js".to_owned(),
        "/static/seed.js".to_owned(),
    ];
    let mut seen = Vec::new();
    while let Some(path) = pending.pop() {
        if seen.contains(&path) {
            continue;
        }
        let response = get(&server, &path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/javascript; charset=utf-8",
            "{path}"
        );
        let source = response.text().await.unwrap();
        seen.push(path.clone());
        // A vendored library is served as it is; its text is not ours to read.
        if path.starts_with("/static/vendor/") {
            continue;
        }
        // Follow `from "./x.js"` and `from "../x.js"` imports relative to the file.
        let dir = &path[..path.rfind('/').unwrap()];
        for import in source.split("from \"").skip(1) {
            let target = &import[..import.find('"').unwrap()];
            let resolved = if let Some(rest) = target.strip_prefix("./") {
                format!("{dir}/{rest}")
            } else if let Some(rest) = target.strip_prefix("../") {
                format!("{}/{rest}", &dir[..dir.rfind('/').unwrap()])
            } else {
                panic!("{path} imports {target}: only relative imports are served")
            };
            pending.push(resolved);
        }
    }
    assert!(seen.len() >= 6, "followed the imports: {seen:?}");
    assert!(
        seen.iter()
            .any(|p| p == "/static/vendor/socket.io.esm.min.js"),
        "the vendored Socket.IO client is served: {seen:?}"
    );
    let css = get(&server, "/static/lab.css").await;
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(get(&server, "/static/missing.js").await.status(), 404);
}

#[tokio::test]
async fn time_is_the_server_clock_in_milliseconds() {
    let server = server().await;
    let before = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let body: serde_json::Value = get(&server, "/api/time").await.json().await.unwrap();
    let after = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let now = body["now_ms"].as_u64().unwrap();
    assert!(
        (before..=after).contains(&now),
        "{before} <= {now} <= {after}"
    );
    // And which process and history answered, for the lab's restart notice.
    assert_eq!(body["epoch"], server.hub().epoch().as_str());
    assert!(
        body["process"]
            .as_str()
            .unwrap()
            .starts_with(&format!("pid {} at ", std::process::id())),
        "{body}"
    );
}

/// Reads server-sent events from `response` until one satisfies `wanted`.
async fn wait_for_event(
    response: &mut reqwest::Response,
    wanted: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let mut buffer = String::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            let chunk = response
                .chunk()
                .await
                .unwrap()
                .expect("the stream stays open");
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
            while let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                if let Some(data) = event.strip_prefix("data: ") {
                    let record: serde_json::Value = serde_json::from_str(data.trim_end()).unwrap();
                    if wanted(&record) {
                        return record;
                    }
                }
            }
        }
    })
    .await
    .expect("the wanted record arrives")
}

#[tokio::test]
async fn everyones_wire_takes_the_admin_token_and_redacts_it() {
    let server = server().await;
    let refused = get(&server, "/api/wire").await;
    assert_eq!(
        refused.status(),
        401,
        "everyone's exchanges are the admin's"
    );
    let mut wire = server
        .http
        .get(server.url("/api/wire"))
        .bearer_auth(TEST_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(wire.headers()["content-type"], "text/event-stream");
    server.publish("watched").await.unwrap();
    let record = wait_for_event(&mut wire, |r| r["transport"] == "publish").await;
    let request = record["request"].as_str().unwrap();
    assert!(
        request.starts_with("POST /api/notifications HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(request.contains("authorization: <redacted>"), "{request}");
    assert!(
        !request.contains(TEST_TOKEN),
        "the token never reaches the wire view"
    );
    assert!(
        record["response"]
            .as_str()
            .unwrap()
            .starts_with("HTTP/1.1 201 Created\r\n")
    );

    // A held long poll is recorded when answered, with how long it was held.
    let epoch = server.hub().epoch().to_string();
    let held = server
        .poll(&format!("/api/long-poll?after=1&epoch={epoch}&timeout=1"))
        .await
        .unwrap();
    assert!(held.notifications.is_empty());
    let record = wait_for_event(&mut wire, |r| r["transport"] == "long-poll").await;
    assert!(
        record["held_ms"].as_u64().unwrap() >= Duration::from_millis(900).as_millis() as u64,
        "{record}"
    );
}

#[tokio::test]
async fn a_page_opened_later_gets_its_own_recent_exchanges_only() {
    let server = server().await;
    server.poll("/api/poll?lab=other.short-poll").await.unwrap();
    server.poll("/api/poll?lab=mine.short-poll").await.unwrap();
    let wire = get(&server, "/api/wire/recent?lab=mine").await;
    assert_eq!(wire.status(), 200);
    let recent: serde_json::Value = wire.json().await.unwrap();
    let record = &recent["records"][0];
    assert_eq!(record["transport"], "short-poll");
    assert!(
        record["request"]
            .as_str()
            .unwrap()
            .starts_with("GET /api/poll?lab=mine.short-poll HTTP/1.1"),
        "{record}"
    );
    assert_eq!(record["pane"], "short-poll");
}
