//! `replication-manager`: command-line entry of the manager node.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

// Layers, each importing only the ones listed before it (checked by tests/architecture.rs).
mod config;
mod files;
mod command;
mod db;
mod proxy;
mod cluster;
mod group;
mod failover;
mod actions;
mod monitor;
mod node;

const USAGE: &str = "usage: replication-manager [--config FILE] [--<key>=<value> ...] monitor
       replication-manager --version

  monitor          run a manager node (monitor + API)
  check-config     read and validate the configuration, print a summary, exit
  --config FILE    replication-manager TOML file ([Default] + one section per cluster)
  --<key>=<value>  any configuration key; overrides the file (e.g. --monitoring-ticker=0.5)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replication-manager: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    let (overrides, rest) = config::split_flag_overrides(&args);
    let mut config_path: Option<PathBuf> = None;
    let mut command: Option<String> = None;
    let mut it = rest.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--config" | "-c" => {
                config_path = Some(PathBuf::from(it.next().context("--config needs a file name")?));
            }
            s if s.starts_with("--config=") => config_path = Some(PathBuf::from(&s["--config=".len()..])),
            "--version" | "version" => {
                println!("replication-manager {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            "--help" | "-h" | "help" => {
                println!("{USAGE}");
                return Ok(());
            }
            s if s.starts_with('-') => anyhow::bail!("unknown option {s}\n{USAGE}"),
            s => {
                anyhow::ensure!(command.is_none(), "unexpected argument {s}\n{USAGE}");
                command = Some(s.to_string());
            }
        }
    }
    match command.as_deref() {
        Some("monitor") | Some("check-config") => {}
        Some(other) => anyhow::bail!("unknown command {other}\n{USAGE}"),
        None => anyhow::bail!("no command given\n{USAGE}"),
    }
    let cfg = config::Config::load(config_path.as_deref(), &overrides)?;
    if command.as_deref() == Some("check-config") {
        for w in &cfg.warnings {
            println!("warning: {w}");
        }
        let g = &cfg.server.group;
        println!(
            "ok: {} cluster(s) [{}]; node {} ({}), {} voter(s); http {}:{}",
            cfg.clusters.len(),
            cfg.clusters.iter().map(|c| format!("{}: {} servers", c.name, c.hosts.len())).collect::<Vec<_>>().join(", "),
            g.node_id,
            g.role.as_str(),
            g.peers.len().max(1),
            cfg.server.http_bind_address,
            cfg.server.http_port
        );
        return Ok(());
    }
    init_logging(&cfg.server)?;
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(node::run(cfg))
}

fn init_logging(server: &config::ServerConfig) -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    let level = config::parse_log_level(&server.log_level).unwrap_or("info");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,mysql_async=warn,openraft=warn,openraft::core::heartbeat=error")));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false);
    let file = match &server.log_file {
        Some(path) => {
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log-file {}", path.display()))?;
            Some(tracing_subscriber::fmt::layer().with_writer(std::sync::Mutex::new(f)).with_ansi(false).with_target(false))
        }
        None => None,
    };
    tracing_subscriber::registry().with(filter).with(stderr).with(file).try_init().context("initialising logging")?;
    Ok(())
}
