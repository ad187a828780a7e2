//! Connection taps: what the lab needs to see of, and do to, the connections
//! of one browser pane.
//!
//! Every accepted socket is wrapped in a [`Tapped`] stream with a [`Tap`]
//! beside it (in each request's extensions). The tap does two things, both
//! at the socket, beneath hyper and the WebSocket library:
//!
//! - **Counts bytes** (over HTTP/1.1: an HTTP/2 connection carries every
//!   pane of a tab at once, so its bytes are no one pane's) written to the browser — status lines, headers, chunk
//!   framing, WebSocket frames, everything — into the [`PaneBytes`] of the
//!   pane whose request the connection carries now. (Bytes from the browser
//!   are the request heads the router sees, plus everything read after an
//!   upgrade, when the socket carries only that pane's frames.)
//! - **Breaks the connection the way a network does**: [`Cut::Drop`] resets
//!   it (no close frame, no final chunk: the browser sees the connection
//!   lost), [`Cut::Freeze`] makes the server go silent on it without closing
//!   — what it writes is thrown away and what arrives is ignored — which is
//!   what a dead server or a buffering proxy looks like from the browser. A
//!   frozen connection still notices its peer leaving, and ends after
//!   [`FREEZE_LIMIT`] at the latest, so nothing is left behind.
//!
//! [`Lab`] maps pane tags (`?lab=<page>.<pane>`, chosen at random by the lab
//! page) to the connections and byte counts of each pane. It is bounded:
//! [`MAX_PAGES`] pages, [`MAX_PANES`] panes each, the least recently used
//! page forgotten first.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::admission::ConnectionSlot;
use crate::error::ApiError;

/// Pages the lab keeps counts for at once.
pub const MAX_PAGES: usize = 256;
/// Panes one page may have.
pub const MAX_PANES: usize = 32;
/// Connections remembered per page (older ones are forgotten).
pub const MAX_CONNECTIONS_PER_PAGE: usize = 64;
/// The longest a frozen connection lives.
pub const FREEZE_LIMIT: Duration = Duration::from_secs(90);
const MAX_TAG_PART: usize = 64;

/// How to break a pane's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// A reset: the connection is gone at once, without a clean close.
    Drop,
    /// Silence: nothing more reaches the browser, and the connection stays.
    Freeze,
}

impl Cut {
    pub fn parse(raw: &str) -> Result<Cut, ApiError> {
        match raw {
            "drop" => Ok(Cut::Drop),
            "freeze" => Ok(Cut::Freeze),
            _ => Err(ApiError::BadQuery {
                param: "how",
                reason: "expected `drop` or `freeze`".into(),
            }),
        }
    }
}

const OPEN: u8 = 0;
const DROPPED: u8 = 1;
const FROZEN: u8 = 2;

/// Bytes one pane's connections carried, as the server counted them.
#[derive(Debug, Default)]
pub struct PaneBytes {
    /// Written to the browser.
    pub to_browser: AtomicU64,
    /// Read from the browser.
    pub from_browser: AtomicU64,
}

/// One connection's tap; shared by the stream and the requests on it. It is
/// also where the connection's kill switch and its slot among the open
/// connections live: one allocation per connection for all three, and the
/// slot is freed exactly when the last handle to the socket goes.
#[derive(Debug)]
pub struct Tap {
    state: AtomicU8,
    killed: AtomicBool,
    /// When the connection was frozen, in milliseconds after [`Tap::clock`]
    /// started (0: never).
    frozen_at_ms: AtomicU64,
    upgraded: AtomicBool,
    multiplexed: AtomicBool,
    /// Whether `pane` is set: every write asks, and a connection no lab
    /// pane tagged (nearly all of them) should not pay a lock for it.
    attached: AtomicBool,
    pane: Mutex<Option<Arc<PaneBytes>>>,
    /// Woken by a cut or a kill: a read waiting on the socket, or the
    /// connection's own watch for a kill ([`Tap::killed`]), both in the
    /// task that drives the socket.
    waker: AtomicWaker,
    slot: Option<ConnectionSlot>,
}

impl Tap {
    /// The tap of a new connection, holding its slot (`None` when the
    /// connection was refused one and answers 503).
    pub fn new(slot: Option<ConnectionSlot>) -> Arc<Self> {
        Arc::new(Tap {
            state: AtomicU8::new(OPEN),
            killed: AtomicBool::new(false),
            frozen_at_ms: AtomicU64::new(0),
            upgraded: AtomicBool::new(false),
            multiplexed: AtomicBool::new(false),
            attached: AtomicBool::new(false),
            pane: Mutex::new(None),
            waker: AtomicWaker::new(),
            slot,
        })
    }

    /// The connection's slot among the open connections.
    pub fn slot(&self) -> Option<&ConnectionSlot> {
        self.slot.as_ref()
    }

    /// Ends the connection's HTTP exchange at once ([`ConnectionKill`](crate::ConnectionKill)).
    pub fn kill(&self) {
        self.killed.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Resolves once the connection was killed.
    pub fn killed(&self) -> impl Future<Output = ()> + '_ {
        std::future::poll_fn(move |cx| {
            if self.killed.load(Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            if self.killed.load(Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }

    /// Breaks this connection now.
    pub fn cut(&self, how: Cut) {
        match how {
            Cut::Drop => {
                self.state.store(DROPPED, Ordering::Release);
                // An HTTP exchange ends with hyper's connection; an upgraded
                // socket ends when its task next touches the stream.
                self.kill();
            }
            Cut::Freeze => {
                let at = Tap::clock().elapsed().as_millis() as u64;
                self.frozen_at_ms.store(at.max(1), Ordering::Release);
                self.state.store(FROZEN, Ordering::Release);
            }
        }
        self.waker.wake();
    }

    /// The connection now carries a request of no pane: what follows on it
    /// is not counted, and cutting a pane leaves it alone. (A browser reuses
    /// connections across a page's requests; the lab's own request to cut
    /// a pane must not be cut with it.)
    pub fn detach(&self) {
        self.set_pane(None);
    }

    /// The connection is HTTP/2: every pane of a tab shares it, so its bytes
    /// belong to no one pane, and cutting any of them cuts it.
    pub fn mark_multiplexed(&self) {
        self.multiplexed.store(true, Ordering::Relaxed);
    }

    fn is_multiplexed(&self) -> bool {
        self.multiplexed.load(Ordering::Relaxed)
    }

    /// The connection now carries only one pane's WebSocket: count what it
    /// reads too.
    pub fn mark_upgraded(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
    }

    fn pane(&self) -> Option<Arc<PaneBytes>> {
        if !self.attached.load(Ordering::Relaxed) {
            return None;
        }
        self.pane.lock().expect("tap lock poisoned").clone()
    }

    fn set_pane(&self, pane: Option<Arc<PaneBytes>>) {
        let mut current = self.pane.lock().expect("tap lock poisoned");
        self.attached.store(pane.is_some(), Ordering::Relaxed);
        *current = pane;
    }

    fn is_pane(&self, pane: &Arc<PaneBytes>) -> bool {
        self.pane
            .lock()
            .expect("tap lock poisoned")
            .as_ref()
            .is_some_and(|p| Arc::ptr_eq(p, pane))
    }

    fn frozen_too_long(&self) -> bool {
        let at = self.frozen_at_ms.load(Ordering::Acquire);
        let now = Tap::clock().elapsed().as_millis() as u64;
        at != 0 && now.saturating_sub(at) > FREEZE_LIMIT.as_millis() as u64
    }

    /// The clock freezes are timed by: an instant as a number, so that the
    /// tap of every connection holds eight bytes for it, not a lock.
    fn clock() -> Instant {
        static START: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        *START.get_or_init(Instant::now)
    }
}

/// A TCP stream that counts and can be cut through its [`Tap`].
#[derive(Debug)]
pub struct Tapped {
    io: TcpStream,
    tap: Arc<Tap>,
}

impl Tapped {
    pub fn new(io: TcpStream, tap: Arc<Tap>) -> Self {
        Tapped { io, tap }
    }

    pub fn tap(&self) -> &Tap {
        &self.tap
    }

    /// In a frozen connection, reads what arrives and throws it away; ends
    /// the connection when the peer has gone or the freeze has lasted long
    /// enough.
    fn drain_frozen(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.tap.frozen_too_long() {
            return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
        }
        let mut scratch = [0u8; 512];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.io).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Poll::Ready(Ok(())) => continue,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => {
                    // A drop after the freeze must still wake this read.
                    self.tap.waker.register(cx.waker());
                    return Poll::Pending;
                }
            }
        }
    }

    fn dropped() -> io::Error {
        io::Error::new(io::ErrorKind::ConnectionReset, "cut by the lab")
    }
}

impl Drop for Tapped {
    fn drop(&mut self) {
        if self.tap.state.load(Ordering::Acquire) == DROPPED {
            // A reset, not an orderly close: what a lost network looks like.
            let _ = self.io.set_zero_linger();
        }
    }
}

impl AsyncRead for Tapped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.tap.state.load(Ordering::Acquire) {
            DROPPED => Poll::Ready(Err(Self::dropped())),
            // Ready with nothing read, once the peer left (or the freeze ran
            // out): the end of the stream.
            FROZEN => self.drain_frozen(cx),
            _ => {
                let before = buf.filled().len();
                let result = Pin::new(&mut self.io).poll_read(cx, buf);
                if result.is_pending() {
                    // A cut must wake a read that waits: register, then look
                    // again in case the cut came in between.
                    self.tap.waker.register(cx.waker());
                    if self.tap.state.load(Ordering::Acquire) != OPEN {
                        return self.poll_read(cx, buf);
                    }
                }
                if self.tap.upgraded.load(Ordering::Relaxed)
                    && let Some(pane) = self.tap.pane()
                {
                    let read = (buf.filled().len() - before) as u64;
                    pane.from_browser.fetch_add(read, Ordering::Relaxed);
                }
                result
            }
        }
    }
}

impl AsyncWrite for Tapped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.tap.state.load(Ordering::Acquire) {
            DROPPED => Poll::Ready(Err(Self::dropped())),
            FROZEN => match self.drain_frozen(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
                Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
                // Silence: the bytes vanish, as into a dead network.
                Poll::Pending => Poll::Ready(Ok(data.len())),
            },
            _ => {
                let result = Pin::new(&mut self.io).poll_write(cx, data);
                if let Poll::Ready(Ok(n)) = result {
                    self.count_written(n);
                }
                result
            }
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.tap.state.load(Ordering::Acquire) {
            OPEN => {
                let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
                if let Poll::Ready(Ok(n)) = result {
                    self.count_written(n);
                }
                result
            }
            _ => {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| b);
                self.poll_write(cx, first)
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tap.state.load(Ordering::Acquire) {
            DROPPED => Poll::Ready(Err(Self::dropped())),
            FROZEN => Poll::Ready(Ok(())),
            _ => Pin::new(&mut self.io).poll_flush(cx),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.tap.state.load(Ordering::Acquire) {
            DROPPED => Poll::Ready(Err(Self::dropped())),
            _ => Pin::new(&mut self.io).poll_shutdown(cx),
        }
    }
}

impl Tapped {
    fn count_written(&self, n: usize) {
        if self.tap.is_multiplexed() {
            return;
        }
        if let Some(pane) = self.tap.pane() {
            pane.to_browser.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
}

/// `<page>.<pane>`, from a request's `lab` parameter: a page the lab chose
/// at random and one of its panes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabTag {
    pub page: String,
    pub pane: Option<String>,
}

impl LabTag {
    /// `page` or `page.pane`, each 1 to 64 of `[A-Za-z0-9_-]`.
    pub fn parse(raw: &str) -> Result<LabTag, ApiError> {
        let (page, pane) = match raw.split_once('.') {
            Some((page, pane)) => (page, Some(pane)),
            None => (raw, None),
        };
        let valid = |part: &str| {
            !part.is_empty()
                && part.len() <= MAX_TAG_PART
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        };
        if !valid(page) || !pane.is_none_or(valid) {
            return Err(ApiError::BadQuery {
                param: "lab",
                reason: "expected `<page>.<pane>`, each 1 to 64 characters of [A-Za-z0-9_-]".into(),
            });
        }
        Ok(LabTag {
            page: page.to_owned(),
            pane: pane.map(str::to_owned),
        })
    }
}

/// The lab's pages: their panes' byte counts and connections.
#[derive(Debug, Default, Clone)]
pub struct Lab {
    pages: Arc<Mutex<HashMap<String, Page>>>,
}

#[derive(Debug)]
struct Page {
    panes: BTreeMap<String, Arc<PaneBytes>>,
    connections: Vec<(String, Weak<Tap>)>,
    used: Instant,
}

impl Lab {
    pub fn new() -> Self {
        Self::default()
    }

    /// Files the connection of `tap` under the pane of `tag` from now on,
    /// counting `request_bytes` (the request's head and body) as read from
    /// the browser. A tag without a pane detaches the connection.
    pub fn attach(&self, tap: &Arc<Tap>, tag: &LabTag, request_bytes: u64) {
        let Some(pane_name) = &tag.pane else {
            tap.set_pane(None);
            return;
        };
        let mut pages = self.pages.lock().expect("lab lock poisoned");
        if !pages.contains_key(&tag.page) && pages.len() >= MAX_PAGES {
            let oldest = pages
                .iter()
                .min_by_key(|(_, page)| page.used)
                .map(|(name, _)| name.clone());
            if let Some(oldest) = oldest {
                pages.remove(&oldest);
            }
        }
        let page = pages.entry(tag.page.clone()).or_insert_with(|| Page {
            panes: BTreeMap::new(),
            connections: Vec::new(),
            used: Instant::now(),
        });
        page.used = Instant::now();
        if !page.panes.contains_key(pane_name) && page.panes.len() >= MAX_PANES {
            tap.set_pane(None);
            return;
        }
        let bytes = page.panes.entry(pane_name.clone()).or_default().clone();
        if !tap.is_multiplexed() {
            bytes
                .from_browser
                .fetch_add(request_bytes, Ordering::Relaxed);
        }
        tap.set_pane(Some(bytes));
        page.connections.retain(|(_, tap)| tap.strong_count() > 0);
        if !page
            .connections
            .iter()
            .any(|(_, known)| known.as_ptr() == Arc::as_ptr(tap))
        {
            if page.connections.len() >= MAX_CONNECTIONS_PER_PAGE {
                page.connections.remove(0);
            }
            page.connections
                .push((pane_name.clone(), Arc::downgrade(tap)));
        }
    }

    /// Breaks every connection that carries the pane of `tag` now; answers
    /// how many.
    pub fn cut(&self, tag: &LabTag, how: Cut) -> usize {
        let Some(pane_name) = &tag.pane else { return 0 };
        let pages = self.pages.lock().expect("lab lock poisoned");
        let Some(page) = pages.get(&tag.page) else {
            return 0;
        };
        let Some(bytes) = page.panes.get(pane_name) else {
            return 0;
        };
        let mut cut = 0;
        for (_, tap) in &page.connections {
            if let Some(tap) = tap.upgrade()
                && (tap.is_pane(bytes) || tap.is_multiplexed())
            {
                tap.cut(how);
                cut += 1;
            }
        }
        cut
    }

    /// Each pane of `page` with the bytes it carried to and from the browser.
    pub fn bytes(&self, page: &str) -> Vec<(String, u64, u64)> {
        let pages = self.pages.lock().expect("lab lock poisoned");
        pages.get(page).map_or_else(Vec::new, |page| {
            page.panes
                .iter()
                .map(|(name, bytes)| {
                    (
                        name.clone(),
                        bytes.to_browser.load(Ordering::Relaxed),
                        bytes.from_browser.load(Ordering::Relaxed),
                    )
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_a_page_and_an_optional_pane() {
        assert_eq!(
            LabTag::parse("a1b2.sse").unwrap(),
            LabTag {
                page: "a1b2".into(),
                pane: Some("sse".into())
            }
        );
        assert_eq!(LabTag::parse("a1b2").unwrap().pane, None);
        for bad in ["", ".sse", "a1b2.", "a b.sse", "a.b.c", &"x".repeat(65)] {
            assert!(LabTag::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn pages_are_bounded_and_the_least_recently_used_goes_first() {
        let lab = Lab::new();
        for i in 0..=MAX_PAGES {
            let tap = Tap::new(None);
            lab.attach(&tap, &LabTag::parse(&format!("p{i}.sse")).unwrap(), 10);
        }
        assert!(lab.bytes("p0").is_empty(), "the oldest page was kept");
        assert_eq!(
            lab.bytes(&format!("p{MAX_PAGES}")),
            vec![("sse".into(), 0, 10)]
        );
    }
}
