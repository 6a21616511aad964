//! Configuration in replication-manager's TOML shape: a `[Default]` section plus one section
//! per cluster, kebab-case keys with the Go project's names and defaults, `--key=value` overrides.
//!
//! Resolution order for a cluster key (lowest to highest): built-in default, `[Default]`,
//! the cluster's own section, command-line `--key=value`. Unknown keys are kept (they are shown
//! in the cluster's `config` object) and reported once with a warning; a known key with a value
//! that cannot be parsed stops the start with an error naming the key.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};

mod cluster;
mod go_setting_names;
mod hooks;
mod keys;
mod proxy;
mod server;
mod setting_names;
mod values;

pub use cluster::ClusterConfig;
pub use hooks::HookConfig;
pub use keys::{is_secret, ACCEPTED_BUT_IGNORED};
pub use proxy::ProxySettings;
use keys::{spec, Kind, KeySpec};
pub use server::{parse_log_level, LogFormat, NodeRole, ServerConfig};
pub use values::{crc64_ecma, Credential, FailoverMode, HostPort};
pub use setting_names::{support as setting_support, SettingSupport};

/// Every setting name of the Go original's switch and set routes (for tests).
#[cfg(test)]
pub fn setting_names_for_tests() -> impl Iterator<Item = &'static str> {
    setting_names::GO_SWITCHES.iter().chain(setting_names::GO_SETS).copied()
}

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
pub(crate) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(value_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Typed access to one section's merged keys, producing errors that name the key.
pub(crate) struct Section<'a> {
    pub(crate) name: &'a str,
    pub(crate) map: &'a Map<String, Value>,
}

impl Section<'_> {
    pub(crate) fn where_(&self) -> String {
        if self.name.is_empty() { String::new() } else { format!(" in [{}]", self.name) }
    }

    pub(crate) fn bad(&self, key: &str, value: &Value, reason: &str) -> ConfigError {
        ConfigError::BadValue {
            key: key.to_string(),
            section: self.where_(),
            value: value.to_string(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn invalid(&self, key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { key: key.to_string(), section: self.where_(), reason: reason.into() }
    }

    /// The configured value, or the key's default as a JSON string.
    pub(crate) fn value(&self, key: &str) -> Value {
        match self.map.get(key) {
            Some(v) => v.clone(),
            None => Value::String(spec(key).map(|k| k.default).unwrap_or("").to_string()),
        }
    }

    pub(crate) fn str(&self, key: &str) -> Result<String, ConfigError> {
        let v = self.value(key);
        match &v {
            Value::String(_) | Value::Array(_) | Value::Number(_) => Ok(value_text(&v)),
            _ => Err(self.bad(key, &v, "expected a string")),
        }
    }

    pub(crate) fn int(&self, key: &str) -> Result<i64, ConfigError> {
        let v = self.value(key);
        match &v {
            Value::Number(n) => n.as_i64().ok_or_else(|| self.bad(key, &v, "expected an integer")),
            Value::String(s) => s.trim().parse().map_err(|_| self.bad(key, &v, "expected an integer")),
            _ => Err(self.bad(key, &v, "expected an integer")),
        }
    }

    pub(crate) fn uint(&self, key: &str) -> Result<u64, ConfigError> {
        let i = self.int(key)?;
        u64::try_from(i).map_err(|_| self.bad(key, &Value::from(i), "expected a value >= 0"))
    }

    pub(crate) fn float(&self, key: &str) -> Result<f64, ConfigError> {
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

    pub(crate) fn seconds(&self, key: &str) -> Result<Duration, ConfigError> {
        let f = self.float(key)?;
        if f <= 0.0 || f > 86_400.0 {
            return Err(self.bad(key, &Value::from(f), "expected seconds between 0 (excluded) and 86400"));
        }
        Ok(Duration::from_secs_f64(f))
    }

    pub(crate) fn bool(&self, key: &str) -> Result<bool, ConfigError> {
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

    pub(crate) fn credential(&self, key: &str) -> Result<Credential, ConfigError> {
        let raw = self.str(key)?;
        Credential::parse(&raw).ok_or_else(|| self.invalid(key, "expected user:password"))
    }

    pub(crate) fn host_list(&self, key: &str) -> Result<Vec<HostPort>, ConfigError> {
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

pub(crate) fn check_kind(s: &Section<'_>, k: &KeySpec) -> Result<(), ConfigError> {
    match k.kind {
        Kind::Str => s.str(k.name).map(|_| ()),
        Kind::Int => s.int(k.name).map(|_| ()),
        Kind::Float => s.float(k.name).map(|_| ()),
        Kind::Bool => s.bool(k.name).map(|_| ()),
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
    use std::collections::BTreeMap;

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
        // A group beyond loopback needs the shared secret.
        let wide = [("raft-peers", "1=10.0.0.11:10101,2=10.0.0.12:10101,3=10.0.0.13:10101"), ("raft-bind-address", "10.0.0.11:10101")];
        let err = load(base, &wide).unwrap_err();
        assert!(err.to_string().contains("raft-secret") && err.to_string().contains("10.0.0.12:10101"), "{err}");
        let mut with_secret = wide.to_vec();
        with_secret.push(("raft-secret", "s3cret"));
        assert!(load(base, &with_secret).is_ok());
        let mut with_tls = wide.to_vec();
        with_tls.extend([("raft-tls-cert", "/etc/rm/n1.pem"), ("raft-tls-key", "/etc/rm/n1.key"), ("raft-tls-ca", "/etc/rm/ca.pem")]);
        assert!(load(base, &with_tls).unwrap().server.group.tls.is_some());
        with_tls.pop();
        let err = load(base, &with_tls).unwrap_err();
        assert!(err.to_string().contains("together"), "{err}");
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
