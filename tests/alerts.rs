//! Alerts and hooks on a real failover (SIGKILL of the sandbox master, failover-mode
//! automatic): a real SMTP receiver (aiosmtpd) and an HTTP receiver get the alert,
//! `failover-post-script` gets the Go project's arguments, and `failover-pre-script` vetoes
//! the failover while it exits non-zero and lets it happen once it exits 0.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::receivers::{SmtpReceiver, WebhookReceiver};
use common::{free_ports, http, sandbox_manager, slot, temp_dir, wait_until, Manager, Sandbox};
use serde_json::Value;

const CLUSTER: &str = "alerts";

fn script(dir: &Path, name: &str, body: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

fn automatic() -> Vec<(&'static str, String)> {
    vec![
        ("failover-mode", "automatic".to_string()),
        ("failover-falsepositive-ping-counter", "3".to_string()),
        ("failover-limit", "0".to_string()),
    ]
}

async fn master_url(m: &Manager, token: &str) -> Option<String> {
    let v = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), token).await;
    v["url"].as_str().filter(|_| v["state"] == "Master").map(str::to_string)
}

async fn metrics(m: &Manager) -> String {
    http().get(m.url("/metrics")).send().await.unwrap().text().await.unwrap()
}

fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' ')?.trim().parse().ok())
}

async fn discovered(m: &Manager, token: &str, sb: &Sandbox) {
    let master = sb.addr(1);
    let ok = wait_until(Duration::from_secs(20), || async {
        let servers = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), token).await;
        master_url(m, token).await.as_deref() == Some(master.as_str())
            && servers.as_array().is_some_and(|a| a.iter().filter(|s| s["state"] == "Slave").count() == usize::from(sb.count) - 1)
    })
    .await;
    assert!(ok, "initial topology not discovered: {}", m.log_text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_failover_alerts_by_mail_and_webhook_and_runs_the_post_script() {
    let s = slot();
    let dir = temp_dir("alerts-hooks", s);
    let smtp = SmtpReceiver::start(&dir, free_ports(s + 900, 1)).await;
    let hook = WebhookReceiver::start().await;
    let post = script(&dir, "post.sh", &format!("printf '%s\\n' \"$@\" > {}/post-args", dir.display()));
    let states = script(&dir, "state.sh", &format!("echo \"$*\" >> {}/state-changes", dir.display()));
    let alert_script = script(&dir, "alert.sh", &format!("echo \"$*\" >> {}/alert-script", dir.display()));
    let sb = Sandbox::start(3, true);
    let mut keys = automatic();
    keys.extend([
        ("mail-to", "dba@example.com,oncall@example.com".to_string()),
        ("mail-from", "repman@example.com".to_string()),
        ("mail-smtp-addr", format!("127.0.0.1:{}", smtp.port)),
        ("alert-slack-url", hook.url()),
        ("alert-slack-channel", "#db-alerts".to_string()),
        ("failover-post-script", post),
        ("db-servers-state-change-script", states),
        ("alert-script", alert_script),
    ]);
    let (m, _mdir) = sandbox_manager(&sb, "alerts", CLUSTER, 1, &[], &keys).await;
    let token = m.token().await;
    discovered(&m, &token, &sb).await;
    let old = sb.addr(1);

    sb.run(&["kill", "1"]);
    let mut new = None;
    let promoted = wait_until(Duration::from_secs(30), || async {
        matches!(master_url(&m, &token).await, Some(u) if u != old)
    })
    .await;
    assert!(promoted, "no failover after SIGKILL of the master: {}", m.log_text());
    if let Some(u) = master_url(&m, &token).await {
        new = Some(u);
    }
    let new = new.expect("new master");
    let new_port: u16 = new.rsplit(':').next().unwrap().parse().unwrap();

    // The webhook receives the failover with Slack's fields and the alert's own.
    let got_hook = wait_until(Duration::from_secs(20), || async {
        hook.received().iter().any(|v| v["event"] == "failover" && v["outcome"] == "done")
    })
    .await;
    assert!(got_hook, "no failover alert on the webhook: {:?}", hook.received());
    let body: Value = hook.received().into_iter().find(|v| v["event"] == "failover").unwrap();
    assert_eq!(body["channel"], "#db-alerts");
    assert_eq!(body["cluster"], CLUSTER);
    assert_eq!(body["oldMaster"], old.as_str());
    assert_eq!(body["newMaster"], new.as_str());
    assert!(body["text"].as_str().unwrap().contains("failover done"), "{body}");
    // A crash is failed over on the refused connection, before the ping counter runs out; the
    // old master goes on failing its probes and reaches Failed a few ticks later.
    let failed_alerted = wait_until(Duration::from_secs(15), || async {
        hook.received().iter().any(|v| v["event"] == "server_state" && v["server"] == old.as_str() && v["state"] == "Failed")
    })
    .await;
    assert!(failed_alerted, "the old master's Failed state was not alerted: {:?}", hook.received());

    // The SMTP receiver gets the mail for the failover, to both recipients.
    let got_mail = wait_until(Duration::from_secs(20), || async { smtp.mails().contains("failover done") }).await;
    assert!(got_mail, "no failover mail received: {}\nsmtp log: {}\nmanager: {}", smtp.mails(), smtp.proc.log_text(), m.log_text());
    // Long headers may be folded.
    let mails = smtp.mails().replace("\r\n ", " ").replace("\n ", " ");
    assert!(mails.contains("From: repman@example.com"), "{mails}");
    assert!(mails.contains("dba@example.com") && mails.contains("oncall@example.com"), "{mails}");
    assert!(mails.contains(&format!("Subject: Replication-Manager@")) && mails.contains(&format!("Cluster {CLUSTER} state change detected")), "{mails}");

    // failover-post-script: old host, new host, old port, new port, two empty names, type.
    let post_args = dir.join("post-args");
    assert!(wait_until(Duration::from_secs(20), || async { post_args.exists() }).await, "post-script not run: {}", m.log_text());
    let args = std::fs::read_to_string(&post_args).unwrap();
    let expected = format!("127.0.0.1\n127.0.0.1\n{}\n{new_port}\n\n\nfailover\n", sb.port(1));
    assert_eq!(args, expected, "post-script arguments");
    // db-servers-state-change-script: cluster host port new_state old_state.
    let changes = std::fs::read_to_string(dir.join("state-changes")).unwrap_or_default();
    assert!(changes.lines().any(|l| l == format!("{CLUSTER} 127.0.0.1 {} Failed Suspect", sb.port(1))), "state changes: {changes}");
    let alerted = std::fs::read_to_string(dir.join("alert-script")).unwrap_or_default();
    assert!(alerted.lines().any(|l| l == format!("{CLUSTER} {old} Suspect Failed")), "alert-script: {alerted}");

    // Counted in the metrics, and written in the cluster log.
    let text = metrics(&m).await;
    assert_eq!(sample(&text, &format!("replication_manager_failovers_total{{cluster=\"{CLUSTER}\",outcome=\"done\"}}")), Some(1.0), "{text}");
    assert!(sample(&text, &format!("replication_manager_alerts_total{{cluster=\"{CLUSTER}\",event=\"failover\"}}")) == Some(1.0), "{text}");
    for channel in ["mail", "webhook", "alert-script", "failover-post-script"] {
        let n = sample(&text, &format!("replication_manager_alert_deliveries_total{{cluster=\"{CLUSTER}\",channel=\"{channel}\",outcome=\"sent\"}}"));
        assert!(n.is_some_and(|n| n >= 1.0), "{channel} deliveries: {n:?}\n{text}");
    }
    let logs = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/logs"), &token).await.to_string();
    assert!(logs.contains("Alert to mail, webhook, alert-script: failover done"), "{logs}");
    assert!(!mails.contains("State changed from Unconnected"), "the first states found were alerted: {mails}");
    eprintln!("failover {old} -> {new}: webhook got {} alert(s), post-script args {args:?}", hook.received().len());
    drop(smtp);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vetoing_pre_script_blocks_the_failover_and_a_passing_one_lets_it_happen() {
    let s = slot();
    let dir = temp_dir("alerts-veto", s);
    let hook = WebhookReceiver::start().await;
    let pre = script(
        &dir,
        "pre.sh",
        &format!(
            "[ -f {d}/allow ] || {{ echo 'change freeze: no failover now' >&2; exit 3; }}\nprintf '%s\\n' \"$@\" > {d}/pre-args",
            d = dir.display()
        ),
    );
    let sb = Sandbox::start(3, true);
    let mut keys = automatic();
    keys.extend([("failover-pre-script", pre), ("alert-slack-url", hook.url())]);
    let (m, _mdir) = sandbox_manager(&sb, "veto", CLUSTER, 1, &[], &keys).await;
    let token = m.token().await;
    discovered(&m, &token, &sb).await;
    let old = sb.addr(1);

    sb.run(&["kill", "1"]);
    let vetoed = wait_until(Duration::from_secs(30), || async { m.log_text().contains("vetoed by failover-pre-script") }).await;
    assert!(vetoed, "the pre-script did not veto: {}", m.log_text());
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Nothing was promoted: no crash record, every replica still read-only, the master down.
    let crashes = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/crashes"), &token).await;
    assert_eq!(crashes.as_array().map(Vec::len), Some(0), "promoted despite the veto: {crashes}");
    for i in [2, 3] {
        assert_eq!(sb.sql(i, "SELECT @@read_only").trim(), "1", "replica {i} writable despite the veto");
    }
    let master = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), &token).await;
    assert_eq!(master["url"], old.as_str(), "{master}");
    assert_eq!(master["state"], "Failed", "{master}");
    // The refusal is clear in the alerts, alerted once on the webhook, counted.
    let alerts = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/alerts"), &token).await.to_string();
    assert!(alerts.contains("ERR00120") && alerts.contains("change freeze"), "{alerts}");
    let vetoes: Vec<Value> = hook.received().into_iter().filter(|v| v["event"] == "failover" && v["outcome"] == "vetoed").collect();
    assert_eq!(vetoes.len(), 1, "the veto is alerted once (not every tick): {:?}", hook.received());
    assert!(vetoes[0]["message"].as_str().unwrap().contains("change freeze"), "{:?}", vetoes[0]);
    let text = metrics(&m).await;
    assert_eq!(sample(&text, &format!("replication_manager_failovers_total{{cluster=\"{CLUSTER}\",outcome=\"vetoed\"}}")), Some(1.0), "{text}");
    assert!(!text.contains("outcome=\"done\""), "{text}");

    // The script passes: the failover happens, and the script got the Go project's arguments.
    std::fs::write(dir.join("allow"), "").unwrap();
    let promoted = wait_until(Duration::from_secs(30), || async { matches!(master_url(&m, &token).await, Some(u) if u != old) }).await;
    assert!(promoted, "no failover once the pre-script passed: {}", m.log_text());
    let new = master_url(&m, &token).await.unwrap();
    let args = std::fs::read_to_string(dir.join("pre-args")).unwrap();
    let new_port = new.rsplit(':').next().unwrap();
    assert_eq!(args, format!("127.0.0.1\n127.0.0.1\n{}\n{new_port}\n\n\nfailover\n", sb.port(1)));
    assert!(
        wait_until(Duration::from_secs(10), || async { hook.received().iter().any(|v| v["event"] == "failover" && v["outcome"] == "done") }).await,
        "{:?}",
        hook.received()
    );
    let text = metrics(&m).await;
    assert_eq!(sample(&text, &format!("replication_manager_failovers_total{{cluster=\"{CLUSTER}\",outcome=\"done\"}}")), Some(1.0), "{text}");
    eprintln!("pre-script vetoed, then allowed: {old} -> {new}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A switchover asked through the API is vetoed the same way (409 with the script's reason,
/// the master unchanged), and runs once the pre-script passes; the post-script is told it
/// was a switchover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vetoing_pre_script_refuses_a_switchover_until_it_passes() {
    let s = slot();
    let dir = temp_dir("alerts-switch", s);
    let gate = format!("[ -f {d}/allow ] || {{ echo 'not during backups' >&2; exit 1; }}", d = dir.display());
    let pre = script(&dir, "pre.sh", &gate);
    let post = script(&dir, "post.sh", &format!("printf '%s\\n' \"$@\" > {}/post-args", dir.display()));
    let sb = Sandbox::start(2, true);
    let keys = vec![("failover-pre-script", pre), ("failover-post-script", post)];
    let (m, _mdir) = sandbox_manager(&sb, "switch-veto", CLUSTER, 1, &[], &keys).await;
    let token = m.token().await;
    discovered(&m, &token, &sb).await;
    let path = format!("/api/clusters/{CLUSTER}/actions/switchover");
    let (status, body) = m.get_long(&path, &token, Duration::from_secs(60)).await;
    assert_eq!(status, 409, "{body}");
    assert!(body.contains("ERR00120") && body.contains("not during backups"), "{body}");
    assert_eq!(master_url(&m, &token).await.as_deref(), Some(sb.addr(1).as_str()), "the master changed despite the veto");
    assert_eq!(sb.sql(1, "SELECT @@read_only").trim(), "0", "the vetoed switchover left the master read-only");
    std::fs::write(dir.join("allow"), "").unwrap();
    let (status, body) = m.get_long(&path, &token, Duration::from_secs(60)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(master_url(&m, &token).await.as_deref(), Some(sb.addr(2).as_str()));
    let post_args = dir.join("post-args");
    assert!(wait_until(Duration::from_secs(20), || async { post_args.exists() }).await, "post-script not run");
    let expected = format!("127.0.0.1\n127.0.0.1\n{}\n{}\n\n\nswitchover\n", sb.port(1), sb.port(2));
    assert_eq!(std::fs::read_to_string(&post_args).unwrap(), expected);
    let ok = wait_until(Duration::from_secs(10), || async {
        let t = metrics(&m).await;
        sample(&t, &format!("replication_manager_switchovers_total{{cluster=\"{CLUSTER}\",outcome=\"vetoed\"}}")) == Some(1.0)
            && sample(&t, &format!("replication_manager_switchovers_total{{cluster=\"{CLUSTER}\",outcome=\"done\"}}")) == Some(1.0)
    })
    .await;
    assert!(ok, "switchover outcomes not counted: {}", metrics(&m).await);
    let _ = std::fs::remove_dir_all(dir);
}
