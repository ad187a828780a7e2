//! The server under test: started in this process (the default), started
//! as a separate process (so its CPU time and memory can be read from
//! `/proc`), or one already running at a loopback address.
//!
//! Only loopback addresses are accepted as targets: the harness is a load
//! generator, and load is only ever sent to this machine.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::{Context, bail, ensure};
use notify_http::{AdminToken, AppContext, PublishLimits, ServeConfig, Shutdown};
use notify_hub::{Hub, HubConfig};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Where the server is.
#[derive(Debug, Clone)]
pub enum Target {
    /// The combined server, started inside the harness, with an in-memory
    /// hub or one shared through the Redis at this URL.
    InProcess { redis: Option<String> },
    /// The combined server binary, started as a child process, pinned to
    /// one core where `pin` names it.
    Process { binary: PathBuf, pin: Option<usize> },
    /// A server someone else started, at a loopback address.
    Url {
        addr: SocketAddr,
        token: String,
        pid: Option<u32>,
    },
}

impl Target {
    /// Parses `http://host:port` and refuses anything that is not loopback.
    pub fn url(url: &str, token: String, pid: Option<u32>) -> anyhow::Result<Self> {
        let uri: http::Uri = url.parse().with_context(|| format!("not a URL: {url}"))?;
        ensure!(
            uri.scheme_str() == Some("http"),
            "only http:// targets are supported"
        );
        let host = uri.host().context("the URL has no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let addr = (host, port)
            .to_socket_addrs()?
            .next()
            .with_context(|| format!("{host} does not resolve"))?;
        ensure_loopback(addr.ip())?;
        Ok(Target::Url { addr, token, pid })
    }

    pub fn describe(&self) -> String {
        match self {
            Target::InProcess { redis: None } => "in-process combined server, in-memory hub".into(),
            Target::InProcess { redis: Some(url) } => {
                format!("in-process combined server, Redis hub at {url}")
            }
            Target::Process { binary, pin: None } => {
                format!("{} (child process)", binary.display())
            }
            Target::Process {
                binary,
                pin: Some(core),
            } => format!("{} (child process on core {core})", binary.display()),
            Target::Url { addr, .. } => format!("http://{addr}"),
        }
    }
}

pub fn ensure_loopback(ip: IpAddr) -> anyhow::Result<()> {
    if !ip.is_loopback() {
        bail!(
            "{ip} is not a loopback address: the harness only sends load to this machine (127.0.0.0/8, ::1)"
        );
    }
    Ok(())
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    pub addr: SocketAddr,
    pub token: String,
    pub pid: Option<u32>,
    /// Where it accepts WebTransport sessions, and its certificate's
    /// SHA-256: the harness asks the servers it starts to serve it.
    pub webtransport: Option<(SocketAddr, [u8; 32])>,
    owned: Owned,
}

#[derive(Debug)]
enum Owned {
    InProcess(Shutdown),
    Child(Child),
    Nothing,
}

const HARNESS_TOKEN: &str = "harness-admin-token";

/// Publishing is limited by rate in production; a load run is the one place
/// where the publisher must not be the bottleneck.
const UNLIMITED: u32 = 1_000_000;

impl Server {
    pub async fn start(target: &Target, history: usize) -> anyhow::Result<Self> {
        match target {
            Target::InProcess { redis } => {
                let config = HubConfig {
                    history,
                    ..HubConfig::default()
                };
                let hub = match redis {
                    Some(url) => {
                        let uri: http::Uri = url.parse().context("not a Redis URL")?;
                        let host = uri.host().context("the Redis URL has no host")?;
                        let addr = (host, uri.port_u16().unwrap_or(6379))
                            .to_socket_addrs()?
                            .next()
                            .context("the Redis host does not resolve")?;
                        ensure_loopback(addr.ip())?;
                        // A fresh prefix: each run its own history.
                        let prefix = format!("harness-{}", notify_hub::Epoch::random());
                        Hub::redis(url, &prefix, config).await?
                    }
                    None => Hub::in_memory(config),
                };
                let unlimited = NonZeroU32::new(UNLIMITED).expect("non-zero");
                let limits = PublishLimits {
                    rate_per_second: unlimited,
                    burst: unlimited,
                    ..PublishLimits::for_text_limit(hub.config().max_text_bytes)
                };
                let serve = ServeConfig {
                    max_connections: 100_000,
                    max_connections_per_ip: 100_000,
                    ..ServeConfig::default()
                };
                let mut ctx = AppContext::new(
                    hub,
                    AdminToken::resolve(None, Some(HARNESS_TOKEN.into())),
                    limits,
                    serve,
                );
                let listener = notify_http::bind_listener(([127, 0, 0, 1], 0).into()).await?;
                let addr = listener.local_addr()?;
                ctx.local_addr = Some(addr);
                let config = notify_server::TransportConfig {
                    webtransport_tls: Some(notify_http::Tls::self_signed()?),
                    ..notify_server::TransportConfig::default()
                };
                let (transports, route) = notify_server::router(&ctx, config);
                let webtransport = transports
                    .webtransport
                    .as_ref()
                    .and_then(|wt| Some((wt.local_addr(), wt.certificate_hash()?)));
                tokio::spawn(notify_http::serve(
                    listener,
                    ctx.serve.clone(),
                    ctx.shutdown.clone(),
                    route,
                ));
                Ok(Server {
                    addr,
                    token: HARNESS_TOKEN.into(),
                    pid: None,
                    webtransport,
                    owned: Owned::InProcess(ctx.shutdown),
                })
            }
            Target::Process { binary, pin } => {
                let mut command = match pin {
                    Some(core) => {
                        // taskset executes the server in its own place, so
                        // the child's pid is the server's.
                        let mut c = Command::new("taskset");
                        c.args(["-c", &core.to_string()]).arg(binary);
                        c
                    }
                    None => Command::new(binary),
                };
                let mut child = command
                    .args(["--addr", "127.0.0.1:0", "--history", &history.to_string()])
                    .args([
                        "--publish-rate",
                        &UNLIMITED.to_string(),
                        "--publish-burst",
                        &UNLIMITED.to_string(),
                    ])
                    .args([
                        "--max-connections",
                        "100000",
                        "--max-connections-per-ip",
                        "100000",
                        "--webtransport-self-signed",
                    ])
                    .env("NOTIFY_ADMIN_TOKEN", HARNESS_TOKEN)
                    .env("RUST_LOG", "warn")
                    .stdout(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .with_context(|| format!("starting {}", binary.display()))?;
                let stdout = child.stdout.take().context("child stdout")?;
                let mut lines = BufReader::new(stdout).lines();
                let mut webtransport = None;
                let addr = loop {
                    let line = lines
                        .next_line()
                        .await?
                        .context("the server exited before listening")?;
                    if let Some(found) = webtransport_line(&line) {
                        webtransport = Some(found);
                    } else if let Some(rest) = line.split("listening on http://").nth(1) {
                        break rest.trim_end_matches('/').parse()?;
                    }
                };
                // Keep reading what it prints, so that its stdout stays open.
                tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
                let pid = child.id();
                Ok(Server {
                    addr,
                    token: HARNESS_TOKEN.into(),
                    pid,
                    webtransport,
                    owned: Owned::Child(child),
                })
            }
            Target::Url { addr, token, pid } => Ok(Server {
                addr: *addr,
                token: token.clone(),
                pid: *pid,
                webtransport: None,
                owned: Owned::Nothing,
            }),
        }
    }

    /// CPU seconds and memory of the server process, where it is one.
    pub fn usage(&self) -> Option<ProcessUsage> {
        ProcessUsage::read(self.pid?)
    }

    pub async fn stop(self) {
        match self.owned {
            Owned::InProcess(shutdown) => {
                shutdown.drain(std::time::Duration::from_secs(5)).await;
            }
            Owned::Child(mut child) => {
                let _ = child.kill().await;
            }
            Owned::Nothing => {}
        }
    }
}

/// The address and certificate hash in the line the combined server prints
/// when it serves WebTransport:
/// `webtransport listening on https://<addr>/api/webtransport (UDP); certificate SHA-256 <hex>`.
fn webtransport_line(line: &str) -> Option<(SocketAddr, [u8; 32])> {
    let rest = line.strip_prefix("webtransport listening on https://")?;
    let (addr, rest) = rest.split_once('/')?;
    let hex = rest.rsplit(' ').next()?;
    let mut hash = [0; 32];
    if hex.len() != 64 {
        return None;
    }
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some((addr.parse().ok()?, hash))
}

/// What `/proc` says of a process.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct ProcessUsage {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

impl ProcessUsage {
    /// The process's figures on Linux; `None` elsewhere, where the report
    /// leaves them out.
    #[cfg(not(target_os = "linux"))]
    pub fn read(_pid: u32) -> Option<Self> {
        None
    }

    #[cfg(target_os = "linux")]
    pub fn read(pid: u32) -> Option<Self> {
        let process = procfs::process::Process::new(pid as i32).ok()?;
        let stat = process.stat().ok()?;
        let status = process.status().ok()?;
        let ticks = procfs::ticks_per_second() as f64;
        Some(ProcessUsage {
            cpu_seconds: (stat.utime + stat.stime) as f64 / ticks,
            rss_kib: status.vmrss.unwrap_or(0),
            peak_rss_kib: status.vmhwm.unwrap_or(0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_are_accepted() {
        assert!(Target::url("http://127.0.0.1:8080", "t".into(), None).is_ok());
        assert!(Target::url("http://127.9.9.9:8080", "t".into(), None).is_ok());
        assert!(Target::url("http://[::1]:8080", "t".into(), None).is_ok());
        assert!(Target::url("http://localhost:8080", "t".into(), None).is_ok());
        for elsewhere in [
            "http://10.0.0.1:8080",
            "http://192.168.1.2",
            "http://8.8.8.8:80",
        ] {
            let err = Target::url(elsewhere, "t".into(), None).unwrap_err();
            assert!(
                err.to_string().contains("not a loopback address"),
                "{elsewhere}: {err}"
            );
        }
        assert!(Target::url("https://127.0.0.1", "t".into(), None).is_err());
    }
}
