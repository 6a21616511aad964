//! The cluster model: what is known about each server and cluster (state, log, replicated
//! records) and the pure topology discovery that turns a probe round into states.

pub mod counters;
pub mod events;
pub mod log;
pub mod records;
pub mod server;
pub mod state;
pub mod topology;
