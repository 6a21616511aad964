//! `/metrics` and `/api/prometheus`: the node's metrics in the Prometheus text format (version
//! 0.0.4, encoded by `prometheus-client`): manager (active, raft term, leader, leader contact),
//! servers (state, lag, threads, semi-sync, read_only, GTID sequences, probe latency),
//! master changes and alerts by outcome, and the API (requests by route template and code,
//! latency). `/api/prometheus` keeps the Go project's per-server names for its users.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use replication_manager_api::wire::ServerInfoView;
use replication_manager_raft::GroupStatus;

use crate::actions::server_info::{read_info, InfoKind, InfoRequest, StatusCache};
use crate::cluster::counters::{ClusterCounters, ServerLabels};
use crate::cluster::state::{ClusterState, SharedCluster};
use crate::cluster::topology::ServerState;
use crate::config::{Credential, HostPort};

/// The prefix of every metric name.
pub const PREFIX: &str = "replication_manager";

/// `route` (template), `method`, `code`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    code: String,
}

/// `route` (template), `method`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

/// `cluster`, `server`, `state`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    cluster: String,
    server: String,
    state: String,
}

/// `cluster`, `server`, `domain`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DomainLabels {
    cluster: String,
    server: String,
    domain: String,
}

/// API latency buckets, seconds: 0.5 ms to about 16 s.
fn api_buckets() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The node's metrics: the cluster counters plus the API's own.
#[derive(Debug)]
pub struct NodeMetrics {
    pub counters: Arc<ClusterCounters>,
    api_requests: Family<RequestLabels, Counter>,
    api_seconds: Family<RouteLabels, Histogram, fn() -> Histogram>,
}

impl NodeMetrics {
    pub fn new(counters: Arc<ClusterCounters>) -> NodeMetrics {
        NodeMetrics { counters, api_requests: Family::default(), api_seconds: Family::new_with_constructor(api_buckets) }
    }

    /// Counts one answered API request.
    pub fn record_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        let (route, method) = (route.to_string(), method.to_string());
        self.api_requests.get_or_create(&RequestLabels { route: route.clone(), method: method.clone(), code: status.to_string() }).inc();
        self.api_seconds.get_or_create(&RouteLabels { route, method }).observe(seconds);
    }

    /// The text exposition of every metric, from the clusters' state now and `group`.
    pub fn encode(&self, clusters: &BTreeMap<String, Arc<SharedCluster>>, group: &GroupStatus) -> String {
        let mut reg = Registry::with_prefix(PREFIX);
        let gauge = |v: i64| {
            let g: Gauge = Gauge::default();
            g.set(v);
            g
        };
        reg.register("active", "1 when this node is the raft leader with a fresh quorum acknowledgement (status A), else 0", gauge(i64::from(group.active)));
        reg.register("raft_term", "Current raft term seen by this node", gauge(i64::try_from(group.term).unwrap_or(i64::MAX)));
        reg.register(
            "raft_leader_id",
            "Node id of the raft leader this node knows (0: none)",
            gauge(group.leader.map_or(0, |l| i64::try_from(l).unwrap_or(i64::MAX))),
        );
        let contact = if group.leader == Some(group.node_id) {
            Some(0.0)
        } else {
            group.millis_since_leader_contact.map(|ms| ms as f64 / 1000.0)
        };
        if let Some(secs) = contact {
            let g = FloatGauge::default();
            g.set(secs);
            reg.register(
                "leader_contact_age_seconds",
                "Seconds since this node last heard from the raft leader (0 on the leader; absent before any contact)",
                g,
            );
        }
        let c = &self.counters;
        reg.register("failovers", "Failovers that ended on this node, by outcome (done, refused, vetoed, failed)", c.failovers.clone());
        reg.register("switchovers", "Switchovers that ended on this node, by outcome (done, refused, vetoed, failed)", c.switchovers.clone());
        reg.register("alerts", "Alerts raised by this node (active leader), by event", c.alerts.clone());
        reg.register("alert_deliveries", "Alert and hook deliveries, by channel and outcome (sent, failed)", c.deliveries.clone());
        reg.register("alerts_dropped", "Alerts dropped because the delivery queue was full", c.alerts_dropped.clone());
        reg.register("server_probe_duration_seconds", "Duration of one monitoring probe of a server", c.probe_seconds.clone());
        reg.register("monitor_tick_lateness_seconds", "How late a cluster monitor's tick started after its scheduled time", c.tick_lateness.clone());
        ServerGauges::of(clusters).register(&mut reg);
        reg.register("api_requests", "API requests answered, by route template, method and status code", self.api_requests.clone());
        reg.register("api_request_duration_seconds", "API request latency, by route template and method", self.api_seconds.clone());
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &reg) {
            tracing::error!(error = %e, "encoding the metrics");
        }
        out
    }
}

/// The per-server gauges, filled from the clusters' state at scrape time.
#[derive(Default)]
struct ServerGauges {
    state: Family<StateLabels, Gauge>,
    lag: Family<ServerLabels, Gauge>,
    io_running: Family<ServerLabels, Gauge>,
    sql_running: Family<ServerLabels, Gauge>,
    semisync_status: Family<ServerLabels, Gauge>,
    semisync_clients: Family<ServerLabels, Gauge>,
    read_only: Family<ServerLabels, Gauge>,
    gtid: Family<DomainLabels, Gauge>,
    failover_counter: Family<crate::cluster::counters::ClusterLabel, Gauge>,
}

impl ServerGauges {
    fn of(clusters: &BTreeMap<String, Arc<SharedCluster>>) -> ServerGauges {
        let g = ServerGauges::default();
        for (name, shared) in clusters {
            g.add_cluster(name, &shared.read());
        }
        g
    }

    fn add_cluster(&self, name: &str, st: &ClusterState) {
        let set = |f: &Family<ServerLabels, Gauge>, server: &str, v: i64| {
            f.get_or_create(&ServerLabels { cluster: name.to_string(), server: server.to_string() }).set(v);
        };
        self.failover_counter
            .get_or_create(&crate::cluster::counters::ClusterLabel { cluster: name.to_string() })
            .set(i64::try_from(st.failover_counter).unwrap_or(i64::MAX));
        let source = &st.config.replication_source_name;
        for s in &st.servers {
            let server = s.addr.to_string();
            for state in ServerState::ALL {
                let labels = StateLabels { cluster: name.to_string(), server: server.clone(), state: state.as_str().to_string() };
                self.state.get_or_create(&labels).set(i64::from(s.state == state));
            }
            let Some(snap) = s.snapshot.as_ref().filter(|_| s.is_up()) else { continue };
            set(&self.read_only, &server, i64::from(snap.read_only));
            set(&self.semisync_status, &server, i64::from(snap.semi_sync_master_status));
            set(&self.semisync_clients, &server, i64::try_from(snap.semi_sync_master_clients).unwrap_or(i64::MAX));
            if let Some(r) = snap.managed_replication(source) {
                set(&self.io_running, &server, i64::from(r.io_running.eq_ignore_ascii_case("yes")));
                set(&self.sql_running, &server, i64::from(r.sql_running.eq_ignore_ascii_case("yes")));
                if let Some(lag) = r.seconds_behind_master {
                    set(&self.lag, &server, i64::try_from(lag).unwrap_or(i64::MAX));
                }
            }
            let mut per_domain: BTreeMap<u32, u64> = BTreeMap::new();
            for g in snap.gtid_current_pos.gtids() {
                let e = per_domain.entry(g.domain_id).or_default();
                *e = (*e).max(g.seq_no);
            }
            for (domain, seq) in per_domain {
                let labels = DomainLabels { cluster: name.to_string(), server: server.clone(), domain: domain.to_string() };
                self.gtid.get_or_create(&labels).set(i64::try_from(seq).unwrap_or(i64::MAX));
            }
        }
    }

    fn register(self, reg: &mut Registry) {
        reg.register("server_state", "1 for the state the server is in, 0 for the others (one series per state)", self.state);
        reg.register("server_replication_lag_seconds", "Seconds_Behind_Master of the managed replication (absent when unknown)", self.lag);
        reg.register("server_io_thread_running", "1 when the replica's IO thread runs", self.io_running);
        reg.register("server_sql_thread_running", "1 when the replica's SQL thread runs", self.sql_running);
        reg.register("server_semisync_master_status", "1 when semi-sync is active on the server as a master (Rpl_semi_sync_master_status)", self.semisync_status);
        reg.register("server_semisync_master_clients", "Semi-sync replicas connected (Rpl_semi_sync_master_clients)", self.semisync_clients);
        reg.register("server_read_only", "1 when the server is read_only", self.read_only);
        reg.register("server_gtid_sequence", "Sequence number of gtid_current_pos, per replication domain", self.gtid);
        reg.register("cluster_failovers_since_reset", "The cluster's replicated failover counter (reset by reset-failover-control)", self.failover_counter);
    }
}

/// A server `/api/prometheus` reads.
pub struct LegacyTarget {
    pub addr: HostPort,
    pub cred: Credential,
    pub timeout: Duration,
    pub is_replica: bool,
    pub source: String,
    pub snapshot: Option<crate::db::probe::ServerSnapshot>,
}

/// The Go project's `instance` label value: the name with characters Graphite dislikes replaced.
fn instance(addr: &HostPort) -> String {
    addr.to_string().chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect()
}

/// `/api/prometheus`: for each reachable server, `mysql_global_status_<name>` and
/// `mysql_global_variables_<name>` for every numeric value, and the `mysql_slave_status_*`
/// lines of a replica, with the Go project's names (its `instance` label is the server's
/// `host:port` here, unique per server, where the Go project put the host name).
pub async fn legacy_prometheus(targets: Vec<LegacyTarget>, cache: &StatusCache) -> String {
    let reads = targets.into_iter().map(|t| async move {
        let name = t.addr.to_string();
        let req = InfoRequest { addr: &t.addr, cred: &t.cred, timeout: t.timeout, limit: 10_000, server_name: &name };
        let mut out = String::new();
        let inst = instance(&t.addr);
        if let (true, Some(snap)) = (t.is_replica, t.snapshot.as_ref()) {
            if let Some(r) = snap.managed_replication(&t.source) {
                let yes = |v: &str| u8::from(v.eq_ignore_ascii_case("yes"));
                out.push_str(&format!("mysql_slave_status_seconds_behind_master{{instance=\"{inst}\"}} {}\n", r.seconds_behind_master.unwrap_or(0)));
                out.push_str(&format!("mysql_slave_status_exec_master_log_pos{{instance=\"{inst}\"}} {}\n", number_or_zero(&r.exec_master_log_pos)));
                out.push_str(&format!("mysql_slave_status_read_master_log_pos{{instance=\"{inst}\"}} {}\n", number_or_zero(&r.read_master_log_pos)));
                out.push_str(&format!("mysql_slave_status_slave_sql_running{{instance=\"{inst}\"}} {}\n", yes(&r.sql_running)));
                out.push_str(&format!("mysql_slave_status_slave_io_running{{instance=\"{inst}\"}} {}\n", yes(&r.io_running)));
                out.push_str(&format!("mysql_slave_status_last_errno{{instance=\"{inst}\"}} {}\n", r.last_sql_errno));
            }
        }
        for (kind, prefix) in [(InfoKind::Status, "mysql_global_status_"), (InfoKind::Variables, "mysql_global_variables_")] {
            match tokio::time::timeout(t.timeout * 2, read_info(kind, &req, cache)).await {
                Ok(Ok(ServerInfoView::Variables(vars))) => {
                    for v in vars {
                        if v.value.trim().parse::<f64>().is_ok_and(f64::is_finite) {
                            out.push_str(&format!("{prefix}{}{{instance=\"{inst}\"}} {}\n", v.variable_name.to_ascii_lowercase(), v.value.trim()));
                        }
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::debug!(server = %t.addr, error = ?e, "/api/prometheus read"),
                Err(_) => tracing::debug!(server = %t.addr, "/api/prometheus read timed out"),
            }
        }
        out
    });
    futures::future::join_all(reads).await.concat()
}

fn number_or_zero(v: &str) -> String {
    let v = v.trim();
    if v.parse::<u64>().is_ok() { v.to_string() } else { "0".to_string() }
}

/// The servers of `st` that `/api/prometheus` reads (reachable ones).
pub fn legacy_targets(st: &ClusterState) -> Vec<LegacyTarget> {
    let source = st.config.replication_source_name.clone();
    st.servers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_up() && !s.state.is_down())
        .map(|(i, s)| LegacyTarget {
            addr: s.addr.clone(),
            cred: st.config.db_credential.clone(),
            timeout: st.config.connect_timeout.max(Duration::from_secs(1)),
            is_replica: Some(i) != st.master,
            source: source.clone(),
            snapshot: s.snapshot.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_help_and_type_lines_and_cluster_labels() {
        let toml = "[c1]\ndb-servers-hosts = \"127.0.0.1:3310,127.0.0.1:3311\"\n";
        let cfg = crate::config::Config::from_toml_str(toml, std::path::Path::new("t.toml"), &[]).unwrap().clusters.remove(0);
        let mut clusters = BTreeMap::new();
        clusters.insert("c1".to_string(), SharedCluster::new(ClusterState::new(cfg)));
        let m = NodeMetrics::new(Arc::new(ClusterCounters::default()));
        m.counters.operation("c1", crate::cluster::events::ChangeKind::Failover, crate::cluster::events::Outcome::Vetoed);
        m.record_request("/api/clusters/{cluster}", "GET", 200, 0.002);
        let status = GroupStatus {
            node_id: 1,
            state: "Leader".into(),
            term: 3,
            leader: Some(1),
            leader_info: None,
            active: true,
            lost_quorum: false,
            split_brain: false,
            millis_since_quorum_ack: Some(10),
            millis_since_leader_contact: None,
            peer_ack_ms: Default::default(),
            last_applied: Some(5),
            members: Vec::new(),
        };
        let text = m.encode(&clusters, &status);
        for line in [
            "# TYPE replication_manager_active gauge",
            "replication_manager_active 1",
            "replication_manager_raft_term 3",
            "replication_manager_leader_contact_age_seconds 0.0",
            "# TYPE replication_manager_failovers_total counter",
            "replication_manager_failovers_total{cluster=\"c1\",outcome=\"vetoed\"} 1",
            "replication_manager_server_state{cluster=\"c1\",server=\"127.0.0.1:3310\",state=\"Unconnected\"} 1",
            "replication_manager_server_state{cluster=\"c1\",server=\"127.0.0.1:3310\",state=\"Master\"} 0",
            "replication_manager_api_requests_total{route=\"/api/clusters/{cluster}\",method=\"GET\",code=\"200\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "missing `{line}` in\n{text}");
        }
        assert!(text.contains("# HELP replication_manager_server_state "), "{text}");
        assert!(!text.contains("# EOF"), "Prometheus text format, not OpenMetrics");
    }
}
