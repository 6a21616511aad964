//! `ClusterCounters`: the counters and histograms this manager node keeps about its clusters
//! (failovers and switchovers by outcome, probe latency, alerts raised and delivered). The
//! monitor and the alert dispatcher record into them; the node exposes them on `/metrics`.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::cluster::events::{ChangeKind, Outcome};

/// `cluster`, `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub cluster: String,
    pub outcome: String,
}

/// `cluster`, `server` (`host:port`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ServerLabels {
    pub cluster: String,
    pub server: String,
}

/// `cluster`, `event` (`server_state`, `problem`, `failover`, `switchover`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub cluster: String,
    pub event: String,
}

/// `cluster`, `channel` (`mail`, `webhook`, `alert-script`, ...), `outcome` (`sent`, `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    pub cluster: String,
    pub channel: String,
    pub outcome: String,
}

/// `cluster`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClusterLabel {
    pub cluster: String,
}

/// Probe latency buckets, seconds: 1 ms to about 16 s.
fn probe_buckets() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.001, 2.0, 15))
}

/// The node's counters (one set for every cluster; each series names its cluster).
#[derive(Debug, Clone)]
pub struct ClusterCounters {
    pub failovers: Family<OutcomeLabels, Counter>,
    pub switchovers: Family<OutcomeLabels, Counter>,
    pub probe_seconds: Family<ServerLabels, Histogram, fn() -> Histogram>,
    /// How late each monitor tick started after its scheduled time (the loop's own delay).
    pub tick_lateness: Family<ClusterLabel, Histogram, fn() -> Histogram>,
    pub alerts: Family<AlertLabels, Counter>,
    pub deliveries: Family<DeliveryLabels, Counter>,
    pub alerts_dropped: Family<ClusterLabel, Counter>,
}

impl Default for ClusterCounters {
    fn default() -> Self {
        ClusterCounters {
            failovers: Family::default(),
            switchovers: Family::default(),
            probe_seconds: Family::new_with_constructor(probe_buckets),
            tick_lateness: Family::new_with_constructor(probe_buckets),
            alerts: Family::default(),
            deliveries: Family::default(),
            alerts_dropped: Family::default(),
        }
    }
}

impl ClusterCounters {
    /// Counts one ended failover or switchover.
    pub fn operation(&self, cluster: &str, kind: ChangeKind, outcome: Outcome) {
        let labels = OutcomeLabels { cluster: cluster.to_string(), outcome: outcome.as_str().to_string() };
        match kind {
            ChangeKind::Failover => self.failovers.get_or_create(&labels).inc(),
            ChangeKind::Switchover => self.switchovers.get_or_create(&labels).inc(),
        };
    }

    /// Records how long one probe of `server` took.
    pub fn probe(&self, cluster: &str, server: &str, took: Duration) {
        let labels = ServerLabels { cluster: cluster.to_string(), server: server.to_string() };
        self.probe_seconds.get_or_create(&labels).observe(took.as_secs_f64());
    }

    /// Records how late one tick of `cluster`'s monitor started.
    pub fn tick_late(&self, cluster: &str, late: Duration) {
        self.tick_lateness.get_or_create(&ClusterLabel { cluster: cluster.to_string() }).observe(late.as_secs_f64());
    }

    /// Counts one alert raised.
    pub fn alert(&self, cluster: &str, event: &str) {
        self.alerts.get_or_create(&AlertLabels { cluster: cluster.to_string(), event: event.to_string() }).inc();
    }

    /// Counts one delivery attempt of an alert on `channel`.
    pub fn delivery(&self, cluster: &str, channel: &str, sent: bool) {
        let outcome = if sent { "sent" } else { "failed" }.to_string();
        self.deliveries.get_or_create(&DeliveryLabels { cluster: cluster.to_string(), channel: channel.to_string(), outcome }).inc();
    }

    /// Counts an alert dropped because the delivery queue was full.
    pub fn dropped(&self, cluster: &str) {
        self.alerts_dropped.get_or_create(&ClusterLabel { cluster: cluster.to_string() }).inc();
    }
}
