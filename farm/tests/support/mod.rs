//! Shared by the farm's tests: the manager's real probe (its source files compiled here, with
//! no dependency on the manager crate), free port ranges, and the farm child process.

#![allow(dead_code)]

use std::io::BufRead;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

// The manager's own probe, SQL text and GTID parsing, read from its sources: the farm is
// checked against exactly what the manager sends and how it reads the answers. Should
// probe.rs import more of the manager, add that module here beside these (or a stand-in).
#[path = "../../../src/config/values.rs"]
#[allow(dead_code, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod config_values;
#[path = "../../../src/db/gtid.rs"]
#[allow(dead_code, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod db_gtid;
#[path = "../../../src/db/probe.rs"]
#[allow(dead_code, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod db_probe;
#[path = "../../../src/db/sql.rs"]
#[allow(dead_code, clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod db_sql;

/// The module paths the manager's files import (`crate::config`, `crate::db::...`).
pub mod config {
    pub use super::config_values::{Credential, HostPort};
}
pub mod db {
    pub use super::db_gtid as gtid;
    pub use super::db_probe as probe;
    pub use super::db_sql as sql;
}

pub use db::probe::{ProbeError, ServerProbe, ServerSnapshot};

/// The account the test farms accept.
pub const USER: &str = "rm";
pub const PASSWORD: &str = "farm-secret";

/// The probe of one farm port, as the monitor builds it.
pub fn probe(port: u16, password: &str, timeout: Duration) -> ServerProbe {
    let addr = config::HostPort { host: "127.0.0.1".into(), port };
    ServerProbe::new(addr, config::Credential { user: USER.into(), password: password.into() }, timeout)
}

/// `n` consecutive ports free on 127.0.0.1 now, below the ephemeral range, chosen from this
/// process's id and `salt` so that tests running at the same time look in different places.
pub fn free_range(n: u16, salt: u32) -> Option<u16> {
    let (low, high) = (10_000u32, 32_000u32);
    let span = high - low - u32::from(n);
    let seed = std::process::id().wrapping_mul(2_654_435_761).wrapping_add(salt.wrapping_mul(40_503));
    for attempt in 0..50u32 {
        let base = low + (seed.wrapping_add(attempt.wrapping_mul(7_919))) % span;
        let base = u16::try_from(base).ok()?;
        let all_free = (0..n).all(|i| TcpListener::bind((Ipv4Addr::LOCALHOST, base + i)).is_ok());
        if all_free {
            return Some(base);
        }
    }
    None
}

/// A running `rm-farm`; killed (by its PID) when dropped.
pub struct FarmProcess {
    child: Child,
    pub base_port: u16,
    pub control_port: u16,
    pub ready_line: String,
    pub started_in: Duration,
}

impl Drop for FarmProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl FarmProcess {
    /// Starts a farm of `clusters` x `per_cluster` on free ports; waits for its ready line.
    pub fn start(clusters: u16, per_cluster: u16, salt: u32) -> FarmProcess {
        let n = clusters * per_cluster;
        let mut last_error = String::new();
        for attempt in 0..3 {
            let Some(base) = free_range(n, salt.wrapping_add(attempt * 1_000)) else {
                last_error = "no free port range".into();
                continue;
            };
            match Self::try_start(clusters, per_cluster, base) {
                Ok(f) => return f,
                // Another process took a port between the check and the bind: look elsewhere.
                Err(e) => last_error = e,
            }
        }
        panic!("rm-farm did not start: {last_error}");
    }

    fn try_start(clusters: u16, per_cluster: u16, base: u16) -> Result<FarmProcess, String> {
        let dir = std::env::temp_dir().join(format!("rm-farm-test-{}-{base}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let ready_file = dir.join("ready.json");
        let _ = std::fs::remove_file(&ready_file);
        let started = Instant::now();
        // RM_FARM_BIN: another build of the farm (the release one, for its figures).
        let bin = std::env::var_os("RM_FARM_BIN").map_or_else(|| env!("CARGO_BIN_EXE_rm-farm").into(), std::path::PathBuf::from);
        let mut child = Command::new(bin)
            .args(["--clusters", &clusters.to_string(), "--servers-per-cluster", &per_cluster.to_string()])
            .args(["--base-port", &base.to_string(), "--user", USER, "--password", PASSWORD, "--control-port", "0"])
            .arg("--ready-file")
            .arg(&ready_file)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawning rm-farm: {e}"))?;
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            let _ = child.wait();
            return Err("no stdout".into());
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            // The first line is the ready line; the rest (none expected) is drained.
            for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(60));
        let mut farm = FarmProcess { child, base_port: base, control_port: 0, ready_line: String::new(), started_in: started.elapsed() };
        let line = line.map_err(|_| format!("no ready line from rm-farm on {base}.. ({:?})", farm.child.try_wait()))?;
        let ready: serde_json::Value = std::fs::read_to_string(&ready_file)
            .map_err(|e| e.to_string())
            .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
            .map_err(|e| format!("ready file {}: {e}", ready_file.display()))?;
        farm.control_port = ready["control_port"].as_u64().and_then(|p| u16::try_from(p).ok()).ok_or("no control port")?;
        farm.ready_line = line;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(farm)
    }

    /// The port of cluster `c`'s server `s`.
    pub fn port(&self, per_cluster: u16, c: u16, s: u16) -> u16 {
        self.base_port + c * per_cluster + s
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child's resident memory (VmRSS in /proc/PID/status), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// CPU time the child has used (user + system), from /proc/PID/stat (USER_HZ = 100).
    pub fn cpu_time(&self) -> Option<Duration> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name, which ends at the last ')': utime and stime are the
        // 14th and 15th fields of the line, the 12th and 13th after it.
        let mut after = stat.rsplit_once(')')?.1.split_whitespace().skip(11);
        let ticks: u64 = after.next()?.parse::<u64>().ok()? + after.next()?.parse::<u64>().ok()?;
        Some(Duration::from_millis(ticks * 10))
    }

    /// Sends one control command and returns the answer line.
    pub async fn control(&self, command: &str) -> String {
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.control_port)).await?;
            s.write_all(format!("{command}\n").as_bytes()).await?;
            let mut line = String::new();
            BufReader::new(s).read_line(&mut line).await?;
            Ok::<_, std::io::Error>(line.trim_end().to_string())
        };
        match tokio::time::timeout(Duration::from_secs(10), exchange).await {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => panic!("control `{command}`: {e}"),
            Err(_) => panic!("control `{command}`: no answer within 10 s"),
        }
    }

    /// The `stats` answer, parsed.
    pub async fn stats(&self) -> serde_json::Value {
        let line = self.control("stats").await;
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("stats is not JSON ({e}): {line}"))
    }
}

/// Retries `check` every 50 ms until it returns `Some` or `within` has passed.
pub async fn eventually<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
