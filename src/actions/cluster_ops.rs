//! Cluster-wide operations that are not a master change: bootstrap of a fresh topology,
//! replication cleanup, the failover counter reset, and maintenance flags.

use crate::cluster::log::Level;
use crate::failover::error::{ErrorKind, FailoverError, OpResult};
use crate::db::sql;
use crate::failover::executor::{op_id, FailoverExecutor, InFailover};

impl FailoverExecutor<'_> {
    /// Sets up replication from scratch. WARNING (as documented): removes current replication
    /// and resets every server's binary log.
    pub async fn bootstrap(&self, topology: &str) -> OpResult {
        let st = self.snapshot();
        let cfg = st.config.clone();
        crate::failover::plan::refuse_unmanaged_flavor(&st)?;
        if !matches!(topology, "master-slave" | "multi-master") {
            return Err(FailoverError::new(ErrorKind::BadRequest, format!("Unsupported topology {topology}: use master-slave or multi-master")));
        }
        // Every server must answer before anything is reset: never a half-done bootstrap.
        let mut conns = Vec::new();
        for srv in &st.servers {
            let flavor = srv.flavor();
            match self.admin(&cfg, &srv.addr, flavor).await {
                Ok(c) => conns.push(c),
                Err(e) => return Err(FailoverError::new(ErrorKind::Failed, format!("Cannot bootstrap: {e}"))),
            }
        }
        let _busy = InFailover::enter(self.shared)?;
        let master = cfg.prefered_master.first().and_then(|p| st.servers.iter().position(|s| s.addr == *p)).unwrap_or(0);
        self.log(Level::Warn, &format!("Bootstrap {topology}: {} becomes master; replication and binary logs reset", st.servers[master].addr));
        for mut c in conns {
            self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
            self.mutate(&mut c, "reset replication", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
            self.mutate(&mut c, "reset binary log", sql::RESET_MASTER).await?;
            self.mutate(&mut c, "clear replica position", sql::CLEAR_SLAVE_POS).await?;
            self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
            c.close().await;
        }
        let maddr = st.servers[master].addr.clone();
        for (i, s) in st.servers.iter().enumerate() {
            let flavor = s.flavor();
            if i == master {
                continue;
            }
            self.repoint(&cfg, &s.addr, flavor, &maddr).await?;
        }
        if topology == "multi-master" && st.servers.len() >= 2 {
            let peer = if master == 0 { 1 } else { 0 };
            let flavor = st.servers[master].flavor();
            let mut c = self.admin(&cfg, &maddr, flavor).await?;
            let cm = Self::change_master_sql(&cfg, &st.servers[peer].addr);
            self.mutate(&mut c, "change master to peer", &sql::change_master(flavor, &cm)).await?;
            self.mutate(&mut c, "start replication", &sql::start_slave(&cfg.replication_source_name)).await?;
            c.close().await;
        }
        let flavor = st.servers[master].flavor();
        let mut c = self.admin(&cfg, &maddr, flavor).await?;
        self.mutate(&mut c, "open master for writes", sql::READ_ONLY_OFF).await?;
        c.close().await;
        self.commit(&op_id("bootstrap"), |st| {
            st.master = Some(master);
            st.intent = Some(maddr.clone());
            Ok(())
        })
        .await?;
        let msg = format!("Bootstrap {topology} done: master {maddr}");
        self.log(Level::Info, &msg);
        Ok(msg)
    }

    /// Removes every replication connection of every reachable server.
    pub async fn cleanup(&self) -> OpResult {
        let st = self.snapshot();
        crate::failover::plan::refuse_unmanaged_flavor(&st)?;
        let cfg = st.config.clone();
        let _busy = InFailover::enter(self.shared)?;
        for s in st.servers.iter().filter(|s| s.is_up()) {
            let flavor = s.flavor();
            let mut c = self.admin(&cfg, &s.addr, flavor).await?;
            self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
            self.mutate(&mut c, "reset replication", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
            c.close().await;
        }
        let msg = "Replication removed on every reachable server".to_string();
        self.log(Level::Warn, &msg);
        Ok(msg)
    }

    /// Resets the failover counter.
    pub async fn reset_failover_control(&self) -> OpResult {
        self.commit(&op_id("reset-failover-control"), |st| {
            st.failover_counter = 0;
            Ok(())
        })
        .await?;
        self.log(Level::Info, "Failover counter reset");
        Ok("failover counter reset".to_string())
    }

    /// Toggles a server's maintenance flag.
    pub async fn toggle_maintenance(&self, server: &str) -> OpResult {
        let msg = self
            .commit(&op_id("maintenance"), |st| {
                let Some(i) = st.find_server(server) else { return Err(FailoverError::new(ErrorKind::NotFound, format!("Server Not Found: {server}"))) };
                st.servers[i].maintenance = !st.servers[i].maintenance;
                Ok(format!("Server {} maintenance {}", st.servers[i].addr, if st.servers[i].maintenance { "on" } else { "off" }))
            })
            .await?;
        self.shared.write().log(Level::Info, "maintenance", &msg);
        Ok(msg)
    }
}
