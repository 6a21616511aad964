//! `/metrics` and `/api/prometheus` of a real manager monitoring a real sandbox: the output
//! passes `promtool check metrics`, carries the cluster's state, and a real Prometheus server
//! scraping the manager returns the master's state gauge through its HTTP API.

mod common;

use std::time::Duration;

use common::receivers::{promtool_check, PrometheusServer};
use common::{free_ports, http, sandbox_manager, slot, temp_dir, wait_until, Sandbox};

const CLUSTER: &str = "metrics";

async fn metrics_text(m: &common::Manager) -> String {
    let r = http().get(m.url("/metrics")).send().await.expect("GET /metrics");
    assert_eq!(r.status(), 200, "/metrics needs no token");
    let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "content type {ct}");
    r.text().await.expect("metrics body")
}

fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_a_real_prometheus_reads_them_back() {
    let sb = Sandbox::start(3, true);
    let (m, _dir) = sandbox_manager(&sb, "metrics", CLUSTER, 1, &[], &[]).await;
    let token = m.token().await;
    let master = sb.addr(1);
    let master_path = format!("/api/clusters/{CLUSTER}/topology/master");
    let found = wait_until(Duration::from_secs(20), || async {
        let v = m.get_json(&master_path, &token).await;
        v["url"] == master.as_str() && v["state"] == "Master"
    })
    .await;
    assert!(found, "the master was not discovered: {}", m.log_text());
    // The replicas replicate (both threads) before the output is checked.
    let replicating = wait_until(Duration::from_secs(20), || async {
        let t = metrics_text(&m).await;
        (2..=3).all(|i| sample(&t, &format!("replication_manager_server_io_thread_running{{cluster=\"{CLUSTER}\",server=\"{}\"}}", sb.addr(i))) == Some(1.0))
    })
    .await;
    assert!(replicating, "replicas not seen replicating: {}", metrics_text(&m).await);

    let text = metrics_text(&m).await;
    let (ok, out) = promtool_check(&text);
    assert!(ok && out.trim().is_empty(), "promtool check metrics failed:\n{out}\n---\n{text}");
    let state = |server: &str, state: &str| sample(&text, &format!("replication_manager_server_state{{cluster=\"{CLUSTER}\",server=\"{server}\",state=\"{state}\"}}"));
    assert_eq!(state(&master, "Master"), Some(1.0), "{text}");
    assert_eq!(state(&master, "Slave"), Some(0.0), "{text}");
    assert_eq!(state(&sb.addr(2), "Slave"), Some(1.0), "{text}");
    assert_eq!(sample(&text, "replication_manager_active"), Some(1.0), "a single manager is active");
    assert!(sample(&text, "replication_manager_raft_term").is_some_and(|t| t >= 1.0), "{text}");
    assert_eq!(sample(&text, "replication_manager_raft_leader_id"), Some(1.0));
    assert_eq!(sample(&text, &format!("replication_manager_server_read_only{{cluster=\"{CLUSTER}\",server=\"{master}\"}}")), Some(0.0));
    assert_eq!(sample(&text, &format!("replication_manager_server_read_only{{cluster=\"{CLUSTER}\",server=\"{}\"}}", sb.addr(2))), Some(1.0));
    assert!(text.contains(&format!("replication_manager_server_gtid_sequence{{cluster=\"{CLUSTER}\",server=\"{master}\",domain=\"0\"}}")), "{text}");
    let probes = sample(&text, &format!("replication_manager_server_probe_duration_seconds_count{{cluster=\"{CLUSTER}\",server=\"{master}\"}}"));
    assert!(probes.is_some_and(|n| n >= 1.0), "probe latency histogram: {probes:?}\n{text}");
    for line in ["# HELP replication_manager_server_state ", "# TYPE replication_manager_server_state gauge", "# TYPE replication_manager_api_requests_total counter"] {
        assert!(text.contains(line), "missing {line}");
    }
    // API metrics name the route template, not the raw path.
    let route = format!("replication_manager_api_requests_total{{route=\"/api/clusters/{{cluster}}/topology/master\",method=\"GET\",code=\"200\"}}");
    assert!(sample(&text, &route).is_some_and(|n| n >= 1.0), "{route} missing:\n{text}");
    assert!(!text.contains("/api/clusters/metrics/topology/master"), "a raw path is a label value");

    // The Go project's route keeps its names.
    let (status, legacy) = m.get("/api/prometheus", None).await;
    assert_eq!(status, 200);
    let inst = sb.addr(2).replace([':', '.'], "-");
    for name in ["mysql_global_status_uptime", "mysql_global_variables_max_connections", "mysql_slave_status_slave_io_running", "mysql_slave_status_seconds_behind_master"] {
        assert!(legacy.contains(&format!("{name}{{instance=\"{inst}\"}} ")), "{name} for {inst} missing:\n{}", &legacy[..legacy.len().min(2000)]);
    }
    assert_eq!(sample(&legacy, &format!("mysql_slave_status_slave_io_running{{instance=\"{inst}\"}}")), Some(1.0));

    // A real Prometheus scrapes the manager; the master's state gauge comes back as 1.
    let pslot = slot();
    let pdir = temp_dir("prom", pslot);
    let pport = free_ports(pslot + 700, 1);
    let prom = PrometheusServer::start(&pdir, pport, &format!("127.0.0.1:{}", m.http_port)).await;
    let query = format!("replication_manager_server_state{{cluster=\"{CLUSTER}\",server=\"{master}\",state=\"Master\"}}");
    let last = std::sync::Mutex::new(Vec::new());
    let got = wait_until(Duration::from_secs(60), || async {
        let r = prom.query(&query).await;
        let ok = r.len() == 1 && r[0]["value"][1] == "1";
        *last.lock().unwrap() = r;
        ok
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(got, "Prometheus did not return {query} = 1: {last:?}\n{}", prom.proc.log_text());
    assert_eq!(last[0]["metric"]["job"], "replication-manager");
    let up = prom.query("up{job=\"replication-manager\"}").await;
    assert_eq!(up.first().map(|v| v["value"][1].clone()), Some(serde_json::json!("1")), "{up:?}");
    eprintln!("Prometheus: {query} = {}", last[0]["value"][1]);
    drop(prom);
    let _ = std::fs::remove_dir_all(pdir);
}

/// Every node of a three-manager group answers `/metrics` for itself: one reports active, all
/// name the same leader and term, the followers report their leader contact age, and each
/// sees the sandbox's master in its own server gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_manager_of_a_group_serves_its_own_metrics() {
    let lab = common::group::GroupLab::start(2, &["manager", "manager", "manager"], None, &[]).await;
    let master = lab.sb.addr(1);
    let mut texts = Vec::new();
    let agreed = wait_until(Duration::from_secs(30), || async {
        let mut all = Vec::new();
        for n in &lab.nodes {
            let Ok(r) = http().get(n.url("/metrics")).send().await else { return false };
            all.push((n.id, r.text().await.unwrap_or_default()));
        }
        let active: Vec<u64> = all.iter().filter(|(_, t)| sample(t, "replication_manager_active") == Some(1.0)).map(|(id, _)| *id).collect();
        let leaders: Vec<Option<f64>> = all.iter().map(|(_, t)| sample(t, "replication_manager_raft_leader_id")).collect();
        let sees_master = all.iter().all(|(_, t)| {
            sample(t, &format!("replication_manager_server_state{{cluster=\"{}\",server=\"{master}\",state=\"Master\"}}", lab.cluster)) == Some(1.0)
        });
        active.len() == 1 && leaders.iter().all(|l| *l == Some(active[0] as f64)) && sees_master
    })
    .await;
    for n in &lab.nodes {
        texts.push((n.id, http().get(n.url("/metrics")).send().await.unwrap().text().await.unwrap()));
    }
    assert!(agreed, "the nodes do not agree on one active leader seeing the master: {texts:?}");
    let terms: Vec<Option<f64>> = texts.iter().map(|(_, t)| sample(t, "replication_manager_raft_term")).collect();
    assert!(terms.iter().all(|t| t.is_some() && *t == terms[0]), "terms differ: {terms:?}");
    for (id, t) in &texts {
        let (ok, out) = promtool_check(t);
        assert!(ok && out.trim().is_empty(), "node {id}: promtool: {out}");
        if sample(t, "replication_manager_active") == Some(0.0) {
            let age = sample(t, "replication_manager_leader_contact_age_seconds");
            // Below the leader-contact timeout (2 x raft-election-max-ms): the follower hears the leader.
            assert!(age.is_some_and(|a| (0.0..6.0).contains(&a)), "node {id} follower leader contact age {age:?}");
        }
    }
    lab.finish();
}
