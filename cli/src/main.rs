//! `replication-manager-cli`: the command-line client of replication-manager's REST API
//! (status, topology, switchover, failover, server actions, raw calls, the manager group).
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod client;
mod commands;
mod jobs;
mod render;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Command-line client of replication-manager.
#[derive(Debug, Parser)]
#[command(name = "replication-manager-cli", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub conn: Connection,
    #[command(subcommand)]
    pub command: Command,
}

/// How to reach and log in to the manager (every flag also has an environment variable).
#[derive(Debug, Args)]
pub struct Connection {
    /// Manager host.
    #[arg(long, global = true, env = "REPMAN_HOST", default_value = "127.0.0.1")]
    pub host: String,
    /// Manager API port: its `http-port` (plain HTTP), or its `api-port` with --https.
    #[arg(long, global = true, env = "REPMAN_PORT", default_value_t = 10001)]
    pub port: u16,
    /// API user.
    #[arg(long, global = true, env = "REPMAN_USER", default_value = "admin")]
    pub user: String,
    /// API password (better given through REPMAN_PASSWORD than on the command line).
    #[arg(long, global = true, env = "REPMAN_PASSWORD", hide_env_values = true, default_value = "repman")]
    pub password: String,
    /// Cluster to act on; optional when the manager has one cluster (status and topology
    /// then show every cluster).
    #[arg(long, global = true, env = "REPMAN_CLUSTER")]
    pub cluster: Option<String>,
    /// Connect with HTTPS (the manager's `api-port` listener).
    #[arg(long, global = true)]
    pub https: bool,
    /// Accept any TLS certificate (the manager's self-signed one); implies --https.
    #[arg(long, global = true)]
    pub insecure: bool,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Seconds a read may take.
    #[arg(long, global = true, default_value_t = 10.0)]
    pub timeout: f64,
    /// Seconds an action (switchover, failover, server action) may take before the manager
    /// answers.
    #[arg(long, global = true, default_value_t = 300.0)]
    pub action_timeout: f64,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Each cluster's state: running or errors, master, servers up, mode, failovers, A/S.
    Status,
    /// The replication topology: every server with its state, GTIDs, health, delay, read-only.
    Topology,
    /// Switch the master over to the best replica (or the one named).
    Switchover {
        /// host:port of the replica to promote.
        #[arg(long = "prefered-master", alias = "preferred-master")]
        prefered_master: Option<String>,
    },
    /// Fail the master over now, electing the most up-to-date replica.
    Failover,
    /// JSON report of a cluster (for support): settings, servers, master, slaves, crashes,
    /// alerts, logs, jobs.
    Show {
        /// Comma-separated objects to include (default: all).
        #[arg(long, value_delimiter = ',', default_value = "settings,servers,master,slaves,crashes,alerts,logs,jobs")]
        get: Vec<String>,
    },
    /// Run an action on a server, or read information from it.
    Server(ServerArgs),
    /// Jobs of the cluster (backups, reseeds, optimize).
    Jobs,
    /// A raw authenticated call: prints the answer's body (JSON pretty-printed).
    Api {
        /// Path, e.g. /api/clusters/c1/topology/master (a leading /api/ may be left out).
        path: String,
        /// HTTP method.
        #[arg(long, short = 'X', default_value = "GET")]
        method: String,
        /// Request body (JSON).
        #[arg(long, short = 'd')]
        data: Option<String>,
    },
    /// The manager group: every manager, the leader, who is active (A) or standby (S), the term.
    Group,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Server id (as `topology` shows it) or host:port.
    #[arg(long)]
    pub id: String,
    /// Action: start, stop, maintenance, provision, unprovision, backup, backup-logical,
    /// backup-physical, backup-error-log, backup-slow-query-log, optimize, toogle-read-only,
    /// toogle-innodb-monitor, toogle-slow-query, toogle-slow-query-capture, reset-master,
    /// start-slave, skip-replication-event, reseed-logicalmaster, reseed-logicalbackup,
    /// reseed-physicalbackup. Job actions are followed until the job ends.
    #[arg(long, conflicts_with = "get", required_unless_present = "get")]
    pub action: Option<String>,
    /// Information: processlist, variables, status, status-delta, status-innodb, errorlog,
    /// slowlog, slow-queries, tables, vtables, schemas, master-status, all-slaves-status.
    #[arg(long)]
    pub get: Option<String>,
    /// Do not follow a job action: print its id and return.
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to follow a job before giving up (the job goes on in the manager).
    #[arg(long, default_value_t = 3600)]
    pub job_timeout: u64,
}

impl Connection {
    fn endpoint(&self) -> anyhow::Result<client::Endpoint> {
        let secs = |v: f64, name: &str| -> anyhow::Result<Duration> {
            anyhow::ensure!(v.is_finite() && v > 0.0 && v <= 86_400.0, "--{name} must be seconds between 0 and 86400");
            Ok(Duration::from_secs_f64(v))
        };
        Ok(client::Endpoint {
            host: self.host.clone(),
            port: self.port,
            https: self.https || self.insecure,
            insecure: self.insecure,
            timeout: secs(self.timeout, "timeout")?,
            action_timeout: secs(self.action_timeout, "action-timeout")?,
        })
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("replication-manager-cli: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            anstream::eprintln!("{}replication-manager-cli: {e:#}{}", anstyle::AnsiColor::Red.render_fg(), anstyle::Reset.render());
            ExitCode::FAILURE
        }
    }
}
