//! Reseed of a replica from a logical backup job of the cluster.

use crate::cluster::log::Level;
use crate::failover::error::OpResult;
use crate::config::{ClusterConfig, HostPort};
use crate::db::sql::{self, Flavor};
use crate::failover::executor::FailoverExecutor;
use crate::failover::rejoin::DUMP_DEADLINE;

impl FailoverExecutor<'_> {
    /// Reloads `addr` from a logical backup job and makes it a replica of `master` from the
    /// backup's GTID position (its own binary log is reset first).
    pub async fn reseed_from_backup(
        &self,
        cfg: &ClusterConfig,
        addr: &HostPort,
        flavor: Flavor,
        master: &HostPort,
        job: &crate::actions::jobs::Job,
    ) -> OpResult {
        let mut c = self.admin(cfg, addr, flavor).await?;
        self.mutate(&mut c, "read_only", sql::READ_ONLY_ON).await?;
        self.mutate(&mut c, "stop replication", sql::STOP_ALL_SLAVES).await?;
        self.mutate(&mut c, "reset replication", &sql::reset_slave_all(&cfg.replication_source_name)).await?;
        self.mutate(&mut c, "discard own binary log", sql::RESET_MASTER).await?;
        let pos = self
            .while_leader(
                &format!("restore backup {} into {addr}", job.id),
                crate::actions::jobs::restore_logical(job, addr, &cfg.db_credential, DUMP_DEADLINE),
            )
            .await?;
        self.mutate(&mut c, "replica position from backup", &sql::set_slave_pos(&pos)).await?;
        c.close().await;
        self.repoint(cfg, addr, flavor, master).await?;
        let msg = format!("Reseeded {addr} from backup {} (GTID {pos}) and replicating from {master}", job.id);
        self.log(Level::Info, &msg);
        Ok(msg)
    }
}
