//! A conformance mode that echoes every message back, for the
//! Autobahn|Testsuite: off by default (`--ws-conformance-echo`), at
//! [`ECHO_PATH`], outside the notification feed.
//!
//! The suite's client sends what a notification client never does, text and
//! binary messages, fragmented, compressed, malformed, and checks how the
//! server answers, so this connection reads whole messages where the feed's
//! refuses any: fragments reassembled, text checked for UTF-8 as it arrives
//! (a broken sequence ends the connection with 1007 without waiting for the
//! rest), a compressed message inflated alone (the server asks for
//! `client_no_context_takeover`), everything bounded by
//! [`MAX_ECHO_MESSAGE`] (past it, 1009), then sent back as one frame,
//! compressed again where permessage-deflate was negotiated. Pings are
//! answered, a close is echoed (RFC 6455 §5.5.1, §7.4).

use bytes::{Buf, BytesMut};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use notify_http::messages::ws as frames_out;
use notify_http::{ApiError, Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

/// Where the conformance mode answers, when it is on.
pub const ECHO_PATH: &str = "/api/ws/echo";

/// The largest message it echoes: the suite's largest is 16 MiB.
pub const MAX_ECHO_MESSAGE: usize = 16 * 1024 * 1024;

/// Accepts a WebSocket at [`ECHO_PATH`] and echoes on it.
pub(crate) fn handle(
    mut req: Request,
    deflate_on: bool,
    shutdown: &notify_http::Shutdown,
) -> Result<Response, ApiError> {
    let mut response = crate::accept(&req)?;
    let deflate = deflate_on && crate::accepts_deflate(req.headers());
    if deflate {
        response.headers_mut().insert(
            http::header::SEC_WEBSOCKET_EXTENSIONS,
            http::HeaderValue::from_static(crate::deflate::ACCEPTED),
        );
    }
    let on_upgrade: OnUpgrade = hyper::upgrade::on(&mut req);
    // Tracked like every connection's task: shutdown waits for it.
    shutdown.spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let _ = echo(TokioIo::new(upgraded), deflate).await;
        }
    });
    Ok(response)
}

/// The message being reassembled.
struct Message {
    text: bool,
    compressed: bool,
    payload: Vec<u8>,
    /// For uncompressed text: how much of `payload` is checked UTF-8.
    checked: usize,
}

/// Why the connection ends: the close frame to send, if any.
enum End {
    Close(CloseCode, &'static str),
    /// The client closed; this is the echo of its close.
    Echo(Vec<u8>),
    Gone,
}

async fn echo<S: AsyncRead + AsyncWrite + Unpin>(mut io: S, deflate: bool) -> std::io::Result<()> {
    let mut buf = BytesMut::with_capacity(4096);
    let mut message: Option<Message> = None;
    let end = loop {
        // One whole frame header, then its payload.
        let parsed = {
            let mut cursor = std::io::Cursor::new(&buf[..]);
            match FrameHeader::parse(&mut cursor) {
                Ok(Some((header, len))) => Some((header, len, cursor.position() as usize)),
                Ok(None) => None,
                Err(_) => break End::Close(CloseCode::Protocol, "protocol violation"),
            }
        };
        let Some((header, len, head)) = parsed else {
            if io.read_buf(&mut buf).await? == 0 {
                break End::Gone;
            }
            continue;
        };
        match frame_rules(&header, len, message.as_ref(), deflate) {
            Ok(()) => {}
            Err(end) => break end,
        }
        let len = len as usize;
        while buf.len() < head + len {
            buf.reserve(head + len - buf.len());
            if io.read_buf(&mut buf).await? == 0 {
                return Ok(());
            }
        }
        buf.advance(head);
        let mut payload = buf.split_to(len);
        if let Some(mask) = header.mask {
            for (i, byte) in payload.iter_mut().enumerate() {
                *byte ^= mask[i % 4];
            }
        }
        match header.opcode {
            OpCode::Control(Control::Ping) => {
                io.write_all(&control(0x8A, &payload)).await?;
            }
            OpCode::Control(Control::Pong) => {}
            OpCode::Control(Control::Close) => break closed(&payload),
            OpCode::Data(data) => {
                let current = message.get_or_insert_with(|| Message {
                    text: data == Data::Text,
                    compressed: header.rsv1,
                    payload: Vec::new(),
                    checked: 0,
                });
                if current.payload.len() + payload.len() > MAX_ECHO_MESSAGE {
                    break End::Close(CloseCode::Size, "message too large");
                }
                current.payload.extend_from_slice(&payload);
                if current.text && !current.compressed && !utf8_so_far(current, header.is_final) {
                    break End::Close(CloseCode::Invalid, "text that is not UTF-8");
                }
                if header.is_final {
                    let whole = message.take().expect("a message in progress");
                    match echo_frame(whole, deflate) {
                        Ok(frame) => io.write_all(&frame).await?,
                        Err(end) => break end,
                    }
                }
            }
            OpCode::Control(_) => break End::Close(CloseCode::Protocol, "protocol violation"),
        }
    };
    match end {
        End::Gone => {}
        End::Echo(frame) => io.write_all(&frame).await?,
        End::Close(code, reason) => {
            let frame = crate::frames::close(code, reason);
            io.write_all(&frame).await?;
        }
    }
    io.shutdown().await
}

/// What RFC 6455 (§5.2, §5.4, §5.5) and RFC 7692 (§6) allow of a client's
/// frame, given the message in progress.
fn frame_rules(
    header: &FrameHeader,
    len: u64,
    message: Option<&Message>,
    deflate: bool,
) -> Result<(), End> {
    let protocol = || End::Close(CloseCode::Protocol, "protocol violation");
    if header.mask.is_none() || header.rsv2 || header.rsv3 {
        return Err(protocol());
    }
    match header.opcode {
        OpCode::Control(_) => {
            if header.rsv1 || !header.is_final || len > 125 {
                return Err(protocol());
            }
        }
        OpCode::Data(Data::Continue) => {
            if message.is_none() || header.rsv1 {
                return Err(protocol());
            }
        }
        OpCode::Data(Data::Text | Data::Binary) => {
            if message.is_some() || (header.rsv1 && !deflate) {
                return Err(protocol());
            }
        }
        OpCode::Data(_) => return Err(protocol()),
    }
    if len > MAX_ECHO_MESSAGE as u64 {
        return Err(End::Close(CloseCode::Size, "message too large"));
    }
    Ok(())
}

/// Whether the text so far is UTF-8, or the start of it: a sequence cut at
/// the end of a fragment may go on in the next, but not past the last.
fn utf8_so_far(message: &mut Message, last: bool) -> bool {
    match std::str::from_utf8(&message.payload[message.checked..]) {
        Ok(_) => {
            message.checked = message.payload.len();
            true
        }
        Err(err) => {
            message.checked += err.valid_up_to();
            err.error_len().is_none() && !last
        }
    }
}

/// The message sent back whole; compressed again where it came compressed
/// or the extension was negotiated.
fn echo_frame(message: Message, deflate: bool) -> Result<Vec<u8>, End> {
    let payload = if message.compressed {
        match frames_out::inflate_message(&message.payload, MAX_ECHO_MESSAGE) {
            Ok(payload) => payload,
            Err(frames_out::InflateError::TooLarge) => {
                return Err(End::Close(CloseCode::Size, "message too large"));
            }
            Err(frames_out::InflateError::Invalid) => {
                return Err(End::Close(
                    CloseCode::Invalid,
                    "a compressed message that does not inflate",
                ));
            }
        }
    } else {
        message.payload
    };
    if message.text && std::str::from_utf8(&payload).is_err() {
        return Err(End::Close(CloseCode::Invalid, "text that is not UTF-8"));
    }
    let opcode = if message.text { 0x1 } else { 0x2 };
    Ok(frames_out::frame_with(opcode, &payload, deflate).to_vec())
}

/// A control frame from the server.
fn control(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![first, payload.len() as u8];
    frame.extend_from_slice(payload);
    frame
}

/// The answer to a client's close: its code echoed, or an empty close.
fn closed(payload: &[u8]) -> End {
    match payload {
        [] => End::Echo(vec![0x88, 0x00]),
        [_] => End::Close(CloseCode::Protocol, "protocol violation"),
        [hi, lo, reason @ ..] => {
            let code = CloseCode::from(u16::from_be_bytes([*hi, *lo]));
            if !code.is_allowed() {
                End::Close(CloseCode::Protocol, "protocol violation")
            } else if std::str::from_utf8(reason).is_err() {
                End::Close(CloseCode::Invalid, "text that is not UTF-8")
            } else {
                End::Echo(control(0x88, &[*hi, *lo]))
            }
        }
    }
}
