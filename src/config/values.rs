//! The small value types of the configuration: failover mode, credentials, `host:port`.

/// How automatic failover is allowed to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailoverMode {
    /// Failover only when asked through the API.
    Manual,
    /// The monitor fails over by itself once detection and every constraint agree.
    Automatic,
}

/// A `user:password` pair as written in `*-credential` keys (split on the first `:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub user: String,
    pub password: String,
}

impl Credential {
    pub(crate) fn parse(raw: &str) -> Option<Credential> {
        let (user, password) = raw.split_once(':')?;
        if user.is_empty() {
            return None;
        }
        Some(Credential { user: user.to_string(), password: password.to_string() })
    }
}

/// A database server address as configured (`host:port`, port 3306 when omitted).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses `host`, `host:port` or `[v6]:port`.
    pub fn parse(raw: &str) -> Option<HostPort> {
        let raw = raw.trim();
        if raw.is_empty() {
            return None;
        }
        if let Some(rest) = raw.strip_prefix('[') {
            let (host, tail) = rest.split_once(']')?;
            let port = match tail.strip_prefix(':') {
                Some(p) => p.parse().ok()?,
                None if tail.is_empty() => 3306,
                None => return None,
            };
            return Some(HostPort { host: host.to_string(), port });
        }
        match raw.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() => {
                Some(HostPort { host: host.to_string(), port: port.parse().ok().filter(|p| *p > 0)? })
            }
            Some(_) => None,
            None => Some(HostPort { host: raw.to_string(), port: 3306 }),
        }
    }
}

impl HostPort {
    /// True when the host is on the loopback interface (`localhost`, `127.x`, `::1`).
    pub fn is_loopback(&self) -> bool {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost" || host == "::1" || host.starts_with("127.")
    }
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// CRC-64 with the reflected ECMA-182 polynomial, initial and final value all ones (Go's
/// `crc64.Checksum(data, crc64.MakeTable(crc64.ECMA))`, also known as CRC-64/XZ).
pub fn crc64_ecma(data: &[u8]) -> u64 {
    const POLY: u64 = 0xC96C_5795_D787_0F42;
    let mut crc = !0u64;
    for b in data {
        crc ^= u64::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ POLY } else { crc >> 1 };
        }
    }
    !crc
}
