//! The proxy object of `topology/proxies`, in the Go project's shape (field names and string
//! values as it serializes them).

use serde::Serialize;

/// One server of a proxy backend (`backendsWrite[]`, `backendsRead[]`); strings as the Go
/// project serializes them.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProxyBackendView {
    pub host: String,
    pub port: String,
    /// The manager's state of the server (`Master`, `Slave`, `SlaveLate`, ...).
    pub status: String,
    /// The server's name in the proxy (the manager's server id).
    pub prx_name: String,
    /// The proxy's status of the server (`UP`, `MAINT`, `DRAIN`, ...).
    pub prx_status: String,
    pub prx_connections: String,
    /// The backend it is in.
    pub prx_hostgroup: String,
    pub prx_byte_out: String,
    pub prx_byte_in: String,
    pub prx_latency: String,
    pub prx_maintenance: bool,
}

/// The process of a local proxy (`process`), as Go's `os.Process` shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProxyProcessView {
    #[serde(rename = "Pid")]
    pub pid: u32,
}

/// The proxy object (`/topology/proxies`).
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProxyView {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub host: String,
    #[serde(rename = "hostIPV6")]
    pub host_ipv6: String,
    /// The runtime API port.
    pub port: String,
    pub tunnel_port: String,
    pub tunnel_write_port: String,
    pub tunnel: bool,
    pub write_port: u16,
    pub read_port: u16,
    pub read_write_port: u16,
    pub reader_host_group: u16,
    pub writer_host_group: u16,
    pub backends_write: Vec<ProxyBackendView>,
    pub backends_read: Vec<ProxyBackendView>,
    pub version: String,
    pub internal_proxy: Option<()>,
    pub shard_proxy: Option<()>,
    pub datadir: String,
    pub query_rules: Vec<String>,
    /// `ProxyRunning`, `Failed` (its API does not answer), `Stopped` (stopped by an operator).
    pub state: String,
    pub prev_state: String,
    pub fail_count: u32,
    pub slapos_datadir: String,
    pub process: Option<ProxyProcessView>,
    pub service_name: String,
    pub agent: String,
    pub weight: String,
    /// The last error talking to the proxy (this manager's addition), `""` when none.
    pub last_error: String,
    /// `actions/stop-traffic` is in force (this manager's addition).
    pub traffic_stopped: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_object_has_the_go_field_names() {
        let v = serde_json::to_value(ProxyView { kind: "haproxy".into(), ..Default::default() }).unwrap();
        for k in ["id", "name", "type", "host", "hostIPV6", "port", "writePort", "readPort", "backendsWrite", "backendsRead", "state", "prevState", "failCount", "process"] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
        let b = serde_json::to_value(ProxyBackendView::default()).unwrap();
        for k in ["host", "port", "status", "prxName", "prxStatus", "prxConnections", "prxHostgroup", "prxByteOut", "prxByteIn", "prxLatency", "prxMaintenance"] {
            assert!(b.get(k).is_some(), "{k} missing in {b}");
        }
    }
}
