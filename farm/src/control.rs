//! The control port: a line protocol on 127.0.0.1. Each line is one command, each answer one
//! line: `ok ...`, `error ...`, or the `stats` JSON object.
//!
//! ```text
//! kill PORT | start PORT | freeze PORT | thaw PORT | lag PORT SECONDS | stats
//! ```

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::model::{PortMode, SimServer};
use crate::session::Shared;

/// Longest command line accepted.
const MAX_LINE: u64 = 256;
/// A control client idle this long is disconnected.
const IDLE: Duration = Duration::from_secs(600);

/// A parsed control command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Mode { port: u16, mode: PortMode, verb: &'static str },
    Lag { port: u16, secs: u64 },
    Stats,
}

/// A command line that is not a command.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command `{0}` (kill|start|freeze|thaw PORT, lag PORT SECONDS, stats)")]
    Unknown(String),
    #[error("`{0}` wants {1}")]
    Arguments(&'static str, &'static str),
    #[error("`{value}` is not a {what}")]
    Number { value: String, what: &'static str },
}

fn number<T: std::str::FromStr>(value: Option<&str>, verb: &'static str, usage: &'static str, what: &'static str) -> Result<T, CommandError> {
    let v = value.ok_or(CommandError::Arguments(verb, usage))?;
    v.parse().map_err(|_| CommandError::Number { value: v.to_string(), what })
}

impl Command {
    /// Parses one line.
    pub fn parse(line: &str) -> Result<Command, CommandError> {
        let mut words = line.split_whitespace();
        let verb = words.next().unwrap_or("");
        let cmd = match verb.to_ascii_lowercase().as_str() {
            "stats" => Command::Stats,
            "lag" => {
                let port = number(words.next(), "lag", "PORT SECONDS", "port")?;
                let secs = number(words.next(), "lag", "PORT SECONDS", "number of seconds")?;
                Command::Lag { port, secs }
            }
            v @ ("kill" | "start" | "freeze" | "thaw") => {
                let (mode, verb) = match v {
                    "kill" => (PortMode::Down, "kill"),
                    "freeze" => (PortMode::Frozen, "freeze"),
                    "start" => (PortMode::Up, "start"),
                    _ => (PortMode::Up, "thaw"),
                };
                Command::Mode { port: number(words.next(), verb, "PORT", "port")?, mode, verb }
            }
            _ => return Err(CommandError::Unknown(verb.to_string())),
        };
        if words.next().is_some() {
            return Err(CommandError::Arguments("command", "no more arguments"));
        }
        Ok(cmd)
    }
}

/// How long `kill` waits for the listener and sessions to close, `start` for the listener.
const SETTLE: Duration = Duration::from_secs(2);

/// Waits (at most [`SETTLE`]) until the port's listener and sessions match `mode`, so that
/// `ok kill` means connects are refused and `ok start` that they are accepted.
async fn settled(server: &SimServer, mode: PortMode) -> bool {
    let deadline = Instant::now() + SETTLE;
    loop {
        let listening = server.listening.load(Ordering::Acquire);
        let done = match mode {
            PortMode::Down => !listening && server.connections.load(Ordering::Relaxed) == 0,
            PortMode::Up | PortMode::Frozen => listening,
        };
        if done || Instant::now() >= deadline {
            return done;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs `command` on the farm and returns the answer line.
pub async fn execute(command: &Command, shared: &Shared) -> String {
    let farm = &shared.farm;
    match command {
        Command::Stats => shared.stats.to_json(farm).to_string(),
        Command::Mode { port, mode, verb } => match farm.server(*port) {
            None => format!("error port {port} is not in the farm"),
            Some(server) => {
                let before = server.mode();
                farm.set_mode(server, *mode, Instant::now());
                tracing::info!(port, cluster = server.cluster, ?before, after = ?mode, "control: {verb}");
                if settled(server, *mode).await {
                    format!("ok {verb} {port}")
                } else {
                    format!("error {verb} {port}: not settled within {SETTLE:?} (see the farm's log)")
                }
            }
        },
        Command::Lag { port, secs } => match farm.server(*port) {
            None => format!("error port {port} is not in the farm"),
            Some(server) if server.is_master() => format!("error port {port} is a master"),
            Some(server) => {
                let before = server.lag_secs.swap(*secs, Ordering::Relaxed);
                tracing::info!(port, cluster = server.cluster, before, after = secs, "control: lag");
                format!("ok lag {port} {secs}")
            }
        },
    }
}

/// Serves control clients on `listener` until the farm stops.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_client(stream, shared.clone()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "control accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn serve_client(stream: TcpStream, shared: Arc<Shared>) {
    let (r, mut w) = stream.into_split();
    let mut reader = BufReader::new(r);
    loop {
        let mut line = String::new();
        let read = tokio::time::timeout(IDLE, (&mut reader).take(MAX_LINE).read_line(&mut line)).await;
        let answer = match read {
            Err(_) | Ok(Err(_)) | Ok(Ok(0)) => return,
            Ok(Ok(n)) if n as u64 >= MAX_LINE && !line.ends_with('\n') => "error line too long".to_string(),
            Ok(Ok(_)) if line.trim().is_empty() => continue,
            Ok(Ok(_)) => match Command::parse(line.trim()) {
                Ok(cmd) => execute(&cmd, &shared).await,
                Err(e) => format!("error {e}"),
            },
        };
        if w.write_all(format!("{answer}\n").as_bytes()).await.is_err() {
            return;
        }
        if answer == "error line too long" {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(Command::parse("kill 3306"), Ok(Command::Mode { port: 3306, mode: PortMode::Down, verb: "kill" }));
        assert_eq!(Command::parse("THAW 1"), Ok(Command::Mode { port: 1, mode: PortMode::Up, verb: "thaw" }));
        assert_eq!(Command::parse("lag 3307 12"), Ok(Command::Lag { port: 3307, secs: 12 }));
        assert_eq!(Command::parse("stats"), Ok(Command::Stats));
        assert!(Command::parse("kill").is_err());
        assert!(Command::parse("kill 99999").is_err());
        assert!(Command::parse("lag 1 x").is_err());
        assert!(Command::parse("stats now").is_err());
        assert!(Command::parse("reboot 1").is_err());
    }
}
