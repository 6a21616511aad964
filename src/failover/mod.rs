//! Failover, switchover and rejoin: the pure planner (decisions) and the executor (steps
//! against the servers).

pub mod error;
pub mod executor;
pub mod fence;
pub mod hooks;
pub mod plan;
pub mod planner;
pub mod proxies;
pub mod rejoin;
pub mod switchover;

/// The trigger name of automatic failovers (their refusals go to alerts, not to the log each tick).
pub const AUTOMATIC: &str = "automatic: master failed";
