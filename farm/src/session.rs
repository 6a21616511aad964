//! One client session on one simulated server: opensrv-mysql runs the protocol, this shim
//! checks the password (mysql_native_password) and answers each statement from the server's
//! current view.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use opensrv_mysql::{
    AsyncMysqlShim, Column, ColumnFlags, ColumnType, ErrorKind, OkResponse, ParamParser, QueryResultWriter,
    StatementMetaWriter,
};
use rand::Rng;
use sha1::{Digest, Sha1};
use tokio::io::AsyncWrite;

use crate::answer::{self, Reply, ServerError};
use crate::model::{Farm, SimServer};
use crate::statement::{mask_secrets, normalize, Statement};
use crate::stats::Stats;

/// The account every simulated server accepts.
#[derive(Debug, Clone)]
pub struct Credential {
    pub user: String,
    pub password: String,
}

/// What every session shares.
pub struct Shared {
    pub farm: Arc<Farm>,
    pub stats: Stats,
    pub credential: Credential,
}

/// The shim of one session.
pub struct Session {
    server: Arc<SimServer>,
    shared: Arc<Shared>,
    salt: [u8; 20],
    /// Set when the password was refused (see [`AccessDeniedCode`]).
    denied: Arc<AtomicBool>,
    id: u32,
}

impl Session {
    /// A session on `server`, with a fresh scramble.
    pub fn new(server: Arc<SimServer>, shared: Arc<Shared>, id: u32, denied: Arc<AtomicBool>) -> Session {
        let mut rng = rand::thread_rng();
        let mut salt = [0u8; 20];
        for b in &mut salt {
            // Printable, never NUL nor '$' (the protocol's reserved bytes).
            *b = loop {
                let c: u8 = rng.gen_range(b'!'..=b'~');
                if c != b'$' {
                    break c;
                }
            };
        }
        Session { server, shared, salt, denied, id }
    }
}

/// mysql_native_password: the client sends SHA1(pw) XOR SHA1(salt + SHA1(SHA1(pw))).
pub fn native_password_matches(password: &str, salt: &[u8], token: &[u8]) -> bool {
    if password.is_empty() {
        return token.is_empty();
    }
    let stage1 = Sha1::digest(password.as_bytes());
    let stage2 = Sha1::digest(stage1);
    let mut h = Sha1::new();
    h.update(salt);
    h.update(stage2);
    let mix = h.finalize();
    token.len() == stage1.len() && stage1.iter().zip(mix.iter()).zip(token).all(|((a, b), t)| (a ^ b) == *t)
}

fn column(c: &answer::Col) -> Column {
    Column {
        table: String::new(),
        column: c.name.clone(),
        coltype: if c.numeric { ColumnType::MYSQL_TYPE_LONGLONG } else { ColumnType::MYSQL_TYPE_VAR_STRING },
        colflags: ColumnFlags::empty(),
    }
}

async fn write_reply<W: AsyncWrite + Send + Unpin>(reply: Reply, results: QueryResultWriter<'_, W>) -> io::Result<()> {
    match reply {
        Reply::Ok => results.completed(OkResponse::default()).await,
        Reply::Error { error, message } => {
            let kind = match error {
                ServerError::Parse => ErrorKind::ER_PARSE_ERROR,
                ServerError::UnknownVariable => ErrorKind::ER_UNKNOWN_SYSTEM_VARIABLE,
            };
            results.error(kind, message.as_bytes()).await
        }
        Reply::Rows { columns, rows } => {
            let cols: Vec<Column> = columns.iter().map(column).collect();
            let mut w = results.start(&cols).await?;
            for row in &rows {
                for v in row {
                    w.write_col(v.as_ref())?;
                }
                w.end_row().await?;
            }
            w.finish().await
        }
    }
}

impl Session {
    /// The reply to one statement, counted in the farm's statistics.
    fn reply_to(&self, query: &str) -> Reply {
        let statement = Statement::parse(query);
        let stats = &self.shared.stats;
        stats.count(statement.kind());
        if statement == Statement::Unknown {
            stats.unknown(&mask_secrets(&normalize(query)), self.server.port);
        }
        self.server.queries.fetch_add(1, Ordering::Relaxed);
        let view = self.shared.farm.view(&self.server, Instant::now());
        answer::answer(&statement, &view, &self.shared.credential.user, query)
    }
}

/// The statements of a query, split on the semicolons outside quotes (empty ones dropped).
fn split_statements(query: &str) -> Vec<&str> {
    let (mut parts, mut start, mut quote) = (Vec::new(), 0, None::<char>);
    let mut escaped = false;
    for (i, c) in query.char_indices() {
        match (quote, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '\'' | '"' | '`') => quote = Some(c),
            (None, ';') => {
                parts.push(&query[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        escaped = false;
    }
    parts.push(&query[start..]);
    parts.into_iter().map(str::trim).filter(|p| !p.is_empty()).collect()
}

#[async_trait::async_trait]
impl<W: AsyncWrite + Send + Unpin> AsyncMysqlShim<W> for Session {
    type Error = io::Error;

    fn version(&self) -> String {
        answer::HANDSHAKE_VERSION.to_string()
    }

    fn connect_id(&self) -> u32 {
        self.id
    }

    fn salt(&self) -> [u8; 20] {
        self.salt
    }

    async fn authenticate(&self, _plugin: &str, username: &[u8], salt: &[u8], auth_data: &[u8]) -> bool {
        let cred = &self.shared.credential;
        let ok = username == cred.user.as_bytes() && native_password_matches(&cred.password, salt, auth_data);
        if !ok {
            self.denied.store(true, Ordering::Relaxed);
            self.shared.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    async fn on_prepare<'a>(&'a mut self, _query: &'a str, info: StatementMetaWriter<'a, W>) -> io::Result<()> {
        info.error(ErrorKind::ER_UNSUPPORTED_PS, b"the simulated server has no prepared statements").await
    }

    async fn on_execute<'a>(&'a mut self, _id: u32, _p: ParamParser<'a>, results: QueryResultWriter<'a, W>) -> io::Result<()> {
        results.error(ErrorKind::ER_UNSUPPORTED_PS, b"the simulated server has no prepared statements").await
    }

    async fn on_close<'a>(&'a mut self, _stmt: u32)
    where
        W: 'async_trait,
    {
    }

    async fn on_query<'a>(&'a mut self, query: &'a str, results: QueryResultWriter<'a, W>) -> io::Result<()> {
        if split_statements(query).len() > 1 {
            // Not simulated: opensrv-mysql 0.7 ends a result set without the more-results flag
            // when the client deprecates EOF (mysql_async does), so a second result set would
            // be lost. Refused with a parse error, as by a server without multi-statements: the
            // manager's probe then asks one statement at a time.
            self.shared.stats.count(crate::statement::MULTI_STATEMENT_REFUSED);
            return results.error(ErrorKind::ER_PARSE_ERROR, b"multi-statement queries are not simulated by rm-farm").await;
        }
        let reply = self.reply_to(query);
        write_reply(reply, results).await
    }
}

/// The write half of a session. opensrv-mysql refuses a password with error 1698
/// (`ER_ACCESS_DENIED_NO_PASSWORD_ERROR`), where MariaDB answers 1045, the code the manager
/// classifies as an authentication failure: once the shim refused the password, the code of
/// the error packet is rewritten to 1045 (same SQL state 28000, same length). opensrv writes
/// a packet as header then payload (no vectored writes here), so the payload starts a write.
pub struct AccessDeniedCode<W> {
    inner: W,
    denied: Arc<AtomicBool>,
}

impl<W> AccessDeniedCode<W> {
    pub fn new(inner: W, denied: Arc<AtomicBool>) -> Self {
        AccessDeniedCode { inner, denied }
    }
}

const DENIED_1698: [u8; 3] = [0xFF, 0xA2, 0x06];
const DENIED_1045: [u8; 3] = [0xFF, 0x15, 0x04];

impl<W: AsyncWrite + Unpin> AsyncWrite for AccessDeniedCode<W> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.denied.load(Ordering::Relaxed) && buf.starts_with(&DENIED_1698) {
            let mut patched = buf.to_vec();
            patched[..3].copy_from_slice(&DENIED_1045);
            return Pin::new(&mut self.inner).poll_write(cx, &patched);
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_split_on_semicolons_outside_quotes() {
        assert_eq!(split_statements("SELECT 1; SHOW ALL SLAVES STATUS;"), vec!["SELECT 1", "SHOW ALL SLAVES STATUS"]);
        assert_eq!(split_statements("SELECT 'a;b', \"c;d\"; SELECT 2"), vec!["SELECT 'a;b', \"c;d\"", "SELECT 2"]);
        assert_eq!(split_statements("SELECT 'it\\'s;'; SELECT 3"), vec!["SELECT 'it\\'s;'", "SELECT 3"]);
        assert_eq!(split_statements("SELECT 1"), vec!["SELECT 1"]);
    }

    #[test]
    fn native_password() {
        let salt = b"abcdefghijklmnopqrst";
        let pw = "secret";
        // The client's side of the scramble, computed independently.
        let stage1 = Sha1::digest(pw.as_bytes());
        let mix = Sha1::digest([&salt[..], &Sha1::digest(stage1)[..]].concat());
        let token: Vec<u8> = stage1.iter().zip(mix.iter()).map(|(a, b)| a ^ b).collect();
        assert!(native_password_matches(pw, salt, &token));
        assert!(!native_password_matches("other", salt, &token));
        assert!(!native_password_matches(pw, salt, &[]));
        assert!(native_password_matches("", salt, &[]));
    }
}
