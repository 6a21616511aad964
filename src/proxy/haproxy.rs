//! `Haproxy`: the HAProxy driver. It renders the configuration (a write frontend and backend
//! holding the master, a read frontend and backend over the replicas, a statistics page, the
//! runtime API on a TCP stats socket), starts or reloads the process (daemon, PID file) and
//! stops it by its PID, and drives live changes through the runtime API: `show info`,
//! `show stat`, `set server <backend>/<server> state ready|drain|maint`,
//! `set server ... addr`, `shutdown sessions server ...`.
//!
//! The runtime API listens on TCP (`haproxy-api-port`) rather than a unix socket so that any
//! manager of the group (the one that becomes leader) drives the same process.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{AdminState, AdminStateSeen, BoxFuture, Observation, ObservedServer, ProxyDriver, ProxyError, Role, Target, API_DEADLINE};
use crate::config::{crc64_ecma, HostPort, ProxySettings};

/// How long a start, a reload or a configuration check may take.
const PROCESS_DEADLINE: Duration = Duration::from_secs(10);
/// How long a stopped process may take to exit before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Largest runtime API answer read.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// One HAProxy instance of a cluster.
#[derive(Debug, Clone)]
pub struct Haproxy {
    id: String,
    cluster: String,
    host: String,
    settings: ProxySettings,
    dir: PathBuf,
}

/// The Go project's proxy id: `px` + CRC-64/ECMA of cluster name, host, `:` and write port.
pub fn proxy_id(cluster: &str, host: &str, write_port: u16) -> String {
    format!("px{}", crc64_ecma(format!("{cluster}{host}:{write_port}").as_bytes()))
}

fn is_loopback(host: &str) -> bool {
    HostPort { host: host.to_string(), port: 1 }.is_loopback()
}

impl Haproxy {
    pub fn new(cluster: &str, host: &str, settings: &ProxySettings) -> Haproxy {
        let id = proxy_id(cluster, host, settings.write_port);
        let dir = settings.datadir.join("proxies").join(cluster).join(&id);
        Haproxy { id, cluster: cluster.to_string(), host: host.to_string(), settings: settings.clone(), dir }
    }

    fn config_path(&self) -> PathBuf {
        self.dir.join("haproxy.cfg")
    }

    /// The end of the configuration path that names this instance (cluster and proxy id): a
    /// process started by another manager of the group (another datadir) is recognized too.
    fn config_suffix(&self) -> String {
        format!("/proxies/{}/{}/haproxy.cfg", self.cluster, self.id)
    }

    fn pid_path(&self) -> PathBuf {
        self.dir.join("haproxy.pid")
    }

    fn backend(&self, role: Role) -> &str {
        match role {
            Role::Write => &self.settings.write_backend,
            Role::Read => &self.settings.read_backend,
        }
    }

    fn err_io(&self, what: &str, e: impl std::fmt::Display) -> ProxyError {
        ProxyError::Io { proxy: self.id.clone(), what: what.to_string(), reason: e.to_string() }
    }

    fn local_only(&self, what: &str) -> Result<(), ProxyError> {
        if self.is_local() {
            Ok(())
        } else {
            Err(ProxyError::NotLocal { proxy: self.id.clone(), host: self.host.clone(), what: what.to_string() })
        }
    }

    /// Sends one runtime API command and returns the answer (the connection closes after it).
    pub async fn command(&self, cmd: &str) -> Result<String, ProxyError> {
        let addr = (self.host.as_str(), self.settings.api_port);
        let exchange = async {
            let mut s = tokio::net::TcpStream::connect(addr).await.map_err(|e| self.err_io("runtime API connect", e))?;
            s.write_all(format!("{cmd}\n").as_bytes()).await.map_err(|e| self.err_io("runtime API write", e))?;
            let mut out = Vec::new();
            let mut buf = [0u8; 16 * 1024];
            loop {
                let n = s.read(&mut buf).await.map_err(|e| self.err_io("runtime API read", e))?;
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&buf[..n]);
                if out.len() > MAX_ANSWER {
                    return Err(self.err_io("runtime API read", format!("answer to `{cmd}` larger than {MAX_ANSWER} bytes")));
                }
            }
            Ok(String::from_utf8_lossy(&out).into_owned())
        };
        match tokio::time::timeout(API_DEADLINE, exchange).await {
            Ok(r) => r,
            Err(_) => Err(ProxyError::Timeout { proxy: self.id.clone(), what: format!("runtime API `{cmd}`"), after: API_DEADLINE }),
        }
    }

    /// A command whose success is an empty answer (HAProxy's `set` commands).
    async fn command_ok(&self, cmd: &str, accept: impl Fn(&str) -> bool) -> Result<(), ProxyError> {
        let answer = self.command(cmd).await?;
        let a = answer.trim();
        if a.is_empty() || accept(a) {
            tracing::info!(proxy = %self.id, cluster = %self.cluster, command = cmd, "proxy changed");
            Ok(())
        } else {
            Err(ProxyError::Refused { proxy: self.id.clone(), command: cmd.to_string(), answer: a.to_string() })
        }
    }

    /// The configuration for `targets`.
    pub fn render(&self, targets: &[Target]) -> String {
        let s = &self.settings;
        let mut c = String::new();
        c.push_str(&format!(
            "# Rendered by replication-manager for cluster {cluster}, proxy {id}: changes are overwritten.\n\
             global\n    daemon\n    maxconn 4096\n    stats socket ipv4@{host}:{api} level admin\n    stats timeout 10s\n\n\
             defaults\n    mode tcp\n    timeout connect 3s\n    timeout client 8h\n    timeout server 8h\n    timeout queue 3s\n\n\
             listen stats\n    mode http\n    bind {host}:{stat}\n    stats enable\n    stats uri /\n    stats refresh 5s\n\n\
             frontend my_write_frontend\n    bind {wbind}:{wport}\n    default_backend {wb}\n\n\
             frontend my_read_frontend\n    bind {rbind}:{rport}\n    default_backend {rb}\n",
            cluster = self.cluster,
            id = self.id,
            host = self.host,
            api = s.api_port,
            stat = s.stat_port,
            wbind = s.write_bind,
            wport = s.write_port,
            wb = s.write_backend,
            rbind = s.read_bind,
            rport = s.read_port,
            rb = s.read_backend,
        ));
        // The manager is the health check: no `check`, so a server's state is the one the
        // manager sets. A server not ready starts in maintenance (`disabled`).
        for (role, balance) in [(Role::Write, "first"), (Role::Read, "leastconn")] {
            c.push_str(&format!("\nbackend {}\n    balance {balance}\n", self.backend(role)));
            for t in targets {
                let state = match role {
                    Role::Write => t.write,
                    Role::Read => t.read,
                };
                let disabled = if state == AdminState::Ready { "" } else { " disabled" };
                c.push_str(&format!("    server {} {} weight 100 maxconn 2000{disabled}\n", t.name, t.addr));
            }
        }
        c
    }

    /// The PID HAProxy reports (`show info`), else the PID file's, when that process runs
    /// this instance's configuration.
    async fn running_pid(&self) -> Option<u32> {
        let from_api = self.command("show info").await.ok().and_then(|i| parse_info(&i).1);
        let from_file = std::fs::read_to_string(self.pid_path()).ok().and_then(|p| p.trim().parse::<u32>().ok());
        let cfg = self.config_suffix();
        [from_api, from_file].into_iter().flatten().find(|pid| runs_config(*pid, &cfg))
    }

    /// `haproxy -f <cfg> -p <pidfile> -D [-sf <old pid>]`, after a configuration check.
    async fn launch(&self, reload_from: Option<u32>) -> Result<u32, ProxyError> {
        let cfg = self.config_path();
        let bin = &self.settings.binary_path;
        let check = tokio::process::Command::new(bin).arg("-c").arg("-q").arg("-f").arg(&cfg).kill_on_drop(true).output();
        match tokio::time::timeout(PROCESS_DEADLINE, check).await {
            Err(_) => return Err(self.process_err(format!("`{bin} -c` did not finish within {PROCESS_DEADLINE:?}"))),
            Ok(Err(e)) => return Err(self.process_err(format!("`{bin}` could not run: {e}"))),
            Ok(Ok(o)) if !o.status.success() => {
                return Err(self.process_err(format!("configuration {} refused: {}", cfg.display(), String::from_utf8_lossy(&o.stderr).trim())))
            }
            Ok(Ok(_)) => {}
        }
        let mut cmd = tokio::process::Command::new(bin);
        cmd.arg("-f").arg(&cfg).arg("-p").arg(self.pid_path()).arg("-D").stdin(std::process::Stdio::null()).kill_on_drop(true);
        if let Some(old) = reload_from {
            cmd.arg("-sf").arg(old.to_string());
        }
        // With -D the command returns once the daemon runs (or failed to bind).
        match tokio::time::timeout(PROCESS_DEADLINE, cmd.output()).await {
            Err(_) => return Err(self.process_err(format!("`{bin} -D` did not return within {PROCESS_DEADLINE:?}"))),
            Ok(Err(e)) => return Err(self.process_err(format!("`{bin}` could not run: {e}"))),
            Ok(Ok(o)) if !o.status.success() => {
                return Err(self.process_err(format!("HAProxy did not start ({}): {}", o.status, String::from_utf8_lossy(&o.stderr).trim())))
            }
            Ok(Ok(_)) => {}
        }
        // The daemon answers on its runtime API once it runs; its PID is in the PID file.
        let deadline = Instant::now() + PROCESS_DEADLINE;
        while Instant::now() < deadline {
            if let Ok(info) = self.command("show info").await {
                if let (_, Some(pid)) = parse_info(&info) {
                    if reload_from != Some(pid) {
                        return Ok(pid);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(self.process_err(format!("HAProxy started but its runtime API {}:{} did not answer", self.host, self.settings.api_port)))
    }

    fn process_err(&self, reason: String) -> ProxyError {
        ProxyError::Process { proxy: self.id.clone(), reason }
    }

    async fn stop_process(&self) -> Result<String, ProxyError> {
        self.local_only("stop")?;
        let Some(pid) = self.running_pid().await else { return Ok(format!("HAProxy {} is not running", self.id)) };
        crate::command::signal(pid, "TERM").await.map_err(|e| self.process_err(e))?;
        let cfg = self.config_suffix();
        let deadline = Instant::now() + STOP_GRACE;
        while runs_config(pid, &cfg) {
            if Instant::now() > deadline {
                crate::command::signal(pid, "KILL").await.map_err(|e| self.process_err(e))?;
                tokio::time::sleep(Duration::from_millis(200)).await;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = std::fs::remove_file(self.pid_path());
        tracing::warn!(proxy = %self.id, cluster = %self.cluster, pid, "HAProxy stopped");
        Ok(format!("HAProxy {} stopped (pid {pid})", self.id))
    }
}

/// True when process `pid` runs HAProxy with a configuration file whose path ends with `cfg`
/// (and is no zombie).
fn runs_config(pid: u32, cfg: &str) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { return false };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')));
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    !zombie && args.iter().any(|a| a.ends_with(cfg.as_bytes()))
}

/// `(version, pid)` from a `show info` answer.
pub fn parse_info(info: &str) -> (String, Option<u32>) {
    let field = |name: &str| info.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
    (field("Version:").unwrap_or_default(), field("Pid:").and_then(|p| p.parse().ok()))
}

/// The servers of a `show stat` answer (CSV with a `# pxname,svname,...` header), frontend,
/// backend and listener lines left out.
pub fn parse_stat(csv: &str) -> Vec<ObservedServer> {
    let mut lines = csv.lines();
    let Some(header) = lines.find(|l| l.starts_with("# ")) else { return Vec::new() };
    let names: Vec<&str> = header.trim_start_matches("# ").split(',').collect();
    let col = |n: &str| names.iter().position(|x| *x == n);
    let (Some(px), Some(sv), Some(status)) = (col("pxname"), col("svname"), col("status")) else { return Vec::new() };
    let (scur, bin, bout, rtime, addr) = (col("scur"), col("bin"), col("bout"), col("rtime"), col("addr"));
    let mut out = Vec::new();
    for l in lines.filter(|l| !l.trim().is_empty() && !l.starts_with('#')) {
        let f: Vec<&str> = l.split(',').collect();
        let get = |i: Option<usize>| i.and_then(|i| f.get(i)).copied().unwrap_or("");
        let num = |i: Option<usize>| get(i).parse::<u64>().unwrap_or(0);
        let name = get(Some(sv));
        if matches!(name, "FRONTEND" | "BACKEND" | "") {
            continue;
        }
        let st = get(Some(status)).to_string();
        let admin = if st.starts_with("MAINT") {
            AdminState::Maint
        } else if st.starts_with("DRAIN") {
            AdminState::Drain
        } else {
            AdminState::Ready
        };
        let (host, port) = match get(addr).rsplit_once(':') {
            Some((h, p)) => (h.trim_start_matches('[').trim_end_matches(']').to_string(), p.parse().unwrap_or(0)),
            None => (String::new(), 0),
        };
        out.push(ObservedServer {
            backend: get(Some(px)).to_string(),
            name: name.to_string(),
            addr: host,
            port,
            admin: Some(AdminStateSeen(admin)),
            status: st,
            connections: num(scur),
            bytes_in: num(bin),
            bytes_out: num(bout),
            latency_ms: num(rtime),
        });
    }
    out
}

impl ProxyDriver for Haproxy {
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "haproxy"
    }

    fn host(&self) -> &str {
        &self.host
    }

    fn is_local(&self) -> bool {
        is_loopback(&self.host)
    }

    fn datadir(&self) -> String {
        self.dir.display().to_string()
    }

    fn observe(&self) -> BoxFuture<'_, Result<Observation, ProxyError>> {
        Box::pin(async move {
            let (version, pid) = parse_info(&self.command("show info").await?);
            let stat = self.command("show stat").await?;
            let servers = parse_stat(&stat)
                .into_iter()
                .filter(|s| s.backend == self.settings.write_backend || s.backend == self.settings.read_backend)
                .collect();
            Ok(Observation { version, pid, servers })
        })
    }

    fn set_state<'a>(&'a self, role: Role, name: &'a str, state: AdminState) -> BoxFuture<'a, Result<(), ProxyError>> {
        Box::pin(async move { self.command_ok(&format!("set server {}/{name} state {}", self.backend(role), state.as_str()), |_| false).await })
    }

    fn set_addr<'a>(&'a self, role: Role, name: &'a str, addr: &'a HostPort) -> BoxFuture<'a, Result<(), ProxyError>> {
        Box::pin(async move {
            let cmd = format!("set server {}/{name} addr {} port {}", self.backend(role), addr.host, addr.port);
            self.command_ok(&cmd, |a| a.contains("changed from") || a.starts_with("no need to change")).await
        })
    }

    fn shutdown_sessions<'a>(&'a self, role: Role, name: &'a str) -> BoxFuture<'a, Result<(), ProxyError>> {
        Box::pin(async move { self.command_ok(&format!("shutdown sessions server {}/{name}", self.backend(role)), |_| false).await })
    }

    fn provision<'a>(&'a self, targets: &'a [Target]) -> BoxFuture<'a, Result<String, ProxyError>> {
        Box::pin(async move {
            self.local_only("provision")?;
            std::fs::create_dir_all(&self.dir).map_err(|e| self.err_io(&format!("creating {}", self.dir.display()), e))?;
            let text = self.render(targets);
            let path = self.config_path();
            crate::files::write_private(&path, text.as_bytes()).map_err(|e| self.err_io(&format!("writing {}", path.display()), format!("{e:#}")))?;
            let old = self.running_pid().await;
            let pid = self.launch(old).await?;
            let what = match old {
                Some(o) => format!("HAProxy {} reloaded with {} (pid {o} -> {pid})", self.id, path.display()),
                None => format!("HAProxy {} started with {} (pid {pid})", self.id, path.display()),
            };
            tracing::warn!(proxy = %self.id, cluster = %self.cluster, "{what}");
            Ok(what)
        })
    }

    fn start(&self) -> BoxFuture<'_, Result<String, ProxyError>> {
        Box::pin(async move {
            self.local_only("start")?;
            if let Some(pid) = self.running_pid().await {
                return Ok(format!("HAProxy {} already runs (pid {pid})", self.id));
            }
            if !self.config_path().exists() {
                return Err(self.process_err("not provisioned: no configuration rendered yet".to_string()));
            }
            let pid = self.launch(None).await?;
            tracing::warn!(proxy = %self.id, cluster = %self.cluster, pid, "HAProxy started");
            Ok(format!("HAProxy {} started (pid {pid})", self.id))
        })
    }

    fn stop(&self) -> BoxFuture<'_, Result<String, ProxyError>> {
        Box::pin(self.stop_process())
    }

    fn unprovision(&self) -> BoxFuture<'_, Result<String, ProxyError>> {
        Box::pin(async move {
            let stopped = self.stop_process().await?;
            if self.dir.starts_with(&self.settings.datadir) && self.dir.exists() {
                std::fs::remove_dir_all(&self.dir).map_err(|e| self.err_io(&format!("removing {}", self.dir.display()), e))?;
            }
            Ok(format!("{stopped}; {} removed", self.dir.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProxySettings {
        let toml = "[c1]\ndb-servers-hosts=\"127.0.0.1:3310\"\nhaproxy=true\nhaproxy-write-port=4000\nhaproxy-api-write-backend=\"w\"\nmonitoring-datadir=\"/tmp/x\"\n";
        crate::config::Config::from_toml_str(toml, std::path::Path::new("t"), &[]).unwrap().clusters.remove(0).proxy
    }

    #[test]
    fn renders_both_backends_with_the_manager_as_health_check() {
        let h = Haproxy::new("c1", "127.0.0.1", &settings());
        assert_eq!(h.id, proxy_id("c1", "127.0.0.1", 4000));
        assert!(h.dir.starts_with("/tmp/x/proxies/c1"));
        let t = |name: &str, port, write, read| Target { name: name.into(), addr: HostPort { host: "127.0.0.1".into(), port }, status: String::new(), write, read };
        let cfg = h.render(&[t("db1", 3310, AdminState::Ready, AdminState::Maint), t("db2", 3311, AdminState::Maint, AdminState::Ready)]);
        assert!(cfg.contains("stats socket ipv4@127.0.0.1:1999 level admin"), "{cfg}");
        assert!(cfg.contains("bind 0.0.0.0:4000\n    default_backend w\n"), "{cfg}");
        assert!(cfg.contains("bind 0.0.0.0:3307\n    default_backend service_read\n"), "{cfg}");
        let write = &cfg[cfg.find("\nbackend w\n").unwrap()..cfg.find("\nbackend service_read\n").unwrap()];
        assert!(write.contains("server db1 127.0.0.1:3310 weight 100 maxconn 2000\n") && write.contains("server db2 127.0.0.1:3311 weight 100 maxconn 2000 disabled\n"), "{write}");
        assert!(!cfg.contains(" check"), "the manager is the health check: {cfg}");
    }

    #[test]
    fn parses_show_stat_and_show_info() {
        let csv = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,status,rtime,addr\n\
                   fw,FRONTEND,,,0,0,10,0,0,0,OPEN,,\n\
                   w,db1,0,0,3,0,,0,10,20,no check,4,127.0.0.1:3310\n\
                   w,db2,0,0,0,0,,0,0,0,MAINT,0,127.0.0.1:3311\n\
                   r,db2,0,0,1,0,,0,0,0,DRAIN,0,127.0.0.1:3311\n\
                   w,BACKEND,0,0,3,0,,0,10,20,UP,0,\n";
        let s = parse_stat(csv);
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].name.as_str(), s[0].admin, s[0].connections, s[0].port), ("db1", Some(AdminStateSeen(AdminState::Ready)), 3, 3310));
        assert_eq!(s[1].admin, Some(AdminStateSeen(AdminState::Maint)));
        assert_eq!((s[2].backend.as_str(), s[2].admin), ("r", Some(AdminStateSeen(AdminState::Drain))));
        assert_eq!(parse_info("Name: HAProxy\nVersion: 2.6.12\nPid: 42\n"), ("2.6.12".to_string(), Some(42)));
        assert!(parse_stat("garbage").is_empty());
    }
}
