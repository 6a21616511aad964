//! What the API's `settings/switch/{name}` and `settings/set/{name}/{value}` do with each name:
//! the keys of this manager work; every other name the Go original accepts gets a clear
//! refusal saying why it does not apply here (never a bare 501).

pub use super::go_setting_names::{GO_SETS, GO_SWITCHES};
use super::keys::{spec, ACCEPTED_BUT_IGNORED};

/// How a setting name is handled by the settings routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingSupport {
    /// A cluster key of this manager: `set` validates and applies it (replicated); `switch`
    /// flips it when it is a boolean.
    Cluster,
    /// `failover-mode`: `switch` flips manual and automatic (the Go original's interactive switch).
    FailoverMode,
    /// A manager-wide key read once at start (listeners, data dir, logging, raft).
    ManagerWide,
    /// A key accepted in the file that has no effect here; the reason.
    Ignored(&'static str),
    /// A setting of the Go original this manager does not implement; the reason.
    NotImplemented(&'static str),
    /// Not a setting of this manager nor of the Go original.
    Unknown,
}

/// Manager-wide keys: read by `ServerConfig` at start, the same for every cluster.
const MANAGER_WIDE: &[&str] = &[
    "monitoring-datadir", "http-server", "http-bind-address", "http-port", "api-bind", "api-port",
    "monitoring-ssl-cert", "monitoring-ssl-key", "log-file", "log-level", "log-format",
];

/// Why a family of the Go original's settings does not apply, by name prefix (first match wins).
const NOT_HERE: &[(&str, &str)] = &[
    ("proxysql", "ProxySQL is not driven by this manager"),
    ("maxscale", "MaxScale is not driven by this manager"),
    ("shardproxy", "the Spider shard proxy is not driven by this manager"),
    ("proxyjanitor", "the proxy janitor is not part of this manager"),
    ("proxy-servers-", "this manager has no proxy backend settings of the Go original"),
    ("haproxy", "HAProxy settings of the Go original are not implemented by this build"),
    ("graphite", "there is no Graphite export in this manager"),
    ("scheduler-", "there is no built-in job scheduler: start backups and optimize through the API (e.g. from a systemd timer)"),
    ("cloud18", "the cloud18 hosted service is not part of this manager"),
    ("prov-", "provisioning here is the local orchestrator or the prov-db-*-command hooks: no docker, kubernetes, opensvc or network settings"),
    ("backup-", "backups here are mariadb-dump / mariadb-backup jobs under monitoring-datadir/backups: no restic, binlog backup, retention or tool choice"),
    ("compress-backups", "backups are not compressed by this manager"),
    ("log-", "there are no per-module log levels: use log-level in the configuration file and the `verbose` switch"),
    ("mail-", "mail alerts are not implemented by this build"),
    ("alert-", "alert hooks are not implemented by this build"),
    ("monitoring-", "the monitor probes replication state only: no query capture, schema or variable tracking, config saving or error filtering"),
    ("force-slave-heartbeat", "the switch of this manager is force-slave-heartbeat, lowercase (the configuration key)"),
    ("force-", "this manager does not rewrite server variables (replication is always GTID-based; heartbeats are set with force-slave-heartbeat-time)"),
    ("autorejoin-", "rejoin methods here are the GTID repoint, autorejoin-flashback and autorejoin-mysqldump"),
    ("autoseed", "automatic reseeding is not implemented: use the reseed server actions"),
    ("delay-stat", "replication delay statistics are not collected"),
    ("print-delay-stat", "replication delay statistics are not collected"),
    ("failover-check-delay-stat", "replication delay statistics are not collected"),
    ("failover-event-", "MariaDB events are not managed across a failover"),
    ("multi-master", "multi-master write modes are not managed (only bootstrap of a multi-master ring)"),
    ("dynamic-topology", "the topology is always discovered; there is no fixed-topology mode"),
    ("topology-target", "the topology is always master-slave for failover purposes"),
    ("replication-no-relay", "relay-tree topologies are not managed"),
    ("switchover-lower-release", "switchover always requires the candidate to run a release able to replicate from the old master"),
    ("switchover-wait-route-change", "no proxy route change is awaited during a switchover"),
    ("check-replication-filters", "replication filters are not compared between servers"),
    ("database-heartbeat", "no heartbeat table is written into the databases"),
    ("sst-", "there is no state snapshot transfer listener"),
    ("binlog-parse-mode", "binary logs are not parsed by the manager"),
];

/// How `name` is handled (see [`SettingSupport`]).
pub fn support(name: &str) -> SettingSupport {
    if name == "failover-mode" {
        return SettingSupport::FailoverMode;
    }
    if MANAGER_WIDE.contains(&name) || name.starts_with("raft-") {
        return SettingSupport::ManagerWide;
    }
    if let Some((_, why)) = ACCEPTED_BUT_IGNORED.iter().find(|(k, _)| *k == name) {
        return SettingSupport::Ignored(why);
    }
    if spec(name).is_some() {
        return SettingSupport::Cluster;
    }
    let lower = name.to_ascii_lowercase();
    if !GO_SWITCHES.iter().chain(GO_SETS).any(|g| g.to_ascii_lowercase() == lower) {
        return SettingSupport::Unknown;
    }
    match NOT_HERE.iter().find(|(prefix, _)| lower.starts_with(prefix)) {
        Some((_, why)) => SettingSupport::NotImplemented(why),
        None => SettingSupport::NotImplemented("this setting of the Go original is not implemented by this manager"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_go_name_is_handled_or_refused_with_a_reason() {
        for name in GO_SWITCHES.iter().chain(GO_SETS) {
            assert_ne!(support(name), SettingSupport::Unknown, "{name}");
        }
        assert_eq!(support("autorejoin"), SettingSupport::Cluster);
        assert_eq!(support("verbose"), SettingSupport::Cluster);
        assert_eq!(support("failover-mode"), SettingSupport::FailoverMode);
        assert_eq!(support("http-port"), SettingSupport::ManagerWide);
        assert_eq!(support("raft-peers"), SettingSupport::ManagerWide);
        assert!(matches!(support("failover-restart-unsafe"), SettingSupport::Ignored(_)));
        assert!(matches!(support("proxysql"), SettingSupport::NotImplemented(w) if w.contains("ProxySQL")));
        assert!(matches!(support("force-slave-Heartbeat"), SettingSupport::NotImplemented(_)));
        assert_eq!(support("no-such-setting"), SettingSupport::Unknown);
        // The switches that work are this manager's boolean keys.
        for name in GO_SWITCHES.iter().filter(|n| support(n) == SettingSupport::Cluster) {
            assert!(crate::config::ClusterConfig::is_bool_setting(name), "{name} is switchable but not a boolean");
        }
    }
}
