//! The settings routes for every setting name of this manager and of the Go original: each
//! switch and set either works (the value changes, is replicated and applied) or is refused
//! with a reason, never `501`; plus `log-format=json` (one JSON object per line carrying
//! cluster, server, op and term) and the `verbose` switch's per-round log line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

#[path = "../src/config/go_setting_names.rs"]
#[allow(dead_code)]
mod go_setting_names;

use std::time::Duration;

use common::*;
use serde_json::Value;

const CLUSTER: &str = "c1";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_setting_switch_and_set_works_or_says_why() {
    let sb = Sandbox::start(2, true);
    let (m, _dir) = sandbox_manager(&sb, "settings", CLUSTER, 1, &[("log-format", "json".to_string())], &[]).await;
    let token = m.token().await;
    let first = sb.addr(1);
    assert!(
        wait_until(Duration::from_secs(15), || async {
            let s = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await;
            server_by_url(&s, &first)["state"] == "Master" && server_by_url(&s, &sb.addr(2))["state"] == "Slave"
        })
        .await,
        "topology not discovered"
    );
    let settings = || async { m.get_json(&format!("/api/clusters/{CLUSTER}/settings"), &token).await };
    let act = |path: String| {
        let token = token.clone();
        let url = m.url(&path);
        async move {
            let r = http().post(url).bearer_auth(token).timeout(Duration::from_secs(60)).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };

    // Every switch name of the Go original: 200 with the value flipped, or a reason.
    let mut worked = Vec::new();
    for name in go_setting_names::GO_SWITCHES {
        let before = shown(&settings().await, name);
        let (st, body) = act(format!("/api/clusters/{CLUSTER}/settings/actions/switch/{name}")).await;
        assert_ne!(st, 501, "switch {name}: {body}");
        match st {
            200 => {
                let after = shown(&settings().await, name);
                assert_ne!(before, after, "switch {name} answered 200 ({body}) but the setting did not change");
                worked.push(*name);
            }
            400 => assert!(body.contains(name) && body.len() > name.len() + 20, "switch {name}: refusal without a reason: {body}"),
            other => panic!("switch {name}: {other} {body}"),
        }
    }
    for must in ["verbose", "failover-mode", "autorejoin", "failover-at-sync", "switchover-at-sync", "check-replication-state", "monitoring-pause", "test"] {
        assert!(worked.contains(&must), "switch {must} did not work; worked: {worked:?}");
    }
    // Switched twice they are back; failover-mode flips manual/automatic.
    let mode = settings().await["failoverMode"].clone();
    assert_eq!(mode, "automatic", "failover-mode was switched once from manual");
    for name in &worked {
        let (st, body) = act(format!("/api/clusters/{CLUSTER}/settings/switch/{name}")).await;
        assert_eq!(st, 200, "{name}: {body}");
    }
    assert_eq!(settings().await["failoverMode"], "manual");
    assert_eq!(settings().await["monitoringPause"], "false");

    // Every set name of the Go original with a plausible value: 200 and applied, or a reason.
    for name in go_setting_names::GO_SETS {
        let value = match *name {
            "failover-limit" | "failover-max-slave-delay" | "api-token-timeout" => "7".to_string(),
            "db-servers-hosts" => sb.hosts(),
            "db-servers-credential" => "repman:repman".to_string(),
            "replication-credential" => "repl:repl".to_string(),
            "prov-orchestrator" => "onpremise".to_string(),
            "log-level" => "debug".to_string(),
            _ => "1".to_string(),
        };
        let (st, body) = act(format!("/api/clusters/{CLUSTER}/settings/actions/set/{name}/{value}")).await;
        assert_ne!(st, 501, "set {name}: {body}");
        match st {
            200 => {
                let expect = if name.contains("credential") || name.contains("password") { "*:*".to_string() } else { value.clone() };
                assert_eq!(shown(&settings().await, name), Value::String(expect), "set {name}: {body}");
            }
            400 => assert!(body.contains(name), "set {name}: refusal without a reason: {body}"),
            other => panic!("set {name}: {other} {body}"),
        }
    }
    // The manager-wide ones say how to change them; unknown names are 404.
    let (st, body) = act(format!("/api/clusters/{CLUSTER}/settings/actions/set/http-port/1")).await;
    assert_eq!(st, 400);
    assert!(body.contains("restart"), "{body}");
    let (st, body) = act(format!("/api/clusters/{CLUSTER}/settings/actions/switch/no-such-setting")).await;
    assert_eq!((st, body.as_str()), (404, "Setting Not Found: no-such-setting"));
    let (st, body) = act(format!("/api/clusters/{CLUSTER}/settings/actions/switch/failover-limit")).await;
    assert_eq!(st, 400);
    assert!(body.contains("not a boolean"), "{body}");

    // verbose on: one log line per probe round.
    let (st, _) = act(format!("/api/clusters/{CLUSTER}/settings/switch/verbose")).await;
    assert_eq!(st, 200);
    assert!(
        wait_until(Duration::from_secs(10), || async { m.log_text().contains("verbose: probe round") }).await,
        "no verbose round line:\n{}",
        m.log_text()
    );

    // A switchover, so the log has an operation with its id and term.
    let (st, body) = act(format!("/api/clusters/{CLUSTER}/actions/switchover")).await;
    assert_eq!(st, 200, "{body}");

    // log-format=json: every line is one JSON object with the top-level fields.
    let log = m.log_text();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    assert!(lines.len() > 10, "{log}");
    for l in &lines {
        for k in ["timestamp", "level", "message", "cluster", "server", "op", "term"] {
            assert!(l.get(k).is_some(), "field {k} missing: {l}");
        }
    }
    let verbose = lines.iter().find(|l| l["message"] == "verbose: probe round").expect("verbose line");
    assert_eq!(verbose["cluster"], CLUSTER, "{verbose}");
    let step = lines
        .iter()
        .find(|l| l["op"].as_str().is_some_and(|o| o.starts_with("switchover-")) && l["server"].is_string())
        .unwrap_or_else(|| panic!("no switchover event with op and server:\n{log}"));
    assert_eq!(step["cluster"], CLUSTER, "{step}");
    assert!(step["term"].as_u64().is_some_and(|t| t >= 1), "{step}");
    println!("json log line: {step}");
}

/// The value shown for setting `name` in the settings object (keyed `failoverMaxSlaveDelay`
/// for `failover-max-slave-delay`): matched without dashes and case; `Null` when absent.
fn shown(settings: &Value, name: &str) -> Value {
    let flat = name.replace('-', "").to_ascii_lowercase();
    settings.as_object().and_then(|o| o.iter().find(|(k, _)| k.to_ascii_lowercase() == flat)).map_or(Value::Null, |(_, v)| v.clone())
}
