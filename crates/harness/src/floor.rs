//! The scale scenario's two floors, each this binary in another mode run as
//! a child process, so that its CPU and memory are its own:
//!
//! - `floor-fanout` ([`serve_fan_out_floor`]): accepts N loopback sockets
//!   with no framework and no runtime, and on each command writes one
//!   pre-encoded WebSocket frame to each with plain non-blocking `write`
//!   calls; the harness side ([`fan_out_floor`]) reads the frame on every
//!   socket and times the last one, as it times a notification.
//! - `floor-hold` ([`serve_hold_floor`]): a bare hyper HTTP/1.1 server whose
//!   handler never answers, holding one request on each of N connections;
//!   the harness side ([`hold_floor`]) reads its memory once settled.
//!
//! Parent and child speak one line at a time over the child's standard
//! input and output: the child says where it listens, then answers
//! commands (`count`, `send`, …).

use std::io::{BufRead, ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;

use crate::scale::{FanOutFloor, HoldFloor, ScaleConfig, descriptor_limit};
use crate::target::ProcessUsage;

/// A notification's frame as the server sends it, for the floor to send:
/// the same bytes in the floor process and in the harness that checks them.
pub(crate) fn floor_frame() -> Bytes {
    let n = notify_hub::Notification::new(
        1,
        "harness-0123456789abcdef 1".into(),
        std::time::UNIX_EPOCH + Duration::from_secs(1_795_555_800),
    );
    notify_http::messages::ws::text(n.json())
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
pub(crate) async fn fan_out_floor(
    config: &ScaleConfig,
    frame: &Bytes,
) -> anyhow::Result<FanOutFloor> {
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
pub(crate) async fn hold_floor(config: &ScaleConfig) -> anyhow::Result<HoldFloor> {
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
