//! Real local receivers for alert tests: an SMTP server (Python's aiosmtpd, a separate
//! process stopped by PID), an HTTP webhook receiver (axum inside the test) and a Prometheus
//! server (a separate process stopped by PID), each on its own port and temp dir.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use super::wait_until;

/// A child process killed (by its PID) and reaped on drop.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(program: &str, args: &[String], log: PathBuf, what: &str) -> Proc {
    let out = std::fs::File::create(&log).expect("create receiver log");
    let err = out.try_clone().expect("clone log handle");
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what} ({program}): {e}; scripts/install-deps installs it"));
    Proc { child, log }
}

async fn port_open(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok()
}

/// aiosmtpd on 127.0.0.1:`port`, storing every mail in the Maildir `<dir>/maildir`.
pub struct SmtpReceiver {
    pub proc: Proc,
    pub mbox: PathBuf,
    pub port: u16,
}

impl SmtpReceiver {
    pub async fn start(dir: &Path, port: u16) -> SmtpReceiver {
        let mbox = dir.join("maildir");
        let args = ["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox", &mbox.display().to_string()]
            .map(str::to_string);
        // Debian's python3-aiosmtpd is installed for the system interpreter.
        let proc = spawn("/usr/bin/python3", &args, dir.join("smtp.log"), "the aiosmtpd SMTP receiver");
        let up = wait_until(Duration::from_secs(20), || port_open(port)).await;
        assert!(up, "aiosmtpd did not listen on {port}: {}", proc.log_text());
        SmtpReceiver { proc, mbox, port }
    }

    /// Every mail received so far, concatenated (the Maildir's `new` and `cur` files).
    pub fn mails(&self) -> String {
        let mut out = String::new();
        for sub in ["new", "cur"] {
            let Ok(entries) = std::fs::read_dir(self.mbox.join(sub)) else { continue };
            let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
            files.sort();
            for f in files {
                out.push_str(&std::fs::read_to_string(f).unwrap_or_default());
                out.push('\n');
            }
        }
        out
    }
}

/// An HTTP server collecting every JSON body POSTed to `/hook`.
pub struct WebhookReceiver {
    pub port: u16,
    pub bodies: Arc<Mutex<Vec<Value>>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    pub async fn start() -> WebhookReceiver {
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let store = bodies.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(v): axum::Json<Value>| {
                let store = store.clone();
                async move {
                    store.lock().unwrap().push(v);
                    "ok"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind webhook receiver");
        let port = listener.local_addr().expect("receiver address").port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        WebhookReceiver { port, bodies, task }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub fn received(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A Prometheus server on 127.0.0.1:`port` scraping `target` (`host:port`) every second.
pub struct PrometheusServer {
    pub proc: Proc,
    pub port: u16,
}

impl PrometheusServer {
    pub async fn start(dir: &Path, port: u16, target: &str) -> PrometheusServer {
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: replication-manager\n    metrics_path: /metrics\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let args = [
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("tsdb").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
            "--log.level=warn".to_string(),
        ];
        let proc = spawn("prometheus", &args, dir.join("prometheus.log"), "Prometheus");
        let up = wait_until(Duration::from_secs(30), || port_open(port)).await;
        assert!(up, "Prometheus did not listen on {port}: {}", proc.log_text());
        PrometheusServer { proc, port }
    }

    /// The instant vector `query` evaluates to (`data.result`), through the HTTP API.
    pub async fn query(&self, query: &str) -> Vec<Value> {
        let url = format!("http://127.0.0.1:{}/api/v1/query", self.port);
        let Ok(r) = super::http().get(&url).query(&[("query", query)]).send().await else { return Vec::new() };
        let v: Value = r.json().await.unwrap_or(Value::Null);
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}

/// Runs `promtool check metrics` on `text`; returns its exit success and output.
pub fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run promtool (Debian package prometheus, scripts/install-deps): {e}"));
    child.stdin.take().expect("promtool stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool output");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}
