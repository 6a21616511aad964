//! The listener of one simulated server and its sessions, following the port's mode: `Down`
//! closes the listener and every session, `Frozen` stops polling them (the kernel still
//! accepts and buffers, nothing is answered), `Up` serves again.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opensrv_mysql::AsyncMysqlIntermediary;
use tokio::io::BufWriter;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

use crate::model::{PortMode, SimServer};
use crate::session::{AccessDeniedCode, Session, Shared};

/// Connections waiting for accept per port.
const BACKLOG: u32 = 128;
/// Write buffer per session: holds the largest answer (SHOW ALL SLAVES STATUS, about 4.5 KiB).
const WRITE_BUFFER: usize = 8 * 1024;
/// Pause after a failed accept (out of file descriptors) or a failed bind, before retrying.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Session ids, farm-wide, as a server's connection ids.
static NEXT_SESSION_ID: AtomicU32 = AtomicU32::new(1);

/// A port could not be listened on.
#[derive(Debug, thiserror::Error)]
#[error("listening on 127.0.0.1:{port}: {source}")]
pub struct BindError {
    pub port: u16,
    pub source: std::io::Error,
}

/// Listens on 127.0.0.1:`port` (address reuse on, so a killed port can listen again at once).
pub fn bind(port: u16) -> Result<TcpListener, BindError> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let listen = || -> std::io::Result<TcpListener> {
        let socket = TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(BACKLOG)
    };
    listen().map_err(|source| BindError { port, source })
}

/// Serves `server` for as long as the farm runs; `listener` is the one bound at start (the
/// caller has marked the server listening, so a `kill` right after the start waits for it).
pub async fn serve_port(server: Arc<SimServer>, shared: Arc<Shared>, listener: TcpListener) {
    let mut mode = server.mode.subscribe();
    let mut listener = Some(listener);
    loop {
        if *mode.borrow_and_update() == PortMode::Down {
            listener = None;
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = match listener.take() {
            Some(l) => l,
            None => match bind(server.port) {
                Ok(l) => {
                    server.listening.store(true, Ordering::Release);
                    tracing::info!(port = server.port, "listening again");
                    l
                }
                Err(e) => {
                    tracing::error!(error = %e, "retrying in {RETRY_PAUSE:?}");
                    tokio::select! {
                        _ = tokio::time::sleep(RETRY_PAUSE) => {}
                        r = mode.changed() => if r.is_err() { return },
                    }
                    continue;
                }
            },
        };
        // Accept until the port is killed. A run of failed accepts (out of descriptors) is
        // logged once, when it starts.
        let mut failing = false;
        loop {
            tokio::select! {
                accepted = l.accept() => match accepted {
                    Ok((stream, _)) => {
                        failing = false;
                        shared.stats.accepted.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(serve_session(stream, server.clone(), shared.clone()));
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!(port = server.port, error = %e, "accept failed: retrying every {RETRY_PAUSE:?}");
                        }
                        failing = true;
                        tokio::time::sleep(RETRY_PAUSE).await;
                    }
                },
                r = mode.changed() => {
                    if r.is_err() {
                        return;
                    }
                    if *mode.borrow() == PortMode::Down {
                        break;
                    }
                }
            }
        }
        drop(l);
        server.listening.store(false, Ordering::Release);
        tracing::info!(port = server.port, "killed: listener closed, sessions closing");
    }
}

/// Decrements the server's open-session count when the session ends, however it ends.
struct OpenSession(Arc<SimServer>);

impl Drop for OpenSession {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One client session: the protocol runs only while the port is up.
async fn serve_session(stream: TcpStream, server: Arc<SimServer>, shared: Arc<Shared>) {
    server.connections.fetch_add(1, Ordering::Relaxed);
    let _open = OpenSession(server.clone());
    let mut mode: watch::Receiver<PortMode> = server.mode.subscribe();
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let denied = Arc::new(AtomicBool::new(false));
    let id = NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed);
    let session = Session::new(server.clone(), shared, id, denied.clone());
    // opensrv-mysql writes every packet as header then payload and flushes once per answer:
    // buffered, an answer (62 column definitions for SHOW ALL SLAVES STATUS) is one write.
    let writer = BufWriter::with_capacity(WRITE_BUFFER, writer);
    let run = AsyncMysqlIntermediary::run_on(session, reader, AccessDeniedCode::new(writer, denied));
    tokio::pin!(run);
    loop {
        let current = *mode.borrow_and_update();
        match current {
            PortMode::Down => return,
            // Not polled: the session stalls wherever it is, the handshake included.
            PortMode::Frozen => {
                if mode.changed().await.is_err() {
                    return;
                }
            }
            // Biased, the mode first: a statement sent after `freeze` was answered (the control
            // port answers once the mode is set) finds the session frozen, never served by a
            // random pick of the ready branch.
            PortMode::Up => tokio::select! {
                biased;
                r = mode.changed() => if r.is_err() { return },
                ended = &mut run => {
                    if let Err(e) = ended {
                        tracing::debug!(port = server.port, error = %e, "session ended");
                    }
                    return;
                }
            },
        }
    }
}
