//! The client's frames, read by the connection itself.
//!
//! A notification client sends the server only pings, pongs and one close
//! (RFC 6455 §5.5), each at most 131 bytes on the wire. So the connection
//! keeps no read buffer of its own: it reads into a scratch array on the
//! stack, answers what is whole, and keeps only the part of a frame that
//! has not fully arrived — which for a well-behaved client is nearly never.
//! tungstenite parses each frame's header ([`FrameHeader::parse`], which
//! also refuses reserved opcodes); what a frame means is decided here.

use std::io::Cursor;

use bytes::{BufMut, Bytes, BytesMut};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

use crate::{MAX_CLIENT_MESSAGE_BYTES, PushEnd};

/// A ping with no payload: FIN + opcode 9, length 0.
pub const PING: &[u8] = &[0x89, 0x00];

/// Largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// A server close frame: the code, then the reason (at most 123 bytes).
pub fn close(code: CloseCode, reason: &str) -> Bytes {
    let reason = &reason.as_bytes()[..reason.len().min(123)];
    let mut frame = BytesMut::with_capacity(4 + reason.len());
    frame.put_u8(0x88);
    frame.put_u8(2 + reason.len() as u8);
    frame.put_u16(code.into());
    frame.put_slice(reason);
    frame.freeze()
}

/// What the frames read so far ask of the server.
#[derive(Debug, Default)]
pub struct Replies {
    /// A pong for every ping, in order, as one buffer.
    pub pongs: BytesMut,
    /// Whether a pong arrived (the client answered a ping).
    pub pong_seen: bool,
}

/// Why the client's frames end the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The client sent Close; the server answers with this frame (RFC 6455
    /// §5.5.1) and ends.
    Closed(Bytes),
    /// The client broke a rule: close with this code and reason.
    Broke(CloseCode, &'static str, PushEnd),
}

fn broke(code: CloseCode, reason: &'static str, end: PushEnd) -> Verdict {
    Verdict::Broke(code, reason, end)
}

fn protocol_error() -> Verdict {
    broke(
        CloseCode::Protocol,
        "protocol violation",
        PushEnd::ProtocolError,
    )
}

fn not_utf8() -> Verdict {
    // RFC 6455 §7.4.1: data inconsistent with its type is 1007.
    broke(
        CloseCode::Invalid,
        "text that is not UTF-8",
        PushEnd::ProtocolError,
    )
}

/// Reads the whole frames at the start of `data`, answering pings into
/// `replies`; with `deflate` (permessage-deflate negotiated) a message may
/// be marked compressed. Returns how many bytes it used (the rest is the
/// start of a frame still arriving) and, if a frame ends the connection,
/// why.
pub fn read(data: &[u8], deflate: bool, replies: &mut Replies) -> (usize, Option<Verdict>) {
    let mut used = 0;
    while used < data.len() {
        let rest = &data[used..];
        let mut cursor = Cursor::new(rest);
        let (header, len) = match FrameHeader::parse(&mut cursor) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => break,
            Err(_) => return (used, Some(protocol_error())),
        };
        let head = cursor.position() as usize;
        // No reserved bit may be set but RSV1 on a message's first frame
        // when permessage-deflate was negotiated (RFC 7692 §6); and every
        // client frame must be masked (RFC 6455 §5.1, §5.2).
        let compressed = header.rsv1
            && deflate
            && matches!(header.opcode, OpCode::Data(Data::Text | Data::Binary));
        if (header.rsv1 && !compressed) || header.rsv2 || header.rsv3 {
            return (used, Some(protocol_error()));
        }
        let Some(mask) = header.mask else {
            return (used, Some(protocol_error()));
        };
        match header.opcode {
            OpCode::Control(_) if !header.is_final || len > MAX_CONTROL_PAYLOAD => {
                return (used, Some(protocol_error()));
            }
            OpCode::Data(_) if len > MAX_CLIENT_MESSAGE_BYTES as u64 => {
                return (
                    used,
                    Some(broke(
                        CloseCode::Size,
                        "message too large",
                        PushEnd::TooLarge,
                    )),
                );
            }
            // Binary data ends the connection whatever it holds, and so
            // does compressed data: a client has nothing to send, so the
            // server inflates nothing and no small frame can make it
            // inflate much.
            OpCode::Data(Data::Binary) => return (used, Some(sent_data())),
            OpCode::Data(_) if compressed => return (used, Some(sent_data())),
            _ => {}
        }
        let len = len as usize;
        if rest.len() - head < len {
            break;
        }
        let mut payload = rest[head..head + len].to_vec();
        unmask(&mut payload, mask);
        used += head + len;
        match header.opcode {
            OpCode::Control(Control::Ping) => {
                replies.pongs.put_u8(0x8A);
                replies.pongs.put_u8(payload.len() as u8);
                replies.pongs.put_slice(&payload);
            }
            OpCode::Control(Control::Pong) => replies.pong_seen = true,
            OpCode::Control(Control::Close) => return (used, Some(closed(&payload))),
            // A text message, whole or its first fragment: it is misuse
            // either way, but text that is not UTF-8 is the more specific
            // fault. A fragment may end inside a character.
            OpCode::Data(Data::Text) => {
                let valid = match std::str::from_utf8(&payload) {
                    Ok(_) => true,
                    Err(err) => !header.is_final && err.error_len().is_none(),
                };
                return (used, Some(if valid { sent_data() } else { not_utf8() }));
            }
            // A continuation with no message begun (any message began
            // would have ended the connection), or an opcode tungstenite
            // has already refused.
            _ => return (used, Some(protocol_error())),
        }
    }
    (used, None)
}

fn sent_data() -> Verdict {
    broke(
        CloseCode::Policy,
        "clients send only pings, pongs and close",
        PushEnd::ClientSentData,
    )
}

/// The answer to a client's Close: its code echoed, or an empty close if it
/// gave none. A malformed close is a protocol error (RFC 6455 §5.5.1, §7.4).
fn closed(payload: &[u8]) -> Verdict {
    match payload {
        [] => Verdict::Closed(Bytes::from_static(&[0x88, 0x00])),
        [_] => protocol_error(),
        [hi, lo, reason @ ..] => {
            let code = CloseCode::from(u16::from_be_bytes([*hi, *lo]));
            if !code.is_allowed() {
                protocol_error()
            } else if std::str::from_utf8(reason).is_err() {
                not_utf8()
            } else {
                Verdict::Closed(close(code, ""))
            }
        }
    }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio_tungstenite::tungstenite::protocol::frame::Frame;

    /// A frame as a client sends it, built by tungstenite.
    fn client_frame(opcode: OpCode, is_final: bool, payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            is_final,
            opcode,
            mask: Some([0x37, 0xfa, 0x21, 0x3d]),
            ..FrameHeader::default()
        };
        let mut wire = Vec::new();
        Frame::from_payload(header, Bytes::copy_from_slice(payload))
            .format(&mut wire)
            .unwrap();
        wire
    }

    fn ping(payload: &[u8]) -> Vec<u8> {
        client_frame(OpCode::Control(Control::Ping), true, payload)
    }

    fn code_of(verdict: Option<Verdict>) -> Option<u16> {
        match verdict? {
            Verdict::Closed(frame) => Some(u16::from_be_bytes([frame[2], frame[3]])),
            Verdict::Broke(code, _, _) => Some(code.into()),
        }
    }

    #[test]
    fn every_ping_is_answered_with_its_payload_in_order() {
        let wire = [ping(b"one"), ping(b""), ping(b"three")].concat();
        let mut replies = Replies::default();
        assert_eq!(read(&wire, false, &mut replies), (wire.len(), None));
        assert_eq!(
            &replies.pongs[..],
            b"\x8a\x03one\x8a\x00\x8a\x05three",
            "unmasked, unfragmented, in order"
        );
    }

    #[test]
    fn a_frame_split_anywhere_is_read_once_it_is_whole() {
        let wire = [ping(b"hello"), ping(b"again")].concat();
        for split in 0..=wire.len() {
            let mut replies = Replies::default();
            let (used, verdict) = read(&wire[..split], false, &mut replies);
            assert!(verdict.is_none());
            let rest = [&wire[used..split], &wire[split..]].concat();
            let (more, verdict) = read(&rest, false, &mut replies);
            assert!(verdict.is_none());
            assert_eq!(used + more, wire.len(), "split at {split}");
            assert_eq!(&replies.pongs[..], b"\x8a\x05hello\x8a\x05again");
        }
    }

    #[test]
    fn a_pong_is_noted_and_not_answered() {
        let mut replies = Replies::default();
        let wire = client_frame(OpCode::Control(Control::Pong), true, b"");
        assert_eq!(read(&wire, false, &mut replies), (wire.len(), None));
        assert!(replies.pong_seen);
        assert!(replies.pongs.is_empty());
    }

    #[test]
    fn a_close_is_echoed_and_ends_the_reading() {
        let close_1000 = client_frame(OpCode::Control(Control::Close), true, b"\x03\xe8bye");
        let wire = [close_1000.clone(), ping(b"late")].concat();
        let mut replies = Replies::default();
        let (used, verdict) = read(&wire, false, &mut replies);
        assert_eq!(used, close_1000.len(), "nothing after the close is read");
        assert_eq!(verdict, Some(Verdict::Closed(close(CloseCode::Normal, ""))));
        let empty = client_frame(OpCode::Control(Control::Close), true, b"");
        assert_eq!(
            read(&empty, false, &mut replies).1,
            Some(Verdict::Closed(Bytes::from_static(b"\x88\x00")))
        );
    }

    #[test]
    fn each_fault_has_its_close_code() {
        let close_op = OpCode::Control(Control::Close);
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            (
                "text",
                client_frame(OpCode::Data(Data::Text), true, b"hi"),
                1008,
            ),
            (
                "binary",
                client_frame(OpCode::Data(Data::Binary), true, b"hi"),
                1008,
            ),
            (
                "text that is not UTF-8",
                client_frame(OpCode::Data(Data::Text), true, &[0xc3, 0x28, 0xff]),
                1007,
            ),
            (
                "a fragment ending inside a character is still UTF-8",
                client_frame(OpCode::Data(Data::Text), false, &[b'a', 0xc3]),
                1008,
            ),
            (
                "too large",
                client_frame(
                    OpCode::Data(Data::Binary),
                    true,
                    &vec![0; MAX_CLIENT_MESSAGE_BYTES + 1],
                ),
                1009,
            ),
            (
                "a continuation of nothing",
                client_frame(OpCode::Data(Data::Continue), true, b"x"),
                1002,
            ),
            (
                "a fragmented ping",
                client_frame(OpCode::Control(Control::Ping), false, b""),
                1002,
            ),
            (
                "a reserved opcode",
                client_frame(OpCode::Data(Data::Reserved(3)), true, b""),
                1002,
            ),
            (
                "a close of one byte",
                client_frame(close_op, true, b"\x03"),
                1002,
            ),
            (
                "a close with code 1005",
                client_frame(close_op, true, b"\x03\xed"),
                1002,
            ),
            (
                "a close whose reason is not UTF-8",
                client_frame(close_op, true, b"\x03\xe8\xff"),
                1007,
            ),
            ("an unmasked frame", b"\x89\x00".to_vec(), 1002),
            ("a reserved bit", b"\xc9\x80\x00\x00\x00\x00".to_vec(), 1002),
        ];
        for (what, wire, code) in cases {
            let (_, verdict) = read(&wire, false, &mut Replies::default());
            assert_eq!(code_of(verdict), Some(code), "{what}");
        }
    }

    #[test]
    fn rsv1_marks_a_compressed_message_only_where_deflate_was_negotiated() {
        let with_rsv1 = |opcode, is_final| {
            let mut wire = client_frame(opcode, is_final, b"\xf2\x48\x05\x00");
            wire[0] |= 0x40;
            wire
        };
        let text = with_rsv1(OpCode::Data(Data::Text), true);
        // Compressed data is data: refused as any is, without inflating it.
        assert_eq!(
            code_of(read(&text, true, &mut Replies::default()).1),
            Some(1008)
        );
        // Without the extension, RSV1 is a protocol error.
        assert_eq!(
            code_of(read(&text, false, &mut Replies::default()).1),
            Some(1002)
        );
        // And never on a control frame or a continuation.
        let ping = with_rsv1(OpCode::Control(Control::Ping), true);
        assert_eq!(
            code_of(read(&ping, true, &mut Replies::default()).1),
            Some(1002)
        );
        let more = with_rsv1(OpCode::Data(Data::Continue), true);
        assert_eq!(
            code_of(read(&more, true, &mut Replies::default()).1),
            Some(1002)
        );
        // A deflate connection still answers plain pings.
        let mut replies = Replies::default();
        let plain = client_frame(OpCode::Control(Control::Ping), true, b"p");
        assert_eq!(read(&plain, true, &mut replies), (plain.len(), None));
        assert_eq!(&replies.pongs[..], b"\x8a\x01p");
    }

    #[test]
    fn a_large_frame_is_refused_from_its_header_alone() {
        // Only the header of a 1 MiB frame has arrived.
        let mut wire = vec![0x82, 0xFF];
        wire.extend_from_slice(&(1u64 << 20).to_be_bytes());
        wire.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(
            code_of(read(&wire, false, &mut Replies::default()).1),
            Some(1009)
        );
    }

    #[test]
    fn server_close_frames_carry_code_and_reason() {
        assert_eq!(
            &close(CloseCode::Away, "server shutting down")[..],
            b"\x88\x16\x03\xe9server shutting down"
        );
    }
}
