//! The harness measured against itself: on a small run its counts agree
//! with the theory within stated tolerances and nothing is lost; a client
//! made to lose a notification is caught; and the CLI writes a report that
//! parses.

use std::time::Duration;

use notify_harness::report::TransportReport;
use notify_harness::{Publish, RunConfig, RunReport, Target, Texts, Transport};

fn small(name: &str) -> RunConfig {
    RunConfig {
        name: name.into(),
        clients: 5,
        transports: Transport::ALL.to_vec(),
        poll_interval: Duration::from_millis(500),
        long_poll_timeout: Duration::from_secs(2),
        notifications: 10,
        publish: Publish::Rate(5.0),
        drain: Duration::from_secs(20),
        lossy: None,
        chaos: None,
        leak_check: false,
        rtt: Duration::ZERO,
        settle_memory: false,
        compress: false,
        browser_headers: false,
        texts: Texts::IdOnly,
    }
}

fn figures(report: &RunReport, transport: Transport) -> &TransportReport {
    report
        .transports
        .iter()
        .find(|t| t.transport == transport)
        .expect("transport in report")
}

/// Runs `config` on an in-process server, and checks that every client got
/// every notification exactly once, in order.
async fn run_checked(config: &RunConfig) -> RunReport {
    let report = notify_harness::run(config, &Target::InProcess { redis: None }, false)
        .await
        .unwrap();
    report
        .verify()
        .expect("every notification exactly once, in order");
    for t in &report.transports {
        assert_eq!(
            t.delivered,
            config.clients as u64 * config.notifications,
            "{}",
            t.transport
        );
    }
    report
}

/// `measured` within `tolerance` (a fraction) of `expected`.
fn near(measured: f64, expected: f64, tolerance: f64) -> bool {
    (measured - expected).abs() <= expected * tolerance
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_run_matches_the_theory_and_loses_nothing() {
    let report = notify_harness::run(&small("small"), &Target::InProcess { redis: None }, false)
        .await
        .unwrap();
    report
        .verify()
        .expect("every notification exactly once, in order");
    for t in &report.transports {
        assert_eq!(t.delivered, 5 * 10, "{}", t.transport);
        assert!(
            t.bytes_down > 0 && t.bytes_up > 0,
            "{} bytes counted at the socket",
            t.transport
        );
    }

    // Short polling: N·(1 + D/I) requests, mean latency I/2. Requests fall a
    // little short of the model because each poll also takes time; allow 35%.
    let short = figures(&report, Transport::ShortPoll);
    assert!(
        near(short.requests as f64, short.theory.requests, 0.35),
        "{} vs {}",
        short.requests,
        short.theory.requests
    );
    assert!(short.empty_responses > 0, "most short polls find nothing");
    let mean = short.latency_ms.mean;
    assert!(
        (125.0..=500.0).contains(&mean),
        "mean latency {mean} ms, expected about I/2 = 250 ms"
    );

    // Long polling: about one request per notification per client, plus
    // the idle timeouts; allow 35%.
    let long = figures(&report, Transport::LongPoll);
    assert!(
        near(long.requests as f64, long.theory.requests, 0.35),
        "{} vs {}",
        long.requests,
        long.theory.requests
    );
    assert!(
        long.latency_ms.p50 < short.latency_ms.p50,
        "held requests answer sooner than polls"
    );

    // Push: exactly one handshake or stream per client, nothing empty.
    for transport in [Transport::WebSocket, Transport::Sse] {
        let push = figures(&report, transport);
        assert_eq!(push.requests, 5, "{transport}: one request per client");
        assert_eq!(push.empty_responses, 0);
        assert!(
            push.bytes_per_delivered < short.bytes_per_delivered,
            "{transport} costs fewer bytes than polling"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_trip_delay_puts_every_client_that_far_from_the_server() {
    let config = RunConfig {
        transports: vec![
            Transport::WebSocket,
            Transport::LongPoll,
            Transport::ShortPoll,
        ],
        rtt: Duration::from_millis(120),
        ..small("rtt")
    };
    let report = notify_harness::run(&config, &Target::InProcess { redis: None }, false)
        .await
        .unwrap();
    report.verify().expect("a slow link loses nothing");
    assert_eq!(report.rtt_ms, 120.0);
    // However fast the machine, nothing crosses a 120 ms link in less than
    // its one-way 60 ms.
    for t in &report.transports {
        assert_eq!(t.delivered, 5 * 10, "{}", t.transport);
        assert!(
            t.latency_ms.p50 >= 60.0 * 0.99,
            "{}: p50 {} ms under the link's one-way 60 ms",
            t.transport,
            t.latency_ms.p50
        );
        assert!(
            t.theory.mean_latency_ms.is_some(),
            "{}: a model with R",
            t.transport
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lossy_client_makes_the_run_fail_loudly() {
    let config = RunConfig {
        transports: vec![Transport::WebSocket, Transport::LongPoll],
        lossy: Some(Transport::WebSocket),
        drain: Duration::from_secs(2),
        ..small("lossy")
    };
    let report = notify_harness::run(&config, &Target::InProcess { redis: None }, false)
        .await
        .unwrap();
    let ws = figures(&report, Transport::WebSocket);
    assert_eq!(ws.missing, 1, "the dropped notification is counted");
    assert_eq!(figures(&report, Transport::LongPoll).missing, 0);
    let failure = report.verify().unwrap_err().to_string();
    assert!(failure.contains("websocket: 1 missing"), "{failure}");
}

/// Runs the harness binary with `args` and `--out DIR`, and returns what it
/// printed; fails the test with everything it said if it failed.
fn harness_cli(args: &[&std::ffi::OsStr], out: &std::path::Path) -> String {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_notify-harness"))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .expect("the harness runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn the_cli_writes_a_table_json_and_html_report() {
    let out = std::env::temp_dir().join(format!("notify-harness-test-{}", std::process::id()));
    let stdout = harness_cli(&["smoke".as_ref(), "--quiet".as_ref()], &out);
    assert!(stdout.contains("lost/dup/order"), "{stdout}");

    let json = std::fs::read_to_string(out.join("smoke.json")).expect("the JSON report exists");
    let runs: Vec<RunReport> = serde_json::from_str(&json).expect("the JSON report parses");
    assert_eq!(runs.len(), 1);
    let reported: Vec<Transport> = runs[0].transports.iter().map(|t| t.transport).collect();
    assert_eq!(
        reported,
        Transport::ALL,
        "every transport, Socket.IO's two ways included"
    );
    runs[0].verify().unwrap();

    let html = std::fs::read_to_string(out.join("smoke.html")).expect("the HTML report exists");
    assert!(html.starts_with("<!doctype html>"));
    assert_eq!(
        html.matches("<svg").count(),
        3,
        "latency, requests and bytes charts"
    );
    assert!(!html.contains("<script"), "self-contained and static");
    assert!(
        html.contains("<table>") && !html.contains("<pre>"),
        "the figures are a real table, not a terminal dump"
    );
    for transport in Transport::ALL {
        assert!(
            html.contains(&format!(r#"<th scope="row">{transport}</th>"#)),
            "a row for {transport}"
        );
    }
    assert!(
        html.contains("N·(1 + D/I)"),
        "the model's formula beside the measurement"
    );
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn browser_headers_weigh_on_every_request_as_a_browser_s_do() {
    // Without and with --browser-headers, the same small run: each request
    // a client makes carries what Chromium adds, some 400 bytes on a poll
    // or a stream and some 220 on a WebSocket handshake (no client hints,
    // no Sec-Fetch-*, no Referer there).
    let up_per_request = |browser: bool| {
        let out = std::env::temp_dir().join(format!(
            "notify-harness-headers-{}-{browser}",
            std::process::id()
        ));
        let mut args: Vec<&std::ffi::OsStr> = [
            "custom",
            "--quiet",
            "--transports",
            "long-poll,sse,websocket,socketio",
            "--clients",
            "3",
            "--notifications",
            "4",
            "--rate",
            "10",
        ]
        .iter()
        .map(|a| a.as_ref())
        .collect();
        if browser {
            args.push("--browser-headers".as_ref());
        }
        harness_cli(&args, &out);
        let json = std::fs::read_to_string(out.join("custom.json")).expect("the JSON report");
        let runs: Vec<RunReport> = serde_json::from_str(&json).expect("the JSON report parses");
        runs[0].verify().unwrap();
        std::fs::remove_dir_all(&out).ok();
        runs[0]
            .transports
            .iter()
            .map(|t| (t.transport, t.bytes_up as f64 / t.requests as f64))
            .collect::<Vec<_>>()
    };
    let plain = up_per_request(false);
    let browser = up_per_request(true);
    for ((transport, plain), (_, browser)) in plain.iter().zip(&browser) {
        let more = browser - plain;
        assert!(
            (150.0..600.0).contains(&more),
            "{transport}: {plain:.0} B up per request plain, {browser:.0} B with a browser's headers"
        );
    }
}

#[test]
fn the_timeline_draws_each_technique_from_a_real_run() {
    let out = std::env::temp_dir().join(format!("notify-harness-timeline-{}", std::process::id()));
    let stdout = harness_cli(
        &["timeline".as_ref(), "--rtt".as_ref(), "100ms".as_ref()],
        &out,
    );
    for name in ["short-poll", "long-poll", "websocket", "sse", "socketio"] {
        assert!(
            stdout.contains(&format!("{name}: "))
                && stdout.contains("3 of 3 notifications delivered"),
            "{stdout}"
        );
        let svg = std::fs::read_to_string(out.join(format!("timeline-{name}.svg")))
            .expect("a picture per technique");
        assert!(svg.starts_with("<svg"), "{name}");
        for id in 1..=3 {
            assert!(svg.contains("published</text>"), "{name}");
            assert!(svg.contains(&format!(">#{}", id)), "{name}: #{id} marked");
        }
        assert!(svg.contains("arrives</text>"), "{name}: arrivals marked");
    }
    // What each technique sends is what the picture shows: polls ask again
    // and again, a push connection asks once.
    let requests = |name: &str| {
        std::fs::read_to_string(out.join(format!("timeline-{name}.svg")))
            .unwrap()
            .matches(">GET /api/")
            .count()
    };
    assert!(
        requests("long-poll") >= 4,
        "one poll to start, one after each answer"
    );
    assert!(requests("short-poll") >= 3, "one a second");
    assert_eq!(requests("websocket"), 1, "the handshake only");
    assert_eq!(requests("sse"), 1, "the stream's request only");
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn the_scale_scenario_puts_each_transport_next_to_the_floors() {
    // `cargo test --workspace` builds the combined server beside the harness.
    let harness = std::path::Path::new(env!("CARGO_BIN_EXE_notify-harness"));
    let server = harness.with_file_name(format!("notify-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        server.exists(),
        "build the server first: cargo build -p notify-server"
    );
    let out = std::env::temp_dir().join(format!("notify-scale-test-{}", std::process::id()));
    let args = ["scale", "--quiet", "--clients", "40", "--server-bin"];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    args.push(server.as_os_str());
    let stdout = harness_cli(&args, &out);
    for row in [
        "fan-out floor (plain writes)",
        "connection floor (bare hyper)",
        "websocket",
        "sse",
        "long-poll",
    ] {
        assert!(stdout.contains(row), "a row for {row}: {stdout}");
    }
    let json = std::fs::read_to_string(out.join("scale.json")).expect("the JSON report exists");
    let report: notify_harness::scale::ScaleReport =
        serde_json::from_str(&json).expect("the JSON report parses");
    assert_eq!(
        report.fan_out_floor.last_delivery_ms.len(),
        5,
        "five rounds"
    );
    assert!(report.hold_floor.bytes_per_connection.is_finite());
    let transports: Vec<Transport> = report.rows.iter().map(|r| r.transport).collect();
    assert_eq!(
        transports,
        [Transport::WebSocket, Transport::Sse, Transport::LongPoll]
    );
    for row in &report.rows {
        assert!(
            row.exact,
            "{}: every notification once, in order",
            row.transport
        );
        assert_eq!(row.clients, 40);
    }
    assert!(out.join("scale.md").exists());
    std::fs::remove_dir_all(&out).ok();
}

#[test]
fn the_cli_refuses_a_target_that_is_not_loopback() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_notify-harness"))
        .args([
            "smoke",
            "--quiet",
            "--target",
            "http://192.168.1.10:8080",
            "--admin-token",
            "x",
        ])
        .output()
        .expect("the harness runs");
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a loopback address"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_chaos_every_client_still_gets_everything_once_in_order() {
    let config = RunConfig {
        clients: 10,
        notifications: 30,
        publish: Publish::Rate(10.0),
        chaos: Some(Duration::from_millis(300)),
        ..small("chaos")
    };
    let report = notify_harness::run(&config, &Target::InProcess { redis: None }, false)
        .await
        .unwrap();
    report
        .verify()
        .expect("no loss, duplicate or reorder despite the cuts");
    for t in &report.transports {
        assert!(
            t.disconnects >= 10,
            "{}: connections were cut ({})",
            t.transport,
            t.disconnects
        );
        assert_eq!(t.delivered, 10 * 30, "{}", t.transport);
    }
    assert_eq!(
        report.leftover_server_tasks,
        Some(0),
        "the server let go of every connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_and_tuned_run_side_by_side_and_deliver_the_same() {
    let mut both = Vec::new();
    for tuned in Transport::WITH_PLAIN {
        both.extend([tuned, tuned.plain().expect("each has a plain version")]);
    }
    let config = RunConfig {
        transports: both.clone(),
        ..small("plain beside tuned")
    };
    let report = run_checked(&config).await;
    for transport in both {
        let t = figures(&report, transport);
        // The same wire contract: the same requests as the tuned twin's
        // model says, and the report names each version apart.
        assert_eq!(
            t.theory.requests_formula,
            figures(&report, transport.tuned()).theory.requests_formula
        );
        assert_eq!(
            t.transport.to_string().ends_with("-plain"),
            transport != transport.tuned()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_over_polling_in_each_generation_s_framing_delivers_everything() {
    let generations = [
        Transport::SocketIoPolling,
        Transport::SocketIoPolling2x,
        Transport::SocketIoPolling1x,
    ];
    let config = RunConfig {
        transports: generations.to_vec(),
        ..small("socket.io generations")
    };
    let report = run_checked(&config).await;
    for transport in generations {
        let t = figures(&report, transport);
        // A poll per notification at most, as a long poll, and the model's
        // count within a third.
        assert!(t.requests >= 5 * 10, "{transport}: {} requests", t.requests);
        assert!(
            near(t.requests as f64, t.theory.requests, 0.35),
            "{transport}: {} requests, {} expected",
            t.requests,
            t.theory.requests
        );
    }
    // The 1.x stamp (`t=<ms>-<n>`) is longer than 2.x's on every request.
    let up = |t| figures(&report, t).bytes_up;
    assert!(up(Transport::SocketIoPolling1x) > up(Transport::SocketIoPolling2x));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_offer_compression_get_long_texts_in_fewer_bytes() {
    let transports = [Transport::WebSocket, Transport::Sse, Transport::LongPoll];
    let mut down = Vec::new();
    for compress in [false, true] {
        let config = RunConfig {
            transports: transports.to_vec(),
            texts: Texts::Long,
            compress,
            ..small("compression")
        };
        let report = run_checked(&config).await;
        for transport in transports {
            let t = figures(&report, transport);
            down.push((transport, compress, t.bytes_down));
        }
    }
    // The same long texts, compressed by the server (once per notification
    // for the WebSocket and the stream, once per answer for the long poll)
    // and decoded by each client: well under the plain bytes.
    for transport in transports {
        let bytes = |compress| {
            down.iter()
                .find(|(t, c, _)| *t == transport && *c == compress)
                .map(|(_, _, b)| *b)
                .unwrap()
        };
        assert!(
            bytes(true) * 4 < bytes(false) * 3,
            "{transport}: {} compressed, {} plain",
            bytes(true),
            bytes(false)
        );
    }
}

#[test]
fn the_server_binary_serves_webtransport_to_the_harness() {
    // The server prints where WebTransport listens and the hash of the
    // certificate it generated; the harness reads both and opens sessions.
    let harness = std::path::Path::new(env!("CARGO_BIN_EXE_notify-harness"));
    let server = harness.with_file_name(format!("notify-server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        server.exists(),
        "build the server first: cargo build -p notify-server"
    );
    let out = std::env::temp_dir().join(format!("notify-harness-wt-{}", std::process::id()));
    let args = [
        "custom",
        "--quiet",
        "--clients",
        "20",
        "--notifications",
        "10",
        "--rate",
        "20",
        "--transports",
        "webtransport",
        "--server-bin",
    ];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    args.push(server.as_os_str());
    let stdout = harness_cli(&args, &out);
    assert!(stdout.contains("webtransport"), "{stdout}");
    let json = std::fs::read_to_string(out.join("custom.json")).expect("the JSON report exists");
    let runs: Vec<RunReport> = serde_json::from_str(&json).expect("the JSON report parses");
    let wt = figures(&runs[0], Transport::WebTransport);
    assert_eq!(wt.delivered, 200, "every client got every notification");
    assert_eq!((wt.missing, wt.duplicated, wt.out_of_order), (0, 0, 0));
    assert_eq!(wt.requests, 20, "one session per client");
    assert!(wt.bytes_down > 200 * 40, "QUIC's bytes are counted");
    std::fs::remove_dir_all(&out).ok();
}
