//! One client per technique, every chunk it sends and receives timed: the
//! timing diagrams of chapters 2 to 8, drawn from a real run of the server.
//!
//! Each technique gets the server to itself for a few seconds with one
//! client, on a link of `rtt` round trip (the harness's delaying relay,
//! `notify_client::Counters::logging`, which notes when each chunk left
//! one end and reached the other). Three notifications are published: one
//! alone, then two close together, closer than a round trip, which is where
//! long polling pays its extra transits. [`svg`] draws the client and the
//! server as two lanes, time running down, each chunk an arrow from the
//! moment it left to the moment it arrived, with its first line; each
//! publish is marked on the server's lane and each arrival on the
//! client's.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notify_client::{Counters, Cursor, HttpConnection, socketio, sse, websocket};
use notify_http::messages::{PollAnswer, Push};
use tokio::time::Instant;

use crate::Transport;
use crate::target::Server;

/// The techniques drawn, in the walkthrough's order.
pub const TECHNIQUES: [Technique; 5] = [
    Technique::ShortPoll,
    Technique::LongPoll,
    Technique::WebSocket,
    Technique::Sse,
    Technique::SocketIo,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Technique {
    ShortPoll,
    LongPoll,
    WebSocket,
    Sse,
    SocketIo,
}

impl Technique {
    /// Its name in the figure's file name.
    pub fn name(self) -> &'static str {
        match self {
            Technique::ShortPoll => "short-poll",
            Technique::LongPoll => "long-poll",
            Technique::WebSocket => "websocket",
            Technique::Sse => "sse",
            Technique::SocketIo => "socketio",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Technique::ShortPoll => "Short polling, every second",
            Technique::LongPoll => "Long polling",
            Technique::WebSocket => "WebSocket",
            Technique::Sse => "Server-Sent Events",
            Technique::SocketIo => "Socket.IO: the polling handshake, then the upgrade",
        }
    }
}

/// When the three notifications are published, from the client's start.
const PUBLISH_AT_MS: [u64; 3] = [900, 2_100, 2_150];
/// How long each technique is watched.
const WATCH: Duration = Duration::from_millis(3_200);
/// The short poll's interval.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// A chunk across the link, in milliseconds from the start.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrow {
    pub up: bool,
    pub left_ms: f64,
    pub arrived_ms: f64,
    pub bytes: usize,
    pub label: String,
}

/// What one technique's run looked like.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub technique: Technique,
    pub rtt: Duration,
    pub arrows: Vec<Arrow>,
    /// Each notification's id and when it was published.
    pub published_ms: Vec<(u64, f64)>,
    /// Each notification's id and when the client had it.
    pub delivered_ms: Vec<(u64, f64)>,
}

/// Runs one client of `technique` against `server` for a few seconds,
/// publishing three notifications, and returns what crossed the link.
pub async fn capture(
    server: &Server,
    technique: Technique,
    rtt: Duration,
) -> anyhow::Result<Timeline> {
    anyhow::ensure!(!rtt.is_zero(), "a timeline needs a round trip to draw");
    let counters = Arc::new(Counters::logging(rtt));
    let start = Instant::now();
    // Where the hub is now: the client starts there.
    let cursor = {
        let mut http = HttpConnection::new(server.addr, None);
        let (_, body) = http
            .get(&format!("{}?after=0", Transport::ShortPoll.path()))
            .await?;
        let now: PollAnswer = serde_json::from_slice(&body)?;
        Cursor {
            epoch: now.epoch,
            after: now.cursor,
        }
    };

    let publisher = {
        let addr = server.addr;
        let token = server.token.clone();
        tokio::spawn(async move {
            let mut http = HttpConnection::new(addr, None);
            let mut published = Vec::new();
            for (n, at) in PUBLISH_AT_MS.iter().enumerate() {
                tokio::time::sleep_until(start + Duration::from_millis(*at)).await;
                let sent = start.elapsed();
                let text = format!("Timeline notification {}", n + 1);
                let (status, body) = http
                    .post_json(
                        "/api/notifications",
                        &token,
                        serde_json::json!({ "text": text }).to_string(),
                    )
                    .await?;
                anyhow::ensure!(status.is_success(), "publishing answered {status}");
                let id = serde_json::from_slice::<serde_json::Value>(&body)?["id"]
                    .as_u64()
                    .context("the published notification's id")?;
                published.push((id, ms(sent)));
            }
            Ok::<_, anyhow::Error>(published)
        })
    };

    let mut delivered = Vec::new();
    let watching = watch(server, technique, &counters, &cursor, start, &mut delivered);
    let _ = tokio::time::timeout(WATCH, watching).await;
    let published_ms = publisher.await??;

    let crossings = counters
        .crossings
        .as_ref()
        .expect("logging counters")
        .lock()
        .expect("crossings lock")
        .clone();
    let arrows = crossings
        .into_iter()
        .filter(|c| c.left >= start)
        .map(|c| Arrow {
            up: c.up,
            left_ms: ms(c.left - start),
            arrived_ms: ms(c.arrived - start),
            bytes: c.bytes,
            label: label(&c.head, c.bytes),
        })
        .collect();
    Ok(Timeline {
        technique,
        rtt,
        arrows,
        published_ms,
        delivered_ms: delivered,
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The client of `technique`, noting when each notification reaches it,
/// until it is stopped from outside.
async fn watch(
    server: &Server,
    technique: Technique,
    counters: &Arc<Counters>,
    cursor: &Cursor,
    start: Instant,
    delivered: &mut Vec<(u64, f64)>,
) -> anyhow::Result<()> {
    let addr = server.addr;
    let mut note = |id: u64| delivered.push((id, ms(start.elapsed())));
    match technique {
        Technique::ShortPoll | Technique::LongPoll => {
            let path = if technique == Technique::ShortPoll {
                Transport::ShortPoll.path()
            } else {
                Transport::LongPoll.path()
            };
            let mut http = HttpConnection::new(addr, Some(counters.clone()));
            let mut after = cursor.after;
            loop {
                let query = Cursor {
                    epoch: cursor.epoch.clone(),
                    after,
                }
                .query();
                let (_, body) = http.get(&format!("{path}?{query}")).await?;
                let answer: PollAnswer = serde_json::from_slice(&body)?;
                for n in &answer.notifications {
                    note(n.id);
                }
                after = answer.cursor;
                if technique == Technique::ShortPoll {
                    tokio::time::sleep(POLL_EVERY).await;
                }
            }
        }
        Technique::WebSocket => {
            let path = format!("{}?{}", Transport::WebSocket.path(), cursor.query());
            let mut ws = websocket::connect(addr, &path, Some(counters.clone())).await?;
            while let Some(received) = websocket::next(&mut ws).await? {
                if let websocket::Received::Push(Push::Notification(n)) = received {
                    note(n.id);
                }
            }
            Ok(())
        }
        Technique::Sse => {
            let mut http = HttpConnection::new(addr, Some(counters.clone()));
            let path = format!("{}?{}", Transport::Sse.path(), cursor.query());
            let mut events = sse::open(&mut http, &path, None).await?;
            while let Some(event) = events.next_event().await? {
                if event.event == "message" {
                    let n: serde_json::Value = serde_json::from_str(&event.data)?;
                    if let Some(id) = n["id"].as_u64() {
                        note(id);
                    }
                }
            }
            Ok(())
        }
        Technique::SocketIo => {
            let mut io =
                socketio::connect_with_upgrade(addr, Some(cursor), Some(counters.clone())).await?;
            while let Some(packet) = io.next().await? {
                if let notify_http::messages::socketio::Packet::Event {
                    push: Push::Notification(n),
                    ..
                } = packet
                {
                    note(n.id);
                }
            }
            Ok(())
        }
    }
}

/// What a chunk is, in a few words: an HTTP request's or answer's first
/// line, an event stream's or an Engine.IO packet's start, or a WebSocket
/// frame with the start of its text.
fn label(head: &[u8], bytes: usize) -> String {
    let text = |b: &[u8]| -> String {
        let s = String::from_utf8_lossy(b);
        let line = s.lines().next().unwrap_or("").trim();
        shorten(line.trim_end_matches(" HTTP/1.1"), 44)
    };
    let starts = |p: &str| head.starts_with(p.as_bytes());
    if starts("GET ") || starts("POST ") {
        return format!("{} ({bytes} B)", text(head));
    }
    if starts("HTTP/1.1") {
        return format!("{} ({bytes} B)", text(head));
    }
    // A WebSocket frame: FIN and opcode, then the length; a client's frame
    // is masked, and its text is not shown.
    if let [first, second, rest @ ..] = head
        && first & 0x70 == 0
    {
        let opcode = first & 0x0F;
        let masked = second & 0x80 != 0;
        let kind = match opcode {
            0x1 => "text frame",
            0x2 => "binary frame",
            0x8 => "close frame",
            0x9 => "ping",
            0xA => "pong",
            _ => "",
        };
        if !kind.is_empty() {
            let len = usize::from(second & 0x7F);
            let payload = match len {
                126 => rest.get(2..),
                127 => rest.get(8..),
                _ => Some(rest),
            };
            return match (masked, opcode, payload) {
                (false, 0x1, Some(payload)) => format!("{kind}: {} ({bytes} B)", text(payload)),
                _ => format!("{kind} ({bytes} B)"),
            };
        }
    }
    format!("{} ({bytes} B)", text(head))
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The timeline as an SVG picture: the client's lane on the left, the
/// server's on the right, time running down.
pub fn svg(t: &Timeline) -> String {
    const WIDTH: f64 = 760.0;
    const TOP: f64 = 64.0;
    const PX_PER_MS: f64 = 0.2;
    const CLIENT_X: f64 = 170.0;
    const SERVER_X: f64 = 590.0;
    let end_ms = WATCH.as_millis() as f64;
    let height = TOP + end_ms * PX_PER_MS + 40.0;
    let y = |ms: f64| TOP + ms * PX_PER_MS;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(
        out,
        r#"<title>{}: one client, {} ms of round trip, three notifications</title>"#,
        escape(t.technique.title()),
        t.rtt.as_millis()
    );
    out.push_str(r##"<defs><marker id="head" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#333"/></marker></defs>"##);
    out.push('\n');
    out.push_str(r##"<rect width="100%" height="100%" fill="white"/>"##);
    out.push('\n');
    let _ = writeln!(
        out,
        r#"<text x="{}" y="22" font-size="14" font-weight="bold" text-anchor="middle">{} ({} ms round trip)</text>"#,
        WIDTH / 2.0,
        escape(t.technique.title()),
        t.rtt.as_millis()
    );
    for (x, name) in [(CLIENT_X, "client"), (SERVER_X, "server")] {
        let _ = writeln!(
            out,
            r##"<text x="{x}" y="{}" text-anchor="middle" font-weight="bold">{name}</text><line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#999" stroke-width="2"/>"##,
            TOP - 12.0,
            TOP,
            y(end_ms)
        );
    }
    // A tick every half second.
    let mut tick = 0.0;
    while tick <= end_ms {
        let _ = writeln!(
            out,
            r##"<text x="8" y="{:.1}" fill="#666">{:.1} s</text><line x1="44" y1="{:.1}" x2="{WIDTH}" y2="{:.1}" stroke="#eee"/>"##,
            y(tick) + 4.0,
            tick / 1000.0,
            y(tick),
            y(tick)
        );
        tick += 500.0;
    }
    // Each publish on the server's lane, words to its right; each arrival
    // on the client's, words to its left. Marks close in time have their
    // words one under the other.
    let lanes = [
        (
            &t.published_ms,
            SERVER_X,
            10.0,
            "start",
            "#c0392b",
            "published",
        ),
        (
            &t.delivered_ms,
            CLIENT_X,
            -10.0,
            "end",
            "#27ae60",
            "arrives",
        ),
    ];
    for (events, x, offset, anchor, colour, words) in lanes {
        let mut last_y = f64::MIN;
        for (id, at) in events {
            let text_y = (y(*at) + 4.0).max(last_y + 12.0);
            last_y = text_y;
            let _ = writeln!(
                out,
                r#"<circle cx="{x}" cy="{:.1}" r="5" fill="{colour}"/><text x="{}" y="{text_y:.1}" fill="{colour}" text-anchor="{anchor}">#{id} {words}</text>"#,
                y(*at),
                x + offset,
            );
        }
    }
    // Labels of arrows close in time go one under the other.
    let mut last_label_y = f64::MIN;
    for arrow in &t.arrows {
        let (x1, x2) = if arrow.up {
            (CLIENT_X, SERVER_X)
        } else {
            (SERVER_X, CLIENT_X)
        };
        let (y1, y2) = (y(arrow.left_ms), y(arrow.arrived_ms));
        let colour = if arrow.up { "#2c5d8f" } else { "#333" };
        let _ = writeln!(
            out,
            r#"<line x1="{x1}" y1="{y1:.1}" x2="{x2}" y2="{y2:.1}" stroke="{colour}" stroke-width="1.2" marker-end="url(#head)"/>"#
        );
        let mx = (x1 + x2) / 2.0;
        let my = ((y1 + y2) / 2.0 - 4.0).max(last_label_y + 12.0);
        last_label_y = my;
        let _ = writeln!(
            out,
            r#"<text x="{mx:.1}" y="{my:.1}" text-anchor="middle" fill="{colour}">{}</text>"#,
            escape(&arrow.label)
        );
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_named_by_what_they_carry() {
        assert_eq!(
            label(
                b"GET /api/long-poll?after=3&epoch=e HTTP/1.1\r\nhost: x\r\n",
                120
            ),
            "GET /api/long-poll?after=3&epoch=e (120 B)"
        );
        assert_eq!(
            label(b"HTTP/1.1 200 OK\r\ncontent-type: x", 300),
            "HTTP/1.1 200 OK (300 B)"
        );
        let frame = [&[0x81u8, 9][..], br#"{"id":7}x"#].concat();
        assert_eq!(label(&frame, 11), r#"text frame: {"id":7}x (11 B)"#);
        assert_eq!(label(&[0x8A, 0x80, 1, 2, 3, 4], 6), "pong (6 B)");
        assert_eq!(
            label(b"data: {\"id\":1}\n\n", 16),
            "data: {\"id\":1} (16 B)"
        );
    }

    #[test]
    fn the_picture_has_an_arrow_per_chunk_and_a_mark_per_event() {
        let t = Timeline {
            technique: Technique::LongPoll,
            rtt: Duration::from_millis(200),
            arrows: vec![
                Arrow {
                    up: true,
                    left_ms: 0.0,
                    arrived_ms: 100.0,
                    bytes: 90,
                    label: "GET /api/long-poll (90 B)".into(),
                },
                Arrow {
                    up: false,
                    left_ms: 900.0,
                    arrived_ms: 1000.0,
                    bytes: 300,
                    label: "HTTP/1.1 200 OK (300 B)".into(),
                },
            ],
            published_ms: vec![(1, 900.0)],
            delivered_ms: vec![(1, 1000.0)],
        };
        let picture = svg(&t);
        assert!(picture.starts_with("<svg"));
        assert_eq!(picture.matches("marker-end").count(), 2);
        assert!(picture.contains("#1 published") && picture.contains("#1 arrives"));
        assert!(picture.contains("GET /api/long-poll (90 B)"));
    }
}
