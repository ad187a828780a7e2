//! The lab's registry: which connections carry which pane of which lab
//! page, and what each pane's connections carried.
//!
//! A lab page tags every request of each pane with `lab=<page>.<pane>`, the
//! page part chosen at random ([`LabTag`]). The router files the connection
//! that carried a tagged request under that pane ([`Lab::attach`]) until it
//! carries one without; the connection's [`Tap`] (in `notify_http::tap`)
//! then counts the pane's bytes at the socket, and [`Lab::cut`] breaks the
//! pane's connections through their taps. It is bounded: [`MAX_PAGES`]
//! pages, [`MAX_PANES`] panes each, the least recently used page forgotten
//! first.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use notify_http::ApiError;
use notify_http::{Cut, PaneBytes, Tap};

/// Pages the lab keeps counts for at once.
pub const MAX_PAGES: usize = 256;
/// Panes one page may have.
pub const MAX_PANES: usize = 32;
/// Connections remembered per page (older ones are forgotten).
pub const MAX_CONNECTIONS_PER_PAGE: usize = 64;
const MAX_TAG_PART: usize = 64;

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
    connections: Vec<Weak<Tap>>,
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
        page.connections.retain(|tap| tap.strong_count() > 0);
        if !page
            .connections
            .iter()
            .any(|known| known.as_ptr() == Arc::as_ptr(tap))
        {
            if page.connections.len() >= MAX_CONNECTIONS_PER_PAGE {
                page.connections.remove(0);
            }
            page.connections.push(Arc::downgrade(tap));
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
        for tap in &page.connections {
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
    pub fn bytes(&self, page: &str) -> Vec<PaneTraffic> {
        let pages = self.pages.lock().expect("lab lock poisoned");
        pages.get(page).map_or_else(Vec::new, |page| {
            page.panes
                .iter()
                .map(|(name, bytes)| PaneTraffic {
                    pane: name.clone(),
                    to_browser: bytes.to_browser.load(Ordering::Relaxed),
                    from_browser: bytes.from_browser.load(Ordering::Relaxed),
                })
                .collect()
        })
    }
}

/// What one pane's connections carried, counted at the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneTraffic {
    pub pane: String,
    pub to_browser: u64,
    pub from_browser: u64,
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
            vec![PaneTraffic {
                pane: "sse".into(),
                to_browser: 0,
                from_browser: 10
            }]
        );
    }
}
