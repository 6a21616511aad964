//! `ProxySettings`: the managed proxies of one cluster (HAProxy so far), read with the Go
//! project's key names and defaults (`haproxy`, `haproxy-servers`, `haproxy-write-port`, ...).

use std::path::PathBuf;

use super::{ConfigError, Section};

/// How the manager changes a running HAProxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HaproxyMode {
    /// Through the runtime API on the stats socket (`set server ... state`, `set server ... addr`).
    RuntimeApi,
}

/// The proxy settings of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct ProxySettings {
    /// `haproxy` (default false): drive HAProxy for this cluster.
    pub haproxy: bool,
    /// `haproxy-servers` (default `127.0.0.1`): hosts of the HAProxy instances, comma-separated.
    /// A loopback host is run by the manager itself (configuration rendered, process started);
    /// another host is only driven through its runtime API.
    pub haproxy_hosts: Vec<String>,
    /// `haproxy-write-port` (default 3306): the port applications write through (the master).
    pub write_port: u16,
    /// `haproxy-read-port` (default 3307): the port load-balancing reads over the replicas.
    pub read_port: u16,
    /// `haproxy-stat-port` (default 1988): HTTP statistics page.
    pub stat_port: u16,
    /// `haproxy-api-port` (default 1999): the runtime API (stats socket, admin level) on TCP.
    pub api_port: u16,
    /// `haproxy-mode` (default `runtimeapi`).
    pub mode: HaproxyMode,
    /// `haproxy-binary-path` (default `/usr/sbin/haproxy`).
    pub binary_path: String,
    /// `haproxy-ip-write-bind` / `haproxy-ip-read-bind` (default `0.0.0.0`).
    pub write_bind: String,
    pub read_bind: String,
    /// `haproxy-api-write-backend` / `haproxy-api-read-backend` (default `service_write` /
    /// `service_read`): the backend names.
    pub write_backend: String,
    pub read_backend: String,
    /// `proxy-servers-read-on-master` (default false): the master also serves reads.
    pub read_on_master: bool,
    /// `monitoring-datadir`: the local instances live under `<datadir>/proxies/<cluster>/`.
    pub datadir: PathBuf,
}

fn port(s: &Section<'_>, key: &str) -> Result<u16, ConfigError> {
    let v = s.uint(key)?;
    u16::try_from(v).ok().filter(|p| *p > 0).ok_or_else(|| s.invalid(key, "expected a TCP port (1 to 65535)"))
}

fn backend_name(s: &Section<'_>, key: &str) -> Result<String, ConfigError> {
    let v = s.str(key)?.trim().to_string();
    let ok = !v.is_empty() && v.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'));
    if ok {
        Ok(v)
    } else {
        Err(s.invalid(key, "expected a backend name (letters, digits, '_', '-', '.', ':')"))
    }
}

fn bind_address(s: &Section<'_>, key: &str) -> Result<String, ConfigError> {
    let v = s.str(key)?.trim().to_string();
    if v.is_empty() || v.contains(char::is_whitespace) {
        return Err(s.invalid(key, "expected an IP address to bind"));
    }
    Ok(v)
}

impl ProxySettings {
    pub(crate) fn from_section(s: &Section<'_>) -> Result<ProxySettings, ConfigError> {
        let mode = match s.str("haproxy-mode")?.trim() {
            "runtimeapi" => HaproxyMode::RuntimeApi,
            other => {
                return Err(s.invalid(
                    "haproxy-mode",
                    format!("`{other}` is not supported: only runtimeapi (live changes through the runtime API) is implemented"),
                ))
            }
        };
        let haproxy_hosts: Vec<String> = s.str("haproxy-servers")?.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_string).collect();
        let haproxy = s.bool("haproxy")?;
        if haproxy && haproxy_hosts.is_empty() {
            return Err(s.invalid("haproxy-servers", "haproxy is on but no HAProxy host is listed"));
        }
        let p = ProxySettings {
            haproxy,
            haproxy_hosts,
            write_port: port(s, "haproxy-write-port")?,
            read_port: port(s, "haproxy-read-port")?,
            stat_port: port(s, "haproxy-stat-port")?,
            api_port: port(s, "haproxy-api-port")?,
            mode,
            binary_path: s.str("haproxy-binary-path")?.trim().to_string(),
            write_bind: bind_address(s, "haproxy-ip-write-bind")?,
            read_bind: bind_address(s, "haproxy-ip-read-bind")?,
            write_backend: backend_name(s, "haproxy-api-write-backend")?,
            read_backend: backend_name(s, "haproxy-api-read-backend")?,
            read_on_master: s.bool("proxy-servers-read-on-master")?,
            datadir: PathBuf::from(s.str("monitoring-datadir")?),
        };
        if p.write_backend == p.read_backend {
            return Err(s.invalid("haproxy-api-read-backend", "the read and write backends need different names"));
        }
        let ports = [p.write_port, p.read_port, p.stat_port, p.api_port];
        if haproxy && (1..ports.len()).any(|i| ports[..i].contains(&ports[i])) {
            return Err(s.invalid("haproxy-write-port", "haproxy-write-port, -read-port, -stat-port and -api-port must differ"));
        }
        Ok(p)
    }

    /// True when the cluster has a managed proxy.
    pub fn enabled(&self) -> bool {
        self.haproxy && !self.haproxy_hosts.is_empty()
    }
}
