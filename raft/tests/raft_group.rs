//! Three-node groups in one process over real loopback HTTP: formation, replication,
//! forwarding, compare-and-put, idempotency, failover, restart, wiped node, isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{wait_for, Cluster, DEFAULT_TIMING, FAST_TIMING, TestCa};
use replication_manager_raft::{Command, KvOp, WriteError};
use serde_json::json;

const FORM_BOUND: Duration = Duration::from_secs(30);

fn put(op_id: &str, key: &str, value: serde_json::Value) -> Command {
    Command::new(op_id, vec![KvOp::put(key, value)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_group_and_replicate() {
    let mut c = Cluster::start("form", 3, FAST_TIMING).await;
    let all = c.running();
    let (leader, took) = c.wait_leader(&all, FORM_BOUND).await;
    eprintln!("[form] group formed, leader {leader}, in {took:?}");
    assert_eq!(c.nodes.values().filter(|g| g.did_initialize()).count(), 1, "exactly one node initializes");
    assert!(c.node(1).did_initialize(), "the lowest id initializes");
    for s in c.statuses() {
        assert_eq!(s.members.len(), 3);
        assert!(!s.lost_quorum, "{s:?}");
        assert_eq!(s.leader_info.as_ref(), Some(&c.peers[&leader]));
    }

    // A write through the leader is readable on all nodes.
    let r = c.node(leader).write(put("op-1", "cfg/a", json!({"v": 1}))).await.unwrap();
    assert!(r.applied && !r.duplicate && r.failed_key.is_none());
    for id in &all {
        let g = c.node(*id).clone();
        wait_for("replication to every node", Duration::from_secs(10), || g.get("cfg/a") == Some(json!({"v": 1})))
            .await;
    }
    let follower = *all.iter().find(|id| **id != leader).unwrap();
    assert_eq!(c.node(follower).scan_prefix("cfg/"), vec![("cfg/a".to_string(), json!({"v": 1}))]);
    assert!(*c.node(follower).applied_watch().borrow() >= r.log_index);

    // A write on a follower is refused with the leader's address.
    match c.node(follower).write(put("op-f", "x", json!(1))).await {
        Err(WriteError::ForwardToLeader { leader: Some((id, info)) }) => {
            assert_eq!(id, leader);
            assert_eq!(info, c.peers[&leader]);
        }
        other => panic!("expected ForwardToLeader, got {other:?}"),
    }
    assert!(c.node(follower).ensure_leader().await.is_err());
    let t = Instant::now();
    let (term, id) = c.node(leader).ensure_leader().await.unwrap();
    eprintln!("[form] ensure_leader on the leader took {:?} (term {term})", t.elapsed());
    assert_eq!(id, leader);
    assert_eq!(term, c.node(leader).status().term);

    // 200 checks at once (400 cluster monitors ticking together) share a few rounds, and
    // every one of them is proved by a round that started after it was asked.
    let g = c.node(leader).clone();
    let before = g.leadership_rounds();
    let checks = (0..200).map(|_| {
        let g = g.clone();
        tokio::spawn(async move { g.ensure_leader().await })
    });
    let answers = futures::future::join_all(checks).await;
    assert!(answers.iter().all(|a| matches!(a, Ok(Ok((t, i))) if *t == term && *i == leader)), "{answers:?}");
    let rounds = g.leadership_rounds() - before;
    eprintln!("[form] 200 concurrent leadership checks took {rounds} rounds");
    assert!((1..=20).contains(&rounds), "{rounds} rounds for 200 concurrent checks");
    // A check after they all ended runs its own round.
    g.ensure_leader().await.unwrap();
    assert_eq!(g.leadership_rounds() - before, rounds + 1);

    // Compare-and-put: a failed comparison applies nothing of the command.
    let failed = c
        .node(leader)
        .write(Command::new(
            "op-2",
            vec![KvOp::put("cfg/b", json!(2)), KvOp::compare_and_put("cfg/a", Some(json!({"v": 0})), json!({"v": 2}))],
        ))
        .await
        .unwrap();
    assert!(!failed.applied);
    assert_eq!(failed.failed_key.as_deref(), Some("cfg/a"));
    assert_eq!(c.node(leader).get("cfg/b"), None);
    assert_eq!(c.node(leader).get("cfg/a"), Some(json!({"v": 1})));
    let ok = c
        .node(leader)
        .write(Command::new(
            "op-3",
            vec![
                KvOp::compare_and_put("cfg/a", Some(json!({"v": 1})), json!({"v": 3})),
                KvOp::compare_and_put("lock", None, json!("node-1")),
                KvOp::delete("nothing"),
            ],
        ))
        .await
        .unwrap();
    assert!(ok.applied);
    assert_eq!(c.node(leader).get("cfg/a"), Some(json!({"v": 3})));
    assert_eq!(c.node(leader).get("lock"), Some(json!("node-1")));

    // A repeated op id returns the first result and changes nothing.
    let dup = c.node(leader).write(put("op-1", "cfg/a", json!("overwrite"))).await.unwrap();
    assert!(dup.duplicate && dup.applied);
    assert_eq!(dup.log_index, r.log_index);
    assert_eq!(c.node(leader).get("cfg/a"), Some(json!({"v": 3})));
    let dup_failed = c.node(leader).write(put("op-2", "cfg/b", json!(1))).await.unwrap();
    assert!(dup_failed.duplicate && !dup_failed.applied);
    assert_eq!(c.node(leader).get("cfg/b"), None);

    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_shutdown_elects_new_leader() {
    let mut c = Cluster::start("failover", 3, DEFAULT_TIMING).await;
    let (old, took) = c.wait_leader(&c.running(), FORM_BOUND).await;
    eprintln!("[failover] formed with leader {old} in {took:?}");
    for i in 0..5 {
        c.node(old).write(put(&format!("w-{i}"), &format!("k/{i}"), json!(i))).await.unwrap();
    }

    let t0 = Instant::now();
    c.stop_node(old).await;
    let stop_took = t0.elapsed();
    let rest = c.running();
    let (new, took) = c.wait_leader(&rest, Duration::from_secs(20)).await;
    eprintln!(
        "[failover] leader {old} stopped in {stop_took:?}; new active leader {new} after {:?} (default timings)",
        t0.elapsed()
    );
    let _ = took;
    assert_ne!(new, old);
    for i in 0..5 {
        assert_eq!(c.node(new).get(&format!("k/{i}")), Some(json!(i)));
    }
    let r = c.node(new).write(put("after", "k/after", json!(true))).await.unwrap();
    assert!(r.applied);

    // The old leader restarts and rejoins as a follower with the new data.
    let t1 = Instant::now();
    c.start_node(old).await;
    let g = c.node(old).clone();
    wait_for("old leader to catch up", Duration::from_secs(20), || g.get("k/after") == Some(json!(true))).await;
    eprintln!("[failover] old leader {old} rejoined and caught up in {:?}", t1.elapsed());
    let all = c.running();
    let (leader, _) = c.wait_leader(&all, Duration::from_secs(20)).await;
    eprintln!("[failover] leader after rejoin: {leader}");
    assert!(!c.node(old).did_initialize());
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_all_keeps_state_without_second_initialize() {
    let mut c = Cluster::start("restart", 3, FAST_TIMING).await;
    let (leader, _) = c.wait_leader(&c.running(), FORM_BOUND).await;
    let first = c.node(leader).write(put("persist-1", "state/a", json!("kept"))).await.unwrap();
    c.node(leader)
        .write(Command::new("persist-2", vec![KvOp::put("state/b", json!(2)), KvOp::delete("state/none")]))
        .await
        .unwrap();
    let all = c.running();
    for id in &all {
        let g = c.node(*id).clone();
        wait_for("replication before restart", Duration::from_secs(10), || g.get("state/b") == Some(json!(2))).await;
    }
    let term_before = c.node(leader).status().term;

    c.shutdown().await;
    let t0 = Instant::now();
    for id in &all {
        c.start_node(*id).await;
    }
    let (new_leader, took) = c.wait_leader(&all, FORM_BOUND).await;
    eprintln!("[restart] all restarted; leader {new_leader} after {took:?} (total {:?})", t0.elapsed());
    for id in &all {
        let g = c.node(*id);
        assert!(!g.did_initialize(), "node {id} initialized a second time");
        assert_eq!(g.get("state/a"), Some(json!("kept")), "node {id}");
        assert_eq!(g.get("state/b"), Some(json!(2)), "node {id}");
    }
    assert!(c.node(new_leader).status().term > term_before);
    // Remembered op ids survive the restart.
    let dup = c.node(new_leader).write(put("persist-1", "state/a", json!("changed"))).await.unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.log_index, first.log_index);
    assert_eq!(c.node(new_leader).get("state/a"), Some(json!("kept")));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wiped_follower_catches_up_without_initializing() {
    let mut c = Cluster::start("wipe", 3, FAST_TIMING).await;
    let all = c.running();
    let (mut leader, _) = c.wait_leader(&all, FORM_BOUND).await;
    // Wipe node 1, the lowest id (the one that would initialize), while it is a follower.
    if leader == 1 {
        let t0 = Instant::now();
        c.node(1).transfer_leader(2).await.unwrap();
        let (l, _) = c.wait_leader(&all, Duration::from_secs(20)).await;
        eprintln!("[wipe] leadership transferred 1 -> {l} in {:?}", t0.elapsed());
        assert_eq!(l, 2);
        leader = l;
    }
    for i in 0..20 {
        c.node(leader).write(put(&format!("pre-{i}"), &format!("data/{i:02}"), json!(i))).await.unwrap();
    }

    // First: node 3 wiped, caught up by log replay (the leader had replicated to it before).
    let t0 = Instant::now();
    let victim = if leader == 3 { 2 } else { 3 };
    c.stop_node(victim).await;
    c.wipe(victim);
    c.start_node(victim).await;
    let g = c.node(victim).clone();
    wait_for("wiped node to catch up by log", Duration::from_secs(20), || g.get("data/19") == Some(json!(19))).await;
    eprintln!("[wipe] node {victim} wiped and caught up from the log in {:?}", t0.elapsed());
    assert!(!g.did_initialize());

    // Then: compact the leader's log so node 1 must be sent a snapshot.
    let upto = c.node(leader).compact_log().await.unwrap();
    eprintln!("[wipe] leader {leader} compacted its log up to {upto}");
    let t1 = Instant::now();
    c.stop_node(1).await;
    c.wipe(1);
    c.node(leader).write(put("while-down", "data/late", json!("late"))).await.unwrap();
    c.start_node(1).await;
    let g1 = c.node(1).clone();
    wait_for("wiped node 1 to catch up by snapshot", Duration::from_secs(30), || {
        g1.get("data/late") == Some(json!("late")) && g1.get("data/00") == Some(json!(0))
    })
    .await;
    eprintln!("[wipe] node 1 wiped and caught up from a snapshot in {:?}", t1.elapsed());
    assert!(!g1.did_initialize(), "a wiped node must not initialize again");
    assert_eq!(g1.scan_prefix("data/").len(), 21);
    // Op ids travel in the snapshot: a retry on node 1 as leader would be recognised.
    let (l, _) = c.wait_leader(&all, Duration::from_secs(20)).await;
    let dup = c.node(l).write(put("pre-0", "data/00", json!("again"))).await.unwrap();
    assert!(dup.duplicate);
    assert_eq!(c.statuses().iter().filter(|s| s.active).count(), 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_steps_aside_and_heals() {
    let mut c = Cluster::start("isolate", 3, DEFAULT_TIMING).await;
    let all = c.running();
    let (old, _) = c.wait_leader(&all, FORM_BOUND).await;
    c.node(old).write(put("before", "iso/before", json!(1))).await.unwrap();
    let lease = c.node(old).config().lease();

    let t0 = Instant::now();
    c.node(old).set_isolated(true);
    let g = c.node(old).clone();
    let inactive = wait_for("isolated leader to report inactive", lease + Duration::from_secs(3), || {
        let s = g.status();
        !s.active && s.lost_quorum
    })
    .await;
    let s = g.status();
    eprintln!(
        "[isolate] leader {old} isolated: active=false, lost_quorum=true after {inactive:?} (lease {lease:?}); \
         state still {}, millis_since_quorum_ack={:?}",
        s.state, s.millis_since_quorum_ack
    );
    assert!(inactive <= lease + Duration::from_secs(2));
    match g.write(put("during", "iso/during", json!(1))).await {
        Err(WriteError::NoQuorum(msg)) => eprintln!("[isolate] write on isolated leader refused: {msg}"),
        Err(other) => eprintln!("[isolate] write on isolated leader refused: {other}"),
        Ok(r) => panic!("write on an isolated leader succeeded: {r:?}"),
    }
    assert!(g.ensure_leader().await.is_err());

    let others: Vec<_> = all.iter().copied().filter(|id| *id != old).collect();
    let (new, _) = c.wait_leader(&others, Duration::from_secs(30)).await;
    eprintln!("[isolate] nodes {others:?} elected {new} {:?} after isolation", t0.elapsed());
    assert_ne!(new, old);
    assert!(c.node(old).status().lost_quorum);
    c.node(new).write(put("after", "iso/after", json!(2))).await.unwrap();

    let t1 = Instant::now();
    c.node(old).set_isolated(false);
    let (leader, _) = c.wait_leader(&all, Duration::from_secs(30)).await;
    wait_for("healed node to catch up", Duration::from_secs(20), || g.get("iso/after") == Some(json!(2))).await;
    wait_for("healed node to see its leader", Duration::from_secs(20), || !g.status().lost_quorum).await;
    eprintln!("[isolate] healed: single leader {leader}, old leader caught up in {:?}", t1.elapsed());
    assert_eq!(g.get("iso/during"), None, "the isolated leader's write must not survive");
    assert_eq!(c.statuses().iter().filter(|s| s.active).count(), 1);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_forms_only_once_every_peer_answers() {
    let mut c = Cluster::new("staggered", 3, FAST_TIMING);
    // Nodes 1 and 2 up, node 3 not yet: node 1 must not initialize a group without node 3.
    c.start_node(2).await;
    c.start_node(1).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!c.node(1).did_initialize());
    assert!(c.statuses().iter().all(|s| s.leader.is_none() && s.state == "Learner"), "{:#?}", c.statuses());
    let t0 = Instant::now();
    c.start_node(3).await;
    let (leader, took) = c.wait_leader(&[1, 2, 3], FORM_BOUND).await;
    eprintln!("[staggered] last peer up -> leader {leader} after {took:?} ({:?})", t0.elapsed());
    assert!(c.node(1).did_initialize());
    assert_eq!(c.nodes.values().filter(|g| g.did_initialize()).count(), 1);
    c.node(leader).write(put("s-1", "s", json!(1))).await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_node_group_forms_and_restarts() {
    let mut c = Cluster::start("single", 1, FAST_TIMING).await;
    let (leader, took) = c.wait_leader(&[1], FORM_BOUND).await;
    eprintln!("[single] single-node group formed in {took:?}");
    assert_eq!(leader, 1);
    assert!(c.node(1).did_initialize());
    c.node(1).write(put("one", "k", json!("v"))).await.unwrap();
    assert_eq!(c.node(1).ensure_leader().await.unwrap().1, 1);
    c.stop_node(1).await;
    c.start_node(1).await;
    let (_, took) = c.wait_leader(&[1], FORM_BOUND).await;
    eprintln!("[single] restarted single node leader again in {took:?}");
    assert!(!c.node(1).did_initialize());
    assert_eq!(c.node(1).get("k"), Some(json!("v")));
    let s = c.node(1).status();
    assert!(s.active && !s.lost_quorum, "{s:?}");
    c.shutdown().await;
}

/// Mutual TLS on the raft RPC: the group forms and replicates over HTTPS; a caller without a
/// certificate of the group's CA (plain HTTP, HTTPS without a client certificate, or one from
/// another CA) cannot even open a connection, so it can neither vote, append nor read a
/// snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_group_forms_and_refuses_callers_without_a_group_certificate() {
    let ca = TestCa::new("group-ca");
    let mut c = Cluster::new("tls", 3, FAST_TIMING);
    for id in 1..=3 {
        c.tls.insert(id, ca.identity(id));
    }
    for id in 1..=3 {
        c.start_node(id).await;
    }
    let all = c.running();
    let (leader, _) = c.wait_leader(&all, FORM_BOUND).await;
    c.node(leader).write(put("tls-1", "cfg/tls", json!(true))).await.unwrap();
    for id in &all {
        let g = c.node(*id).clone();
        wait_for("replication over TLS", Duration::from_secs(10), || g.get("cfg/tls") == Some(json!(true))).await;
    }

    // Application questions travel on the same authenticated channel.
    let peer = *all.iter().find(|id| **id != leader).unwrap();
    c.node(peer).set_app_handler(std::sync::Arc::new(|topic: &str, body: &serde_json::Value| {
        (topic == "echo").then(|| json!({"echo": body.clone()}))
    }));
    let asked = c.node(leader).ask(peer, "echo", &json!({"x": 1}), Duration::from_secs(3)).await;
    assert_eq!(asked, Ok(json!({"echo": {"x": 1}})));
    assert!(c.node(leader).ask(peer, "unknown-topic", &json!({}), Duration::from_secs(3)).await.is_err());

    let addr = c.peers[&leader].raft_addr.clone();
    let body = json!({});
    let plain = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(3)).build().unwrap();
    for path in ["/raft/vote", "/raft/append", "/raft/snapshot"] {
        let r = plain.post(format!("http://{addr}{path}")).json(&body).send().await;
        assert!(r.as_ref().map_or(true, |r| !r.status().is_success()), "plain HTTP {path} accepted: {r:?}");
    }
    let ca_cert = reqwest::Certificate::from_pem(ca.pem().as_bytes()).unwrap();
    let no_identity = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca_cert.clone())
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let other = TestCa::new("intruder-ca");
    let (cert, key) = other.issue("intruder");
    let intruder = reqwest::Client::builder()
        .no_proxy()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca_cert)
        .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap())
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    for (who, client) in [("no client certificate", &no_identity), ("another CA's certificate", &intruder)] {
        for path in ["/raft/vote", "/raft/append", "/raft/snapshot", "/raft/group-info"] {
            let r = client.post(format!("https://{addr}{path}")).json(&body).send().await;
            assert!(r.is_err(), "{who}: {path} got an answer: {r:?}");
        }
    }
    c.shutdown().await;
}
