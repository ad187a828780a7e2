//! The machine's floor for pushing one notification to N connections: the
//! same pre-encoded WebSocket frame written with plain non-blocking `write`
//! calls to N loopback sockets, on one thread, with no framework and no
//! async runtime, and read back whole on the other ends. No server can
//! deliver a notification to N clients on this machine faster than the
//! kernel moves these bytes, so every push figure is best read as a ratio to
//! this one, measured in the same run:
//!
//! ```text
//! cargo bench -p notify-benches --bench floor --bench transports
//! ```
//!
//! For N = 1, 100 and 1000, as in the transports bench.

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const SUBSCRIBERS: [usize; 3] = [1, 100, 1000];

/// A server-to-client text frame (unmasked, so the same bytes for every
/// client) around a typical notification.
fn frame() -> Vec<u8> {
    let json =
        br#"{"id":42,"text":"Maintenance at 22:00","published_at":"2026-11-24T21:30:00.123Z"}"#;
    assert!(json.len() < 126, "a one-byte length");
    let mut frame = vec![0x81, json.len() as u8];
    frame.extend_from_slice(json);
    frame
}

/// N connected loopback pairs, both ends non-blocking: (server side, client side).
fn pairs(n: usize) -> Vec<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("bound");
    (0..n)
        .map(|_| {
            let client = TcpStream::connect(addr).expect("connect loopback");
            let (server, _) = listener.accept().expect("accept");
            for end in [&server, &client] {
                end.set_nodelay(true).expect("nodelay");
                end.set_nonblocking(true).expect("non-blocking");
            }
            (server, client)
        })
        .collect()
}

/// Writes `bytes` whole to a non-blocking socket.
fn write_all(socket: &mut TcpStream, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        match socket.write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// Reads exactly `buf.len()` bytes from a non-blocking socket.
fn read_exact(socket: &mut TcpStream, buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        match socket.read(&mut buf[filled..]) {
            Ok(0) => panic!("the other end closed"),
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::hint::spin_loop(),
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn floor(c: &mut Criterion) {
    #[cfg(unix)]
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let frame = frame();
    let mut group = c.benchmark_group("floor_one_notification");
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
    for n in SUBSCRIBERS {
        let mut sockets = pairs(n);
        let mut received = vec![0u8; frame.len()];
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("write", n), &n, |b, _| {
            b.iter_custom(|iterations| {
                let start = Instant::now();
                for _ in 0..iterations {
                    for (server, _) in sockets.iter_mut() {
                        write_all(server, &frame);
                    }
                    for (_, client) in sockets.iter_mut() {
                        read_exact(client, &mut received);
                    }
                }
                start.elapsed()
            })
        });
        assert_eq!(received, frame, "every client read the frame whole");
    }
    group.finish();
}

criterion_group!(benches, floor);
criterion_main!(benches);
