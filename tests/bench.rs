//! Benchmarks (run by scripts/bench-failover, ignored by `cargo test`): they print figures and
//! assert nothing about speed. Rounds: BENCH_ROUNDS (default 5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::load::{create_table, WriteLoad};
use common::*;

const CLUSTER: &str = "bench";

fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(5)
}

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    let idx = ((p / 100.0) * (s.len() - 1) as f64).round() as usize;
    s[idx.min(s.len() - 1)]
}

async fn start(sb: &Sandbox) -> (Manager, String, std::path::PathBuf) {
    let slot = slot();
    let dir = temp_dir("bench", slot);
    let port = free_ports(slot + 500, 1);
    let mut keys = cluster_keys(sb);
    keys.push(("failover-mode", "automatic".to_string()));
    keys.push(("failover-limit", "0".to_string()));
    keys.push(("switchover-wait-kill", "200".to_string()));
    write_config(&dir, &default_keys(&dir, port), CLUSTER, &keys);
    let m = Manager::start(&dir, port, &[]).await;
    let token = m.token().await;
    (m, token, dir)
}

async fn master(m: &Manager, token: &str) -> Option<String> {
    let v = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), token).await;
    (v["state"] == "Master").then(|| v["url"].as_str().unwrap_or("").to_string())
}

async fn all_replicating(m: &Manager, token: &str, n: usize) -> bool {
    let s = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), token).await;
    let arr = s.as_array().unwrap();
    arr.iter().filter(|x| x["state"] == "Slave").count() == n - 1 && arr.iter().any(|x| x["state"] == "Master")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with scripts/bench-failover"]
async fn bench_failover() {
    let sb = Sandbox::start(3, true);
    create_table(&sb, 1);
    let (m, token, dir) = start(&sb).await;
    assert!(wait_until(Duration::from_secs(15), || all_replicating(&m, &token, 3)).await);
    let ports: Vec<u16> = (1..=3).map(|i| sb.port(i)).collect();
    let (mut detect, mut writable) = (Vec::new(), Vec::new());
    println!("failover bench: 3 servers, semi-sync, monitoring-ticker 0.5 s, connect timeout 1 s, ping counter 5 (default)");
    for round in 0..rounds() {
        let old = master(&m, &token).await.unwrap();
        let old_i = (1..=3).find(|i| sb.addr(*i) == old).unwrap();
        let load = WriteLoad::start(ports.clone(), (round as u64 + 1) * 10_000_000);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let killed_at = Instant::now();
        sb.run(&["kill", &old_i.to_string()]);
        let mut detected = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let s = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await;
            if detected.is_none() && server_by_url(&s, &old)["state"] == "Failed" {
                detected = Some(killed_at.elapsed());
            }
            if master(&m, &token).await.is_some_and(|u| u != old) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let report = load.stop().await;
        let first_new = report
            .ack_times
            .iter()
            .find(|(t, p)| *t > killed_at && *p != sb.port(old_i))
            .map(|(t, _)| t.duration_since(killed_at));
        let d = detected.map_or(f64::NAN, |d| d.as_secs_f64());
        let w = first_new.map_or(f64::NAN, |d| d.as_secs_f64());
        println!("round {round}: killed {old}; detection (Failed) {d:.2} s; first acknowledged write on the new master {w:.2} s after SIGKILL");
        detect.push(d);
        writable.push(w);
        sb.run(&["start-one", &old_i.to_string()]);
        assert!(wait_until(Duration::from_secs(60), || all_replicating(&m, &token, 3)).await, "old master not rejoined");
    }
    println!(
        "failover summary over {} rounds: detection p50 {:.2} s p95 {:.2} s; time to writable p50 {:.2} s p95 {:.2} s",
        detect.len(),
        percentile(&detect, 50.0),
        percentile(&detect, 95.0),
        percentile(&writable, 50.0),
        percentile(&writable, 95.0)
    );
    drop(m);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with scripts/bench-failover"]
async fn bench_switchover() {
    let sb = Sandbox::start(3, true);
    create_table(&sb, 1);
    let (m, token, dir) = start(&sb).await;
    assert!(wait_until(Duration::from_secs(15), || all_replicating(&m, &token, 3)).await);
    let ports: Vec<u16> = (1..=3).map(|i| sb.port(i)).collect();
    let (mut gaps, mut durations) = (Vec::new(), Vec::new());
    println!("switchover bench: 3 servers, semi-sync, switchover-wait-kill 200 ms, one writer following the master");
    for round in 0..rounds() {
        let old = master(&m, &token).await.unwrap();
        let load = WriteLoad::start(ports.clone(), (round as u64 + 1) * 10_000_000);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let started = Instant::now();
        let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/actions/switchover"), Some(&token)).await;
        let took = started.elapsed().as_secs_f64();
        assert_eq!(st, 200, "{body}");
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let report = load.stop().await;
        let new = master(&m, &token).await.unwrap_or_default();
        let gap = report.longest_gap.as_secs_f64();
        println!("round {round}: {old} -> {new}; API call {took:.2} s; write unavailability (longest gap between acknowledged writes) {gap:.3} s");
        gaps.push(gap);
        durations.push(took);
        assert!(wait_until(Duration::from_secs(30), || all_replicating(&m, &token, 3)).await);
    }
    println!(
        "switchover summary over {} rounds: write unavailability p50 {:.3} s p95 {:.3} s; API call p50 {:.2} s",
        gaps.len(),
        percentile(&gaps, 50.0),
        percentile(&gaps, 95.0),
        percentile(&durations, 50.0)
    );
    drop(m);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with scripts/bench-failover"]
async fn bench_group() {
    use common::group::GroupLab;
    let mut leader_times = Vec::new();
    let mut both_times = Vec::new();
    println!("group bench: 3 managers (heartbeat 250 ms, election 1500-3000 ms), 3 servers, ticker 0.5 s, ping counter 3");
    for round in 0..rounds() {
        let mut lab = GroupLab::start(3, &["manager", "manager", "manager"], None, &[]).await;
        let leader = lab.active_nodes().await[0];
        let t0 = Instant::now();
        lab.node(leader).kill();
        let mut new_leader = None;
        while t0.elapsed() < Duration::from_secs(30) {
            let a = lab.active_nodes().await;
            if a.len() == 1 && a[0] != leader {
                new_leader = Some(t0.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let t_leader = new_leader.map_or(f64::NAN, |d| d.as_secs_f64());
        lab.start_node(leader);
        tokio::time::sleep(Duration::from_secs(3)).await;

        // Now the leader manager and the master together, under write load.
        let ports: Vec<u16> = (1..=3).map(|i| lab.sb.port(i)).collect();
        let load = WriteLoad::start(ports, (round as u64 + 1) * 10_000_000);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let leader = lab.active_nodes().await.first().copied().unwrap_or(1);
        let t1 = Instant::now();
        lab.node(leader).kill();
        lab.sb.run(&["kill", "1"]);
        tokio::time::sleep(Duration::from_secs(12)).await;
        let report = load.stop().await;
        let first = report.ack_times.iter().find(|(t, p)| *t > t1 && *p != lab.sb.port(1)).map(|(t, _)| t.duration_since(t1));
        let t_both = first.map_or(f64::NAN, |d| d.as_secs_f64());
        println!("round {round}: leader manager kill -> new active node {t_leader:.2} s; leader manager + master kill -> first acknowledged write on the new master {t_both:.2} s");
        leader_times.push(t_leader);
        both_times.push(t_both);
        lab.finish();
    }
    println!(
        "group summary over {} rounds: new active leader p50 {:.2} s p95 {:.2} s; writable after leader+master kill p50 {:.2} s p95 {:.2} s",
        leader_times.len(),
        percentile(&leader_times, 50.0),
        percentile(&leader_times, 95.0),
        percentile(&both_times, 50.0),
        percentile(&both_times, 95.0)
    );
}

/// Requests per second and latency percentiles of one route under `clients` concurrent clients.
async fn load_route(url: String, token: Option<String>, clients: usize, duration: Duration) -> (f64, f64, f64, u64) {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).pool_max_idle_per_host(clients).build().unwrap();
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0u64;
            while Instant::now() < deadline {
                let t = Instant::now();
                let mut rq = client.get(&url);
                if let Some(tk) = &token {
                    rq = rq.bearer_auth(tk);
                }
                match rq.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(t.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => errors += 1,
                }
            }
            (lat, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (l, e) = t.await.unwrap();
        all.extend(l);
        errors += e;
    }
    let rps = all.len() as f64 / duration.as_secs_f64();
    (rps, percentile(&all, 50.0), percentile(&all, 99.0), errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with scripts/bench-failover"]
async fn bench_api() {
    let sb = Sandbox::start(3, true);
    let (m, token, dir) = start(&sb).await;
    assert!(wait_until(Duration::from_secs(15), || all_replicating(&m, &token, 3)).await);
    let clients = 16;
    let duration = Duration::from_secs(5);
    for (name, path, tok) in [
        ("health is-master", format!("/api/clusters/{CLUSTER}/servers/{}/is-master", sb.addr(1)), None),
        ("topology/servers", format!("/api/clusters/{CLUSTER}/topology/servers"), Some(token.clone())),
    ] {
        let (rps, p50, p99, errors) = load_route(m.url(&path), tok, clients, duration).await;
        println!("api {name}: {clients} clients x {}s on loopback: {rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {errors} errors", duration.as_secs());
    }
    drop(m);
    let _ = std::fs::remove_dir_all(dir);
}

/// SIGKILL of the master → first write acknowledged through the HAProxy write port (the
/// manager drives the proxy), at least 10 rounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with scripts/bench-failover"]
async fn bench_failover_through_haproxy() {
    let sb = Sandbox::start(3, true);
    create_table(&sb, 1);
    let ports = common::haproxy::ProxyPorts::free(slot());
    let mut keys = ports.keys();
    keys.push(("failover-mode", "automatic".to_string()));
    keys.push(("failover-limit", "0".to_string()));
    // BENCH_PING_COUNTER: failover-falsepositive-ping-counter (default 5, the Go default).
    let counter = std::env::var("BENCH_PING_COUNTER").ok().and_then(|v| v.parse::<u32>().ok()).unwrap_or(5);
    keys.push(("failover-falsepositive-ping-counter", counter.to_string()));
    let (m, dir) = sandbox_manager(&sb, "bench-haproxy", CLUSTER, 1, &[], &keys).await;
    let _proxy = common::haproxy::HaproxyGuard { ports, dir: dir.clone() };
    let token = m.token().await;
    assert!(wait_until(Duration::from_secs(15), || all_replicating(&m, &token, 3)).await);
    let id_of = |servers: &serde_json::Value, addr: &str| server_by_url(servers, addr)["id"].as_str().unwrap_or("").to_string();
    let mut firsts = Vec::new();
    println!("failover through HAProxy bench: 3 servers, semi-sync, monitoring-ticker 0.5 s, connect timeout 1 s, ping counter {counter}, one writer on the HAProxy write port");
    for round in 0..rounds().max(10) {
        let old = master(&m, &token).await.unwrap();
        let old_i = (1..=3).find(|i| sb.addr(*i) == old).unwrap();
        let servers = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await;
        let old_id = id_of(&servers, &old);
        assert!(wait_until(Duration::from_secs(20), || async { ports.is_ready("service_write", &old_id) }).await, "master {old} not in the write backend");
        let load = WriteLoad::start(vec![ports.write], (round as u64 + 1) * 10_000_000);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        // From the moment the kill command returns (the process is gone): every write
        // acknowledged after it went to the new master.
        sb.run(&["kill", &old_i.to_string()]);
        let killed_at = Instant::now();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && !master(&m, &token).await.is_some_and(|u| u != old) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let report = load.stop().await;
        let first = report.ack_times.iter().find(|(t, _)| *t > killed_at).map_or(f64::NAN, |(t, _)| t.duration_since(killed_at).as_secs_f64());
        println!("round {round}: killed {old}; first acknowledged write through HAProxy {first:.2} s after SIGKILL");
        firsts.push(first);
        sb.run(&["start-one", &old_i.to_string()]);
        assert!(wait_until(Duration::from_secs(60), || all_replicating(&m, &token, 3)).await, "old master not rejoined");
    }
    println!(
        "failover through HAProxy summary over {} rounds: SIGKILL -> first acknowledged write through the write port p50 {:.2} s p95 {:.2} s",
        firsts.len(),
        percentile(&firsts, 50.0),
        percentile(&firsts, 95.0)
    );
    drop(_proxy);
    drop(m);
    let _ = std::fs::remove_dir_all(dir);
}
