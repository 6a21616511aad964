//! A lab of several manager processes forming a group over one MariaDB sandbox, with real
//! faults: SIGKILL/restart of a manager, and isolation of a manager from its peers' raft ports
//! and from the databases with nftables (the manager runs under its own uid so its outgoing
//! connections can be matched).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{free_ports, http, temp_dir, wait_until, write_config, Sandbox};

/// One manager node of the lab.
pub struct Node {
    pub id: u64,
    pub http_port: u16,
    pub raft_port: u16,
    pub dir: PathBuf,
    pub uid: Option<u32>,
    pub role: &'static str,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

impl Node {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("manager.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Environment variables given to the manager process at its next start.
    pub fn set_env(&mut self, key: &str, value: &str) {
        self.env.push((key.to_string(), value.to_string()));
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("manager.log")).expect("log");
        let bin = self.dir.join("replication-manager");
        let mut cmd = match self.uid {
            Some(uid) => {
                let mut c = Command::new("setpriv");
                c.arg(format!("--reuid={uid}")).arg(format!("--regid={uid}")).arg("--clear-groups").arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .arg("--config")
            .arg(self.dir.join("config.toml"))
            .arg("monitor")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn manager");
        self.child = Some(child);
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM with a bounded wait, then SIGKILL.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `/api/group` of this node (None when it does not answer).
    pub async fn group(&self, token: &str) -> Option<Value> {
        let r = http().get(self.url("/api/group")).bearer_auth(token).send().await.ok()?;
        r.json().await.ok()
    }

    pub async fn get(&self, path: &str, token: &str) -> Option<(u16, String)> {
        let r = http().get(self.url(path)).bearer_auth(token).send().await.ok()?;
        let st = r.status().as_u16();
        Some((st, r.text().await.unwrap_or_default()))
    }

    pub async fn get_json(&self, path: &str, token: &str) -> Option<Value> {
        let (st, body) = self.get(path, token).await?;
        (st == 200).then(|| serde_json::from_str(&body).ok()).flatten()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Several managers over one sandbox.
pub struct GroupLab {
    pub sb: Sandbox,
    pub nodes: Vec<Node>,
    pub token: String,
    pub cluster: &'static str,
    root: PathBuf,
    nft_table: String,
}

fn link_binary(dir: &Path) {
    let src = PathBuf::from(env!("CARGO_BIN_EXE_replication-manager"));
    let dst = dir.join("replication-manager");
    if std::fs::hard_link(&src, &dst).is_err() {
        std::fs::copy(&src, &dst).expect("copy binary");
    }
}

impl GroupLab {
    /// Starts a replicated sandbox of `dbs` servers and one manager per entry of `roles`
    /// (`manager` / `arbitrator`). Node `isolable` (1-based), if any, runs under its own uid.
    pub async fn start(dbs: u16, roles: &[&'static str], isolable: Option<u64>, extra: &[(&'static str, &str)]) -> GroupLab {
        GroupLab::start_with_env(dbs, roles, isolable, extra, &[]).await
    }

    /// As [`GroupLab::start`], with environment variables (fault hooks) for every manager.
    pub async fn start_with_env(
        dbs: u16,
        roles: &[&'static str],
        isolable: Option<u64>,
        extra: &[(&'static str, &str)],
        fault_env: &[(&str, &str)],
    ) -> GroupLab {
        GroupLab::start_full(dbs, roles, isolable, extra, fault_env, false, false).await
    }

    /// As [`GroupLab::start_with_env`], every manager with a database account of its own
    /// (`rm<id>`, password the same), so a server's `general_log` tells which manager sent
    /// each statement.
    pub async fn start_with_own_accounts(
        dbs: u16,
        roles: &[&'static str],
        isolable: Option<u64>,
        extra: &[(&'static str, &str)],
        fault_env: &[(&str, &str)],
    ) -> GroupLab {
        GroupLab::start_full(dbs, roles, isolable, extra, fault_env, false, true).await
    }

    /// As [`GroupLab::start`], the raft RPC over mutual TLS (a CA and one certificate per node,
    /// generated in the lab's directory) and without the shared secret.
    pub async fn start_tls(dbs: u16, roles: &[&'static str]) -> GroupLab {
        GroupLab::start_full(dbs, roles, None, &[], &[], true, false).await
    }

    async fn start_full(
        dbs: u16,
        roles: &[&'static str],
        isolable: Option<u64>,
        extra: &[(&'static str, &str)],
        fault_env: &[(&str, &str)],
        tls: bool,
        own_accounts: bool,
    ) -> GroupLab {
        let sb = Sandbox::start(dbs, true);
        super::load::create_table(&sb, 1);
        if own_accounts {
            for i in 1..=dbs {
                for id in 1..=roles.len() {
                    sb.sql(
                        i,
                        &format!(
                            "SET SESSION sql_log_bin = 0; CREATE OR REPLACE USER 'rm{id}'@'%' IDENTIFIED BY 'rm{id}'; \
                             GRANT ALL PRIVILEGES ON *.* TO 'rm{id}'@'%' WITH GRANT OPTION"
                        ),
                    );
                }
            }
        }
        let slot = super::slot();
        let root = temp_dir("group", slot);
        let n = roles.len() as u16;
        let http_base = free_ports(slot + 700, n);
        let raft_base = free_ports(slot + 900, n);
        let raft_base = if raft_base < http_base + n && raft_base + n > http_base { free_ports(slot + 1300, n) } else { raft_base };
        let peers: Vec<String> = (0..n).map(|i| format!("{}=127.0.0.1:{}", i + 1, raft_base + i)).collect();
        let peers_http: Vec<String> = (0..n).map(|i| format!("{}=127.0.0.1:{}", i + 1, http_base + i)).collect();
        let arbitrators: Vec<String> =
            roles.iter().enumerate().filter(|(_, r)| **r == "arbitrator").map(|(i, _)| (i + 1).to_string()).collect();
        let ca = tls.then(|| {
            let key = rcgen::KeyPair::generate().expect("CA key");
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let cert = params.self_signed(&key).expect("CA certificate");
            std::fs::write(root.join("ca.pem"), cert.pem()).expect("write CA");
            (key, cert)
        });
        let mut nodes = Vec::new();
        for (i, role) in roles.iter().enumerate() {
            let id = i as u64 + 1;
            let dir = root.join(format!("n{id}"));
            std::fs::create_dir_all(dir.join("data")).expect("node dir");
            link_binary(&dir);
            let uid = (isolable == Some(id)).then_some(46_000 + (slot % 200) * 10 + id as u32);
            let mut defaults = vec![
                ("http-bind-address", "127.0.0.1".to_string()),
                ("http-port", (http_base + i as u16).to_string()),
                ("monitoring-datadir", dir.join("data").display().to_string()),
                ("raft-node-id", id.to_string()),
                ("raft-role", role.to_string()),
                ("raft-bind-address", format!("127.0.0.1:{}", raft_base + i as u16)),
                ("raft-peers", peers.join(",")),
                ("raft-peers-http", peers_http.join(",")),
                ("raft-arbitrators", arbitrators.join(",")),
            ];
            match &ca {
                None => defaults.push(("raft-secret", format!("lab-secret-{slot}"))),
                Some((ca_key, ca_cert)) => {
                    let key = rcgen::KeyPair::generate().expect("node key");
                    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("node params");
                    let cert = params.signed_by(&key, ca_cert, ca_key).expect("node certificate");
                    std::fs::write(dir.join("raft.pem"), cert.pem()).expect("write cert");
                    std::fs::write(dir.join("raft.key"), key.serialize_pem()).expect("write key");
                    defaults.push(("raft-tls-cert", dir.join("raft.pem").display().to_string()));
                    defaults.push(("raft-tls-key", dir.join("raft.key").display().to_string()));
                    defaults.push(("raft-tls-ca", root.join("ca.pem").display().to_string()));
                }
            }
            for (k, v) in extra.iter().filter(|(k, _)| k.starts_with("raft-")) {
                defaults.push((k, v.to_string()));
            }
            let mut keys = super::cluster_keys(&sb);
            if own_accounts {
                keys.retain(|(k, _)| *k != "db-servers-credential");
                keys.push(("db-servers-credential", format!("rm{id}:rm{id}")));
            }
            keys.push(("failover-mode", "automatic".to_string()));
            keys.push(("failover-limit", "0".to_string()));
            keys.push(("failover-falsepositive-ping-counter", "3".to_string()));
            for (k, v) in extra.iter().filter(|(k, _)| !k.starts_with("raft-")) {
                keys.retain(|(kk, _)| kk != k);
                keys.push((k, v.to_string()));
            }
            write_config(&dir, &defaults, "c1", &keys);
            if let Some(uid) = uid {
                let _ = Command::new("chown").arg("-R").arg(format!("{uid}:{uid}")).arg(&dir).status();
            }
            let mut node = Node {
                id,
                http_port: http_base + i as u16,
                raft_port: raft_base + i as u16,
                dir,
                uid,
                role,
                env: fault_env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                child: None,
            };
            node.spawn();
            nodes.push(node);
        }
        let mut lab = GroupLab { sb, nodes, token: String::new(), cluster: "c1", root, nft_table: format!("rmt_iso_{}_{slot}", std::process::id()) };
        let ok = wait_until(Duration::from_secs(30), || async { lab.login().await.is_some() }).await;
        assert!(ok, "no node answers a login: {}", lab.logs());
        lab.token = lab.login().await.unwrap_or_default();
        let ok = wait_until(Duration::from_secs(30), || async { lab.active_nodes().await.len() == 1 }).await;
        assert!(ok, "the group did not elect an active leader: {}", lab.logs());
        lab
    }

    async fn login(&self) -> Option<String> {
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            let r = http()
                .post(n.url("/api/login"))
                .json(&serde_json::json!({"username": "admin", "password": "repman"}))
                .send()
                .await
                .ok()?;
            if r.status() == 200 {
                let v: Value = r.json().await.ok()?;
                return v["token"].as_str().map(str::to_string);
            }
        }
        None
    }

    /// Ids of the nodes that report status "A".
    pub async fn active_nodes(&self) -> Vec<u64> {
        let mut out = Vec::new();
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            if let Some(g) = n.group(&self.token).await {
                if g["status"] == "A" {
                    out.push(n.id);
                }
            }
        }
        out
    }

    pub fn node(&mut self, id: u64) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).expect("node id")
    }

    /// A running node other than `not`.
    pub fn other(&self, not: u64) -> &Node {
        self.nodes.iter().find(|n| n.id != not && n.is_running()).expect("another running node")
    }

    pub fn restart(&mut self, id: u64) {
        let n = self.node(id);
        n.stop();
        n.spawn();
    }

    pub fn start_node(&mut self, id: u64) {
        self.node(id).spawn();
    }

    /// Cuts node `id` from its peers' raft listeners (both ways) and from the databases.
    pub fn isolate(&self, id: u64) {
        self.isolate_from(id, true);
    }

    /// Cuts node `id` from its peers' raft listeners (both ways) only: it still reaches the
    /// databases, the case where a deposed leader could still send them statements.
    pub fn cut_raft(&self, id: u64) {
        self.isolate_from(id, false);
    }

    fn isolate_from(&self, id: u64, databases_too: bool) {
        let n = self.nodes.iter().find(|n| n.id == id).expect("node");
        let uid = n.uid.expect("node started isolable");
        let raft_ports: Vec<String> = self.nodes.iter().map(|x| x.raft_port.to_string()).collect();
        let db_ports: Vec<String> = (1..=self.sb.count).map(|i| self.sb.port(i).to_string()).collect();
        let db_rule = if databases_too { format!("meta skuid {uid} tcp dport {{ {} }} drop\n", db_ports.join(", ")) } else { String::new() };
        let t = &self.nft_table;
        let rules = format!(
            "table inet {t} {{\n\
               chain out {{ type filter hook output priority -150; policy accept;\n\
                 meta skuid {uid} tcp dport {{ {} }} drop\n\
                 {db_rule}\
               }}\n\
               chain in {{ type filter hook input priority -150; policy accept;\n\
                 tcp dport {} drop\n\
               }}\n\
             }}\n",
            raft_ports.join(", "),
            n.raft_port
        );
        let mut child = Command::new("nft").arg("-f").arg("-").stdin(Stdio::piped()).spawn().expect("nft");
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(rules.as_bytes()).expect("write rules");
        assert!(child.wait().expect("nft").success(), "nft rules refused:\n{rules}");
    }

    /// Drops node `id`'s outgoing connections to `ports` (nothing else is cut).
    pub fn cut_ports(&self, id: u64, ports: &[u16]) {
        let n = self.nodes.iter().find(|n| n.id == id).expect("node");
        let uid = n.uid.expect("node started isolable");
        let list: Vec<String> = ports.iter().map(u16::to_string).collect();
        let t = &self.nft_table;
        let rules = format!(
            "table inet {t} {{\n\
               chain out {{ type filter hook output priority -150; policy accept;\n\
                 meta skuid {uid} tcp dport {{ {} }} drop\n\
               }}\n\
             }}\n",
            list.join(", ")
        );
        let mut child = Command::new("nft").arg("-f").arg("-").stdin(Stdio::piped()).spawn().expect("nft");
        use std::io::Write;
        child.stdin.take().expect("stdin").write_all(rules.as_bytes()).expect("write rules");
        assert!(child.wait().expect("nft").success(), "nft rules refused:\n{rules}");
    }

    pub fn heal(&self) {
        let _ = Command::new("nft")
            .args(["delete", "table", "inet", &self.nft_table])
            .stderr(Stdio::null())
            .status();
    }

    pub fn logs(&self) -> String {
        self.nodes.iter().map(|n| format!("--- node {} ---\n{}", n.id, tail(&n.log_text(), 60))).collect::<Vec<_>>().join("\n")
    }

    /// The master URL as node `id` sees it (only when its state is Master).
    pub async fn master_seen_by(&self, id: u64) -> Option<String> {
        let n = self.nodes.iter().find(|n| n.id == id)?;
        let m = n.get_json(&format!("/api/clusters/{}/topology/master", self.cluster), &self.token).await?;
        (m["state"] == "Master").then(|| m["url"].as_str().map(str::to_string)).flatten()
    }

    pub fn finish(mut self) {
        self.heal();
        for n in &mut self.nodes {
            n.stop();
        }
        let root = self.root.clone();
        drop(self);
        let _ = std::fs::remove_dir_all(root);
    }
}

impl Drop for GroupLab {
    fn drop(&mut self) {
        self.heal();
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Samples every node's `/api/monitor` status every 100 ms: records samples where more than
/// one node said "A".
pub struct ActiveSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: tokio::task::JoinHandle<(u64, Vec<Vec<u16>>)>,
}

impl ActiveSampler {
    pub fn start(ports: Vec<u16>, token: String) -> ActiveSampler {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = tokio::spawn(async move {
            let client = reqwest::Client::builder().timeout(Duration::from_millis(500)).no_proxy().build().expect("client");
            let (mut samples, mut bad) = (0u64, Vec::new());
            while !s.load(Ordering::Relaxed) {
                let mut active = Vec::new();
                for p in &ports {
                    let url = format!("http://127.0.0.1:{p}/api/monitor");
                    if let Ok(r) = client.get(&url).bearer_auth(&token).send().await {
                        if let Ok(v) = r.json::<Value>().await {
                            if v["status"] == "A" {
                                active.push(*p);
                            }
                        }
                    }
                }
                samples += 1;
                if active.len() > 1 {
                    bad.push(active);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (samples, bad)
        });
        ActiveSampler { stop, handle }
    }

    pub async fn stop(self) -> (u64, Vec<Vec<u16>>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match tokio::time::timeout(Duration::from_secs(10), self.handle).await {
            Ok(Ok(r)) => r,
            other => panic!("sampler did not stop: {other:?}"),
        }
    }
}
