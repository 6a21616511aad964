//! Farm-wide counters for the `stats` command: sessions, statements per kind, and the
//! statements the farm does not simulate (each logged once, so gaps are visible).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::model::{Farm, PortMode};
use crate::statement::KINDS;

/// Distinct unknown statements remembered (and logged); later ones are only counted.
const MAX_DISTINCT_UNKNOWN: usize = 1000;

/// Counters shared by every session.
#[derive(Default)]
pub struct Stats {
    kinds: [AtomicU64; KINDS.len()],
    pub accepted: AtomicU64,
    pub auth_failures: AtomicU64,
    unknown: Mutex<HashMap<String, u64>>,
    unknown_overflow: AtomicU64,
}

impl Stats {
    /// Counts one answered statement of kind `kind` (an index into [`KINDS`]).
    pub fn count(&self, kind: usize) {
        if let Some(c) = self.kinds.get(kind) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an unknown statement; logs it to stderr the first time it is seen.
    pub fn unknown(&self, normalized: &str, port: u16) {
        let mut map = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(normalized) {
            *n += 1;
        } else if map.len() < MAX_DISTINCT_UNKNOWN {
            tracing::warn!(port, statement = normalized, "statement not simulated: answered with error 1064");
            map.insert(normalized.to_string(), 1);
        } else if self.unknown_overflow.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!("more than {MAX_DISTINCT_UNKNOWN} distinct unknown statements: further ones are counted, not logged");
        }
    }

    /// Everything as one JSON object.
    pub fn to_json(&self, farm: &Farm) -> serde_json::Value {
        let (mut up, mut frozen, mut down, mut open, mut queries) = (0u64, 0u64, 0u64, 0u64, 0u64);
        for s in &farm.servers {
            match s.mode() {
                PortMode::Up => up += 1,
                PortMode::Frozen => frozen += 1,
                PortMode::Down => down += 1,
            }
            open += s.connections.load(Ordering::Relaxed);
            queries += s.queries.load(Ordering::Relaxed);
        }
        let kinds: serde_json::Map<String, serde_json::Value> =
            KINDS.iter().zip(&self.kinds).map(|(k, c)| ((*k).to_string(), c.load(Ordering::Relaxed).into())).collect();
        let unknown: serde_json::Map<String, serde_json::Value> = {
            let map = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
            map.iter().map(|(k, v)| (k.clone(), (*v).into())).collect()
        };
        serde_json::json!({
            "connections_open": open,
            "connections_accepted": self.accepted.load(Ordering::Relaxed),
            "auth_failures": self.auth_failures.load(Ordering::Relaxed),
            "queries_answered": queries,
            "statements": kinds,
            "unknown_statements": unknown,
            "unknown_not_remembered": self.unknown_overflow.load(Ordering::Relaxed),
            "ports": { "up": up, "frozen": frozen, "down": down },
        })
    }
}
