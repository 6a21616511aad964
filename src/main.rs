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

/// After `--help`: the configuration overrides clap does not list one by one.
const OVERRIDES_HELP: &str = "Configuration overrides:
  --<key>=<value>  any configuration key, overriding the file (e.g. --monitoring-ticker=0.5,
                   --failover-mode=automatic, --log-format=json); the `=` is required";

/// The manager's command line. `--<key>=<value>` overrides are taken out before clap parses
/// the rest (see [`config::split_flag_overrides`]), so every configuration key works as a flag
/// without being declared here.
#[derive(Debug, clap::Parser)]
#[command(
    name = "replication-manager",
    version,
    about = "High-availability manager for MariaDB GTID replication clusters",
    after_help = OVERRIDES_HELP
)]
struct Cli {
    /// replication-manager TOML file ([Default] + one section per cluster).
    #[arg(long, short = 'c', global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Subcommand)]
enum Command {
    /// Run a manager node (monitor + API).
    Monitor,
    /// Read and validate the configuration, print a summary, exit.
    CheckConfig,
    /// Print the version.
    #[command(hide = true)]
    Version,
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (overrides, rest) = config::split_flag_overrides(&args);
    let cli = match <Cli as clap::Parser>::try_parse_from(std::iter::once("replication-manager".to_string()).chain(rest)) {
        Ok(c) => c,
        // --help and --version print and exit 0; a bad argument prints the usage and exits 2.
        Err(e) => e.exit(),
    };
    match run(cli, overrides) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("replication-manager: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli, overrides: Vec<(String, String)>) -> anyhow::Result<()> {
    let command = match cli.command {
        Some(Command::Version) => {
            println!("replication-manager {}", env!("CARGO_PKG_VERSION"));
            return Ok(());
        }
        Some(c) => c,
        None => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            anyhow::bail!("no command given\n{}", cmd.render_usage());
        }
    };
    let cfg = config::Config::load(cli.config.as_deref(), &overrides)?;
    if command == Command::CheckConfig {
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
    use tracing_subscriber::Layer;
    let level = config::parse_log_level(&server.log_level).unwrap_or("info");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{level},hyper=warn,mysql_async=warn,openraft=warn,openraft::core::heartbeat=error")));
    let file = match &server.log_file {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening log-file {}", path.display()))?,
        ),
        None => None,
    };
    type Boxed = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;
    let (stderr, file): (Boxed, Option<Boxed>) = match server.log_format {
        config::LogFormat::Text => (
            tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_target(false).boxed(),
            file.map(|f| tracing_subscriber::fmt::layer().with_writer(std::sync::Mutex::new(f)).with_ansi(false).with_target(false).boxed()),
        ),
        config::LogFormat::Json => (
            node::json_log::JsonLines::new(std::io::stderr).boxed(),
            file.map(|f| node::json_log::JsonLines::new(std::sync::Mutex::new(f)).boxed()),
        ),
    };
    let layers: Vec<Boxed> = std::iter::once(stderr).chain(file).collect();
    tracing_subscriber::registry().with(layers).with(filter).try_init().context("initialising logging")?;
    Ok(())
}
