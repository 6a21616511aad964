//! The simulated farm's state: which port is which server of which cluster, each port's mode
//! (up, frozen, killed), replica lag, and the GTID clock of each cluster's master. A
//! [`ServerView`] is what one server shows at one instant; the answers are built from it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::watch;

/// GTID events a running master writes per second (one every 100 ms).
pub const EVENTS_PER_SECOND: u64 = 10;
/// Sequence number every master starts from: a replica can lag this many events behind a
/// fresh master (a day at 10 per second) without its position going below 1.
pub const FIRST_SEQ: u64 = 1_000_000;
/// `Slave_heartbeat_period` every replica reports (seconds).
pub const HEARTBEAT_PERIOD_SECS: u64 = 5;

/// What a port does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortMode {
    /// Listening and answering.
    Up,
    /// Accepting connections but never answering (existing sessions stall mid-statement).
    Frozen,
    /// Listener and every connection closed: connects are refused.
    Down,
}

/// How ports map to clusters: cluster `c`'s server `s` listens on `base_port + c*K + s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub clusters: u16,
    pub servers_per_cluster: u16,
    pub base_port: u16,
}

/// The layout does not fit in the port range.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error("at least one cluster and one server per cluster are needed")]
    Empty,
    #[error("{clusters} clusters x {per_cluster} servers from port {base} go past port 65535")]
    PastLastPort { clusters: u16, per_cluster: u16, base: u16 },
    #[error("base port 0 is not a port")]
    PortZero,
}

impl Layout {
    /// Checks that every port of the layout exists.
    pub fn new(clusters: u16, servers_per_cluster: u16, base_port: u16) -> Result<Layout, LayoutError> {
        if clusters == 0 || servers_per_cluster == 0 {
            return Err(LayoutError::Empty);
        }
        if base_port == 0 {
            return Err(LayoutError::PortZero);
        }
        let last = u32::from(base_port) + u32::from(clusters) * u32::from(servers_per_cluster) - 1;
        if last > u32::from(u16::MAX) {
            return Err(LayoutError::PastLastPort { clusters, per_cluster: servers_per_cluster, base: base_port });
        }
        Ok(Layout { clusters, servers_per_cluster, base_port })
    }

    /// Number of servers.
    pub fn len(&self) -> usize {
        usize::from(self.clusters) * usize::from(self.servers_per_cluster)
    }

    /// The last port (inclusive).
    pub fn last_port(&self) -> u16 {
        // Checked by `new`: the sum fits.
        self.base_port.saturating_add(u16::try_from(self.len() - 1).unwrap_or(u16::MAX))
    }

    /// Server index (0-based over the farm) of `port`, if the port belongs to the farm.
    pub fn index_of(&self, port: u16) -> Option<usize> {
        let i = usize::from(port.checked_sub(self.base_port)?);
        (i < self.len()).then_some(i)
    }

    /// The port of the server with farm index `i`.
    pub fn port_of(&self, i: usize) -> u16 {
        self.base_port.saturating_add(u16::try_from(i).unwrap_or(u16::MAX))
    }
}

/// A master's GTID sequence: advances [`EVENTS_PER_SECOND`] while the master is up and
/// answering, stands still while it is frozen or killed.
#[derive(Debug, Clone, Copy)]
pub struct GtidClock {
    seq_at_stop: u64,
    running_since: Option<Instant>,
}

impl GtidClock {
    /// A running clock starting at [`FIRST_SEQ`] at `now`.
    pub fn started(now: Instant) -> GtidClock {
        GtidClock { seq_at_stop: FIRST_SEQ, running_since: Some(now) }
    }

    /// The sequence number at `now`.
    pub fn seq(&self, now: Instant) -> u64 {
        match self.running_since {
            Some(t) => {
                let ms = u64::try_from(now.saturating_duration_since(t).as_millis()).unwrap_or(u64::MAX);
                self.seq_at_stop.saturating_add(ms / (1000 / EVENTS_PER_SECOND))
            }
            None => self.seq_at_stop,
        }
    }

    /// Runs or stops the clock at `now` (idempotent).
    pub fn set_running(&mut self, running: bool, now: Instant) {
        match (running, self.running_since) {
            (true, None) => self.running_since = Some(now),
            (false, Some(_)) => {
                self.seq_at_stop = self.seq(now);
                self.running_since = None;
            }
            _ => {}
        }
    }
}

/// One simulated server.
pub struct SimServer {
    pub port: u16,
    pub cluster: u16,
    /// 0 for the cluster's master.
    pub index: u16,
    pub server_id: u32,
    /// The port of this cluster's master (its own port for the master).
    pub master_port: u16,
    /// Farm index of the master.
    pub master_index: usize,
    pub mode: watch::Sender<PortMode>,
    /// The listener is bound now (it follows `mode` a moment later).
    pub listening: AtomicBool,
    /// Replication lag in seconds (replicas only).
    pub lag_secs: AtomicU64,
    /// Sessions open now.
    pub connections: AtomicU64,
    /// Statements answered since the start.
    pub queries: AtomicU64,
}

impl SimServer {
    /// True for the cluster's master.
    pub fn is_master(&self) -> bool {
        self.index == 0
    }

    /// The current mode.
    pub fn mode(&self) -> PortMode {
        *self.mode.borrow()
    }
}

/// Replication as a replica shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaView {
    pub master_port: u16,
    pub master_server_id: u32,
    /// The master answers: IO thread `Yes`; else `Connecting` with error 2003.
    pub io_connected: bool,
    /// What the IO thread received: everything the master wrote.
    pub received_seq: u64,
    /// Seconds behind while the IO thread runs (applied = received - lag).
    pub lag_secs: u64,
    pub heartbeats: u64,
}

/// Everything one server shows at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerView {
    pub port: u16,
    pub server_id: u32,
    pub hostname: String,
    pub read_only: bool,
    /// `0-<origin server_id>-<seq>`.
    pub gtid_binlog_pos: String,
    pub gtid_current_pos: String,
    /// Empty on a master that never replicated.
    pub gtid_slave_pos: String,
    pub seq: u64,
    pub uptime_secs: u64,
    pub threads_connected: u64,
    pub queries: u64,
    pub replication: Option<ReplicaView>,
    /// Replicas connected to this master whose IO thread runs.
    pub dump_threads: u64,
}

/// The whole farm.
pub struct Farm {
    pub layout: Layout,
    pub servers: Vec<Arc<SimServer>>,
    /// One clock per cluster (its master's).
    clocks: Vec<Mutex<GtidClock>>,
    started: Instant,
}

impl Farm {
    /// Every server up, every clock running from `now`.
    pub fn new(layout: Layout, now: Instant) -> Farm {
        let k = usize::from(layout.servers_per_cluster);
        let servers = (0..layout.len())
            .map(|i| {
                let port = layout.port_of(i);
                let master_index = i - i % k;
                Arc::new(SimServer {
                    port,
                    cluster: u16::try_from(i / k).unwrap_or(u16::MAX),
                    index: u16::try_from(i % k).unwrap_or(u16::MAX),
                    server_id: u32::from(port),
                    master_port: layout.port_of(master_index),
                    master_index,
                    mode: watch::Sender::new(PortMode::Up),
                    listening: AtomicBool::new(false),
                    lag_secs: AtomicU64::new(0),
                    connections: AtomicU64::new(0),
                    queries: AtomicU64::new(0),
                })
            })
            .collect();
        let clocks = (0..layout.clusters).map(|_| Mutex::new(GtidClock::started(now))).collect();
        Farm { layout, servers, clocks, started: now }
    }

    /// The server listening on `port`.
    pub fn server(&self, port: u16) -> Option<&Arc<SimServer>> {
        self.servers.get(self.layout.index_of(port)?)
    }

    /// Changes a port's mode; a master's clock runs only while it is up.
    pub fn set_mode(&self, server: &SimServer, mode: PortMode, now: Instant) {
        if server.is_master() {
            self.with_clock(server.cluster, |c| c.set_running(mode == PortMode::Up, now));
        }
        server.mode.send_replace(mode);
    }

    fn with_clock<T>(&self, cluster: u16, f: impl FnOnce(&mut GtidClock) -> T) -> Option<T> {
        let m = self.clocks.get(usize::from(cluster))?;
        // A poisoned lock only means another thread panicked mid-update of two plain fields.
        let mut guard = m.lock().unwrap_or_else(|p| p.into_inner());
        Some(f(&mut guard))
    }

    /// What `server` shows at `now`.
    pub fn view(&self, server: &SimServer, now: Instant) -> ServerView {
        let master_seq = self.with_clock(server.cluster, |c| c.seq(now)).unwrap_or(FIRST_SEQ);
        let uptime_secs = now.saturating_duration_since(self.started).as_secs();
        let master = self.servers.get(server.master_index);
        let master_sid = master.map_or(server.server_id, |m| m.server_id);
        let (seq, replication, dump_threads) = if server.is_master() {
            let replicas = self
                .servers
                .iter()
                .skip(server.master_index + 1)
                .take(usize::from(self.layout.servers_per_cluster) - 1)
                .filter(|r| r.mode() != PortMode::Down)
                .count();
            (master_seq, None, u64::try_from(replicas).unwrap_or(0))
        } else {
            let lag_secs = server.lag_secs.load(Ordering::Relaxed);
            let io_connected = master.is_some_and(|m| m.mode() != PortMode::Down);
            // Cut off from its master, the applier catches up with what it received.
            let behind = if io_connected { lag_secs.saturating_mul(EVENTS_PER_SECOND) } else { 0 };
            let seq = master_seq.saturating_sub(behind).max(1);
            let view = ReplicaView {
                master_port: server.master_port,
                master_server_id: master_sid,
                io_connected,
                received_seq: master_seq,
                lag_secs,
                heartbeats: uptime_secs / HEARTBEAT_PERIOD_SECS,
            };
            (seq, Some(view), 0)
        };
        let pos = format!("0-{master_sid}-{seq}");
        ServerView {
            port: server.port,
            server_id: server.server_id,
            hostname: format!("farm-{}", server.port),
            read_only: !server.is_master(),
            gtid_binlog_pos: pos.clone(),
            gtid_current_pos: pos.clone(),
            gtid_slave_pos: if server.is_master() { String::new() } else { pos },
            seq,
            uptime_secs,
            threads_connected: server.connections.load(Ordering::Relaxed),
            queries: server.queries.load(Ordering::Relaxed),
            replication,
            dump_threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn layout_bounds() {
        assert!(Layout::new(0, 5, 1000).is_err());
        assert!(Layout::new(1, 1, 65535).is_ok());
        assert!(Layout::new(1, 2, 65535).is_err());
        let l = Layout::new(400, 5, 20000).map_err(|e| e.to_string());
        assert_eq!(l.map(|l| (l.len(), l.last_port())), Ok((2000, 21999)));
    }

    #[test]
    fn clock_stops_and_resumes() {
        let t0 = Instant::now();
        let mut c = GtidClock::started(t0);
        assert_eq!(c.seq(t0 + Duration::from_millis(1050)), FIRST_SEQ + 10);
        c.set_running(false, t0 + Duration::from_secs(2));
        assert_eq!(c.seq(t0 + Duration::from_secs(60)), FIRST_SEQ + 20);
        c.set_running(true, t0 + Duration::from_secs(60));
        c.set_running(true, t0 + Duration::from_secs(61));
        assert_eq!(c.seq(t0 + Duration::from_secs(61)), FIRST_SEQ + 30);
    }

    #[test]
    fn views_of_master_and_replicas() {
        let t0 = Instant::now();
        let layout = Layout::new(2, 3, 5000).map_err(|e| e.to_string());
        let Ok(layout) = layout else { panic!("layout") };
        let farm = Farm::new(layout, t0);
        let now = t0 + Duration::from_secs(10);
        let Some(master) = farm.server(5003) else { panic!("no 5003") };
        let Some(replica) = farm.server(5005) else { panic!("no 5005") };
        replica.lag_secs.store(3, Ordering::Relaxed);
        let m = farm.view(master, now);
        assert_eq!((m.read_only, m.gtid_binlog_pos.as_str(), m.gtid_slave_pos.as_str(), m.dump_threads), (false, format!("0-5003-{}", FIRST_SEQ + 100).as_str(), "", 2));
        let r = farm.view(replica, now);
        assert_eq!((r.read_only, r.gtid_slave_pos.clone()), (true, format!("0-5003-{}", FIRST_SEQ + 70)));
        assert_eq!(r.replication.as_ref().map(|v| (v.master_port, v.io_connected)), Some((5003, true)));

        farm.set_mode(master, PortMode::Down, now);
        let r = farm.view(replica, now + Duration::from_secs(5));
        assert_eq!(r.replication.map(|v| v.io_connected), Some(false));
        assert_eq!(r.seq, FIRST_SEQ + 100, "the clock stopped with the master, the applier caught up");
        assert_eq!(farm.view(farm.servers[0].as_ref(), now).seq, FIRST_SEQ + 100, "other clusters run on");
    }
}
