//! `ActionTask`: one API action on a cluster, run as a supervised task beside the monitor loop
//! (so probing and failure detection never pause while a backup, a reseed or a `services`
//! call runs), with its own deadline. The monitor allows one action per cluster at a time.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use replication_manager_api::{Action, ServerAction};
use tokio::sync::{watch, Notify};

use crate::cluster::log::Level;
use crate::failover::error::{ErrorKind, FailoverError, OpResult};
use crate::cluster::state::SharedCluster;
use crate::failover::executor::FailoverExecutor;
use crate::group::idempotency::{self, Claim, IdempotentOp, StoredOutcome};
use crate::group::{Coordinator, ManagerGroup};
use crate::monitor::MonitorEnv;

/// How long to wait for the fresh probe round an action asks for before deciding anyway.
const FRESH_ROUND_WAIT: Duration = Duration::from_secs(30);

/// The deadline of an action as a whole. Every statement inside has its own, shorter bound;
/// this one catches what no inner bound covers. A master change cut by it is left to the
/// journal: the next tick resumes or rolls it back.
pub fn deadline(action: &Action) -> Duration {
    match action {
        Action::ServicesProvision | Action::ServicesBootstrap => Duration::from_secs(1800),
        Action::Server { action: ServerAction::Start | ServerAction::Stop | ServerAction::Provision | ServerAction::Unprovision, .. } => {
            Duration::from_secs(600)
        }
        Action::Failover | Action::Switchover { .. } | Action::Bootstrap { .. } | Action::ReplicationCleanup | Action::RunTest { .. } => {
            Duration::from_secs(600)
        }
        _ => Duration::from_secs(120),
    }
}

/// Marks the cluster's action slot free when the action task ends, however it ends.
pub struct SlotGuard(pub Arc<AtomicBool>);

impl Drop for SlotGuard {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// What an action task needs: the cluster, the group, the shared environment, and a way to ask
/// the monitor for a fresh probe round.
#[derive(Clone)]
pub struct ActionTask {
    pub shared: Arc<SharedCluster>,
    pub group: Arc<ManagerGroup>,
    pub env: Arc<MonitorEnv>,
    /// Probe rounds (started, completed) by the monitor.
    pub rounds: watch::Receiver<(u64, u64)>,
    /// Wakes the monitor for a probe round now.
    pub round_now: Arc<Notify>,
}

impl ActionTask {
    fn executor(&self) -> FailoverExecutor<'_> {
        FailoverExecutor { shared: &self.shared, coord: self.group.as_ref() }
    }

    /// Runs `run` at most once for `key`: the key is claimed through the group first; a key
    /// already claimed answers with the first outcome (or 409 while it runs, or when the key
    /// was used for another request) and runs nothing.
    pub async fn once(&self, cluster: &str, key: &str, action: &Action, run: impl std::future::Future<Output = OpResult>) -> OpResult {
        if !idempotency::valid_key(key) {
            return Err(FailoverError::new(
                ErrorKind::BadRequest,
                format!("Idempotency-Key must be 1 to {} visible ASCII characters", idempotency::MAX_KEY_LEN),
            ));
        }
        let request = format!("{action:?}");
        match self.group.claim(cluster, key, &request).await? {
            Claim::Known(op) if op.request != request => Err(FailoverError::new(
                ErrorKind::Conflict,
                format!("Idempotency-Key {key} was used for another request ({}); not run", op.request),
            )),
            Claim::Known(IdempotentOp { outcome: None, op_id, term, node, .. }) => Err(FailoverError::new(
                ErrorKind::Conflict,
                format!("Operation {op_id} (Idempotency-Key {key}) started by node {node} in term {term} has not ended; not run again"),
            )
            .in_op(&op_id)),
            Claim::Known(IdempotentOp { outcome: Some(o), op_id, .. }) => {
                tracing::info!(cluster, key, op = %op_id, "idempotent retry: answering the first outcome");
                if o.ok {
                    Ok(o.message)
                } else {
                    Err(FailoverError::new(ErrorKind::from_name(&o.kind), o.message).in_op(&op_id))
                }
            }
            Claim::New { op_id } => {
                tracing::info!(cluster, key, op = %op_id, "idempotent operation claimed");
                let result = run.await;
                let outcome = match &result {
                    Ok(m) => StoredOutcome { ok: true, kind: String::new(), message: m.clone() },
                    Err(e) => StoredOutcome { ok: false, kind: e.kind.as_str().to_string(), message: e.message.clone() },
                };
                if let Err(e) = self.group.settle(cluster, key, outcome).await {
                    tracing::error!(cluster, key, op = %op_id, error = %e, "the outcome of an idempotent operation was not replicated");
                }
                result.map_err(|e| e.in_op(&op_id))
            }
        }
    }

    /// Waits (bounded) for a probe round that started after this call, so the action decides
    /// on current positions.
    async fn fresh_round(&self) {
        let mut rounds = self.rounds.clone();
        // Rounds run one after the other: the first one started after this point is number
        // `started + 1`, done once `completed` reaches it.
        let started_before = rounds.borrow_and_update().0;
        self.round_now.notify_one();
        let started = Instant::now();
        if tokio::time::timeout(FRESH_ROUND_WAIT, rounds.wait_for(|r| r.1 > started_before)).await.is_err() {
            tracing::warn!(waited = ?started.elapsed(), "no fresh probe round before the action: deciding on the last one");
        }
    }

    pub async fn handle(&self, action: Action, requester: &str) -> OpResult {
        tracing::info!(cluster = %self.shared.read().config.name, ?action, requester, "action requested");
        let (term, node) = self.group.epoch();
        if !self.group.is_active() {
            return Err(FailoverError::new(ErrorKind::NotLeader, format!("node {node} is not the active leader (term {term}): action not run")));
        }
        match action {
            Action::Failover => {
                self.fresh_round().await;
                self.executor().failover(&format!("API failover by {requester}")).await
            }
            Action::Switchover { prefmaster } => {
                self.fresh_round().await;
                self.executor().switchover(prefmaster.as_deref(), &format!("API switchover by {requester}")).await
            }
            Action::ResetFailoverControl => self.executor().reset_failover_control().await,
            Action::ToggleMaintenance { server } => self.executor().toggle_maintenance(&server).await,
            Action::Bootstrap { topology } => {
                self.fresh_round().await;
                self.executor().bootstrap(&topology).await
            }
            Action::ReplicationCleanup => {
                self.fresh_round().await;
                self.executor().cleanup().await
            }
            Action::SetSetting { name, value } => self.executor().set_setting(&name, &value).await,
            Action::SwitchSetting { name } => self.executor().switch_setting(&name).await,
            Action::ReloadSettings => {
                let env = self.env.clone();
                self.executor().reload_settings(env.config_source.as_deref(), &env.cli_overrides).await
            }
            Action::AddServer { host, port } => self.executor().add_server(&host, &port).await,
            Action::RunTest { name } => {
                self.fresh_round().await;
                self.executor().run_test(&name).await
            }
            Action::ServicesProvision => {
                let datadir = self.env.datadir.clone();
                self.executor().services(false, &datadir).await
            }
            Action::ServicesBootstrap => {
                let datadir = self.env.datadir.clone();
                self.executor().services(true, &datadir).await
            }
            Action::MasterPhysicalBackup => {
                let master = {
                    let st = self.shared.read();
                    st.master.map(|m| st.servers[m].addr.to_string())
                };
                match master {
                    Some(m) => self.server_action(&m, ServerAction::BackupPhysical).await,
                    None => Err(FailoverError::new(ErrorKind::Failed, "No master known: no physical backup")),
                }
            }
            Action::Server { server, action } => self.server_action(&server, action).await,
            Action::StartTraffic => self.executor().set_traffic(false).await,
            Action::StopTraffic => self.executor().set_traffic(true).await,
            Action::Proxy { proxy, action } => self.executor().proxy_action(&proxy, action).await,
        }
    }

    /// One server action: SQL toggles, orchestrator commands, jobs, reseeds.
    async fn server_action(&self, server: &str, action: ServerAction) -> OpResult {
        match &action {
            ServerAction::Start | ServerAction::Stop | ServerAction::Provision | ServerAction::Unprovision => {
                let datadir = self.env.datadir.clone();
                self.executor().orchestrate(server, &action, &datadir).await
            }
            ServerAction::BackupLogical
            | ServerAction::BackupPhysical
            | ServerAction::BackupErrorLog
            | ServerAction::BackupSlowQueryLog
            | ServerAction::Optimize => self.start_job(server, &action).await,
            ServerAction::Reseed(method) => {
                self.fresh_round().await;
                self.reseed(server, method).await
            }
            _ => self.executor().server_sql_action(server, &action).await,
        }
    }

    /// Starts a background job (backups, optimize) on a server and answers at once.
    async fn start_job(&self, server: &str, action: &ServerAction) -> OpResult {
        use crate::actions::jobs::JobKind;
        let (addr, cluster, cred, deadline) = {
            let st = self.shared.read();
            let Some(i) = st.find_server(server) else { return Err(FailoverError::new(ErrorKind::NotFound, format!("Server Not Found: {server}"))) };
            if !st.servers[i].is_up() {
                return Err(FailoverError::new(ErrorKind::Failed, "503 -Not a Valid Server!"));
            }
            (st.servers[i].addr.clone(), st.config.name.clone(), st.config.db_credential.clone(), st.config.backup_timeout)
        };
        let kind = match action {
            ServerAction::BackupLogical => JobKind::BackupLogical,
            ServerAction::BackupPhysical => JobKind::BackupPhysical,
            ServerAction::BackupErrorLog => JobKind::BackupErrorLog,
            ServerAction::BackupSlowQueryLog => JobKind::BackupSlowQueryLog,
            _ => JobKind::Optimize,
        };
        self.group.check("start a job").await?;
        let job = self.env.jobs.start(kind, &cluster, &addr, &cred, deadline).map_err(|e| FailoverError::new(ErrorKind::Conflict, e))?;
        let msg = format!("Job {} ({kind:?}) started on {addr}", job.id);
        self.shared.write().log(Level::Info, "job", &msg);
        Ok(msg)
    }

    /// Rebuilds a replica: `logicalmaster` (dump of the master now), `logicalbackup` (the latest
    /// logical backup of the cluster), `physicalbackup` (needs a local orchestrator: refused).
    async fn reseed(&self, server: &str, method: &str) -> OpResult {
        let (addr, flavor, master, cfg) = {
            let st = self.shared.read();
            let Some(i) = st.find_server(server) else { return Err(FailoverError::new(ErrorKind::NotFound, format!("Server Not Found: {server}"))) };
            let Some(m) = st.master else { return Err(FailoverError::new(ErrorKind::Failed, "No master known: cannot reseed")) };
            if i == m {
                return Err(FailoverError::new(ErrorKind::Conflict, "Refused: the master cannot be reseeded from itself"));
            }
            let flavor = st.servers[i].snapshot.as_ref().map_or(crate::db::sql::Flavor::MariaDB, |s| s.flavor);
            (st.servers[i].addr.clone(), flavor, st.servers[m].addr.clone(), st.config.clone())
        };
        let backup = match method {
            "logicalmaster" => None,
            "logicalbackup" => Some(
                self.env
                    .jobs
                    .list(&cfg.name)
                    .into_iter()
                    .find(|j| j.kind == crate::actions::jobs::JobKind::BackupLogical && j.state == "done")
                    .ok_or_else(|| FailoverError::new(ErrorKind::Conflict, "No finished logical backup in this cluster: run actions/backup-logical first"))?,
            ),
            "physicalbackup" => {
                return Err(FailoverError::new(ErrorKind::NotAvailable,
                    "Reseed from a physical backup needs an orchestrator that stops the server and replaces its datadir: not available here (use logicalbackup or logicalmaster)",
                ))
            }
            other => {
                return Err(FailoverError::new(ErrorKind::BadRequest, format!("Unknown reseed method {other}: use logicalbackup, logicalmaster or physicalbackup")))
            }
        };
        self.group.check("reseed").await?;
        let job = self.env.jobs.track(crate::actions::jobs::JobKind::Reseed, &cfg.name, &addr).map_err(|e| FailoverError::new(ErrorKind::Conflict, e))?;
        // A reseed copies data: it runs as a job, so the monitor keeps probing meanwhile.
        let (shared, group, jobs, id) = (self.shared.clone(), self.group.clone(), self.env.jobs.clone(), job.id.clone());
        let msg = format!("Job {} (reseed from {method}) started on {addr}", job.id);
        tokio::spawn(async move {
            let started = Instant::now();
            let ex = FailoverExecutor { shared: &shared, coord: group.as_ref() };
            let r = match &backup {
                None => ex.reseed_by_dump(&cfg, &addr, flavor, &master).await,
                Some(b) => ex.reseed_from_backup(&cfg, &addr, flavor, &master, b).await,
            };
            jobs.complete(&id, r.map_err(|e| e.message), started.elapsed());
        });
        self.shared.write().log(Level::Info, "job", &msg);
        Ok(msg)
    }
}
