//! Operations on servers and clusters that are not a master change: settings, server
//! toggles, orchestrator commands, jobs (backups, optimize, reseeds) and server information.

pub mod alerts;
pub mod cluster_ops;
pub mod jobs;
pub mod operations;
pub mod orchestrator;
pub mod reseed;
pub mod server_info;
