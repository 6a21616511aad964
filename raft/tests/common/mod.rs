//! Test harness: an in-process group of nodes on loopback ports with their own temp dirs.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use replication_manager_raft::{GroupConfig, GroupStatus, GroupTls, NodeId, NodeInfo, RaftGroup};

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

/// Raft timings for a test.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
}

/// The production defaults (250 / 1500 / 3000 ms).
pub const DEFAULT_TIMING: Timing = Timing { heartbeat_ms: 250, election_min_ms: 1500, election_max_ms: 3000 };
/// Faster timings for tests that do not measure failover.
pub const FAST_TIMING: Timing = Timing { heartbeat_ms: 100, election_min_ms: 600, election_max_ms: 1200 };

pub struct Cluster {
    pub peers: BTreeMap<NodeId, NodeInfo>,
    binds: BTreeMap<NodeId, SocketAddr>,
    root: PathBuf,
    timing: Timing,
    pub nodes: BTreeMap<NodeId, RaftGroup>,
    /// Each node's raft TLS identity (empty: plain HTTP).
    pub tls: BTreeMap<NodeId, GroupTls>,
}

/// A certificate authority and the certificates it signs, for raft TLS tests.
pub struct TestCa {
    key: rcgen::KeyPair,
    cert: rcgen::Certificate,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        TestCa { key, cert }
    }

    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate for 127.0.0.1 signed by this CA: (cert PEM, key PEM).
    pub fn issue(&self, name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A node's raft TLS identity issued by this CA.
    pub fn identity(&self, id: NodeId) -> GroupTls {
        let (cert_pem, key_pem) = self.issue(&format!("node-{id}"));
        GroupTls { cert_pem, key_pem, ca_pem: self.pem() }
    }
}

/// Picks `n` free loopback ports (all bound at once, so they differ, then released).
fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<std::net::TcpListener> =
        (0..n).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    listeners.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Sends `tracing` output to the test's captured output; filter with `RUST_LOG`.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,replication_manager_raft=info")),
        )
        .with_test_writer()
        .try_init();
}

impl Cluster {
    /// Prepares `n` nodes (ids 1..=n) without starting them.
    pub fn new(name: &str, n: u64, timing: Timing) -> Cluster {
        init_logs();
        let k = NEXT_DIR.fetch_add(1, Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("rm-raft-it-{}-{name}-{k}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let ports = free_ports(2 * n as usize);
        let mut peers = BTreeMap::new();
        let mut binds = BTreeMap::new();
        for id in 1..=n {
            let raft_port = ports[(id - 1) as usize * 2];
            let api_port = ports[(id - 1) as usize * 2 + 1];
            let role = if id == n && n > 2 { "arbitrator" } else { "manager" };
            peers.insert(
                id,
                NodeInfo {
                    raft_addr: format!("127.0.0.1:{raft_port}"),
                    api_addr: format!("127.0.0.1:{api_port}"),
                    role: role.to_string(),
                },
            );
            binds.insert(id, SocketAddr::from(([127, 0, 0, 1], raft_port)));
        }
        Cluster { peers, binds, root, timing, nodes: BTreeMap::new(), tls: BTreeMap::new() }
    }

    /// Prepares and starts `n` nodes.
    pub async fn start(name: &str, n: u64, timing: Timing) -> Cluster {
        let mut c = Cluster::new(name, n, timing);
        let ids: Vec<NodeId> = c.peers.keys().copied().collect();
        for id in ids {
            c.start_node(id).await;
        }
        c
    }

    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.root.join(format!("node-{id}"))
    }

    pub fn config(&self, id: NodeId) -> GroupConfig {
        let mut cfg = GroupConfig::new(id, self.binds[&id], self.peers.clone(), self.data_dir(id));
        cfg.heartbeat_ms = self.timing.heartbeat_ms;
        cfg.election_min_ms = self.timing.election_min_ms;
        cfg.election_max_ms = self.timing.election_max_ms;
        cfg.tls = self.tls.get(&id).cloned();
        cfg
    }

    pub async fn start_node(&mut self, id: NodeId) {
        assert!(!self.nodes.contains_key(&id), "node {id} already running");
        // The port was just released by a stopped node; retry binding for a short while.
        let mut last_err = None;
        for _ in 0..50 {
            match RaftGroup::start(self.config(id)).await {
                Ok(g) => {
                    self.nodes.insert(id, g);
                    return;
                }
                Err(e) => {
                    last_err = Some(e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        panic!("starting node {id}: {:?}", last_err);
    }

    pub async fn stop_node(&mut self, id: NodeId) {
        let g = self.nodes.remove(&id).unwrap();
        g.shutdown().await;
    }

    /// Deletes a stopped node's data directory.
    pub fn wipe(&self, id: NodeId) {
        assert!(!self.nodes.contains_key(&id), "wipe a stopped node only");
        std::fs::remove_dir_all(self.data_dir(id)).unwrap();
    }

    pub fn node(&self, id: NodeId) -> &RaftGroup {
        &self.nodes[&id]
    }

    pub fn statuses(&self) -> Vec<GroupStatus> {
        self.nodes.values().map(|g| g.status()).collect()
    }

    /// The single active leader among running nodes, if exactly one is active and every running
    /// node in `among` agrees on it.
    pub fn agreed_active_leader(&self, among: &[NodeId]) -> Option<NodeId> {
        let statuses: Vec<GroupStatus> = among.iter().map(|id| self.nodes[id].status()).collect();
        let active: Vec<NodeId> = statuses.iter().filter(|s| s.active).map(|s| s.node_id).collect();
        if active.len() != 1 {
            return None;
        }
        let leader = active[0];
        statuses.iter().all(|s| s.leader == Some(leader)).then_some(leader)
    }

    /// Waits (bounded) until exactly one running node among `among` is the active leader and
    /// all of them agree; returns it and the time waited.
    pub async fn wait_leader(&self, among: &[NodeId], bound: Duration) -> (NodeId, Duration) {
        let t0 = Instant::now();
        loop {
            if let Some(l) = self.agreed_active_leader(among) {
                return (l, t0.elapsed());
            }
            if t0.elapsed() > bound {
                panic!("no agreed active leader among {among:?} within {bound:?}: {:#?}", self.statuses());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    pub async fn shutdown(&mut self) {
        let ids = self.running();
        for id in ids {
            self.stop_node(id).await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `bound`. Returns the time
/// it took.
pub async fn wait_for(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let t0 = Instant::now();
    loop {
        if cond() {
            return t0.elapsed();
        }
        if t0.elapsed() > bound {
            panic!("timed out after {bound:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
