//! permessage-deflate (RFC 7692), as this server speaks it: compression
//! with no context takeover either way, so that a connection keeps no
//! compressor or decompressor of its own.
//!
//! Every browser offers the extension in its handshake
//! (`Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits`).
//! The server accepts the first offer it can honour and answers
//! [`ACCEPTED`]:
//!
//! - `server_no_context_takeover`: the server compresses each message
//!   alone, so a notification is compressed once and the same frame goes to
//!   every such connection (`messages::ws::deflated_notification`);
//! - `client_no_context_takeover`: a client compresses each message alone
//!   too, so reading one never needs what came before.
//!
//! An offer with a parameter the RFC does not define, one given twice, a
//! value where none belongs or a window size outside 8–15 is declined, as
//! RFC 7692 §5 requires; so is `server_max_window_bits` below 15, since the
//! server compresses with DEFLATE's full 32 KiB window. A declined offer is
//! not an error: the answer names no extension, and frames go uncompressed.

use http::{HeaderMap, header};

/// The extension's name.
pub const EXTENSION: &str = "permessage-deflate";

/// The server's answer when it accepts an offer.
pub const ACCEPTED: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// Why an offer was declined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Declined {
    /// A parameter RFC 7692 does not define.
    Unknown(String),
    /// A parameter given twice in one offer.
    Twice(String),
    /// A value for a parameter that takes none, none for one that needs
    /// one, or a value that is not a window size.
    BadValue(String),
    /// A window size outside 8–15.
    WindowBits(u32),
    /// `server_max_window_bits` below the 15 the server compresses with.
    SmallerServerWindow(u32),
}

/// Whether the client offered permessage-deflate in a form the server
/// accepts; the reasons for each offer of it that was declined otherwise.
pub fn negotiate(headers: &HeaderMap) -> Result<(), Vec<Declined>> {
    let mut declined = Vec::new();
    let offers = headers
        .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for offer in offers {
        let mut parts = offer.split(';').map(str::trim);
        if parts.next() != Some(EXTENSION) {
            continue;
        }
        match check_offer(parts) {
            Ok(()) => return Ok(()),
            Err(why) => declined.push(why),
        }
    }
    Err(declined)
}

/// One offer's parameters, as RFC 7692 §7.1 defines them.
fn check_offer<'a>(params: impl Iterator<Item = &'a str>) -> Result<(), Declined> {
    let mut seen: Vec<&str> = Vec::new();
    for param in params.filter(|p| !p.is_empty()) {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim().trim_matches('"'))),
            None => (param, None),
        };
        if seen.contains(&name) {
            return Err(Declined::Twice(name.to_owned()));
        }
        seen.push(name);
        match (name, value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => {}
            ("client_max_window_bits", None) => {}
            ("client_max_window_bits", Some(bits)) => {
                window_bits(bits)?;
            }
            ("server_max_window_bits", Some(bits)) => {
                let bits = window_bits(bits)?;
                if bits < 15 {
                    return Err(Declined::SmallerServerWindow(bits));
                }
            }
            (
                "server_no_context_takeover"
                | "client_no_context_takeover"
                | "server_max_window_bits",
                _,
            ) => return Err(Declined::BadValue(param.to_owned())),
            (other, _) => return Err(Declined::Unknown(other.to_owned())),
        }
    }
    Ok(())
}

/// A window size: a number from 8 to 15, written without leading zeros.
fn window_bits(value: &str) -> Result<u32, Declined> {
    if value.is_empty() || value.starts_with('0') || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Declined::BadValue(value.to_owned()));
    }
    let bits: u32 = value
        .parse()
        .map_err(|_| Declined::BadValue(value.to_owned()))?;
    if (8..=15).contains(&bits) {
        Ok(bits)
    } else {
        Err(Declined::WindowBits(bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offered(offers: &[&str]) -> Result<(), Vec<Declined>> {
        let mut headers = HeaderMap::new();
        for offer in offers {
            headers.append(header::SEC_WEBSOCKET_EXTENSIONS, offer.parse().unwrap());
        }
        negotiate(&headers)
    }

    #[test]
    fn what_browsers_offer_is_accepted() {
        // Chromium and Firefox.
        assert_eq!(
            offered(&["permessage-deflate; client_max_window_bits"]),
            Ok(())
        );
        assert_eq!(offered(&["permessage-deflate"]), Ok(()));
        assert_eq!(
            offered(&["permessage-deflate; server_no_context_takeover; client_max_window_bits=10"]),
            Ok(())
        );
        assert_eq!(
            offered(&["permessage-deflate; server_max_window_bits=15"]),
            Ok(())
        );
        assert_eq!(offered(&[]), Err(vec![]), "nothing offered");
        assert_eq!(offered(&["x-webkit-deflate-frame"]), Err(vec![]));
    }

    #[test]
    fn a_bad_offer_is_declined_and_the_next_one_taken() {
        assert_eq!(
            offered(&["permessage-deflate; client_max_window_bits=16"]),
            Err(vec![Declined::WindowBits(16)])
        );
        assert_eq!(
            offered(&["permessage-deflate; server_max_window_bits=7"]),
            Err(vec![Declined::WindowBits(7)])
        );
        assert_eq!(
            offered(&["permessage-deflate; server_max_window_bits=10"]),
            Err(vec![Declined::SmallerServerWindow(10)])
        );
        assert_eq!(
            offered(&["permessage-deflate; server_max_window_bits"]),
            Err(vec![Declined::BadValue("server_max_window_bits".into())])
        );
        assert_eq!(
            offered(&["permessage-deflate; server_no_context_takeover=1"]),
            Err(vec![Declined::BadValue(
                "server_no_context_takeover=1".into()
            )])
        );
        assert_eq!(
            offered(&["permessage-deflate; client_max_window_bits=010"]),
            Err(vec![Declined::BadValue("010".into())])
        );
        assert_eq!(
            offered(&["permessage-deflate; mystery"]),
            Err(vec![Declined::Unknown("mystery".into())])
        );
        assert_eq!(
            offered(&[
                "permessage-deflate; client_no_context_takeover; client_no_context_takeover"
            ]),
            Err(vec![Declined::Twice("client_no_context_takeover".into())])
        );
        // Offers in the client's order of preference: the first good one.
        assert_eq!(
            offered(&["permessage-deflate; client_max_window_bits=99, permessage-deflate",]),
            Ok(())
        );
        assert_eq!(
            offered(&[
                "permessage-deflate; client_max_window_bits=99",
                "permessage-deflate"
            ]),
            Ok(())
        );
    }
}
