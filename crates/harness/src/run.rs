//! One measured run: start the server, connect N clients of each transport,
//! publish M notifications on a fixed schedule, wait until every client has
//! them all (or a deadline passes), stop, and count.
//!
//! Publishing is open loop: notification `seq` is scheduled at
//! `start + seq / rate` whatever happens, and its latency is measured from
//! that instant, so a server (or publisher) that stalls is charged for the
//! stall instead of quietly publishing later.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use notify_client::{Counters, Cursor, HttpConnection};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Transport;
use crate::clients::{self, ClientContext, ClientOutcome, RunShared, TransportStats};
use crate::config::{Publish, RunConfig};
use crate::report::{MemorySettle, RunReport, ServerLoad, TransportReport};
use crate::target::{Server, Target};

/// Runs one measured run against `target`.
pub async fn run(config: &RunConfig, target: &Target, progress: bool) -> anyhow::Result<RunReport> {
    // Thousands of sockets: as many file descriptors as the system allows.
    #[cfg(unix)]
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    if config.notifications == 0 || config.clients == 0 {
        bail!("a run needs at least one client and one notification");
    }
    if !config.rtt.is_zero() && config.transports.contains(&Transport::WebTransport) {
        bail!(
            "--rtt delays TCP connections only: WebTransport runs on UDP; leave it out of --transports"
        );
    }
    let server = Server::start(target, (config.notifications as usize).max(1024)).await?;
    let result = if config.leak_check {
        measure_for_leaks(config, target, &server, progress).await
    } else {
        measure(config, target, &server, progress).await
    };
    server.stop().await;
    result
}

/// A warm-up wave, then the measured one, with the server's settled memory
/// read before and after it. A failed warm-up is the run's report.
async fn measure_for_leaks(
    config: &RunConfig,
    target: &Target,
    server: &Server,
    progress: bool,
) -> anyhow::Result<RunReport> {
    let warm_up = measure(config, target, server, progress).await?;
    if warm_up.verify().is_err() {
        return Ok(warm_up);
    }
    let idle_before = settled_rss(server, progress).await;
    let mut report = measure(config, target, server, progress).await?;
    if let Some(idle_before_kib) = idle_before
        && let Some(settled_after_kib) = settled_rss(server, progress).await
    {
        report.memory = Some(MemorySettle {
            idle_before_kib,
            settled_after_kib,
        });
    }
    Ok(report)
}

/// The server process's resident memory once it has stopped falling (an
/// allocator hands freed memory back over seconds), or `None` when the
/// server is not a process the harness can read.
async fn settled_rss(server: &Server, progress: bool) -> Option<u64> {
    settled(|| server.usage().map(|u| u.rss_kib), progress).await
}

/// A process's resident memory once it has stopped falling: the lowest
/// reading, taken when no lower one came for a few seconds. (The server's
/// allocator hands freed pages back after a second; see its `main.rs`.)
pub(crate) async fn settled(rss_kib: impl Fn() -> Option<u64>, progress: bool) -> Option<u64> {
    const STEADY: Duration = Duration::from_secs(4);
    const LIMIT: Duration = Duration::from_secs(45);
    let spinner = if progress {
        ProgressBar::new_spinner().with_message("waiting for memory to settle")
    } else {
        ProgressBar::hidden()
    };
    let started = Instant::now();
    let mut lowest = rss_kib()?;
    let mut lowest_at = started;
    while lowest_at.elapsed() < STEADY && started.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        spinner.tick();
        let now = rss_kib()?;
        if now < lowest {
            lowest = now;
            lowest_at = Instant::now();
        }
    }
    spinner.finish_and_clear();
    Some(lowest)
}

/// `notify_server_tasks` from the server's `/metrics`, or `None` where it
/// has none (a transport's server run alone).
async fn server_tasks(http: &mut HttpConnection) -> Option<u64> {
    let (status, body) = http.get("/metrics").await.ok()?;
    if !status.is_success() {
        return None;
    }
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find_map(|line| line.strip_prefix("notify_server_tasks ")?.parse().ok())
}

async fn measure(
    config: &RunConfig,
    target: &Target,
    server: &Server,
    progress: bool,
) -> anyhow::Result<RunReport> {
    let start_cursor = current_cursor(server).await?;
    // A random tag tells this run's notifications from any others.
    let tag = format!("harness-{}", notify_hub::Epoch::random());
    let rate = match config.publish {
        Publish::Rate(rate) => Some(rate),
        Publish::Burst => None,
    };
    let shared = Arc::new(RunShared {
        texts: config.texts,
        compress: config.compress,
        ..RunShared::new(tag, config.notifications, rate)
    });
    let stop = CancellationToken::new();
    let stats: Vec<(Transport, Arc<TransportStats>)> = config
        .transports
        .iter()
        .map(|t| {
            let stats = TransportStats {
                counters: Arc::new(Counters {
                    browser_headers: config.browser_headers,
                    ..Counters::with_rtt(config.rtt)
                }),
                ..TransportStats::default()
            };
            (*t, Arc::new(stats))
        })
        .collect();

    // One connection for every scrape, so that it counts the same each time.
    let mut scraper = HttpConnection::new(server.addr, None);
    let tasks_before = server_tasks(&mut scraper).await;
    let usage_before = server.usage();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (transport, stats) in &stats {
        for index in 0..config.clients {
            let ctx = ClientContext {
                addr: server.addr,
                webtransport: server.webtransport,
                stats: stats.clone(),
                run: shared.clone(),
                start: start_cursor.clone(),
                stop: stop.clone(),
                phase: index as f64 / config.clients as f64,
                lossy: config.lossy == Some(*transport) && index == 0,
                chaos: config
                    .chaos
                    .map(|mean| clients::Chaos::new(mean, (tasks.len() as u64) + 1)),
            };
            tasks.push(tokio::spawn(run_client(*transport, ctx, config.clone())));
        }
    }
    let total_clients = tasks.len();
    wait_until(
        progress,
        "connecting",
        total_clients as u64,
        connect_limit(total_clients),
        || shared.ready.load(Ordering::Relaxed) as u64,
    )
    .await
    .context("clients did not all connect")?;
    // What a client sent last to become ready (Socket.IO's upgrade packet)
    // is still one transit from the server over a slow link: let it land,
    // so that the run measures the steady state.
    tokio::time::sleep(config.rtt).await;
    let connected_kib = if config.settle_memory {
        settled_rss(server, progress).await
    } else {
        server.usage().map(|u| u.rss_kib)
    };
    let connected = server.usage();

    let spread = publish_all(config, server, &shared, progress).await?;
    let deadline = config.drain;
    let complete = wait_until(
        progress,
        "delivering",
        total_clients as u64,
        deadline,
        || shared.complete.load(Ordering::Relaxed) as u64,
    )
    .await;
    let delivered = server.usage();
    stop.cancel();
    let duration = started.elapsed();
    let mut outcomes: Vec<ClientOutcome> = Vec::with_capacity(total_clients);
    for task in tasks {
        outcomes.push(task.await?);
    }
    // Once every client has hung up, the server must hold nothing for them.
    let mut leftover_tasks = None;
    if let Some(before) = tasks_before {
        let settle = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(now) = server_tasks(&mut scraper).await {
                leftover_tasks = Some(now.saturating_sub(before));
            }
            if leftover_tasks == Some(0) || Instant::now() >= settle {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        leftover_tasks.context("the server's /metrics stopped answering")?;
    }
    let usage = match (usage_before, server.usage()) {
        (Some(before), Some(after)) => Some(crate::target::ProcessUsage {
            cpu_seconds: after.cpu_seconds - before.cpu_seconds,
            ..after
        }),
        _ => None,
    };

    let transports = stats
        .iter()
        .map(|(transport, stats)| {
            let mine: Vec<&ClientOutcome> = outcomes
                .iter()
                .filter(|o| o.transport == *transport)
                .collect();
            TransportReport::build(*transport, config, (duration, spread), stats, &mine)
        })
        .collect();
    let mut report = RunReport::new(config, target.describe(), duration, transports, usage);
    if complete.is_err() {
        report.incomplete = true;
    }
    report.leftover_server_tasks = leftover_tasks;
    if let (Some(before), Some(connected_kib), Some(connected), Some(delivered)) =
        (usage_before, connected_kib, connected, delivered)
    {
        report.load = Some(ServerLoad {
            before_kib: before.rss_kib,
            connected_kib,
            connections: total_clients,
            delivering_cpu_s: delivered.cpu_seconds - connected.cpu_seconds,
        });
    }
    Ok(report)
}

/// How long clients may take to connect: half a minute, or four
/// milliseconds each for more than 7 500 (a server that allocates large
/// buffers per connection, as the plain WebSocket does, takes longer to
/// accept fifteen thousand on one core).
fn connect_limit(clients: usize) -> Duration {
    Duration::from_secs(30).max(Duration::from_millis(4 * clients as u64))
}

async fn run_client(transport: Transport, ctx: ClientContext, config: RunConfig) -> ClientOutcome {
    match transport {
        Transport::ShortPoll => clients::short_poll::run(ctx, config.poll_interval).await,
        Transport::LongPoll | Transport::LongPollPlain => {
            clients::long_poll::run(ctx, transport, config.long_poll_timeout).await
        }
        Transport::WebSocket | Transport::WebSocketPlain => {
            clients::websocket::run(ctx, transport).await
        }
        Transport::Sse | Transport::SsePlain => clients::sse::run(ctx, transport).await,
        Transport::SocketIoPolling
        | Transport::SocketIoPolling2x
        | Transport::SocketIoPolling1x => clients::socketio::run_polling(ctx, transport).await,
        Transport::SocketIo | Transport::SocketIoWebSocket => {
            clients::socketio::run(ctx, transport).await
        }
        Transport::WebTransport => clients::webtransport::run(ctx).await,
    }
}

/// Where the hub is now, so that clients start after any older history.
async fn current_cursor(server: &Server) -> anyhow::Result<Cursor> {
    let mut http = HttpConnection::new(server.addr, None);
    let answer = notify_client::poll(&mut http, Transport::ShortPoll.path())
        .await
        .context("the server does not answer short polls")?;
    Ok(Cursor::of(&answer))
}

/// Publishes every notification at its scheduled instant; answers how long
/// publishing took.
async fn publish_all(
    config: &RunConfig,
    server: &Server,
    shared: &RunShared,
    progress: bool,
) -> anyhow::Result<Duration> {
    let mut http = HttpConnection::new(server.addr, None);
    let bar = bar(progress, "publishing", config.notifications);
    let start = Instant::now();
    shared.start.set(start).expect("publishing starts once");
    for seq in 0..config.notifications {
        if let Some(at) = shared.scheduled(seq) {
            tokio::time::sleep_until(at).await;
        }
        let body = serde_json::json!({ "text": shared.text(seq) }).to_string();
        loop {
            let (status, answer) = http
                .post_json("/api/notifications", &server.token, body.clone())
                .await?;
            if status == http::StatusCode::TOO_MANY_REQUESTS {
                // Charged to latency: the schedule does not move.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            anyhow::ensure!(
                status.is_success(),
                "publish answered {status}: {}",
                String::from_utf8_lossy(&answer)
            );
            break;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    // From the first publish to the answer to the last: the spread a burst
    // scheduled in one instant really takes.
    Ok(start.elapsed())
}

/// Waits until `count()` reaches `target`, for at most `limit`.
async fn wait_until(
    progress: bool,
    what: &'static str,
    target: u64,
    limit: Duration,
    count: impl Fn() -> u64,
) -> anyhow::Result<()> {
    let bar = bar(progress, what, target);
    let deadline = Instant::now() + limit;
    loop {
        let now = count();
        bar.set_position(now);
        if now >= target {
            bar.finish_and_clear();
            return Ok(());
        }
        if Instant::now() >= deadline {
            bar.finish_and_clear();
            bail!("{what}: {now} of {target} after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn bar(progress: bool, what: &'static str, len: u64) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{prefix:>12} [{bar:40}] {pos}/{len} {elapsed}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(what);
    bar
}
