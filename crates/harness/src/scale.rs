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

use std::io::{BufRead, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;

use crate::config::{Publish, RunConfig};
use crate::target::{ProcessUsage, Target};
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
fn descriptor_limit() -> u64 {
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
    let frame = floor_frame();
    let fan_out_floor = fan_out_floor(config, &frame).await?;
    let hold_floor = hold_floor(config).await?;
    let target = Target::Process {
        binary: config.server_bin.clone(),
        pin: config.pin.then_some(0),
    };
    let mut rows = Vec::new();
    let mut runs = Vec::new();
    for transport in &config.transports {
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
        };
        let report = crate::run(&run_config, &target, progress).await?;
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

/// A notification's frame as the server sends it, for the floor to send:
/// the same bytes in the floor process and in the harness that checks them.
fn floor_frame() -> Bytes {
    let n = notify_hub::Notification::new(
        1,
        "harness-0123456789abcdef 1".into(),
        std::time::UNIX_EPOCH + Duration::from_secs(1_795_555_800),
    );
    notify_http::messages::ws::text(n.json())
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

/// A floor process: this binary in one of its floor modes.
struct FloorProcess {
    child: Child,
    stdin: ChildStdin,
    lines: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    addr: SocketAddr,
    pid: u32,
}

impl FloorProcess {
    async fn start(mode: &str, pin: bool) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the harness binary")?;
        let mut command = if pin {
            let mut c = Command::new("taskset");
            c.args(["-c", "0"]).arg(exe);
            c
        } else {
            Command::new(exe)
        };
        let mut child = command
            .arg(mode)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the {mode} floor"))?;
        let stdin = child.stdin.take().context("floor stdin")?;
        let mut lines = BufReader::new(child.stdout.take().context("floor stdout")?).lines();
        let first = lines
            .next_line()
            .await?
            .context("the floor exited before listening")?;
        let addr = first
            .strip_prefix("listening on ")
            .context("the floor did not say where it listens")?
            .parse()?;
        let pid = child.id().context("floor pid")?;
        Ok(FloorProcess {
            child,
            stdin,
            lines,
            addr,
            pid,
        })
    }

    /// Sends a command line and returns the answer line.
    async fn ask(&mut self, command: &str) -> anyhow::Result<String> {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await?;
        self.stdin.flush().await?;
        self.lines
            .next_line()
            .await?
            .context("the floor process ended")
    }

    async fn wait_for_count(&mut self, n: usize) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let count: usize = self.ask("count").await?.trim().parse()?;
            if count >= n {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the floor holds {count} of {n} connections after a minute");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn usage(&self) -> anyhow::Result<ProcessUsage> {
        ProcessUsage::read(self.pid).context("reading the floor's CPU and memory")
    }

    async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

async fn connect_all(addr: SocketAddr, n: usize) -> anyhow::Result<Vec<tokio::net::TcpStream>> {
    crate::target::ensure_loopback(addr.ip())?;
    let mut sockets = Vec::with_capacity(n);
    for _ in 0..n {
        let socket = tokio::net::TcpStream::connect(addr).await?;
        socket.set_nodelay(true)?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// N sockets, `rounds` frames each, timed to the last read.
async fn fan_out_floor(config: &ScaleConfig, frame: &Bytes) -> anyhow::Result<FanOutFloor> {
    let rounds = config.notifications;
    let mut floor = FloorProcess::start("floor-fanout", config.pin).await?;
    let sockets = connect_all(floor.addr, config.clients).await?;
    floor.wait_for_count(config.clients).await?;
    let received = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::with_capacity(sockets.len());
    for mut socket in sockets {
        let received = received.clone();
        let expected = frame.clone();
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; expected.len()];
            for _ in 0..rounds {
                socket.read_exact(&mut buf).await?;
                anyhow::ensure!(buf == expected, "the floor's frame arrived whole");
                received.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(socket)
        }));
    }
    let before = floor.usage()?;
    let mut last_delivery_ms = Vec::new();
    for round in 1..=rounds {
        let started = Instant::now();
        floor.stdin.write_all(b"send\n").await?;
        floor.stdin.flush().await?;
        let target = config.clients * round as usize;
        let deadline = started + Duration::from_secs(30);
        while received.load(Ordering::Relaxed) < target {
            if Instant::now() > deadline {
                bail!("the floor's frame did not reach every socket");
            }
            if round < rounds
                && let Some(i) = readers.iter().position(|r| r.is_finished())
            {
                let ended = readers.swap_remove(i).await?;
                bail!("a floor socket stopped reading early: {:?}", ended.err());
            }
            tokio::task::yield_now().await;
        }
        last_delivery_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        let answer = floor.lines.next_line().await?.unwrap_or_default();
        anyhow::ensure!(answer == "sent", "the floor answered {answer:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let after = floor.usage()?;
    for reader in readers {
        reader.await??;
    }
    floor.stop().await;
    Ok(FanOutFloor {
        clients: config.clients,
        rounds,
        last_delivery_ms,
        cpu_us_per_delivery: (after.cpu_seconds - before.cpu_seconds) * 1e6
            / (config.clients as f64 * rounds as f64),
    })
}

/// N connections, each holding one request that is never answered.
async fn hold_floor(config: &ScaleConfig) -> anyhow::Result<HoldFloor> {
    let mut floor = FloorProcess::start("floor-hold", config.pin).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = floor.usage()?;
    let mut sockets = connect_all(floor.addr, config.clients).await?;
    let request = format!(
        "GET /api/sse HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        floor.addr
    );
    for socket in &mut sockets {
        socket.write_all(request.as_bytes()).await?;
    }
    floor.wait_for_count(config.clients).await?;
    // Settled the way the server's memory is.
    let held_kib = crate::run::settled(|| floor.usage().ok().map(|u| u.rss_kib), false)
        .await
        .context("reading the floor's memory")?;
    drop(sockets);
    floor.stop().await;
    Ok(HoldFloor {
        connections: config.clients,
        bytes_per_connection: held_kib.saturating_sub(before.rss_kib) as f64 * 1024.0
            / config.clients as f64,
    })
}

/// Reads commands on stdin and answers on stdout, for the harness.
fn serve_commands(mut on: impl FnMut(&str) -> Option<String>) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout();
    for line in stdin.lock().lines() {
        let line = line?;
        match on(line.trim()) {
            Some(answer) => {
                writeln!(stdout, "{answer}")?;
                stdout.flush()?;
            }
            None => break,
        }
    }
    Ok(())
}

fn announce(addr: SocketAddr) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {addr}")?;
    stdout.flush()?;
    Ok(())
}

/// `notify-harness floor-fanout`: accepts loopback connections; on `send`,
/// writes one frame to each with plain non-blocking writes, then answers
/// `sent`; on `count`, answers how many it holds.
pub fn serve_fan_out_floor() -> anyhow::Result<()> {
    let _ = descriptor_limit();
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let sockets: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
    {
        let sockets = sockets.clone();
        let listener = listener.try_clone()?;
        std::thread::spawn(move || {
            for socket in listener.incoming().flatten() {
                if socket.set_nodelay(true).is_ok() && socket.set_nonblocking(true).is_ok() {
                    sockets.lock().expect("floor lock").push(socket);
                }
            }
        });
    }
    announce(listener.local_addr()?)?;
    let frame = floor_frame();
    serve_commands(|command| match command {
        "count" => Some(sockets.lock().expect("floor lock").len().to_string()),
        "send" => {
            let mut sockets = sockets.lock().expect("floor lock");
            for socket in sockets.iter_mut() {
                write_all(socket, &frame);
            }
            Some("sent".into())
        }
        _ => None,
    })
}

/// Writes `bytes` whole to a non-blocking socket, spinning while it is full.
fn write_all(socket: &mut TcpStream, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match socket.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(_) => return,
        }
    }
}

/// `notify-harness floor-hold`: a bare hyper HTTP/1.1 server whose handler
/// never answers; on `count`, answers how many requests it holds.
pub fn serve_hold_floor() -> anyhow::Result<()> {
    use http_body_util::Full;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;

    let _ = descriptor_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let held = Arc::new(AtomicUsize::new(0));
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
    announce(listener.local_addr()?)?;
    {
        let held = held.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let held = held.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |_request| {
                        held.fetch_add(1, Ordering::Relaxed);
                        std::future::pending::<
                            Result<hyper::Response<Full<Bytes>>, std::convert::Infallible>,
                        >()
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(socket), service)
                        .await;
                });
            }
        });
    }
    serve_commands(|command| match command {
        "count" => Some(held.load(Ordering::Relaxed).to_string()),
        _ => None,
    })
}
