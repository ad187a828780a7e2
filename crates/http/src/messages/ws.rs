//! WebSocket framing of the server's messages (RFC 6455 §5.2), as bytes
//! ready for the socket.
//!
//! A frame from server to client is never masked, so a notification's frame
//! is the same bytes for every client: it is built once per notification
//! ([`notification`]) and every connection writes the shared bytes.
//!
//! ```text
//! 0x81              FIN + opcode 1 (text)
//! len | 126 + u16 | 127 + u64    payload length, no mask bit
//! payload           the message's JSON
//! ```

use bytes::{BufMut, Bytes, BytesMut};
use notify_hub::{Encoding, Notification};

/// FIN set, opcode 1: one whole text message in one frame.
const FIN_TEXT: u8 = 0x81;

/// A whole text frame around `payload`, which must be UTF-8 (every message
/// this server builds is JSON).
pub fn text(payload: &[u8]) -> Bytes {
    let mut frame = BytesMut::with_capacity(payload.len() + 10);
    frame.put_u8(FIN_TEXT);
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

    #[test]
    fn a_notification_frame_carries_its_json() {
        let n = Notification::new(3, "hi".into(), std::time::SystemTime::now());
        let (_, body) = parse(&notification(&n));
        assert_eq!(body, n.json().as_ref());
    }
}
