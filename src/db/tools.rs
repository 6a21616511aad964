//! Copy of databases from one server to another with `mariadb-dump | mariadb`, used to rebuild
//! a server that cannot rejoin incrementally (`autorejoin-mysqldump`). The dump is a consistent
//! snapshot (`--single-transaction`) whose GTID position is read from its header.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use crate::config::{Credential, HostPort};

/// The first bytes of a `--gtid --master-data=2` dump are kept for its position...
const HEADER_SCAN_BYTES: usize = 1 << 20;
/// ...and its last bytes (mariadb-dump 10.11 writes the position at the end).
const TAIL_SCAN_BYTES: usize = 64 * 1024;

/// Extracts the last `gtid_slave_pos='...'` of a dump's text.
pub fn gtid_from_header(text: &str) -> Option<String> {
    let start = text.rfind("gtid_slave_pos='")? + "gtid_slave_pos='".len();
    let end = text[start..].find('\'')?;
    Some(text[start..start + end].to_string())
}

pub(crate) fn client(bin: &str, cred: &Credential, addr: &HostPort) -> Command {
    let mut c = Command::new(bin);
    c.arg(format!("--host={}", addr.host))
        .arg(format!("--port={}", addr.port))
        .arg(format!("--user={}", cred.user))
        .arg("--protocol=tcp")
        // The password goes through the environment, never the command line.
        .env("MYSQL_PWD", &cred.password)
        .kill_on_drop(true);
    c
}

/// Dumps `dbs` from `from` and loads them into `to` without writing `to`'s binary log.
/// Returns the GTID position of the snapshot.
pub async fn copy_databases(
    cred: &Credential,
    from: &HostPort,
    to: &HostPort,
    dbs: &[String],
    deadline: Duration,
) -> anyhow::Result<String> {
    tokio::time::timeout(deadline, copy(cred, from, to, dbs))
        .await
        .with_context(|| format!("dump of {from} into {to} did not finish within {deadline:?}"))?
}

async fn copy(cred: &Credential, from: &HostPort, to: &HostPort, dbs: &[String]) -> anyhow::Result<String> {
    let mut dump = client("mariadb-dump", cred, from);
    dump.args(["--single-transaction", "--gtid", "--master-data=2", "--routines", "--events", "--triggers"])
        .args(["--add-drop-database", "--databases"])
        .args(dbs);
    let (head, tail) = pipe_into_server(dump, "mariadb-dump", cred, to).await?;
    // mariadb-dump 10.11 writes the position at the end of the dump; older ones in the header.
    gtid_from_header(&String::from_utf8_lossy(&tail))
        .or_else(|| gtid_from_header(&String::from_utf8_lossy(&head)))
        .context("the dump has no gtid_slave_pos")
}

/// Undoes the transactions `server` wrote after `file:pos` (its own binary log, read remotely)
/// by applying `mariadb-binlog --flashback` output to it without binary logging.
pub async fn flashback(cred: &Credential, server: &HostPort, file: &str, pos: &str, deadline: Duration) -> anyhow::Result<()> {
    anyhow::ensure!(!file.is_empty() && pos.parse::<u64>().is_ok(), "no binlog coordinates to flash back from ({file}:{pos})");
    let mut reader = client("mariadb-binlog", cred, server);
    reader.args(["--read-from-remote-server", "--flashback", "--to-last-log"]).arg(format!("--start-position={pos}")).arg(file);
    tokio::time::timeout(deadline, pipe_into_server(reader, "mariadb-binlog --flashback", cred, server))
        .await
        .with_context(|| format!("flashback of {server} did not finish within {deadline:?}"))??;
    Ok(())
}

/// Runs `producer` and feeds its SQL output to a `mariadb` client on `to`, with binary logging
/// off for that session. Returns the first and the last bytes of the output (for the GTID
/// position, which a dump writes in its header or at its end).
pub(crate) async fn pipe_into_server(mut producer: Command, what: &str, cred: &Credential, to: &HostPort) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let mut source = producer
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {what}"))?;
    let mut load = client("mariadb", cred, to)
        .arg("--batch")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting mariadb client")?;
    let mut out = source.stdout.take().with_context(|| format!("{what} stdout"))?;
    let mut input = load.stdin.take().context("mariadb stdin")?;
    input.write_all(crate::db::sql::RESTORE_PREAMBLE).await.context("writing to mariadb")?;
    let mut header = Vec::new();
    let mut tail: std::collections::VecDeque<u8> = std::collections::VecDeque::with_capacity(TAIL_SCAN_BYTES);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = out.read(&mut buf).await.with_context(|| format!("reading {what} output"))?;
        if n == 0 {
            break;
        }
        if header.len() < HEADER_SCAN_BYTES {
            header.extend_from_slice(&buf[..n.min(HEADER_SCAN_BYTES - header.len())]);
        }
        tail.extend(&buf[..n]);
        let excess = tail.len().saturating_sub(TAIL_SCAN_BYTES);
        tail.drain(..excess);
        input.write_all(&buf[..n]).await.with_context(|| format!("loading {what} output into {to}"))?;
    }
    drop(input);
    let source_out = source.wait_with_output().await.with_context(|| format!("waiting for {what}"))?;
    let load_out = load.wait_with_output().await.context("waiting for mariadb")?;
    if !source_out.status.success() {
        bail!("{what} failed ({}): {}", source_out.status, String::from_utf8_lossy(&source_out.stderr).trim());
    }
    if !load_out.status.success() {
        bail!("loading into {to} failed ({}): {}", load_out.status, String::from_utf8_lossy(&load_out.stderr).trim());
    }
    Ok((header, tail.into_iter().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_position() {
        let h = "-- MariaDB dump\n-- Preferably use GTID to start replication from GTID position:\n\n-- SET GLOBAL gtid_slave_pos='0-2-15,1-1-3';\n";
        assert_eq!(gtid_from_header(h).as_deref(), Some("0-2-15,1-1-3"));
        assert_eq!(gtid_from_header("nothing"), None);
    }
}
