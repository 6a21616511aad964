//! `rm-farm`: a simulated MariaDB server farm for scale benchmarks of the manager. One process
//! listens on many 127.0.0.1 ports; each port answers the manager's probe like a MariaDB 10.11
//! server of a GTID replication cluster, and a control port kills, freezes or lags servers.

mod answer;
mod control;
mod listener;
mod model;
mod session;
mod statement;
mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use crate::model::{Farm, Layout};
use crate::session::{Credential, Shared};

/// Command line of `rm-farm`.
#[derive(Debug, Parser)]
#[command(name = "rm-farm", version, about = "Simulated MariaDB GTID replication clusters on 127.0.0.1")]
struct Args {
    /// Number of clusters.
    #[arg(long)]
    clusters: u16,
    /// Servers per cluster: server 0 is the master, the others replicate from it.
    #[arg(long)]
    servers_per_cluster: u16,
    /// Cluster c's server s listens on BASE_PORT + c*K + s.
    #[arg(long)]
    base_port: u16,
    /// The account every server accepts (mysql_native_password).
    #[arg(long, default_value = "root")]
    user: String,
    /// Its password (empty: none).
    #[arg(long, default_value = "")]
    password: String,
    /// Control port on 127.0.0.1 (0: any free port, written to the ready file); none if absent.
    #[arg(long)]
    control_port: Option<u16>,
    /// Once every listener is bound, write a JSON description of the farm here.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let args = Args::parse();
    let layout = Layout::new(args.clusters, args.servers_per_cluster, args.base_port).context("--clusters, --servers-per-cluster, --base-port")?;
    let started = Instant::now();
    let farm = Arc::new(Farm::new(layout, started));
    raise_descriptor_limit(layout.len());

    // Every port bound before anything is announced: a port in use fails the start.
    let mut listeners = Vec::with_capacity(layout.len());
    for server in &farm.servers {
        listeners.push(listener::bind(server.port)?);
        server.listening.store(true, std::sync::atomic::Ordering::Release);
    }
    let control = match args.control_port {
        Some(p) => Some(listener::bind(p).context("--control-port")?),
        None => None,
    };
    let control_port = match &control {
        Some(l) => Some(l.local_addr().context("control port address")?.port()),
        None => None,
    };

    let shared = Arc::new(Shared {
        farm: farm.clone(),
        stats: stats::Stats::default(),
        credential: Credential { user: args.user.clone(), password: args.password.clone() },
    });
    for (server, l) in farm.servers.iter().zip(listeners) {
        tokio::spawn(listener::serve_port(server.clone(), shared.clone(), l));
    }
    if let Some(l) = control {
        tokio::spawn(control::serve(l, shared.clone()));
    }

    let (first, last) = (layout.base_port, layout.last_port());
    if let Some(path) = &args.ready_file {
        let ready = serde_json::json!({
            "clusters": layout.clusters,
            "servers_per_cluster": layout.servers_per_cluster,
            "first_port": first,
            "last_port": last,
            "control_port": control_port,
            "pid": std::process::id(),
        });
        write_atomically(path, &ready.to_string()).with_context(|| format!("--ready-file {}", path.display()))?;
    }
    println!("farm ready: {} clusters x {} servers on ports {first}..{last}", layout.clusters, layout.servers_per_cluster);
    tracing::info!(
        servers = layout.len(),
        control_port,
        startup_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        "farm ready"
    );

    wait_for_stop().await?;
    tracing::info!("stopping");
    Ok(())
}

/// Raises the open-file soft limit (up to the hard one) to hold every listener and a few
/// sessions per server; warns when it cannot.
fn raise_descriptor_limit(servers: usize) {
    let needed = u64::try_from(servers).unwrap_or(u64::MAX).saturating_mul(3).saturating_add(256);
    match rlimit::increase_nofile_limit(needed) {
        Ok(soft) if soft >= needed => {}
        Ok(soft) => tracing::warn!(soft_limit = soft, needed, "the hard open-file limit is below what {servers} servers need: raise it (ulimit -Hn)"),
        Err(e) => tracing::warn!(error = %e, needed, "could not raise the open-file limit"),
    }
}

/// Writes `text` to a sibling temporary file, then renames it: a reader never sees half of it.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Returns on Ctrl-C or SIGTERM.
async fn wait_for_stop() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("Ctrl-C handler")?,
        _ = term.recv() => {}
    }
    Ok(())
}
