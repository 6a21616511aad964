//! Configuration in replication-manager's TOML shape: a `[Default]` section plus one section
//! per cluster, kebab-case keys with the Go project's names and defaults, `--key=value` overrides.
//!
//! Resolution order for a cluster key (lowest to highest): built-in default, `[Default]`,
//! the cluster's own section, command-line `--key=value`. Unknown keys are kept (they are shown
//! in the cluster's `config` object) and reported once with a warning; a known key with a value
//! that cannot be parsed stops the start with an error naming the key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

/// A configuration error; every variant names the key or file it is about.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config file {path} is not valid TOML: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
    #[error("config key `{key}`{section}: {reason} (got {value})")]
    BadValue { key: String, section: String, value: String, reason: String },
    #[error("config key `{key}`{section}: {reason}")]
    Invalid { key: String, section: String, reason: String },
    #[error("config section [{0}] is not a table")]
    NotATable(String),
    #[error("no cluster configured: set db-servers-hosts in [Default] or add a cluster section")]
    NoCluster,
}

/// The value type a known key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Float,
    Bool,
}

/// One known key: its name, type, default and whether it is a secret masked in responses.
struct KeySpec {
    name: &'static str,
    kind: Kind,
    default: &'static str,
    secret: bool,
}

const fn key(name: &'static str, kind: Kind, default: &'static str) -> KeySpec {
    KeySpec { name, kind, default, secret: false }
}

const fn secret(name: &'static str, default: &'static str) -> KeySpec {
    KeySpec { name, kind: Kind::Str, default, secret: true }
}

/// Every key this manager understands, with the Go project's defaults.
const KEYS: &[KeySpec] = &[
    key("db-servers-hosts", Kind::Str, ""),
    secret("db-servers-credential", "root:mariadb"),
    secret("replication-credential", "root:mariadb"),
    key("db-servers-prefered-master", Kind::Str, ""),
    key("db-servers-ignored-hosts", Kind::Str, ""),
    key("db-servers-ignored-readonly", Kind::Str, ""),
    key("db-servers-connect-timeout", Kind::Float, "5"),
    key("replication-source-name", Kind::Str, ""),
    key("monitoring-ticker", Kind::Float, "2"),
    key("monitoring-datadir", Kind::Str, "/var/lib/replication-manager"),
    key("monitoring-ssl-cert", Kind::Str, ""),
    key("monitoring-ssl-key", Kind::Str, ""),
    key("failover-mode", Kind::Str, "manual"),
    key("failover-limit", Kind::Int, "5"),
    key("failover-time-limit", Kind::Int, "0"),
    key("failover-max-slave-delay", Kind::Int, "30"),
    key("failover-falsepositive-ping-counter", Kind::Int, "5"),
    key("failover-falsepositive-heartbeat", Kind::Bool, "true"),
    key("failover-falsepositive-heartbeat-timeout", Kind::Int, "3"),
    key("failover-at-sync", Kind::Bool, "false"),
    key("failover-readonly-state", Kind::Bool, "true"),
    key("failover-fence-script", Kind::Str, ""),
    key("failover-fence-script-timeout", Kind::Int, "30"),
    key("failover-restart-unsafe", Kind::Bool, "false"),
    key("check-replication-state", Kind::Bool, "true"),
    key("switchover-wait-trx", Kind::Int, "10"),
    key("switchover-wait-kill", Kind::Int, "5000"),
    key("switchover-wait-write-query", Kind::Int, "10"),
    key("switchover-at-sync", Kind::Bool, "false"),
    key("switchover-slave-wait-catch", Kind::Bool, "true"),
    key("switchover-wait-catch", Kind::Int, "30"),
    key("autorejoin", Kind::Bool, "true"),
    key("autorejoin-flashback", Kind::Bool, "false"),
    key("autorejoin-mysqldump", Kind::Bool, "false"),
    key("force-slave-heartbeat-time", Kind::Int, "3"),
    key("force-slave-heartbeat-retry", Kind::Int, "5"),
    secret("api-credentials", "admin:repman"),
    secret("api-credentials-external", ""),
    key("api-credentials-acl-allow", Kind::Str, "admin:global cluster proxy db prov,dba:cluster proxy db,foo:"),
    key("api-token-timeout", Kind::Int, "48"),
    key("http-server", Kind::Bool, "true"),
    key("http-bind-address", Kind::Str, "localhost"),
    key("http-port", Kind::Int, "10001"),
    key("api-bind", Kind::Str, "0.0.0.0"),
    key("api-port", Kind::Int, "0"),
    key("log-file", Kind::Str, ""),
    key("log-level", Kind::Str, "info"),
    key("monitoring-pause", Kind::Bool, "false"),
    key("test", Kind::Bool, "false"),
    key("prov-orchestrator", Kind::Str, "onpremise"),
    key("prov-db-start-command", Kind::Str, ""),
    key("prov-db-stop-command", Kind::Str, ""),
    key("prov-db-provision-command", Kind::Str, ""),
    key("prov-db-unprovision-command", Kind::Str, ""),
    key("backup-timeout", Kind::Int, "3600"),
    key("raft-node-id", Kind::Int, "1"),
    key("raft-bind-address", Kind::Str, "127.0.0.1:10101"),
    key("raft-peers", Kind::Str, ""),
    key("raft-peers-http", Kind::Str, ""),
    key("raft-role", Kind::Str, "manager"),
    key("raft-arbitrators", Kind::Str, ""),
    secret("raft-secret", ""),
    key("raft-heartbeat-ms", Kind::Int, "250"),
    key("raft-election-min-ms", Kind::Int, "1500"),
    key("raft-election-max-ms", Kind::Int, "3000"),
];

/// Known keys that have no effect in this manager, with the reason reported at start.
pub const ACCEPTED_BUT_IGNORED: &[(&str, &str)] = &[
    (
        "db-servers-ignored-readonly",
        "the manager always keeps every server but the master read-only (a server is never left writable beside the master)",
    ),
    (
        "failover-restart-unsafe",
        "a master that restarts is reopened or failed over by the normal rules; no unsafe restart mode is offered",
    ),
];

fn spec(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name == name)
}

/// Names of keys that hold secrets and are masked as `"*:*"` in every response.
pub fn is_secret(name: &str) -> bool {
    spec(name).is_some_and(|k| k.secret)
}

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
    fn parse(raw: &str) -> Option<Credential> {
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

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Settings of one cluster, resolved from defaults, `[Default]`, its section and flags.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Section name, used as the cluster name in the API.
    pub name: String,
    /// `db-servers-hosts`: servers to monitor, in configured order.
    pub hosts: Vec<HostPort>,
    /// `db-servers-credential`: account the manager uses on every server.
    pub db_credential: Credential,
    /// `replication-credential`: account replicas use to connect to the master.
    pub replication_credential: Credential,
    /// `db-servers-prefered-master`: preferred candidates, in order.
    pub prefered_master: Vec<HostPort>,
    /// `db-servers-ignored-hosts`: never elected as master.
    pub ignored_hosts: Vec<HostPort>,
    /// `db-servers-connect-timeout` (seconds): deadline for connect and for each statement.
    pub connect_timeout: Duration,
    /// `replication-source-name`: the managed replication connection (default: unnamed).
    pub replication_source_name: String,
    /// `monitoring-ticker` (seconds, decimals allowed, default 2): time between probe rounds.
    pub monitoring_ticker: Duration,
    /// `failover-mode` (default manual).
    pub failover_mode: FailoverMode,
    /// `failover-limit` (default 5, 0 = unlimited): automatic failovers allowed before a reset.
    pub failover_limit: u64,
    /// `failover-time-limit` (seconds, default 0 = none): minimum time between two failovers.
    pub failover_time_limit: u64,
    /// `failover-max-slave-delay` (seconds, default 30, -1 = off): replicas further behind are
    /// `SlaveLate` and not electable.
    pub failover_max_slave_delay: i64,
    /// `failover-falsepositive-ping-counter` (default 5): consecutive failed probes before `Failed`.
    pub falsepositive_ping_counter: u32,
    /// `failover-falsepositive-heartbeat` (default true): require the replicas to have lost the
    /// master too before failing over.
    pub falsepositive_heartbeat: bool,
    /// `failover-falsepositive-heartbeat-timeout` (seconds, default 3).
    pub falsepositive_heartbeat_timeout: Duration,
    /// `failover-at-sync` (default false): elect only a replica that was semi-sync in sync.
    pub failover_at_sync: bool,
    /// `failover-readonly-state` (default true): keep replicas read-only.
    pub failover_readonly_state: bool,
    /// `check-replication-state` (default true): replication health gates elections.
    pub check_replication_state: bool,
    /// `switchover-wait-trx` (seconds, default 10).
    pub switchover_wait_trx: u64,
    /// `switchover-wait-kill` (milliseconds, default 5000).
    pub switchover_wait_kill: Duration,
    /// `switchover-wait-write-query` (seconds, default 10).
    pub switchover_wait_write_query: u64,
    /// `switchover-at-sync` (default false).
    pub switchover_at_sync: bool,
    /// `switchover-wait-catch` (seconds, default 30): how long the candidate and the replicas
    /// may take to reach the locked master's position; past it the switchover is undone.
    pub switchover_wait_catch: Duration,
    /// `failover-fence-script` (default empty: none): a STONITH-style command run with the old
    /// master's host and port as arguments before every promotion; the promotion waits for it
    /// to exit 0, and a failure or a timeout blocks it.
    pub fence_script: String,
    /// `failover-fence-script-timeout` (seconds, default 30).
    pub fence_script_timeout: Duration,
    /// `switchover-slave-wait-catch` (default true): the other replicas wait (bounded by
    /// `switchover-wait-catch`) for the old master's final position before they are repointed.
    pub switchover_slave_wait_catch: bool,
    /// `autorejoin` (default true): rejoin a returning old master as a replica.
    pub autorejoin: bool,
    /// `autorejoin-flashback` (default false).
    pub autorejoin_flashback: bool,
    /// `autorejoin-mysqldump` (default false).
    pub autorejoin_mysqldump: bool,
    /// `force-slave-heartbeat-time` (seconds, default 3): MASTER_HEARTBEAT_PERIOD set on replicas.
    pub slave_heartbeat_time: u64,
    /// `force-slave-heartbeat-retry` (seconds, default 5): MASTER_CONNECT_RETRY set on replicas.
    pub slave_heartbeat_retry: u64,
    /// `api-credentials` + `api-credentials-external`: API users.
    pub api_users: Vec<Credential>,
    /// `api-credentials-acl-allow`: `user:prefix prefix,...` grant prefixes.
    pub api_acl_allow: String,
    /// `api-token-timeout` (hours, default 48).
    pub api_token_timeout_hours: u64,
    /// `monitoring-pause` (default false): skip probing.
    pub monitoring_pause: bool,
    /// `test` (default false): allow the destructive regression scenarios of `tests/actions/run`.
    pub test: bool,
    /// `prov-orchestrator`: `onpremise` (default: the commands below) or `local` (the manager
    /// creates and runs the mariadbd of loopback servers itself).
    pub orchestrator: String,
    /// `prov-db-start-command`, `-stop-`, `-provision-`, `-unprovision-command`: shell commands
    /// run for server actions; `{host}`, `{port}` and `{cluster}` are replaced.
    pub start_command: String,
    pub stop_command: String,
    pub provision_command: String,
    pub unprovision_command: String,
    /// `backup-timeout` (seconds, default 3600): deadline of a backup or optimize job.
    pub backup_timeout: Duration,
    /// Every key of this cluster (known with defaults applied, and unknown ones), for the API.
    pub raw: BTreeMap<String, Value>,
}

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
    /// The manager group.
    pub group: GroupSettings,
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
    /// `raft-heartbeat-ms` (250), `raft-election-min-ms` (1500), `raft-election-max-ms` (3000).
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// `raft-secret`: shared secret every raft RPC must carry (the same on all nodes; empty:
    /// no check, keep the raft port on a trusted network).
    pub secret: Option<String>,
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
        Ok(GroupSettings { node_id, bind, peers, role, heartbeat_ms, election_min_ms, election_max_ms, secret })
    }
}

/// The whole configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub clusters: Vec<ClusterConfig>,
    /// Human-readable warnings (unknown keys), to be logged once at start.
    pub warnings: Vec<String>,
    /// The files this configuration was read from (for `settings/reload`).
    pub source: Option<PathBuf>,
    /// The `--key=value` overrides given on the command line (kept for `settings/reload`).
    pub cli_overrides: Vec<(String, String)>,
}

impl Config {
    /// Reads `path` (if any) and applies `overrides` (`key`, `value`) on top of every section.
    pub fn load(path: Option<&Path>, overrides: &[(String, String)]) -> Result<Config, ConfigError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|source| ConfigError::Read { path: p.to_path_buf(), source })?,
            None => String::new(),
        };
        let mut cfg = Config::from_toml_str(&text, path.unwrap_or(Path::new("<flags>")), overrides)?;
        cfg.source = path.map(Path::to_path_buf);
        Ok(cfg)
    }

    /// Parses a TOML document (see [`Config::load`]).
    pub fn from_toml_str(
        text: &str,
        origin: &Path,
        overrides: &[(String, String)],
    ) -> Result<Config, ConfigError> {
        let doc: toml::Table = text
            .parse()
            .map_err(|e| ConfigError::Parse { path: origin.to_path_buf(), source: Box::new(e) })?;
        let mut warnings = Vec::new();
        let mut default_section = Map::new();
        let mut cluster_sections: Vec<(String, Map<String, Value>)> = Vec::new();
        for (name, item) in &doc {
            let table = match item {
                toml::Value::Table(t) => t,
                // A top-level key outside any section: treat it like [Default].
                other => {
                    default_section.insert(name.clone(), toml_to_json(other));
                    continue;
                }
            };
            let map: Map<String, Value> =
                table.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect();
            if name.eq_ignore_ascii_case("default") {
                default_section.extend(map);
            } else if table.values().any(|v| matches!(v, toml::Value::Table(_))) {
                return Err(ConfigError::NotATable(name.clone()));
            } else {
                cluster_sections.push((name.clone(), map));
            }
        }
        let flag_map: Map<String, Value> =
            overrides.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect();

        let mut seen_unknown = std::collections::BTreeSet::new();
        for key in default_section.keys().chain(flag_map.keys()) {
            if spec(key).is_none() && seen_unknown.insert(key.clone()) {
                warnings.push(format!("unknown config key `{key}` in [Default] or flags: kept and ignored"));
            }
        }
        for (section, map) in &cluster_sections {
            for key in map.keys() {
                if spec(key).is_none() && seen_unknown.insert(key.clone()) {
                    warnings.push(format!("unknown config key `{key}` in [{section}]: kept and ignored"));
                }
            }
        }
        // Keys of the Go project this manager accepts but does not act on: said once, so an
        // operator never believes a setting works when it does not.
        let mut seen_ignored = std::collections::BTreeSet::new();
        for map in std::iter::once(&default_section).chain(std::iter::once(&flag_map)).chain(cluster_sections.iter().map(|(_, m)| m)) {
            for (key, why) in ACCEPTED_BUT_IGNORED {
                if map.contains_key(*key) && seen_ignored.insert(*key) {
                    warnings.push(format!("config key `{key}` is accepted but ignored: {why}"));
                }
            }
        }

        // The manager-wide part: [Default] + flags.
        let mut global = default_section.clone();
        global.extend(flag_map.clone());
        let server = ServerConfig::from_map(&global)?;

        if cluster_sections.is_empty() {
            let hosts = global.get("db-servers-hosts").map(value_text).unwrap_or_default();
            if hosts.trim().is_empty() {
                return Err(ConfigError::NoCluster);
            }
            cluster_sections.push(("Default".to_string(), Map::new()));
        }
        let mut clusters = Vec::new();
        for (name, section) in cluster_sections {
            let mut merged = default_section.clone();
            merged.extend(section);
            merged.extend(flag_map.clone());
            clusters.push(ClusterConfig::from_map(&name, &merged)?);
        }
        clusters.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(Config { server, clusters, warnings, source: None, cli_overrides: overrides.to_vec() })
    }

    /// The cluster named `name`.
    #[cfg(test)]
    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }
}

fn toml_to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f).map(Value::Number).unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(toml_to_json).collect()),
        toml::Value::Table(t) => Value::Object(t.iter().map(|(k, v)| (k.clone(), toml_to_json(v))).collect()),
    }
}

/// The text form of a value as an operator would have written it.
fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Typed access to one section's merged keys, producing errors that name the key.
struct Section<'a> {
    name: &'a str,
    map: &'a Map<String, Value>,
}

impl Section<'_> {
    fn where_(&self) -> String {
        if self.name.is_empty() { String::new() } else { format!(" in [{}]", self.name) }
    }

    fn bad(&self, key: &str, value: &Value, reason: &str) -> ConfigError {
        ConfigError::BadValue {
            key: key.to_string(),
            section: self.where_(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { key: key.to_string(), section: self.where_(), reason: reason.into() }
    }

    /// The configured value, or the key's default as a JSON string.
    fn value(&self, key: &str) -> Value {
        match self.map.get(key) {
            Some(v) => v.clone(),
            None => Value::String(spec(key).map(|k| k.default).unwrap_or("").to_string()),
        }
    }

    fn str(&self, key: &str) -> Result<String, ConfigError> {
        let v = self.value(key);
        match &v {
            Value::String(_) | Value::Array(_) | Value::Number(_) => Ok(value_text(&v)),
            _ => Err(self.bad(key, &v, "expected a string")),
        }
    }

    fn int(&self, key: &str) -> Result<i64, ConfigError> {
        let v = self.value(key);
        match &v {
            Value::Number(n) => n.as_i64().ok_or_else(|| self.bad(key, &v, "expected an integer")),
            Value::String(s) => s.trim().parse().map_err(|_| self.bad(key, &v, "expected an integer")),
            _ => Err(self.bad(key, &v, "expected an integer")),
        }
    }

    fn uint(&self, key: &str) -> Result<u64, ConfigError> {
        let i = self.int(key)?;
        u64::try_from(i).map_err(|_| self.bad(key, &Value::from(i), "expected a value >= 0"))
    }

    fn float(&self, key: &str) -> Result<f64, ConfigError> {
        let v = self.value(key);
        let f = match &v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        };
        match f {
            Some(f) if f.is_finite() => Ok(f),
            _ => Err(self.bad(key, &v, "expected a number")),
        }
    }

    fn seconds(&self, key: &str) -> Result<Duration, ConfigError> {
        let f = self.float(key)?;
        if f <= 0.0 || f > 86_400.0 {
            return Err(self.bad(key, &Value::from(f), "expected seconds between 0 (excluded) and 86400"));
        }
        Ok(Duration::from_secs_f64(f))
    }

    fn bool(&self, key: &str) -> Result<bool, ConfigError> {
        let v = self.value(key);
        match &v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "on" | "yes" | "1" => Ok(true),
                "false" | "off" | "no" | "0" => Ok(false),
                _ => Err(self.bad(key, &v, "expected true or false")),
            },
            Value::Number(n) if n.as_i64() == Some(0) => Ok(false),
            Value::Number(n) if n.as_i64() == Some(1) => Ok(true),
            _ => Err(self.bad(key, &v, "expected true or false")),
        }
    }

    fn credential(&self, key: &str) -> Result<Credential, ConfigError> {
        let raw = self.str(key)?;
        Credential::parse(&raw).ok_or_else(|| self.invalid(key, "expected user:password"))
    }

    fn host_list(&self, key: &str) -> Result<Vec<HostPort>, ConfigError> {
        let raw = self.str(key)?;
        let mut out = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let hp = HostPort::parse(item)
                .ok_or_else(|| self.invalid(key, format!("`{item}` is not host or host:port")))?;
            if out.contains(&hp) {
                return Err(self.invalid(key, format!("`{item}` is listed twice")));
            }
            out.push(hp);
        }
        Ok(out)
    }
}

impl ServerConfig {
    fn from_map(map: &Map<String, Value>) -> Result<ServerConfig, ConfigError> {
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

fn check_kind(s: &Section<'_>, k: &KeySpec) -> Result<(), ConfigError> {
    match k.kind {
        Kind::Str => s.str(k.name).map(|_| ()),
        Kind::Int => s.int(k.name).map(|_| ()),
        Kind::Float => s.float(k.name).map(|_| ()),
        Kind::Bool => s.bool(k.name).map(|_| ()),
    }
}

impl ClusterConfig {
    fn from_map(name: &str, map: &Map<String, Value>) -> Result<ClusterConfig, ConfigError> {
        let s = Section { name, map };
        for k in KEYS.iter().filter(|k| map.contains_key(k.name)) {
            check_kind(&s, k)?;
        }
        let hosts = s.host_list("db-servers-hosts")?;
        if hosts.is_empty() {
            return Err(s.invalid("db-servers-hosts", "no database server listed"));
        }
        let failover_mode = match s.str("failover-mode")?.trim().to_ascii_lowercase().as_str() {
            "manual" => FailoverMode::Manual,
            "automatic" | "auto" => FailoverMode::Automatic,
            other => return Err(s.invalid("failover-mode", format!("`{other}` is not manual or automatic"))),
        };
        let counter = s.int("failover-falsepositive-ping-counter")?;
        let falsepositive_ping_counter = u32::try_from(counter)
            .ok()
            .filter(|c| (1..=1000).contains(c))
            .ok_or_else(|| s.invalid("failover-falsepositive-ping-counter", "expected 1 to 1000"))?;
        let max_delay = s.int("failover-max-slave-delay")?;
        if max_delay < -1 {
            return Err(s.invalid("failover-max-slave-delay", "expected -1 (off) or seconds >= 0"));
        }
        let mut api_users = Vec::new();
        for key in ["api-credentials", "api-credentials-external"] {
            for pair in s.str(key)?.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let cred = Credential::parse(pair)
                    .ok_or_else(|| s.invalid(key, "expected user:password[,user:password...]"))?;
                api_users.push(cred);
            }
        }
        let prefered_master = s.host_list("db-servers-prefered-master")?;
        let ignored_hosts = s.host_list("db-servers-ignored-hosts")?;
        for hp in prefered_master.iter().chain(&ignored_hosts) {
            if !hosts.contains(hp) {
                tracing::warn!(cluster = name, server = %hp, "preferred or ignored host is not in db-servers-hosts");
            }
        }

        let mut raw = BTreeMap::new();
        for k in KEYS {
            raw.insert(k.name.to_string(), s.value(k.name));
        }
        for (k, v) in map {
            raw.insert(k.clone(), v.clone());
        }
        Ok(ClusterConfig {
            name: name.to_string(),
            hosts,
            db_credential: s.credential("db-servers-credential")?,
            replication_credential: s.credential("replication-credential")?,
            prefered_master,
            ignored_hosts,
            connect_timeout: s.seconds("db-servers-connect-timeout")?,
            replication_source_name: s.str("replication-source-name")?,
            monitoring_ticker: s.seconds("monitoring-ticker")?,
            failover_mode,
            failover_limit: s.uint("failover-limit")?,
            failover_time_limit: s.uint("failover-time-limit")?,
            failover_max_slave_delay: max_delay,
            falsepositive_ping_counter,
            falsepositive_heartbeat: s.bool("failover-falsepositive-heartbeat")?,
            falsepositive_heartbeat_timeout: Duration::from_secs(s.uint("failover-falsepositive-heartbeat-timeout")?),
            failover_at_sync: s.bool("failover-at-sync")?,
            failover_readonly_state: s.bool("failover-readonly-state")?,
            check_replication_state: s.bool("check-replication-state")?,
            switchover_wait_trx: s.uint("switchover-wait-trx")?,
            switchover_wait_kill: Duration::from_millis(s.uint("switchover-wait-kill")?),
            switchover_wait_write_query: s.uint("switchover-wait-write-query")?,
            switchover_at_sync: s.bool("switchover-at-sync")?,
            switchover_wait_catch: Duration::from_secs(s.uint("switchover-wait-catch")?.max(1)),
            switchover_slave_wait_catch: s.bool("switchover-slave-wait-catch")?,
            fence_script: s.str("failover-fence-script")?,
            fence_script_timeout: Duration::from_secs(s.uint("failover-fence-script-timeout")?.max(1)),
            autorejoin: s.bool("autorejoin")?,
            autorejoin_flashback: s.bool("autorejoin-flashback")?,
            autorejoin_mysqldump: s.bool("autorejoin-mysqldump")?,
            slave_heartbeat_time: s.uint("force-slave-heartbeat-time")?,
            slave_heartbeat_retry: s.uint("force-slave-heartbeat-retry")?,
            api_users,
            api_acl_allow: s.str("api-credentials-acl-allow")?,
            api_token_timeout_hours: s.uint("api-token-timeout")?,
            monitoring_pause: s.bool("monitoring-pause")?,
            test: s.bool("test")?,
            orchestrator: match s.str("prov-orchestrator")?.trim() {
                o @ ("onpremise" | "local") => o.to_string(),
                other => return Err(s.invalid("prov-orchestrator", format!("`{other}` is not onpremise or local"))),
            },
            start_command: s.str("prov-db-start-command")?,
            stop_command: s.str("prov-db-stop-command")?,
            provision_command: s.str("prov-db-provision-command")?,
            unprovision_command: s.str("prov-db-unprovision-command")?,
            backup_timeout: Duration::from_secs(s.uint("backup-timeout")?.max(1)),
            raw,
        })
    }

    /// This configuration with `settings` (key, value text) applied on top, validated like the
    /// file: the error names the key.
    pub fn with_settings(&self, settings: &BTreeMap<String, String>) -> Result<ClusterConfig, ConfigError> {
        let mut map: Map<String, Value> = self.raw.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in settings {
            if spec(k).is_none() {
                return Err(ConfigError::Invalid { key: k.clone(), section: format!(" in [{}]", self.name), reason: "unknown setting".to_string() });
            }
            map.insert(k.clone(), Value::String(v.clone()));
        }
        ClusterConfig::from_map(&self.name, &map)
    }

    /// Whether `key` is a boolean setting (for `settings/switch`).
    pub fn is_bool_setting(key: &str) -> bool {
        spec(key).is_some_and(|k| k.kind == Kind::Bool)
    }

    /// The current value of a setting as text.
    pub fn setting_text(&self, key: &str) -> Option<String> {
        self.raw.get(key).map(value_text)
    }

    /// The cluster's settings as the API shows them: lowerCamel keys, secrets as `"*:*"`.
    pub fn masked_json(&self) -> Value {
        let mut out = Map::new();
        for (k, v) in &self.raw {
            let shown = if is_secret(k) { Value::String("*:*".to_string()) } else { v.clone() };
            out.insert(lower_camel(k), shown);
        }
        Value::Object(out)
    }
}

/// `failover-max-slave-delay` -> `failoverMaxSlaveDelay` (the Go project's JSON names).
pub fn lower_camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '-' || c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits `--key=value` arguments; returns the overrides and the remaining arguments.
pub fn split_flag_overrides(args: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let mut overrides = Vec::new();
    let mut rest = Vec::new();
    for a in args {
        match a.strip_prefix("--").and_then(|kv| kv.split_once('=')) {
            Some((k, v)) if k != "config" => overrides.push((k.to_string(), v.to_string())),
            _ => rest.push(a.clone()),
        }
    }
    (overrides, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, flags: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let flags: Vec<(String, String)> = flags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_toml_str(text, Path::new("test.toml"), &flags)
    }

    #[test]
    fn default_section_applies_to_clusters_unless_overridden() {
        let cfg = load(
            r#"
            [Default]
            monitoring-ticker = 0.5
            failover-mode = "automatic"
            [c1]
            db-servers-hosts = "127.0.0.1:3310,127.0.0.1:3311"
            [c2]
            db-servers-hosts = "127.0.0.1:3320"
            failover-mode = "manual"
            "#,
            &[],
        )
        .unwrap();
        assert_eq!(cfg.clusters.len(), 2);
        let c1 = cfg.cluster("c1").unwrap();
        assert_eq!(c1.monitoring_ticker, Duration::from_millis(500));
        assert_eq!(c1.failover_mode, FailoverMode::Automatic);
        assert_eq!(c1.hosts[1], HostPort { host: "127.0.0.1".into(), port: 3311 });
        assert_eq!(cfg.cluster("c2").unwrap().failover_mode, FailoverMode::Manual);
        assert_eq!(c1.falsepositive_ping_counter, 5);
        assert_eq!(cfg.server.http_port, 10001);
    }

    #[test]
    fn flags_override_file_and_cluster_sections() {
        let cfg = load(
            "[c1]\ndb-servers-hosts = \"a:1\"\nfailover-limit = 3\n",
            &[("failover-limit", "7"), ("http-port", "18001")],
        )
        .unwrap();
        assert_eq!(cfg.cluster("c1").unwrap().failover_limit, 7);
        assert_eq!(cfg.server.http_port, 18001);
    }

    #[test]
    fn bad_value_names_the_key() {
        let err = load("[c1]\ndb-servers-hosts = \"a:1\"\nmonitoring-ticker = \"fast\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("monitoring-ticker"), "{err}");
        let err = load("[c1]\ndb-servers-hosts = \"a:notaport\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("db-servers-hosts"), "{err}");
        let err = load("[c1]\ndb-servers-hosts = \"a\"\nfailover-mode = \"sometimes\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("failover-mode"), "{err}");
        let err = load("[c1]\ndb-servers-hosts = \"a\"\ndb-servers-credential = \"nocolon\"\n", &[]).unwrap_err();
        assert!(err.to_string().contains("db-servers-credential"), "{err}");
        let err = load("[c1]\ndb-servers-hosts = \"a\"\n", &[("http-port", "99999")]).unwrap_err();
        assert!(err.to_string().contains("http-port"), "{err}");
    }

    #[test]
    fn unknown_keys_are_kept_with_one_warning() {
        let cfg = load(
            "[Default]\nsome-future-key = 1\n[c1]\ndb-servers-hosts = \"a\"\nsome-future-key = 2\n",
            &[],
        )
        .unwrap();
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert_eq!(cfg.cluster("c1").unwrap().raw["some-future-key"], Value::from(2));
        let cfg = load("[c1]\ndb-servers-hosts = \"a\"\nfailover-restart-unsafe = true\n", &[]).unwrap();
        assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
        assert!(cfg.warnings[0].contains("failover-restart-unsafe` is accepted but ignored"), "{:?}", cfg.warnings);
    }

    #[test]
    fn default_only_config_is_one_cluster_and_secrets_are_masked() {
        let cfg = load("[Default]\ndb-servers-hosts = \"h1:3306\"\ndb-servers-credential = \"u:p:w\"\n", &[]).unwrap();
        let c = &cfg.clusters[0];
        assert_eq!(c.name, "Default");
        assert_eq!(c.db_credential, Credential { user: "u".into(), password: "p:w".into() });
        let shown = c.masked_json();
        assert_eq!(shown["dbServersCredential"], "*:*");
        assert_eq!(shown["apiCredentials"], "*:*");
        assert_eq!(shown["failoverMode"], "manual");
    }

    #[test]
    fn settings_overrides_are_validated() {
        let cfg = load("[c1]\ndb-servers-hosts = \"a\"\n", &[]).unwrap();
        let c = &cfg.clusters[0];
        let mut s = BTreeMap::new();
        s.insert("failover-mode".to_string(), "automatic".to_string());
        assert_eq!(c.with_settings(&s).unwrap().failover_mode, FailoverMode::Automatic);
        s.insert("failover-limit".to_string(), "lots".to_string());
        assert!(c.with_settings(&s).unwrap_err().to_string().contains("failover-limit"));
        let mut bad = BTreeMap::new();
        bad.insert("no-such-key".to_string(), "1".to_string());
        assert!(c.with_settings(&bad).is_err());
        assert!(ClusterConfig::is_bool_setting("autorejoin"));
        assert!(!ClusterConfig::is_bool_setting("failover-limit"));
        assert_eq!(c.setting_text("failover-limit").as_deref(), Some("5"));
    }

    #[test]
    fn manager_group_keys() {
        let base = "[c1]\ndb-servers-hosts = \"a\"\n";
        let cfg = load(base, &[]).unwrap();
        assert!(cfg.server.group.peers.is_empty(), "no raft keys: single-node group");
        assert_eq!(cfg.server.group.role, NodeRole::Manager);
        let cfg = load(
            base,
            &[
                ("raft-node-id", "2"),
                ("raft-peers", "1=127.0.0.1:11001,2=127.0.0.1:11002,3=127.0.0.1:11003"),
                ("raft-peers-http", "1=127.0.0.1:12001,2=127.0.0.1:12002"),
                ("raft-role", "arbitrator"),
            ],
        )
        .unwrap();
        let g = &cfg.server.group;
        assert_eq!(g.node_id, 2);
        assert_eq!(g.role, NodeRole::Arbitrator);
        assert_eq!(g.peers.len(), 3);
        assert_eq!(g.peers[1].http_addr, "127.0.0.1:12002");
        assert_eq!(g.peers[2].http_addr, "127.0.0.1:10001", "default: raft host with http-port");
        assert_eq!(g.peers[1].role, NodeRole::Arbitrator, "this node's own role");
        assert_eq!(g.peers[0].role, NodeRole::Manager);
        let cfg = load(base, &[("raft-peers", "1=127.0.0.1:11001,2=127.0.0.1:11002,3=127.0.0.1:11003"), ("raft-arbitrators", "3")]).unwrap();
        assert_eq!(cfg.server.group.peers[2].role, NodeRole::Arbitrator);
        let err = load(base, &[("raft-peers", "1=127.0.0.1:11001"), ("raft-arbitrators", "1")]).unwrap_err();
        assert!(err.to_string().contains("raft-"), "{err}");
        for (k, v) in [
            ("raft-peers", "1=127.0.0.1:11001,1=127.0.0.1:11002"),
            ("raft-peers", "x=127.0.0.1:1"),
            ("raft-peers", "2=nohostport"),
            ("raft-role", "king"),
            ("raft-bind-address", "somewhere"),
        ] {
            let err = load(base, &[("raft-node-id", "2"), (k, v)]).unwrap_err();
            assert!(err.to_string().contains(k), "{k}={v}: {err}");
        }
        let err = load(base, &[("raft-peers", "2=127.0.0.1:11002,3=127.0.0.1:11003")]).unwrap_err();
        assert!(err.to_string().contains("raft-node-id 1 is not listed"), "{err}");
    }

    #[test]
    fn no_cluster_is_an_error() {
        assert!(matches!(load("[Default]\n", &[]), Err(ConfigError::NoCluster)));
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(HostPort::parse("db1"), Some(HostPort { host: "db1".into(), port: 3306 }));
        assert_eq!(HostPort::parse("[::1]:3310"), Some(HostPort { host: "::1".into(), port: 3310 }));
        assert_eq!(HostPort::parse("db1:0"), None);
        assert_eq!(HostPort::parse(":3306"), None);
        assert_eq!(HostPort { host: "::1".into(), port: 1 }.to_string(), "[::1]:1");
    }

    #[test]
    fn flag_split() {
        let args: Vec<String> = ["--config=x", "--http-port=1", "monitor", "--failover-mode=automatic"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (o, rest) = split_flag_overrides(&args);
        assert_eq!(o.len(), 2);
        assert_eq!(rest, vec!["--config=x".to_string(), "monitor".to_string()]);
    }
}
