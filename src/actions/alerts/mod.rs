//! Alert delivery: the monitor offers each cluster event to the [`AlertQueue`] (never
//! blocking: a full queue drops the alert and counts it); the [`AlertDispatcher`] task sends
//! each alert to its channels (mail, the JSON/Slack webhook, `alert-script`) and runs the
//! hooks that are not on the failover path (`failover-post-script`,
//! `db-servers-state-change-script`), every delivery with its own deadline. Every alert goes
//! to the cluster log and to the `alerts` counter.

mod mail;
mod webhook;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::cluster::counters::ClusterCounters;
use crate::cluster::events::{ClusterEvent, Outcome};
use crate::cluster::log::Level;
use crate::cluster::state::SharedCluster;
use crate::cluster::topology::ServerState;
use crate::command::run_command;
use crate::config::HookConfig;
use crate::failover::hooks::{hook_args, script_command};

/// Alerts waiting for delivery at most; beyond it new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 256;
/// Deadline of one mail or webhook delivery.
pub const SEND_DEADLINE: Duration = Duration::from_secs(10);
/// Deadline of `alert-script`, `failover-post-script` and `db-servers-state-change-script`.
pub const SCRIPT_DEADLINE: Duration = Duration::from_secs(30);

/// One unit of delivery work: an event of a cluster and what to do with it.
struct AlertJob {
    shared: Arc<SharedCluster>,
    cluster: String,
    hooks: HookConfig,
    event: ClusterEvent,
    /// Send it to the alert channels (mail, webhook, `alert-script`).
    alert: bool,
}

/// The sending side, cloned into every monitor.
#[derive(Clone)]
pub struct AlertQueue {
    tx: mpsc::Sender<AlertJob>,
    counters: Arc<ClusterCounters>,
}

/// The task that delivers queued alerts.
pub struct AlertDispatcher {
    rx: mpsc::Receiver<AlertJob>,
    counters: Arc<ClusterCounters>,
    /// This manager's host name, named in every alert.
    monitor: String,
    http: reqwest::Client,
}

/// Creates the queue and its dispatcher (run it with [`AlertDispatcher::run`]).
pub fn channel(counters: Arc<ClusterCounters>, monitor: String) -> (AlertQueue, AlertDispatcher) {
    let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
    let http = reqwest::Client::builder().no_proxy().connect_timeout(Duration::from_secs(3)).timeout(SEND_DEADLINE).build().unwrap_or_default();
    (AlertQueue { tx, counters: counters.clone() }, AlertDispatcher { rx, counters, monitor, http })
}

/// Whether `event` alerts under `hooks`: a server state change (but to `Suspect`, as the Go
/// project, and the first state found for a server: a manager that starts or takes the lead
/// does not alert every server), a master change, or a problem listed in
/// `monitoring-alert-trigger`.
pub fn alerts(hooks: &HookConfig, event: &ClusterEvent) -> bool {
    match event {
        ClusterEvent::ServerState { from, to, .. } => *to != ServerState::Suspect && *from != ServerState::Unconnected,
        ClusterEvent::Problem { code, .. } => hooks.triggers(code),
        ClusterEvent::MasterChange { .. } => true,
    }
}

/// The alert channels `hooks` configures.
pub fn channels(hooks: &HookConfig) -> Vec<&'static str> {
    let mut v = Vec::new();
    if !hooks.mail_to.is_empty() {
        v.push("mail");
    }
    if !hooks.slack_url.is_empty() {
        v.push("webhook");
    }
    if !hooks.alert_script.is_empty() {
        v.push("alert-script");
    }
    v
}

/// The hook scripts (not alert channels) `event` runs under `hooks`.
fn hook_scripts(hooks: &HookConfig, event: &ClusterEvent) -> bool {
    match event {
        ClusterEvent::ServerState { .. } => !hooks.state_change_script.is_empty(),
        ClusterEvent::MasterChange { outcome: Outcome::Done, .. } => !hooks.post_script.is_empty(),
        _ => false,
    }
}

impl AlertQueue {
    /// Takes the events of `shared` (the active leader: call it only there). Never waits:
    /// an alert that does not fit in the queue is dropped, logged and counted.
    pub fn offer(&self, shared: &Arc<SharedCluster>, events: Vec<ClusterEvent>) {
        if events.is_empty() {
            return;
        }
        let (cluster, hooks) = {
            let st = shared.read();
            (st.config.name.clone(), st.config.hooks.clone())
        };
        let channels = channels(&hooks);
        for event in events {
            let alert = alerts(&hooks, &event);
            if alert {
                self.counters.alert(&cluster, event.label());
            }
            let deliver = alert && !channels.is_empty();
            if !deliver && !hook_scripts(&hooks, &event) {
                continue;
            }
            if deliver {
                let msg = format!("Alert to {}: {}", channels.join(", "), event.summary());
                shared.write().log(Level::Info, "alert", &msg);
            }
            let job = AlertJob { shared: shared.clone(), cluster: cluster.clone(), hooks: hooks.clone(), event, alert: deliver };
            if let Err(e) = self.tx.try_send(job) {
                self.counters.dropped(&cluster);
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => "the alert queue is full",
                    mpsc::error::TrySendError::Closed(_) => "the alert dispatcher stopped",
                };
                shared.write().log(Level::Warn, "alert", &format!("Alert dropped: {why}"));
            }
        }
    }
}

impl AlertDispatcher {
    /// Delivers alerts until `stop` turns true or every queue sender is gone. One alert at a
    /// time; its deliveries run together, each bounded by its deadline.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            let job = tokio::select! {
                j = self.rx.recv() => match j {
                    Some(j) => j,
                    None => break,
                },
                _ = stop.changed() => break,
            };
            self.deliver(job).await;
            if *stop.borrow() {
                break;
            }
        }
    }

    async fn deliver(&self, job: AlertJob) {
        let mut work: Vec<(&'static str, futures::future::BoxFuture<'_, Result<(), String>>)> = Vec::new();
        let h = &job.hooks;
        if job.alert {
            if !h.mail_to.is_empty() {
                let (subject, body) = mail::text(&job.cluster, &self.monitor, &job.event);
                work.push(("mail", Box::pin(mail::send(h, subject, body))));
            }
            if !h.slack_url.is_empty() {
                let payload = webhook::payload(h, &job.cluster, &self.monitor, &job.event);
                work.push(("webhook", Box::pin(webhook::post(&self.http, &h.slack_url, payload))));
            }
            if !h.alert_script.is_empty() {
                let command = script_command(&h.alert_script, &alert_script_args(&job.cluster, &job.event));
                work.push(("alert-script", Box::pin(script(command))));
            }
        }
        match &job.event {
            ClusterEvent::ServerState { server, from, to } if !h.state_change_script.is_empty() => {
                let args = [job.cluster.clone(), server.host.clone(), server.port.to_string(), to.to_string(), from.to_string()];
                work.push(("db-servers-state-change-script", Box::pin(script(script_command(&h.state_change_script, &args)))));
            }
            ClusterEvent::MasterChange { kind, outcome: Outcome::Done, old_master: Some(old), new_master: Some(new), .. } if !h.post_script.is_empty() => {
                work.push(("failover-post-script", Box::pin(script(script_command(&h.post_script, &hook_args(old, new, *kind))))));
            }
            _ => {}
        }
        let (names, futures): (Vec<&str>, Vec<_>) = work.into_iter().unzip();
        let results = futures::future::join_all(futures).await;
        for (name, r) in names.into_iter().zip(results) {
            self.counters.delivery(&job.cluster, name, r.is_ok());
            match r {
                Ok(()) => tracing::info!(cluster = %job.cluster, channel = name, event = job.event.label(), "alert delivered"),
                Err(e) => {
                    let msg = format!("Alert delivery to {name} failed: {e}");
                    job.shared.write().log(Level::Warn, "alert", &msg);
                }
            }
        }
    }
}

/// `alert-script` arguments, in the Go project's order: cluster, server, previous state,
/// state. A problem has no server or previous state (empty) and its description as state; a
/// master change names the old master and says what happened.
pub fn alert_script_args(cluster: &str, event: &ClusterEvent) -> Vec<String> {
    match event {
        ClusterEvent::ServerState { server, from, to } => vec![cluster.to_string(), server.to_string(), from.to_string(), to.to_string()],
        ClusterEvent::Problem { server, .. } => vec![cluster.to_string(), server.clone().unwrap_or_default(), String::new(), event.summary()],
        ClusterEvent::MasterChange { old_master, .. } => {
            vec![cluster.to_string(), old_master.as_ref().map(|m| m.to_string()).unwrap_or_default(), String::new(), event.summary()]
        }
    }
}

async fn script(command: String) -> Result<(), String> {
    run_command(&command, SCRIPT_DEADLINE).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, HostPort};

    fn hooks(extra: &str) -> HookConfig {
        let toml = format!("[c1]\ndb-servers-hosts = \"a\"\n{extra}");
        Config::from_toml_str(&toml, std::path::Path::new("t.toml"), &[]).unwrap().clusters.remove(0).hooks
    }

    #[test]
    fn which_events_alert() {
        let h = hooks("");
        let server = HostPort { host: "127.0.0.1".into(), port: 3310 };
        let state = |to| ClusterEvent::ServerState { server: server.clone(), from: ServerState::Master, to };
        assert!(alerts(&h, &state(ServerState::Failed)));
        assert!(!alerts(&h, &state(ServerState::Suspect)), "Suspect does not alert (the Go project's rule)");
        let found = ClusterEvent::ServerState { server: server.clone(), from: ServerState::Unconnected, to: ServerState::Slave };
        assert!(!alerts(&h, &found), "the first state found does not alert");
        let problem = |code| ClusterEvent::Problem { code, desc: "d".into(), server: None, resolved: false };
        assert!(alerts(&h, &problem("ERR00042")), "in the default monitoring-alert-trigger");
        assert!(!alerts(&h, &problem("ERR00012")));
        assert!(alerts(&hooks("monitoring-alert-trigger = \"ERR00012\""), &problem("ERR00012")));
        assert!(channels(&h).is_empty());
        let h = hooks("mail-to = \"ops@example.com\"\nalert-slack-url = \"http://127.0.0.1:9/hook\"\nalert-script = \"/bin/true\"");
        assert_eq!(channels(&h), vec!["mail", "webhook", "alert-script"]);
        let args = alert_script_args("c1", &state(ServerState::Failed));
        assert_eq!(args, vec!["c1", "127.0.0.1:3310", "Master", "Failed"]);
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_instead_of_waiting() {
        let counters = Arc::new(ClusterCounters::default());
        let (queue, _dispatcher) = channel(counters.clone(), "m".into());
        let toml = "[c1]\ndb-servers-hosts = \"a\"\nalert-script = \"/bin/true\"\n";
        let cfg = Config::from_toml_str(toml, std::path::Path::new("t.toml"), &[]).unwrap().clusters.remove(0);
        let shared = SharedCluster::new(crate::cluster::state::ClusterState::new(cfg));
        let server = HostPort { host: "a".into(), port: 3306 };
        let events: Vec<ClusterEvent> = (0..QUEUE_CAPACITY + 5)
            .map(|_| ClusterEvent::ServerState { server: server.clone(), from: ServerState::Slave, to: ServerState::Failed })
            .collect();
        queue.offer(&shared, events);
        let dropped = counters.alerts_dropped.get_or_create(&crate::cluster::counters::ClusterLabel { cluster: "c1".into() }).get();
        assert_eq!(dropped, 5);
        let raised = counters.alerts.get_or_create(&crate::cluster::counters::AlertLabels { cluster: "c1".into(), event: "server_state".into() }).get();
        assert_eq!(raised, (QUEUE_CAPACITY + 5) as u64);
    }
}
