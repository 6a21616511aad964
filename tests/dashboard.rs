//! The web dashboard in a real browser: Debian's headless Chromium driven by its chromedriver
//! (WebDriver, through fantoccini), against a real manager on a real MariaDB sandbox. Each test
//! starts its own sandbox, manager, chromedriver (own port, stopped by PID) and Chromium (own
//! profile directory), saves a screenshot under its temp dir and prints the path.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::group::GroupLab;
use common::*;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CLUSTER: &str = "c1";

/// A binary the tests need: found on PATH or in /usr/bin, or the test fails saying what to
/// install.
fn need_binary(names: &[&str], package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/lib/chromium")]) {
        for n in names {
            let p = dir.join(n);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("{names:?} not found: install the Debian package {package} (scripts/install-deps does)");
}

/// One chromedriver process and the Chromium session it drives.
struct Browser {
    client: Option<Client>,
    driver: Option<Child>,
    driver_port: u16,
    session: String,
    dir: PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and a headless Chromium session with its own profile
    /// under `dir`. Chromium sends nothing beyond loopback: background services are off and
    /// every non-loopback request goes to a dead local proxy port.
    async fn start(dir: &Path) -> Browser {
        let chromium = need_binary(&["chromium"], "chromium");
        let chromedriver = need_binary(&["chromedriver"], "chromium-driver");
        let driver_port = free_ports(slot() + 700, 1);
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={driver_port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn chromedriver");
        let mut b = Browser { client: None, driver: Some(driver), driver_port, session: String::new(), dir: dir.to_path_buf() };
        let status = format!("http://127.0.0.1:{driver_port}/status");
        let ready = wait_until(Duration::from_secs(20), || {
            let status = status.clone();
            async move {
                match http().get(&status).send().await {
                    Ok(r) => r.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true),
                    Err(_) => false,
                }
            }
        })
        .await;
        assert!(ready, "chromedriver did not become ready; log:\n{}", std::fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default());
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        let args = vec![
            "--headless=new".to_string(),
            // Tests run as root, where Chromium's sandbox cannot start.
            "--no-sandbox".to_string(),
            "--disable-dev-shm-usage".to_string(),
            "--disable-gpu".to_string(),
            "--window-size=1440,1100".to_string(),
            format!("--user-data-dir={}", profile.display()),
            "--no-first-run".to_string(),
            "--no-default-browser-check".to_string(),
            "--disable-background-networking".to_string(),
            "--disable-component-update".to_string(),
            "--disable-sync".to_string(),
            "--disable-extensions".to_string(),
            "--disable-default-apps".to_string(),
            "--disable-domain-reliability".to_string(),
            "--disable-client-side-phishing-detection".to_string(),
            "--no-pings".to_string(),
            "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication".to_string(),
            "--proxy-server=127.0.0.1:9".to_string(),
        ];
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert("goog:chromeOptions".into(), json!({"binary": chromium, "args": args}));
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{driver_port}"))
            .await
            .unwrap_or_else(|e| {
                panic!("no Chromium session: {e}; chromedriver log:\n{}", std::fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default())
            });
        b.session = client.session_id().await.unwrap().expect("session id");
        b.client = Some(client);
        b
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    /// Runs `script` (a function body; `return` gives the value) in the page.
    async fn js(&self, script: &str) -> Value {
        self.c().execute(script, vec![]).await.unwrap_or_else(|e| panic!("script failed: {e}\n{script}"))
    }

    /// Polls `script` until `ok` accepts its value or `limit` passes; returns the last value and
    /// whether it was accepted.
    async fn wait_js(&self, limit: Duration, script: &str, ok: impl Fn(&Value) -> bool) -> (bool, Value) {
        let deadline = Instant::now() + limit;
        loop {
            let v = self.c().execute(script, vec![]).await.unwrap_or(Value::Null);
            if ok(&v) {
                return (true, v);
            }
            if Instant::now() >= deadline {
                return (false, v);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn click(&self, css: &str) {
        let el = self.c().wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.c().wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no {css}: {e}"));
        el.clear().await.unwrap();
        el.send_keys(text).await.unwrap();
    }

    /// Opens the dashboard at `page` (a node's `/`) and logs in.
    async fn login(&self, page: &str, user: &str, password: &str) {
        self.c().goto(page).await.unwrap();
        self.type_into("#login-user", user).await;
        self.type_into("#login-password", password).await;
        self.click("#login-submit").await;
        let (ok, v) = self.wait_js(Duration::from_secs(10), "return document.getElementById('app-view').hidden === false;", |v| v == &json!(true)).await;
        let err = self.js("return document.getElementById('login-error').textContent;").await;
        assert!(ok, "login as {user} did not open the dashboard ({v}): {err}");
    }

    /// The topology as the page draws it: `[role, host:port, state]` per server card.
    async fn topology(&self) -> Value {
        self.js("return [...document.querySelectorAll('#topology .node')].map(n => [n.dataset.role, n.dataset.url, n.dataset.state]);").await
    }

    /// The browser's console and page errors (level SEVERE) since the last call.
    async fn console_errors(&self) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/session/{}/se/log", self.driver_port, self.session);
        let r = http().post(&url).json(&json!({"type": "browser"})).send().await.expect("read the browser log");
        assert!(r.status().is_success(), "reading the browser log: {}", r.status());
        let v: Value = r.json().await.expect("browser log JSON");
        let entries = v["value"].as_array().cloned().expect("browser log entries");
        entries.into_iter().filter(|e| e["level"] == "SEVERE").collect()
    }

    /// Saves a screenshot under the test's directory and prints its path.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.c().screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let path = self.dir.join(format!("dashboard-{name}.png"));
        std::fs::write(&path, png).unwrap();
        println!("screenshot: {}", path.display());
        path
    }

    /// Ends the session (chromedriver stops Chromium), then stops every process left under
    /// chromedriver and chromedriver itself, by PID.
    async fn stop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), c.close()).await;
        }
        self.kill_driver();
    }

    fn kill_driver(&mut self) {
        let Some(mut driver) = self.driver.take() else { return };
        for pid in descendants(driver.id()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let _ = driver.kill();
        let _ = driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if self.driver.is_some() && !self.session.is_empty() {
            // A failed test: end the session without the async client (it cannot be awaited
            // here), so chromedriver closes Chromium.
            let url = format!("http://127.0.0.1:{}/session/{}", self.driver_port, self.session);
            let _ = std::thread::spawn(move || {
                let _ = std::process::Command::new("curl").args(["-s", "-m", "5", "-X", "DELETE", &url]).stdout(Stdio::null()).status();
            })
            .join();
        }
        self.kill_driver();
    }
}

/// Every process whose parent chain leads to `root` (read from /proc), children first.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
            // The command name is in parentheses and may hold spaces: the ppid follows ") S ".
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut out = Vec::new();
    let mut frontier = vec![root];
    for _ in 0..64 {
        let next: Vec<u32> = parent_of.iter().filter(|(_, pp)| frontier.contains(pp)).map(|(p, _)| *p).filter(|p| !out.contains(p)).collect();
        if next.is_empty() {
            break;
        }
        out.extend(&next);
        frontier = next;
    }
    out.reverse();
    out
}

/// A 3-server sandbox (1 master, 2 replicas) and a manager on it with an admin and a user
/// without grants, discovered; `keys` are added to the cluster section.
async fn lab(tag: &str, keys: &[(&'static str, String)]) -> (Sandbox, Manager, PathBuf) {
    let sb = Sandbox::start(3, true);
    let defaults = vec![
        ("api-credentials", "admin:repman,viewer:view".to_string()),
        ("api-credentials-acl-allow", "admin:global cluster proxy db prov,viewer:".to_string()),
    ];
    let (m, dir) = sandbox_manager(&sb, tag, CLUSTER, 1, &defaults, keys).await;
    let admin = m.token().await;
    let ok = wait_until(Duration::from_secs(20), || async {
        let s = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/servers"), &admin).await;
        server_by_url(&s, &sb.addr(1))["state"] == "Master"
            && server_by_url(&s, &sb.addr(2))["state"] == "Slave"
            && server_by_url(&s, &sb.addr(3))["state"] == "Slave"
    })
    .await;
    assert!(ok, "topology not discovered; log:\n{}", m.log_text());
    (sb, m, dir)
}

/// Waits until the page draws `master` as the master and exactly `replicas` as its replicas.
async fn wait_topology(b: &Browser, limit: Duration, master: &str, replicas: &[String]) -> (bool, Value) {
    let script = "return [...document.querySelectorAll('#topology .node')].map(n => [n.dataset.role, n.dataset.url, n.dataset.state]);";
    b.wait_js(limit, script, |v| {
        let Some(cards) = v.as_array() else { return false };
        let with = |role: &str| -> Vec<String> {
            let mut u: Vec<String> =
                cards.iter().filter(|c| c[0] == role).filter_map(|c| c[1].as_str().map(str::to_string)).collect();
            u.sort();
            u
        };
        let mut want = replicas.to_vec();
        want.sort();
        with("master") == [master.to_string()] && with("replica") == want
    })
    .await
}

fn assert_no_console_errors(errors: &[Value], when: &str) {
    assert!(errors.is_empty(), "console errors {when}:\n{}", errors.iter().map(Value::to_string).collect::<Vec<_>>().join("\n"));
}

/// Removes the manager's data, keeping the screenshot and the logs.
fn cleanup(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir.join("data"));
    let _ = std::fs::remove_dir_all(dir.join("chromium-profile"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn login_shows_the_cluster_and_its_topology() {
    let (sb, m, dir) = lab("dash-topo", &[]).await;
    let mut b = Browser::start(&dir).await;

    // A wrong password is refused with the API's message and no dashboard.
    b.c().goto(&m.url("/")).await.unwrap();
    b.type_into("#login-user", "admin").await;
    b.type_into("#login-password", "wrong").await;
    b.click("#login-submit").await;
    let (refused, msg) = b.wait_js(Duration::from_secs(5), "return document.getElementById('login-error').textContent;", |v| v == "Invalid credentials").await;
    assert!(refused, "bad password: {msg}");
    assert_eq!(b.js("return document.getElementById('app-view').hidden;").await, json!(true));
    // The refused login is the only error so far (the browser logs the 403 of /api/login).
    let errors = b.console_errors().await;
    assert!(errors.iter().all(|e| e["message"].as_str().is_some_and(|m| m.contains("/api/login") && m.contains("403"))), "{errors:?}");

    b.login(&m.url("/"), "admin", "repman").await;
    let token = b.js("return sessionStorage.getItem('rm.token');").await;
    assert!(token.as_str().is_some_and(|t| t.split('.').count() == 3), "the token is kept in sessionStorage: {token}");

    // The cluster list shows the sandbox cluster, healthy, with its master.
    let (ok, row) = b
        .wait_js(
            Duration::from_secs(10),
            &format!("const r = document.querySelector('#clusters tr[data-cluster=\"{CLUSTER}\"]'); return r ? [r.querySelector('.cluster-master').textContent, r.querySelector('.cluster-health').textContent] : null;"),
            |v| v[0].as_str().is_some_and(|t| t.contains(&sb.addr(1))),
        )
        .await;
    assert!(ok, "cluster row: {row}");
    // The sandbox has warnings (semi-sync settings), never an error or a down cluster.
    assert!(row[1] == "healthy" || row[1].as_str().is_some_and(|h| h.contains("warning")), "{row}");

    // The topology: 1 master and 2 replicas with their host:port.
    let (ok, topo) = wait_topology(&b, Duration::from_secs(10), &sb.addr(1), &[sb.addr(2), sb.addr(3)]).await;
    assert!(ok, "topology drawn: {topo}");
    let states: Vec<&Value> = topo.as_array().unwrap().iter().map(|c| &c[2]).collect();
    assert_eq!(states.iter().filter(|s| **s == "Master").count(), 1, "{topo}");
    assert_eq!(states.iter().filter(|s| **s == "Slave").count(), 2, "{topo}");
    // The server table has one row per server, and an admin sees the actions.
    let rows = b.js("return [...document.querySelectorAll('#servers tbody tr')].map(r => r.dataset.url);").await;
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    let actions = b.js("return [...document.querySelectorAll('button.action')].map(x => x.dataset.action);").await;
    for a in ["switchover", "failover", "maintenance", "stop-slave", "backup-logical", "reseed"] {
        assert!(actions.as_array().unwrap().iter().any(|x| x == a), "admin sees no {a} button: {actions}");
    }
    // The manager group: this single node is the active leader.
    let group = b.js("return document.getElementById('group').textContent;").await;
    assert!(group.as_str().unwrap().contains("A (active)"), "{group}");

    // The page refreshes by itself: a replica stopped by hand is shown as such.
    sb.sql(3, "STOP SLAVE");
    let stopped = format!("return document.querySelector('#topology .node[data-url=\"{}\"]')?.dataset.state;", sb.addr(3));
    let (ok, topo) = b.wait_js(Duration::from_secs(10), &stopped, |v| v.as_str().is_some_and(|s| s != "Slave")).await;
    assert!(ok, "stopped replica still shown as {topo}");
    sb.sql(3, "START SLAVE");
    let (ok, _) = wait_topology(&b, Duration::from_secs(15), &sb.addr(1), &[sb.addr(2), sb.addr(3)]).await;
    assert!(ok);
    let (ok, _) = b
        .wait_js(Duration::from_secs(15), "return [...document.querySelectorAll('#topology .node')].map(n => n.dataset.state).join(',');", |v| v == "Master,Slave,Slave")
        .await;
    assert!(ok, "replica back to Slave");

    b.screenshot("topology").await;
    assert_no_console_errors(&b.console_errors().await, "while logged in and refreshing");
    b.stop().await;
    drop(m);
    drop(sb);
    cleanup(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_master_is_replaced_on_the_page_without_a_reload() {
    let (sb, m, dir) = lab("dash-failover", &[("failover-mode", "automatic".to_string())]).await;
    let mut b = Browser::start(&dir).await;
    b.login(&m.url("/"), "admin", "repman").await;
    let (ok, topo) = wait_topology(&b, Duration::from_secs(10), &sb.addr(1), &[sb.addr(2), sb.addr(3)]).await;
    assert!(ok, "{topo}");
    // A mark on the page's window: a reload would lose it.
    b.js("window.__rmNoReload = 'still here'; return true;").await;

    let killed = Instant::now();
    sb.run(&["kill", "1"]);
    let script = "return document.querySelector('#topology .node[data-role=\"master\"]')?.dataset.url ?? null;";
    let (ok, master) = b
        .wait_js(Duration::from_secs(10), script, |v| v.as_str().is_some_and(|u| u == sb.addr(2) || u == sb.addr(3)))
        .await;
    let took = killed.elapsed();
    assert!(ok, "10 s after the kill the page shows master {master}; topology {}", b.topology().await);
    println!("the page showed the new master {master} {:.2} s after the kill", took.as_secs_f64());
    assert_eq!(b.js("return window.__rmNoReload;").await, "still here", "the page was reloaded");
    let new_master = master.as_str().unwrap().to_string();
    let other = if new_master == sb.addr(2) { sb.addr(3) } else { sb.addr(2) };
    let (ok, topo) = wait_topology(&b, Duration::from_secs(15), &new_master, &[other]).await;
    assert!(ok, "the other replica under the new master: {topo}");
    // The old master is drawn apart, failed; the journal lists the failover.
    // (Failed over on the refused connection, it turns Failed once the ping counter ran out.)
    let old_state = format!("return document.querySelector('#topology .node[data-url=\"{}\"]')?.dataset.state ?? null;", sb.addr(1));
    let (ok, old) = b.wait_js(Duration::from_secs(15), &old_state, |v| v.as_str() == Some("Failed")).await;
    assert!(ok, "old master drawn as {old}");
    let (ok, journal) = b
        .wait_js(Duration::from_secs(10), "return [...document.querySelectorAll('#journal tbody tr')].map(r => r.dataset.kind + ' ' + r.textContent);", |v| {
            v.as_array().is_some_and(|a| a.iter().any(|r| r.as_str().is_some_and(|t| t.starts_with("failover") && t.contains(&new_master))))
        })
        .await;
    assert!(ok, "journal: {journal}");
    let (ok, failovers) = b
        .wait_js(Duration::from_secs(5), &format!("return document.querySelector('#clusters tr[data-cluster=\"{CLUSTER}\"] .cluster-failovers')?.textContent;"), |v| v == "1")
        .await;
    assert!(ok, "failover count {failovers}");

    b.screenshot("failover").await;
    assert_no_console_errors(&b.console_errors().await, "during the failover");
    b.stop().await;
    drop(m);
    drop(sb);
    cleanup(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn switchover_clicked_in_the_page_moves_the_master() {
    let (sb, m, dir) = lab("dash-switch", &[]).await;
    let mut b = Browser::start(&dir).await;
    b.login(&m.url("/"), "admin", "repman").await;
    let (ok, topo) = wait_topology(&b, Duration::from_secs(10), &sb.addr(1), &[sb.addr(2), sb.addr(3)]).await;
    assert!(ok, "{topo}");

    // The dialog opens, and Cancel runs nothing.
    b.click("#cluster-actions button[data-action=\"switchover\"]").await;
    assert_eq!(b.js("return document.getElementById('confirm-dialog').open;").await, json!(true), "no confirm dialog");
    let options = b.js("return [...document.querySelectorAll('#confirm-target option')].map(o => o.value);").await;
    assert_eq!(options, json!(["", sb.addr(2), sb.addr(3)]), "switchover targets");
    b.click("#confirm-cancel").await;
    assert_eq!(b.js("return document.getElementById('confirm-dialog').open;").await, json!(false));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(b.js("return document.getElementById('message').hidden;").await, json!(true), "cancel ran an action");
    let admin = m.token().await;
    let master = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), &admin).await;
    assert_eq!(master["url"], sb.addr(1), "cancel moved the master");

    // Confirm a switchover to the third server.
    b.click("#cluster-actions button[data-action=\"switchover\"]").await;
    let select = b.c().find(Locator::Css("#confirm-target")).await.unwrap();
    select.select_by_value(&sb.addr(3)).await.unwrap();
    b.click("#confirm-ok").await;
    let (ok, topo) = wait_topology(&b, Duration::from_secs(40), &sb.addr(3), &[sb.addr(1), sb.addr(2)]).await;
    assert!(ok, "after the switchover the page shows {topo}; log:\n{}", m.log_text());
    let (ok, msg) = b
        .wait_js(Duration::from_secs(10), "const e = document.getElementById('message'); return [e.className, e.textContent];", |v| v[0] == "message ok")
        .await;
    assert!(ok, "switchover message: {msg}");
    let master = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), &admin).await;
    assert_eq!(master["url"], sb.addr(3), "the API agrees");
    assert_eq!(sb.sql(3, "SELECT @@read_only"), "0");
    assert_eq!(sb.sql(1, "SELECT @@read_only"), "1");
    let (ok, journal) = b
        .wait_js(Duration::from_secs(10), "return [...document.querySelectorAll('#journal tbody tr')].map(r => r.dataset.kind);", |v| v == &json!(["switchover"]))
        .await;
    assert!(ok, "journal: {journal}");

    b.screenshot("switchover").await;
    assert_no_console_errors(&b.console_errors().await, "during the switchover");
    b.stop().await;
    drop(m);
    drop(sb);
    cleanup(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_user_without_grants_sees_no_action_and_a_forbidden_call_shows_the_api_message() {
    let (sb, m, dir) = lab("dash-viewer", &[]).await;
    let mut b = Browser::start(&dir).await;
    b.login(&m.url("/"), "viewer", "view").await;
    let (ok, topo) = wait_topology(&b, Duration::from_secs(10), &sb.addr(1), &[sb.addr(2), sb.addr(3)]).await;
    assert!(ok, "a user without grants still sees the topology: {topo}");
    let rows = b.js("return document.querySelectorAll('#servers tbody tr').length;").await;
    assert_eq!(rows, json!(3), "server table drawn");
    let buttons = b.js("return [...document.querySelectorAll('button.action')].map(x => x.dataset.action);").await;
    assert_eq!(buttons, json!([]), "a user without grants sees action buttons");
    let jobs = b.js("return document.getElementById('jobs').textContent;").await;
    assert!(jobs.as_str().unwrap().contains("grant"), "{jobs}");
    // A few refreshes later, still none, and nothing failed in the console (no forbidden call
    // was made by the page).
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(b.js("return document.querySelectorAll('button.action').length;").await, json!(0));
    assert_no_console_errors(&b.console_errors().await, "for a user without grants");

    // The same call a button makes, forbidden: the page shows the API's answer.
    b.js("window.rmDashboard.runAction('failover'); return true;").await;
    let (ok, msg) = b
        .wait_js(Duration::from_secs(10), "const e = document.getElementById('message'); return [e.className, e.textContent];", |v| v[0] == "message error")
        .await;
    assert!(ok, "{msg}");
    let text = msg[1].as_str().unwrap();
    assert!(text.contains("403") && text.contains("No valid ACL"), "{text}");
    let admin = m.token().await;
    let master = m.get_json(&format!("/api/clusters/{CLUSTER}/topology/master"), &admin).await;
    assert_eq!(master["url"], sb.addr(1), "the forbidden failover ran");

    b.screenshot("viewer").await;
    b.stop().await;
    drop(m);
    drop(sb);
    cleanup(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_shows_its_own_view_and_forwards_actions_to_the_leader() {
    let lab = GroupLab::start(3, &["manager", "manager", "manager"], None, &[]).await;
    let leader = lab.active_nodes().await[0];
    let standby = lab.other(leader);
    let dir = temp_dir("dash-standby", slot());
    let mut b = Browser::start(&dir).await;
    b.login(&standby.url("/"), "admin", "repman").await;
    let (ok, topo) = wait_topology(&b, Duration::from_secs(15), &lab.sb.addr(1), &[lab.sb.addr(2), lab.sb.addr(3)]).await;
    assert!(ok, "the standby draws the topology: {topo}");
    let (ok, status) = b.wait_js(Duration::from_secs(10), "return document.getElementById('node-status').textContent;", |v| v.as_str().is_some_and(|t| t.contains("S · standby"))).await;
    assert!(ok, "node status on a standby: {status}");
    assert!(status.as_str().unwrap().contains(&format!("node {}", standby.id)), "{status}");
    assert!(status.as_str().unwrap().contains(&format!("leader node {leader}")), "{status}");

    // Maintenance on a replica, clicked on the standby, runs on the leader.
    let replica = lab.sb.addr(2);
    b.click(&format!("#servers tr[data-url=\"{replica}\"] button[data-action=\"maintenance\"]")).await;
    assert_eq!(b.js("return document.getElementById('confirm-dialog').open;").await, json!(true));
    b.click("#confirm-ok").await;
    let (ok, msg) = b
        .wait_js(Duration::from_secs(20), "const e = document.getElementById('message'); return [e.className, e.textContent];", |v| v[0] != "message running" && v[0] != "message")
        .await;
    assert!(ok, "{msg}");
    assert_eq!(msg[0], "message ok", "{msg}");
    assert!(msg[1].as_str().unwrap().contains(&format!("run by node {leader}")), "the leader ran it: {msg}");
    let (ok, badge) = b
        .wait_js(Duration::from_secs(10), &format!("return document.querySelector('#servers tr[data-url=\"{replica}\"]').textContent;"), |v| v.as_str().is_some_and(|t| t.contains("maintenance")))
        .await;
    assert!(ok, "the standby shows the maintenance flag replicated to it: {badge}");

    b.screenshot("standby").await;
    assert_no_console_errors(&b.console_errors().await, "on a standby");
    b.stop().await;
    let _ = std::fs::remove_dir_all(dir.join("chromium-profile"));
    lab.finish();
}
