//! One function per subcommand: the routes each one calls and how it prints their answers.

use std::time::Duration;

use anyhow::Context;
use serde_json::{json, Value};

use crate::client::{encode, ApiClient, ApiError};
use crate::jobs;
use crate::render::{self, print_json, state_cell, text, Cell};
use crate::{Cli, Command, Connection, ServerArgs};

/// Deadline of a peer's answer in `group`.
const PEER_TIMEOUT: Duration = Duration::from_secs(3);

/// Logs in and runs the subcommand.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let endpoint = cli.conn.endpoint()?;
    let base = endpoint.base_url();
    let mut client = ApiClient::new(endpoint)?;
    client
        .login(&cli.conn.user, &cli.conn.password)
        .await
        .with_context(|| format!("login to {base} as {}", cli.conn.user))?;
    let c = &cli.conn;
    match &cli.command {
        Command::Status => status(&client, c).await,
        Command::Topology => topology(&client, c).await,
        Command::Switchover { prefered_master } => switchover(&client, c, prefered_master.as_deref()).await,
        Command::Failover => failover(&client, c).await,
        Command::Show { get } => show(&client, c, get).await,
        Command::Server(args) => server(&client, c, args).await,
        Command::Jobs => list_jobs(&client, c).await,
        Command::Api { path, method, data } => api(&client, path, method, data.as_deref()).await,
        Command::Group => group(&client, c).await,
    }
}

/// The manager's cluster names (from `/api/monitor`).
async fn cluster_names(client: &ApiClient) -> Result<Vec<String>, ApiError> {
    let m = client.get_json("/api/monitor").await?;
    Ok(m["clusters"].as_array().map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect()).unwrap_or_default())
}

/// `--cluster`, or every cluster.
async fn selected(client: &ApiClient, conn: &Connection) -> anyhow::Result<Vec<String>> {
    match &conn.cluster {
        Some(c) => Ok(vec![c.clone()]),
        None => {
            let names = cluster_names(client).await?;
            anyhow::ensure!(!names.is_empty(), "the manager has no cluster");
            Ok(names)
        }
    }
}

/// `--cluster`, or the only cluster.
async fn one(client: &ApiClient, conn: &Connection) -> anyhow::Result<String> {
    if let Some(c) = &conn.cluster {
        return Ok(c.clone());
    }
    let names = cluster_names(client).await?;
    match names.as_slice() {
        [only] => Ok(only.clone()),
        [] => anyhow::bail!("the manager has no cluster"),
        many => anyhow::bail!("the manager has {} clusters ({}): choose one with --cluster", many.len(), many.join(", ")),
    }
}

fn cpath(cluster: &str, rest: &str) -> String {
    format!("/api/clusters/{}{rest}", encode(cluster))
}

/// A server is up unless the monitor cannot reach or log in to it.
fn is_up(s: &Value) -> bool {
    !matches!(s["state"].as_str().unwrap_or(""), "Failed" | "Suspect" | "Unconnected" | "ErrorAuth" | "")
}

fn master_url(servers: &Value) -> Option<String> {
    servers.as_array()?.iter().find(|s| s["state"] == "Master").and_then(|s| s["url"].as_str()).map(str::to_string)
}

async fn status(client: &ApiClient, conn: &Connection) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for c in selected(client, conn).await? {
        let alive = client.get_json(&cpath(&c, "/status")).await?;
        let obj = client.get_json(&cpath(&c, "")).await?;
        let servers = client.get_json(&cpath(&c, "/topology/servers")).await?;
        let list = servers.as_array().cloned().unwrap_or_default();
        rows.push(json!({
            "cluster": c,
            "alive": alive["alive"],
            "master": master_url(&servers),
            "serversUp": list.iter().filter(|s| is_up(s)).count(),
            "servers": list.len(),
            "failoverMode": obj["config"]["failoverMode"],
            "failoverCounter": obj["failoverCounter"],
            "manager": obj["activePassiveStatus"],
            "alerts": obj["alerts"],
        }));
    }
    if conn.json {
        print_json(&Value::Array(rows));
        return Ok(());
    }
    let mut t = render::table(&["Cluster", "Status", "Master", "Servers up", "Mode", "Failovers", "Manager"]);
    for r in &rows {
        t.add_row(vec![
            Cell::new(text(&r["cluster"])),
            state_cell(&text(&r["alive"])),
            Cell::new(r["master"].as_str().unwrap_or("none")),
            Cell::new(format!("{}/{}", r["serversUp"], r["servers"])),
            Cell::new(text(&r["failoverMode"])),
            Cell::new(text(&r["failoverCounter"])),
            state_cell(&text(&r["manager"])),
        ]);
    }
    anstream::print!("{t}");
    for r in &rows {
        for (kind, style) in [("errors", anstyle::AnsiColor::Red), ("warnings", anstyle::AnsiColor::Yellow)] {
            for a in r["alerts"][kind].as_array().into_iter().flatten() {
                anstream::println!(
                    "{}{} {}{}: {}",
                    style.render_fg(),
                    text(&r["cluster"]),
                    text(&a["number"]),
                    anstyle::Reset.render(),
                    text(&a["desc"])
                );
            }
        }
    }
    Ok(())
}

/// Seconds behind the master of the managed (first) replication connection.
fn delay(s: &Value) -> String {
    let r = &s["replications"][0]["secondsBehindMaster"];
    if r["Valid"] == true { text(&r["Int64"]) } else { String::new() }
}

async fn topology(client: &ApiClient, conn: &Connection) -> anyhow::Result<()> {
    let mut out = Vec::new();
    for c in selected(client, conn).await? {
        let obj = client.get_json(&cpath(&c, "")).await?;
        let servers = client.get_json(&cpath(&c, "/topology/servers")).await?;
        out.push(json!({"cluster": c, "failoverMode": obj["config"]["failoverMode"], "servers": servers}));
    }
    if conn.json {
        print_json(&Value::Array(out));
        return Ok(());
    }
    for c in &out {
        let servers = &c["servers"];
        anstream::println!(
            "{}Cluster {}{} | Mode: {} | Master: {}",
            anstyle::Style::new().bold().render(),
            text(&c["cluster"]),
            anstyle::Reset.render(),
            text(&c["failoverMode"]),
            master_url(servers).unwrap_or_else(|| "none".into())
        );
        let mut t = render::table(&["Id", "Host", "Port", "State", "Failures", "Using GTID", "Current GTID", "Slave GTID", "Replication health", "Delay", "RO"]);
        for s in servers.as_array().into_iter().flatten() {
            let using = &s["replications"][0]["usingGtid"];
            t.add_row(vec![
                Cell::new(text(&s["id"])),
                Cell::new(text(&s["host"])),
                Cell::new(text(&s["port"])),
                state_cell(&text(&s["state"])),
                Cell::new(text(&s["failCount"])),
                Cell::new(if using["Valid"] == true { text(&using["String"]) } else { String::new() }),
                Cell::new(render::gtid(&s["gtidCurrentPos"])),
                Cell::new(render::gtid(&s["gtidSlavePos"])),
                state_cell(&text(&s["replicationHealth"])),
                Cell::new(delay(s)),
                Cell::new(text(&s["readOnly"])),
            ]);
        }
        anstream::print!("{t}");
    }
    Ok(())
}

/// Runs a master change and reports the master afterwards.
async fn master_change(client: &ApiClient, conn: &Connection, cluster: &str, path: String) -> anyhow::Result<()> {
    let message = client.action(&path).await.with_context(|| format!("cluster {cluster}"))?;
    let master = client.get_json(&cpath(cluster, "/topology/master")).await?;
    let url = master["url"].as_str().map(str::to_string);
    if conn.json {
        print_json(&json!({"cluster": cluster, "message": message, "master": url}));
    } else {
        println!("{message}");
        anstream::println!(
            "{}master of {cluster}: {}{}",
            anstyle::AnsiColor::Green.render_fg(),
            url.unwrap_or_else(|| "none".into()),
            anstyle::Reset.render()
        );
    }
    Ok(())
}

async fn switchover(client: &ApiClient, conn: &Connection, prefered: Option<&str>) -> anyhow::Result<()> {
    let c = one(client, conn).await?;
    let mut path = cpath(&c, "/actions/switchover");
    if let Some(p) = prefered {
        path.push_str(&format!("?prefmaster={}", encode(p)));
    }
    master_change(client, conn, &c, path).await
}

async fn failover(client: &ApiClient, conn: &Connection) -> anyhow::Result<()> {
    let c = one(client, conn).await?;
    let path = cpath(&c, "/actions/failover");
    master_change(client, conn, &c, path).await
}

/// The objects `show --get` knows and their routes.
const SHOW_OBJECTS: &[(&str, &str)] = &[
    ("settings", "/settings"),
    ("servers", "/topology/servers"),
    ("master", "/topology/master"),
    ("slaves", "/topology/slaves"),
    ("crashes", "/topology/crashes"),
    ("alerts", "/topology/alerts"),
    ("logs", "/topology/logs"),
    ("jobs", "/jobs"),
];

async fn show(client: &ApiClient, conn: &Connection, get: &[String]) -> anyhow::Result<()> {
    for g in get {
        anyhow::ensure!(
            SHOW_OBJECTS.iter().any(|(n, _)| n == g),
            "show --get: unknown object `{g}` (known: {})",
            SHOW_OBJECTS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
        );
    }
    let mut clusters = Vec::new();
    for c in selected(client, conn).await? {
        let mut obj = serde_json::Map::new();
        obj.insert("name".into(), json!(c));
        for (name, route) in SHOW_OBJECTS.iter().filter(|(n, _)| get.iter().any(|g| g == n)) {
            obj.insert(name.to_string(), client.get_json(&cpath(&c, route)).await?);
        }
        clusters.push(Value::Object(obj));
    }
    // A JSON report with or without --json, as the Go client's `show`.
    print_json(&json!({ "clusters": clusters }));
    Ok(())
}

/// Server actions and the route suffix each one calls.
fn server_action_route(action: &str) -> Option<String> {
    let a = action.to_ascii_lowercase().replace("toggle-", "toogle-");
    let known = [
        "start", "stop", "maintenance", "provision", "unprovision", "backup", "backup-logical", "backup-physical",
        "backup-error-log", "backup-slow-query-log", "optimize", "toogle-read-only", "toogle-innodb-monitor",
        "toogle-slow-query", "toogle-slow-query-capture", "reset-master", "start-slave", "skip-replication-event",
    ];
    if let Some(method) = a.strip_prefix("reseed-") {
        return matches!(method, "logicalmaster" | "logicalbackup" | "physicalbackup").then(|| format!("actions/reseed/{method}"));
    }
    known.contains(&a.as_str()).then(|| format!("actions/{a}"))
}

const SERVER_INFO: &[&str] = &[
    "processlist", "variables", "status", "status-delta", "status-innodb", "errorlog", "slowlog", "slow-queries",
    "tables", "vtables", "schemas", "master-status", "all-slaves-status",
];

async fn server(client: &ApiClient, conn: &Connection, args: &ServerArgs) -> anyhow::Result<()> {
    let c = one(client, conn).await?;
    let server = encode(&args.id);
    if let Some(info) = &args.get {
        anyhow::ensure!(SERVER_INFO.contains(&info.as_str()), "server --get: unknown `{info}` (known: {})", SERVER_INFO.join(", "));
        let v = client.get_json(&cpath(&c, &format!("/servers/{server}/{info}"))).await?;
        if conn.json { print_json(&v) } else { render::print_any(&v) }
        return Ok(());
    }
    let action = args.action.as_deref().unwrap_or_default();
    let Some(route) = server_action_route(action) else {
        anyhow::bail!("server --action: unknown action `{action}` (see --help)");
    };
    let message = client.action(&cpath(&c, &format!("/servers/{server}/{route}"))).await.with_context(|| format!("server {} of cluster {c}", args.id))?;
    let job_id = jobs::job_id(&message).map(str::to_string);
    let mut report = json!({"cluster": c, "server": args.id, "action": action, "message": message});
    if let (Some(id), false) = (&job_id, args.no_wait) {
        if !conn.json {
            println!("{message}");
        }
        let job = jobs::follow(client, &c, id, Duration::from_secs(args.job_timeout.max(1))).await?;
        if conn.json {
            report["job"] = job;
            print_json(&report);
        } else {
            anstream::println!(
                "{}job {id} done{}: {} {}",
                anstyle::AnsiColor::Green.render_fg(),
                anstyle::Reset.render(),
                text(&job["location"]),
                render::bytes(job["sizeBytes"].as_u64().unwrap_or(0))
            );
        }
        return Ok(());
    }
    if conn.json {
        if let Some(id) = job_id {
            report["jobId"] = json!(id);
        }
        print_json(&report);
    } else {
        println!("{message}");
    }
    Ok(())
}

async fn list_jobs(client: &ApiClient, conn: &Connection) -> anyhow::Result<()> {
    let c = one(client, conn).await?;
    let jobs = client.get_json(&cpath(&c, "/jobs")).await?;
    if conn.json {
        print_json(&jobs);
        return Ok(());
    }
    let mut t = render::table(&["Id", "Kind", "Server", "State", "Size", "Location", "Error"]);
    for j in jobs.as_array().into_iter().flatten() {
        t.add_row(vec![
            Cell::new(text(&j["id"])),
            Cell::new(text(&j["kind"])),
            Cell::new(text(&j["server"])),
            state_cell(&text(&j["state"])),
            Cell::new(render::bytes(j["sizeBytes"].as_u64().unwrap_or(0))),
            Cell::new(text(&j["location"])),
            Cell::new(text(&j["error"])),
        ]);
    }
    anstream::print!("{t}");
    Ok(())
}

async fn api(client: &ApiClient, path: &str, method: &str, data: Option<&str>) -> anyhow::Result<()> {
    let method: &'static str = match method.to_ascii_uppercase().as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        other => anyhow::bail!("api: unsupported method {other}"),
    };
    let path = if path.starts_with("/api/") || path == "/api" {
        path.to_string()
    } else {
        format!("/api/{}", path.trim_start_matches('/'))
    };
    let timeout = if method == "GET" { client.endpoint().timeout } else { client.endpoint().action_timeout };
    let a = client.raw(method, &path, data, timeout).await?;
    if !(200..300).contains(&a.status) {
        return Err(ApiError::Status { method, path, status: a.status, message: a.body.trim().to_string() }.into());
    }
    match serde_json::from_str::<Value>(&a.body) {
        Ok(v) => print_json(&v),
        Err(_) => println!("{}", a.body.trim_end()),
    }
    Ok(())
}

async fn group(client: &ApiClient, conn: &Connection) -> anyhow::Result<()> {
    let g = client.get_json("/api/group").await?;
    let mut nodes = Vec::new();
    for n in g["nodes"].as_array().into_iter().flatten() {
        let mut n = n.clone();
        // Each node says itself whether it is active: asked on its own HTTP listener with the
        // same token (valid on every node of the group).
        let (status, term, reachable) = if n["isSelf"] == true {
            (g["status"].clone(), g["term"].clone(), true)
        } else {
            match n["httpAddr"].as_str() {
                Some(addr) => match client.raw_at(&format!("http://{addr}"), "GET", "/api/group", None, PEER_TIMEOUT).await {
                    Ok(a) if a.status == 200 => match serde_json::from_str::<Value>(&a.body) {
                        Ok(v) => (v["status"].clone(), v["term"].clone(), true),
                        Err(_) => (Value::Null, Value::Null, false),
                    },
                    _ => (Value::Null, Value::Null, false),
                },
                None => (Value::Null, Value::Null, false),
            }
        };
        n["status"] = status;
        n["term"] = term;
        n["reachable"] = json!(reachable);
        nodes.push(n);
    }
    let report = json!({
        "nodeId": g["nodeId"], "status": g["status"], "state": g["state"], "term": g["term"],
        "leader": g["leader"], "splitBrain": g["splitBrain"], "nodes": nodes,
    });
    if conn.json {
        print_json(&report);
        return Ok(());
    }
    println!(
        "asked node {} ({}, {}): term {}, leader {}{}",
        text(&g["nodeId"]),
        text(&g["state"]),
        text(&g["status"]),
        text(&g["term"]),
        if g["leader"].is_null() { "none".to_string() } else { text(&g["leader"]) },
        if g["splitBrain"] == true { ", SPLIT BRAIN: no quorum" } else { "" }
    );
    let mut t = render::table(&["Id", "Role", "Raft", "HTTP", "Leader", "Status", "Term"]);
    for n in &nodes {
        let status = if n["reachable"] == true { text(&n["status"]) } else { "unreachable".to_string() };
        t.add_row(vec![
            Cell::new(format!("{}{}", text(&n["id"]), if n["isSelf"] == true { " *" } else { "" })),
            Cell::new(text(&n["role"])),
            Cell::new(text(&n["raftAddr"])),
            Cell::new(text(&n["httpAddr"])),
            Cell::new(if n["isLeader"] == true { "leader" } else { "" }),
            state_cell(&status),
            Cell::new(text(&n["term"])),
        ]);
    }
    anstream::print!("{t}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_actions_map_to_routes() {
        assert_eq!(server_action_route("maintenance").as_deref(), Some("actions/maintenance"));
        assert_eq!(server_action_route("toggle-read-only").as_deref(), Some("actions/toogle-read-only"));
        assert_eq!(server_action_route("reseed-logicalmaster").as_deref(), Some("actions/reseed/logicalmaster"));
        assert_eq!(server_action_route("reseed-nothing"), None);
        assert_eq!(server_action_route("explode"), None);
    }

    #[test]
    fn replica_delay_reads_the_null_int() {
        let s = json!({"replications":[{"secondsBehindMaster":{"Int64":3,"Valid":true}}]});
        assert_eq!(delay(&s), "3");
        assert_eq!(delay(&json!({"replications":[]})), "");
    }
}
