//! `ClusterConfig`: one cluster's settings, read from `[Default]`, its own section and the
//! flags, and re-derived when API settings change.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value};

use super::keys::{is_secret, spec, Kind, KEYS};
use super::hooks::HookConfig;
use super::{check_kind, lower_camel, value_text, ConfigError, Credential, FailoverMode, HostPort, Section};

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
    /// `failover-falsepositive-refused-counter` (default 1, 0 = off; this manager's own key):
    /// consecutive refused connections after which a master is dead for certain when every
    /// reachable replica lost its IO thread to it too and the other managers agree. Such a
    /// master is failed over without waiting for the whole ping counter; a timeout (a frozen or
    /// cut-off master) always waits for it.
    pub falsepositive_refused_counter: u32,
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
    /// `failover-semisync-enforce` (default false): the leader keeps semi-sync safe (on,
    /// AFTER_SYNC, a timeout of an hour, every replica acking), so a master cut off from its
    /// replicas blocks its writers instead of acknowledging writes no replica holds. The cost:
    /// writes wait while no replica acknowledges.
    pub semisync_enforce: bool,
    /// `switchover-slave-wait-catch` (default true): the other replicas wait (bounded by
    /// `switchover-wait-catch`) for the old master's final position before they are repointed.
    pub switchover_slave_wait_catch: bool,
    /// `autorejoin` (default true): rejoin a returning old master as a replica.
    pub autorejoin: bool,
    /// `autorejoin-flashback` (default false).
    pub autorejoin_flashback: bool,
    /// `autorejoin-mysqldump` (default false).
    pub autorejoin_mysqldump: bool,
    /// `autorejoin-semisync` (default true): roll back, with flashback, an old master's extra
    /// transactions when semi-sync proves none of them was acknowledged (see
    /// [`crate::failover::plan::plan_rejoin`]), and rejoin it.
    pub autorejoin_semisync: bool,
    /// `force-slave-heartbeat` (default false): the leader also sets `force-slave-heartbeat-time`
    /// on replicas of the master it did not configure itself (a short period shortens the
    /// "replicas still hear the master" window of a freeze).
    pub force_slave_heartbeat: bool,
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
    /// `verbose` (default false): log every probe round (each server's state, GTID, lag).
    pub verbose: bool,
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
    /// `haproxy*` and `proxy-servers-read-on-master`: the managed proxies.
    pub proxy: super::ProxySettings,
    /// Failover hooks and alert channels (`failover-pre-script`, `mail-to`, `alert-slack-url`, ...).
    pub hooks: HookConfig,
    /// Every key of this cluster (known with defaults applied, and unknown ones), for the API.
    pub raw: BTreeMap<String, Value>,
}

impl ClusterConfig {
    pub(crate) fn from_map(name: &str, map: &Map<String, Value>) -> Result<ClusterConfig, ConfigError> {
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
            falsepositive_refused_counter: u32::try_from(s.uint("failover-falsepositive-refused-counter")?)
                .ok()
                .filter(|c| *c <= 1000)
                .ok_or_else(|| s.invalid("failover-falsepositive-refused-counter", "expected 0 to 1000"))?,
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
            semisync_enforce: s.bool("failover-semisync-enforce")?,
            autorejoin: s.bool("autorejoin")?,
            autorejoin_flashback: s.bool("autorejoin-flashback")?,
            autorejoin_mysqldump: s.bool("autorejoin-mysqldump")?,
            autorejoin_semisync: s.bool("autorejoin-semisync")?,
            force_slave_heartbeat: s.bool("force-slave-heartbeat")?,
            slave_heartbeat_time: s.uint("force-slave-heartbeat-time")?,
            slave_heartbeat_retry: s.uint("force-slave-heartbeat-retry")?,
            api_users,
            api_acl_allow: s.str("api-credentials-acl-allow")?,
            api_token_timeout_hours: s.uint("api-token-timeout")?,
            monitoring_pause: s.bool("monitoring-pause")?,
            verbose: s.bool("verbose")?,
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
            proxy: super::ProxySettings::from_section(&s)?,
            hooks: HookConfig::from_section(&s)?,
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
