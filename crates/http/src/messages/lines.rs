//! WebTransport framing: the server opens one unidirectional stream per
//! session and writes the same JSON messages the WebSocket sends (`hello`,
//! `reset`, `heartbeat`, notifications), each followed by a line feed. A
//! QUIC stream is a byte stream, like TCP: it keeps order and loses nothing
//! but has no message boundaries, so the line feed is the boundary. JSON
//! never contains a raw line feed, so no message needs escaping.

/// The one line a session carries when its request is refused after the
/// session opened (a bad query): `{"type":"error","error":..,"message":..}`,
/// the same code and sentence as the JSON answer an HTTP request gets,
/// with the `type` every message but a notification has.
pub fn error_line(err: &crate::ApiError) -> Vec<u8> {
    let (_, code) = err.status_and_code();
    let body = serde_json::json!({"type": "error", "error": code, "message": err.to_string()});
    let mut line = body.to_string().into_bytes();
    line.push(b'\n');
    line
}

/// Appends `json` as one line to `out`.
pub fn push_line(out: &mut Vec<u8>, json: &[u8]) {
    out.extend_from_slice(json);
    out.push(b'\n');
}

/// Splits a stream of bytes into lines as they arrive, whatever the reads'
/// boundaries; a line longer than `max` is an error rather than a buffer
/// that grows without end.
#[derive(Debug)]
pub struct LineReader {
    partial: Vec<u8>,
    max: usize,
}

/// A line over the reader's limit.
#[derive(Debug, thiserror::Error)]
#[error("a line longer than {0} bytes")]
pub struct LineTooLong(pub usize);

impl LineReader {
    pub fn new(max: usize) -> Self {
        LineReader {
            partial: Vec::new(),
            max,
        }
    }

    /// The whole lines `bytes` completes, without their line feeds.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<String>, LineTooLong> {
        let mut lines = Vec::new();
        for piece in bytes.split_inclusive(|&b| b == b'\n') {
            self.partial.extend_from_slice(piece);
            if self.partial.last() == Some(&b'\n') {
                self.partial.pop();
                let line = std::mem::take(&mut self.partial);
                lines.push(String::from_utf8_lossy(&line).into_owned());
            } else if self.partial.len() > self.max {
                return Err(LineTooLong(self.max));
            }
        }
        Ok(lines)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_come_whole_whatever_the_reads() {
        let mut wire = Vec::new();
        push_line(&mut wire, br#"{"type":"hello","epoch":"e","cursor":0}"#);
        push_line(&mut wire, br#"{"id":1,"text":"a","published_at":"t"}"#);
        for cut in 0..wire.len() {
            let mut reader = LineReader::new(1024);
            let mut lines = reader.push(&wire[..cut]).unwrap();
            lines.extend(reader.push(&wire[cut..]).unwrap());
            assert_eq!(lines.len(), 2, "cut at {cut}");
            assert!(lines[0].starts_with(r#"{"type":"hello""#));
            assert!(lines[1].ends_with(r#""t"}"#));
        }
    }

    #[test]
    fn a_line_without_end_is_refused_past_the_limit() {
        let mut reader = LineReader::new(8);
        assert!(reader.push(b"12345678").unwrap().is_empty());
        assert!(reader.push(b"9").is_err());
    }
}
