//! The `verbose` cluster setting: one log line per probe round with every server's state,
//! GTID position, lag and read-only flag, for an operator watching a problem as it happens.

use super::ClusterMonitor;

impl ClusterMonitor {
    /// Logs the round just applied when `verbose` is on.
    pub(super) fn log_round_if_verbose(&self) {
        let st = self.shared.read();
        if !st.config.verbose {
            return;
        }
        let servers: Vec<String> = st
            .servers
            .iter()
            .map(|s| {
                let detail = s.snapshot.as_ref().map(|sn| {
                    let lag = sn
                        .managed_replication(&st.config.replication_source_name)
                        .and_then(|r| r.seconds_behind_master)
                        .map(|l| format!(" lag {l}s"))
                        .unwrap_or_default();
                    format!(" gtid {}{lag}{}", sn.gtid_current_pos, if sn.read_only { " ro" } else { "" })
                });
                format!("{} {:?}{}", s.addr, s.state, detail.unwrap_or_default())
            })
            .collect();
        let master = st.master.map(|m| st.servers[m].addr.to_string()).unwrap_or_else(|| "none".to_string());
        tracing::info!(master = %master, servers = %servers.join("; "), "verbose: probe round");
    }
}
