//! `ApiClient`: one authenticated session with a manager's REST API (login through
//! `/api/login`, a bearer token on every later call, a deadline on every request).

use std::time::Duration;

use serde_json::Value;

/// What can go wrong talking to the manager; each variant names the request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The manager answered with a non-success status; `message` is its body (the API's
    /// plain-text reason).
    #[error("{method} {path}: {status} {message}")]
    Status { method: &'static str, path: String, status: u16, message: String },
    /// No answer: connection refused, TLS failure, or the deadline passed.
    #[error("{method} {path}: {source}")]
    Transport { method: &'static str, path: String, source: reqwest::Error },
    /// The answer was not the JSON expected.
    #[error("{path}: the answer is not JSON ({source}): {body}")]
    NotJson { path: String, body: String, source: serde_json::Error },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(reqwest::Error),
}

/// Where and how to reach the manager.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    /// HTTPS (the `api-port` listener) instead of plain HTTP (`http-port`).
    pub https: bool,
    /// Accept any TLS certificate (the manager's self-signed one).
    pub insecure: bool,
    /// Deadline of a read.
    pub timeout: Duration,
    /// Deadline of an action (switchover, failover, server actions), which the manager runs
    /// before it answers.
    pub action_timeout: Duration,
}

impl Endpoint {
    pub fn base_url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        let host = if self.host.contains(':') && !self.host.starts_with('[') { format!("[{}]", self.host) } else { self.host.clone() };
        format!("{scheme}://{host}:{}", self.port)
    }
}

/// An answer: status and body text.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
}

/// A logged-in session.
pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    endpoint: Endpoint,
}

impl ApiClient {
    /// A client for `endpoint`, not logged in yet.
    pub fn new(endpoint: Endpoint) -> Result<ApiClient, ApiError> {
        let http = reqwest::Client::builder()
            .danger_accept_invalid_certs(endpoint.insecure)
            .connect_timeout(endpoint.timeout)
            .no_proxy()
            .build()
            .map_err(ApiError::Client)?;
        Ok(ApiClient { http, base: endpoint.base_url(), token: None, endpoint })
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// `POST /api/login`; keeps the token for every later call.
    pub async fn login(&mut self, user: &str, password: &str) -> Result<(), ApiError> {
        let path = "/api/login";
        let body = serde_json::json!({"username": user, "password": password});
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .timeout(self.endpoint.timeout)
            .send()
            .await
            .map_err(|source| ApiError::Transport { method: "POST", path: path.to_string(), source })?;
        let answer = read(r, "POST", path).await?;
        let v = parse_json(path, &answer.body)?;
        match v.get("token").and_then(Value::as_str) {
            Some(t) => {
                self.token = Some(t.to_string());
                Ok(())
            }
            None => Err(ApiError::Status { method: "POST", path: path.to_string(), status: answer.status, message: "no token in the answer".to_string() }),
        }
    }

    /// A raw call: any status is returned, not turned into an error.
    pub async fn raw(&self, method: &'static str, path: &str, body: Option<&str>, timeout: Duration) -> Result<Answer, ApiError> {
        self.raw_at(&self.base, method, path, body, timeout).await
    }

    /// A raw call to another node (`base` like `http://host:port`) with this session's token.
    pub async fn raw_at(&self, base: &str, method: &'static str, path: &str, body: Option<&str>, timeout: Duration) -> Result<Answer, ApiError> {
        let url = format!("{base}{path}");
        let mut req = match method {
            "POST" => self.http.post(url),
            "PUT" => self.http.put(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.get(url),
        };
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.header(reqwest::header::CONTENT_TYPE, "application/json").body(b.to_string());
        }
        let r = req.timeout(timeout).send().await.map_err(|source| ApiError::Transport { method, path: path.to_string(), source })?;
        let status = r.status().as_u16();
        let body = r.text().await.map_err(|source| ApiError::Transport { method, path: path.to_string(), source })?;
        Ok(Answer { status, body })
    }

    /// GET of a JSON document; a non-2xx answer is an error carrying the API's message.
    pub async fn get_json(&self, path: &str) -> Result<Value, ApiError> {
        let a = self.checked("GET", path, self.endpoint.timeout).await?;
        parse_json(path, &a.body)
    }

    /// POST of an action; returns the manager's one-line answer, or its refusal as an error.
    pub async fn action(&self, path: &str) -> Result<String, ApiError> {
        let a = self.checked("POST", path, self.endpoint.action_timeout).await?;
        Ok(a.body.trim().to_string())
    }

    async fn checked(&self, method: &'static str, path: &str, timeout: Duration) -> Result<Answer, ApiError> {
        let a = self.raw(method, path, None, timeout).await?;
        if (200..300).contains(&a.status) {
            Ok(a)
        } else {
            Err(ApiError::Status { method, path: path.to_string(), status: a.status, message: a.body.trim().to_string() })
        }
    }
}

async fn read(r: reqwest::Response, method: &'static str, path: &str) -> Result<Answer, ApiError> {
    let status = r.status().as_u16();
    let body = r.text().await.map_err(|source| ApiError::Transport { method, path: path.to_string(), source })?;
    if (200..300).contains(&status) {
        Ok(Answer { status, body })
    } else {
        Err(ApiError::Status { method, path: path.to_string(), status, message: body.trim().to_string() })
    }
}

/// Parses a JSON answer, naming the route when it is not JSON.
pub fn parse_json(path: &str, body: &str) -> Result<Value, ApiError> {
    serde_json::from_str(body).map_err(|source| ApiError::NotJson { path: path.to_string(), body: body.chars().take(200).collect(), source })
}

/// Percent-encodes a path segment or query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_encoding() {
        let e = Endpoint { host: "::1".into(), port: 10001, https: true, insecure: false, timeout: Duration::from_secs(1), action_timeout: Duration::from_secs(1) };
        assert_eq!(e.base_url(), "https://[::1]:10001");
        assert_eq!(encode("127.0.0.1:3306"), "127.0.0.1%3A3306");
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
