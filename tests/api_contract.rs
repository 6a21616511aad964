//! The API contract: docs/api.md (the repository's API reference, which marks the routes of the
//! user's API document) lists exactly the routes of the served OpenAPI document, with the same
//! access; every route answers with and without a token and with a token lacking the grant, with
//! statuses docs/api.md lists; reads never answer 501; unknown names get 404 or the documented
//! code; bad input gets a clear 4xx; server info and server actions work for real.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const CLUSTER: &str = "c1";

async fn lab() -> (Sandbox, Manager, String, String, std::path::PathBuf) {
    let sb = Sandbox::start(2, true);
    common::load::create_table(&sb, 1);
    let slot = slot();
    let dir = temp_dir("api", slot);
    let port = free_ports(slot + 500, 1);
    let mut defaults = default_keys(&dir, port);
    defaults.push(("api-credentials", "admin:repman,viewer:view".to_string()));
    defaults.push(("api-credentials-acl-allow", "admin:global cluster proxy db prov,viewer:".to_string()));
    let mut keys = cluster_keys(&sb);
    let sandbox = repo_root().join("scripts/sandbox");
    let env = sb.env_assignments();
    keys.push(("prov-db-stop-command", format!("env {env} {} stop $(( {{port}} - {} ))", sandbox.display(), sb.base_port - 1)));
    keys.push(("prov-db-start-command", format!("env {env} {} start-one $(( {{port}} - {} ))", sandbox.display(), sb.base_port - 1)));
    write_config(&dir, &defaults, CLUSTER, &keys);
    let m = Manager::start(&dir, port, &[]).await;
    let admin = m.token().await;
    let viewer = m.token_for("viewer", "view").await;
    let first = sb.addr(1);
    let ok = wait_until(Duration::from_secs(15), || async {
        let s = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &admin).await;
        server_by_url(&s, &first)["state"] == "Master" && server_by_url(&s, &sb.addr(2))["state"] == "Slave"
    })
    .await;
    assert!(ok, "topology not discovered");
    (sb, m, admin, viewer, dir)
}

fn fill(path: &str, sb: &Sandbox) -> String {
    path.replace("{cluster}", CLUSTER)
        .replace("{server}/{port}", &format!("127.0.0.1/{}", sb.port(1)))
        .replace("{server}", &sb.addr(2))
        .replace("{host}", "127.0.0.1")
        .replace("{port}", "1")
        .replace("{topology}", "master-slave")
        .replace("{name}", "autorejoin")
        .replace("{value}", "true")
        .replace("{test}", "switchover")
        .replace("{method}", "logicalmaster")
        .replace("{file}", "app.js")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_route_is_documented_guarded_and_answers() {
    // Read before starting anything: a missing or malformed docs/api.md fails at once.
    let documented = doc_routes();
    let (sb, m, admin, viewer, dir) = lab().await;
    let doc: Value = http().get(m.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() > 60, "only {} paths documented", paths.len());

    // docs/api.md and the served document list the same routes, with the same access.
    check_doc_matches_openapi(&documented, paths);
    let by_path: std::collections::HashMap<&str, &DocRoute> = documented.iter().map(|r| (r.path.as_str(), r)).collect();
    // The slow log routes read the server's slow log file, which exists once the log was
    // enabled (without it they answer 409, checked in bad_input_gets_clear_answers).
    sb.sql(2, "SET GLOBAL slow_query_log = ON");

    let client = http();
    for (path, ops) in paths {
        let url = m.url(&fill(path, &sb));
        let op = ops.get("get").or_else(|| ops.get("post")).unwrap();
        let method = if ops.get("get").is_some() { "GET" } else { "POST" };
        let public = op.get("security").is_none();
        let grants = op.get("x-grants").is_some();
        let mutating = op["x-mutating"] == true;
        let row = by_path[path.as_str()];
        let send = |token: Option<&str>| {
            let mut rq = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), &url);
            if let Some(t) = token {
                rq = rq.bearer_auth(t);
            }
            rq.send()
        };
        let no_token = send(None).await.unwrap().status().as_u16();
        if public {
            assert_ne!(no_token, 404, "{method} {path}");
            assert_ne!(no_token, 401, "{method} {path} is public");
            assert!(row.answers.contains(&no_token), "{method} {path} answered {no_token}, not listed for it in docs/api.md");
            continue;
        }
        assert_eq!(no_token, 401, "{method} {path} without a token");
        let as_viewer = send(Some(&viewer)).await.unwrap();
        let st = as_viewer.status().as_u16();
        if grants {
            assert_eq!(st, 403, "{method} {path} as a user without grants");
            assert_eq!(as_viewer.text().await.unwrap(), "No valid ACL");
        } else {
            assert_eq!(st, 200, "{method} {path} needs only a token");
        }
        if !mutating {
            // A read route with known names answers for real: never 501, never an error.
            let r = send(Some(&admin)).await.unwrap();
            let st = r.status().as_u16();
            let body = r.text().await.unwrap();
            assert_ne!(st, 501, "{method} {path} is a read route and answers 501 Not Implemented as admin: {body}");
            assert_eq!(st, 200, "{method} {path} as admin: {st} {body}");
            assert!(row.answers.contains(&st), "{method} {path}: 200 not listed for it in docs/api.md");
        }
    }
    drop(m);
    drop(sb);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_gets_clear_answers() {
    let (sb, m, admin, _viewer, dir) = lab().await;
    let client = http();
    let get = |path: String| {
        let client = client.clone();
        let url = m.url(&path);
        let admin = admin.clone();
        async move {
            let r = client.get(url).bearer_auth(admin).send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    for (path, code, body) in [
        ("/api/clusters/nope".to_string(), 404, "Unknown cluster: nope"),
        ("/api/clusters/nope/topology/servers".to_string(), 404, "Unknown cluster: nope"),
        ("/api/clusters/nope/actions/switchover".to_string(), 500, "No Cluster"),
        ("/api/clusters/nope/settings".to_string(), 404, "Unknown cluster: nope"),
        (format!("/api/clusters/{CLUSTER}/servers/db0/processlist"), 404, "Unknown server: db0 (cluster c1)"),
        (format!("/api/clusters/{CLUSTER}/servers/db0/actions/toogle-read-only"), 404, "Unknown server: db0 (cluster c1)"),
        (format!("/api/clusters/{CLUSTER}/servers/{}/processlist?limit=0", sb.addr(1)), 400, "Bad parameter limit=0: expected 1 to 10000"),
        // A slow log that was never enabled has no file: 409 with the reason, never 501.
        (format!("/api/clusters/{CLUSTER}/servers/{}/slowlog", sb.addr(1)), 409, ""),
        (format!("/api/clusters/{CLUSTER}/actions/addserver/127.0.0.1/notaport"), 400, r#"{"msg":"Bad port notaport"}"#),
        (format!("/api/clusters/{CLUSTER}/actions/addserver/127.0.0.1/{}", sb.port(1)), 409, ""),
        (format!("/api/clusters/{CLUSTER}/settings/actions/set/failover-limit/lots"), 400, ""),
        (format!("/api/clusters/{CLUSTER}/settings/actions/switch/failover-limit"), 400, "failover-limit is not a boolean setting: set it with settings/actions/set/failover-limit/<value>"),
        (format!("/api/clusters/{CLUSTER}/settings/actions/set/no-such-setting/1"), 404, "Setting Not Found: no-such-setting"),
        (format!("/api/clusters/{CLUSTER}/tests/actions/run/nothing"), 400, ""),
        (format!("/api/clusters/{CLUSTER}/tests/actions/run/switchover"), 409, ""),
        (format!("/api/clusters/{CLUSTER}/servers/{}/actions/reseed/floppy", sb.addr(2)), 400, ""),
        (format!("/api/clusters/{CLUSTER}/servers/{}/actions/reset-master", sb.addr(1)), 409, ""),
        (format!("/api/clusters/{CLUSTER}/servers/{}/actions/provision", sb.addr(2)), 501, ""),
        ("/api/no/such/route".to_string(), 404, "404 page not found"),
    ] {
        let (st, b) = get(path.clone()).await;
        assert_eq!(st, code, "GET {path}: {b}");
        if !body.is_empty() {
            assert_eq!(b, body, "GET {path}");
        }
    }
    let (_, b) = get(format!("/api/clusters/{CLUSTER}/servers/{}/slowlog", sb.addr(1))).await;
    assert!(b.contains("is not readable from the manager host"), "{b}");
    // Wrong method, malformed and oversized bodies.
    let r = client.delete(m.url("/api/clusters")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(r.status(), 405);
    // Just over the 64 KiB limit: small enough to be sent whole before the answer, so the
    // client reads the 413 instead of a reset under load.
    let r = client.post(m.url("/api/login")).body(vec![b'x'; 70_000]).send().await.unwrap();
    assert_eq!(r.status(), 413);
    let r = client.post(m.url("/api/login")).body("{\"username\": 1}").send().await.unwrap();
    assert_eq!(r.status(), 403);
    // The manager is still healthy after all that.
    let (st, _) = m.get("/api/status", None).await;
    assert_eq!(st, 200);
    drop(m);
    drop(sb);
    let _ = std::fs::remove_dir_all(dir);
}

/// Every route that names a cluster, called as admin with an unknown cluster and (for server
/// routes) with a known cluster and an unknown server, answers 404 with a message naming it, or
/// the code docs/api.md takes from the user's document; an unknown name never gets a 500 the
/// user's document does not give. Nothing runs: the names are checked first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unknown_names_answer_404_or_the_documented_code() {
    let documented = doc_routes();
    let (sb, m, admin, _viewer, dir) = lab().await;
    let doc: Value = http().get(m.url("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    let paths = doc["paths"].as_object().expect("paths");
    check_doc_matches_openapi(&documented, paths);
    let client = http();
    let mut problems = Vec::new();
    let mut checked = 0;
    for r in &documented {
        let Some(cluster_code) = r.unknown_cluster else { continue };
        for code in [Some(cluster_code), r.unknown_server].into_iter().flatten() {
            if code == 500 && !r.unknown_from_user_doc {
                problems.push(format!("{}: docs/api.md answers an unknown name 500 without the user's document saying so", r.path));
            }
        }
        let (want_cluster, want_server) = (r.unknown_cluster.map(u64::from), r.unknown_server.map(u64::from));
        for (m, op) in paths[&r.path].as_object().into_iter().flatten() {
            if op["x-unknown-cluster"].as_u64() != want_cluster || op["x-unknown-server"].as_u64() != want_server {
                problems.push(format!(
                    "{m} {}: unknown names {want_cluster:?}/{want_server:?} in docs/api.md, {}/{} served",
                    r.path, op["x-unknown-cluster"], op["x-unknown-server"]
                ));
            }
        }
        let mut cases = vec![("no-such-cluster", None, cluster_code, "Unknown cluster: no-such-cluster".to_string())];
        if let Some(code) = r.unknown_server {
            let (server, shown) = if r.path.contains("{server}/{port}") {
                ("127.0.0.1/1", "127.0.0.1:1")
            } else {
                ("no-such-server", "no-such-server")
            };
            cases.push((CLUSTER, Some(server), code, format!("Unknown server: {shown} (cluster {CLUSTER})")));
        }
        for (cluster, server, want, body_404) in cases {
            let path = r
                .path
                .replace("{cluster}", cluster)
                .replace("{server}/{port}", server.unwrap_or("127.0.0.1/1"))
                .replace("{server}", server.unwrap_or(&sb.addr(2)))
                .replace("{host}", "127.0.0.1")
                .replace("{port}", "1")
                .replace("{topology}", "master-slave")
                .replace("{name}", "autorejoin")
                .replace("{value}", "true")
                .replace("{test}", "switchover")
                .replace("{method}", "logicalmaster");
            for method in &r.methods {
                let rq = client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), m.url(&path)).bearer_auth(&admin);
                let resp = rq.send().await.unwrap();
                let st = resp.status().as_u16();
                let body = resp.text().await.unwrap();
                checked += 1;
                if st != want {
                    problems.push(format!("{method} {path}: {st} {body:?}, docs/api.md says {want}"));
                } else if st == 404 && body != body_404 {
                    problems.push(format!("{method} {path}: 404 {body:?}, expected {body_404:?}"));
                }
                if st == 500 && !r.unknown_from_user_doc {
                    problems.push(format!("{method} {path}: 500 for an unknown name"));
                }
                if !r.answers.contains(&st) {
                    problems.push(format!("{method} {path}: {st} not listed for the route in docs/api.md"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "unknown names:\n{}", problems.join("\n"));
    assert!(checked > 100, "only {checked} requests with unknown names");
    // Nothing ran: the cluster still has its master and its replica.
    let s = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &admin).await;
    assert_eq!(server_by_url(&s, &sb.addr(1))["state"], "Master", "{s}");
    assert_eq!(server_by_url(&s, &sb.addr(2))["state"], "Slave", "{s}");
    drop(m);
    drop(sb);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_info_actions_settings_and_jobs_work_for_real() {
    let (sb, m, admin, _viewer, dir) = lab().await;
    let (m1, r2) = (sb.addr(1), sb.addr(2));
    let base = format!("/api/clusters/{CLUSTER}/servers");
    // Server info.
    let pl = m.get_json(&format!("{base}/{m1}/processlist?limit=50"), &admin).await;
    assert!(pl.as_array().is_some_and(|a| !a.is_empty() && a.len() <= 50), "{pl}");
    let vars = m.get_json(&format!("{base}/{m1}/variables"), &admin).await;
    assert!(vars.as_array().unwrap().iter().any(|v| v["variableName"] == "GTID_STRICT_MODE"), "variables");
    let status = m.get_json(&format!("{base}/{m1}/status"), &admin).await;
    assert!(status.as_array().unwrap().iter().any(|v| v["variableName"] == "UPTIME"));
    let delta = m.get_json(&format!("{base}/{m1}/status-delta"), &admin).await;
    assert!(delta.as_array().is_some_and(|a| !a.is_empty()));
    let schemas = m.get_json(&format!("{base}/{m1}/schemas"), &admin).await;
    assert!(schemas.as_array().unwrap().iter().any(|s| s == "app"), "{schemas}");
    let tables = m.get_json(&format!("{base}/{m1}/tables"), &admin).await;
    assert!(tables.as_array().unwrap().iter().any(|t| t["table_name"] == "t"), "{tables}");
    let vt = m.get_json(&format!("{base}/{m1}/vtables"), &admin).await;
    assert!(vt.get("app.t").is_some(), "{vt}");
    let el = m.get_json(&format!("{base}/{m1}/errorlog?limit=20"), &admin).await;
    assert!(el["buffer"].as_array().is_some_and(|b| !b.is_empty() && b.len() <= 20), "{el}");

    // Toggles and replication commands act on the server.
    let act = |p: String| {
        let m = &m;
        let admin = admin.clone();
        async move { m.get(&p, Some(&admin)).await }
    };
    let (st, body) = act(format!("{base}/{r2}/actions/toogle-slow-query")).await;
    assert_eq!(st, 200, "{body}");
    let before = sb.sql(2, "SELECT @@slow_query_log");
    let (st, _) = act(format!("{base}/{r2}/actions/toogle-slow-query")).await;
    assert_eq!(st, 200);
    assert_ne!(sb.sql(2, "SELECT @@slow_query_log"), before);
    sb.sql(2, "STOP SLAVE");
    let (st, body) = act(format!("{base}/{r2}/actions/start-slave")).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(10), || async { sb.sql(2, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Slave_IO'") != "0" }).await);

    // Settings: set, switch, masked read, replicated and applied.
    let (st, body) = act(format!("/api/clusters/{CLUSTER}/settings/actions/set/failover-limit/9")).await;
    assert_eq!(st, 200, "{body}");
    let (st, _) = act(format!("/api/clusters/{CLUSTER}/settings/switch/autorejoin")).await;
    assert_eq!(st, 200);
    let s = m.get_json(&format!("/api/clusters/{CLUSTER}/settings"), &admin).await;
    assert_eq!(s["failoverLimit"], "9");
    assert_eq!(s["autorejoin"], "false");
    assert_eq!(s["dbServersCredential"], "*:*");

    // Stop and start a server through the orchestrator command.
    let (st, body) = act(format!("{base}/{r2}/actions/stop")).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(15), || async {
        server_by_url(&m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &admin).await, &r2)["state"] == "Failed"
    })
    .await);
    let (st, body) = act(format!("{base}/{r2}/actions/start")).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(20), || async {
        server_by_url(&m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &admin).await, &r2)["state"] == "Slave"
    })
    .await);

    // A logical backup job, then a reseed of the replica from it.
    let (st, body) = act(format!("{base}/{m1}/actions/backup-logical")).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("Job "), "{body}");
    let done = wait_until(Duration::from_secs(60), || async {
        let j = m.get_json(&format!("/api/clusters/{CLUSTER}/jobs"), &admin).await;
        j.as_array().unwrap().iter().any(|x| x["kind"] == "backup-logical" && x["state"] == "done")
    })
    .await;
    assert!(done, "backup job did not finish: {}", m.get_json(&format!("/api/clusters/{CLUSTER}/jobs"), &admin).await);
    let jobs = m.get_json(&format!("/api/clusters/{CLUSTER}/backups"), &admin).await;
    let job = jobs.as_array().unwrap().iter().find(|x| x["kind"] == "backup-logical").unwrap().clone();
    assert!(job["sizeBytes"].as_u64().unwrap() > 0);
    assert!(std::path::Path::new(job["location"].as_str().unwrap()).exists());
    sb.sql(1, "INSERT INTO app.t (id, port) VALUES (424242, 0)");
    let (st, body) = act(format!("{base}/{r2}/actions/reseed/logicalbackup")).await;
    assert_eq!(st, 200, "{body}");
    assert!(body.contains("reseed"), "a reseed answers at once with its job: {body}");
    assert!(
        wait_until(Duration::from_secs(30), || async {
            let j = m.get_json(&format!("/api/clusters/{CLUSTER}/jobs"), &admin).await;
            j.as_array().unwrap().iter().any(|x| x["kind"] == "reseed" && x["state"] == "done")
        })
        .await,
        "reseed job did not finish: {}",
        m.get_json(&format!("/api/clusters/{CLUSTER}/jobs"), &admin).await
    );
    assert!(wait_until(Duration::from_secs(20), || async { sb.sql(2, "SELECT COUNT(*) FROM app.t WHERE id = 424242") == "1" }).await);

    // Regression scenario, allowed once the cluster setting test=true is set.
    let (st, body) = act(format!("/api/clusters/{CLUSTER}/settings/actions/set/test/true")).await;
    assert_eq!(st, 200, "{body}");
    let (st, body) = act(format!("/api/clusters/{CLUSTER}/tests/actions/run/switchover")).await;
    assert_eq!(st, 200, "{body}");
    let report: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(report["name"], "switchover");
    assert_eq!(report["result"], "PASS", "{report}");
    assert!(wait_until(Duration::from_secs(15), || async {
        server_by_url(&m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &admin).await, &r2)["state"] == "Master"
    })
    .await);

    // Reload re-reads the file: a value changed in the file applies; API settings stay on top.
    let cfg_path = dir.join("config.toml");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, text.replace("monitoring-ticker = 0.5", "monitoring-ticker = 0.5\nfailover-time-limit = 77")).unwrap();
    let (st, body) = act(format!("/api/clusters/{CLUSTER}/settings/reload")).await;
    assert_eq!(st, 200, "{body}");
    let s = m.get_json(&format!("/api/clusters/{CLUSTER}/settings"), &admin).await;
    assert_eq!(s["failoverTimeLimit"], 77, "{s}");
    assert_eq!(s["failoverLimit"], "9", "API setting kept over the file");

    // A server added at runtime is monitored.
    let extra = free_ports(slot() + 900, 1);
    let (st, body) = act(format!("/api/clusters/{CLUSTER}/actions/addserver/127.0.0.1/{extra}")).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(10), || async {
        let s = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &admin).await;
        s.as_array().unwrap().iter().any(|x| x["url"] == format!("127.0.0.1:{extra}") && x["state"] == "Suspect" || x["url"] == format!("127.0.0.1:{extra}") && x["state"] == "Failed")
    })
    .await);
    drop(m);
    drop(sb);
    let _ = std::fs::remove_dir_all(dir);
}

/// The Go project's own clients, as their source sends the calls: the CLI (JSON login with
/// `Content-Type: application/json`, cluster list from `/api/monitor`, actions as form-encoded
/// POSTs with `customer_name=value` and `prefmaster`), the Angular and React dashboards (their
/// `Accept` and `Content-Type` headers, grants from `apiUsers`, actions as GETs, including the
/// React routes `stop-slave`, `toggle-*` and `servers/{id}/actions/switchover`), and our own
/// dashboard's files.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn go_clients_calls_work_unchanged() {
    let (sb, m, _admin, _viewer, dir) = lab().await;
    let (m1, r2) = (sb.addr(1), sb.addr(2));
    let client = http();
    // Logins, with each client's headers.
    let mut tokens = Vec::new();
    for (content_type, accept) in [
        ("application/json", None),                                          // CLI
        ("application/json;charset=utf-8", Some("application/json, text/plain, */*")), // Angular
        ("application/json; charset=\"utf-8\"", Some("*/*")),                 // React
    ] {
        let mut rq = client
            .post(m.url("/api/login"))
            .header("Content-Type", content_type)
            .body(r#"{"username":"admin", "password":"repman"}"#);
        if let Some(a) = accept {
            rq = rq.header("Accept", a);
        }
        let r = rq.send().await.unwrap();
        assert_eq!(r.status(), 200, "login with {content_type} / {accept:?}");
        let v: Value = serde_json::from_str(&r.text().await.unwrap()).expect("the token as JSON");
        tokens.push(v["token"].as_str().expect("token").to_string());
    }
    let r = client.post(m.url("/api/login")).header("Content-Type", "application/json").body(r#"{"username":"admin", "password":"nope"}"#).send().await.unwrap();
    assert_eq!(r.status(), 403, "the CLI reads 403 as wrong credentials");
    let token = tokens[0].clone();

    // The CLI's cluster list, the dashboards' cluster objects and grants.
    let mon = m.get_json("/api/monitor", &token).await;
    assert_eq!(mon["clusters"], serde_json::json!([CLUSTER]), "{}", mon["clusters"]);
    assert!(mon["status"] == "A" || mon["status"] == "S");
    let clusters = m.get_json("/api/clusters", &token).await;
    let c = &clusters.as_array().expect("an array of clusters")[0];
    assert_eq!(c["name"], CLUSTER);
    assert_eq!(c["apiUsers"]["admin"]["grants"]["cluster-switchover"], true);
    assert_eq!(c["apiUsers"]["viewer"]["grants"]["cluster-switchover"], false);
    assert_eq!(c["apiUsers"]["viewer"]["grants"]["db-maintenance"], false);

    // A CLI action: form-encoded POST.
    let form = |path: String, body: String| {
        let client = client.clone();
        let url = m.url(&path);
        let token = token.clone();
        async move {
            let r = client
                .post(url)
                .bearer_auth(token)
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(body)
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let servers = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await;
    let r2_id = server_by_url(&servers, &r2)["id"].as_str().unwrap().to_string();
    let (st, body) = form(format!("/api/clusters/{CLUSTER}/servers/{r2_id}/actions/maintenance"), "customer_name=value".into()).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(5), || async {
        server_by_url(&m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await, &r2)["isMaintenance"] == true
    })
    .await);
    let (st, _) = form(format!("/api/clusters/{CLUSTER}/servers/{r2_id}/actions/maintenance"), "customer_name=value".into()).await;
    assert_eq!(st, 200);

    // The React dashboard's GETs: stop-slave, start-slave, toggle-* (its spelling).
    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{r2_id}/actions/stop-slave"), Some(&token)).await;
    assert_eq!(st, 200, "{body}");
    let io_threads = || sb.sql(2, "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Slave_IO'");
    assert_eq!(io_threads(), "0", "stop-slave left the IO thread running");
    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{r2_id}/actions/start-slave"), Some(&token)).await;
    assert_eq!(st, 200, "{body}");
    assert!(wait_until(Duration::from_secs(10), || async { io_threads() != "0" }).await, "start-slave");
    let before = sb.sql(2, "SELECT @@slow_query_log");
    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{r2_id}/actions/toggle-slow-query"), Some(&token)).await;
    assert_eq!(st, 200, "{body}");
    assert_ne!(sb.sql(2, "SELECT @@slow_query_log"), before, "toggle-slow-query did not toggle");
    let (st, _) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{r2_id}/actions/toogle-slow-query"), Some(&token)).await;
    assert_eq!(st, 200);
    assert_eq!(sb.sql(2, "SELECT @@slow_query_log"), before);

    // React's "promote" (a switchover to a named server), then the CLI's switchover back.
    assert!(wait_until(Duration::from_secs(15), || async {
        server_by_url(&m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await, &r2)["state"] == "Slave"
    })
    .await);
    let (st, body) = m.get_long(&format!("/api/clusters/{CLUSTER}/servers/{r2_id}/actions/switchover"), &token, Duration::from_secs(60)).await;
    assert_eq!(st, 200, "{body}");
    let master = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), &token).await;
    assert_eq!(master["url"], r2.as_str(), "promote");
    let (st, body) = m.get(&format!("/api/clusters/{CLUSTER}/servers/{r2_id}/actions/switchover"), Some(&token)).await;
    assert_eq!(st, 400, "promoting the master: {body}");
    assert!(wait_until(Duration::from_secs(15), || async {
        server_by_url(&m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &token).await, &m1)["state"] == "Slave"
    })
    .await);
    let (st, body) = form(format!("/api/clusters/{CLUSTER}/actions/switchover"), format!("customer_name=value&prefmaster={}", m1.replace(':', "%3A"))).await;
    assert_eq!(st, 200, "{body}");
    let master = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), &token).await;
    assert_eq!(master["url"], m1.as_str(), "CLI switchover with prefmaster");

    // Our dashboard: the page and its files, from this node only.
    let r = client.get(m.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    assert!(r.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'self'"));
    assert!(r.text().await.unwrap().contains("/dashboard/app.js"));
    for (file, kind) in [("app.js", "text/javascript"), ("style.css", "text/css")] {
        let r = client.get(m.url(&format!("/dashboard/{file}"))).send().await.unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with(kind), "{file}");
    }
    let r = client.get(m.url("/dashboard/nothing.js")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), "404 page not found");
    drop(m);
    drop(sb);
    let _ = std::fs::remove_dir_all(dir);
}

/// Who may call a route, as docs/api.md says.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DocAccess {
    Public,
    Token,
    Grants(Vec<String>),
}

/// One route row of docs/api.md.
#[derive(Debug, Clone)]
struct DocRoute {
    methods: Vec<String>,
    path: String,
    access: DocAccess,
    mutating: bool,
    /// Status answered for an unknown `{cluster}`, and for an unknown `{server}` of a known one.
    unknown_cluster: Option<u16>,
    unknown_server: Option<u16>,
    /// The unknown-name codes come from the user's API document.
    unknown_from_user_doc: bool,
    user_doc: bool,
    answers: std::collections::BTreeSet<u16>,
}

/// Routes of the user's API document: every one must stay documented as served.
const USER_DOC_ROUTES: usize = 72;

/// The route table of docs/api.md, in the repository. Panics (fails the test) when the file is
/// missing or any route row is malformed.
fn doc_routes() -> Vec<DocRoute> {
    let path = repo_root().join("docs/api.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{} cannot be read: {e}", path.display()));
    let routes = parse_doc(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(routes.len() > 60, "{}: only {} route rows", path.display(), routes.len());
    let from_user_doc = routes.iter().filter(|r| r.user_doc).count();
    assert!(
        from_user_doc >= USER_DOC_ROUTES,
        "{}: {from_user_doc} routes marked as from the user's document, expected at least {USER_DOC_ROUTES}",
        path.display()
    );
    routes
}

/// Parses every table line of docs/api.md: header and separator lines, and route rows
/// `| `GET` `POST` | `/path` | access | yes/no | unknown | yes/no | `200` meaning; ... |`.
fn parse_doc(text: &str) -> Result<Vec<DocRoute>, String> {
    let mut routes: Vec<DocRoute> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        // Table lines start at column 0 (an indented line is a code block, e.g. the format).
        let line = line.trim_end();
        if !line.starts_with('|') || line.starts_with("| Methods |") || line.starts_with("|---") {
            continue;
        }
        let row = parse_row(line).map_err(|e| format!("line {}: {e}: {line}", n + 1))?;
        if routes.iter().any(|r| r.path == row.path) {
            return Err(format!("line {}: {} is listed twice", n + 1, row.path));
        }
        routes.push(row);
    }
    if routes.is_empty() {
        return Err("no route row found".to_string());
    }
    Ok(routes)
}

fn backticked(cell: &str) -> Option<&str> {
    cell.strip_prefix('`')?.strip_suffix('`').filter(|s| !s.is_empty() && !s.contains('`'))
}

fn yes_no(cell: &str, what: &str) -> Result<bool, String> {
    match cell {
        "yes" => Ok(true),
        "no" => Ok(false),
        other => Err(format!("{what} must be yes or no, not {other:?}")),
    }
}

fn parse_row(line: &str) -> Result<DocRoute, String> {
    let inner = line.strip_prefix('|').and_then(|l| l.strip_suffix('|')).ok_or("a row starts and ends with |")?;
    let cells: Vec<&str> = inner.split('|').map(str::trim).collect();
    let [methods, path, access, mutating, unknown, user_doc, answers] = cells[..] else {
        return Err(format!("{} cells, expected 7", cells.len()));
    };
    let methods: Vec<String> = methods
        .split_whitespace()
        .map(|m| match backticked(m) {
            Some(m @ ("GET" | "POST" | "PUT" | "DELETE" | "PATCH")) => Ok(m.to_string()),
            _ => Err(format!("bad method {m:?}")),
        })
        .collect::<Result<_, _>>()?;
    if methods.is_empty() {
        return Err("no method".to_string());
    }
    let path = backticked(path).filter(|p| p.starts_with('/')).ok_or(format!("bad path cell {path:?}"))?.to_string();
    let access = match access {
        "public" => DocAccess::Public,
        "token" => DocAccess::Token,
        a => {
            let list = a.strip_prefix("grant ").ok_or(format!("bad access {a:?}"))?;
            let grants: Vec<String> = list
                .split(" or ")
                .map(|g| backticked(g.trim()).map(str::to_string).ok_or(format!("bad grant {g:?}")))
                .collect::<Result<_, _>>()?;
            for g in &grants {
                if !replication_manager_api::acl::GRANTS.contains(&g.as_str()) {
                    return Err(format!("unknown grant {g}"));
                }
            }
            DocAccess::Grants(grants)
        }
    };
    let mutating = yes_no(mutating, "Mutating")?;
    let user_doc = yes_no(user_doc, "User doc")?;
    let (mut unknown_cluster, mut unknown_server, mut unknown_from_user_doc) = (None, None, false);
    if unknown != "-" {
        let codes = match unknown.strip_suffix(" (user doc)") {
            Some(c) => {
                unknown_from_user_doc = true;
                c
            }
            None => unknown,
        };
        for part in codes.split(", ") {
            let (what, code) = part.split_once(' ').ok_or(format!("bad unknown name cell {unknown:?}"))?;
            let code: u16 = code.parse().map_err(|_| format!("bad status in {unknown:?}"))?;
            match what {
                "cluster" if unknown_cluster.is_none() => unknown_cluster = Some(code),
                "server" if unknown_server.is_none() && unknown_cluster.is_some() => unknown_server = Some(code),
                _ => return Err(format!("bad unknown name cell {unknown:?}")),
            }
        }
    }
    if unknown_cluster.is_some() != path.contains("{cluster}") {
        return Err("the Unknown name column must give a code exactly when the path names a cluster".to_string());
    }
    if unknown_server.is_some() != path.contains("{server}") {
        return Err("the Unknown name column must give a server code exactly when the path names a server".to_string());
    }
    let mut codes = std::collections::BTreeSet::new();
    for item in answers.split("; ") {
        let code = item.get(..5).and_then(backticked).and_then(|c| c.parse::<u16>().ok()).filter(|c| (100..600).contains(c));
        let meaning = item.get(5..).map(str::trim).unwrap_or_default();
        match code {
            Some(c) if item.as_bytes().get(5) == Some(&b' ') && !meaning.is_empty() => {
                if !codes.insert(c) {
                    return Err(format!("status {c} listed twice"));
                }
            }
            _ => return Err(format!("bad answer {item:?}: expected `NNN` meaning")),
        }
    }
    let needed = |c: u16, why: &str| if codes.contains(&c) { Ok(()) } else { Err(format!("status {c} ({why}) is not listed")) };
    if access != DocAccess::Public {
        needed(401, "no token")?;
    }
    if matches!(access, DocAccess::Grants(_)) {
        needed(403, "no grant")?;
    }
    if mutating {
        needed(503, "no leader")?;
    }
    if let Some(c) = unknown_cluster {
        needed(c, "unknown cluster")?;
    }
    if let Some(c) = unknown_server {
        needed(c, "unknown server")?;
    }
    Ok(DocRoute { methods, path, access, mutating, unknown_cluster, unknown_server, unknown_from_user_doc, user_doc, answers: codes })
}

/// docs/api.md lists exactly the routes and methods of `/api/openapi.json`, with the same
/// access and mutating flag.
fn check_doc_matches_openapi(documented: &[DocRoute], paths: &serde_json::Map<String, Value>) {
    let mut problems = Vec::new();
    for r in documented {
        let Some(ops) = paths.get(&r.path).and_then(Value::as_object) else {
            problems.push(format!("{} is in docs/api.md but not served (not in /api/openapi.json)", r.path));
            continue;
        };
        let mut served: Vec<String> = ops.keys().map(|m| m.to_ascii_uppercase()).collect();
        served.sort();
        let mut listed = r.methods.clone();
        listed.sort();
        if served != listed {
            problems.push(format!("{}: methods {listed:?} in docs/api.md, {served:?} served", r.path));
        }
        for (m, op) in ops {
            let access = match (op.get("security"), op.get("x-grants")) {
                (None, _) => DocAccess::Public,
                (Some(_), None) => DocAccess::Token,
                (Some(_), Some(g)) => DocAccess::Grants(
                    g.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect(),
                ),
            };
            if access != r.access {
                problems.push(format!("{m} {}: access {:?} in docs/api.md, {access:?} served", r.path, r.access));
            }
            if op["x-mutating"].as_bool() != Some(r.mutating) {
                problems.push(format!("{m} {}: mutating {} in docs/api.md, {} served", r.path, r.mutating, op["x-mutating"]));
            }
        }
    }
    for path in paths.keys() {
        if !documented.iter().any(|r| &r.path == path) {
            problems.push(format!("{path} is served (in /api/openapi.json) but not documented in docs/api.md"));
        }
    }
    assert!(problems.is_empty(), "docs/api.md and /api/openapi.json disagree:\n{}", problems.join("\n"));
}

#[test]
fn doc_parser_rejects_malformed_rows() {
    let good = "| `GET` `POST` | `/api/clusters/{cluster}/x` | grant `db-backup` or `cluster-process` | yes | cluster 404 | no | `200` ok; `401` no token; `403` no grant; `404` unknown; `503` no leader |";
    let r = parse_doc(good).unwrap();
    assert_eq!(r[0].methods, ["GET", "POST"]);
    assert_eq!(r[0].access, DocAccess::Grants(vec!["db-backup".into(), "cluster-process".into()]));
    assert_eq!((r[0].unknown_cluster, r[0].unknown_server, r[0].unknown_from_user_doc), (Some(404), None, false));
    assert_eq!(r[0].answers.iter().copied().collect::<Vec<_>>(), [200, 401, 403, 404, 503]);
    let bads: Vec<String> = vec![
        String::new(),
        "no table at all".to_string(),
        good.replace("`GET` `POST`", "GET"),
        good.replace(" | yes | cluster", " | maybe | cluster"),
        good.replace("`db-backup`", "`db-nothing`"),
        good.replace("cluster 404", "-"),
        good.replace("cluster 404", "cluster 404, server 404"),
        good.replace("`401` no token; ", ""),
        good.replace("`503` no leader", "`503`"),
        good.replace("; `404` unknown", "; 404 unknown"),
        good.replace(" | no | `200`", " | `200`"),
        format!("{good}\n{good}"),
    ];
    for bad in &bads {
        assert!(parse_doc(bad).is_err(), "accepted: {bad}");
    }
}
