//! WebSocket framing of the server's messages (RFC 6455 §5.2), as bytes
//! ready for the socket.
//!
//! A frame from server to client is never masked, so a notification's frame
//! is the same bytes for every client: it is built once per notification
//! ([`notification`]) and every connection writes the shared bytes.
//!
//! ```text
//! 0x81              FIN + opcode 1 (text); 0xC1 with RSV1: compressed
//! len | 126 + u16 | 127 + u64    payload length, no mask bit
//! payload           the message's JSON, or its DEFLATE
//! ```
//!
//! With permessage-deflate (RFC 7692) and no server context takeover, a
//! message is compressed alone ([`deflate_message`]), so its compressed
//! frame too is the same for every client that negotiated it, and built
//! once ([`deflated_notification`]).

use bytes::{BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, FlushCompress};
use notify_hub::{Encoding, Notification};

/// FIN set, opcode 1: one whole text message in one frame.
const FIN_TEXT: u8 = 0x81;
/// RSV1, which permessage-deflate uses to mark a message as compressed
/// (RFC 7692 §6).
const RSV1: u8 = 0x40;

/// What a sync flush ends with, and permessage-deflate leaves off the wire
/// (RFC 7692 §7.2.1); the receiver puts it back before inflating.
pub const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// A whole text frame around `payload`, which must be UTF-8 (every message
/// this server builds is JSON).
pub fn text(payload: &[u8]) -> Bytes {
    frame(FIN_TEXT, payload)
}

/// `payload` compressed as one permessage-deflate message with no context
/// takeover: raw DEFLATE, sync-flushed, its tail left off. `None` in the
/// one case the compressor refuses, which a fresh compressor does not.
pub fn deflate_message(payload: &[u8]) -> Option<Vec<u8>> {
    let mut out = sync_flushed(payload, Compression::default())?;
    if out.ends_with(&DEFLATE_TAIL) {
        out.truncate(out.len() - DEFLATE_TAIL.len());
    }
    Some(out)
}

/// `data` as raw DEFLATE, sync-flushed: whole blocks ending with the flush's
/// empty stored block. The compressor may stop with room to spare and more
/// to write, and a flush asked for again once it is done adds another empty
/// block, so the flush is done when its block ends the output.
pub(crate) fn sync_flushed(data: &[u8], level: Compression) -> Option<Vec<u8>> {
    let mut compress = Compress::new(level, false);
    // Room for the worst case: stored blocks, five bytes per 64 KiB.
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 128);
    loop {
        let read = compress.total_in() as usize;
        compress
            .compress_vec(&data[read..], &mut out, FlushCompress::Sync)
            .ok()?;
        let all_in = compress.total_in() as usize == data.len();
        if all_in && out.ends_with(&DEFLATE_TAIL) && out.len() < out.capacity() {
            return Some(out);
        }
        out.reserve(out.capacity().max(64));
    }
}

/// A text message as permessage-deflate sends it: compressed in a frame
/// with RSV1, or as a plain frame where compressing would not make it
/// smaller (RFC 7692 lets every message choose).
pub fn deflated_text(payload: &[u8]) -> Bytes {
    frame_with(0x1, payload, true)
}

/// One whole message of `opcode` (1 text, 2 binary), compressed where
/// `deflate` was negotiated and it makes the message shorter.
pub fn frame_with(opcode: u8, payload: &[u8], deflate: bool) -> Bytes {
    let fin = 0x80 | (opcode & 0x0F);
    if deflate
        && let Some(compressed) = deflate_message(payload)
        && compressed.len() < payload.len()
    {
        return frame(fin | RSV1, &compressed);
    }
    frame(fin, payload)
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InflateError {
    /// It inflates past the limit given: a bomb, or just too large.
    TooLarge,
    /// It is not DEFLATE.
    Invalid,
}

/// One message compressed alone, inflated (the sync flush's tail put back,
/// RFC 7692 §7.2.2), at most `max` bytes: a small message that would
/// inflate past it is refused as soon as it does, not inflated whole.
pub fn inflate_message(compressed: &[u8], max: usize) -> Result<Vec<u8>, InflateError> {
    let mut input = Vec::with_capacity(compressed.len() + DEFLATE_TAIL.len());
    input.extend_from_slice(compressed);
    input.extend_from_slice(&DEFLATE_TAIL);
    let mut inflater = flate2::Decompress::new(false);
    let mut out = Vec::with_capacity((compressed.len() * 4).min(max + 1));
    // Until a call with everything in makes nothing more: the inflater may
    // hold output back for the next call even when there was room.
    loop {
        if out.capacity() - out.len() < 32 * 1024 {
            out.reserve(32 * 1024);
        }
        let (read, written) = (inflater.total_in() as usize, out.len());
        inflater
            .decompress_vec(&input[read..], &mut out, flate2::FlushDecompress::Sync)
            .map_err(|_| InflateError::Invalid)?;
        if out.len() > max {
            return Err(InflateError::TooLarge);
        }
        if out.len() == written && inflater.total_in() as usize == read {
            return if read == input.len() {
                Ok(out)
            } else {
                // Room to write and input to read, and nothing moved.
                Err(InflateError::Invalid)
            };
        }
    }
}

fn frame(first: u8, payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(payload.len() + 10);
    frame.put_u8(first);
    match payload.len() {
        len @ 0..=125 => frame.put_u8(len as u8),
        len @ 126..=0xFFFF => {
            frame.put_u8(126);
            frame.put_u16(len as u16);
        }
        len => {
            frame.put_u8(127);
            frame.put_u64(len as u64);
        }
    }
    frame.put_slice(payload);
    frame.freeze()
}

/// The notification's frame, built by the first connection that sends it
/// and shared by all.
pub fn notification(n: &Notification) -> Bytes {
    n.encoded(Encoding::WebSocketFrame, |n| text(n.json()))
}

/// The notification's frame for a connection with permessage-deflate: one
/// compression per notification, shared by every such connection.
pub fn deflated_notification(n: &Notification) -> Bytes {
    n.encoded(Encoding::WebSocketDeflatedFrame, |n| {
        deflated_text(n.json())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::{Frame, FrameHeader};

    /// Parses `bytes` as exactly one frame with tungstenite's own parser.
    fn parse(bytes: &[u8]) -> (FrameHeader, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes);
        let (header, len) = FrameHeader::parse(&mut cursor)
            .expect("a valid header")
            .expect("a whole header");
        let start = cursor.position() as usize;
        assert_eq!(
            start as u64 + len,
            bytes.len() as u64,
            "nothing more, nothing less"
        );
        (header, bytes[start..].to_vec())
    }

    #[test]
    fn every_length_form_parses_as_one_unmasked_text_frame() {
        for len in [0, 1, 125, 126, 127, 1000, 0xFFFF, 0x10000, 70_000] {
            let payload = "x".repeat(len);
            let frame = text(payload.as_bytes());
            let (header, body) = parse(&frame);
            assert!(header.is_final, "{len}");
            assert_eq!(header.mask, None, "{len}: servers never mask");
            assert_eq!(
                Frame::from_payload(header, body.clone().into())
                    .header()
                    .opcode,
                tokio_tungstenite::tungstenite::protocol::frame::coding::OpCode::Data(
                    tokio_tungstenite::tungstenite::protocol::frame::coding::Data::Text
                ),
                "{len}"
            );
            assert_eq!(body, payload.as_bytes(), "{len}");
        }
    }

    /// What a client does with a compressed message's payload.
    fn inflate(compressed: &[u8]) -> Vec<u8> {
        let mut input = compressed.to_vec();
        input.extend_from_slice(&DEFLATE_TAIL);
        let mut inflate = flate2::Decompress::new(false);
        let mut out = Vec::with_capacity(1024);
        while (inflate.total_in() as usize) < input.len() {
            let read = inflate.total_in() as usize;
            out.reserve(out.capacity());
            inflate
                .decompress_vec(&input[read..], &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
        }
        out
    }

    #[test]
    fn a_compressed_frame_has_rsv1_and_inflates_to_the_message() {
        let message = r#"{"id":7,"text":"The maintenance window starts at 22:00 and ends at 23:00; the maintenance window may be extended.","published_at":"2026-12-05T07:00:00.000Z"}"#;
        let frame = deflated_text(message.as_bytes());
        let (header, body) = parse(&frame);
        assert!(header.rsv1, "RSV1 marks it compressed");
        assert!(!header.rsv2 && !header.rsv3);
        assert!(body.len() < message.len(), "{} bytes", body.len());
        assert!(!body.ends_with(&DEFLATE_TAIL), "the tail is left off");
        assert_eq!(inflate(&body), message.as_bytes());
        // Long ones are compressed in full, however many rounds it takes.
        let long = "通知 notification ".repeat(5000);
        let (_, body) = parse(&deflated_text(long.as_bytes()));
        assert!(body.len() < long.len() / 50, "{} bytes", body.len());
        assert!(
            inflate(&body) == long.as_bytes(),
            "the long one round-trips"
        );
    }

    #[test]
    fn incompressible_data_round_trips_whole() {
        // Random bytes make stored blocks, where the compressor stops with
        // room to spare before its flush is done: the 64 KiB message the
        // Autobahn|Testsuite caught coming back 247 bytes short.
        let mut x: u64 = 88172645463325252;
        for size in [1000, 65535, 65536, 131072] {
            let data: Vec<u8> = (0..size)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect();
            let compressed = deflate_message(&data).unwrap();
            let back = inflate_message(&compressed, 1 << 20).unwrap();
            assert!(back == data, "{size} bytes: {} back", back.len());
        }
    }

    #[test]
    fn a_message_that_would_grow_is_sent_plain() {
        let frame = deflated_text(b"{}");
        let (header, body) = parse(&frame);
        assert!(!header.rsv1);
        assert_eq!(body, b"{}");
    }

    #[test]
    fn a_notification_frame_carries_its_json() {
        let n = Notification::new(3, "hi".into(), std::time::SystemTime::now());
        let (_, body) = parse(&notification(&n));
        assert_eq!(body, n.json().as_ref());
    }
}
