//! HAProxy as the tests see it: the `haproxy` binary (the test fails loudly without it), free
//! loopback ports for one instance managed by the manager, its runtime API, and a guard that
//! stops the instance the test's manager started, by the PID it reports, when the test ends.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::free_ports;

/// The haproxy binary; panics (the test fails) when it is not installed.
pub fn binary() -> String {
    let p = "/usr/sbin/haproxy";
    assert!(Path::new(p).exists(), "{p} is missing: install the `haproxy` package (scripts/install-deps)");
    p.to_string()
}

/// The ports of one HAProxy instance: write, read, stat, runtime API.
#[derive(Debug, Clone, Copy)]
pub struct ProxyPorts {
    pub write: u16,
    pub read: u16,
    pub stat: u16,
    pub api: u16,
}

impl ProxyPorts {
    pub fn free(slot: u32) -> ProxyPorts {
        let b = free_ports(slot + 1700, 4);
        ProxyPorts { write: b, read: b + 1, stat: b + 2, api: b + 3 }
    }

    /// The cluster keys that make the manager run this instance.
    pub fn keys(&self) -> Vec<(&'static str, String)> {
        vec![
            ("haproxy", "true".to_string()),
            ("haproxy-servers", "127.0.0.1".to_string()),
            ("haproxy-binary-path", binary()),
            ("haproxy-write-port", self.write.to_string()),
            ("haproxy-read-port", self.read.to_string()),
            ("haproxy-stat-port", self.stat.to_string()),
            ("haproxy-api-port", self.api.to_string()),
            ("haproxy-ip-write-bind", "127.0.0.1".to_string()),
            ("haproxy-ip-read-bind", "127.0.0.1".to_string()),
        ]
    }

    /// One runtime API command; `None` when the API does not answer.
    pub fn api(&self, cmd: &str) -> Option<String> {
        let mut s = TcpStream::connect_timeout(&([127, 0, 0, 1], self.api).into(), Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(format!("{cmd}\n").as_bytes()).ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    /// The PID HAProxy reports.
    pub fn pid(&self) -> Option<u32> {
        self.api("show info")?.lines().find_map(|l| l.strip_prefix("Pid:").and_then(|p| p.trim().parse().ok()))
    }

    /// `show stat` status of `backend/server` (`UP`, `no check`, `MAINT`, `DRAIN`, ...).
    pub fn status(&self, backend: &str, server: &str) -> Option<String> {
        let stat = self.api("show stat")?;
        let mut lines = stat.lines();
        let header: Vec<&str> = lines.next()?.trim_start_matches("# ").split(',').collect();
        let col = header.iter().position(|h| *h == "status")?;
        lines.find_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f.first() == Some(&backend) && f.get(1) == Some(&server)).then(|| f.get(col).map(|s| s.to_string())).flatten()
        })
    }

    /// True when `backend/server` takes new connections.
    pub fn is_ready(&self, backend: &str, server: &str) -> bool {
        self.status(backend, server).is_some_and(|s| !s.starts_with("MAINT") && !s.starts_with("DRAIN"))
    }
}

/// Stops, when dropped, the HAProxy instance that the test's manager started under `dir` (the
/// PID is the one it reports and the one in its PID file, and its command line must name a
/// configuration file under `dir`).
pub struct HaproxyGuard {
    pub ports: ProxyPorts,
    pub dir: PathBuf,
}

fn pid_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            pid_files(&p, out);
        } else if p.file_name().is_some_and(|n| n == "haproxy.pid") {
            out.push(p);
        }
    }
}

impl HaproxyGuard {
    /// The PIDs of the instances started under `dir` that still run.
    pub fn pids(&self) -> Vec<u32> {
        let mut files = Vec::new();
        pid_files(&self.dir, &mut files);
        let mut pids: Vec<u32> = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()?.trim().parse().ok()).collect();
        pids.extend(self.ports.pid());
        pids.sort_unstable();
        pids.dedup();
        let dir = self.dir.display().to_string();
        pids.into_iter()
            .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(&dir)))
            .collect()
    }
}

impl Drop for HaproxyGuard {
    fn drop(&mut self) {
        for pid in self.pids() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        }
    }
}
