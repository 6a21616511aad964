//! Failover, switchover and rejoin: the pure planner, the crash records, and the executor.

pub mod crash;
pub mod dump;
pub mod executor;
pub mod planner;
