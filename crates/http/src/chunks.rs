//! [`Chunks`]: the bytes of one body frame, as one buffer or several written
//! back to back without being joined.
//!
//! An SSE stream that finds several notifications ready hands hyper one
//! frame holding every event's shared bytes. hyper frames it as one HTTP/1.1
//! chunk and gives each buffer to the same `writev`, so a batch costs
//! neither a copy of any event nor a write per event.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes};

/// One or more buffers read in order, never empty ones.
#[derive(Debug, Default, Clone)]
pub struct Chunks {
    /// The buffer being read: empty only when everything was.
    first: Bytes,
    /// The buffers after it.
    rest: VecDeque<Bytes>,
    remaining: usize,
}

impl Chunks {
    /// Appends `bytes` after everything already held.
    pub fn push(&mut self, bytes: Bytes) {
        if bytes.is_empty() {
            return;
        }
        self.remaining += bytes.len();
        if self.first.is_empty() {
            self.first = bytes;
        } else {
            self.rest.push_back(bytes);
        }
    }

    /// How many buffers are held.
    pub fn buffers(&self) -> usize {
        usize::from(!self.first.is_empty()) + self.rest.len()
    }
}

impl From<Bytes> for Chunks {
    fn from(bytes: Bytes) -> Self {
        Chunks {
            remaining: bytes.len(),
            first: bytes,
            rest: VecDeque::new(),
        }
    }
}

impl From<&'static str> for Chunks {
    fn from(text: &'static str) -> Self {
        Bytes::from_static(text.as_bytes()).into()
    }
}

impl Buf for Chunks {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        &self.first
    }

    fn advance(&mut self, mut count: usize) {
        assert!(count <= self.remaining, "advanced past the end");
        self.remaining -= count;
        while count > 0 {
            let taken = count.min(self.first.len());
            self.first.advance(taken);
            count -= taken;
            if self.first.is_empty() {
                self.first = self.rest.pop_front().unwrap_or_default();
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let parts = std::iter::once(&self.first)
            .chain(&self.rest)
            .filter(|part| !part.is_empty());
        let mut filled = 0;
        for (slot, part) in dst.iter_mut().zip(parts) {
            *slot = IoSlice::new(part);
            filled += 1;
        }
        filled
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        if len <= self.first.len() {
            // Within the first buffer: shared, not copied.
            self.remaining -= len;
            let bytes = self.first.split_to(len);
            if self.first.is_empty() {
                self.first = self.rest.pop_front().unwrap_or_default();
            }
            return bytes;
        }
        let mut joined = bytes::BytesMut::with_capacity(len);
        joined.put(self.take(len));
        joined.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(parts: &[&'static str]) -> Chunks {
        let mut chunks = Chunks::default();
        for part in parts {
            chunks.push(Bytes::from_static(part.as_bytes()));
        }
        chunks
    }

    #[test]
    fn reads_as_the_buffers_back_to_back() {
        let mut chunks = of(&["ab", "", "cde", "f"]);
        assert_eq!(chunks.buffers(), 3, "empty buffers are not kept");
        assert_eq!(chunks.remaining(), 6);
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(chunks.chunks_vectored(&mut slices), 3);
        assert_eq!(&*slices[1], b"cde");
        chunks.advance(3);
        assert_eq!(chunks.chunk(), b"de");
        assert_eq!(chunks.copy_to_bytes(3), "def");
        assert_eq!(chunks.remaining(), 0);
        assert!(chunks.chunk().is_empty());
    }

    #[test]
    fn every_split_reads_the_same_bytes() {
        let whole = b"id: 1\ndata: {}\n\nid: 2\ndata: {}\n\n";
        for step in 1..=whole.len() {
            let mut chunks = of(&["id: 1\ndata: {}\n\n", "id: 2\ndata: {}\n\n"]);
            let mut read = Vec::new();
            while chunks.has_remaining() {
                let n = step.min(chunks.remaining());
                read.extend_from_slice(&chunks.copy_to_bytes(n));
            }
            assert_eq!(read, whole, "step {step}");
        }
    }
}
