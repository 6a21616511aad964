//! The operator's hooks on master changes: `failover-pre-script`, a gate run on the leader
//! before a failover or switchover changes anything (unlike the Go project, a non-zero exit or
//! passing its deadline VETOES the operation), and the record of how each master change ended
//! (an event for the alert dispatcher, which runs `failover-post-script` off the failover path).

use std::time::{Duration, Instant};

use crate::cluster::events::{ChangeKind, ClusterEvent, Outcome};
use crate::cluster::log::Level;
use crate::command::{run_command, shell_word};
use crate::config::HostPort;
use crate::failover::error::{ErrorKind, FailoverError, OpResult};
use crate::failover::executor::FailoverExecutor;
use crate::failover::AUTOMATIC;

/// The alert code of a master change vetoed by `failover-pre-script`.
pub const VETO_CODE: &str = "ERR00120";

/// An automatic failover that does not succeed is retried every tick: its veto or failure is
/// alerted (and counted) at most once per this window.
pub const AUTOMATIC_REPEAT_WINDOW: Duration = Duration::from_secs(60);

/// The arguments of `failover-pre-script` and `failover-post-script`, in the Go project's
/// order: old master host, new master host, old port, new port, old and new MaxScale server
/// names (always empty: no MaxScale here), then `failover` or `switchover`.
pub fn hook_args(old: &HostPort, new: &HostPort, kind: ChangeKind) -> Vec<String> {
    vec![
        old.host.clone(),
        new.host.clone(),
        old.port.to_string(),
        new.port.to_string(),
        String::new(),
        String::new(),
        kind.as_str().to_string(),
    ]
}

/// `script` followed by `args`, each quoted as one shell word.
pub fn script_command(script: &str, args: &[String]) -> String {
    let mut command = script.trim().to_string();
    for a in args {
        command.push(' ');
        command.push_str(&shell_word(a));
    }
    command
}

/// How an operation's result reads as an [`Outcome`].
pub fn outcome_of(result: &OpResult) -> Outcome {
    match result {
        Ok(_) => Outcome::Done,
        Err(e) if e.message.starts_with(VETO_CODE) => Outcome::Vetoed,
        Err(e) if matches!(e.kind, ErrorKind::Conflict | ErrorKind::BadRequest) => Outcome::Refused,
        Err(_) => Outcome::Failed,
    }
}

impl FailoverExecutor<'_> {
    /// Failover: promote the most up-to-date replica of the master (dead or alive); how it
    /// ended is recorded for alerts and metrics.
    pub async fn failover(&self, trigger: &str) -> OpResult {
        let result = self.failover_steps(trigger).await;
        self.record_outcome(ChangeKind::Failover, trigger, &result);
        result
    }

    /// Switchover to `prefmaster` or the best candidate; how it ended is recorded for alerts
    /// and metrics.
    pub async fn switchover(&self, prefmaster: Option<&str>, trigger: &str) -> OpResult {
        let result = self.switchover_steps(prefmaster, trigger).await;
        self.record_outcome(ChangeKind::Switchover, trigger, &result);
        result
    }

    /// Runs `failover-pre-script` with [`hook_args`] after a fresh leadership check (only the
    /// active leader decides a master change). A non-zero exit, a failure to start or its
    /// deadline (`failover-pre-script-timeout`) vetoes the operation: the error starts with
    /// [`VETO_CODE`] and carries the script's output.
    pub(crate) async fn run_pre_script(&self, kind: ChangeKind, old: &HostPort, new: &HostPort) -> Result<(), FailoverError> {
        let hooks = self.shared.read().config.hooks.clone();
        let (term, _) = self.coord.epoch();
        self.coord.check("failover-pre-script").await.map_err(|e| FailoverError::from(e).at_step("failover-pre-script", term))?;
        let command = script_command(&hooks.pre_script, &hook_args(old, new, kind));
        let started = Instant::now();
        match run_command(&command, hooks.pre_script_timeout).await {
            Ok(out) => {
                let msg = format!("failover-pre-script accepted the {} of {old} to {new} in {} ms: {out}", kind.as_str(), started.elapsed().as_millis());
                self.log(Level::Info, &msg);
                Ok(())
            }
            Err(why) => {
                let msg = format!("{VETO_CODE}: {} of {old} to {new} vetoed by failover-pre-script: {why}", kind.as_str());
                self.log(Level::Error, &msg);
                Err(FailoverError::new(ErrorKind::Conflict, msg))
            }
        }
    }

    /// Puts a [`ClusterEvent::MasterChange`] in the cluster's outbox for `result`. Refusals of
    /// automatic failovers are not events (the gate and the problems say why, every tick), and
    /// an automatic veto or failure repeats at most once per [`AUTOMATIC_REPEAT_WINDOW`].
    fn record_outcome(&self, kind: ChangeKind, trigger: &str, result: &OpResult) {
        let outcome = outcome_of(result);
        let mut st = self.shared.write();
        if trigger == AUTOMATIC {
            match outcome {
                Outcome::Refused => return,
                Outcome::Done => st.auto_outcome_alerted = None,
                _ => {
                    let now = Instant::now();
                    if st.auto_outcome_alerted.is_some_and(|(o, at)| o == outcome && now.duration_since(at) < AUTOMATIC_REPEAT_WINDOW) {
                        return;
                    }
                    st.auto_outcome_alerted = Some((outcome, now));
                }
            }
        }
        let (old_master, new_master, message) = match result {
            Ok(msg) => {
                let last = st.crashes.last();
                (last.and_then(|c| HostPort::parse(&c.old_master)), last.and_then(|c| HostPort::parse(&c.elected_master)), msg.clone())
            }
            Err(e) => (st.master.map(|m| st.servers[m].addr.clone()), None, e.message.clone()),
        };
        st.events.push(ClusterEvent::MasterChange { kind, outcome, old_master, new_master, message });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_arguments_follow_the_go_order() {
        let old = HostPort { host: "10.0.0.1".into(), port: 3306 };
        let new = HostPort { host: "10.0.0.2".into(), port: 3307 };
        let args = hook_args(&old, &new, ChangeKind::Switchover);
        assert_eq!(args, vec!["10.0.0.1", "10.0.0.2", "3306", "3307", "", "", "switchover"]);
        assert_eq!(script_command("/bin/hook ", &args[..2]), "/bin/hook '10.0.0.1' '10.0.0.2'");
    }

    #[test]
    fn outcomes() {
        assert_eq!(outcome_of(&Ok("x".into())), Outcome::Done);
        assert_eq!(outcome_of(&Err(FailoverError::new(ErrorKind::Conflict, format!("{VETO_CODE}: vetoed")))), Outcome::Vetoed);
        assert_eq!(outcome_of(&Err(FailoverError::new(ErrorKind::Conflict, "ERR00041: no candidate"))), Outcome::Refused);
        assert_eq!(outcome_of(&Err(FailoverError::new(ErrorKind::Failed, "cancelled"))), Outcome::Failed);
    }
}
