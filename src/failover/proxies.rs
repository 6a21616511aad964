//! Traffic follows the master: what each proxy backend should hold, computed from the cluster
//! state ([`proxy_targets`], pure), and the executor's proxy steps: the write-backend fence of
//! a master change ([`FailoverExecutor::proxies_write_out`] before the promotion,
//! [`FailoverExecutor::proxies_write_in`] after it), the reconciliation of every leader tick
//! (drift repaired, a local proxy that does not answer provisioned), traffic start/stop and the
//! proxy actions. Every proxy mutation is preceded by the leadership check the executor uses
//! before a database mutation.

use crate::cluster::log::Level;
use crate::cluster::state::ClusterState;
use crate::cluster::topology::ServerState;
use crate::failover::error::{ErrorKind, FailoverError, OpResult};
use crate::failover::executor::FailoverExecutor;
use crate::failover::plan::with_proxy_failures;
use crate::proxy::{self, AdminState, Change, ProxyDriver, ProxyError, Role, Target};
use replication_manager_api::ProxyAction;

/// What every proxy backend should hold now: the write backend exactly the intended master
/// (nothing while traffic is stopped); the read backend the healthy replicas (`ready`), a
/// lagging one drained, a broken, unreachable or maintenance one in `maint`, and the master
/// only with `proxy-servers-read-on-master`.
pub fn proxy_targets(st: &ClusterState, traffic_stopped: bool) -> Vec<Target> {
    let master = st.intent_index().or(st.master);
    st.servers
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let is_master = master == Some(i);
            let write = if is_master && !traffic_stopped { AdminState::Ready } else { AdminState::Maint };
            let read = if s.maintenance || !s.is_up() {
                AdminState::Maint
            } else if is_master {
                if st.config.proxy.read_on_master && s.state == ServerState::Master { AdminState::Ready } else { AdminState::Maint }
            } else {
                match s.state {
                    ServerState::Slave => AdminState::Ready,
                    ServerState::SlaveLate => AdminState::Drain,
                    _ => AdminState::Maint,
                }
            };
            Target { name: s.id.clone(), addr: s.addr.clone(), status: s.state.to_string(), write, read }
        })
        .collect()
}

fn failed(e: &ProxyError) -> FailoverError {
    let kind = match e {
        ProxyError::NotLocal { .. } => ErrorKind::NotAvailable,
        _ => ErrorKind::Failed,
    };
    FailoverError::new(kind, e.to_string())
}

impl FailoverExecutor<'_> {
    fn proxy_set(&self) -> std::sync::Arc<proxy::ProxySet> {
        self.shared.read().proxies.clone()
    }

    /// A leadership check, then `change` on proxy `d`; the step names what is done.
    async fn proxy_mutate<T>(
        &self,
        d: &dyn ProxyDriver,
        step: &str,
        change: impl std::future::Future<Output = Result<T, ProxyError>>,
    ) -> Result<T, FailoverError> {
        let (term, _) = self.coord.epoch();
        self.coord.check(step).await.map_err(|e| FailoverError::from(e).at_step(step, term))?;
        tracing::info!(proxy = d.id(), step, term, "executing on proxy");
        change.await.map_err(|e| failed(&e).at_step(step, term))
    }

    /// Sets server `i`'s state in the write backend of every proxy (its sessions cut when it
    /// leaves). Returns the failures (also logged, and alerted until the proxy is in line).
    async fn proxies_write(&self, i: usize, state: AdminState) -> Vec<String> {
        let set = self.proxy_set();
        let (name, addr) = {
            let st = self.shared.read();
            (st.servers[i].id.clone(), st.servers[i].addr.clone())
        };
        let _turn = set.turn().await;
        let mut failures = Vec::new();
        for d in set.drivers() {
            let step = format!("{addr} {} the write backend of proxy {}", if state == AdminState::Ready { "enters" } else { "leaves" }, d.id());
            let mut r = self.proxy_mutate(d.as_ref(), &step, d.set_state(Role::Write, &name, state)).await;
            if r.is_ok() && state == AdminState::Maint {
                r = self.proxy_mutate(d.as_ref(), &step, d.shutdown_sessions(Role::Write, &name)).await;
            }
            match r {
                Ok(()) => self.log(Level::Info, &format!("Proxy {}: {addr} {} the write backend ({})", d.id(), if state == AdminState::Ready { "entered" } else { "left" }, state.as_str())),
                Err(e) => {
                    let msg = format!("proxy {}: {}", d.id(), e.message);
                    self.log(Level::Error, &format!("Proxy update failed: {msg}"));
                    set.record_fence_error(d.id(), &msg);
                    failures.push(msg);
                }
            }
        }
        failures
    }

    /// The old master `i` leaves the write backend of every proxy (before the promotion).
    pub(crate) async fn proxies_write_out(&self, i: usize) -> Vec<String> {
        self.proxies_write(i, AdminState::Maint).await
    }

    /// The new master `i` enters the write backend of every proxy (after the promotion).
    pub(crate) async fn proxies_write_in(&self, i: usize) -> Vec<String> {
        self.proxies_write(i, AdminState::Ready).await
    }

    /// Reads every proxy's state for the API (every node; no change).
    pub async fn observe_proxies(&self) {
        let set = self.proxy_set();
        set.configure(&self.shared.read().config.proxy);
        for d in set.drivers() {
            let seen = d.observe().await;
            set.record(d.id(), seen.as_ref().map(Clone::clone));
        }
        self.shared.write().publish_problems();
    }

    /// The leader's reconciliation: every proxy observed, and brought in line with the
    /// topology (drift repaired); a local proxy that does not answer is provisioned unless an
    /// operator stopped it. Nothing while a master change runs (it moves the proxies itself).
    pub async fn reconcile_proxies(&self) {
        let set = self.proxy_set();
        set.configure(&self.shared.read().config.proxy);
        if set.is_empty() {
            return;
        }
        let _turn = set.turn().await;
        let (write_backend, read_backend) = set.backends();
        for d in set.drivers() {
            let seen = d.observe().await;
            set.record(d.id(), seen.as_ref().map(Clone::clone));
            let (targets, busy) = {
                let st = self.shared.read();
                (proxy_targets(&st, set.traffic_stopped()), st.in_failover)
            };
            if busy {
                break;
            }
            let obs = match seen {
                Ok(o) => o,
                Err(e) => {
                    if d.is_local() && !set.status(d.id()).held_stopped {
                        self.log(Level::Warn, &format!("Proxy {} does not answer ({e}): provisioning it", d.id()));
                        self.provision_proxy(d.as_ref(), &targets).await;
                    }
                    continue;
                }
            };
            let todo = proxy::changes(&targets, &obs, &write_backend, &read_backend);
            if todo.is_empty() {
                set.clear_fence_error(d.id());
            }
            for c in todo {
                // A master change may have started meanwhile: it owns the proxies then.
                if self.shared.read().in_failover {
                    break;
                }
                match c {
                    Change::State { role, name, state } => {
                        let addr = targets.iter().find(|t| t.name == name).map_or_else(String::new, |t| format!("{} ({})", t.addr, t.status));
                        let before = obs.server(if role == Role::Write { &write_backend } else { &read_backend }, &name).map_or_else(String::new, |s| s.status.clone());
                        let step = format!("proxy {} {:?} backend {name}", d.id(), role);
                        match self.proxy_mutate(d.as_ref(), &step, d.set_state(role, &name, state)).await {
                            Ok(()) => self.log(Level::Info, &format!("Proxy {}: {addr} in the {} backend {before} -> {}", d.id(), if role == Role::Write { "write" } else { "read" }, state.as_str())),
                            Err(e) => self.log(Level::Error, &format!("Proxy {}: could not set {name} {}: {}", d.id(), state.as_str(), e.message)),
                        }
                    }
                    Change::Addr { role, name, addr } => {
                        let step = format!("proxy {} {:?} backend {name} address", d.id(), role);
                        match self.proxy_mutate(d.as_ref(), &step, d.set_addr(role, &name, &addr)).await {
                            Ok(()) => self.log(Level::Info, &format!("Proxy {}: {name} now at {addr}", d.id())),
                            Err(e) => self.log(Level::Error, &format!("Proxy {}: could not move {name} to {addr}: {}", d.id(), e.message)),
                        }
                    }
                    Change::Reprovision { missing } => {
                        if d.is_local() {
                            self.log(Level::Warn, &format!("Proxy {} lacks {}: rendering its configuration again", d.id(), missing.join(", ")));
                            self.provision_proxy(d.as_ref(), &targets).await;
                        } else {
                            let e = ProxyError::Process { proxy: d.id().to_string(), reason: format!("lacks servers {}: add them to its configuration", missing.join(", ")) };
                            set.record_error(d.id(), &e);
                        }
                    }
                }
            }
        }
        self.shared.write().publish_problems();
    }

    async fn provision_proxy(&self, d: &dyn ProxyDriver, targets: &[Target]) {
        let step = format!("provision proxy {}", d.id());
        match self.proxy_mutate(d, &step, d.provision(targets)).await {
            Ok(what) => {
                self.log(Level::Warn, &format!("Proxy {what}"));
                let seen = d.observe().await;
                self.proxy_set().record(d.id(), seen.as_ref().map(Clone::clone));
            }
            Err(e) => {
                self.log(Level::Error, &format!("Proxy {} could not be provisioned: {}", d.id(), e.message));
                self.proxy_set().record_error(d.id(), &ProxyError::Process { proxy: d.id().to_string(), reason: e.message });
            }
        }
    }

    /// `actions/stop-traffic` (`stop`: the write backend of every proxy in maintenance) and
    /// `actions/start-traffic` (the master back in it).
    pub async fn set_traffic(&self, stop: bool) -> OpResult {
        let set = self.proxy_set();
        if set.is_empty() {
            return Err(FailoverError::new(ErrorKind::NotAvailable, "No proxy is configured for this cluster (haproxy = false): traffic cannot be switched"));
        }
        let master = {
            let st = self.shared.read();
            st.intent_index().or(st.master)
        };
        set.set_traffic_stopped(stop);
        let failures = match (stop, master) {
            (true, _) => {
                let n = self.shared.read().servers.len();
                let mut f = Vec::new();
                for i in 0..n {
                    f.extend(self.proxies_write(i, AdminState::Maint).await);
                }
                f
            }
            (false, Some(m)) => self.proxies_write_in(m).await,
            (false, None) => return Err(FailoverError::new(ErrorKind::Conflict, "No master known: traffic stays stopped until there is one")),
        };
        let what = if stop { "stopped: the write backend holds no server" } else { "started: the master is back in the write backend" };
        self.log(Level::Warn, &format!("Traffic {what}"));
        if failures.is_empty() {
            Ok(format!("Traffic {what}"))
        } else {
            Err(FailoverError::new(ErrorKind::Failed, with_proxy_failures(format!("Traffic {what}"), &failures)))
        }
    }

    /// `proxies/{proxy}/actions/{start,stop,provision,unprovision}` on a local proxy.
    pub async fn proxy_action(&self, name: &str, action: ProxyAction) -> OpResult {
        let set = self.proxy_set();
        let Some(d) = set.find(name) else {
            return Err(FailoverError::new(ErrorKind::NotFound, format!("Unknown proxy: {name}")));
        };
        let targets = proxy_targets(&self.shared.read(), set.traffic_stopped());
        let step = format!("{action:?} proxy {}", d.id());
        let _turn = set.turn().await;
        let r = match action {
            ProxyAction::Provision => self.proxy_mutate(d.as_ref(), &step, d.provision(&targets)).await,
            ProxyAction::Start => self.proxy_mutate(d.as_ref(), &step, d.start()).await,
            ProxyAction::Stop => self.proxy_mutate(d.as_ref(), &step, d.stop()).await,
            ProxyAction::Unprovision => self.proxy_mutate(d.as_ref(), &step, d.unprovision()).await,
        };
        if r.is_ok() {
            set.hold_stopped(d.id(), matches!(action, ProxyAction::Stop | ProxyAction::Unprovision));
        }
        match &r {
            Ok(m) => self.log(Level::Warn, &format!("Proxy action {action:?}: {m}")),
            Err(e) => self.log(Level::Error, &format!("Proxy action {action:?} on {} failed: {}", d.id(), e.message)),
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::db::probe::ServerSnapshot;

    fn cluster(extra: &str, states: &[ServerState]) -> ClusterState {
        let hosts: Vec<String> = (0..states.len()).map(|i| format!("127.0.0.1:{}", 3310 + i)).collect();
        let toml = format!("[c1]\ndb-servers-hosts = \"{}\"\nhaproxy = true\n{extra}\n", hosts.join(","));
        let cfg = Config::from_toml_str(&toml, std::path::Path::new("t.toml"), &[]).unwrap().clusters.remove(0);
        let mut st = ClusterState::new(cfg);
        for (s, state) in st.servers.iter_mut().zip(states) {
            s.state = *state;
            if !state.is_down() {
                s.snapshot = Some(ServerSnapshot::for_tests());
            } else {
                s.last_error = Some("down".into());
            }
        }
        st.master = Some(0);
        st
    }

    #[test]
    fn write_backend_holds_the_master_and_read_backend_the_healthy_replicas() {
        use AdminState::*;
        use ServerState::*;
        let st = cluster("", &[Master, Slave, SlaveLate, SlaveErr, Failed]);
        let t = proxy_targets(&st, false);
        let got: Vec<(AdminState, AdminState)> = t.iter().map(|t| (t.write, t.read)).collect();
        assert_eq!(got, vec![(Ready, Maint), (Maint, Ready), (Maint, Drain), (Maint, Maint), (Maint, Maint)]);
        // Traffic stopped: the write backend is empty.
        assert!(proxy_targets(&st, true).iter().all(|t| t.write == Maint));
        // The master serves reads when configured; a replica in maintenance does not.
        let mut st = cluster("proxy-servers-read-on-master = true", &[Master, Slave]);
        st.servers[1].maintenance = true;
        let got: Vec<(AdminState, AdminState)> = proxy_targets(&st, false).iter().map(|t| (t.write, t.read)).collect();
        assert_eq!(got, vec![(Ready, Ready), (Maint, Maint)]);
        // The group's decided master outranks the probed one.
        let mut st = cluster("", &[Slave, Master]);
        st.intent = Some(st.servers[1].addr.clone());
        assert_eq!(proxy_targets(&st, false).iter().map(|t| t.write).collect::<Vec<_>>(), vec![Maint, Ready]);
        assert_eq!(with_proxy_failures("done".into(), &[]), "done");
        assert_eq!(with_proxy_failures("done".into(), &["px1: down".into()]), "done; proxy update failed: px1: down");
    }
}
