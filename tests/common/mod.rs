//! Test harness: a real MariaDB sandbox (scripts/sandbox) and real manager processes, each
//! test with its own ports, uid range, nft table and temp dir, stopped by PID on drop.
#![allow(dead_code)]

pub mod group;
pub mod haproxy;
pub mod load;
pub mod receivers;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

static SLOT: AtomicU32 = AtomicU32::new(0);

/// The repository root.
pub fn repo_root() -> PathBuf {
    // Read at run time (cargo sets it for every test run): a test binary reused from a build
    // in another checkout must still look at this one.
    std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// A per-test slot: distinct across tests of one process and (by pid) across processes.
fn next_slot() -> u32 {
    let n = SLOT.fetch_add(1, Ordering::SeqCst);
    (std::process::id() % 97) * 7 + n
}

fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// First port tests use; the range stays below the kernel's ephemeral ports (32768+), which
/// outgoing connections take at any time.
const PORT_LOW: u32 = 20_000;
const PORT_HIGH: u32 = 32_000;

/// `count` consecutive free ports on 127.0.0.1, searched from a per-slot start.
pub fn free_ports(slot: u32, count: u16) -> u16 {
    let span = PORT_HIGH - PORT_LOW;
    let mut base = PORT_LOW + (slot * 16) % span;
    for _ in 0..2000 {
        let b = base as u16;
        if (0..count).all(|i| port_free(b + i)) {
            return b;
        }
        base = PORT_LOW + (base + 16 - PORT_LOW) % span;
    }
    panic!("no {count} consecutive free ports found");
}

/// A fresh temp dir for one test.
pub fn temp_dir(tag: &str, slot: u32) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rmt-{tag}-{}-{slot}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create temp dir");
    d
}

/// A running MariaDB sandbox, destroyed on drop.
pub struct Sandbox {
    pub dir: PathBuf,
    pub base_port: u16,
    pub count: u16,
    uid_base: u32,
    table: String,
}

impl Sandbox {
    /// Starts `count` mariadbd; with `replicate`, instance 1 is the primary of the others.
    pub fn start(count: u16, replicate: bool) -> Sandbox {
        let slot = next_slot();
        let base_port = free_ports(slot, count);
        let sb = Sandbox {
            dir: PathBuf::from(format!("/tmp/rmsb-{}-{slot}", std::process::id())),
            base_port,
            count,
            uid_base: 40_000 + (slot % 250) * 100,
            table: format!("rmt_{}_{slot}", std::process::id()),
        };
        sb.run(&["start", &count.to_string()]);
        if replicate {
            sb.run(&["replicate", "1"]);
        }
        sb
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(repo_root().join("scripts/sandbox"));
        c.args(args)
            .env("SANDBOX_DIR", &self.dir)
            .env("SANDBOX_BASE_PORT", self.base_port.to_string())
            .env("SANDBOX_UID_BASE", self.uid_base.to_string())
            .env("SANDBOX_NFT_TABLE", &self.table)
            .env("SANDBOX_QUIET", "1")
            .stdin(Stdio::null());
        c
    }

    /// `VAR=value ...` naming this sandbox, for shell commands that call scripts/sandbox.
    pub fn env_assignments(&self) -> String {
        format!(
            "SANDBOX_DIR={} SANDBOX_BASE_PORT={} SANDBOX_UID_BASE={} SANDBOX_NFT_TABLE={} SANDBOX_QUIET=1",
            self.dir.display(),
            self.base_port,
            self.uid_base,
            self.table
        )
    }

    /// Runs a sandbox command, panicking with its output on failure.
    pub fn run(&self, args: &[&str]) -> String {
        let out = self.command(args).output().expect("run scripts/sandbox");
        assert!(
            out.status.success(),
            "scripts/sandbox {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Runs SQL as root on instance `i` (1-based); rows as tab-separated lines.
    pub fn sql(&self, i: u16, sql: &str) -> String {
        self.run(&["sql", &i.to_string(), sql])
    }

    pub fn port(&self, i: u16) -> u16 {
        self.base_port + i - 1
    }

    /// `127.0.0.1:port` of instance `i`.
    pub fn addr(&self, i: u16) -> String {
        format!("127.0.0.1:{}", self.port(i))
    }

    /// `db-servers-hosts` for all instances.
    pub fn hosts(&self) -> String {
        (1..=self.count).map(|i| self.addr(i)).collect::<Vec<_>>().join(",")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.command(&["destroy"]).output();
    }
}

/// A running manager process, stopped by PID on drop.
pub struct Manager {
    child: Option<Child>,
    pub http_port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
}

/// Writes a config file with `[Default]` keys and one cluster section.
pub fn write_config(dir: &Path, defaults: &[(&str, String)], cluster: &str, keys: &[(&str, String)]) -> PathBuf {
    let mut s = String::from("[Default]\n");
    for (k, v) in defaults {
        s.push_str(&format!("{k} = {}\n", toml_value(v)));
    }
    s.push_str(&format!("\n[{cluster}]\n"));
    for (k, v) in keys {
        s.push_str(&format!("{k} = {}\n", toml_value(v)));
    }
    let p = dir.join("config.toml");
    std::fs::write(&p, s).expect("write config");
    p
}

fn toml_value(v: &str) -> String {
    if v == "true" || v == "false" || v.parse::<f64>().is_ok() {
        v.to_string()
    } else {
        format!("{v:?}")
    }
}

impl Manager {
    /// Starts `replication-manager --config <dir>/config.toml monitor` with `extra` flags and
    /// waits until `/api/status` answers.
    pub async fn start(dir: &Path, http_port: u16, extra: &[String]) -> Manager {
        let log = dir.join("manager.log");
        let logf = std::fs::File::create(&log).expect("create manager log");
        let child = Command::new(env!("CARGO_BIN_EXE_replication-manager"))
            .arg("--config")
            .arg(dir.join("config.toml"))
            .args(extra)
            .arg("monitor")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(logf)
            .spawn()
            .expect("spawn replication-manager");
        let mut m = Manager { child: Some(child), http_port, dir: dir.to_path_buf(), log };
        let client = http();
        let url = m.url("/api/status");
        let ok = wait_until(Duration::from_secs(20), || {
            let client = client.clone();
            let url = url.clone();
            async move {
                match client.get(&url).send().await {
                    Ok(r) => r.text().await.is_ok_and(|t| t.contains("running")),
                    Err(_) => false,
                }
            }
        })
        .await;
        if !ok {
            let exited = m.child.as_mut().and_then(|c| c.try_wait().ok().flatten());
            panic!("manager did not answer /api/status (exit: {exited:?}); log:\n{}", m.log_text());
        }
        m
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http_port)
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The manager process's id (None once stopped).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Logs in as admin and returns a token.
    pub async fn token(&self) -> String {
        self.token_for("admin", "repman").await
    }

    /// Logs in as `user` and returns a token.
    pub async fn token_for(&self, user: &str, password: &str) -> String {
        let r = http()
            .post(self.url("/api/login"))
            .json(&serde_json::json!({"username": user, "password": password}))
            .send()
            .await
            .expect("login request");
        assert_eq!(r.status(), 200, "login as {user}");
        let v: Value = r.json().await.expect("login json");
        v["token"].as_str().expect("token").to_string()
    }

    /// GET of a long action (a `services` call, a bootstrap): waits for its answer up to
    /// `limit` instead of the default client's short timeout.
    pub async fn get_long(&self, path: &str, token: &str, limit: Duration) -> (u16, String) {
        let r = http().get(self.url(path)).bearer_auth(token).timeout(limit).send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// GET with a token, returning (status, body text).
    pub async fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let mut req = http().get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.text().await.unwrap_or_default())
    }

    /// GET a JSON document with a token, asserting 200.
    pub async fn get_json(&self, path: &str, token: &str) -> Value {
        let (status, body) = self.get(path, Some(token)).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: bad JSON {e}: {body}"))
    }

    /// Stops the manager (SIGTERM, then SIGKILL after 10 s) and returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }
}

impl Drop for Manager {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An HTTP client with a short timeout, no proxy.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .no_proxy()
        .build()
        .expect("http client")
}

/// Polls `f` every 100 ms until it returns true or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The server object with `url == addr` in a `/topology/servers` answer.
pub fn server_by_url<'a>(servers: &'a Value, addr: &str) -> &'a Value {
    servers
        .as_array()
        .and_then(|a| a.iter().find(|s| s["url"] == addr))
        .unwrap_or_else(|| panic!("no server {addr} in {servers}"))
}

/// Default manager settings for a sandbox cluster.
pub fn cluster_keys(sb: &Sandbox) -> Vec<(&'static str, String)> {
    vec![
        ("db-servers-hosts", sb.hosts()),
        ("db-servers-credential", "repman:repman".to_string()),
        ("replication-credential", "repl:repl".to_string()),
        ("db-servers-connect-timeout", "1".to_string()),
        ("monitoring-ticker", "0.5".to_string()),
    ]
}

/// `[Default]` settings: bind to loopback on `http_port`, data under `dir`.
pub fn default_keys(dir: &Path, http_port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("http-bind-address", "127.0.0.1".to_string()),
        ("http-port", http_port.to_string()),
        ("monitoring-datadir", dir.join("data").display().to_string()),
    ]
}

/// Starts a manager on the sandbox's cluster `cluster` with its own temp dir and `ports`
/// consecutive ports (the first is http-port); `defaults` and `keys` are added to / override
/// the standard `[Default]` and cluster keys. Returns the manager and its directory.
pub async fn sandbox_manager(
    sb: &Sandbox,
    tag: &str,
    cluster: &str,
    ports: u16,
    defaults: &[(&'static str, String)],
    keys: &[(&'static str, String)],
) -> (Manager, PathBuf) {
    let slot = slot();
    let dir = temp_dir(tag, slot);
    let port = free_ports(slot + 500, ports);
    let mut d = default_keys(&dir, port);
    let mut k = cluster_keys(sb);
    for (list, extra) in [(&mut d, defaults), (&mut k, keys)] {
        for (key, v) in extra {
            list.retain(|(kk, _)| kk != key);
            list.push((key, v.clone()));
        }
    }
    write_config(&dir, &d, cluster, &k);
    let m = Manager::start(&dir, port, &[]).await;
    (m, dir)
}

/// A fresh slot for a manager-only test (temp dir and ports).
pub fn slot() -> u32 {
    next_slot()
}
