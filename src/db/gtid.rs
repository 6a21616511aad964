//! MariaDB GTID positions (`domain-server-seqno` lists) and their comparison.
//!
//! A position holds at most one GTID per replication domain. Comparing two servers is done per
//! domain on the sequence number, because the server id part changes on every failover.

use std::collections::BTreeMap;

use serde::Serialize;

/// One MariaDB GTID: `domain-server-seqno`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Gtid {
    pub domain_id: u32,
    pub server_id: u32,
    pub seq_no: u64,
}

impl std::fmt::Display for Gtid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}-{}", self.domain_id, self.server_id, self.seq_no)
    }
}

/// A GTID position such as `@@gtid_current_pos`: at most one GTID per domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos {
    by_domain: BTreeMap<u32, Gtid>,
}

/// A position string that is not a GTID list.
#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a MariaDB GTID position (expected domain-server-seqno[,...])")]
pub struct GtidParseError(pub String);

impl GtidPos {
    /// Parses `0-1-10,1-2-5` (blank = empty position). Later entries for a domain win.
    pub fn parse(raw: &str) -> Result<GtidPos, GtidParseError> {
        let mut by_domain = BTreeMap::new();
        for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let mut it = part.split('-');
            let (Some(d), Some(s), Some(n), None) = (it.next(), it.next(), it.next(), it.next()) else {
                return Err(GtidParseError(raw.to_string()));
            };
            let gtid = Gtid {
                domain_id: d.parse().map_err(|_| GtidParseError(raw.to_string()))?,
                server_id: s.parse().map_err(|_| GtidParseError(raw.to_string()))?,
                seq_no: n.parse().map_err(|_| GtidParseError(raw.to_string()))?,
            };
            by_domain.insert(gtid.domain_id, gtid);
        }
        Ok(GtidPos { by_domain })
    }

    /// Parses leniently: an unparsable string gives the empty position.
    pub fn parse_lenient(raw: &str) -> GtidPos {
        GtidPos::parse(raw).unwrap_or_default()
    }

    /// True when no domain has any transaction.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }

    /// The GTIDs, ordered by domain.
    pub fn gtids(&self) -> Vec<Gtid> {
        self.by_domain.values().copied().collect()
    }

    /// The sequence number reached in `domain` (0 when the domain is absent).
    pub fn seq_in(&self, domain: u32) -> u64 {
        self.by_domain.get(&domain).map_or(0, |g| g.seq_no)
    }

    /// The GTID of `domain`, if any.
    pub fn get(&self, domain: u32) -> Option<Gtid> {
        self.by_domain.get(&domain).copied()
    }

    /// True when this position has reached `other` in every domain of `other`.
    #[cfg(test)]
    pub fn contains(&self, other: &GtidPos) -> bool {
        other.by_domain.iter().all(|(d, g)| self.seq_in(*d) >= g.seq_no)
    }

    /// Domains where this position is ahead of `base`, with both sequence numbers.
    pub fn ahead_of(&self, base: &GtidPos) -> Vec<(Gtid, u64)> {
        self.by_domain
            .values()
            .filter(|g| g.seq_no > base.seq_in(g.domain_id))
            .map(|g| (*g, base.seq_in(g.domain_id)))
            .collect()
    }
}

impl std::fmt::Display for GtidPos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.by_domain.values().map(Gtid::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        let p = GtidPos::parse("0-1-10, 1-2-5").unwrap();
        assert_eq!(p.to_string(), "0-1-10,1-2-5");
        assert_eq!(p.seq_in(1), 5);
        assert_eq!(p.seq_in(7), 0);
        assert!(GtidPos::parse("").unwrap().is_empty());
        assert!(GtidPos::parse("0-1").is_err());
        assert!(GtidPos::parse("0-1-x").is_err());
        assert!(GtidPos::parse("0-1-2-3").is_err());
    }

    #[test]
    fn comparison_ignores_server_id() {
        let a = GtidPos::parse("0-1-10").unwrap();
        let b = GtidPos::parse("0-2-10").unwrap();
        let c = GtidPos::parse("0-2-11,1-1-1").unwrap();
        assert!(a.contains(&b) && b.contains(&a));
        assert!(c.contains(&a));
        assert!(!a.contains(&c));
        let ahead = c.ahead_of(&a);
        assert_eq!(ahead.len(), 2);
        assert_eq!(ahead[0].1, 10);
        assert!(a.ahead_of(&c).is_empty());
    }
}
