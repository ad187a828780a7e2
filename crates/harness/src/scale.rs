//! The `scale` scenario: as many clients per transport as the machine's
//! file-descriptor limit allows, one notification at a time, and what that
//! costs the server next to two floors measured in the same run.
//!
//! - **The fan-out floor** (`notify-harness floor-fanout`, a child process
//!   of the harness): N loopback sockets accepted with no framework and no
//!   runtime; on each round one pre-encoded WebSocket frame is written to
//!   each with plain non-blocking `write` calls. The harness reads the frame
//!   on every socket and times the last one, exactly as it times the last
//!   delivery of a notification. No server can deliver one frame to N
//!   clients on this machine in less time or CPU.
//! - **The connection floor** (`notify-harness floor-hold`): a bare hyper
//!   HTTP/1.1 server whose handler never answers, holding one request on
//!   each of N connections. That is what any hyper server pays per open
//!   request before it does anything: the connection's task, hyper's
//!   per-connection state and its read buffer. An SSE stream or a held long
//!   poll is one such request and the transport's state on top.
//!
//! With two cores, the server and the floors run on core 0 and the harness
//! on core 1 (`taskset`), so that the clients do not take the server's CPU.
//! The floors' processes, both sides of them, are [`crate::floor`]'s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::config::{Publish, RunConfig};
use crate::floor;
use crate::target::Target;
use crate::{RunReport, Transport};

/// The most clients per transport a scale run opens, whatever the limit.
pub const MAX_CLIENTS: usize = 20_000;
/// Clients per transport by default: what a 2-core machine with a
/// descriptor limit of 20 000 holds beside the harness's own.
const DEFAULT_CLIENTS: usize = 15_000;
/// Descriptors kept back for everything that is not a client.
const SPARE_FDS: u64 = 500;

/// What a scale run measures, and against what.
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    pub server_bin: PathBuf,
    pub clients: usize,
    pub notifications: u64,
    pub transports: Vec<Transport>,
    /// Server and floors on core 0, harness on core 1.
    pub pin: bool,
}

impl ScaleConfig {
    /// The transports a notification feed is held open on, with as many
    /// clients as the descriptor limit allows (the harness holds one per
    /// client, and so does the server).
    pub fn new(server_bin: PathBuf, clients: Option<usize>) -> anyhow::Result<Self> {
        let limit = descriptor_limit();
        let fits = limit.saturating_sub(SPARE_FDS) as usize;
        let clients = match clients {
            Some(n) if n == 0 || n > MAX_CLIENTS => {
                bail!("--clients must be 1..={MAX_CLIENTS} for scale")
            }
            Some(n) if n > fits => bail!(
                "{n} clients need {} file descriptors; the limit here is {limit}",
                n as u64 + SPARE_FDS
            ),
            Some(n) => n,
            None => DEFAULT_CLIENTS.min(fits),
        };
        Ok(ScaleConfig {
            server_bin,
            clients,
            notifications: 5,
            transports: vec![Transport::WebSocket, Transport::Sse, Transport::LongPoll],
            pin: std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
                && Path::new("/usr/bin/taskset").exists(),
        })
    }
}

/// The soft limit on open files, raised to the hard limit first.
pub(crate) fn descriptor_limit() -> u64 {
    #[cfg(unix)]
    {
        rlimit::increase_nofile_limit(u64::MAX).unwrap_or(1024)
    }
    #[cfg(not(unix))]
    {
        1024
    }
}

/// The fan-out floor's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanOutFloor {
    pub clients: usize,
    pub rounds: u64,
    /// From the write command to the frame read on the last socket, per
    /// round, in milliseconds.
    pub last_delivery_ms: Vec<f64>,
    /// The floor process's CPU time per frame delivered.
    pub cpu_us_per_delivery: f64,
}

/// The connection floor's figure.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HoldFloor {
    pub connections: usize,
    pub bytes_per_connection: f64,
}

/// One transport's figures at scale.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleRow {
    pub transport: Transport,
    pub clients: usize,
    /// The slowest notification's last delivery (the run's largest latency).
    pub last_delivery_ms: f64,
    pub p99_ms: f64,
    pub cpu_us_per_delivery: f64,
    pub bytes_per_connection: f64,
    /// Every client had every notification, once and in order.
    pub exact: bool,
}

/// Everything a scale run measured, in one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScaleReport {
    pub clients: usize,
    pub pinned: bool,
    pub fan_out_floor: FanOutFloor,
    pub hold_floor: HoldFloor,
    pub rows: Vec<ScaleRow>,
    pub runs: Vec<RunReport>,
}

/// Runs the floors, then every transport with N clients.
pub async fn run(config: &ScaleConfig, progress: bool) -> anyhow::Result<ScaleReport> {
    let _ = descriptor_limit();
    if config.pin {
        pin_self_to(1)?;
    }
    let frame = floor::floor_frame();
    let fan_out_floor = floor::fan_out_floor(config, &frame).await?;
    let hold_floor = floor::hold_floor(config).await?;
    let target = Target::Process {
        binary: config.server_bin.clone(),
        pin: config.pin.then_some(0),
    };
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for (i, transport) in config.transports.iter().enumerate() {
        if i > 0 {
            wait_for_ports(config.clients).await;
        }
        let run_config = RunConfig {
            name: format!("scale {transport}"),
            clients: config.clients,
            transports: vec![*transport],
            poll_interval: Duration::from_secs(2),
            long_poll_timeout: Duration::from_secs(25),
            notifications: config.notifications,
            publish: Publish::Rate(1.0),
            drain: Duration::from_secs(30),
            lossy: None,
            chaos: None,
            leak_check: false,
            rtt: Duration::ZERO,
            settle_memory: true,
            compress: false,
            browser_headers: false,
            texts: crate::Texts::IdOnly,
        };
        let report = crate::run(&run_config, &target, progress)
            .await
            .with_context(|| run_config.name.clone())?;
        let t = &report.transports[0];
        let load = report
            .load
            .context("the server's CPU and memory could not be read")?;
        rows.push(ScaleRow {
            transport: *transport,
            clients: config.clients,
            last_delivery_ms: t.latency_ms.max,
            p99_ms: t.latency_ms.p99,
            cpu_us_per_delivery: load.delivering_cpu_s * 1e6 / t.delivered.max(1) as f64,
            bytes_per_connection: load.bytes_per_connection(),
            exact: report.verify().is_ok(),
        });
        runs.push(report);
    }
    Ok(ScaleReport {
        clients: config.clients,
        pinned: config.pin,
        fan_out_floor,
        hold_floor,
        rows,
        runs,
    })
}

impl ScaleReport {
    fn floor_last_ms(&self) -> f64 {
        self.fan_out_floor
            .last_delivery_ms
            .iter()
            .copied()
            .fold(0.0, f64::max)
    }

    /// The figures as rows of cells under a header, once for both the
    /// terminal table and the Markdown one.
    fn cells(&self) -> (Vec<&'static str>, Vec<Vec<String>>) {
        let floor_ms = self.floor_last_ms();
        let floor_cpu = self.fan_out_floor.cpu_us_per_delivery;
        let hold = self.hold_floor.bytes_per_connection;
        let header = vec![
            "",
            "clients",
            "last delivery ms",
            "÷ floor",
            "p99 ms",
            "CPU µs/delivery",
            "÷ floor",
            "bytes/connection",
            "÷ hyper holding a request",
            "exactly once, in order",
        ];
        let blank = String::new;
        let mut rows = vec![
            vec![
                "fan-out floor (plain writes)".to_string(),
                self.fan_out_floor.clients.to_string(),
                format!("{floor_ms:.1}"),
                "1".into(),
                blank(),
                format!("{floor_cpu:.2}"),
                "1".into(),
                blank(),
                blank(),
                blank(),
            ],
            vec![
                "connection floor (bare hyper)".to_string(),
                self.hold_floor.connections.to_string(),
                blank(),
                blank(),
                blank(),
                blank(),
                blank(),
                format!("{hold:.0}"),
                "1".into(),
                blank(),
            ],
        ];
        for row in &self.rows {
            rows.push(vec![
                row.transport.to_string(),
                row.clients.to_string(),
                format!("{:.1}", row.last_delivery_ms),
                ratio(row.last_delivery_ms, floor_ms),
                format!("{:.1}", row.p99_ms),
                format!("{:.2}", row.cpu_us_per_delivery),
                ratio(row.cpu_us_per_delivery, floor_cpu),
                format!("{:.0}", row.bytes_per_connection),
                ratio(row.bytes_per_connection, hold),
                if row.exact { "yes" } else { "NO" }.into(),
            ]);
        }
        (header, rows)
    }

    pub fn table(&self) -> String {
        let (header, rows) = self.cells();
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(header);
        for row in rows {
            table.add_row(row);
        }
        format!(
            "scale: {} clients per transport, one notification a second{}\n{table}",
            self.clients,
            if self.pinned {
                "; server and floors on core 0, harness on core 1"
            } else {
                ""
            }
        )
    }

    /// The same table in Markdown, for the docs.
    pub fn markdown(&self) -> String {
        let (header, rows) = self.cells();
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let header: Vec<String> = header.into_iter().map(String::from).collect();
        let mut out = line(&header);
        let rule: Vec<String> = (0..header.len())
            .map(|i| if i == 0 { "---" } else { "---:" }.to_string())
            .collect();
        out.push_str(&line(&rule));
        for row in &rows {
            out.push_str(&line(row));
        }
        out
    }

    /// `Err` if any transport lost, repeated or reordered a notification.
    pub fn verify(&self) -> anyhow::Result<()> {
        for run in &self.runs {
            run.verify()?;
        }
        Ok(())
    }
}

/// Waits, a minute and a quarter at most, until the loopback ports the last
/// run's clients left in TIME_WAIT (a minute, on the side that closed
/// first) leave room for `clients` new connections: two runs of fifteen
/// thousand WebSockets in a row would otherwise need more ports than the
/// range holds, and the second could not connect them all. Linux only; it
/// returns at once where it cannot tell.
async fn wait_for_ports(clients: usize) {
    let read = |path: &str| std::fs::read_to_string(path).ok();
    let free = || -> Option<usize> {
        let range = read("/proc/sys/net/ipv4/ip_local_port_range")?;
        let mut bounds = range.split_whitespace().map(|n| n.parse::<usize>().ok());
        let (low, high) = (bounds.next()??, bounds.next()??);
        let sockstat = read("/proc/net/sockstat")?;
        let tcp = sockstat.lines().find(|l| l.starts_with("TCP:"))?;
        let mut words = tcp.split_whitespace();
        words.find(|w| *w == "tw")?;
        let time_wait: usize = words.next()?.parse().ok()?;
        Some((high - low + 1).saturating_sub(time_wait))
    };
    let deadline = Instant::now() + Duration::from_secs(75);
    while let Some(free) = free() {
        if free >= clients + SPARE_FDS as usize || Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// `a ÷ b` to two places, or a dash where the floor read zero (a run too
/// small for the process clock's 10 ms ticks).
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "–".into()
    }
}

/// Pins every thread of this process to one core.
pub fn pin_self_to(core: usize) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string()])
        .arg(std::process::id().to_string())
        .stdout(Stdio::null())
        .status()
        .context("running taskset")?;
    anyhow::ensure!(status.success(), "taskset could not pin the harness");
    Ok(())
}
