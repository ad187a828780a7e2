//! `cargo run --release -p notify-harness -- <scenario>`: runs a named
//! scenario (or one described by flags) and writes the table, a JSON file
//! and an HTML report with charts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use notify_harness::scenarios::{self, Scenario};
use notify_harness::{Publish, RunConfig, Target, Transport, html, scale};

#[derive(Debug, Parser)]
#[command(about = "Compare the transports: requests, bytes and latency, measured against theory")]
struct Args {
    /// A named scenario: quiet, busy, burst, interval-sweep, smoke, chaos,
    /// timeline (a timing diagram per technique, as SVG),
    /// rtt, burst-at-scale, paced-at-scale, or scale (which needs
    /// --server-bin); or
    /// `custom` with the flags below.
    scenario: String,
    /// Where the report files go.
    #[arg(long, default_value = "target/harness")]
    out: PathBuf,
    /// Start the server as a child process from this binary (so its CPU and
    /// memory are measured) instead of in-process.
    #[arg(long, conflicts_with = "target")]
    server_bin: Option<PathBuf>,
    /// A server already running at this loopback URL.
    #[arg(long)]
    target: Option<String>,
    /// Its admin token (or set NOTIFY_ADMIN_TOKEN).
    #[arg(long, env = "NOTIFY_ADMIN_TOKEN", requires = "target")]
    admin_token: Option<String>,
    /// Its process id, to read its CPU time and memory.
    #[arg(long, requires = "target")]
    server_pid: Option<u32>,
    /// Run the in-process server on a hub shared through this (loopback)
    /// Redis instead of in memory.
    #[arg(long, conflicts_with_all = ["target", "server_bin"])]
    redis: Option<String>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// With --server-bin on a machine of two cores or more: the server on
    /// core 0, the harness on core 1, so that neither takes the other's CPU
    /// (scale always does this).
    #[arg(long, requires = "server_bin")]
    pin: bool,

    /// custom: clients per transport (N), 20 unless given; scale: as many
    /// as the file-descriptor limit allows, up to 15 000, unless given.
    #[arg(long)]
    clients: Option<usize>,
    /// custom: notifications (M).
    #[arg(long, default_value_t = 20)]
    notifications: u64,
    /// custom: publishes per second (R); 0 for a burst.
    #[arg(long, default_value_t = 2.0)]
    rate: f64,
    /// custom: short-poll interval in seconds (I).
    #[arg(long, default_value_t = 2.0)]
    interval: f64,
    /// custom: long-poll timeout in whole seconds (T).
    #[arg(long, default_value_t = 25)]
    timeout: u64,
    /// The transports to run, e.g. `websocket,websocket-plain`: for custom
    /// (default all but the plain versions), scale (default websocket, sse,
    /// long-poll), or instead of a named scenario's.
    #[arg(long, value_delimiter = ',')]
    transports: Vec<Transport>,
    /// custom: cut every client's connection at random, on average every
    /// this many seconds (chaos mode).
    #[arg(long)]
    chaos: Option<f64>,
    /// custom: a round-trip delay on each client's connection, e.g. `100ms`
    /// (half each way; publishing stays direct).
    #[arg(long, value_parser = humantime::parse_duration)]
    rtt: Option<Duration>,
    /// custom: clients ask for compression as browsers do (WebSocket
    /// clients offer permessage-deflate).
    #[arg(long)]
    compress: bool,
    /// Every client request carries the headers Chromium sends (its
    /// User-Agent, client hints, Sec-Fetch-*, Referer or Origin,
    /// Accept-Language: some 400 bytes), where by default a client sends
    /// little more than `Host`; `Accept-Encoding` stays with --compress.
    #[arg(long)]
    browser_headers: bool,
    /// custom: what the notifications say, to see what compression makes
    /// of it.
    #[arg(long, value_enum, default_value = "id-only")]
    texts: notify_harness::Texts,
    /// custom: run the wave twice on one server and check that its memory,
    /// once settled, returns to where it idled between the waves (needs a
    /// server process: --server-bin or --server-pid).
    #[arg(long)]
    leak_check: bool,
}

/// Bounds on custom runs, so a typo cannot start an unbounded load.
const MAX_CLIENTS: usize = 5_000;
const MAX_NOTIFICATIONS: u64 = 100_000;

fn main() -> anyhow::Result<()> {
    // The scale scenario's floors are this binary in another mode, started
    // as child processes so that their CPU and memory are their own.
    match std::env::args().nth(1).as_deref() {
        Some("floor-fanout") => return notify_harness::floor::serve_fan_out_floor(),
        Some("floor-hold") => return notify_harness::floor::serve_hold_floor(),
        _ => {}
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(harness(Args::parse()))
}

async fn harness(args: Args) -> anyhow::Result<()> {
    if args.browser_headers {
        println!("clients send a browser's request headers (--browser-headers)");
    }
    if args.scenario == "scale" {
        return run_scale(&args).await;
    }
    if args.scenario == "timeline" {
        return run_timeline(&args).await;
    }
    let scenario = match scenarios::named(&args.scenario) {
        Some(scenario) => scenario
            .with_transports(&args.transports)
            .with_browser_headers(args.browser_headers),
        None if args.scenario == "custom" => custom(&args)?,
        None => bail!(
            "no scenario {:?}; try one of {:?} or custom",
            args.scenario,
            scenarios::NAMES
        ),
    };
    let target = match (&args.target, &args.server_bin) {
        (Some(url), _) => Target::url(
            url,
            args.admin_token
                .clone()
                .context("--target needs --admin-token or NOTIFY_ADMIN_TOKEN")?,
            args.server_pid,
        )?,
        (None, Some(binary)) => Target::Process {
            binary: binary.clone(),
            pin: args.pin.then_some(0),
        },
        (None, None) => Target::InProcess {
            redis: args.redis.clone(),
        },
    };

    if args.pin {
        scale::pin_self_to(1)?;
    }
    println!("{}: {}", scenario.name, scenario.description);
    let mut reports = Vec::new();
    for config in &scenario.runs {
        let report = notify_harness::run(config, &target, !args.quiet).await?;
        println!("{}", report.table());
        reports.push(report);
    }

    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json = args.out.join(format!("{}.json", scenario.name));
    std::fs::write(&json, serde_json::to_string_pretty(&reports)?)?;
    let page = args.out.join(format!("{}.html", scenario.name));
    std::fs::write(
        &page,
        html::render(scenario.name, scenario.description, &reports)?,
    )?;
    let markdown: Vec<String> = reports.iter().map(|r| r.markdown()).collect();
    std::fs::write(
        args.out.join(format!("{}.md", scenario.name)),
        markdown.join("\n"),
    )?;
    for (name, svg) in html::figures(scenario.name, &reports)? {
        std::fs::write(args.out.join(name), svg)?;
    }
    println!(
        "wrote {}, {} and the charts as SVG in {}",
        json.display(),
        page.display(),
        args.out.display()
    );

    let failures: Vec<String> = reports
        .iter()
        .filter_map(|r| r.verify().err())
        .map(|e| e.to_string())
        .collect();
    if !failures.is_empty() {
        for failure in &failures {
            eprintln!("{failure}");
        }
        bail!(
            "{} run(s) lost, repeated or reordered notifications",
            failures.len()
        );
    }
    Ok(())
}

/// `scale`: the floors, then each transport with as many clients as fit.
async fn run_scale(args: &Args) -> anyhow::Result<()> {
    let server_bin = args.server_bin.clone().context(
        "scale measures a server process: pass --server-bin target/release/notify-server",
    )?;
    let mut config = scale::ScaleConfig::new(server_bin, args.clients)?;
    if !args.transports.is_empty() {
        config.transports = args.transports.clone();
    }
    println!(
        "scale: {} clients per transport, one notification a second, next to the machine's floors",
        config.clients
    );
    let report = scale::run(&config, !args.quiet).await?;
    for run in &report.runs {
        println!("{}", run.table());
    }
    println!("{}", report.table());
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let json = args.out.join("scale.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)?;
    std::fs::write(args.out.join("scale.md"), report.markdown())?;
    println!("wrote {} and scale.md", json.display());
    report.verify()
}

/// One client per technique on a link of `--rtt` (200 ms unless given),
/// every chunk timed: a timing diagram each, as SVG.
async fn run_timeline(args: &Args) -> anyhow::Result<()> {
    use notify_harness::timeline;
    let target = match &args.server_bin {
        Some(binary) => Target::Process {
            binary: binary.clone(),
            pin: None,
        },
        None => Target::InProcess { redis: None },
    };
    let rtt = args.rtt.unwrap_or(Duration::from_millis(200));
    anyhow::ensure!(
        rtt >= Duration::from_millis(20) && rtt <= Duration::from_secs(1),
        "a timeline's --rtt must be between 20ms and 1s, to be seen and to fit"
    );
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    for technique in timeline::TECHNIQUES {
        let server = notify_harness::target::Server::start(&target, 1024).await?;
        let captured = timeline::capture(&server, technique, rtt).await;
        server.stop().await;
        let captured = captured?;
        let file = args.out.join(format!("timeline-{}.svg", technique.name()));
        std::fs::write(&file, timeline::svg(&captured))?;
        println!(
            "{}: {} chunks across the link, {} of {} notifications delivered, in {}",
            technique.name(),
            captured.arrows.len(),
            captured.delivered_ms.len(),
            captured.published_ms.len(),
            file.display()
        );
    }
    Ok(())
}

fn custom(args: &Args) -> anyhow::Result<Scenario> {
    let clients = args.clients.unwrap_or(20);
    if clients == 0 || clients > MAX_CLIENTS {
        bail!("--clients must be 1..={MAX_CLIENTS}");
    }
    if args.notifications == 0 || args.notifications > MAX_NOTIFICATIONS {
        bail!("--notifications must be 1..={MAX_NOTIFICATIONS}");
    }
    if args.rtt.is_some_and(|rtt| rtt > Duration::from_secs(10)) {
        bail!("--rtt must be at most 10s");
    }
    if !(1..=60).contains(&args.timeout) || args.interval <= 0.0 || args.rate < 0.0 {
        bail!("--timeout must be 1..=60, --interval and --rate positive");
    }
    let publish = if args.rate == 0.0 {
        Publish::Burst
    } else {
        Publish::Rate(args.rate)
    };
    Ok(Scenario {
        name: "custom",
        description: "A run described by flags.",
        runs: vec![RunConfig {
            name: "custom".into(),
            clients,
            transports: if args.transports.is_empty() {
                Transport::all_for(args.rtt.unwrap_or_default())
            } else {
                args.transports.clone()
            },
            poll_interval: Duration::from_secs_f64(args.interval),
            long_poll_timeout: Duration::from_secs(args.timeout),
            notifications: args.notifications,
            publish,
            drain: Duration::from_secs(args.timeout + 15),
            lossy: None,
            chaos: args.chaos.filter(|s| *s > 0.0).map(Duration::from_secs_f64),
            leak_check: args.leak_check,
            rtt: args.rtt.unwrap_or_default(),
            settle_memory: false,
            compress: args.compress,
            browser_headers: args.browser_headers,
            texts: args.texts,
        }],
    })
}
