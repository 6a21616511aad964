//! End-to-end: real mariadbd sandboxes, the real manager binary, the read API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const CLUSTER: &str = "c1";

async fn servers(m: &Manager, token: &str) -> Value {
    m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), token).await
}

fn state_of(servers: &Value, addr: &str) -> String {
    server_by_url(servers, addr)["state"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovers_topology_and_answers_health_routes() {
    let sb = Sandbox::start(3, true);
    let (m, dir) = sandbox_manager(&sb, "topo", CLUSTER, 1, &[], &[]).await;
    let token = m.token().await;

    let (m1, r2, r3) = (sb.addr(1), sb.addr(2), sb.addr(3));
    let ok = wait_until(Duration::from_secs(15), || async {
        let s = servers(&m, &token).await;
        state_of(&s, &m1) == "Master" && state_of(&s, &r2) == "Slave" && state_of(&s, &r3) == "Slave"
    })
    .await;
    assert!(ok, "topology not discovered: {}\n{}", servers(&m, &token).await, m.log_text());

    // Discovered within two monitor ticks of the start.
    let logs = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/logs"), &token).await;
    let line = logs
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find(|l| l.contains("Topology discovered at tick"))
        .unwrap_or_else(|| panic!("no discovery line in {logs}"))
        .to_string();
    let tick: u64 = line.split("at tick ").nth(1).unwrap().split(':').next().unwrap().parse().unwrap();
    assert!(tick <= 2, "discovered at tick {tick}: {line}");

    // Server objects carry positions, replication and semi-sync state.
    let s = servers(&m, &token).await;
    let master = server_by_url(&s, &m1);
    assert_eq!(master["isReadOnly"], false);
    assert_eq!(master["readOnly"], "OFF");
    assert_eq!(master["semiSyncMasterStatus"], true, "sandbox primary has semi-sync on: {master}");
    assert!(master["gtidBinlogPos"].as_array().is_some_and(|a| !a.is_empty()), "{master}");
    assert_eq!(master["failCount"], 0);
    let replica = server_by_url(&s, &r2);
    assert_eq!(replica["isReadOnly"], true);
    let repl = &replica["replications"][0];
    assert_eq!(repl["slaveIoRunning"]["String"], "Yes");
    assert_eq!(repl["slaveSqlRunning"]["String"], "Yes");
    assert_eq!(repl["masterPort"]["String"], sb.port(1).to_string());
    assert_eq!(repl["secondsBehindMaster"]["Valid"], true);
    assert!(!repl["gtidIoPos"]["String"].as_str().unwrap().is_empty());

    // Topology routes.
    let tm = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), &token).await;
    assert_eq!(tm["url"], m1.as_str());
    let slaves = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/slaves"), &token).await;
    assert_eq!(slaves.as_array().unwrap().len(), 2);
    let alerts = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/alerts"), &token).await;
    assert!(alerts["errors"].is_null(), "healthy cluster has no error: {alerts}");
    let crashes = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/crashes"), &token).await;
    assert_eq!(crashes, serde_json::json!([]));

    // Cluster object and list, secrets masked.
    let c = m.get_json(&format!("/api/clusters/{CLUSTER}"), &token).await;
    assert_eq!(c["name"], CLUSTER);
    assert_eq!(c["dbServers"].as_array().unwrap().len(), 3);
    assert_eq!(c["activePassiveStatus"], "A");
    assert_eq!(c["isSplitBrain"], false);
    assert_eq!(c["failoverCounter"], 0);
    assert_eq!(c["topology"], "master-slave");
    assert!(c["uptime"].as_f64().unwrap() > 50.0, "master up most ticks: {}", c["uptime"]);
    assert!(c["uptimeSemisync"].as_f64().unwrap() > 0.0, "semi-sync seen on: {}", c["uptimeSemisync"]);
    assert_eq!(c["config"]["dbServersCredential"], "*:*");
    assert_eq!(c["config"]["replicationCredential"], "*:*");
    assert_eq!(c["config"]["apiCredentials"], "*:*");
    assert_eq!(c["apiUsers"]["admin"]["grants"]["cluster-failover"], true);
    let all = m.get_json("/api/clusters", &token).await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    assert!(!all.to_string().contains("repman:repman"), "a secret leaked in /api/clusters");
    let mon = m.get_json("/api/monitor", &token).await;
    assert_eq!(mon["status"], "A");
    assert_eq!(mon["spitBrain"], false);
    assert_eq!(mon["clusters"], serde_json::json!([CLUSTER]));
    assert!(!mon.to_string().contains("repman:repman"), "a secret leaked in /api/monitor");

    // Server read routes, by id and by host:port.
    let id = master["id"].as_str().unwrap();
    let ms = m.get_json(&format!("/api/clusters/{CLUSTER}/servers/{id}/master-status"), &token).await;
    assert!(ms["file"].as_str().unwrap().starts_with("mysql-bin"), "{ms}");
    let ss = m.get_json(&format!("/api/clusters/{CLUSTER}/servers/{r2}/all-slaves-status"), &token).await;
    assert_eq!(ss[0]["masterPort"]["String"], sb.port(1).to_string());
    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/servers/db0/master-status"), Some(&token)).await;
    assert_eq!((st, body.as_str()), (404, "Unknown server: db0 (cluster c1)"));

    // Health routes: valid only for the master / for healthy replicas.
    let p1 = sb.port(1).to_string();
    let p2 = sb.port(2).to_string();
    for (path, code, body) in [
        (format!("/api/clusters/{CLUSTER}/servers/{id}/is-master"), 200, "200 -Valid Master!"),
        (format!("/api/clusters/{CLUSTER}/servers/{m1}/is-master"), 200, "200 -Valid Master!"),
        (format!("/api/clusters/{CLUSTER}/servers/127.0.0.1/{p1}/is-master"), 200, "200 -Valid Master!"),
        (format!("/clusters/{CLUSTER}/servers/{id}/master-status"), 200, "200 -Valid Master!"),
        (format!("/clusters/{CLUSTER}/servers/127.0.0.1/{p1}/master-status"), 200, "200 -Valid Master!"),
        (format!("/clusters/{CLUSTER}/servers/{m1}/is-master"), 200, "200 -Valid Master!"),
        (format!("/api/clusters/{CLUSTER}/servers/{r2}/is-master"), 503, "503 -Not a Valid Master!"),
        (format!("/api/clusters/{CLUSTER}/servers/127.0.0.1/{p2}/is-master"), 503, "503 -Not a Valid Master!"),
        (format!("/clusters/{CLUSTER}/servers/{r2}/master-status"), 503, "503 -Not a Valid Master!"),
        (format!("/api/clusters/{CLUSTER}/servers/{r2}/is-slave"), 200, "200 -Valid Slave!"),
        (format!("/clusters/{CLUSTER}/servers/127.0.0.1/{p2}/slave-status"), 200, "200 -Valid Slave!"),
        (format!("/clusters/{CLUSTER}/servers/{r2}/slave-status"), 200, "200 -Valid Slave!"),
        (format!("/api/clusters/{CLUSTER}/servers/{m1}/is-slave"), 503, "503 -Not a Valid Slave!"),
        (format!("/api/clusters/{CLUSTER}/servers/127.0.0.1/1/is-master"), 503, "503 -Node not Found!"),
        (format!("/api/clusters/{CLUSTER}/servers/db0/is-master"), 503, "503 -Not a Valid Master!"),
        (format!("/api/clusters/nope/servers/{m1}/is-master"), 500, "No cluster!"),
        (format!("/clusters/nope/servers/127.0.0.1/{p1}/slave-status"), 500, "No cluster!"),
        (format!("/api/clusters/{CLUSTER}/status"), 200, r#"{"alive": "running"}"#),
        ("/api/clusters/nope/status".to_string(), 400, "No cluster found : nope"),
        ("/api/status".to_string(), 200, r#"{"alive": "running"}"#),
    ] {
        let (st, b) = m.get(&path, None).await;
        assert_eq!((st, b.as_str()), (code, body), "GET {path}");
    }
    drop(m);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Probes batch: once a server's flavor is known, its version, variables, status and
/// replication status come in one multi-statement round trip (then SHOW MASTER STATUS and the
/// dump threads), as the server's general log shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_probe_batches_its_first_statements_in_one_round_trip() {
    let sb = Sandbox::start(2, true);
    let (m, dir) = sandbox_manager(&sb, "batch", CLUSTER, 1, &[], &[]).await;
    let token = m.token().await;
    assert!(wait_until(Duration::from_secs(15), || async { state_of(&servers(&m, &token).await, &sb.addr(2)) == "Slave" }).await);
    sb.sql(2, "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 1");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    sb.sql(2, "SET GLOBAL general_log = 0");
    let count = |pattern: &str| -> u64 {
        let q = format!("SELECT COUNT(*) FROM mysql.general_log WHERE command_type = 'Query' AND argument LIKE '{pattern}'");
        sb.sql(2, &q).trim().parse().unwrap_or_else(|e| panic!("{q}: {e}"))
    };
    let batched = count("SELECT @@version, @@version_comment, @@hostname, @@server_id; SELECT @@read_only%SHOW ALL SLAVES STATUS");
    let alone = count("SELECT @@version, @@version_comment, @@hostname, @@server_id");
    let master_status = count("SHOW MASTER STATUS");
    assert!(batched >= 2, "{batched} batched probes in 2.5 s at a 1 s ticker: {}", m.log_text());
    assert_eq!(alone, 0, "the version asked alone: the probe did not batch");
    assert!(master_status >= batched, "SHOW MASTER STATUS stays a round trip of its own");
    drop(m);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replica_goes_suspect_then_failed_and_comes_back() {
    let sb = Sandbox::start(3, true);
    let (m, dir) =
        sandbox_manager(&sb, "kill", CLUSTER, 1, &[], &[("failover-falsepositive-ping-counter", "4".to_string())]).await;
    let token = m.token().await;
    let r3 = sb.addr(3);
    assert!(
        wait_until(Duration::from_secs(15), || async { state_of(&servers(&m, &token).await, &r3) == "Slave" }).await,
        "replica never Slave: {}",
        m.log_text()
    );

    sb.run(&["kill", "3"]);
    // Sample the state; record (state, failCount) transitions.
    let mut seen: Vec<(String, u64)> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        let s = servers(&m, &token).await;
        let srv = server_by_url(&s, &r3);
        let entry = (srv["state"].as_str().unwrap().to_string(), srv["failCount"].as_u64().unwrap());
        if seen.last() != Some(&entry) {
            seen.push(entry.clone());
        }
        if entry.0 == "Failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first_suspect = seen.iter().position(|(s, _)| s == "Suspect").unwrap_or_else(|| panic!("never Suspect: {seen:?}"));
    let failed = seen.iter().position(|(s, _)| s == "Failed").unwrap_or_else(|| panic!("never Failed: {seen:?}"));
    assert!(first_suspect < failed, "{seen:?}");
    for (state, count) in &seen {
        match state.as_str() {
            "Suspect" => assert!((1..4).contains(count), "Suspect with failCount {count}: {seen:?}"),
            "Failed" => assert!(*count >= 4, "Failed before the counter: {seen:?}"),
            _ => {}
        }
    }
    // The master stays valid, the dead replica is no valid slave.
    let (st, _) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{r3}/is-slave"), None).await;
    assert_eq!(st, 503);

    sb.run(&["start-one", "3"]);
    assert!(
        wait_until(Duration::from_secs(20), || async { state_of(&servers(&m, &token).await, &r3) == "Slave" }).await,
        "restarted replica did not come back as Slave: {}",
        servers(&m, &token).await
    );
    let logs = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/logs"), &token).await.to_string();
    assert!(logs.contains("changed to: Failed"), "{logs}");
    assert!(logs.contains("changed to: Slave"), "{logs}");
    drop(m);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_tokens_and_tls() {
    let sb = Sandbox::start(1, false);
    let slot = slot();
    let dir = temp_dir("auth", slot);
    let port = free_ports(slot + 500, 2);
    let mut defaults = default_keys(&dir, port);
    defaults.push(("api-port", (port + 1).to_string()));
    defaults.push(("api-bind", "127.0.0.1".to_string()));
    defaults.push(("api-credentials", "admin:repman,viewer:view".to_string()));
    defaults.push(("api-credentials-acl-allow", "admin:global cluster proxy db prov,viewer:".to_string()));
    write_config(&dir, &defaults, CLUSTER, &cluster_keys(&sb));
    let m = Manager::start(&dir, port, &[]).await;
    let client = http();

    // Missing or bad tokens: 401 on every protected route.
    for path in ["/api/clusters", "/api/monitor", "/api/clusters/c1", "/api/clusters/c1/topology/servers"] {
        let (st, body) = m.get(path, None).await;
        assert_eq!(st, 401, "GET {path} without token: {body}");
        assert!(body.starts_with("Unauthorised access to this resource"), "{body}");
        let (st, _) = m.get(path, Some("abc.def.ghi")).await;
        assert_eq!(st, 401, "GET {path} with a forged token");
    }
    // Malformed body, bad password, then the rate limit.
    let r = client.post(m.url("/api/login")).body("{not json").send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.text().await.unwrap(), "Error in request");
    let bad_login = || client.post(m.url("/api/login")).json(&serde_json::json!({"username": "dba", "password": "wrong"})).send();
    for _ in 0..3 {
        let r = bad_login().await.unwrap();
        assert_eq!(r.status(), 403);
        assert_eq!(r.text().await.unwrap(), "Invalid credentials");
    }
    let r = bad_login().await.unwrap();
    assert_eq!(r.status(), 429, "fourth failure within 3 minutes is rate limited");

    // A good login; the token works, also after a manager restart (persisted key).
    let token = m.token().await;
    let (st, _) = m.get("/api/clusters", Some(&token)).await;
    assert_eq!(st, 200);

    // A user without grants reads the topology but is refused actions and server reads.
    let viewer = m.token_for("viewer", "view").await;
    let (st, _) = m.get(&format!("/api/clusters/{CLUSTER}/topology/servers"), Some(&viewer)).await;
    assert_eq!(st, 200);
    for path in [
        format!("/api/clusters/{CLUSTER}/actions/failover"),
        format!("/api/clusters/{CLUSTER}/actions/switchover"),
        format!("/api/clusters/{CLUSTER}/servers/{}/master-status", sb.addr(1)),
        format!("/api/clusters/{CLUSTER}/servers/{}/actions/maintenance", sb.addr(1)),
    ] {
        let (st, body) = m.get(&path, Some(&viewer)).await;
        assert_eq!((st, body.as_str()), (403, "No valid ACL"), "GET {path} as viewer");
    }
    let c = m.get_json(&format!("/api/clusters/{CLUSTER}"), &token).await;
    assert_eq!(c["apiUsers"]["viewer"]["grants"]["cluster-failover"], false);

    // The same router over TLS on api-port, with a self-signed certificate.
    let tls = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let r = tls
        .get(format!("https://127.0.0.1:{}/api/clusters/{CLUSTER}", port + 1))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["name"], CLUSTER);
    assert!(dir.join("data/api-selfsigned.crt").exists());

    drop(m);
    let m2 = Manager::start(&dir, port, &[]).await;
    let (st, _) = m2.get("/api/clusters", Some(&token)).await;
    assert_eq!(st, 200, "token issued before a restart stays valid");
    drop(m2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_config_value_fails_naming_the_key() {
    let slot = slot();
    let dir = temp_dir("badcfg", slot);
    std::fs::write(
        dir.join("config.toml"),
        "[Default]\nmonitoring-ticker = \"soon\"\n[c1]\ndb-servers-hosts = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_replication-manager"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("monitor")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("monitoring-ticker"), "{err}");

    // A flag with a bad value is refused the same way.
    std::fs::write(dir.join("config.toml"), "[c1]\ndb-servers-hosts = \"127.0.0.1:1\"\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_replication-manager"))
        .arg("--config")
        .arg(dir.join("config.toml"))
        .arg("--failover-limit=many")
        .arg("monitor")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("failover-limit"));
    let _ = std::fs::remove_dir_all(&dir);
}
