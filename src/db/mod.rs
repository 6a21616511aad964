//! The database layer: connections with deadlines, the monitor's probe, every SQL statement
//! (MariaDB and MySQL variants side by side), GTID positions, and the client tools (dump,
//! flashback) the manager pipes between servers.

pub mod conn;
pub mod gtid;
pub mod probe;
pub mod sql;
pub mod tools;
