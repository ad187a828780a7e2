//! One gzip stream for a whole event stream, built from pieces that need
//! no compressor per connection.
//!
//! A gzip member (RFC 1952) is a 10-byte header, one DEFLATE stream (RFC
//! 1951) and a trailer with the CRC-32 and length of what it held. A
//! DEFLATE stream is a sequence of blocks, and a block that refers to
//! nothing before it can follow any block that ends on a byte boundary. So
//! an SSE stream's body can be:
//!
//! - the [`HEADER`], once;
//! - for each notification, its event compressed alone and sync-flushed
//!   ([`segment`]): whole blocks, ending on a byte boundary. It is the same
//!   for every stream, so it is built once per notification and shared, as
//!   the plain event is;
//! - for what is each stream's own (the preamble, a reset, a keep-alive),
//!   a stored block ([`stored`]): the bytes as they are, behind a 5-byte
//!   header, no compressor at all;
//! - when the stream ends, a last empty block and the trailer ([`trailer`]).
//!
//! Each piece leaves as soon as it is made: the browser's decoder has all
//! it needs to hand up every event the moment its bytes arrive. What a
//! stream keeps is the running CRC-32 and length: [`Running`], 16 bytes.

use bytes::{BufMut, Bytes, BytesMut};
use flate2::Compression;

/// A gzip member's header: magic, DEFLATE, no flags, no time, no extra
/// flags, an unknown OS.
pub const HEADER: [u8; 10] = [0x1f, 0x8b, 0x08, 0x00, 0, 0, 0, 0, 0x00, 0xff];

/// The largest stored block.
const MAX_STORED: usize = 0xFFFF;

/// `data` compressed alone as DEFLATE blocks, sync-flushed so that it ends
/// on a byte boundary (with the flush's empty stored block, `00 00 ff ff`),
/// none of them the last.
pub fn segment(data: &[u8]) -> Bytes {
    // A fresh compressor does not refuse; if one did, the bytes go as they
    // are.
    let Some(out) = super::ws::sync_flushed(data, Compression::new(6)) else {
        return stored(data);
    };
    Bytes::from(out)
}

/// `data` as stored (uncompressed) blocks, none of them the last.
pub fn stored(data: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(stored_len(data.len()));
    for block in data.chunks(MAX_STORED) {
        put_stored(&mut out, block, false);
    }
    if data.is_empty() {
        put_stored(&mut out, &[], false);
    }
    out.freeze()
}

/// How long [`stored`] makes `len` bytes: five bytes of header per block.
pub fn stored_len(len: usize) -> usize {
    len + 5 * len.div_ceil(MAX_STORED).max(1)
}

/// One stored block: BFINAL and BTYPE 00 in the first byte (the rest of it
/// padding, since blocks here start on a byte boundary), then LEN and its
/// complement, little-endian, then the bytes.
fn put_stored(out: &mut BytesMut, block: &[u8], last: bool) {
    out.put_u8(u8::from(last));
    out.put_u16_le(block.len() as u16);
    out.put_u16_le(!(block.len() as u16));
    out.put_slice(block);
}

/// What a stream keeps to end its gzip member: the CRC-32 and the length of
/// everything it sent, uncompressed.
#[derive(Debug, Default, Clone)]
pub struct Running {
    crc: crc32fast::Hasher,
    len: u32,
}

impl Running {
    /// Counts `data`, sent (in whatever form) as part of the stream.
    pub fn sent(&mut self, data: &[u8]) {
        self.crc.update(data);
        self.len = self.len.wrapping_add(data.len() as u32);
    }

    /// The end of the stream: a last, empty stored block, the CRC-32 and
    /// the length modulo 2^32.
    pub fn trailer(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(13);
        put_stored(&mut out, &[], true);
        out.put_u32_le(self.crc.clone().finalize());
        out.put_u32_le(self.len);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_segments_and_stored_blocks_make_one_gzip_stream() {
        let events: [&[u8]; 4] = [
            b"retry: 2000\n\nevent: hello\ndata: {}\n\n",
            "id: e:1\ndata: {\"text\":\"通知 notification 通知 notification\"}\n\n".as_bytes(),
            b": keep-alive\n\n",
            b"id: e:2\ndata: {\"text\":\"again, again, again, again\"}\n\n",
        ];
        let mut running = Running::default();
        let mut body = HEADER.to_vec();
        for (i, event) in events.iter().enumerate() {
            running.sent(event);
            let piece = if i % 2 == 1 {
                segment(event)
            } else {
                stored(event)
            };
            body.extend_from_slice(&piece);
            // Everything so far decodes, without the end: each event can
            // leave at once.
            let mut so_far = Vec::new();
            let mut decoder = flate2::read::GzDecoder::new(&body[..]);
            let _ = std::io::Read::read_to_end(&mut decoder, &mut so_far);
            assert_eq!(so_far, events[..=i].concat(), "after event {i}");
        }
        body.extend_from_slice(&running.trailer());
        let mut whole = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut whole)
            .expect("a whole, valid gzip member: its CRC and length check");
        assert_eq!(whole, events.concat());
    }

    #[test]
    fn long_data_takes_several_stored_blocks() {
        let data = vec![7u8; MAX_STORED * 2 + 10];
        let mut body = HEADER.to_vec();
        body.extend_from_slice(&stored(&data));
        let mut running = Running::default();
        running.sent(&data);
        body.extend_from_slice(&running.trailer());
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out).unwrap();
        assert!(out == data);
        assert_eq!(stored(&data).len(), stored_len(data.len()));
        assert_eq!(stored(&[]).len(), stored_len(0));
    }
}
