//! Reading query strings: the cursor (`after`, `epoch`) every subscribing
//! transport accepts, and bounded numbers such as a long-poll `timeout`.
//!
//! Unknown parameters are ignored (browsers add cache-busters); a known one
//! that does not parse is a 400 naming the parameter, never a guess.

use std::ops::RangeInclusive;

use notify_hub::{Cursor, Epoch, MAX_EPOCH_LEN};

use crate::error::ApiError;

/// The parsed query string of one request.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    pub fn from_uri(uri: &http::Uri) -> Self {
        let pairs = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        Query { pairs }
    }

    /// The last value given for `name`: later values override earlier ones.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// `after=ID&epoch=E`; neither present means a newcomer (`None`). An
    /// epoch without `after` is a client of that epoch that has seen nothing.
    pub fn cursor(&self) -> Result<Option<Cursor>, ApiError> {
        let after = self.get("after");
        let epoch = self.get("epoch");
        if after.is_none() && epoch.is_none() {
            return Ok(None);
        }
        let after = match after {
            Some(raw) => parse_u64("after", raw)?,
            None => 0,
        };
        let epoch = epoch
            .map(|raw| {
                Epoch::parse(raw).ok_or_else(|| ApiError::BadQuery {
                    param: "epoch",
                    reason: format!("expected 1 to {MAX_EPOCH_LEN} characters of [A-Za-z0-9_-]"),
                })
            })
            .transpose()?;
        Ok(Some(Cursor::new(after, epoch)))
    }

    /// A whole number in `range`, or `None` when absent.
    pub fn number_in(
        &self,
        param: &'static str,
        range: RangeInclusive<u64>,
    ) -> Result<Option<u64>, ApiError> {
        let Some(raw) = self.get(param) else {
            return Ok(None);
        };
        let value = parse_u64(param, raw)?;
        if !range.contains(&value) {
            return Err(ApiError::BadQuery {
                param,
                reason: format!(
                    "{value} is out of range {}..={}",
                    range.start(),
                    range.end()
                ),
            });
        }
        Ok(Some(value))
    }
}

/// The seconds a client may ask between heartbeats.
pub(crate) const HEARTBEAT_SECS: RangeInclusive<u64> = 1..=60;

impl Query {
    /// `heartbeat=<seconds>`: how quiet a push connection may be before the
    /// server sends a heartbeat the page can see; `None` when not asked.
    pub fn heartbeat(&self) -> Result<Option<std::time::Duration>, ApiError> {
        Ok(self
            .number_in("heartbeat", HEARTBEAT_SECS)?
            .map(std::time::Duration::from_secs))
    }
}

fn parse_u64(param: &'static str, raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| ApiError::BadQuery {
        param,
        reason: format!("expected a whole number, got {raw:?}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(q: &str) -> Query {
        Query::from_uri(&format!("/x?{q}").parse().unwrap())
    }

    #[test]
    fn cursor_forms() {
        assert_eq!(query("").cursor().unwrap(), None);
        assert_eq!(query("_=123").cursor().unwrap(), None);
        assert_eq!(
            query("after=7").cursor().unwrap(),
            Some(Cursor::new(7, None))
        );
        assert_eq!(
            query("after=7&epoch=abc").cursor().unwrap(),
            Some(Cursor::new(7, Epoch::parse("abc")))
        );
        assert_eq!(
            query("epoch=abc").cursor().unwrap(),
            Some(Cursor::new(0, Epoch::parse("abc")))
        );
    }

    #[test]
    fn bad_values_name_the_parameter() {
        for q in [
            "after=-1",
            "after=x",
            "after=",
            "after=99999999999999999999999",
        ] {
            let err = query(q).cursor().unwrap_err();
            assert!(
                matches!(err, ApiError::BadQuery { param: "after", .. }),
                "{q}"
            );
        }
        let err = query("after=1&epoch=no%20spaces").cursor().unwrap_err();
        assert!(matches!(err, ApiError::BadQuery { param: "epoch", .. }));
    }

    #[test]
    fn numbers_are_bounded() {
        assert_eq!(
            query("timeout=5").number_in("timeout", 0..=60).unwrap(),
            Some(5)
        );
        assert_eq!(query("").number_in("timeout", 0..=60).unwrap(), None);
        assert!(query("timeout=61").number_in("timeout", 0..=60).is_err());
    }
}
