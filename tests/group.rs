//! Chaos scenarios for the manager group: three real manager processes (or two and an
//! arbitrator) over a real MariaDB sandbox. Each prints what it did and measured, then PASS
//! (a failing assertion is the FAIL). Run one with `scripts/chaos <name>`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::group::{ActiveSampler, GroupLab};
use common::load::{ids_on, WritableSampler, WriteLoad};
use common::wait_until;
use serde_json::Value;

const MANAGERS: &[&str] = &["manager", "manager", "manager"];

fn report(name: &str, did: &str, measured: &str) {
    println!("SCENARIO {name}: {did}; {measured}; PASS");
}

async fn leader(lab: &GroupLab) -> u64 {
    let mut found = None;
    for _ in 0..200 {
        let a = lab.active_nodes().await;
        if a.len() == 1 {
            found = Some(a[0]);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    found.unwrap_or_else(|| panic!("no single active node: {}", lab.logs()))
}

/// A lab whose node 1 (the one run under its own uid, so nftables can cut it) leads: it
/// initializes the group and nearly always wins the first election; a lab where it did not is
/// started again, at most 3 times, then the test fails loudly.
async fn led_by_node_1<F, Fut>(start: F) -> GroupLab
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = GroupLab>,
{
    for attempt in 1..=3 {
        let lab = start().await;
        if leader(&lab).await == 1 {
            return lab;
        }
        assert!(attempt < 3, "node 1 never became the leader in {attempt} tries: {}", lab.logs());
        lab.finish();
    }
    unreachable!("the loop returns or fails on its last try")
}

fn ports(lab: &GroupLab) -> Vec<u16> {
    lab.nodes.iter().map(|n| n.http_port).collect()
}

fn db_ports(lab: &GroupLab) -> Vec<u16> {
    (1..=lab.sb.count).map(|i| lab.sb.port(i)).collect()
}

async fn crashes_on(lab: &GroupLab, id: u64) -> Vec<Value> {
    let n = lab.nodes.iter().find(|n| n.id == id).unwrap();
    n.get_json(&format!("/api/clusters/{}/topology/crashes", lab.cluster), &lab.token)
        .await
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

/// Waits until every running node shows `n` crash records (replicated state converges).
async fn crashes_converge(lab: &GroupLab, n: usize, limit: Duration) {
    let ok = wait_until(limit, || async {
        for node in lab.nodes.iter().filter(|x| x.is_running()) {
            if crashes_on(lab, node.id).await.len() != n {
                return false;
            }
        }
        true
    })
    .await;
    assert!(ok, "nodes do not all show {n} failover record(s): {}", lab.logs());
}

/// Waits until every running node reports `url` as the writable master.
async fn all_see_master(lab: &GroupLab, url: &str, limit: Duration) -> bool {
    wait_until(limit, || async {
        for n in lab.nodes.iter().filter(|n| n.is_running()) {
            if lab.master_seen_by(n.id).await.as_deref() != Some(url) {
                return false;
            }
        }
        true
    })
    .await
}

async fn new_master_everywhere(lab: &GroupLab, old: &str, limit: Duration) -> String {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let running: Vec<u64> = lab.nodes.iter().filter(|n| n.is_running()).map(|n| n.id).collect();
        let mut seen = Vec::new();
        for id in &running {
            seen.push(lab.master_seen_by(*id).await);
        }
        if let Some(Some(m)) = seen.first() {
            if m != old && seen.iter().all(|s| s.as_deref() == Some(m.as_str())) {
                return m.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no new master agreed by every node after {old}: {}", lab.logs());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_kill_leader_manager() {
    let mut lab = GroupLab::start(3, MANAGERS, None, &[]).await;
    let sampler = ActiveSampler::start(ports(&lab), lab.token.clone());
    // The raft port refuses callers without the group secret.
    let r = common::http().get(format!("http://127.0.0.1:{}/raft/group-info", lab.nodes[0].raft_port)).send().await.unwrap();
    assert_eq!(r.status(), 401, "raft RPC without the secret");
    let old = leader(&lab).await;
    let t0 = Instant::now();
    lab.node(old).kill();
    let ok = wait_until(Duration::from_secs(20), || async {
        let a = lab.active_nodes().await;
        a.len() == 1 && a[0] != old
    })
    .await;
    let took = t0.elapsed();
    assert!(ok, "no new active leader after killing {old}: {}", lab.logs());
    let new = leader(&lab).await;
    // A follower forwards actions to the new leader.
    let follower = lab.nodes.iter().find(|n| n.id != new && n.is_running()).unwrap();
    let r = common::http()
        .get(follower.url(&format!("/api/clusters/{}/actions/reset-failover-control", lab.cluster)))
        .bearer_auth(&lab.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers().get("x-replication-manager-served-by").and_then(|v| v.to_str().ok()), Some(new.to_string().as_str()));
    assert_eq!(r.headers().get("x-replication-manager-forwarded-by").and_then(|v| v.to_str().ok()), Some(follower.id.to_string().as_str()));
    lab.start_node(old);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (samples, bad) = sampler.stop().await;
    assert!(bad.is_empty(), "two active nodes at once in {} of {samples} samples: {bad:?}", bad.len());
    report(
        "kill-leader-manager",
        &format!("SIGKILL leader node {old}, restarted it"),
        &format!("new active leader {new} after {:.2} s; {samples} samples, never two active", took.as_secs_f64()),
    );
    lab.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_kill_master_database() {
    let lab = GroupLab::start(3, MANAGERS, None, &[]).await;
    let sampler = WritableSampler::start(db_ports(&lab));
    let load = WriteLoad::start(db_ports(&lab), 1);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let old = lab.sb.addr(1);
    let t0 = Instant::now();
    lab.sb.run(&["kill", "1"]);
    let new = new_master_everywhere(&lab, &old, Duration::from_secs(30)).await;
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rep = load.stop().await;
    let (samples, bad) = sampler.stop().await;
    assert!(bad.is_empty(), "two writable servers: {bad:?}");
    let new_i = (1..=3).find(|i| lab.sb.addr(*i) == new).unwrap();
    let present = ids_on(&lab.sb, new_i);
    let lost: Vec<&u64> = rep.acked.iter().filter(|id| !present.contains(id)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    crashes_converge(&lab, 1, Duration::from_secs(10)).await;
    report(
        "kill-master-database",
        &format!("SIGKILL master {old} under write load"),
        &format!("{new} writable and agreed by all 3 nodes after {:.2} s; {} acked writes, 0 lost; {samples} samples, one writable", took.as_secs_f64(), rep.acked.len()),
    );
    lab.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_kill_leader_manager_and_master_database() {
    let mut lab = GroupLab::start(3, MANAGERS, None, &[]).await;
    let load = WriteLoad::start(db_ports(&lab), 1);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let old = lab.sb.addr(1);
    let l = leader(&lab).await;
    let t0 = Instant::now();
    lab.node(l).kill();
    lab.sb.run(&["kill", "1"]);
    let new = new_master_everywhere(&lab, &old, Duration::from_secs(40)).await;
    let took = t0.elapsed();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rep = load.stop().await;
    let new_i = (1..=3).find(|i| lab.sb.addr(*i) == new).unwrap();
    let present = ids_on(&lab.sb, new_i);
    assert!(rep.acked.iter().all(|id| present.contains(id)), "acknowledged writes lost");
    let first_new_write = rep.ack_times.iter().find(|(t, p)| *t > t0 && *p != lab.sb.port(1)).map(|(t, _)| t.duration_since(t0));
    report(
        "kill-leader-and-master",
        &format!("SIGKILL leader manager {l} and master {old} together"),
        &format!(
            "{new} agreed by the surviving nodes after {:.2} s, first acknowledged write after {:.2} s; {} acked, 0 lost",
            took.as_secs_f64(),
            first_new_write.map_or(f64::NAN, |d| d.as_secs_f64()),
            rep.acked.len()
        ),
    );
    lab.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_isolate_one_manager() {
    let lab = GroupLab::start(3, MANAGERS, Some(3), &[]).await;
    let was_leader = lab.active_nodes().await == vec![3];
    lab.isolate(3);
    let iso = lab.nodes.iter().find(|n| n.id == 3).unwrap();
    // Cut off, node 3 has lost the majority. It is a split brain only if it was the leader:
    // then it still holds the leader role without a quorum; a cut-off follower is not one.
    let ok = wait_until(Duration::from_secs(20), || async {
        match iso.get_json(&format!("/api/clusters/{}", lab.cluster), &lab.token).await {
            Some(c) => c["activePassiveStatus"] == "S" && c["isLostMajority"] == true && c["isSplitBrain"] == was_leader,
            None => false,
        }
    })
    .await;
    assert!(ok, "isolated node (leader before: {was_leader}) does not report S, lost majority and the right split brain: {}", lab.logs());
    let m = iso.get_json("/api/monitor", &lab.token).await.unwrap();
    assert_eq!((m["status"].clone(), m["spitBrain"].clone()), (Value::from("S"), Value::from(was_leader)));
    // The majority side still works: the master dies and exactly one failover runs.
    let old = lab.sb.addr(1);
    lab.sb.run(&["kill", "1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut new = None;
    while Instant::now() < deadline && new.is_none() {
        for id in [1u64, 2] {
            if let Some(m) = lab.master_seen_by(id).await.filter(|m| *m != old) {
                new = Some(m);
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let new = new.unwrap_or_else(|| panic!("majority side did not fail over: {}", lab.logs()));
    // An action sent to the isolated node is refused (it cannot reach a leader), never run.
    let (st, body) = iso.get(&format!("/api/clusters/{}/actions/switchover", lab.cluster), &lab.token).await.unwrap();
    assert!(st == 503 || st == 409, "isolated node answered {st}: {body}");
    let iso_log = iso.log_text();
    assert!(!iso_log.contains("executing"), "the isolated node executed a database step:\n{iso_log}");
    lab.heal();
    assert!(all_see_master(&lab, &new, Duration::from_secs(30)).await, "nodes disagree after heal: {}", lab.logs());
    crashes_converge(&lab, 1, Duration::from_secs(15)).await;
    report("isolate-manager", "cut node 3 from raft peers and databases, killed the master, healed", &format!("node 3 reported S + split brain, never acted; majority failed over to {new}"));
    lab.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_freeze_master() {
    let lab = GroupLab::start(3, MANAGERS, None, &[("failover-falsepositive-ping-counter", "5")]).await;
    let old = lab.sb.addr(1);
    lab.sb.run(&["freeze", "1"]);
    tokio::time::sleep(Duration::from_millis(2000)).await;
    lab.sb.run(&["thaw", "1"]);
    tokio::time::sleep(Duration::from_secs(5)).await;
    for n in &lab.nodes {
        assert_eq!(lab.master_seen_by(n.id).await.as_deref(), Some(old.as_str()), "node {}", n.id);
        assert!(crashes_on(&lab, n.id).await.is_empty());
    }
    let t0 = Instant::now();
    lab.sb.run(&["freeze", "1"]);
    let new = new_master_everywhere(&lab, &old, Duration::from_secs(60)).await;
    let took = t0.elapsed();
    lab.sb.run(&["thaw", "1"]);
    report("freeze-master", "froze the master 2 s (no failover), then until failover", &format!("long freeze failed over to {new} after {:.2} s", took.as_secs_f64()));
    lab.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_restart_all_managers_keeps_state() {
    let mut lab = GroupLab::start(3, MANAGERS, None, &[]).await;
    let old = lab.sb.addr(1);
    lab.sb.run(&["kill", "1"]);
    let new = new_master_everywhere(&lab, &old, Duration::from_secs(30)).await;
    let before: Vec<Value> = crashes_on(&lab, 1).await;
    assert_eq!(before.len(), 1);
    let counter = |v: Value| v["failoverCounter"].clone();
    let c1 = counter(lab.nodes[0].get_json(&format!("/api/clusters/{}", lab.cluster), &lab.token).await.unwrap());
    for id in 1..=3 {
        lab.node(id).stop();
    }
    for id in 1..=3 {
        lab.start_node(id);
    }
    let l = leader(&lab).await;
    assert!(all_see_master(&lab, &new, Duration::from_secs(30)).await, "{}", lab.logs());
    for n in &lab.nodes {
        assert_eq!(crashes_on(&lab, n.id).await, before, "node {} lost the failover history", n.id);
        let c = counter(n.get_json(&format!("/api/clusters/{}", lab.cluster), &lab.token).await.unwrap());
        assert_eq!(c, c1, "node {} counter", n.id);
    }
    // A token issued before the restart is valid on every node (replicated key).
    for n in &lab.nodes {
        assert_eq!(n.get("/api/clusters", &lab.token).await.map(|r| r.0), Some(200), "node {}", n.id);
    }
    report("restart-all-managers", "one failover, then stopped and restarted all 3 managers", &format!("leader {l} re-elected; history, counter {c1} and tokens survived"));
    lab.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_two_simultaneous_switchovers() {
    let lab = GroupLab::start(3, MANAGERS, None, &[("switchover-wait-kill", "300")]).await;
    let path = format!("/api/clusters/{}/actions/switchover", lab.cluster);
    let (a, b) = (&lab.nodes[0], &lab.nodes[1]);
    let (ra, rb) = tokio::join!(a.get(&path, &lab.token), b.get(&path, &lab.token));
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    let oks = [ra.0, rb.0].iter().filter(|s| **s == 200).count();
    assert_eq!(oks, 1, "exactly one switchover must run: {ra:?} {rb:?}");
    let refused = if ra.0 == 200 { &rb } else { &ra };
    assert_eq!(refused.0, 409, "the other gets a clear refusal: {refused:?}");
    assert!(refused.1.contains("another action"), "{refused:?}");
    crashes_converge(&lab, 1, Duration::from_secs(10)).await;
    report("two-switchovers", "sent a switchover to node 1 and node 2 at once", &format!("one ran, the other answered {}: {}", refused.0, refused.1));
    lab.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_two_managers_and_an_arbitrator() {
    let mut lab = GroupLab::start(3, &["manager", "manager", "arbitrator"], None, &[]).await;
    // The arbitrator never stays leader.
    let ok = wait_until(Duration::from_secs(20), || async { lab.active_nodes().await.first().is_some_and(|l| *l != 3) }).await;
    assert!(ok, "arbitrator kept leadership: {}", lab.logs());
    let l = leader(&lab).await;
    lab.node(l).kill();
    let survivor = if l == 1 { 2 } else { 1 };
    let ok = wait_until(Duration::from_secs(30), || async { lab.active_nodes().await == vec![survivor] }).await;
    assert!(ok, "the surviving manager did not become active with the arbitrator's vote: {}", lab.logs());
    let arb = lab.nodes.iter().find(|n| n.id == 3).unwrap();
    assert!(!arb.log_text().contains("executing"), "the arbitrator touched a database");
    let g = lab.nodes.iter().find(|n| n.id == survivor).unwrap().group(&lab.token).await.unwrap();
    assert!(
        g["nodes"].as_array().unwrap().iter().any(|n| n["id"] == 3 && n["role"] == "arbitrator"),
        "the group reports the arbitrator's role: {g}"
    );
    // The arbitrator answers: the flag is down (it needs two missed checks in a row to rise).
    let arbitrator_seen = wait_until(Duration::from_secs(10), || async {
        let n = lab.nodes.iter().find(|n| n.id == survivor).unwrap();
        n.get_json(&format!("/api/clusters/{}", lab.cluster), &lab.token).await.is_some_and(|c| c["isFailedArbitrator"] == false)
    })
    .await;
    assert!(arbitrator_seen, "isFailedArbitrator raised while the arbitrator answers: {}", lab.logs());
    let old = lab.sb.addr(1);
    lab.sb.run(&["kill", "1"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut new = None;
    while Instant::now() < deadline && new.is_none() {
        new = lab.master_seen_by(survivor).await.filter(|m| *m != old);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(new.is_some(), "no failover with one manager and the arbitrator: {}", lab.logs());
    // The arbitrator goes away: the manager says so.
    lab.node(3).kill();
    let ok = wait_until(Duration::from_secs(15), || async {
        let n = lab.nodes.iter().find(|n| n.id == survivor).unwrap();
        n.get_json(&format!("/api/clusters/{}", lab.cluster), &lab.token).await.is_some_and(|c| c["isFailedArbitrator"] == true)
    })
    .await;
    assert!(ok, "isFailedArbitrator not raised after the arbitrator died");
    report("manager-manager-arbitrator", &format!("killed leader manager {l}, then the master, then the arbitrator"), &format!("manager {survivor} led with the arbitrator's vote, failed over to {}, then reported isFailedArbitrator", new.unwrap_or_default()));
    lab.finish();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_leader_dies_mid_failover_and_the_next_leader_finishes_it() {
    // Every manager pauses 8 s after journaling a promotion: the test kills the leader then.
    let mut lab = GroupLab::start_with_env(
        3,
        MANAGERS,
        None,
        &[("failover-limit", "1")],
        &[("REPLICATION_MANAGER_FAULT_PAUSE_AFTER_PROMOTE_MS", "8000")],
    )
    .await;
    let old = lab.sb.addr(1);
    let leader = leader(&lab).await;
    lab.sb.run(&["kill", "1"]);
    let journaled = wait_until(Duration::from_secs(30), || async {
        lab.nodes.iter().find(|n| n.id == leader).unwrap().log_text().contains("pausing after the promotion was journaled")
    })
    .await;
    assert!(journaled, "the leader never reached the promotion: {}", lab.logs());
    lab.node(leader).kill();
    // The next leader resumes: the other replica follows the promoted server and the failover
    // is recorded once, although failover-limit is 1 (the resume is not gated).
    let new = new_master_everywhere(&lab, &old, Duration::from_secs(40)).await;
    crashes_converge(&lab, 1, Duration::from_secs(30)).await;
    let other = (2..=3).map(|i| lab.sb.addr(i)).find(|a| *a != new).unwrap();
    let ok = wait_until(Duration::from_secs(30), || async {
        let n = lab.other(leader);
        let s = n.get_json(&format!("/api/clusters/{}/topology/servers", lab.cluster), &lab.token).await.unwrap_or_default();
        s.as_array().is_some_and(|a| a.iter().any(|x| x["url"] == other.as_str() && x["state"] == "Slave"))
    })
    .await;
    assert!(ok, "the other replica does not follow {new}: {}", lab.logs());
    let resumed = lab.nodes.iter().filter(|n| n.id != leader).any(|n| n.log_text().contains("Resuming failover"));
    assert!(resumed, "no node resumed the interrupted failover: {}", lab.logs());
    // A maintenance toggle sent to a surviving node (run by, or forwarded to, the new leader)
    // builds on the replicated decisions: the crash record, the counter and the new master
    // survive it, on every surviving node.
    let (st, body) = lab
        .other(leader)
        .get(&format!("/api/clusters/{}/servers/{other}/actions/maintenance", lab.cluster), &lab.token)
        .await
        .unwrap();
    assert_eq!(st, 200, "{body}");
    let survived = wait_until(Duration::from_secs(20), || async {
        let mut all = true;
        for n in lab.nodes.iter().filter(|n| n.id != leader) {
            let c = n.get_json(&format!("/api/clusters/{}", lab.cluster), &lab.token).await.unwrap_or_default();
            let s = n.get_json(&format!("/api/clusters/{}/topology/servers", lab.cluster), &lab.token).await.unwrap_or_default();
            let crashes = n.get_json(&format!("/api/clusters/{}/topology/crashes", lab.cluster), &lab.token).await.unwrap_or_default();
            let in_maintenance = s.as_array().is_some_and(|a| a.iter().any(|x| x["url"] == other.as_str() && x["isMaintenance"] == true));
            all &= c["failoverCounter"] == 1 && crashes.as_array().is_some_and(|a| a.len() == 1) && in_maintenance;
        }
        all && lab.master_seen_by(lab.other(leader).id).await.as_deref() == Some(new.as_str())
    })
    .await;
    assert!(survived, "the maintenance toggle lost the failover's replicated decisions: {}", lab.logs());
    report(
        "leader-dies-mid-failover",
        &format!("killed leader {leader} right after it journaled the promotion of {new}"),
        "the next leader resumed the journaled failover and finished it (counter 1, replica repointed)",
    );
    lab.finish();
}

/// Fencing 8: the leader loses its path to the master and to its peers' HTTP API ports, while
/// raft between the managers and replication keep working. The failure vote travels on the
/// raft channel, so the peers still answer (they see the master alive) and the leader never
/// decides alone: no failover (ERR00089), the master stays the master.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_peer_http_ports_cut_no_failover() {
    // Node 1 must lead (only it runs under its own uid for the nftables rules); it initializes
    // the group and nearly always wins the first election. Fail loudly otherwise.
    let lab = led_by_node_1(|| GroupLab::start(3, MANAGERS, Some(1), &[("failover-falsepositive-heartbeat", "false")])).await;
    let old = lab.sb.addr(1);
    let peer_http: Vec<u16> = lab.nodes.iter().filter(|n| n.id != 1).map(|n| n.http_port).collect();
    let mut cut = peer_http.clone();
    cut.push(lab.sb.port(1));
    lab.cut_ports(1, &cut);
    // The leader sees the master fail and asks its peers, who cannot answer.
    let refused = wait_until(Duration::from_secs(30), || async {
        lab.nodes[0].get_json(&format!("/api/clusters/{}/topology/alerts", lab.cluster), &lab.token).await.is_some_and(|a| a.to_string().contains("ERR00089"))
    })
    .await;
    assert!(refused, "the leader did not refuse for lack of a majority: {}", lab.logs());
    tokio::time::sleep(Duration::from_secs(5)).await;
    for n in &lab.nodes {
        let crashes = n.get_json(&format!("/api/clusters/{}/topology/crashes", lab.cluster), &lab.token).await.unwrap_or_default();
        assert!(crashes.as_array().is_some_and(|a| a.is_empty()), "node {} recorded a failover: {crashes}", n.id);
    }
    assert_eq!(lab.master_seen_by(2).await.as_deref(), Some(old.as_str()));
    lab.heal();
    report(
        "peer-http-ports-cut",
        "cut the leader from the master and from its peers' HTTP ports (raft and replication intact)",
        "no failover: the peers answered the vote over raft and saw the master alive (ERR00089)",
    );
    lab.finish();
}

/// Fencing 7: two managers and an arbitrator; the leader manager is killed, round after round
/// (`CHAOS_ROUNDS`, default 3; `scripts/chaos arbitrator-rounds` runs 20). Each time the other
/// manager becomes the active node (the arbitrator, if elected, hands the lead to the live
/// manager, never to the dead one); the killed one is restarted before the next round.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_arbitrator_hands_over_to_the_live_manager_round_after_round() {
    let rounds: usize = std::env::var("CHAOS_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let mut lab = GroupLab::start(2, &["manager", "manager", "arbitrator"], None, &[]).await;
    let mut times = Vec::new();
    for round in 0..rounds {
        let ok = wait_until(Duration::from_secs(30), || async { lab.active_nodes().await.first().is_some_and(|l| *l != 3) }).await;
        assert!(ok, "round {round}: no manager leads: {}", lab.logs());
        let l = leader(&lab).await;
        let survivor = if l == 1 { 2 } else { 1 };
        let killed_at = Instant::now();
        lab.node(l).kill();
        let ok = wait_until(Duration::from_secs(30), || async { lab.active_nodes().await == vec![survivor] }).await;
        assert!(ok, "round {round}: manager {survivor} did not become active after {l} died: {}", lab.logs());
        times.push(killed_at.elapsed());
        lab.start_node(l);
        let back = wait_until(Duration::from_secs(30), || async {
            lab.nodes.iter().find(|n| n.id == l).unwrap().group(&lab.token).await.is_some_and(|g| g["leader"] == survivor)
        })
        .await;
        assert!(back, "round {round}: restarted manager {l} does not follow {survivor}: {}", lab.logs());
    }
    let arb = lab.nodes.iter().find(|n| n.id == 3).unwrap();
    assert!(!arb.log_text().contains("executing"), "the arbitrator touched a database");
    times.sort();
    report(
        "arbitrator-rounds",
        &format!("killed the leader manager {rounds} times (two managers and an arbitrator)"),
        &format!(
            "the live manager became active every time: p50 {:.2} s, max {:.2} s",
            times[times.len() / 2].as_secs_f64(),
            times.last().map_or(0.0, |t| t.as_secs_f64())
        ),
    );
    lab.finish();
}

/// The manager group over mutual TLS (raft-tls-cert/-key/-ca, no shared secret): the group
/// forms, elects one active leader, and fails a dead master over (the failure vote travels on
/// the TLS raft channel).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_tls_group_fails_over() {
    let lab = GroupLab::start_tls(3, MANAGERS).await;
    let l = leader(&lab).await;
    let old = lab.sb.addr(1);
    lab.sb.run(&["kill", "1"]);
    let new = new_master_everywhere(&lab, &old, Duration::from_secs(40)).await;
    crashes_converge(&lab, 1, Duration::from_secs(30)).await;
    // Every raft listener speaks TLS only: a plain HTTP caller gets no answer.
    for n in &lab.nodes {
        let r = common::http().get(format!("http://127.0.0.1:{}/raft/group-info", n.raft_port)).send().await;
        assert!(r.as_ref().map_or(true, |r| !r.status().is_success()), "node {} answered plain HTTP on its raft port: {r:?}", n.id);
    }
    report("tls-group", &format!("raft over mutual TLS, leader {l}; killed master {old}"), &format!("{new} agreed by every node"));
    lab.finish();
}

/// Statements sent to sandbox server `i` since `since` (its own clock, `NOW(6)` format), from
/// its `general_log` table: (time, account, statement), oldest first.
fn logged_statements(lab: &GroupLab, i: u16, since: &str) -> Vec<(String, String, String)> {
    let out = lab.sb.sql(
        i,
        &format!(
            "SELECT DATE_FORMAT(event_time, '%Y-%m-%d %H:%i:%s.%f'), SUBSTRING_INDEX(user_host, '[', 1), \
             LEFT(REPLACE(REPLACE(CONVERT(argument USING utf8mb4), '\\n', ' '), '\\t', ' '), 300) \
             FROM mysql.general_log WHERE command_type IN ('Query', 'Execute') AND event_time >= '{since}' ORDER BY event_time"
        ),
    );
    out.lines()
        .filter_map(|l| {
            let mut f = l.splitn(3, '\t');
            Some((f.next()?.to_string(), f.next()?.trim().to_string(), f.next()?.to_string()))
        })
        .collect()
}

/// Whether a statement only reads or sets session state (probes, position waits, the session
/// bounds every manager connection sets): everything else changes the server.
fn only_reads(statement: &str) -> bool {
    let s = statement.trim_start().to_ascii_uppercase();
    // `SET STATEMENT <session bounds> FOR <statement>`: judged by the statement.
    if let Some(rest) = s.strip_prefix("SET STATEMENT ").and_then(|r| r.split_once(" FOR ")).map(|(_, r)| r.to_string()) {
        return only_reads(&rest);
    }
    ["SELECT", "SHOW", "SET SESSION", "SET NAMES", "SET @@SESSION", "SET CHARACTER_SET", "SET TIME_ZONE", "SET @"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// Fencing 4: the leader is cut from its peers (raft only: it still reaches every database)
/// in the middle of a switchover, right after it fenced and locked the old master. Every
/// manager has its own database account, so each server's `general_log` tells who sent what.
/// A new leader rolls the switchover back; the deposed leader, which wakes up afterwards and
/// still reaches the databases, sends no statement that changes a server once the new leader
/// has acted (it goes on probing, as every node does). Under a write load and a read_only
/// sampler: no acknowledged row lost, never two writable servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_leader_cut_mid_switchover_sends_nothing_after_the_new_leader_acts() {
    let lab = led_by_node_1(|| GroupLab::start_with_own_accounts(3, MANAGERS, Some(1), &[], &[("REPLICATION_MANAGER_FAULT_PAUSE_AFTER_FENCE_MS", "8000")])).await;
    let old = lab.sb.addr(1);
    for i in 1..=lab.sb.count {
        lab.sb.sql(i, "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 1");
    }
    let load = WriteLoad::start(db_ports(&lab), 3_000_000);
    let sampler = WritableSampler::start(db_ports(&lab));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let url = lab.nodes[0].url(&format!("/api/clusters/{}/actions/switchover", lab.cluster));
    let token = lab.token.clone();
    let call = tokio::spawn(async move {
        let c = reqwest::Client::builder().timeout(Duration::from_secs(90)).no_proxy().build().unwrap();
        match c.get(url).bearer_auth(token).send().await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    });
    let paused = wait_until(Duration::from_secs(30), || async { lab.nodes[0].log_text().contains("pausing after the old master was fenced") }).await;
    assert!(paused, "the leader never fenced the old master: {}", lab.logs());
    lab.cut_raft(1);
    let cut_at = lab.sb.sql(1, "SELECT NOW(6)");
    // Another node takes the lead and rolls the interrupted switchover back.
    let chosen = std::sync::atomic::AtomicU64::new(0);
    let rolled_back = wait_until(Duration::from_secs(40), || async {
        let active = lab.active_nodes().await;
        if active.len() != 1 || active[0] == 1 {
            return false;
        }
        chosen.store(active[0], std::sync::atomic::Ordering::Relaxed);
        let resumed = lab.nodes.iter().find(|n| n.id == active[0]).is_some_and(|n| n.log_text().contains("Resuming switchover"));
        resumed && lab.sb.sql(1, "SELECT @@read_only") == "0"
    })
    .await;
    let new_leader = chosen.load(std::sync::atomic::Ordering::Relaxed);
    assert!(rolled_back, "no new leader rolled the switchover back: {}", lab.logs());
    // The deposed leader wakes up, finds it has lost the lead, and gives up.
    let (st, body) = tokio::time::timeout(Duration::from_secs(90), call).await.expect("switchover call").unwrap();
    assert_ne!(st, 200, "the deposed leader reported a switchover: {body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = load.stop().await;
    let (samples, dual) = sampler.stop().await;
    let new_user = format!("rm{new_leader}");
    let mut first_new: Option<String> = None;
    let mut old_after = Vec::new();
    let mut old_last: Option<String> = None;
    let all: Vec<Vec<(String, String, String)>> = (1..=lab.sb.count).map(|i| logged_statements(&lab, i, &cut_at)).collect();
    for (t, user, stmt) in all.iter().flatten() {
        if *user == new_user && !only_reads(stmt) && first_new.as_ref().is_none_or(|f| t < f) {
            first_new = Some(t.clone());
        }
    }
    let first_new = first_new.unwrap_or_else(|| panic!("the new leader (node {new_leader}) changed no server: {}", lab.logs()));
    for (i, rows) in all.iter().enumerate() {
        for (t, user, stmt) in rows {
            if user == "rm1" && !only_reads(stmt) {
                if old_last.as_ref().is_none_or(|l| t > l) {
                    old_last = Some(t.clone());
                }
                if *t >= first_new {
                    old_after.push(format!("server {} at {t}: {stmt}", i + 1));
                }
            }
        }
    }
    for i in 1..=lab.sb.count {
        lab.sb.sql(i, "SET GLOBAL general_log = 0");
    }
    assert!(old_after.is_empty(), "the deposed leader changed servers after the new leader acted ({first_new}):\n{}", old_after.join("\n"));
    assert!(samples >= 20, "only {samples} read_only samples taken");
    assert!(dual.is_empty(), "two writable servers: {dual:?}");
    assert_eq!(lab.master_seen_by(new_leader).await.as_deref(), Some(old.as_str()), "the rolled-back switchover moved the master");
    let present = ids_on(&lab.sb, 1);
    let lost: Vec<u64> = writes.acked.iter().filter(|id| !present.contains(id)).copied().collect();
    assert!(lost.is_empty(), "{} acknowledged rows lost: {:?}", lost.len(), &lost[..lost.len().min(10)]);
    lab.heal();
    report(
        "leader-cut-mid-switchover",
        &format!("cut leader 1 from its raft peers (databases reachable) after it fenced {old}; node {new_leader} took over"),
        &format!(
            "cut at {cut_at}, new leader's first change {first_new}, deposed leader's last change {}; 0 changes by it afterwards; {samples} samples, 0 dual-writable; {} acknowledged, 0 lost; its call answered {st}",
            old_last.unwrap_or_else(|| "none".into()),
            writes.acked.len()
        ),
    );
    lab.finish();
}

/// Fencing 4, the long step: the leader is cut from its raft peers (it still reaches every
/// database) while it reloads a replica from a dump of the master (`reseed/logicalmaster`),
/// the reload held at its first statement by a table lock on the replica. Within its
/// leadership re-check it stops the reload (its client processes die, and the server drops
/// the statement they left waiting); once another node is active, no statement of the deposed
/// leader changes any server, also after the lock is released (the replica keeps its data).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chaos_leader_cut_mid_reseed_stops_the_reload() {
    use mysql_async::prelude::Queryable;
    let lab = led_by_node_1(|| GroupLab::start_with_own_accounts(3, MANAGERS, Some(1), &[], &[])).await;
    for i in 1..=lab.sb.count {
        lab.sb.sql(i, "SET GLOBAL log_output = 'TABLE'; SET GLOBAL general_log = 1");
    }
    // A table replication leaves alone, so locking it blocks the reload and not the replica.
    lab.sb.sql(1, "CREATE TABLE app.held (id INT PRIMARY KEY); INSERT INTO app.held VALUES (1), (2), (3)");
    let load = WriteLoad::start(db_ports(&lab), 6_000_000);
    let sampler = WritableSampler::start(db_ports(&lab));
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The test's own session on replica 3 holds a lock the reload's first statement waits for.
    let opts = mysql_async::OptsBuilder::default().ip_or_hostname("127.0.0.1").tcp_port(lab.sb.port(3)).user(Some("repman")).pass(Some("repman")).prefer_socket(false);
    let mut holder = mysql_async::Conn::new(opts).await.expect("lock holder connects");
    let replicated = wait_until(Duration::from_secs(10), || async { lab.sb.sql(3, "SELECT COUNT(*) FROM app.held") == "3" }).await;
    assert!(replicated, "app.held did not reach replica 3");
    holder.query_drop("LOCK TABLES app.held READ").await.expect("lock app.held");
    let target = lab.sb.addr(3);
    let (st, body) = lab.nodes[0].get(&format!("/api/clusters/{}/servers/{target}/actions/reseed/logicalmaster", lab.cluster), &lab.token).await.expect("reseed answer");
    assert_eq!(st, 200, "reseed refused: {body}");
    let blocked = wait_until(Duration::from_secs(30), || async {
        lab.sb.sql(3, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'rm1' AND STATE LIKE 'Waiting for%metadata lock'") != "0"
    })
    .await;
    assert!(blocked, "the reload never waited on the lock: {}", lab.logs());
    let cut_at = lab.sb.sql(3, "SELECT NOW(6)");
    lab.cut_raft(1);
    let chosen = std::sync::atomic::AtomicU64::new(0);
    let took_over = wait_until(Duration::from_secs(30), || async {
        let active = lab.active_nodes().await;
        if active.len() == 1 && active[0] != 1 {
            chosen.store(active[0], std::sync::atomic::Ordering::Relaxed);
            return true;
        }
        false
    })
    .await;
    assert!(took_over, "no other node became active: {}", lab.logs());
    let new_leader = chosen.load(std::sync::atomic::Ordering::Relaxed);
    let active_at = lab.sb.sql(3, "SELECT NOW(6)");
    let stopped = wait_until(Duration::from_secs(20), || async { lab.nodes[0].log_text().contains("stopped: this node lost the lead") }).await;
    assert!(stopped, "the deposed leader did not stop its reload: {}", lab.logs());
    let gone = wait_until(Duration::from_secs(10), || async {
        lab.sb.sql(3, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE USER = 'rm1' AND STATE LIKE 'Waiting for%metadata lock'") == "0"
    })
    .await;
    assert!(gone, "the reload's statement still waits on the server after its client was stopped");
    let rows_before = lab.sb.sql(3, "SELECT COUNT(*) FROM app.held");
    holder.query_drop("UNLOCK TABLES").await.expect("unlock");
    drop(holder);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = load.stop().await;
    let (samples, dual) = sampler.stop().await;
    assert_eq!(lab.sb.sql(3, "SHOW DATABASES LIKE 'app'"), "app", "the stopped reload dropped the replica's database");
    assert_eq!(lab.sb.sql(3, "SELECT COUNT(*) FROM app.held"), rows_before, "the stopped reload changed the replica's data");
    let mut changes_after = Vec::new();
    let mut last_change: Option<String> = None;
    for i in 1..=lab.sb.count {
        for (t, user, stmt) in logged_statements(&lab, i, &cut_at) {
            if user == "rm1" && !only_reads(&stmt) {
                if last_change.as_ref().is_none_or(|l| t > *l) {
                    last_change = Some(t.clone());
                }
                if t >= active_at {
                    changes_after.push(format!("server {i} at {t}: {stmt}"));
                }
            }
        }
    }
    for i in 1..=lab.sb.count {
        lab.sb.sql(i, "SET GLOBAL general_log = 0");
    }
    assert!(changes_after.is_empty(), "the deposed leader changed servers after node {new_leader} became active ({active_at}):\n{}", changes_after.join("\n"));
    assert!(samples >= 20, "only {samples} read_only samples taken");
    assert!(dual.is_empty(), "two writable servers: {dual:?}");
    let present = ids_on(&lab.sb, 1);
    let lost: Vec<u64> = writes.acked.iter().filter(|id| !present.contains(id)).copied().collect();
    assert!(lost.is_empty(), "{} acknowledged rows lost: {:?}", lost.len(), &lost[..lost.len().min(10)]);
    lab.heal();
    report(
        "leader-cut-mid-reseed",
        &format!("cut leader 1 from its raft peers while its reload of {target} waited on a lock; node {new_leader} became active"),
        &format!(
            "cut at {cut_at}, new leader active at {active_at}, deposed leader's last change {}; 0 changes by it afterwards, the replica's data intact after the lock was released; {samples} samples, 0 dual-writable; {} acknowledged, 0 lost",
            last_change.unwrap_or_else(|| "none".into()),
            writes.acked.len()
        ),
    );
    lab.finish();
}
