//! Login and tokens: JWT issue and verification, the login rate limit, and the middleware that
//! guards protected routes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The token issuer, as in the Go project.
pub const ISSUER: &str = "https://api.replication-manager.signal18.io";

/// Login failures allowed per user within [`LOGIN_WINDOW`] before answers become 429.
pub const LOGIN_MAX_FAILURES: u32 = 3;
/// The login rate-limit window.
pub const LOGIN_WINDOW: Duration = Duration::from_secs(180);
/// Users tracked by the limiter at most (oldest windows are dropped beyond it).
const LIMITER_CAPACITY: usize = 10_000;

/// The user part of the claims (no password: unlike the Go project, the token carries none).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CustomUserInfo {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Role")]
    pub role: String,
}

/// JWT claims.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    #[serde(rename = "CustomUserInfo")]
    pub user: CustomUserInfo,
}

/// Why a token was refused (the text goes into the 401 body).
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("no token present in request")]
    Missing,
    #[error("{0}")]
    Invalid(String),
    #[error("user {0} is no longer an API user")]
    UnknownUser(String),
}

/// Signs and verifies tokens with one HMAC-SHA256 key, shared by every node that has it.
pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl TokenKeys {
    /// Keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> TokenKeys {
        TokenKeys { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret) }
    }

    /// Issues a token for `user`, valid for `ttl`.
    pub fn issue(&self, user: &str, ttl: Duration) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let claims = Claims {
            iss: ISSUER.to_string(),
            iat: now,
            exp: now.saturating_add(ttl.as_secs()),
            jti: random_jti(),
            user: CustomUserInfo { name: user.to_string(), role: "Member".to_string() },
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Verifies signature, algorithm (pinned to HS256), issuer and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let mut v = Validation::new(Algorithm::HS256);
        v.set_issuer(&[ISSUER]);
        v.leeway = 5;
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }
}

fn random_jti() -> String {
    use rand::Rng;
    let n: u64 = rand::thread_rng().gen();
    format!("{n:016x}")
}

/// Extracts the token from an `Authorization` header (`Bearer ` prefix optional, any case).
pub fn bearer(header: Option<&str>) -> Result<&str, TokenError> {
    let raw = header.map(str::trim).filter(|h| !h.is_empty()).ok_or(TokenError::Missing)?;
    let has_scheme = raw.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("bearer"))
        && raw.as_bytes().get(6).is_none_or(|b| b.is_ascii_whitespace());
    let token = if has_scheme { raw.get(6..).unwrap_or("").trim() } else { raw };
    if token.is_empty() { Err(TokenError::Missing) } else { Ok(token) }
}

/// Per-user login failure counter: [`LOGIN_MAX_FAILURES`] failures within [`LOGIN_WINDOW`]
/// make further attempts answer 429 until the window ends.
#[derive(Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl LoginLimiter {
    /// True when `user` may try now.
    pub fn allowed(&self, user: &str) -> bool {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        match map.get(user) {
            Some((n, since)) => *n < LOGIN_MAX_FAILURES || since.elapsed() >= LOGIN_WINDOW,
            None => true,
        }
    }

    /// Records a failed attempt.
    pub fn failed(&self, user: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= LIMITER_CAPACITY {
            map.retain(|_, (_, since)| since.elapsed() < LOGIN_WINDOW);
        }
        if map.len() >= LIMITER_CAPACITY && !map.contains_key(user) {
            // Under a flood of distinct names, keep limiting the ones already tracked.
            return;
        }
        let entry = map.entry(user.to_string()).or_insert((0, Instant::now()));
        if entry.1.elapsed() >= LOGIN_WINDOW {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }

    /// Clears the counter after a successful login.
    pub fn succeeded(&self, user: &str) {
        self.failures.lock().unwrap_or_else(|e| e.into_inner()).remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issue_and_verify() {
        let k = TokenKeys::new(&[7u8; 32]);
        let t = k.issue("admin", Duration::from_secs(60)).unwrap();
        let c = k.verify(&t).unwrap();
        assert_eq!(c.user.name, "admin");
        assert!(c.exp > c.iat);
        let other = TokenKeys::new(&[8u8; 32]);
        assert!(other.verify(&t).is_err());
        assert!(k.verify("not.a.token").is_err());
    }

    #[test]
    fn expired_token_is_refused() {
        let k = TokenKeys::new(&[7u8; 32]);
        let t = k.issue("admin", Duration::ZERO).unwrap();
        // exp == iat; with 5 s leeway it is still valid right now, so forge an older one.
        let mut c = k.verify(&t).unwrap();
        c.iat -= 100;
        c.exp -= 100;
        let old = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &c, &k.encoding).unwrap();
        assert!(k.verify(&old).unwrap_err().to_string().contains("Expired"));
    }

    #[test]
    fn bearer_forms() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("abc")).unwrap(), "abc");
        assert!(matches!(bearer(None), Err(TokenError::Missing)));
        assert!(matches!(bearer(Some("Bearer ")), Err(TokenError::Missing)));
    }

    #[test]
    fn limiter_blocks_after_three_failures() {
        let l = LoginLimiter::default();
        for _ in 0..3 {
            assert!(l.allowed("u"));
            l.failed("u");
        }
        assert!(!l.allowed("u"));
        assert!(l.allowed("other"));
        l.succeeded("u");
        assert!(l.allowed("u"));
    }
}
