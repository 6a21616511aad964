//! Every configuration key the manager knows: its type, default and whether it is a secret
//! (masked in every response), plus the keys accepted but ignored.

/// The value type a known key accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Int,
    Float,
    Bool,
}

/// One known key: its name, type, default and whether it is a secret masked in responses.
pub(crate) struct KeySpec {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    pub(crate) default: &'static str,
    pub(crate) secret: bool,
}

pub(crate) const fn key(name: &'static str, kind: Kind, default: &'static str) -> KeySpec {
    KeySpec { name, kind, default, secret: false }
}

pub(crate) const fn secret(name: &'static str, default: &'static str) -> KeySpec {
    KeySpec { name, kind: Kind::Str, default, secret: true }
}

/// Every key this manager understands, with the Go project's defaults.
pub(crate) const KEYS: &[KeySpec] = &[
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
    key("failover-falsepositive-refused-counter", Kind::Int, "1"),
    key("failover-at-sync", Kind::Bool, "false"),
    key("failover-readonly-state", Kind::Bool, "true"),
    key("failover-fence-script", Kind::Str, ""),
    key("failover-semisync-enforce", Kind::Bool, "false"),
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
    key("autorejoin-semisync", Kind::Bool, "true"),
    key("force-slave-heartbeat", Kind::Bool, "false"),
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
    key("log-format", Kind::Str, "text"),
    key("monitoring-pause", Kind::Bool, "false"),
    key("verbose", Kind::Bool, "false"),
    key("test", Kind::Bool, "false"),
    key("prov-orchestrator", Kind::Str, "onpremise"),
    key("prov-db-start-command", Kind::Str, ""),
    key("prov-db-stop-command", Kind::Str, ""),
    key("prov-db-provision-command", Kind::Str, ""),
    key("prov-db-unprovision-command", Kind::Str, ""),
    key("backup-timeout", Kind::Int, "3600"),
    key("failover-pre-script", Kind::Str, ""),
    key("failover-pre-script-timeout", Kind::Int, "30"),
    key("failover-post-script", Kind::Str, ""),
    key("db-servers-state-change-script", Kind::Str, ""),
    key("alert-script", Kind::Str, ""),
    key("monitoring-alert-trigger", Kind::Str, "ERR00027,ERR00042,ERR00087"),
    key("mail-from", Kind::Str, "mrm@localhost"),
    key("mail-to", Kind::Str, ""),
    key("mail-smtp-addr", Kind::Str, "localhost:25"),
    key("mail-smtp-user", Kind::Str, ""),
    secret("mail-smtp-password", ""),
    key("alert-slack-url", Kind::Str, ""),
    key("alert-slack-channel", Kind::Str, "#support"),
    key("alert-slack-user", Kind::Str, ""),
    key("raft-node-id", Kind::Int, "1"),
    key("raft-bind-address", Kind::Str, "127.0.0.1:10101"),
    key("raft-peers", Kind::Str, ""),
    key("raft-peers-http", Kind::Str, ""),
    key("raft-role", Kind::Str, "manager"),
    key("raft-arbitrators", Kind::Str, ""),
    secret("raft-secret", ""),
    key("raft-tls-cert", Kind::Str, ""),
    key("raft-tls-key", Kind::Str, ""),
    key("raft-tls-ca", Kind::Str, ""),
    key("raft-heartbeat-ms", Kind::Int, "100"),
    key("raft-election-min-ms", Kind::Int, "500"),
    key("raft-election-max-ms", Kind::Int, "1000"),
    key("haproxy", Kind::Bool, "false"),
    key("haproxy-servers", Kind::Str, "127.0.0.1"),
    key("haproxy-write-port", Kind::Int, "3306"),
    key("haproxy-read-port", Kind::Int, "3307"),
    key("haproxy-stat-port", Kind::Int, "1988"),
    key("haproxy-api-port", Kind::Int, "1999"),
    key("haproxy-mode", Kind::Str, "runtimeapi"),
    key("haproxy-binary-path", Kind::Str, "/usr/sbin/haproxy"),
    key("haproxy-ip-write-bind", Kind::Str, "0.0.0.0"),
    key("haproxy-ip-read-bind", Kind::Str, "0.0.0.0"),
    key("haproxy-api-write-backend", Kind::Str, "service_write"),
    key("haproxy-api-read-backend", Kind::Str, "service_read"),
    key("proxy-servers-read-on-master", Kind::Bool, "false"),
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

pub(crate) fn spec(name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.name == name)
}

/// Names of keys that hold secrets and are masked as `"*:*"` in every response.
pub fn is_secret(name: &str) -> bool {
    spec(name).is_some_and(|k| k.secret)
}
