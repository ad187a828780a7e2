//! The admin token that guards publishing.
//!
//! It comes from `NOTIFY_ADMIN_TOKEN`, else the `--admin-token` flag, else
//! a random one generated at start-up (and printed once by the binary). The
//! comparison runs in constant time, so response timing does not leak how
//! much of a guess was right.

use std::fmt;

use http::{HeaderMap, header};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The environment variable that wins over the flag.
pub(crate) const ADMIN_TOKEN_ENV: &str = "NOTIFY_ADMIN_TOKEN";

/// Where the token in force came from; a generated one must be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    Environment,
    Flag,
    Generated,
}

#[derive(Clone)]
pub struct AdminToken {
    secret: String,
    source: TokenSource,
}

impl AdminToken {
    /// Applies the precedence `docs/protocol.md` gives: environment, flag,
    /// generated. Empty values count as absent.
    pub fn resolve(env: Option<String>, flag: Option<String>) -> Self {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        if let Some(secret) = non_empty(env) {
            return AdminToken {
                secret,
                source: TokenSource::Environment,
            };
        }
        if let Some(secret) = non_empty(flag) {
            return AdminToken {
                secret,
                source: TokenSource::Flag,
            };
        }
        AdminToken::generate()
    }

    /// A fresh random token: 32 hex digits (128 bits).
    pub fn generate() -> Self {
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw).expect("the operating system provides randomness");
        AdminToken {
            secret: raw.iter().map(|b| format!("{b:02x}")).collect(),
            source: TokenSource::Generated,
        }
    }

    pub fn source(&self) -> TokenSource {
        self.source
    }

    /// The secret itself, for the one start-up line that prints a generated
    /// token and for tests that need to publish.
    pub fn reveal(&self) -> &str {
        &self.secret
    }

    /// Accepts `Authorization: Bearer <token>` with the right token only.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        if bool::from(presented.ct_eq(self.secret.as_bytes())) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminToken")
            .field("secret", &"<redacted>")
            .field("source", &self.source)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn precedence_is_env_then_flag_then_generated() {
        let t = AdminToken::resolve(Some("from-env".into()), Some("from-flag".into()));
        assert_eq!(
            (t.reveal(), t.source()),
            ("from-env", TokenSource::Environment)
        );
        let t = AdminToken::resolve(Some("  ".into()), Some("from-flag".into()));
        assert_eq!((t.reveal(), t.source()), ("from-flag", TokenSource::Flag));
        let t = AdminToken::resolve(None, None);
        assert_eq!(t.source(), TokenSource::Generated);
        assert_eq!(t.reveal().len(), 32);
        assert_ne!(t.reveal(), AdminToken::generate().reveal());
    }

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let t = AdminToken::resolve(None, Some("s3cret".into()));
        assert!(t.check(&bearer("Bearer s3cret")).is_ok());
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "bearer s3cret",
            "s3cret",
            "Basic s3cret",
        ] {
            assert!(t.check(&bearer(wrong)).is_err(), "{wrong}");
        }
        assert!(t.check(&HeaderMap::new()).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let t = AdminToken::resolve(None, Some("s3cret".into()));
        assert!(!format!("{t:?}").contains("s3cret"));
    }
}
