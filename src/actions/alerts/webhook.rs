//! The JSON webhook (`alert-slack-url`): one POST per alert. The body carries Slack's fields
//! (`text`, `channel`, `username`), so a Slack or Mattermost incoming-webhook URL works as is,
//! and the alert's own fields for any other receiver.

use serde_json::{json, Value};

use crate::cluster::events::ClusterEvent;
use crate::config::HookConfig;

/// The JSON body for `event`.
pub fn payload(hooks: &HookConfig, cluster: &str, monitor: &str, event: &ClusterEvent) -> Value {
    let username = if hooks.slack_user.is_empty() { "replication-manager" } else { hooks.slack_user.as_str() };
    let mut v = json!({
        "text": format!("[{cluster}] {}", event.summary()),
        "channel": hooks.slack_channel,
        "username": username,
        "cluster": cluster,
        "monitor": monitor,
        "event": event.label(),
        "summary": event.summary(),
        "timestamp": crate::cluster::state::ClusterState::now_unix(),
    });
    let extra = match event {
        ClusterEvent::ServerState { server, from, to } => json!({"server": server.to_string(), "prevState": from.as_str(), "state": to.as_str()}),
        ClusterEvent::Problem { code, desc, server, resolved } => json!({"code": code, "desc": desc, "server": server, "resolved": resolved}),
        ClusterEvent::MasterChange { kind, outcome, old_master, new_master, message } => json!({
            "kind": kind.as_str(),
            "outcome": outcome.as_str(),
            "oldMaster": old_master.as_ref().map(|m| m.to_string()),
            "newMaster": new_master.as_ref().map(|m| m.to_string()),
            "message": message,
        }),
    };
    if let (Some(obj), Value::Object(more)) = (v.as_object_mut(), extra) {
        obj.extend(more);
    }
    v
}

/// POSTs `body` to `url`; a non-2xx answer is an error naming its status.
pub async fn post(http: &reqwest::Client, url: &str, body: Value) -> Result<(), String> {
    let resp = http.post(url).json(&body).send().await.map_err(|e| format!("webhook POST: {}", e.without_url()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(format!("webhook POST answered {}", resp.status()))
    }
}
