//! The same messages as Socket.IO carries them, read the way a client reads
//! them. socketioxide builds them on the server (`crates/socketio`); the
//! test clients, the harness and the benchmarks read them here.
//!
//! Over a WebSocket, each text frame is one Engine.IO 4 packet, its type a
//! digit; a message packet (`4`) carries a Socket.IO packet, an event
//! (`2`) on namespace `/` being a JSON array of its name and its payload:
//!
//! ```text
//! 0{"sid":..}                       Engine.IO open
//! 40{"sid":..}                      joined namespace /
//! 42["hello",{"type":"hello",..}]   an event: the same JSON as elsewhere
//! 2                                 Engine.IO ping: answer PONG
//! ```

use super::{MessageError, Push};

/// What a client sends to join namespace `/`, before its `auth` object.
pub const JOIN: &str = "40";
/// The answer to an Engine.IO ping.
pub const PONG: &str = "3";

/// One packet from the server, as far as a notification client cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// Engine.IO's open (`0`), with the session's JSON.
    Open(String),
    /// Joined namespace `/` (`40`).
    Joined,
    /// A ping (`2`): a client must answer [`PONG`] or be dropped.
    Ping,
    /// An event on `/`: its name (`hello`, `reset`, `notification`) and its
    /// payload, the message every transport pushes.
    Event { name: String, push: Push },
    /// Anything else (a noop, a probe's answer, an upgrade).
    Other(String),
}

impl Packet {
    pub fn parse(packet: &str) -> Result<Packet, MessageError> {
        if let Some(event) = packet.strip_prefix("42") {
            // The payload is read once, as a client reads it, not parsed
            // and written out again.
            let (name, payload): (String, &serde_json::value::RawValue) =
                serde_json::from_str(event)?;
            let push = Push::parse(payload.get())?;
            return Ok(Packet::Event { name, push });
        }
        Ok(match packet {
            "2" => Packet::Ping,
            _ if packet.starts_with(JOIN) => Packet::Joined,
            _ if packet.starts_with('0') => Packet::Open(packet[1..].to_owned()),
            _ => Packet::Other(packet.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_as_a_client_reads_them() {
        assert_eq!(Packet::parse("2").unwrap(), Packet::Ping);
        assert_eq!(Packet::parse(r#"40{"sid":"x"}"#).unwrap(), Packet::Joined);
        assert_eq!(
            Packet::parse(r#"0{"sid":"s"}"#).unwrap(),
            Packet::Open(r#"{"sid":"s"}"#.into())
        );
        assert_eq!(
            Packet::parse(r#"42["hello",{"type":"hello","epoch":"e","cursor":3}]"#).unwrap(),
            Packet::Event {
                name: "hello".into(),
                push: Push::Hello {
                    epoch: "e".into(),
                    cursor: 3
                }
            }
        );
        assert_eq!(Packet::parse("6").unwrap(), Packet::Other("6".into()));
        assert!(
            Packet::parse(r#"42["hello"]"#).is_err(),
            "an event has a payload"
        );
        assert!(Packet::parse("42{").is_err());
    }
}
