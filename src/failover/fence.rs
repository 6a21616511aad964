//! Fence on sight: each tick of the active leader applies the [`WriteGuard`]s of
//! [`plan::write_guards`], so a server that is not the intended master is made read-only (and
//! its clients cut) the moment it is reachable again, and a restarted intended master is
//! opened for writes again.

use std::time::Instant;

use crate::cluster::log::Level;
use crate::db::sql;
use crate::failover::error::OpResult;
use crate::failover::executor::FailoverExecutor;
use crate::failover::plan::{self, WriteGuard};

impl FailoverExecutor<'_> {
    /// Applies this tick's write guards; returns what was done, for the log.
    pub async fn guard_writes(&self) -> Vec<OpResult> {
        let guards = plan::write_guards(&self.snapshot());
        let mut done = Vec::with_capacity(guards.len());
        for g in guards {
            done.push(self.apply_guard(&g).await);
        }
        done
    }

    async fn apply_guard(&self, guard: &WriteGuard) -> OpResult {
        let st = self.snapshot();
        let cfg = st.config.clone();
        match *guard {
            WriteGuard::Fence { server, master } => {
                let s = &st.servers[server];
                let started = Instant::now();
                let mut c = self.admin(&cfg, &s.addr, s.flavor()).await?;
                let killed = self.fence_server(&mut c, "fence a writable non-master").await;
                c.close().await;
                let killed = killed?;
                let msg = format!(
                    "Fenced {}: it was writable while {} is the master (read_only=1, {killed} client connection(s) killed, {} ms)",
                    s.addr,
                    st.servers[master].addr,
                    started.elapsed().as_millis()
                );
                self.log(Level::Warn, &msg);
                Ok(msg)
            }
            WriteGuard::EnforceSemiSync { master, ref replicas } => {
                for &i in replicas {
                    let r = &st.servers[i];
                    let mut c = self.admin(&cfg, &r.addr, r.flavor()).await?;
                    let mut done = self.mutate(&mut c, "semi-sync replica on", sql::SEMISYNC_REPLICA_ON).await;
                    for stmt in sql::restart_io_thread(&cfg.replication_source_name) {
                        if done.is_ok() {
                            done = self.mutate(&mut c, "restart the IO thread for semi-sync", &stmt).await;
                        }
                    }
                    c.close().await;
                    done?;
                }
                let m = &st.servers[master];
                let mut c = self.admin(&cfg, &m.addr, m.flavor()).await?;
                let mut done = Ok(());
                for stmt in sql::SEMISYNC_SAFE_MASTER {
                    if done.is_ok() {
                        done = self.mutate(&mut c, "safe semi-sync on the master", stmt).await;
                    }
                }
                c.close().await;
                done?;
                let msg = format!(
                    "Semi-sync made safe on master {} (AFTER_SYNC, 1 h timeout){} (failover-semisync-enforce)",
                    m.addr,
                    if replicas.is_empty() { String::new() } else { format!(" and {} replica(s) acknowledging", replicas.len()) }
                );
                self.log(Level::Warn, &msg);
                Ok(msg)
            }
            WriteGuard::ForceHeartbeat { master, ref replicas } => {
                let period = cfg.slave_heartbeat_time.max(1);
                let source = &cfg.replication_source_name;
                for &i in replicas {
                    let r = &st.servers[i];
                    let was = r.snapshot.as_ref().and_then(|sn| sn.managed_replication(source)).map_or(0.0, |x| x.slave_heartbeat_period);
                    let mut c = self.admin(&cfg, &r.addr, r.flavor()).await?;
                    let mut done = self.mutate(&mut c, "stop replica for its heartbeat", &sql::stop_slave(source)).await;
                    if done.is_ok() {
                        done = self.mutate(&mut c, "set the heartbeat period", &sql::set_heartbeat_period(source, period)).await;
                    }
                    // Started again whatever the change did: a stopped replica is worse than
                    // a slow heartbeat.
                    let started = self.mutate(&mut c, "start replica after its heartbeat", &sql::start_slave(source)).await;
                    c.close().await;
                    done?;
                    started?;
                    self.log(
                        Level::Info,
                        &format!("Heartbeat period of {} (replica of {}) set to {period} s, was {was} s (force-slave-heartbeat)", r.addr, st.servers[master].addr),
                    );
                }
                Ok(format!("heartbeat period {period} s set on {} replica(s)", replicas.len()))
            }
            WriteGuard::Reopen { master } => {
                let s = &st.servers[master];
                let mut c = self.admin(&cfg, &s.addr, s.flavor()).await?;
                let r = self.mutate(&mut c, "reopen the intended master", sql::READ_ONLY_OFF).await;
                c.close().await;
                r?;
                let msg = format!("Master {} was read-only (restarted?) and is the intended master: opened for writes", s.addr);
                self.log(Level::Warn, &msg);
                Ok(msg)
            }
        }
    }
}
