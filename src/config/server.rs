//! `ServerConfig`: the manager-wide settings (listeners, data dir, log level, the manager
//! group's `raft-*` keys).

use std::path::PathBuf;

use serde_json::{Map, Value};

use super::keys::KEYS;
use super::{check_kind, ConfigError, HostPort, Section};

/// Manager-wide settings (read from `[Default]` and flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `monitoring-datadir`: working directory (keys, certificates, state).
    pub datadir: PathBuf,
    /// `http-server` (default true): serve the plain HTTP listener.
    pub http_server: bool,
    /// `http-bind-address` (default localhost).
    pub http_bind_address: String,
    /// `http-port` (default 10001).
    pub http_port: u16,
    /// `api-bind` (default 0.0.0.0): TLS listener address.
    pub api_bind: String,
    /// `api-port` (default unset): TLS listener port; no TLS listener when 0.
    pub api_port: u16,
    /// `monitoring-ssl-cert` / `monitoring-ssl-key`: TLS certificate; self-signed when empty.
    pub ssl_cert: Option<PathBuf>,
    pub ssl_key: Option<PathBuf>,
    /// `log-file`: also write the log there.
    pub log_file: Option<PathBuf>,
    /// `log-level` (default info): error, warn, info, debug, trace or 1..4.
    pub log_level: String,
    /// `log-format` (default text): `text` (one readable line per event) or `json` (one JSON
    /// object per line, with the `cluster`, `server`, `op` and `term` fields at the top level).
    pub log_format: LogFormat,
    /// The manager group.
    pub group: GroupSettings,
}

/// How log events are written (`log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// A manager node's role in the group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeRole {
    /// Probes databases and may lead (and then act).
    Manager,
    /// Votes only: never probes, never touches a database, hands leadership to a manager.
    Arbitrator,
}

impl NodeRole {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeRole::Manager => "manager",
            NodeRole::Arbitrator => "arbitrator",
        }
    }
}

/// One voter of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub id: u64,
    /// From `raft-arbitrators` (and this node's own `raft-role`).
    pub role: NodeRole,
    /// Raft RPC listener (`raft-peers`).
    pub raft_addr: String,
    /// HTTP API address (`raft-peers-http`), used to forward mutating requests to the leader.
    pub http_addr: String,
}

/// The `raft-*` keys. Without `raft-peers` the node is a single-node group of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSettings {
    /// `raft-node-id` (default 1).
    pub node_id: u64,
    /// `raft-bind-address` (default 127.0.0.1:10101): raft RPC listener, separate from the API.
    pub bind: String,
    /// `raft-arbitrators` (`id,...`, the same on all nodes) marks arbitrator voters.
    /// `raft-peers` (`id=host:port,...`, every voter, the same on all nodes) joined with
    /// `raft-peers-http` (`id=host:port,...`; default: the peer's raft host with this node's
    /// http-port). Empty: single-node group.
    pub peers: Vec<Peer>,
    /// `raft-role`: manager (default) or arbitrator.
    pub role: NodeRole,
    /// `raft-heartbeat-ms` (100), `raft-election-min-ms` (500), `raft-election-max-ms` (1000).
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// `raft-secret`: shared secret every raft RPC must carry (the same on all nodes; empty:
    /// no check, keep the raft port on a trusted network).
    pub secret: Option<String>,
    /// `raft-tls-cert`, `raft-tls-key`, `raft-tls-ca` (PEM files, all three or none): mutual
    /// TLS on the raft RPC; peers must present a certificate the CA signed.
    pub tls: Option<RaftTlsFiles>,
}

/// The PEM files of the raft RPC's mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftTlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// True for an `ip:port` or `host:port` on the loopback interface.
fn is_loopback_addr(addr: &str) -> bool {
    HostPort::parse(addr).is_some_and(|h| h.is_loopback())
}

fn parse_id_map(s: &Section<'_>, key: &str) -> Result<Vec<(u64, String)>, ConfigError> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for item in s.str(key)?.split(',').map(str::trim).filter(|x| !x.is_empty()) {
        let (id, addr) = item.split_once('=').ok_or_else(|| s.invalid(key, format!("`{item}` is not id=host:port")))?;
        let id: u64 = id.trim().parse().map_err(|_| s.invalid(key, format!("`{id}` is not a node id")))?;
        let addr = addr.trim();
        if HostPort::parse(addr).is_none() || !addr.contains(':') {
            return Err(s.invalid(key, format!("`{addr}` is not host:port")));
        }
        if out.iter().any(|(i, _)| *i == id) {
            return Err(s.invalid(key, format!("node id {id} is listed twice")));
        }
        out.push((id, addr.to_string()));
    }
    Ok(out)
}

impl GroupSettings {
    fn from_section(s: &Section<'_>, http_port: u16) -> Result<GroupSettings, ConfigError> {
        let node_id = s.uint("raft-node-id")?;
        let role = match s.str("raft-role")?.trim() {
            "manager" | "" => NodeRole::Manager,
            "arbitrator" => NodeRole::Arbitrator,
            other => return Err(s.invalid("raft-role", format!("`{other}` is not manager or arbitrator"))),
        };
        let mut arbitrators = Vec::new();
        for id in s.str("raft-arbitrators")?.split(',').map(str::trim).filter(|x| !x.is_empty()) {
            arbitrators.push(id.parse::<u64>().map_err(|_| s.invalid("raft-arbitrators", format!("`{id}` is not a node id")))?);
        }
        let raft = parse_id_map(s, "raft-peers")?;
        let http = parse_id_map(s, "raft-peers-http")?;
        let mut peers = Vec::new();
        for (id, raft_addr) in raft {
            let http_addr = match http.iter().find(|(i, _)| *i == id) {
                Some((_, a)) => a.clone(),
                None => {
                    let host = HostPort::parse(&raft_addr).map(|h| h.host).unwrap_or_default();
                    format!("{host}:{http_port}")
                }
            };
            let role = if arbitrators.contains(&id) || (id == node_id && role == NodeRole::Arbitrator) {
                NodeRole::Arbitrator
            } else {
                NodeRole::Manager
            };
            peers.push(Peer { id, role, raft_addr, http_addr });
        }
        if !peers.is_empty() && !peers.iter().any(|p| p.id == node_id) {
            return Err(s.invalid("raft-peers", format!("this node's raft-node-id {node_id} is not listed")));
        }
        if let Some(id) = arbitrators.iter().find(|i| !peers.iter().any(|p| p.id == **i)) {
            return Err(s.invalid("raft-arbitrators", format!("node {id} is not in raft-peers")));
        }
        if role == NodeRole::Manager && arbitrators.contains(&node_id) {
            return Err(s.invalid("raft-role", "this node is listed in raft-arbitrators but its raft-role is manager"));
        }
        if !peers.is_empty() && peers.iter().all(|p| p.role == NodeRole::Arbitrator) {
            return Err(s.invalid("raft-arbitrators", "the group needs at least one manager"));
        }
        if let Some((id, _)) = http.iter().find(|(i, _)| !peers.iter().any(|p| p.id == *i)) {
            return Err(s.invalid("raft-peers-http", format!("node {id} is not in raft-peers")));
        }
        let bind = s.str("raft-bind-address")?;
        if bind.parse::<std::net::SocketAddr>().is_err() {
            return Err(s.invalid("raft-bind-address", format!("`{bind}` is not ip:port")));
        }
        let heartbeat_ms = s.uint("raft-heartbeat-ms")?;
        let election_min_ms = s.uint("raft-election-min-ms")?;
        let election_max_ms = s.uint("raft-election-max-ms")?;
        if heartbeat_ms == 0 || election_min_ms <= heartbeat_ms || election_max_ms <= election_min_ms {
            return Err(s.invalid(
                "raft-election-min-ms",
                "need 0 < raft-heartbeat-ms < raft-election-min-ms < raft-election-max-ms",
            ));
        }
        let secret = Some(s.str("raft-secret")?).filter(|v| !v.is_empty());
        let files = ["raft-tls-cert", "raft-tls-key", "raft-tls-ca"].map(|k| s.str(k).map(|v| v.trim().to_string()));
        let [cert, key, ca] = files;
        let (cert, key, ca) = (cert?, key?, ca?);
        let tls = match (cert.is_empty(), key.is_empty(), ca.is_empty()) {
            (true, true, true) => None,
            (false, false, false) => Some(RaftTlsFiles { cert: cert.into(), key: key.into(), ca: ca.into() }),
            _ => return Err(s.invalid("raft-tls-cert", "set raft-tls-cert, raft-tls-key and raft-tls-ca together, or none of them")),
        };
        // The replicated state (the API token signing key among it) must not be open to anyone
        // who reaches a raft port: a group beyond this host needs TLS or the shared secret.
        let off_host: Vec<&str> = peers.iter().map(|p| p.raft_addr.as_str()).chain([bind.as_str()]).filter(|a| !is_loopback_addr(a)).collect();
        if secret.is_none() && tls.is_none() && !peers.is_empty() && !off_host.is_empty() {
            return Err(s.invalid(
                "raft-secret",
                format!(
                    "the manager group listens on or reaches {} beyond loopback with neither TLS nor a secret: set raft-tls-cert/-key/-ca (mutual TLS, encrypted) and/or raft-secret (the same on every node)",
                    off_host.join(", ")
                ),
            ));
        }
        Ok(GroupSettings { node_id, bind, peers, role, heartbeat_ms, election_min_ms, election_max_ms, secret, tls })
    }
}

impl ServerConfig {
    pub(crate) fn from_map(map: &Map<String, Value>) -> Result<ServerConfig, ConfigError> {
        let s = Section { name: "Default", map };
        for k in KEYS.iter().filter(|k| map.contains_key(k.name)) {
            check_kind(&s, k)?;
        }
        let port = |key: &str| -> Result<u16, ConfigError> {
            let p = s.int(key)?;
            u16::try_from(p).map_err(|_| s.bad(key, &Value::from(p), "expected a TCP port (0-65535)"))
        };
        let http_port = port("http-port")?;
        if http_port == 0 {
            return Err(s.invalid("http-port", "must not be 0"));
        }
        let path = |key: &str| -> Result<Option<PathBuf>, ConfigError> {
            let v = s.str(key)?;
            Ok(if v.trim().is_empty() { None } else { Some(PathBuf::from(v.trim())) })
        };
        let log_level = s.str("log-level")?;
        if parse_log_level(&log_level).is_none() {
            return Err(s.invalid("log-level", format!("`{log_level}` is not error, warn, info, debug, trace or 0-4")));
        }
        let log_format = match s.str("log-format")?.trim().to_ascii_lowercase().as_str() {
            "text" | "" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => return Err(s.invalid("log-format", format!("`{other}` is not text or json"))),
        };
        let group = GroupSettings::from_section(&s, http_port)?;
        Ok(ServerConfig {
            group,
            datadir: PathBuf::from(s.str("monitoring-datadir")?),
            http_server: s.bool("http-server")?,
            http_bind_address: s.str("http-bind-address")?,
            http_port,
            api_bind: s.str("api-bind")?,
            api_port: port("api-port")?,
            ssl_cert: path("monitoring-ssl-cert")?,
            ssl_key: path("monitoring-ssl-key")?,
            log_file: path("log-file")?,
            log_level,
            log_format,
        })
    }
}

/// Maps `log-level` to a tracing filter directive.
pub fn parse_log_level(raw: &str) -> Option<&'static str> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "error" | "0" => Some("error"),
        "warn" | "warning" | "1" => Some("warn"),
        "info" | "2" | "" => Some("info"),
        "debug" | "3" => Some("debug"),
        "trace" | "4" => Some("trace"),
        _ => None,
    }
}
