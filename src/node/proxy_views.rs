//! Proxy objects for the API (`topology/proxies`, the Go project's shape) and the role checks of
//! HTTP-checking balancers (`primary`, `replica?lag=N`, `read-only`).

use replication_manager_api::proxy_wire::{ProxyBackendView, ProxyProcessView, ProxyView};
use replication_manager_api::{Health, RoleCheck};

use crate::cluster::state::ClusterState;
use crate::cluster::topology::ServerState;
use crate::failover::proxies::proxy_targets;
use crate::proxy::ObservedServer;

/// Every proxy of the cluster as this node last observed it.
pub fn proxy_views(st: &ClusterState) -> Vec<ProxyView> {
    let set = &st.proxies;
    let (write_backend, read_backend) = set.backends();
    let targets = proxy_targets(st, set.traffic_stopped());
    let p = &st.config.proxy;
    set.reports()
        .into_iter()
        .map(|r| {
            let backends = |backend: &str| -> Vec<ProxyBackendView> {
                let Some(obs) = &r.status.observed else { return Vec::new() };
                obs.servers
                    .iter()
                    .filter(|s| s.backend == backend)
                    .map(|s: &ObservedServer| {
                        let target = targets.iter().find(|t| t.name == s.name);
                        ProxyBackendView {
                            host: target.map_or_else(|| s.addr.clone(), |t| t.addr.host.clone()),
                            port: target.map_or(s.port, |t| t.addr.port).to_string(),
                            status: target.map_or_else(String::new, |t| t.status.clone()),
                            prx_name: s.name.clone(),
                            prx_status: s.status.clone(),
                            prx_connections: s.connections.to_string(),
                            prx_hostgroup: s.backend.clone(),
                            prx_byte_out: s.bytes_out.to_string(),
                            prx_byte_in: s.bytes_in.to_string(),
                            prx_latency: s.latency_ms.to_string(),
                            prx_maintenance: s.status.starts_with("MAINT"),
                        }
                    })
                    .collect()
            };
            ProxyView {
                id: r.id.clone(),
                name: r.host.clone(),
                kind: r.kind.to_string(),
                host: r.host.clone(),
                port: p.api_port.to_string(),
                write_port: p.write_port,
                read_port: p.read_port,
                backends_write: backends(&write_backend),
                backends_read: backends(&read_backend),
                version: r.status.observed.as_ref().map_or_else(String::new, |o| o.version.clone()),
                datadir: r.datadir.clone(),
                state: if r.status.state.is_empty() { "Unconnected".to_string() } else { r.status.state.clone() },
                prev_state: r.status.prev_state.clone(),
                fail_count: r.status.fail_count,
                process: r.status.observed.as_ref().and_then(|o| o.pid).map(|pid| ProxyProcessView { pid }),
                service_name: format!("{}/svc/{}", st.config.name, r.host),
                weight: "100".to_string(),
                last_error: r.status.last_error.clone().or_else(|| r.status.fence_error.clone()).unwrap_or_default(),
                traffic_stopped: set.traffic_stopped(),
                ..Default::default()
            }
        })
        .collect()
}

/// The answer to a role check about server `i`. Every node answers the same: the group's
/// master, seen healthy by this node's probes.
pub fn role_health(st: &ClusterState, i: usize, check: RoleCheck) -> Health {
    let s = &st.servers[i];
    let Some(snap) = s.snapshot.as_ref().filter(|_| s.is_up() && !s.maintenance && !s.state.is_down()) else { return Health::NotValid };
    let replicating = || snap.managed_replication(&st.config.replication_source_name).filter(|r| r.is_running());
    let valid = match check {
        RoleCheck::Primary => return super::health_of(st, i, replication_manager_api::HealthCheck::Master),
        RoleCheck::Replica { max_lag: None } => s.state == ServerState::Slave && replicating().is_some(),
        RoleCheck::Replica { max_lag: Some(n) } => {
            matches!(s.state, ServerState::Slave | ServerState::SlaveLate)
                && replicating().and_then(|r| r.seconds_behind_master).is_some_and(|lag| lag <= n)
        }
        RoleCheck::ReadOnly => snap.read_only,
    };
    if valid { Health::Valid } else { Health::NotValid }
}
