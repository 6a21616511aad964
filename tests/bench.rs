//! Benchmarks (run by scripts/bench-failover, ignored by `cargo test`): they print figures and
//! assert nothing about speed. Rounds: BENCH_ROUNDS (default 10).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::load::{create_table, WriteLoad};
use common::*;

const CLUSTER: &str = "bench";

fn rounds() -> usize {
    std::env::var("BENCH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10)
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

/// Removes a bench's temp dir, or keeps it (manager log, data) and says where with BENCH_KEEP=1.
fn clean_up(dir: &std::path::Path) {
    if std::env::var("BENCH_KEEP").is_ok_and(|v| v == "1") {
        println!("bench: kept {}", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(dir);
    }
}

async fn start(sb: &Sandbox) -> (Manager, String, std::path::PathBuf) {
    start_with(sb, &[]).await
}

/// [`start`] with more cluster keys (before BENCH_KEYS, which win).
async fn start_with(sb: &Sandbox, extra: &[(&'static str, &str)]) -> (Manager, String, std::path::PathBuf) {
    let slot = slot();
    let dir = temp_dir("bench", slot);
    let port = free_ports(slot + 500, 1);
    let mut keys = cluster_keys(sb);
    keys.push(("failover-mode", "automatic".to_string()));
    keys.push(("failover-limit", "0".to_string()));
    keys.push(("switchover-wait-kill", "200".to_string()));
    keys.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    // BENCH_KEYS="key=value,key=value": cluster keys of a tuned run (printed with the figures).
    for kv in std::env::var("BENCH_KEYS").unwrap_or_default().split(',').filter(|kv| !kv.trim().is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or_else(|| panic!("BENCH_KEYS: {kv:?} is not key=value"));
        let k: &'static str = Box::leak(k.trim().to_string().into_boxed_str());
        keys.retain(|(kk, _)| *kk != k);
        keys.push((k, v.trim().to_string()));
        println!("failover bench: {k} = {}", v.trim());
    }
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

/// The newest crash record's `Details`.
async fn last_crash(m: &Manager, token: &str) -> serde_json::Value {
    let c = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/crashes"), token).await;
    c.as_array().and_then(|a| a.last()).map(|c| c["Details"].clone()).unwrap_or_default()
}

/// `detected 120 ms, journal-started 5 ms, ...` from a crash record's `Details`, and the
/// per-step milliseconds (repoints summed) added to `sums`.
fn breakdown(details: &serde_json::Value, sums: &mut Vec<(String, Vec<f64>)>) -> String {
    let mut steps: Vec<(String, f64)> = vec![("detected".to_string(), details["detected_after_ms"].as_f64().unwrap_or(f64::NAN))];
    for t in details["step_ms"].as_array().into_iter().flatten() {
        let (name, ms) = (t["step"].as_str().unwrap_or("?").to_string(), t["ms"].as_f64().unwrap_or(f64::NAN));
        match steps.last_mut() {
            Some((n, v)) if *n == name => *v += ms,
            _ => steps.push((name, ms)),
        }
    }
    for (name, ms) in &steps {
        match sums.iter_mut().find(|(n, _)| n == name) {
            Some((_, v)) => v.push(*ms),
            None => sums.push((name.clone(), vec![*ms])),
        }
    }
    steps.iter().map(|(n, ms)| format!("{n} {ms:.0} ms")).collect::<Vec<_>>().join(", ")
}

/// How the master is made to fail in a failover bench.
#[derive(Clone, Copy, PartialEq)]
enum Fault {
    /// SIGKILL: its connections are refused at once.
    Crash,
    /// SIGSTOP: its probes time out; thawed after the failover.
    Freeze,
}

async fn failover_rounds(fault: Fault) {
    let sb = Sandbox::start(3, true);
    create_table(&sb, 1);
    // A frozen master often holds, in its binlog, a commit it never sent nor acknowledged: it
    // comes back ahead and is quarantined (ERR00070). The next round needs it back: reloaded
    // from a dump of the new master. (Not a failover step: it does not change the figures.)
    let extra: &[(&'static str, &str)] = if fault == Fault::Freeze { &[("autorejoin-mysqldump", "true")] } else { &[] };
    let (m, token, dir) = start_with(&sb, extra).await;
    assert!(wait_until(Duration::from_secs(15), || all_replicating(&m, &token, 3)).await);
    let ports: Vec<u16> = (1..=3).map(|i| sb.port(i)).collect();
    let (what, signal) = match fault {
        Fault::Crash => ("crash", "kill"),
        Fault::Freeze => ("freeze", "freeze"),
    };
    if fault == Fault::Freeze {
        // A frozen master's waiting commits must not fall back to asynchronous when it thaws
        // (they would be acknowledged without a replica, and the old master quarantined as
        // ahead): the sandbox's 1 s semi-sync timeout made safe, as the fencing tests do.
        for i in 1..=3 {
            sb.sql(i, "SET GLOBAL rpl_semi_sync_master_timeout = 60000");
        }
    }
    let (mut writable, mut sums, mut after_decision) = (Vec::new(), Vec::new(), Vec::new());
    println!("failover bench ({what}, SIG{}): 3 servers, semi-sync, monitoring-ticker 0.5 s, connect timeout 1 s, ping counter 5, refused counter 1 (defaults)", if fault == Fault::Crash { "KILL" } else { "STOP" });
    for round in 0..rounds() {
        let old = master(&m, &token).await.unwrap();
        let old_i = (1..=3).find(|i| sb.addr(*i) == old).unwrap();
        let load = WriteLoad::start(ports.clone(), (round as u64 + 1) * 10_000_000);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let failed_at = Instant::now();
        sb.run(&[signal, &old_i.to_string()]);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
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
            .find(|(t, p)| *t > failed_at && *p != sb.port(old_i))
            .map(|(t, _)| t.duration_since(failed_at));
        let details = last_crash(&m, &token).await;
        let w = first_new.map_or(f64::NAN, |d| d.as_secs_f64());
        println!("round {round}: {what} of {old}; first acknowledged write on the new master {w:.2} s after the signal; {}", breakdown(&details, &mut sums));
        println!("round {round}: detection: {}", details["detection"].as_str().unwrap_or("?"));
        // From the decision to fail over (the detection window closed) to the write: the
        // failover's own steps plus the writer's reconnection.
        let steps_ms: f64 = details["step_ms"].as_array().into_iter().flatten().filter_map(|t| t["ms"].as_f64()).sum();
        if fault == Fault::Freeze && w.is_finite() {
            println!("round {round}: decided {:.2} s after the signal; writable {:.2} s after the decision ({steps_ms:.0} ms of failover steps)", w - steps_ms / 1000.0, steps_ms / 1000.0);
            after_decision.push(steps_ms / 1000.0);
        }
        writable.push(w);
        match fault {
            Fault::Crash => sb.run(&["start-one", &old_i.to_string()]),
            Fault::Freeze => sb.run(&["thaw", &old_i.to_string()]),
        };
        if !wait_until(Duration::from_secs(60), || all_replicating(&m, &token, 3)).await {
            // Reported, not asserted: the figures of the rounds run so far still print.
            let alerts = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/alerts"), &token).await;
            println!("round {round}: old master {old} not back as a replica 60 s after the {what} ended; rounds stop here; alerts: {alerts}");
            break;
        }
    }
    println!(
        "failover summary ({what}) over {} rounds: time to writable p50 {:.2} s p95 {:.2} s",
        writable.len(),
        percentile(&writable, 50.0),
        percentile(&writable, 95.0)
    );
    if !after_decision.is_empty() {
        println!(
            "failover summary ({what}): failover steps after the decision p50 {:.2} s p95 {:.2} s",
            percentile(&after_decision, 50.0),
            percentile(&after_decision, 95.0)
        );
    }
    let steps: Vec<String> = sums.iter().map(|(n, v)| format!("{n} p50 {:.0} ms p95 {:.0} ms", percentile(v, 50.0), percentile(v, 95.0))).collect();
    println!("failover steps ({what}): {}", steps.join("; "));
    drop(m);
    clean_up(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with scripts/bench-failover"]
async fn bench_failover() {
    failover_rounds(Fault::Crash).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with scripts/bench-failover"]
async fn bench_failover_freeze() {
    failover_rounds(Fault::Freeze).await;
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
    clean_up(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with scripts/bench-failover"]
async fn bench_group() {
    use common::group::GroupLab;
    let mut leader_times = Vec::new();
    let mut both_times = Vec::new();
    println!("group bench: 3 managers (heartbeat 100 ms, election 500-1000 ms (defaults)), 3 servers, ticker 0.5 s, ping counter 3");
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
    clean_up(&dir);
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
    clean_up(&dir);
}

/// A child process killed (by PID) when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// utime + stime of process `pid`, seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(f64::NAN) + f.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
    let hz: f64 = std::process::Command::new("getconf").arg("CLK_TCK").output().ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0);
    ticks / hz
}

/// VmRSS of process `pid`, MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Bytes under `dir`, recursively.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut total = 0;
    for e in entries.flatten() {
        match e.metadata() {
            Ok(m) if m.is_dir() => total += dir_bytes(&e.path()),
            Ok(m) => total += m.len(),
            Err(_) => {}
        }
    }
    total
}

/// The cumulative buckets (`le` -> count) of histogram `name` summed over every series.
fn histogram_buckets(metrics: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut sums: Vec<(f64, f64)> = Vec::new();
    for line in metrics.lines().filter(|l| l.starts_with(&prefix)) {
        let Some(le) = line.split("le=\"").nth(1).and_then(|r| r.split('"').next()) else { continue };
        let le = if le == "+Inf" { f64::INFINITY } else { le.parse().unwrap_or(f64::NAN) };
        let count: f64 = line.rsplit(' ').next().and_then(|c| c.parse().ok()).unwrap_or(0.0);
        match sums.iter_mut().find(|(l, _)| *l == le) {
            Some((_, c)) => *c += count,
            None => sums.push((le, count)),
        }
    }
    sums.sort_by(|a, b| a.0.total_cmp(&b.0));
    sums
}

/// The upper bound of the bucket holding quantile `q` of the observations between two
/// snapshots of the same cumulative buckets.
fn bucket_quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> (f64, f64) {
    let delta: Vec<(f64, f64)> = after.iter().map(|(le, c)| (*le, c - before.iter().find(|(l, _)| l == le).map_or(0.0, |(_, b)| *b))).collect();
    let total = delta.last().map_or(0.0, |(_, c)| *c);
    let bound = delta.iter().find(|(_, c)| *c >= q * total).map_or(f64::NAN, |(le, _)| *le);
    (bound, total)
}

/// One manager node monitoring a simulated farm (tools `rm-farm`, see farm/README.md) of
/// BENCH_SCALE_CLUSTERS (400) x BENCH_SCALE_SERVERS (5) servers at a 1 s ticker, for
/// BENCH_SCALE_SECS (60): CPU, RSS, tick lateness p99, API latency under that load, and the
/// raft data size. Run by scripts/bench-scale, which builds the farm and passes RM_FARM_BIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with scripts/bench-scale"]
async fn bench_scale() {
    let env_num = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let farm_bin = std::env::var("RM_FARM_BIN").expect("RM_FARM_BIN must name the rm-farm binary (scripts/bench-scale builds it)");
    let (clusters, per, secs) = (env_num("BENCH_SCALE_CLUSTERS", 400), env_num("BENCH_SCALE_SERVERS", 5), env_num("BENCH_SCALE_SECS", 60));
    let servers = clusters * per;
    let slot = slot();
    let dir = temp_dir("scale", slot);
    let base = free_ports(slot, servers as u16 + 2);
    let (control, http) = (base + servers as u16, base + servers as u16 + 1);
    let ready = dir.join("farm.json");
    let farm_log = std::fs::File::create(dir.join("farm.log")).unwrap();
    let started = Instant::now();
    let farm = Child(
        std::process::Command::new(&farm_bin)
            .args(["--clusters", &clusters.to_string(), "--servers-per-cluster", &per.to_string(), "--base-port", &base.to_string()])
            .args(["--user", "repman", "--password", "repman", "--control-port", &control.to_string()])
            .arg("--ready-file")
            .arg(&ready)
            .stdout(std::process::Stdio::null())
            .stderr(farm_log)
            .spawn()
            .expect("start rm-farm"),
    );
    assert!(wait_until(Duration::from_secs(60), || { let r = ready.exists(); async move { r } }).await, "the farm did not get ready");
    println!("scale: farm of {clusters} clusters x {per} servers ready in {:.1} s (pid {}, RSS {:.0} MiB)", started.elapsed().as_secs_f64(), farm.0.id(), rss_mib(farm.0.id()));

    let mut cfg = String::from("[Default]\n");
    for (k, v) in default_keys(&dir, http) {
        cfg.push_str(&format!("{k} = \"{v}\"\n"));
    }
    for c in 0..clusters {
        let first = base as usize + c * per;
        let hosts: Vec<String> = (first..first + per).map(|p| format!("127.0.0.1:{p}")).collect();
        cfg.push_str(&format!(
            "\n[farm{c}]\ndb-servers-hosts = \"{}\"\ndb-servers-credential = \"repman:repman\"\nreplication-credential = \"repl:repl\"\nmonitoring-ticker = 1\ndb-servers-connect-timeout = 2\n",
            hosts.join(",")
        ));
    }
    std::fs::write(dir.join("config.toml"), cfg).unwrap();
    let m = Manager::start(&dir, http, &[]).await;
    let pid = m.pid().expect("manager pid");
    let token = m.token().await;
    let metrics = |m: &Manager| {
        let url = m.url("/metrics");
        async move { reqwest::get(url).await.ok()?.text().await.ok() }
    };
    let discovered = wait_until(Duration::from_secs(120), || async {
        let Some(t) = metrics(&m).await else { return false };
        t.lines().filter(|l| l.starts_with("replication_manager_server_state{") && l.contains("state=\"Master\"") && l.ends_with(" 1")).count() == clusters
    })
    .await;
    assert!(discovered, "not every cluster's master was discovered within 120 s");
    println!("scale: every master discovered {:.1} s after the farm was ready; manager RSS {:.0} MiB", started.elapsed().as_secs_f64(), rss_mib(pid));
    tokio::time::sleep(Duration::from_secs(5)).await;

    let lateness = "replication_manager_monitor_tick_lateness_seconds";
    let before = histogram_buckets(&metrics(&m).await.unwrap_or_default(), lateness);
    let (cpu0, t0, raft0) = (cpu_seconds(pid), Instant::now(), dir_bytes(&dir.join("data")));
    tokio::time::sleep(Duration::from_secs(secs as u64)).await;
    let (cpu1, wall) = (cpu_seconds(pid), t0.elapsed().as_secs_f64());
    let after = histogram_buckets(&metrics(&m).await.unwrap_or_default(), lateness);
    let (p99, ticks) = bucket_quantile(&before, &after, 0.99);
    let (p50, _) = bucket_quantile(&before, &after, 0.50);
    println!(
        "scale: {servers} servers at a 1 s ticker for {wall:.0} s: CPU {:.2} cores, RSS {:.0} MiB, {ticks:.0} ticks, tick lateness p50 <= {:.0} ms p99 <= {:.0} ms (bucket bounds)",
        (cpu1 - cpu0) / wall,
        rss_mib(pid),
        p50 * 1000.0,
        p99 * 1000.0
    );
    let clients = 16;
    for (name, path, tok) in [
        ("health is-master", format!("/api/clusters/farm0/servers/127.0.0.1:{base}/is-master"), None),
        ("topology/servers", "/api/clusters/farm0/topology/servers".to_string(), Some(token.clone())),
    ] {
        let (rps, p50, p99, errors) = load_route(m.url(&path), tok, clients, Duration::from_secs(5)).await;
        println!("scale: api {name} while monitoring {servers} servers: {clients} clients x 5 s: {rps:.0} req/s, p50 {p50:.2} ms, p99 {p99:.2} ms, {errors} errors");
    }
    println!("scale: raft data {:.1} MiB before the window, {:.1} MiB after; manager RSS {:.0} MiB", raft0 as f64 / 1048576.0, dir_bytes(&dir.join("data")) as f64 / 1048576.0, rss_mib(pid));
    drop(m);
    drop(farm);
    clean_up(&dir);
}
