//! API grants: the Go project's grant names and how `api-credentials-acl-allow` maps a user to
//! them (every grant starting with one of the user's prefixes is granted).

use std::collections::BTreeMap;

/// Every grant name, as the Go project defines them.
pub const GRANTS: &[&str] = &[
    "db-start", "db-stop", "db-kill", "db-optimize", "db-analyse", "db-replication", "db-backup",
    "db-restore", "db-readonly", "db-logs", "db-capture", "db-maintenance", "db-config-create",
    "db-config-ressource", "db-config-flag", "db-config-get", "db-show-variables", "db-show-status",
    "db-show-schema", "db-show-process", "db-show-logs", "db-debug",
    "cluster-create", "cluster-drop", "cluster-create-monitor", "cluster-drop-monitor",
    "cluster-failover", "cluster-switchover", "cluster-rolling", "cluster-settings", "cluster-grant",
    "cluster-replication", "cluster-checksum", "cluster-sharding", "cluster-certificates-rotate",
    "cluster-certificates-reload", "cluster-bench", "cluster-test", "cluster-traffic",
    "cluster-process", "cluster-debug", "cluster-show-backups", "cluster-show-agents",
    "cluster-show-graphs", "cluster-config-graphs", "cluster-show-routes",
    "cluster-show-certificates", "cluster-reset-sla", "cluster-rotate-passwords",
    "proxy-config-create", "proxy-config-get", "proxy-config-ressource", "proxy-config-flag",
    "proxy-start", "proxy-stop",
    "prov-settings", "prov-cluster", "prov-cluster-provision", "prov-cluster-unprovision",
    "prov-db-provision", "prov-db-unprovision", "prov-proxy-provision", "prov-proxy-unprovision",
    "global-grant", "global-settings",
];

/// The grant prefixes `acl_allow` (`user:prefix prefix,user2:...`) gives `user`.
pub fn prefixes_for<'a>(acl_allow: &'a str, user: &str) -> Vec<&'a str> {
    acl_allow
        .split(',')
        .filter_map(|entry| entry.trim().split_once(':'))
        .filter(|(u, _)| *u == user)
        .flat_map(|(_, p)| p.split_whitespace())
        .collect()
}

/// Every grant with `true` when `user` holds it. A user absent from `acl_allow` holds none.
pub fn grants_for(acl_allow: &str, user: &str) -> BTreeMap<String, bool> {
    let prefixes = prefixes_for(acl_allow, user);
    GRANTS
        .iter()
        .map(|g| (g.to_string(), prefixes.iter().any(|p| g.starts_with(p))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_acl() {
        let acl = "admin:global cluster proxy db prov,dba:cluster proxy db,foo:";
        let admin = grants_for(acl, "admin");
        assert!(admin.values().all(|g| *g));
        let dba = grants_for(acl, "dba");
        assert!(dba["cluster-failover"] && dba["db-backup"]);
        assert!(!dba["global-settings"] && !dba["prov-cluster"]);
        assert!(grants_for(acl, "foo").values().all(|g| !*g));
        assert!(grants_for(acl, "nobody").values().all(|g| !*g));
        assert_eq!(admin.len(), GRANTS.len());
    }
}
