//! `LocalOrchestrator` (`prov-orchestrator = "local"`): the manager creates, starts, stops and
//! destroys the `mariadbd` instances of a cluster on its own host, one per configured
//! loopback `host:port`, each under `<monitoring-datadir>/local/<cluster>/<port>/` with its own
//! datadir, socket, tmpdir and server_id. It signals only the processes it started (PID file
//! checked against `/proc/<pid>/cmdline`), never by name.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::config::{ClusterConfig, HostPort};

/// How long an instance may take to start or stop.
pub const START_DEADLINE: Duration = Duration::from_secs(60);
/// Longest unix socket path (sun_path is 108 bytes).
const MAX_SOCKET_PATH: usize = 100;

/// True when this host can run local instances: `mariadbd` and `mariadb-install-db` are on
/// the manager's `PATH` (or in /usr/sbin, where Debian puts mariadbd).
pub fn available() -> bool {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path).chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")]).collect();
    ["mariadbd", "mariadb-install-db"].iter().all(|bin| dirs.iter().any(|d| d.join(bin).is_file()))
}

/// The instances of one cluster on this host.
pub struct LocalOrchestrator {
    root: PathBuf,
}

impl LocalOrchestrator {
    /// Instances of `cluster` under `datadir`.
    pub fn new(datadir: &Path, cluster: &str) -> LocalOrchestrator {
        LocalOrchestrator { root: datadir.join("local").join(cluster) }
    }

    fn dir(&self, addr: &HostPort) -> PathBuf {
        self.root.join(addr.port.to_string())
    }

    fn cnf(&self, addr: &HostPort) -> PathBuf {
        self.dir(addr).join("my.cnf")
    }

    fn check_addr(addr: &HostPort) -> anyhow::Result<()> {
        if !addr.is_loopback() {
            bail!("the local orchestrator only manages servers on this host (127.0.0.0/8); {addr} is not one");
        }
        Ok(())
    }

    /// Creates the instance (datadir, accounts from the cluster's credentials) and starts it.
    pub async fn provision(&self, cfg: &ClusterConfig, addr: &HostPort) -> anyhow::Result<String> {
        Self::check_addr(addr)?;
        let dir = self.dir(addr);
        if dir.join("data").join("mysql").exists() {
            self.start(addr).await?;
            return Ok(format!("{addr} already provisioned in {}; started", dir.display()));
        }
        let sock = dir.join("mysqld.sock");
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            bail!("socket path {} is too long for a unix socket: use a shorter monitoring-datadir", sock.display());
        }
        for d in ["data", "tmp"] {
            std::fs::create_dir_all(dir.join(d)).with_context(|| format!("creating {}", dir.join(d).display()))?;
        }
        let server_id = u32::from(addr.port);
        let cnf = format!(
            "[mariadbd]\nuser = mysql\nport = {port}\nbind-address = {host}\nsocket = {sock}\ndatadir = {data}\ntmpdir = {tmp}\n\
             pid-file = {dir}/mysqld.pid\nlog_error = {dir}/error.log\nslow_query_log_file = {dir}/slow.log\n\
             server_id = {server_id}\nskip-name-resolve\nreport_host = {host}\nreport_port = {port}\n\
             log_bin = mysql-bin\nrelay_log = relay-bin\nlog_slave_updates = ON\nbinlog_format = ROW\n\
             gtid_strict_mode = ON\ngtid_domain_id = 0\nread_only = ON\n\
             rpl_semi_sync_slave_enabled = ON\nrpl_semi_sync_master_enabled = OFF\nrpl_semi_sync_master_timeout = 1000\n\
             rpl_semi_sync_master_wait_point = AFTER_SYNC\nslave_net_timeout = 10\n\
             innodb_buffer_pool_size = 16M\ninnodb_log_file_size = 16M\nperformance_schema = OFF\n\n\
             [client]\nsocket = {sock}\n",
            port = addr.port,
            host = addr.host,
            sock = sock.display(),
            data = dir.join("data").display(),
            tmp = dir.join("tmp").display(),
            dir = dir.display(),
        );
        std::fs::write(self.cnf(addr), cnf).with_context(|| format!("writing {}", self.cnf(addr).display()))?;
        chown_mysql(&dir).await?;
        let out = tokio::time::timeout(
            START_DEADLINE,
            tokio::process::Command::new("mariadb-install-db")
                .arg(format!("--defaults-file={}", self.cnf(addr).display()))
                .arg("--user=mysql")
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .context("mariadb-install-db timed out")?
        .context("running mariadb-install-db")?;
        if !out.status.success() {
            bail!("mariadb-install-db failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        self.start(addr).await?;
        let accounts = crate::db::sql::provision_accounts(
            &cfg.db_credential.user,
            &cfg.db_credential.password,
            &cfg.replication_credential.user,
            &cfg.replication_credential.password,
        );
        self.socket_sql(addr, &accounts).await?;
        Ok(format!("provisioned {addr} in {}", dir.display()))
    }

    async fn socket_sql(&self, addr: &HostPort, sql: &str) -> anyhow::Result<()> {
        let out = tokio::time::timeout(
            Duration::from_secs(30),
            tokio::process::Command::new("mariadb")
                .arg(format!("--defaults-file={}", self.cnf(addr).display()))
                .arg("-uroot")
                .arg("-e")
                .arg(sql)
                .stdin(Stdio::null())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .context("mariadb client timed out")?
        .context("running the mariadb client")?;
        if !out.status.success() {
            bail!("SQL on {addr} failed: {}", String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    }

    /// The PID of the running instance this orchestrator started, if any.
    fn running_pid(&self, addr: &HostPort) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.dir(addr).join("mariadbd.pid")).ok()?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let zombie = stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z'));
        let ours = String::from_utf8_lossy(&cmdline).contains(&self.cnf(addr).display().to_string());
        (ours && !zombie).then_some(pid)
    }

    /// Starts the instance (no-op when it runs) and waits until it answers.
    pub async fn start(&self, addr: &HostPort) -> anyhow::Result<String> {
        Self::check_addr(addr)?;
        if !self.cnf(addr).exists() {
            bail!("{addr} is not provisioned by the local orchestrator (no {})", self.cnf(addr).display());
        }
        if let Some(pid) = self.running_pid(addr) {
            return Ok(format!("{addr} already runs (pid {pid})"));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir(addr).join("stdout.log"))
            .context("opening the instance's stdout log")?;
        let log2 = log.try_clone().context("cloning a file handle")?;
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("mariadbd")
            .arg(format!("--defaults-file={}", self.cnf(addr).display()))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Its own process group: the database outlives the manager and its signals.
            .process_group(0)
            .spawn()
            .context("starting mariadbd")?;
        let pid = child.id();
        std::fs::write(self.dir(addr).join("mariadbd.pid"), pid.to_string()).context("writing the pid file")?;
        // The child is reaped by whoever ends it; dropping the handle does not kill it.
        drop(child);
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        loop {
            if self.ping(addr).await {
                return Ok(format!("started {addr} (pid {pid})"));
            }
            if self.running_pid(addr).is_none() {
                bail!("mariadbd for {addr} exited at start; see {}", self.dir(addr).join("error.log").display());
            }
            if tokio::time::Instant::now() >= deadline {
                bail!("mariadbd for {addr} did not answer within {START_DEADLINE:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn ping(&self, addr: &HostPort) -> bool {
        let out = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::process::Command::new("mariadb-admin")
                .arg(format!("--defaults-file={}", self.cnf(addr).display()))
                .arg("-uroot")
                .arg("ping")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .status(),
        )
        .await;
        matches!(out, Ok(Ok(s)) if s.success())
    }

    /// Stops the instance it started: SIGTERM, bounded wait, then SIGKILL.
    pub async fn stop(&self, addr: &HostPort) -> anyhow::Result<String> {
        Self::check_addr(addr)?;
        let Some(pid) = self.running_pid(addr) else { return Ok(format!("{addr} is not running")) };
        signal(pid, "TERM").await?;
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        while self.running_pid(addr).is_some() {
            if tokio::time::Instant::now() >= deadline {
                signal(pid, "KILL").await?;
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(format!("stopped {addr} (pid {pid})"))
    }

    /// Stops the instance and deletes its directory.
    pub async fn unprovision(&self, addr: &HostPort) -> anyhow::Result<String> {
        self.stop(addr).await?;
        let dir = self.dir(addr);
        if dir.starts_with(&self.root) && dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        Ok(format!("unprovisioned {addr}"))
    }
}

async fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    crate::command::signal(pid, sig).await.map_err(anyhow::Error::msg)
}

async fn chown_mysql(dir: &Path) -> anyhow::Result<()> {
    let st = tokio::process::Command::new("chown")
        .arg("-R")
        .arg("mysql:mysql")
        .arg(dir)
        .status()
        .await
        .context("running chown")?;
    if !st.success() {
        bail!("chown mysql {} failed (the local orchestrator needs root and the mysql user)", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_servers() {
        assert!(LocalOrchestrator::check_addr(&HostPort { host: "127.0.0.1".into(), port: 1 }).is_ok());
        assert!(LocalOrchestrator::check_addr(&HostPort { host: "localhost".into(), port: 1 }).is_ok());
        assert!(LocalOrchestrator::check_addr(&HostPort { host: "db1".into(), port: 1 }).is_err());
    }
}
