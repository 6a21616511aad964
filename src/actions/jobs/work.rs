//! The jobs themselves: logical and physical backups, log copies, `OPTIMIZE`, and the restore
//! of a logical backup. Each runs its client tools with a deadline and returns an outcome.

use super::*;

pub(super) async fn run(
    kind: JobKind,
    addr: &HostPort,
    cred: &Credential,
    dir: &Path,
    deadline: Duration,
) -> anyhow::Result<Outcome> {
    match kind {
        JobKind::BackupLogical => backup_logical(addr, cred, dir).await,
        JobKind::BackupPhysical => backup_physical(addr, cred, dir).await,
        JobKind::BackupErrorLog => copy_server_log(addr, cred, dir, LogFile::Error).await,
        JobKind::BackupSlowQueryLog => copy_server_log(addr, cred, dir, LogFile::SlowQuery).await,
        JobKind::Optimize => optimize(addr, cred, deadline).await,
        JobKind::Reseed => Err(anyhow!("reseed jobs are run by the cluster monitor, not by the registry")),
    }
}

/// What a failed tool said: its last lines mentioning an error, else the end of its output.
pub(super) fn tool_error(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .filter(|l| {
            let l = l.to_ascii_lowercase();
            l.contains("error") || l.contains("fatal") || l.contains("denied") || l.contains("failed")
        })
        .collect();
    if lines.is_empty() {
        tail_chars(output)
    } else {
        tail_chars(&lines[lines.len().saturating_sub(MAX_ERROR_LINES)..].join("\n"))
    }
}

/// The last characters of a tool's output.
pub(super) fn tail_chars(s: &str) -> String {
    let s = s.trim();
    let n = s.chars().count();
    if n <= ERROR_TAIL_CHARS {
        s.to_string()
    } else {
        format!("...{}", s.chars().skip(n - ERROR_TAIL_CHARS).collect::<String>())
    }
}

pub(super) async fn backup_logical(addr: &HostPort, cred: &Credential, dir: &Path) -> anyhow::Result<Outcome> {
    let file = dir.join("dump.sql");
    let mut cmd = tools::client("mariadb-dump", cred, addr);
    cmd.args([
        "--all-databases",
        "--single-transaction",
        "--gtid",
        "--master-data=2",
        "--routines",
        "--events",
        "--triggers",
    ])
    .arg(format!("--result-file={}", file.display()))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    let out = cmd.output().await.context("starting mariadb-dump")?;
    if !out.status.success() {
        bail!("mariadb-dump of {addr} failed ({}): {}", out.status, tool_error(&String::from_utf8_lossy(&out.stderr)));
    }
    let size = tokio::fs::metadata(&file).await.with_context(|| format!("reading {}", file.display()))?.len();
    let gtid = gtid_of_dump(&file).await?;
    if gtid.is_none() {
        tracing::warn!(server = %addr, file = %file.display(), "logical backup has no gtid_slave_pos line");
    }
    Ok(Outcome { size_bytes: size, location: file.display().to_string(), gtid })
}

/// The position in a `-- SET GLOBAL gtid_slave_pos='...'` comment line of dump text (the last
/// one when several).
pub fn gtid_from_dump_text(text: &str) -> Option<String> {
    text.lines().rev().find(|l| l.starts_with("-- SET GLOBAL gtid_slave_pos='")).and_then(tools::gtid_from_header)
}

/// The GTID position recorded in a dump file. mariadb-dump 10.x writes it at the end of the
/// dump when `mysql` is dumped (after `mysql.gtid_slave_pos`), older ones in the header: both
/// ends are scanned.
pub async fn gtid_of_dump(file: &Path) -> anyhow::Result<Option<String>> {
    let mut f = tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
    let len = f.metadata().await.with_context(|| format!("reading {}", file.display()))?.len();
    let mut tail = Vec::new();
    let start = len.saturating_sub(DUMP_TAIL_BYTES);
    tokio::io::AsyncSeekExt::seek(&mut f, std::io::SeekFrom::Start(start)).await.context("seeking in the dump")?;
    (&mut f).take(DUMP_TAIL_BYTES).read_to_end(&mut tail).await.context("reading the dump")?;
    let tail = String::from_utf8_lossy(&tail);
    // The first line of a tail may be cut.
    let tail = if start > 0 { tail.split_once('\n').map_or("", |(_, rest)| rest) } else { &tail };
    if let Some(g) = gtid_from_dump_text(tail) {
        return Ok(Some(g));
    }
    let mut head = Vec::new();
    tokio::io::AsyncSeekExt::seek(&mut f, std::io::SeekFrom::Start(0)).await.context("seeking in the dump")?;
    (&mut f).take(DUMP_HEAD_BYTES).read_to_end(&mut head).await.context("reading the dump")?;
    Ok(gtid_from_dump_text(&String::from_utf8_lossy(&head)))
}

/// The `[client]` option file carrying a password (for tools without `MYSQL_PWD`).
pub(super) fn password_option_file(password: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !password.contains(['\n', '\r']),
        "the password contains a line break: not usable in an option file"
    );
    Ok(format!("[client]\npassword=\"{}\"\n", password.replace('\\', "\\\\").replace('"', "\\\"")))
}

/// Removes a file when dropped (a password file must not outlive its tool run).
pub(super) struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub(super) async fn admin_session(addr: &HostPort, cred: &Credential, statement_timeout: Duration) -> anyhow::Result<AdminConn> {
    AdminConn::connect(addr, cred, Flavor::MariaDB, ADMIN_TIMEOUT, statement_timeout).await.map_err(|e| anyhow!("{e}"))
}

pub(super) async fn files_of(addr: &HostPort, cred: &Credential) -> anyhow::Result<ServerFiles> {
    let mut c = admin_session(addr, cred, ADMIN_TIMEOUT).await?;
    let files = server_info::server_files(&mut c).await;
    c.close().await;
    files.map_err(|e| anyhow!("{e}"))
}

/// Runs `cmd` with stdout and stderr appended to `log`; the error carries the log's tail.
pub(super) async fn run_logged(mut cmd: Command, what: &str, log: &Path) -> anyhow::Result<()> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    let err = out.try_clone().with_context(|| format!("opening {}", log.display()))?;
    let status = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .status()
        .await
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        let text = tokio::fs::read(log).await.map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        bail!("{what} failed ({status}): {}", tool_error(&text));
    }
    Ok(())
}

pub(super) async fn backup_physical(addr: &HostPort, cred: &Credential, dir: &Path) -> anyhow::Result<Outcome> {
    let files = files_of(addr, cred).await?;
    let local = server_info::local_hostname();
    let datadir = Path::new(&files.datadir);
    if files.datadir.is_empty() || !server_info::runs_here(&files.hostname, &local) || !datadir.is_dir() {
        bail!(
            "physical backup needs the server's datadir on the manager host ({addr} runs on host {:?} with datadir {:?}; the manager runs on {:?})",
            files.hostname,
            files.datadir,
            local
        );
    }
    let cnf = dir.join("backup.cnf");
    crate::files::write_private(&cnf, password_option_file(&cred.password)?.as_bytes())?;
    let cnf_guard = RemoveOnDrop(cnf.clone());
    let target = dir.join("data");
    let log = dir.join("backup.log");
    let mut backup = Command::new("mariadb-backup");
    // --defaults-extra-file must come first.
    backup
        .arg(format!("--defaults-extra-file={}", cnf.display()))
        .arg("--backup")
        .arg(format!("--target-dir={}", target.display()))
        .arg(format!("--host={}", addr.host))
        .arg(format!("--port={}", addr.port))
        .arg(format!("--user={}", cred.user))
        .arg("--protocol=tcp");
    run_logged(backup, "mariadb-backup --backup", &log).await?;
    drop(cnf_guard);
    let mut prepare = Command::new("mariadb-backup");
    prepare.arg("--prepare").arg(format!("--target-dir={}", target.display()));
    run_logged(prepare, "mariadb-backup --prepare", &log).await?;
    let size = tokio::task::spawn_blocking({
        let target = target.clone();
        move || dir_size(&target)
    })
    .await
    .context("sizing the backup")?;
    Ok(Outcome { size_bytes: size, location: target.display().to_string(), gtid: None })
}

/// Bytes of the files under `dir` (bounded walk; symlinks not followed).
pub(super) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            seen += 1;
            if seen > MAX_WALK_ENTRIES {
                return total;
            }
            let Ok(meta) = e.metadata() else { continue };
            if meta.is_dir() && depth < MAX_WALK_DEPTH {
                stack.push((e.path(), depth + 1));
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[derive(Debug, Clone, Copy)]
pub(super) enum LogFile {
    Error,
    SlowQuery,
}

pub(super) async fn copy_server_log(addr: &HostPort, cred: &Credential, dir: &Path, which: LogFile) -> anyhow::Result<Outcome> {
    let files = files_of(addr, cred).await?;
    let (what, value, default_name) = match which {
        LogFile::Error => ("error log", files.log_error.clone(), "error.log"),
        LogFile::SlowQuery => ("slow query log", files.slow_query_log_file.clone(), "slow.log"),
    };
    let source = server_info::readable_server_file(&files, &value)
        .map_err(|why| anyhow!("{what} {value:?} of {addr} is not readable from the manager host ({why})"))?;
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| default_name.to_string());
    let dest = dir.join(name);
    let size = tokio::fs::copy(&source, &dest)
        .await
        .with_context(|| format!("copying {} to {}", source.display(), dest.display()))?;
    Ok(Outcome { size_bytes: size, location: dest.display().to_string(), gtid: None })
}


pub(super) async fn optimize(addr: &HostPort, cred: &Credential, deadline: Duration) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let mut c = admin_session(addr, cred, deadline).await?;
    let (_, rows) = c.rows_within(crate::db::sql::OPTIMIZE_TABLES, ADMIN_TIMEOUT).await.map_err(|e| anyhow!("{e}"))?;
    let mut failures: Vec<String> = Vec::new();
    let mut size = 0u64;
    for r in &rows {
        let (Some(Some(schema)), Some(Some(table))) = (r.first(), r.get(1)) else { continue };
        let name = format!("{}.{}", crate::db::sql::quote_ident(schema), crate::db::sql::quote_ident(table));
        let remaining = deadline.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            failures.push(format!("{name}: no time left"));
            continue;
        }
        match c.rows_within(&crate::db::sql::optimize_table(schema, table), remaining).await {
            Ok((cols, result)) => {
                let msg_type = cols.iter().position(|c| c.eq_ignore_ascii_case("Msg_type")).unwrap_or(2);
                let msg_text = cols.iter().position(|c| c.eq_ignore_ascii_case("Msg_text")).unwrap_or(3);
                let errors: Vec<String> = result
                    .iter()
                    .filter(|row| row.get(msg_type).cloned().flatten().is_some_and(|t| t.eq_ignore_ascii_case("error")))
                    .map(|row| row.get(msg_text).cloned().flatten().unwrap_or_default())
                    .collect();
                if errors.is_empty() {
                    size += r.get(2).cloned().flatten().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                } else {
                    failures.push(format!("{name}: {}", errors.join("; ")));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    c.close().await;
    if !failures.is_empty() {
        let listed: Vec<&str> = failures.iter().take(MAX_LISTED_FAILURES).map(String::as_str).collect();
        let more = failures.len().saturating_sub(MAX_LISTED_FAILURES);
        let suffix = if more > 0 { format!(" (and {more} more)") } else { String::new() };
        bail!("{} of {} tables failed: {}{suffix}", failures.len(), rows.len(), listed.join(" | "));
    }
    Ok(Outcome { size_bytes: size, location: String::new(), gtid: None })
}

/// Loads a logical backup into `target` without binary logging; returns the GTID position
/// recorded in the dump header.
pub async fn restore_logical(
    job: &Job,
    target: &HostPort,
    cred: &Credential,
    deadline: Duration,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        job.kind == JobKind::BackupLogical,
        "job {} is a {} job, not a logical backup",
        job.id,
        job.kind.as_str()
    );
    anyhow::ensure!(job.state == DONE, "backup {} is {}, not done", job.id, job.state);
    let file = PathBuf::from(&job.location);
    tokio::time::timeout(deadline, restore(&file, target, cred))
        .await
        .with_context(|| format!("restore of {} into {target} did not finish within {deadline:?}", file.display()))?
        .with_context(|| format!("restoring backup {} into {target}", job.id))
}

pub(super) async fn restore(file: &Path, target: &HostPort, cred: &Credential) -> anyhow::Result<String> {
    let gtid = gtid_of_dump(file).await?.with_context(|| format!("{} records no gtid_slave_pos", file.display()))?;
    let mut source = tokio::fs::File::open(file).await.with_context(|| format!("opening {}", file.display()))?;
    let mut load = tools::client("mariadb", cred, target)
        .args(["--batch", "--binary-mode"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mariadb client")?;
    let mut input = load.stdin.take().context("mariadb stdin")?;
    // A write error means the client stopped (its stderr says why): report that instead.
    let fed: anyhow::Result<()> = async {
        input.write_all(crate::db::sql::RESTORE_PREAMBLE).await?;
        tokio::io::copy(&mut source, &mut input).await?;
        input.shutdown().await?;
        Ok(())
    }
    .await;
    drop(input);
    let out = load.wait_with_output().await.context("waiting for mariadb")?;
    if !out.status.success() {
        bail!("mariadb failed ({}): {}", out.status, tool_error(&String::from_utf8_lossy(&out.stderr)));
    }
    fed.context("feeding the dump to mariadb")?;
    Ok(gtid)
}
