//! Cluster operations beyond failover: settings changed through the API (replicated), servers
//! added at runtime, per-server actions (toggles, replication commands, orchestrator commands,
//! reseeds), and the built-in regression scenarios. They run on the leader, in the cluster's
//! monitor task, through the same journaled, leadership-checked executor as failover.

use std::path::Path;
use std::time::Duration;

use replication_manager_api::ServerAction;

use crate::cluster::log::Level;
use crate::failover::error::{ErrorKind, FailoverError, OpResult};
use crate::config::{setting_support, ClusterConfig, Config, FailoverMode, HostPort, SettingSupport};
use crate::failover::executor::{op_id, FailoverExecutor};
use crate::db::sql::{self, Flavor};

/// How long an orchestrator command (start, stop, provision) may run.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(120);
/// How long a regression scenario waits for the topology to settle after its action.
pub const TEST_SETTLE: Duration = Duration::from_secs(20);
/// The built-in regression scenarios.
pub const TESTS: &[&str] = &["switchover", "failover"];

/// Why the settings routes refuse `name` (`None`: it works). `switch` is the boolean flip.
fn setting_refusal(name: &str, switch: bool) -> Option<FailoverError> {
    let refuse = |why: String| Some(FailoverError::new(ErrorKind::BadRequest, why));
    match setting_support(name) {
        SettingSupport::Cluster if switch && !ClusterConfig::is_bool_setting(name) => {
            refuse(format!("{name} is not a boolean setting: set it with settings/actions/set/{name}/<value>"))
        }
        SettingSupport::Cluster | SettingSupport::FailoverMode => None,
        SettingSupport::ManagerWide => refuse(format!(
            "{name} is a manager-wide setting read at start (listeners, data dir, logging, raft): change it in the configuration file and restart the manager"
        )),
        SettingSupport::Ignored(why) => refuse(format!("{name} is accepted in the configuration but has no effect here: {why}")),
        SettingSupport::NotImplemented(why) => refuse(format!("{name} is not supported by this manager: {why}")),
        SettingSupport::Unknown => Some(FailoverError::new(ErrorKind::NotFound, format!("Setting Not Found: {name}"))),
    }
}

/// Replaces `{host}`, `{port}` and `{cluster}` in an orchestrator command template.
pub fn render_command(template: &str, addr: &HostPort, cluster: &str) -> String {
    template.replace("{host}", &addr.host).replace("{port}", &addr.port.to_string()).replace("{cluster}", cluster)
}

impl FailoverExecutor<'_> {
    /// Sets a cluster setting (validated like the file; replicated; applied on every node).
    pub async fn set_setting(&self, name: &str, value: &str) -> OpResult {
        if let Some(refusal) = setting_refusal(name, false) {
            return Err(refusal);
        }
        self.commit(&op_id("setting"), |st| {
            // On top of the latest replicated settings (another change may have landed).
            let mut settings = st.settings.clone();
            settings.insert(name.to_string(), value.to_string());
            st.base_config.with_settings(&settings).map_err(|e| FailoverError::new(ErrorKind::BadRequest, format!("Setting refused: {e}")))?;
            let before = std::mem::replace(&mut st.settings, settings);
            st.apply_config().map_err(|e| {
                st.settings = before;
                FailoverError::new(ErrorKind::BadRequest, format!("Setting refused: {e}"))
            })
        })
        .await?;
        let shown = if crate::config::is_secret(name) { "*:*" } else { value };
        let msg = format!("Setting {name} = {shown}");
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Flips a boolean setting.
    pub async fn switch_setting(&self, name: &str) -> OpResult {
        if let Some(refusal) = setting_refusal(name, true) {
            return Err(refusal);
        }
        if setting_support(name) == SettingSupport::FailoverMode {
            let next = match self.shared.read().config.failover_mode {
                FailoverMode::Manual => "automatic",
                FailoverMode::Automatic => "manual",
            };
            return self.set_setting(name, next).await;
        }
        let current = self.shared.read().config.setting_text(name).unwrap_or_default();
        let next = if matches!(current.to_ascii_lowercase().as_str(), "true" | "on" | "1" | "yes") { "false" } else { "true" };
        self.set_setting(name, next).await
    }

    /// Re-reads the configuration files (keeping the API settings and added servers on top).
    pub async fn reload_settings(&self, source: Option<&Path>, cli: &[(String, String)]) -> OpResult {
        let Some(path) = source else {
            return Err(FailoverError::new(ErrorKind::BadRequest, "No configuration file to reload (started without --config)"));
        };
        let cfg = Config::load(Some(path), cli).map_err(|e| FailoverError::new(ErrorKind::BadRequest, format!("Reload refused: {e}")))?;
        let name = self.shared.read().config.name.clone();
        let Some(new) = cfg.clusters.into_iter().find(|c| c.name == name) else {
            return Err(FailoverError::new(ErrorKind::BadRequest, format!("Reload refused: cluster {name} is no longer in {}", path.display())));
        };
        {
            let mut st = self.shared.write();
            let old = std::mem::replace(&mut st.base_config, new);
            if let Err(e) = st.apply_config() {
                st.base_config = old;
                return Err(FailoverError::new(ErrorKind::BadRequest, format!("Reload refused: {e}")));
            }
        }
        let msg = format!("Configuration reloaded from {}", path.display());
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Adds `host:port` to monitoring (replicated, so it survives restarts and leader changes).
    pub async fn add_server(&self, host: &str, port: &str) -> OpResult {
        let port: u16 = port.parse().ok().filter(|p| *p > 0).ok_or_else(|| FailoverError::new(ErrorKind::BadRequest, format!("Bad port {port}")))?;
        let addr = HostPort::parse(&format!("{host}:{port}")).ok_or_else(|| FailoverError::new(ErrorKind::BadRequest, format!("Bad host {host}")))?;
        if self.shared.read().servers.iter().any(|s| s.addr == addr) {
            return Err(FailoverError::new(ErrorKind::Conflict, format!("Error adding new monitor of {addr}: Server already exists")));
        }
        self.commit(&op_id("addserver"), |st| {
            st.extra_hosts.push(addr.clone());
            st.apply_config().map_err(|e| {
                st.extra_hosts.pop();
                FailoverError::new(ErrorKind::BadRequest, e.to_string())
            })
        })
        .await?;
        let msg = format!("Monitor added: {addr}");
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Runs a SQL toggle or replication command on one server.
    pub async fn server_sql_action(&self, server: &str, action: &ServerAction) -> OpResult {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let Some(i) = st.find_server(server) else { return Err(FailoverError::new(ErrorKind::NotFound, format!("Server Not Found: {server}"))) };
        let srv = st.servers[i].clone();
        let flavor = srv.flavor();
        let src = cfg.replication_source_name.clone();
        let statements: Vec<String> = match action {
            ServerAction::ToggleReadOnly => vec![sql::TOGGLE_READ_ONLY.to_string()],
            ServerAction::ToggleInnodbMonitor => vec![sql::TOGGLE_INNODB_MONITOR.to_string()],
            ServerAction::ToggleSlowQuery => vec![sql::TOGGLE_SLOW_QUERY_LOG.to_string()],
            ServerAction::ToggleSlowQueryCapture => {
                vec![sql::SLOW_QUERY_LOG_ON.to_string(), sql::TOGGLE_SLOW_QUERY_CAPTURE.to_string()]
            }
            ServerAction::ResetMaster => {
                if st.master == Some(i) {
                    return Err(FailoverError::new(ErrorKind::Conflict, format!("Refused: {} is the master; RESET MASTER would discard its binary log", srv.addr)));
                }
                vec![sql::RESET_MASTER.to_string()]
            }
            ServerAction::StartSlave => vec![sql::start_slave(&src)],
            ServerAction::StopSlave => vec![sql::stop_slave(&src)],
            ServerAction::SkipReplicationEvent => {
                vec![sql::stop_slave(&src), sql::SKIP_ONE_EVENT.to_string(), sql::start_slave(&src)]
            }
            other => return Err(FailoverError::new(ErrorKind::Failed, format!("{other:?} is not a SQL action"))),
        };
        if !srv.is_up() {
            return Err(FailoverError::new(ErrorKind::Failed, "503 -Not a Valid Server!"));
        }
        let mut c = self.admin(&cfg, &srv.addr, flavor).await?;
        for stmt in &statements {
            self.mutate(&mut c, &format!("{action:?}"), stmt).await?;
        }
        c.close().await;
        let msg = format!("{action:?} done on {}", srv.addr);
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Start, stop, provision or unprovision: the local orchestrator runs the instance itself;
    /// `onpremise` runs the configured command.
    pub async fn orchestrate(&self, server: &str, action: &ServerAction, datadir: &Path) -> OpResult {
        let st = self.snapshot();
        let cfg = &st.config;
        let Some(i) = st.find_server(server) else { return Err(FailoverError::new(ErrorKind::NotFound, format!("Server Not Found: {server}"))) };
        let addr = st.servers[i].addr.clone();
        if cfg.orchestrator == "local" {
            self.coord.check("local orchestrator").await?;
            let local = crate::actions::orchestrator::LocalOrchestrator::new(datadir, &cfg.name);
            let (term, node) = self.coord.epoch();
            tracing::info!(server = %addr, ?action, term, node, "executing local orchestrator step");
            let r = match action {
                ServerAction::Start => local.start(&addr).await,
                ServerAction::Stop => local.stop(&addr).await,
                ServerAction::Provision => local.provision(cfg, &addr).await,
                ServerAction::Unprovision => local.unprovision(&addr).await,
                other => return Err(FailoverError::new(ErrorKind::Failed, format!("{other:?} is not an orchestrator action"))),
            };
            let msg = r.map_err(|e| FailoverError::new(ErrorKind::Failed, format!("{e:#}")))?;
            self.log(Level::Info, &msg);
            return Ok(msg);
        }
        let (template, key) = match action {
            ServerAction::Start => (&cfg.start_command, "prov-db-start-command"),
            ServerAction::Stop => (&cfg.stop_command, "prov-db-stop-command"),
            ServerAction::Provision => (&cfg.provision_command, "prov-db-provision-command"),
            ServerAction::Unprovision => (&cfg.unprovision_command, "prov-db-unprovision-command"),
            other => return Err(FailoverError::new(ErrorKind::Failed, format!("{other:?} is not an orchestrator action"))),
        };
        if template.trim().is_empty() {
            return Err(FailoverError::new(ErrorKind::NotAvailable,
                format!("No orchestrator command configured for {action:?}: set {key} (placeholders {{host}} {{port}} {{cluster}})"),
            ));
        }
        if matches!(action, ServerAction::Stop | ServerAction::Unprovision) && st.master == Some(i) && st.servers.len() > 1 {
            self.log(Level::Warn, &format!("{action:?} requested on the master {addr}: detection and failover rules apply"));
        }
        self.coord.check("orchestrator command").await?;
        let command = render_command(template, &addr, &cfg.name);
        let (term, node) = self.coord.epoch();
        tracing::info!(server = %addr, %command, term, node, "executing orchestrator command");
        let out = crate::command::run_command(&command, COMMAND_DEADLINE).await.map_err(|e| FailoverError::new(ErrorKind::Failed, e))?;
        let msg = format!("{action:?} of {addr} done{}", if out.is_empty() { String::new() } else { format!(": {out}") });
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Provisions every server; with `bootstrap`, then sets up master-slave replication.
    pub async fn services(&self, bootstrap: bool, datadir: &Path) -> OpResult {
        let servers: Vec<String> = self.shared.read().servers.iter().map(|s| s.addr.to_string()).collect();
        for s in &servers {
            self.orchestrate(s, &ServerAction::Provision, datadir).await?;
        }
        if !bootstrap {
            return Ok(format!("{} servers provisioned", servers.len()));
        }
        // Wait (bounded) until every provisioned server answers, then bootstrap replication.
        let cfg = self.shared.read().config.clone();
        let deadline = tokio::time::Instant::now() + COMMAND_DEADLINE;
        for s in &servers {
            let addr = HostPort::parse(s).ok_or_else(|| FailoverError::new(ErrorKind::Failed, format!("bad server {s}")))?;
            loop {
                if let Ok(c) = self.admin(&cfg, &addr, Flavor::MariaDB).await {
                    c.close().await;
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    return Err(FailoverError::new(ErrorKind::Failed, format!("{s} does not answer after provisioning")));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        self.bootstrap("master-slave").await
    }

    /// Runs a regression scenario (destructive: only with the cluster setting `test = true`).
    /// Returns the Go project's test report as JSON text.
    pub async fn run_test(&self, name: &str) -> OpResult {
        if !TESTS.contains(&name) {
            return Err(FailoverError::new(ErrorKind::BadRequest, format!("Unknown test {name}: known tests are {}", TESTS.join(", "))));
        }
        if !self.shared.read().config.test {
            return Err(FailoverError::new(ErrorKind::Conflict, "Regression tests change the topology: set the cluster setting test=true first"));
        }
        let before = self.snapshot();
        let old = before.master.map(|m| before.servers[m].addr.clone());
        let outcome = match name {
            "switchover" => self.switchover(None, "regression test").await,
            _ => self.failover("regression test").await,
        };
        let result = match (outcome, old) {
            (Err(e), _) => Err(e.message),
            (Ok(_), None) => Err("no master before the test".to_string()),
            (Ok(_), Some(old)) => self.verify_new_master(&old).await,
        };
        let (verdict, detail) = match &result {
            Ok(d) => ("PASS", d.clone()),
            Err(e) => ("FAIL", e.clone()),
        };
        self.log(if result.is_ok() { Level::Info } else { Level::Error }, &format!("Test {name}: {verdict}: {detail}"));
        let report = serde_json::json!({
            "name": name, "result": verdict, "detail": detail,
            "config-file": "", "config-init": "", "config-test": "",
        });
        Ok(report.to_string())
    }

    /// Checks, on the servers themselves, that a master other than `old` is writable and that
    /// every other reachable server replicates from it.
    async fn verify_new_master(&self, old: &HostPort) -> Result<String, String> {
        let st = self.snapshot();
        let cfg = st.config.clone();
        let new = st.master.map(|m| st.servers[m].addr.clone()).ok_or("no master after the action")?;
        if new == *old {
            return Err(format!("master is still {old}"));
        }
        let deadline = tokio::time::Instant::now() + TEST_SETTLE;
        loop {
            let mut problems = Vec::new();
            for s in &st.servers {
                let flavor = s.flavor();
                let Ok(mut c) = self.admin(&cfg, &s.addr, flavor).await else {
                    if s.addr != *old {
                        problems.push(format!("{} unreachable", s.addr));
                    }
                    continue;
                };
                let ro = c.value(sql::READ_ONLY, Duration::from_secs(5)).await.ok().flatten();
                let src = c.row(sql::replication_status(flavor)).await.ok().flatten();
                c.close().await;
                if s.addr == new {
                    if ro.as_deref() != Some("0") {
                        problems.push(format!("new master {new} is read-only"));
                    }
                } else if src.is_none() {
                    problems.push(format!("{} does not replicate", s.addr));
                }
            }
            if problems.is_empty() {
                return Ok(format!("{old} -> {new}; every server follows {new}"));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(problems.join("; "));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_routes_refuse_with_a_reason() {
        assert!(setting_refusal("autorejoin", true).is_none());
        assert!(setting_refusal("failover-limit", false).is_none());
        assert!(setting_refusal("failover-mode", true).is_none());
        let e = setting_refusal("failover-limit", true).unwrap();
        assert_eq!(e.kind, ErrorKind::BadRequest);
        assert!(e.message.contains("not a boolean"), "{}", e.message);
        let e = setting_refusal("http-port", false).unwrap();
        assert!(e.message.contains("restart"), "{}", e.message);
        let e = setting_refusal("proxysql", true).unwrap();
        assert!(e.message.contains("ProxySQL"), "{}", e.message);
        assert_eq!(setting_refusal("no-such-thing", true).unwrap().kind, ErrorKind::NotFound);
        for name in crate::config::setting_names_for_tests() {
            if let Some(e) = setting_refusal(name, true) {
                assert_ne!(e.kind, ErrorKind::NotAvailable, "{name}");
            }
        }
    }

    #[test]
    fn command_templates() {
        let a = HostPort { host: "127.0.0.1".into(), port: 3311 };
        assert_eq!(render_command("ctl start {host} {port} {cluster}", &a, "c1"), "ctl start 127.0.0.1 3311 c1");
    }

    #[tokio::test]
    async fn commands_are_bounded_and_report_failures() {
        assert_eq!(crate::command::run_command("echo hi", Duration::from_secs(5)).await.unwrap(), "hi");
        assert!(crate::command::run_command("echo oops >&2; exit 3", Duration::from_secs(5)).await.unwrap_err().contains("oops"));
        assert!(crate::command::run_command("sleep 5", Duration::from_millis(200)).await.unwrap_err().contains("did not finish"));
    }
}
