//! The local orchestrator: the manager provisions, starts, stops and unprovisions real mariadbd
//! instances itself, and bootstraps their replication (`services/bootstrap`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;

const CLUSTER: &str = "c1";

/// Stops, by PID, every instance the manager's local orchestrator left running under `dir`.
struct Instances(PathBuf);

impl Drop for Instances {
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.0.join("data/local").join(CLUSTER)) else { return };
        for e in entries.flatten() {
            let cnf = e.path().join("my.cnf").display().to_string();
            let Ok(pid) = std::fs::read_to_string(e.path().join("mariadbd.pid")) else { continue };
            let pid = pid.trim().to_string();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&cnf) {
                let _ = std::process::Command::new("kill").args(["-KILL", &pid]).status();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_orchestrator_provisions_bootstraps_and_stops() {
    let slot = slot();
    let dir = temp_dir("local", slot);
    let _guard = Instances(dir.clone());
    let ports = free_ports(slot + 1100, 3);
    let (p1, p2, http_port) = (ports, ports + 1, ports + 2);
    let hosts = format!("127.0.0.1:{p1},127.0.0.1:{p2}");
    let keys = vec![
        ("db-servers-hosts", hosts),
        ("db-servers-credential", "repman:repman".to_string()),
        ("replication-credential", "repl:repl".to_string()),
        ("db-servers-connect-timeout", "1".to_string()),
        ("monitoring-ticker", "0.5".to_string()),
        ("prov-orchestrator", "local".to_string()),
    ];
    write_config(&dir, &default_keys(&dir, http_port), CLUSTER, &keys);
    let m = Manager::start(&dir, http_port, &[]).await;
    let token = m.token().await;
    let (a1, a2) = (format!("127.0.0.1:{p1}"), format!("127.0.0.1:{p2}"));

    // Provisioning installs and starts real instances: the test waits for it explicitly.
    let (st, body) = m.get_long(&format!("/api/clusters/{CLUSTER}/services/bootstrap"), &token, Duration::from_secs(300)).await;
    assert_eq!(st, 200, "{body}\n{}", m.log_text());
    let state = |addr: String| {
        let m = &m;
        let token = token.clone();
        async move { server_by_url(&m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await, &addr)["state"].clone() }
    };
    assert!(
        wait_until(Duration::from_secs(20), || async { state(a1.clone()).await == "Master" && state(a2.clone()).await == "Slave" }).await,
        "bootstrap did not give master-slave: {}",
        m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await
    );
    let pid_file = dir.join(format!("data/local/{CLUSTER}/{p2}/mariadbd.pid"));
    assert!(pid_file.exists());

    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{a2}/actions/stop"), Some(&token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(20), || async { state(a2.clone()).await == "Failed" }).await);
    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{a2}/actions/start"), Some(&token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(20), || async { state(a2.clone()).await == "Slave" }).await, "restarted replica not Slave");

    for a in [&a2, &a1] {
        let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{a}/actions/unprovision"), Some(&token)).await;
        assert_eq!(st, 200, "{body}");
    }
    assert!(!pid_file.exists(), "instance directory not removed");
    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{a1}/actions/start"), Some(&token)).await;
    assert_eq!(st, 500, "starting an unprovisioned instance is refused: {body}");
    assert!(body.contains("not provisioned"), "{body}");
    drop(m);
    let _ = std::fs::remove_dir_all(&dir);
}
