//! `AdminConn`: a dedicated connection for the manager's mutations on one server. Each statement
//! is bounded by a deadline and logged; errors name the server and the statement. Session state
//! (FLUSH TABLES WITH READ LOCK) lives on this one connection, so lock and unlock always run on
//! the same session.

use std::time::Duration;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row};

use crate::config::{Credential, HostPort};
use crate::db::probe::{self, ProbeError};
use crate::db::sql::Flavor;

/// A failed statement (or connection) on one server; `source` names the statement.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{server}: {source}")]
pub struct DbError {
    pub server: String,
    pub source: ProbeError,
}

/// A dedicated admin session on one server.
pub struct AdminConn {
    server: String,
    conn: Option<Conn>,
    timeout: Duration,
}

impl AdminConn {
    /// Connects within `timeout`; statements get `statement_timeout` each.
    pub async fn connect(
        addr: &HostPort,
        cred: &Credential,
        flavor: Flavor,
        timeout: Duration,
        statement_timeout: Duration,
    ) -> Result<AdminConn, DbError> {
        let server = addr.to_string();
        let opts = probe::conn_opts(addr, cred, flavor, statement_timeout);
        let conn = probe::connect(opts, timeout).await.map_err(|source| DbError { server: server.clone(), source })?;
        Ok(AdminConn { server, conn: Some(conn), timeout: statement_timeout })
    }

    pub fn server(&self) -> &str {
        &self.server
    }

    fn conn(&mut self, statement: &str) -> Result<&mut Conn, DbError> {
        let server = self.server.clone();
        self.conn.as_mut().ok_or_else(|| DbError {
            server,
            source: ProbeError::Statement { statement: statement.to_string(), error: "connection dropped after an earlier timeout".to_string() },
        })
    }

    fn fail(&mut self, e: ProbeError) -> DbError {
        if matches!(e, ProbeError::StatementTimeout { .. }) {
            // The server may still be running it: never reuse this session.
            self.conn = None;
        }
        DbError { server: self.server.clone(), source: e }
    }

    /// Runs a statement with the default deadline.
    pub async fn exec(&mut self, statement: &str) -> Result<(), DbError> {
        let t = self.timeout;
        self.exec_within(statement, t).await
    }

    /// Runs a statement with an explicit deadline.
    pub async fn exec_within(&mut self, statement: &str, t: Duration) -> Result<(), DbError> {
        tracing::debug!(server = %self.server, statement, "admin statement");
        let conn = self.conn(statement)?;
        let r = probe::bounded(statement, t, conn.query_drop(statement)).await;
        r.map_err(|e| self.fail(e))
    }

    /// Runs a query returning one value in the first column of the first row.
    pub async fn value(&mut self, statement: &str, t: Duration) -> Result<Option<String>, DbError> {
        let conn = self.conn(statement)?;
        let r: Result<Option<Row>, ProbeError> = probe::bounded(statement, t, conn.query_first(statement)).await;
        let row = r.map_err(|e| self.fail(e))?;
        Ok(row.and_then(|r| probe::col_at(&r, 0)))
    }

    /// Runs a query returning the first row, every column as text.
    pub async fn row(&mut self, statement: &str) -> Result<Option<Vec<Option<String>>>, DbError> {
        let t = self.timeout;
        let conn = self.conn(statement)?;
        let r: Result<Option<Row>, ProbeError> = probe::bounded(statement, t, conn.query_first(statement)).await;
        let row = r.map_err(|e| self.fail(e))?;
        Ok(row.map(|r| (0..r.len()).map(|i| probe::col_at(&r, i)).collect()))
    }

    /// Runs a query returning the first column of every row.
    pub async fn column(&mut self, statement: &str) -> Result<Vec<String>, DbError> {
        let t = self.timeout;
        let conn = self.conn(statement)?;
        let r: Result<Vec<Row>, ProbeError> = probe::bounded(statement, t, conn.query(statement)).await;
        let rows = r.map_err(|e| self.fail(e))?;
        Ok(rows.iter().filter_map(|r| probe::col_at(r, 0)).collect())
    }

    /// Closes the session (releasing any lock it holds).
    pub async fn close(mut self) {
        if let Some(c) = self.conn.take() {
            let _ = tokio::time::timeout(self.timeout, c.disconnect()).await;
        }
    }

    /// Runs a query and returns its column names and every row, each value as text (`None` for
    /// NULL), with the default deadline. The statement bounds its own row count (`LIMIT`).
    pub async fn rows(&mut self, statement: &str) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), DbError> {
        let t = self.timeout;
        self.rows_within(statement, t).await
    }

    /// [`AdminConn::rows`] with an explicit deadline.
    pub async fn rows_within(
        &mut self,
        statement: &str,
        t: Duration,
    ) -> Result<(Vec<String>, Vec<Vec<Option<String>>>), DbError> {
        tracing::debug!(server = %self.server, statement, "admin query");
        let conn = self.conn(statement)?;
        let fut = async {
            let result = conn.query_iter(statement).await?;
            let names: Vec<String> =
                result.columns_ref().iter().map(|c| c.name_str().into_owned()).collect();
            let rows: Vec<Row> = result.collect_and_drop().await?;
            Ok((names, rows))
        };
        let r: Result<(Vec<String>, Vec<Row>), ProbeError> = probe::bounded(statement, t, fut).await;
        let (names, rows) = r.map_err(|e| self.fail(e))?;
        let rows = rows.iter().map(|r| (0..r.len()).map(|i| probe::col_at(r, i)).collect()).collect();
        Ok((names, rows))
    }
}
