//! `replication-manager-cli` against a real manager on a real MariaDB sandbox: every
//! subcommand (status, topology, switchover, failover, show, server, jobs, api, group), the
//! `--json` output parsed, tables without color codes when stdout is not a terminal, and the
//! API's refusals turned into a message and a non-zero exit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use common::group::GroupLab;
use common::*;
use serde_json::Value;

const CLUSTER: &str = "c1";

/// The CLI binary, built fresh for this run (it is another package of the workspace, so cargo
/// does not build it for this test by itself). A failed build fails the test.
fn cli_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let manager = PathBuf::from(env!("CARGO_BIN_EXE_replication-manager"));
        let mut build = Command::new(env!("CARGO"));
        build.current_dir(repo_root()).args(["build", "-p", "replication-manager-cli", "--bin", "replication-manager-cli"]);
        if !cfg!(debug_assertions) {
            build.arg("--release");
        }
        let out = build.output().expect("run cargo build for the CLI");
        assert!(out.status.success(), "building replication-manager-cli failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let bin = manager.with_file_name("replication-manager-cli");
        assert!(bin.exists(), "{} missing after the build", bin.display());
        bin
    })
    .clone()
}

struct Cli {
    port: u16,
    cluster: &'static str,
}

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        assert!(self.ok, "command failed: {}", self.stderr);
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Cli {
    /// Runs the CLI with `args`; the password comes from REPMAN_PASSWORD as an operator would
    /// give it.
    fn run(&self, args: &[&str]) -> Run {
        let out: Output = Command::new(cli_binary())
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string(), "--cluster", self.cluster])
            .args(args)
            .env("REPMAN_PASSWORD", "repman")
            .env_remove("REPMAN_USER")
            .stdin(Stdio::null())
            .output()
            .expect("run replication-manager-cli");
        let r = Run { ok: out.status.success(), stdout: String::from_utf8_lossy(&out.stdout).into(), stderr: String::from_utf8_lossy(&out.stderr).into() };
        // Output to a pipe is never colored.
        assert!(!r.stdout.contains('\u{1b}'), "color codes written to a pipe: {:?}", r.stdout);
        r
    }

    fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(r.ok, "{args:?} failed:\nstdout: {}\nstderr: {}", r.stdout, r.stderr);
        r
    }

    fn fails(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert!(!r.ok, "{args:?} should fail: {}", r.stdout);
        r
    }
}

async fn master_url(m: &Manager, token: &str) -> String {
    m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), token).await["url"].as_str().unwrap_or("").to_string()
}

/// Waits until every server is Master or Slave (after a switchover or failover settles).
async fn settled(m: &Manager, token: &str, sb: &Sandbox) -> bool {
    wait_until(Duration::from_secs(40), || async {
        let s = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), token).await;
        (1..=sb.count).all(|i| matches!(server_by_url(&s, &sb.addr(i))["state"].as_str(), Some("Master") | Some("Slave")))
            && s.as_array().unwrap().iter().filter(|x| x["state"] == "Master").count() == 1
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_cli_subcommand_against_a_real_manager() {
    cli_binary();
    let sb = Sandbox::start(3, true);
    common::load::create_table(&sb, 1);
    let sandbox = repo_root().join("scripts/sandbox");
    let env = sb.env_assignments();
    let keys = [
        ("prov-db-stop-command", format!("env {env} {} stop $(( {{port}} - {} ))", sandbox.display(), sb.base_port - 1)),
        ("prov-db-start-command", format!("env {env} {} start-one $(( {{port}} - {} ))", sandbox.display(), sb.base_port - 1)),
    ];
    // Plain HTTP on `port`, TLS (self-signed) on `port + 1`.
    let lab_slot = slot();
    let dir = temp_dir("cli", lab_slot);
    let port = free_ports(lab_slot + 500, 2);
    let mut defaults = default_keys(&dir, port);
    defaults.push(("api-bind", "127.0.0.1".to_string()));
    defaults.push(("api-port", (port + 1).to_string()));
    let mut cluster = cluster_keys(&sb);
    cluster.extend(keys);
    write_config(&dir, &defaults, CLUSTER, &cluster);
    let m = Manager::start(&dir, port, &[]).await;
    let token = m.token().await;
    assert!(settled(&m, &token, &sb).await, "topology not discovered:\n{}", m.log_text());
    let cli = Cli { port: m.http_port, cluster: CLUSTER };
    let (a1, a2, a3) = (sb.addr(1), sb.addr(2), sb.addr(3));

    // status: a table, and JSON.
    let t = cli.ok(&["status"]);
    assert!(t.stdout.contains("Cluster") && t.stdout.contains(CLUSTER) && t.stdout.contains(&a1), "{}", t.stdout);
    let s = cli.ok(&["status", "--json"]).json();
    assert_eq!(s[0]["cluster"], CLUSTER);
    assert_eq!(s[0]["master"], a1.as_str());
    assert_eq!(s[0]["serversUp"], 3);
    assert_eq!(s[0]["manager"], "A");
    println!("status:\n{}", t.stdout);

    // topology.
    let t = cli.ok(&["topology"]);
    for a in [&a1, &a2, &a3] {
        let port = a.rsplit(':').next().unwrap();
        assert!(t.stdout.contains(port), "{port} missing:\n{}", t.stdout);
    }
    assert!(t.stdout.contains("Master") && t.stdout.contains("Slave"), "{}", t.stdout);
    let j = cli.ok(&["topology", "--json"]).json();
    assert_eq!(j[0]["servers"].as_array().unwrap().len(), 3);
    println!("topology:\n{}", t.stdout);

    // switchover to a named replica moves the master there.
    let r = cli.ok(&["switchover", "--prefered-master", &a2, "--json"]).json();
    assert_eq!(r["master"], a2.as_str(), "{r}");
    assert_eq!(master_url(&m, &token).await, a2);
    assert!(settled(&m, &token, &sb).await, "after the switchover:\n{}", m.log_text());

    // A refused switchover: the API's reason and a non-zero exit.
    let r = cli.fails(&["switchover", "--prefered-master", "127.0.0.1:1"]);
    assert!(r.stderr.contains("400") && r.stderr.contains("prefmaster 127.0.0.1:1 is not a server of this cluster"), "{}", r.stderr);

    // failover elects another server.
    let r = cli.ok(&["failover", "--json"]).json();
    let new = r["master"].as_str().unwrap().to_string();
    assert_ne!(new, a2, "{r}");
    assert_eq!(master_url(&m, &token).await, new);
    assert!(settled(&m, &token, &sb).await, "after the failover:\n{}", m.log_text());

    // show: the JSON report, limited to the objects asked for.
    let j = cli.ok(&["show", "--get", "servers,master,alerts"]).json();
    let c = &j["clusters"][0];
    assert_eq!(c["name"], CLUSTER);
    assert_eq!(c["servers"].as_array().unwrap().len(), 3);
    assert_eq!(c["master"]["url"], new.as_str());
    assert!(c.get("settings").is_none(), "not asked for: {c}");
    let r = cli.fails(&["show", "--get", "nothing"]);
    assert!(r.stderr.contains("unknown object `nothing`"), "{}", r.stderr);

    // server: maintenance toggles on and off.
    let replica = [&a1, &a2, &a3].into_iter().find(|a| **a != new).unwrap().clone();
    let r = cli.ok(&["server", "--id", &replica, "--action", "maintenance"]);
    assert!(r.stdout.contains("maintenance on"), "{}", r.stdout);
    let s = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await;
    assert_eq!(server_by_url(&s, &replica)["isMaintenance"], true);
    let r = cli.ok(&["server", "--id", &replica, "--action", "maintenance", "--json"]).json();
    assert!(r["message"].as_str().unwrap().contains("maintenance off"), "{r}");

    // server: stop and start through the orchestrator commands.
    cli.ok(&["server", "--id", &replica, "--action", "stop"]);
    assert!(
        wait_until(Duration::from_secs(20), || async {
            server_by_url(&m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await, &replica)["state"] == "Failed"
        })
        .await,
        "stopped server not Failed"
    );
    let st = cli.ok(&["status", "--json"]).json();
    assert_eq!(st[0]["serversUp"], 2, "{st}");
    cli.ok(&["server", "--id", &replica, "--action", "start"]);
    assert!(settled(&m, &token, &sb).await, "restarted server did not rejoin:\n{}", m.log_text());

    // server: a job action is followed until the job ends.
    let r = cli.ok(&["server", "--id", &replica, "--action", "backup-logical", "--json"]).json();
    assert_eq!(r["job"]["state"], "done", "{r}");
    assert!(r["job"]["sizeBytes"].as_u64().unwrap() > 0, "{r}");
    let t = cli.ok(&["server", "--id", &replica, "--action", "backup-logical"]);
    assert!(t.stdout.contains("done"), "{}", t.stdout);
    let jobs = cli.ok(&["jobs", "--json"]).json();
    assert!(jobs.as_array().unwrap().iter().filter(|j| j["kind"] == "backup-logical" && j["state"] == "done").count() >= 2, "{jobs}");
    assert!(cli.ok(&["jobs"]).stdout.contains("backup-logical"));

    // server --get: information read from the server, shown as a table.
    let t = cli.ok(&["server", "--id", &replica, "--get", "variables"]);
    assert!(t.stdout.to_ascii_lowercase().contains("gtid_strict_mode"), "{}", t.stdout);
    let r = cli.fails(&["server", "--id", &replica, "--action", "explode"]);
    assert!(r.stderr.contains("unknown action"), "{}", r.stderr);

    // api: a raw authenticated call, JSON pretty-printed; an error gives the API's message.
    let j = cli.ok(&["api", "/api/clusters/c1/topology/master"]).json();
    assert_eq!(j["url"], new.as_str());
    let j = cli.ok(&["api", "clusters/c1/settings"]).json();
    assert_eq!(j["dbServersCredential"], "*:*");
    let r = cli.fails(&["api", "/api/clusters/nope/topology/master"]);
    assert!(r.stderr.contains("404") && r.stderr.contains("nope"), "{}", r.stderr);
    let r = cli.ok(&["api", "-X", "POST", "/api/clusters/c1/settings/actions/set/failover-limit/7"]);
    assert!(r.stdout.contains("failover-limit"), "{}", r.stdout);

    // group: the managers, the leader, A/S and the term.
    let g = cli.ok(&["group", "--json"]).json();
    assert_eq!(g["status"], "A", "{g}");
    assert_eq!(g["leader"], g["nodeId"], "{g}");
    assert!(g["term"].as_u64().unwrap() >= 1, "{g}");
    assert_eq!(g["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(g["nodes"][0]["status"], "A");
    let t = cli.ok(&["group"]);
    assert!(t.stdout.contains("leader") && t.stdout.contains("term"), "{}", t.stdout);

    // The TLS listener: --insecure accepts the self-signed certificate; without it the
    // certificate is refused.
    let tls = Cli { port: port + 1, cluster: CLUSTER };
    let s = tls.ok(&["--insecure", "status", "--json"]).json();
    assert_eq!(s[0]["cluster"], CLUSTER);
    let r = tls.fails(&["--https", "status"]);
    assert!(r.stderr.contains("/api/login"), "{}", r.stderr);

    // Login refused, nothing listening, bad flags: a message and a non-zero exit.
    let out = Command::new(cli_binary())
        .args(["--port", &m.http_port.to_string(), "--password", "wrong", "status"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("403") && err.contains("login"), "{err}");
    let closed = free_ports(slot() + 900, 1);
    let out = Command::new(cli_binary()).args(["--port", &closed.to_string(), "--timeout", "2", "status"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/api/login"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(cli_binary()).args(["--timeout", "0", "status"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--timeout"));
}

/// `group` on a three-manager group: every manager, one active leader, the same term; a killed
/// leader shows as unreachable and another node becomes active; an action sent to a follower is
/// forwarded to the leader.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_command_on_three_managers() {
    cli_binary();
    let mut lab = GroupLab::start(2, &["manager", "manager", "manager"], None, &[]).await;
    assert!(wait_until(Duration::from_secs(30), || async { lab.active_nodes().await.len() == 1 }).await, "no active node:\n{}", lab.logs());
    let leader = lab.active_nodes().await[0];
    let follower = lab.other(leader).http_port;
    let cli = Cli { port: follower, cluster: lab.cluster };

    let g = cli.ok(&["group", "--json"]).json();
    let nodes = g["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{g}");
    assert_eq!(g["leader"], leader, "{g}");
    assert_eq!(g["status"], "S", "asked a follower: {g}");
    let active: Vec<&Value> = nodes.iter().filter(|n| n["status"] == "A").collect();
    assert_eq!(active.len(), 1, "{g}");
    assert_eq!(active[0]["id"], leader);
    assert!(nodes.iter().all(|n| n["reachable"] == true && n["term"] == g["term"]), "{g}");
    let t = cli.ok(&["group"]);
    println!("group:\n{}", t.stdout);

    // An action through a follower runs on the leader.
    assert!(
        wait_until(Duration::from_secs(30), || async {
            cli.run(&["status", "--json"]).ok && cli.ok(&["status", "--json"]).json()[0]["master"].is_string()
        })
        .await
    );
    let before = cli.ok(&["status", "--json"]).json()[0]["master"].as_str().unwrap().to_string();
    let r = cli.ok(&["switchover", "--json"]).json();
    // The leader's answer names the new master; the follower's own view follows within ticks.
    let moved = r["message"].as_str().and_then(|m| m.rsplit("new master ").next()).unwrap_or("").to_string();
    assert!(!moved.is_empty() && moved != before, "{r}");
    assert!(
        wait_until(Duration::from_secs(15), || async { cli.ok(&["status", "--json"]).json()[0]["master"].as_str() == Some(moved.as_str()) }).await,
        "the follower does not show the new master {moved}"
    );

    // The leader killed: unreachable in the table, another node active.
    lab.node(leader).kill();
    assert!(
        wait_until(Duration::from_secs(30), || async { lab.active_nodes().await.iter().any(|id| *id != leader) }).await,
        "no new leader:\n{}",
        lab.logs()
    );
    let g = cli.ok(&["group", "--json"]).json();
    let dead = g["nodes"].as_array().unwrap().iter().find(|n| n["id"] == leader).unwrap().clone();
    assert_eq!(dead["reachable"], false, "{g}");
    assert_ne!(g["leader"], leader, "{g}");
    assert!(cli.ok(&["group"]).stdout.contains("unreachable"));
    lab.finish();
}
