//! Traffic follows the master through a real HAProxy that the manager runs and drives: writes
//! through the write port survive a failover and a switchover with no acknowledged write lost,
//! the read backend drains a lagging replica and restores it, a backend changed by hand is put
//! back, a standby manager never touches the proxy, and HAProxy's own `httpchk` follows the role
//! checks. Real mariadbd, haproxy and manager processes on loopback ports of their own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::group::GroupLab;
use common::haproxy::{HaproxyGuard, ProxyPorts};
use common::load::{assert_no_loss, create_table, ids_on, WriteLoad};
use common::*;
use mysql_async::prelude::Queryable;
use serde_json::Value;

const CLUSTER: &str = "c1";
const WRITE: &str = "service_write";
const READ: &str = "service_read";

/// A sandbox, a manager driving one local HAProxy, and the guard that stops that HAProxy.
struct Lab {
    // Dropped in this order: the proxy, then the manager, then the databases.
    proxy: HaproxyGuard,
    m: Manager,
    sb: Sandbox,
    token: String,
    dir: std::path::PathBuf,
}

impl Lab {
    async fn start(extra: &[(&'static str, &str)]) -> Lab {
        let sb = Sandbox::start(3, true);
        create_table(&sb, 1);
        let slot = slot();
        let ports = ProxyPorts::free(slot);
        let mut keys = ports.keys();
        keys.push(("failover-mode", "automatic".to_string()));
        keys.push(("failover-limit", "0".to_string()));
        keys.push(("failover-falsepositive-ping-counter", "3".to_string()));
        keys.push(("switchover-wait-kill", "200".to_string()));
        for (k, v) in extra {
            keys.retain(|(kk, _)| kk != k);
            keys.push((k, v.to_string()));
        }
        let (m, dir) = sandbox_manager(&sb, "proxy", CLUSTER, 1, &[], &keys).await;
        let token = m.token().await;
        let lab = Lab { proxy: HaproxyGuard { ports, dir: dir.clone() }, m, sb, token, dir };
        let first = lab.sb.addr(1);
        assert!(
            wait_until(Duration::from_secs(30), || async { lab.write_backend().await == vec![first.clone()] && lab.read_ready().await.len() == 2 }).await,
            "the manager did not provision HAProxy with the master in the write backend and both replicas in the read backend: {}\n{}",
            lab.proxies().await,
            lab.m.log_text()
        );
        lab
    }

    fn ports(&self) -> ProxyPorts {
        self.proxy.ports
    }

    async fn servers(&self) -> Value {
        self.m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &self.token).await
    }

    async fn proxies(&self) -> Value {
        self.m.get_json(&format!("/api/clusters/{CLUSTER}/topology/proxies"), &self.token).await
    }

    /// `id` of the server at `addr`.
    async fn id_of(&self, addr: &str) -> String {
        server_by_url(&self.servers().await, addr)["id"].as_str().unwrap().to_string()
    }

    /// The addresses HAProxy's `backend` takes new connections for.
    async fn ready_in(&self, backend: &str) -> Vec<String> {
        let mut out = Vec::new();
        for i in 1..=self.sb.count {
            let addr = self.sb.addr(i);
            if self.ports().is_ready(backend, &self.id_of(&addr).await) {
                out.push(addr);
            }
        }
        out
    }

    async fn write_backend(&self) -> Vec<String> {
        self.ready_in(WRITE).await
    }

    async fn read_ready(&self) -> Vec<String> {
        self.ready_in(READ).await
    }

    async fn master_url(&self) -> Option<String> {
        let m = self.m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), &self.token).await;
        (m["state"] == "Master").then(|| m["url"].as_str().map(str::to_string)).flatten()
    }

    fn index_of(&self, addr: &str) -> u16 {
        (1..=self.sb.count).find(|i| self.sb.addr(*i) == addr).unwrap()
    }

    async fn monitor_spin(&self) -> u64 {
        let c = self.m.get_json(&format!("/api/clusters/{CLUSTER}"), &self.token).await;
        c["monitorSpin"].as_u64().or_else(|| c["monitorSpin"].as_str().and_then(|s| s.trim().parse().ok())).unwrap_or(0)
    }

    fn finish(self) {
        let dir = self.dir.clone();
        drop(self);
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// `@@port` of the server a new connection through `port` reaches.
async fn port_behind(port: u16) -> Option<u16> {
    let mut c = common::load::connect(port).await?;
    let p = tokio::time::timeout(Duration::from_secs(2), c.query_first::<u16, _>("SELECT @@port")).await.ok()?.ok()?;
    let _ = c.disconnect().await;
    p
}

/// The master is SIGKILLed while an application writes through the HAProxy write port: writes
/// resume through the same port on the new master, and no acknowledged write is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failover_through_the_proxy_loses_no_acknowledged_write() {
    let lab = Lab::start(&[]).await;
    // The proxy object as the Go project shows it.
    assert!(wait_until(Duration::from_secs(10), || async { lab.proxies().await[0]["state"] == "ProxyRunning" }).await, "{}", lab.proxies().await);
    let p = lab.proxies().await;
    let px = &p[0];
    assert!(px["id"].as_str().unwrap().starts_with("px"), "{p}");
    assert_eq!(px["type"], "haproxy");
    assert_eq!(px["state"], "ProxyRunning", "{p}");
    assert_eq!(px["writePort"], lab.ports().write);
    assert_eq!(px["readPort"], lab.ports().read);
    assert!(px["process"]["Pid"].as_u64().is_some(), "{p}");
    let master_id = lab.id_of(&lab.sb.addr(1)).await;
    let in_write: Vec<&Value> = px["backendsWrite"].as_array().unwrap().iter().filter(|b| b["prxStatus"] != "MAINT").collect();
    assert_eq!(in_write.len(), 1, "{p}");
    assert_eq!(in_write[0]["prxName"], master_id.as_str());
    assert_eq!(in_write[0]["status"], "Master");
    let c = lab.m.get_json(&format!("/api/clusters/{CLUSTER}"), &lab.token).await;
    assert_eq!(c["proxyServers"][0], px["id"], "cluster object's proxyServers");

    let old = lab.sb.addr(1);
    let load = WriteLoad::start(vec![lab.ports().write], 1_000_000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Measured from the moment the kill command returns (the process is gone): every write
    // acknowledged after it went to the new master.
    lab.sb.run(&["kill", "1"]);
    let killed_at = Instant::now();
    let new = {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(u) = lab.master_url().await.filter(|u| *u != old) {
                break u;
            }
            assert!(Instant::now() < deadline, "no failover: {}\n{}", lab.servers().await, lab.m.log_text());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert!(
        wait_until(Duration::from_secs(10), || async { lab.write_backend().await == vec![new.clone()] }).await,
        "the write backend does not hold exactly the new master {new}: {}",
        lab.proxies().await
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = load.stop().await;
    let before = report.ack_times.iter().filter(|(t, _)| *t < killed_at).count();
    let first_after = report.ack_times.iter().find(|(t, _)| *t > killed_at).map(|(t, _)| t.duration_since(killed_at));
    println!(
        "failover through HAProxy: {} writes acknowledged ({before} before the kill), first acknowledged write through the write port {:.2} s after SIGKILL, {} refused, {} unknown",
        report.acked.len(),
        first_after.map_or(f64::NAN, |d| d.as_secs_f64()),
        report.refused,
        report.unknown
    );
    assert!(before > 0, "no write went through the proxy before the kill");
    assert!(first_after.is_some(), "writes did not resume through the proxy after the failover: {}", lab.m.log_text());
    let new_i = lab.index_of(&new);
    assert_no_loss(&report.acked, &ids_on(&lab.sb, new_i), "failover through the proxy");
    // The old master is out of both backends of the proxy.
    let old_id = lab.id_of(&old).await;
    assert!(!lab.ports().is_ready(WRITE, &old_id) && !lab.ports().is_ready(READ, &old_id));
    let log = lab.m.log_text();
    assert!(log.contains("left the write backend") && log.contains("entered the write backend"), "no fence step logged:\n{log}");
    lab.finish();
}

/// A switchover while an application writes through the proxy: the new master takes the
/// writes through the same port, none acknowledged is lost; the longest gap is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchover_through_the_proxy() {
    let lab = Lab::start(&[]).await;
    let load = WriteLoad::start(vec![lab.ports().write], 2_000_000);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let started = Instant::now();
    let (st, body) = lab.m.get(&format!("/api/clusters/{CLUSTER}/actions/switchover"), Some(&lab.token)).await;
    let took = started.elapsed();
    assert_eq!(st, 200, "{body}\n{}", lab.m.log_text());
    assert!(!body.contains("proxy update failed"), "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let report = load.stop().await;
    let new = lab.master_url().await.expect("a master after the switchover");
    assert_ne!(new, lab.sb.addr(1));
    assert_eq!(lab.write_backend().await, vec![new.clone()], "{}", lab.proxies().await);
    let after = report.ack_times.iter().filter(|(t, _)| *t > started + took).count();
    println!(
        "switchover through HAProxy: API call {:.2} s; longest gap between acknowledged writes {:.3} s; {} acknowledged ({after} after the switchover), {} refused, {} unknown",
        took.as_secs_f64(),
        report.longest_gap.as_secs_f64(),
        report.acked.len(),
        report.refused,
        report.unknown
    );
    assert!(after > 0, "no write went through the proxy after the switchover");
    assert_no_loss(&report.acked, &ids_on(&lab.sb, lab.index_of(&new)), "switchover through the proxy");
    // The old master, now a replica, serves reads.
    let old = lab.sb.addr(1);
    assert!(
        wait_until(Duration::from_secs(15), || async { lab.read_ready().await.contains(&old) }).await,
        "the old master did not enter the read backend as a replica: {}",
        lab.proxies().await
    );
    lab.finish();
}

/// A replica that lags beyond `failover-max-slave-delay` is drained from the read backend (new
/// read connections go to the other replica) and comes back once it caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn read_backend_drains_a_lagging_replica_and_restores_it() {
    let lab = Lab::start(&[("failover-max-slave-delay", "2")]).await;
    let (late, other) = (lab.sb.addr(2), lab.sb.addr(3));
    let late_id = lab.id_of(&late).await;
    lab.sb.sql(2, "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 3600; START SLAVE");
    for i in 0..40 {
        lab.sb.sql(1, &format!("INSERT INTO app.t (id, port) VALUES ({}, 0)", 900_000 + i));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        wait_until(Duration::from_secs(20), || async { lab.ports().status(READ, &late_id).is_some_and(|s| s.starts_with("DRAIN")) }).await,
        "the lagging replica was not drained: {}\n{}",
        lab.servers().await,
        lab.proxies().await
    );
    assert_eq!(lab.read_ready().await, vec![other.clone()]);
    for _ in 0..6 {
        assert_eq!(port_behind(lab.ports().read).await, Some(lab.sb.port(3)), "a new read connection reached the drained replica");
    }
    let p = lab.proxies().await;
    let drained = p[0]["backendsRead"].as_array().unwrap().iter().find(|b| b["prxName"] == late_id.as_str()).cloned().unwrap();
    assert_eq!((drained["status"].as_str(), drained["prxStatus"].as_str()), (Some("SlaveLate"), Some("DRAIN")), "{p}");
    lab.sb.sql(2, "STOP SLAVE; CHANGE MASTER TO MASTER_DELAY = 0; START SLAVE");
    assert!(
        wait_until(Duration::from_secs(30), || async { lab.read_ready().await.len() == 2 }).await,
        "the replica did not come back once caught up: {}\n{}",
        lab.servers().await,
        lab.proxies().await
    );
    lab.finish();
}

/// Backends changed by hand through the runtime API are put back by the next ticks; traffic
/// stop and start through the API; the role checks answer per server.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn drift_is_repaired_and_traffic_can_be_stopped() {
    let lab = Lab::start(&[("monitoring-ticker", "1")]).await;
    let (master, replica) = (lab.id_of(&lab.sb.addr(1)).await, lab.id_of(&lab.sb.addr(2)).await);
    for cmd in [format!("set server {WRITE}/{master} state maint"), format!("set server {WRITE}/{replica} state ready"), format!("set server {READ}/{replica} state drain")] {
        assert_eq!(lab.ports().api(&cmd).map(|a| a.trim().to_string()), Some(String::new()), "{cmd}");
    }
    let spin = lab.monitor_spin().await;
    let repaired = || async { lab.write_backend().await == vec![lab.sb.addr(1)] && lab.read_ready().await.len() == 2 };
    assert!(wait_until(Duration::from_secs(20), repaired).await, "drift not repaired: {}", lab.proxies().await);
    let ticks = lab.monitor_spin().await - spin;
    println!("drift repaired after {ticks} tick(s) (monitoring-ticker 1 s)");
    // The tick running when the drift was made may have observed the proxy before it: the
    // repair comes with the next one or the one after; the counter read after it may have
    // moved once more.
    assert!(ticks <= 3, "drift repaired only after {ticks} ticks");

    let (st, body) = lab.m.get(&format!("/api/clusters/{CLUSTER}/actions/stop-traffic"), Some(&lab.token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(lab.write_backend().await.is_empty(), "stop-traffic left a server in the write backend");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(lab.write_backend().await.is_empty(), "a tick put traffic back while it is stopped");
    assert!(common::load::connect(lab.ports().write).await.is_none(), "a connection through the write port reached a server while traffic is stopped");
    let (st, body) = lab.m.get(&format!("/api/clusters/{CLUSTER}/actions/start-traffic"), Some(&lab.token)).await;
    assert_eq!(st, 200, "{body}");
    assert_eq!(lab.write_backend().await, vec![lab.sb.addr(1)]);
    assert_eq!(port_behind(lab.ports().write).await, Some(lab.sb.port(1)));

    // Role checks, for any HTTP-checking balancer.
    for (server, path, want) in [(1, "primary", 200), (2, "primary", 503), (2, "replica", 200), (1, "replica", 503), (2, "replica?lag=5", 200), (2, "read-only", 200), (1, "read-only", 503)] {
        let (st, body) = lab.m.get(&format!("/clusters/{CLUSTER}/servers/{}/{path}", lab.sb.addr(server)), None).await;
        assert_eq!(st, want, "{path} of server {server}: {body}");
    }
    let (st, _) = lab.m.get(&format!("/clusters/{CLUSTER}/servers/{}/replica?lag=x", lab.sb.addr(2)), None).await;
    assert_eq!(st, 400);

    // Proxy actions: stop by PID (not restarted by the ticks), then start and provision again.
    let id = lab.proxies().await[0]["id"].as_str().unwrap().to_string();
    let pid = lab.ports().pid().expect("HAProxy pid");
    let (st, body) = lab.m.get(&format!("/api/clusters/{CLUSTER}/proxies/{id}/actions/stop"), Some(&lab.token)).await;
    assert_eq!(st, 200, "{body}");
    let runs = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'));
    assert!(lab.ports().pid().is_none() && !runs(pid), "HAProxy still runs after stop");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(lab.ports().pid().is_none(), "a tick started the stopped proxy again");
    assert_eq!(lab.proxies().await[0]["state"], "Stopped");
    let (st, body) = lab.m.get(&format!("/api/clusters/{CLUSTER}/proxies/{id}/actions/start"), Some(&lab.token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(10), || async { lab.write_backend().await == vec![lab.sb.addr(1)] }).await);
    let (st, body) = lab.m.get(&format!("/api/clusters/{CLUSTER}/proxies/{id}/actions/provision"), Some(&lab.token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("reloaded"), "{body}");
    assert!(wait_until(Duration::from_secs(10), || async { lab.write_backend().await == vec![lab.sb.addr(1)] && lab.read_ready().await.len() == 2 }).await);
    let (st, _) = lab.m.get(&format!("/api/clusters/{CLUSTER}/proxies/px0/actions/stop"), Some(&lab.token)).await;
    assert_eq!(st, 404);
    lab.finish();
}

/// An HAProxy started by the test itself (foreground, its own PID), killed on drop.
struct OwnHaproxy(std::process::Child);

impl Drop for OwnHaproxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The HAProxy `httpchk` setup of the README: a proxy that only follows the role checks (it is
/// not driven by the manager) sends writes to the master and reads to the replicas, also
/// after a switchover. Each server's health comes from a one-server check backend asking the
/// manager about that server (`track`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn haproxy_httpchk_follows_the_role_checks() {
    let sb = Sandbox::start(3, true);
    create_table(&sb, 1);
    let (m, dir) = sandbox_manager(&sb, "httpchk", CLUSTER, 1, &[], &[("switchover-wait-kill", "200".to_string())]).await;
    let token = m.token().await;
    assert!(wait_until(Duration::from_secs(20), || async { m.get(&format!("/clusters/{CLUSTER}/servers/{}/primary", sb.addr(1)), None).await.0 == 200 }).await);
    let ports = ProxyPorts::free(slot());
    let cfg = httpchk_config(&sb, &ports, m.http_port);
    let path = dir.join("httpchk.cfg");
    std::fs::write(&path, &cfg).unwrap();
    let bin = common::haproxy::binary();
    let check = std::process::Command::new(&bin).arg("-c").arg("-f").arg(&path).output().unwrap();
    assert!(check.status.success(), "{}\n{cfg}", String::from_utf8_lossy(&check.stderr));
    let child = std::process::Command::new(&bin).arg("-f").arg(&path).arg("-db").stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let _proxy = OwnHaproxy(child);
    let up = |backend: &'static str, i: u16| ports.status(backend, &format!("s{i}")).is_some_and(|s| s.starts_with("UP"));
    let roles_are = |master: u16| async move {
        (1..=3).all(|i| up("primary", i) == (i == master) && up("replicas", i) == (i != master))
    };
    assert!(wait_until(Duration::from_secs(20), || roles_are(1)).await, "HAProxy's checks do not see instance 1 as the primary: {:?}", ports.api("show stat"));
    assert_eq!(port_behind(ports.write).await, Some(sb.port(1)));
    assert!(matches!(port_behind(ports.read).await, Some(p) if p == sb.port(2) || p == sb.port(3)));
    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/actions/switchover?prefmaster={}", sb.addr(2)), Some(&token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(30), || roles_are(2)).await, "HAProxy's checks did not follow the switchover: {:?}", ports.api("show stat"));
    assert_eq!(port_behind(ports.write).await, Some(sb.port(2)));
    drop(m);
    drop(sb);
    let _ = std::fs::remove_dir_all(dir);
}

/// The `httpchk` configuration documented in the README, for the sandbox's three servers and
/// the manager's HTTP port.
fn httpchk_config(sb: &Sandbox, ports: &ProxyPorts, manager_port: u16) -> String {
    let mut c = format!(
        "global\n    stats socket ipv4@127.0.0.1:{api} level admin\n\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 1m\n    timeout server 1m\n    timeout check 1s\n\n\
         frontend write\n    bind 127.0.0.1:{w}\n    default_backend primary\n\n\
         frontend read\n    bind 127.0.0.1:{r}\n    default_backend replicas\n",
        api = ports.api,
        w = ports.write,
        r = ports.read
    );
    for (backend, role) in [("primary", "primary"), ("replicas", "replica?lag=10")] {
        c.push_str(&format!("\nbackend {backend}\n"));
        for i in 1..=3 {
            c.push_str(&format!("    server s{i} {} track chk_{backend}_{i}/s{i}\n", sb.addr(i)));
        }
        for i in 1..=3 {
            c.push_str(&format!(
                "\nbackend chk_{backend}_{i}\n    option httpchk\n    http-check send meth GET uri /clusters/{CLUSTER}/servers/{}/{role}\n    http-check expect status 200\n    server s{i} {} check addr 127.0.0.1 port {manager_port} inter 500 fall 1 rise 1\n",
                sb.addr(i),
                sb.addr(i)
            ));
        }
    }
    c
}

/// Three managers: only the leader drives the proxy; the standbys observe it and never change
/// it; when the leader stops, the next one takes the same HAProxy over (no second process) and
/// repairs it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standby_managers_never_touch_the_proxy() {
    let ports = ProxyPorts::free(slot());
    let keys = ports.keys();
    let extra: Vec<(&'static str, &str)> = keys.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut lab = GroupLab::start(3, &["manager", "manager", "manager"], None, &extra).await;
    let root = lab.nodes[0].dir.parent().unwrap().to_path_buf();
    let guard = HaproxyGuard { ports, dir: root };
    let first = lab.sb.addr(1);
    let leader = lab.active_nodes().await[0];
    let id_of = |servers: &Value, addr: &str| server_by_url(servers, addr)["id"].as_str().unwrap().to_string();
    let servers = lab.nodes[0].get_json("/api/clusters/c1/topology/servers", &lab.token).await.unwrap();
    let (master_id, replica_id) = (id_of(&servers, &first), id_of(&servers, &lab.sb.addr(2)));
    assert!(
        wait_until(Duration::from_secs(30), || async { ports.is_ready(WRITE, &master_id) && ports.is_ready(READ, &replica_id) }).await,
        "the leader did not provision the proxy: {}",
        lab.logs()
    );
    let pid = ports.pid().expect("HAProxy pid");
    // Every node shows the proxy; only the leader changed it.
    for n in &lab.nodes {
        let p = n.get_json("/api/clusters/c1/topology/proxies", &lab.token).await.unwrap();
        assert!(wait_until(Duration::from_secs(10), || async { n.get_json("/api/clusters/c1/topology/proxies", &lab.token).await.is_some_and(|p| p[0]["state"] == "ProxyRunning") }).await, "node {}: {p}", n.id);
    }
    let mutations = |n: &common::group::Node| n.log_text().matches("executing on proxy").count();
    // Drift by hand: repaired by the leader only.
    assert_eq!(ports.api(&format!("set server {READ}/{replica_id} state maint")).map(|a| a.trim().to_string()), Some(String::new()));
    assert!(wait_until(Duration::from_secs(20), || async { ports.is_ready(READ, &replica_id) }).await, "drift not repaired: {}", lab.logs());
    for n in &lab.nodes {
        if n.id == leader {
            assert!(mutations(n) > 0, "the leader logged no proxy change");
        } else {
            assert_eq!(mutations(n), 0, "standby node {} changed the proxy:\n{}", n.id, n.log_text());
        }
    }
    // The leader stops: the next leader drives the same process.
    lab.node(leader).stop();
    assert!(wait_until(Duration::from_secs(30), || async { lab.active_nodes().await.len() == 1 }).await, "no new leader: {}", lab.logs());
    let next = lab.active_nodes().await[0];
    assert_ne!(next, leader);
    assert_eq!(ports.api(&format!("set server {READ}/{replica_id} state maint")).map(|a| a.trim().to_string()), Some(String::new()));
    assert!(wait_until(Duration::from_secs(20), || async { ports.is_ready(READ, &replica_id) }).await, "the new leader did not repair the drift: {}", lab.logs());
    assert_eq!(ports.pid(), Some(pid), "the new leader started another HAProxy instead of driving the running one");
    for n in lab.nodes.iter().filter(|n| n.id != leader) {
        if n.id == next {
            assert!(mutations(n) > 0, "the new leader logged no proxy change");
        } else {
            assert_eq!(mutations(n), 0, "standby node {} changed the proxy:\n{}", n.id, n.log_text());
        }
    }
    drop(guard);
    lab.finish();
}
