//! Long server actions run as background jobs: logical and physical backups, copies of the
//! error and slow-query logs, and `OPTIMIZE TABLE` of the user schemas. `JobRegistry` owns the
//! job list (persisted in `<datadir>/jobs.json`) and the artifacts under
//! `<datadir>/backups/<cluster>/<server>/<job-id>/`; `restore_logical` loads a logical backup
//! into a server.
//!
//! Every job is bounded by its deadline; its child processes are killed when it expires
//! (`kill_on_drop`). Passwords never appear on a command line.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::db::conn::AdminConn;
use crate::config::{Credential, HostPort};
use crate::db::tools;
use crate::actions::server_info::{self, ServerFiles};
use crate::db::sql::Flavor;

mod work;

pub use work::restore_logical;
use work::*;

// ---- bounds ------------------------------------------------------------------------------------

/// Jobs kept in the list (the oldest finished ones are forgotten beyond; their files stay).
const MAX_JOBS: usize = 1000;
/// Connect and short-statement deadline of the jobs' admin sessions.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes scanned at each end of a dump for its GTID position.
const DUMP_HEAD_BYTES: u64 = 1 << 20;
const DUMP_TAIL_BYTES: u64 = 256 << 10;
/// Characters of a tool's output kept in a job error, and its error lines kept.
const ERROR_TAIL_CHARS: usize = 2000;
const MAX_ERROR_LINES: usize = 5;
/// Table failures listed in an optimize job's error (the rest are counted).
const MAX_LISTED_FAILURES: usize = 20;
/// Bounds of the walk that sums a physical backup's size.
const MAX_WALK_ENTRIES: usize = 1_000_000;
const MAX_WALK_DEPTH: usize = 16;

/// State of a job that has not finished.
pub const RUNNING: &str = "running";
/// State of a job that finished successfully.
pub const DONE: &str = "done";
/// State of a job that failed, timed out or was interrupted.
pub const FAILED: &str = "failed";

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JobKind {
    BackupLogical,
    BackupPhysical,
    BackupErrorLog,
    BackupSlowQueryLog,
    Optimize,
    /// A replica rebuilt from a backup or the master; run by the cluster monitor's executor
    /// (leadership-checked), tracked here like the other jobs.
    Reseed,
}

impl JobKind {
    /// The kebab-case name (as serialized).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::BackupLogical => "backup-logical",
            JobKind::BackupPhysical => "backup-physical",
            JobKind::BackupErrorLog => "backup-error-log",
            JobKind::BackupSlowQueryLog => "backup-slow-query-log",
            JobKind::Optimize => "optimize",
            JobKind::Reseed => "reseed",
        }
    }
}

/// One job, as listed by the API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// `<yyyymmdd-hhmmss>-<kind>-<4 hex>`: unique, sortable, usable as a directory name.
    pub id: String,
    pub cluster: String,
    /// `host:port`.
    pub server: String,
    pub kind: JobKind,
    /// `running`, `done` or `failed`.
    pub state: String,
    /// Unix seconds.
    pub started_at: u64,
    /// Unix seconds.
    pub ended_at: Option<u64>,
    /// Bytes of the artifact (for optimize: data + index bytes of the tables optimized).
    pub size_bytes: u64,
    /// Path of the artifact on the manager host (dump file, backup directory, log copy);
    /// empty for optimize.
    pub location: String,
    pub error: Option<String>,
    /// For logical backups: the GTID position of the snapshot (`gtid_slave_pos` of the dump).
    pub gtid: Option<String>,
}

impl Job {
    /// A job that just started.
    fn running(id: String, kind: JobKind, cluster: &str, server: &str, started_at: u64) -> Job {
        Job {
            id,
            cluster: cluster.to_string(),
            server: server.to_string(),
            kind,
            state: RUNNING.to_string(),
            started_at,
            ended_at: None,
            size_bytes: 0,
            location: String::new(),
            error: None,
            gtid: None,
        }
    }
}

/// What a finished runner produced.
#[derive(Debug, Default)]
struct Outcome {
    size_bytes: u64,
    location: String,
    gtid: Option<String>,
}

/// The manager's jobs: started here, listed by the API, persisted across restarts.
pub struct JobRegistry {
    datadir: PathBuf,
    /// Oldest first.
    jobs: Mutex<Vec<Job>>,
}

impl JobRegistry {
    /// Jobs live under <datadir>/backups/<cluster>/<server>/<job-id>/ ; the list is persisted
    /// (atomic write+rename, 0600) in <datadir>/jobs.json; on load, jobs still "running" become
    /// "failed" with error "interrupted by a manager restart". An unreadable list is set aside
    /// as `jobs.json.corrupt` and the registry starts empty.
    pub fn open(datadir: &Path) -> anyhow::Result<Arc<JobRegistry>> {
        std::fs::create_dir_all(datadir).with_context(|| format!("creating {}", datadir.display()))?;
        let path = datadir.join("jobs.json");
        let mut jobs: Vec<Job> = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(jobs) => jobs,
                Err(e) => {
                    let aside = datadir.join("jobs.json.corrupt");
                    tracing::warn!(file = %path.display(), error = %e, "job list unreadable: set aside, starting empty");
                    std::fs::rename(&path, &aside).with_context(|| format!("moving {} aside", path.display()))?;
                    Vec::new()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let now = server_info::now_unix();
        let mut interrupted = 0;
        for j in jobs.iter_mut().filter(|j| j.state == RUNNING) {
            j.state = FAILED.to_string();
            j.ended_at = Some(now);
            j.error = Some("interrupted by a manager restart".to_string());
            interrupted += 1;
        }
        trim(&mut jobs);
        let registry = JobRegistry { datadir: datadir.to_path_buf(), jobs: Mutex::new(jobs) };
        if interrupted > 0 {
            tracing::warn!(count = interrupted, "jobs interrupted by a manager restart marked failed");
            let jobs = registry.lock();
            registry.persist(&jobs)?;
            drop(jobs);
        }
        Ok(Arc::new(registry))
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn persist(&self, jobs: &[Job]) -> anyhow::Result<()> {
        let data = serde_json::to_vec_pretty(jobs).context("encoding the job list")?;
        crate::files::write_private(&self.datadir.join("jobs.json"), &data)
    }

    fn persist_or_warn(&self, jobs: &[Job]) {
        if let Err(e) = self.persist(jobs) {
            tracing::warn!(error = %format!("{e:#}"), "job list not saved");
        }
    }

    /// The directory of one job's artifacts.
    fn job_dir(&self, cluster: &str, server: &str, id: &str) -> PathBuf {
        self.datadir.join("backups").join(path_component(cluster)).join(path_component(server)).join(id)
    }

    /// Starts the job in the background (tokio::spawn) and returns it at once (state running).
    /// Refuses (Err with a clear message) when the same kind already runs on that server. Each
    /// job is bounded by `deadline` (kill child processes on timeout: kill_on_drop).
    pub fn start(
        self: &Arc<Self>,
        kind: JobKind,
        cluster: &str,
        server: &HostPort,
        cred: &Credential,
        deadline: Duration,
    ) -> Result<Job, String> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| "jobs need the async runtime".to_string())?;
        let server_key = server.to_string();
        let (job, dir) = {
            let mut jobs = self.lock();
            if let Some(j) = jobs.iter().find(|j| j.state == RUNNING && j.server == server_key && j.kind == kind) {
                return Err(format!("a {} job ({}) is already running on {server_key}", kind.as_str(), j.id));
            }
            let started_at = server_info::now_unix();
            let mut id = new_job_id(kind, started_at);
            for _ in 0..16 {
                if !jobs.iter().any(|j| j.id == id) {
                    break;
                }
                id = new_job_id(kind, started_at);
            }
            let dir = self.job_dir(cluster, &server_key, &id);
            if kind != JobKind::Optimize {
                create_private_dir(&dir)
                    .map_err(|e| format!("cannot create the job directory {}: {e}", dir.display()))?;
            }
            let job = Job::running(id, kind, cluster, &server_key, started_at);
            jobs.push(job.clone());
            trim(&mut jobs);
            self.persist_or_warn(&jobs);
            (job, dir)
        };
        tracing::info!(cluster, server = %server_key, job = %job.id, kind = kind.as_str(), ?deadline, "job started");
        let registry = Arc::clone(self);
        let (server, cred, id) = (server.clone(), cred.clone(), job.id.clone());
        runtime.spawn(async move {
            let started = Instant::now();
            let result = match tokio::time::timeout(deadline, run(kind, &server, &cred, &dir, deadline)).await {
                Ok(r) => r,
                Err(_) => Err(anyhow!("did not finish within {deadline:?}")),
            };
            if result.is_err() {
                remove_artifacts(kind, &dir).await;
            }
            registry.finish(&id, result, started.elapsed());
        });
        Ok(job)
    }

    /// Records a job that runs elsewhere (a reseed) and returns it (state running); refuses
    /// when the same kind already runs on that server.
    pub fn track(&self, kind: JobKind, cluster: &str, server: &HostPort) -> Result<Job, String> {
        let server_key = server.to_string();
        let mut jobs = self.lock();
        if let Some(j) = jobs.iter().find(|j| j.state == RUNNING && j.server == server_key && j.kind == kind) {
            return Err(format!("a {} job ({}) is already running on {server_key}", kind.as_str(), j.id));
        }
        let started_at = server_info::now_unix();
        let job = Job::running(new_job_id(kind, started_at), kind, cluster, &server_key, started_at);
        jobs.push(job.clone());
        trim(&mut jobs);
        self.persist_or_warn(&jobs);
        Ok(job)
    }

    /// Ends a tracked job with its outcome (a message on success, the error otherwise).
    pub fn complete(&self, id: &str, result: Result<String, String>, took: Duration) {
        let outcome = result.map(|msg| Outcome { location: msg, ..Outcome::default() }).map_err(|e| anyhow!(e));
        self.finish(id, outcome, took);
    }

    fn finish(&self, id: &str, result: anyhow::Result<Outcome>, took: Duration) {
        let mut jobs = self.lock();
        let Some(job) = jobs.iter_mut().find(|j| j.id == id) else { return };
        job.ended_at = Some(server_info::now_unix());
        match result {
            Ok(o) => {
                job.state = DONE.to_string();
                job.size_bytes = o.size_bytes;
                job.location = o.location;
                job.gtid = o.gtid;
                tracing::info!(cluster = %job.cluster, server = %job.server, job = %job.id, kind = job.kind.as_str(),
                    size = job.size_bytes, ?took, "job done");
            }
            Err(e) => {
                let msg = format!("{e:#}");
                tracing::warn!(cluster = %job.cluster, server = %job.server, job = %job.id, kind = job.kind.as_str(),
                    ?took, error = %msg, "job failed");
                job.state = FAILED.to_string();
                job.error = Some(msg);
            }
        }
        self.persist_or_warn(&jobs);
    }

    /// The jobs of `cluster`, newest first.
    pub fn list(&self, cluster: &str) -> Vec<Job> {
        self.lock().iter().rev().filter(|j| j.cluster == cluster).cloned().collect()
    }

    /// The newest finished (`done`) job of `kind` on `server` of `cluster`.
    /// One job by id.
    #[cfg(test)]
    pub fn get(&self, id: &str) -> Option<Job> {
        self.lock().iter().find(|j| j.id == id).cloned()
    }

    #[cfg(test)]
    pub fn latest_done(&self, cluster: &str, server: &HostPort, kind: JobKind) -> Option<Job> {
        let server = server.to_string();
        self.lock()
            .iter()
            .rev()
            .find(|j| j.cluster == cluster && j.server == server && j.kind == kind && j.state == DONE)
            .cloned()
    }
}

/// Drops the oldest finished jobs beyond [`MAX_JOBS`] (running ones are kept).
fn trim(jobs: &mut Vec<Job>) {
    let mut excess = jobs.len().saturating_sub(MAX_JOBS);
    jobs.retain(|j| {
        if excess > 0 && j.state != RUNNING {
            excess -= 1;
            false
        } else {
            true
        }
    });
}

fn new_job_id(kind: JobKind, started_at: u64) -> String {
    let ts = crate::cluster::log::format_timestamp(std::time::UNIX_EPOCH + Duration::from_secs(started_at));
    let compact: String = ts.chars().filter(|c| c.is_ascii_digit() || *c == ' ').collect();
    format!("{}-{}-{:04x}", compact.replace(' ', "-"), kind.as_str(), rand::random::<u16>())
}

/// A cluster or server name made safe as one path component.
fn path_component(s: &str) -> String {
    let c: String =
        s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-:[]@".contains(c) { c } else { '_' }).collect();
    if c.is_empty() || c == "." || c == ".." {
        "_".to_string()
    } else {
        c
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}


/// Removes what a failed job left (keeping its tool log for diagnosis).
async fn remove_artifacts(kind: JobKind, dir: &Path) {
    let r = match kind {
        JobKind::BackupLogical => tokio::fs::remove_file(dir.join("dump.sql")).await,
        JobKind::BackupPhysical => tokio::fs::remove_dir_all(dir.join("data")).await,
        JobKind::BackupErrorLog | JobKind::BackupSlowQueryLog | JobKind::Optimize | JobKind::Reseed => return,
    };
    if let Err(e) = r {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "partial backup not removed");
        }
    }
}

// ---- runners -----------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("rmu-jobs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn job(id: &str, cluster: &str, kind: JobKind, state: &str) -> Job {
        Job {
            id: id.to_string(),
            cluster: cluster.to_string(),
            server: "127.0.0.1:3306".to_string(),
            kind,
            state: state.to_string(),
            started_at: 1,
            ended_at: None,
            size_bytes: 0,
            location: String::new(),
            error: None,
            gtid: None,
        }
    }

    #[test]
    fn dump_positions() {
        let tail = "UNLOCK TABLES;\n-- The deferred gtid setting for slave corresponding to the master-data CHANGE-MASTER follows\n\n\
                    -- Preferably use GTID to start replication from GTID position:\n\n-- SET GLOBAL gtid_slave_pos='0-1-3,1-2-9';\n\
                    /*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;\n";
        assert_eq!(gtid_from_dump_text(tail).as_deref(), Some("0-1-3,1-2-9"));
        assert_eq!(gtid_from_dump_text("-- SET GLOBAL gtid_slave_pos='';\n").as_deref(), Some(""));
        // Data mentioning the variable is not a position line.
        assert_eq!(gtid_from_dump_text("INSERT INTO t VALUES ('gtid_slave_pos=''x''');\n"), None);
    }

    #[tokio::test]
    async fn dump_position_at_either_end() {
        let d = temp_dir("gtid");
        let big = "INSERT INTO t VALUES (1);\n".repeat(100_000);
        let tail_file = d.join("tail.sql");
        std::fs::write(&tail_file, format!("-- header\n{big}-- SET GLOBAL gtid_slave_pos='0-1-42';\n")).unwrap();
        assert_eq!(gtid_of_dump(&tail_file).await.unwrap().as_deref(), Some("0-1-42"));
        let head_file = d.join("head.sql");
        std::fs::write(&head_file, format!("-- SET GLOBAL gtid_slave_pos='0-1-7';\n{big}")).unwrap();
        assert_eq!(gtid_of_dump(&head_file).await.unwrap().as_deref(), Some("0-1-7"));
        let none = d.join("none.sql");
        std::fs::write(&none, &big).unwrap();
        assert_eq!(gtid_of_dump(&none).await.unwrap(), None);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn identifiers_and_paths() {
        assert_eq!(crate::db::sql::quote_ident("t"), "`t`");
        assert_eq!(crate::db::sql::quote_ident("we`ird"), "`we``ird`");
        assert_eq!(path_component("127.0.0.1:3306"), "127.0.0.1:3306");
        assert_eq!(path_component("../etc"), ".._etc");
        assert_eq!(path_component(".."), "_");
        assert_eq!(path_component(""), "_");
        assert_eq!(path_component("a/b c"), "a_b_c");
        let id = new_job_id(JobKind::BackupLogical, 1_795_891_678);
        assert!(id.starts_with("20261128-184758-backup-logical-"), "{id}");
    }

    #[test]
    fn option_file_escapes_the_password() {
        assert_eq!(password_option_file(r#"a"b\c#d' e"#).unwrap(), "[client]\npassword=\"a\\\"b\\\\c#d' e\"\n");
        assert!(password_option_file("a\nb").is_err());
    }

    #[test]
    fn reload_marks_running_jobs_interrupted() {
        let d = temp_dir("reload");
        let jobs = vec![
            job("1-a", "c1", JobKind::BackupLogical, DONE),
            job("2-b", "c1", JobKind::Optimize, RUNNING),
            job("3-c", "c2", JobKind::BackupLogical, DONE),
        ];
        std::fs::write(d.join("jobs.json"), serde_json::to_vec(&jobs).unwrap()).unwrap();
        let r = JobRegistry::open(&d).unwrap();
        let b = r.get("2-b").unwrap();
        assert_eq!(b.state, FAILED);
        assert_eq!(b.error.as_deref(), Some("interrupted by a manager restart"));
        assert!(b.ended_at.is_some());
        let listed: Vec<String> = r.list("c1").into_iter().map(|j| j.id).collect();
        assert_eq!(listed, vec!["2-b", "1-a"]);
        let server = HostPort { host: "127.0.0.1".to_string(), port: 3306 };
        assert_eq!(r.latest_done("c1", &server, JobKind::BackupLogical).unwrap().id, "1-a");
        assert!(r.latest_done("c1", &server, JobKind::Optimize).is_none());
        // The change was saved, owner-only.
        use std::os::unix::fs::PermissionsExt;
        let saved: Vec<Job> = serde_json::from_slice(&std::fs::read(d.join("jobs.json")).unwrap()).unwrap();
        assert_eq!(saved[1].state, FAILED);
        assert_eq!(std::fs::metadata(d.join("jobs.json")).unwrap().permissions().mode() & 0o777, 0o600);
        // A corrupt list is set aside.
        std::fs::write(d.join("jobs.json"), b"{not json").unwrap();
        let r = JobRegistry::open(&d).unwrap();
        assert!(r.list("c1").is_empty());
        assert!(d.join("jobs.json.corrupt").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn trimming_keeps_running_jobs() {
        let mut jobs: Vec<Job> =
            (0..MAX_JOBS + 5).map(|i| job(&format!("{i:05}"), "c", JobKind::Optimize, DONE)).collect();
        jobs[0].state = RUNNING.to_string();
        trim(&mut jobs);
        assert_eq!(jobs.len(), MAX_JOBS);
        assert_eq!(jobs[0].id, "00000");
        assert_eq!(jobs[1].id, "00006");
    }

    #[test]
    fn start_needs_a_runtime() {
        let d = temp_dir("nort");
        let r = JobRegistry::open(&d).unwrap();
        let server = HostPort { host: "127.0.0.1".to_string(), port: 1 };
        let cred = Credential { user: "u".to_string(), password: "p".to_string() };
        let e = r.start(JobKind::Optimize, "c", &server, &cred, Duration::from_secs(1)).unwrap_err();
        assert!(e.contains("runtime"), "{e}");
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[cfg(test)]
mod sandbox_tests {
    use super::*;
    use crate::actions::server_info::test_sandbox::TestSandbox;

    async fn wait_finished(r: &JobRegistry, id: &str, limit: Duration) -> Job {
        let deadline = Instant::now() + limit;
        loop {
            let j = r.get(id).unwrap();
            if j.state != RUNNING {
                return j;
            }
            assert!(Instant::now() < deadline, "job {id} still running after {limit:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn secs(j: &Job) -> u64 {
        j.ended_at.unwrap_or(j.started_at) - j.started_at
    }

    /// Logical backup + restore into a second server, physical backup, log copies, optimize.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn jobs_against_a_sandbox() {
        let sb = TestSandbox::start(2);
        sb.sql(
            1,
            "SET GLOBAL read_only = 0; CREATE DATABASE IF NOT EXISTS app; CREATE TABLE app.t (id INT PRIMARY KEY, v VARCHAR(20)); \
             INSERT INTO app.t VALUES (1,'a'),(2,'b'),(3,'c'); CREATE TABLE app.`o'dd` (id INT) ENGINE=Aria; \
             INSERT INTO app.`o'dd` VALUES (1); SET GLOBAL slow_query_log = ON",
        );
        let (addr, cred) = (sb.addr(1), sb.cred());
        let datadir = std::env::temp_dir().join(format!("rmu-jobs-sb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&datadir);
        let _cleanup = RemoveDirOnDrop(datadir.clone());
        let r = JobRegistry::open(&datadir).unwrap();
        let deadline = Duration::from_secs(120);

        let t = Instant::now();
        let logical = r.start(JobKind::BackupLogical, "c1", &addr, &cred, deadline).unwrap();
        assert_eq!(logical.state, RUNNING);
        let refused = r.start(JobKind::BackupLogical, "c1", &addr, &cred, deadline).unwrap_err();
        assert!(refused.contains("already running"), "{refused}");
        let logical = wait_finished(&r, &logical.id, Duration::from_secs(60)).await;
        eprintln!("backup-logical: {:?} ({} bytes)", t.elapsed(), logical.size_bytes);
        assert_eq!(logical.state, DONE, "{logical:?}");
        let gtid = logical.gtid.clone().unwrap();
        assert!(gtid.starts_with("0-1-"), "{gtid}");
        let file = PathBuf::from(&logical.location);
        assert!(
            file.starts_with(datadir.join("backups/c1/127.0.0.1:".to_string() + &addr.port.to_string())),
            "{file:?}"
        );
        assert_eq!(std::fs::metadata(&file).unwrap().len(), logical.size_bytes);
        assert!(logical.size_bytes > 0);
        assert!(secs(&logical) < 60);
        assert_eq!(r.latest_done("c1", &addr, JobKind::BackupLogical).unwrap().id, logical.id);

        let t = Instant::now();
        let pos = restore_logical(&logical, &sb.addr(2), &cred, deadline).await.unwrap();
        eprintln!("restore-logical: {:?}", t.elapsed());
        assert_eq!(pos, gtid);
        assert_eq!(sb.sql(2, "SELECT COUNT(*) FROM app.t"), "3");
        assert_eq!(sb.sql(2, "SELECT COUNT(*) FROM app.`o'dd`"), "1");
        // Not binary-logged on the target.
        assert_eq!(sb.sql(2, "SELECT @@gtid_binlog_pos"), "");

        let t = Instant::now();
        let physical = r.start(JobKind::BackupPhysical, "c1", &addr, &cred, deadline).unwrap();
        let physical = wait_finished(&r, &physical.id, Duration::from_secs(90)).await;
        eprintln!("backup-physical: {:?} ({} bytes)", t.elapsed(), physical.size_bytes);
        assert_eq!(physical.state, DONE, "{physical:?}");
        let data = PathBuf::from(&physical.location);
        assert!(data.join("xtrabackup_checkpoints").exists());
        assert!(data.join("app/t.ibd").exists());
        assert!(physical.size_bytes > 1 << 20);
        assert!(!data.parent().unwrap().join("backup.cnf").exists(), "password file left behind");

        for kind in [JobKind::BackupErrorLog, JobKind::BackupSlowQueryLog] {
            let t = Instant::now();
            let j = r.start(kind, "c1", &addr, &cred, deadline).unwrap();
            let j = wait_finished(&r, &j.id, Duration::from_secs(30)).await;
            eprintln!("{}: {:?} ({} bytes)", kind.as_str(), t.elapsed(), j.size_bytes);
            assert_eq!(j.state, DONE, "{j:?}");
            assert_eq!(std::fs::metadata(&j.location).unwrap().len(), j.size_bytes);
        }

        // (mariadb-backup 10.11 cannot back up a table whose name holds a backtick: made only now.)
        sb.sql(1, "CREATE TABLE app.`we``ird` (id INT) ENGINE=Aria; INSERT INTO app.`we``ird` VALUES (1)");
        let binlog_before = sb.sql(1, "SELECT @@gtid_binlog_pos");
        let t = Instant::now();
        let opt = r.start(JobKind::Optimize, "c1", &addr, &cred, deadline).unwrap();
        let opt = wait_finished(&r, &opt.id, Duration::from_secs(60)).await;
        eprintln!("optimize: {:?}", t.elapsed());
        assert_eq!(opt.state, DONE, "{opt:?}");
        assert!(opt.error.is_none());
        // Not binary-logged (so not replicated).
        assert_eq!(sb.sql(1, "SELECT @@gtid_binlog_pos"), binlog_before);
        assert_eq!(sb.sql(1, "SELECT COUNT(*) FROM app.`we``ird`"), "1");

        // A job bounded by a tiny deadline fails with the reason.
        let slow = r.start(JobKind::BackupPhysical, "c1", &addr, &cred, Duration::from_millis(1)).unwrap();
        let slow = wait_finished(&r, &slow.id, Duration::from_secs(10)).await;
        assert_eq!(slow.state, FAILED);
        assert!(slow.error.as_deref().unwrap().contains("did not finish within"), "{slow:?}");

        // A dead server: the job fails, the registry stays usable.
        let dead = HostPort { host: "127.0.0.1".to_string(), port: sb.addr(2).port + 1 };
        let j = r.start(JobKind::BackupLogical, "c1", &dead, &cred, deadline).unwrap();
        let j = wait_finished(&r, &j.id, Duration::from_secs(30)).await;
        assert_eq!(j.state, FAILED);
        assert!(j.error.as_deref().unwrap().contains("mariadb-dump"), "{j:?}");

        // Listed newest first, and persisted.
        let listed = r.list("c1");
        assert_eq!(listed.len(), 7);
        assert_eq!(listed[0].id, j.id);
        let reopened = JobRegistry::open(&datadir).unwrap();
        assert_eq!(reopened.list("c1"), listed);
    }

    /// Removes the test's manager datadir, also when the test fails.
    struct RemoveDirOnDrop(PathBuf);

    impl Drop for RemoveDirOnDrop {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
