//! The proxy routes of the API: `topology/proxies`, the traffic switches, the proxy actions,
//! and the role health checks for HTTP-checking balancers (`primary`, `replica?lag=N`,
//! `read-only`).

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;

use crate::backend::{Action, Backend, Health, ProxyAction, Requester, RoleCheck, ServerRef};
use crate::route::Access;
use super::{action_answer, json, no_cluster, spec, text, RouteSpec, St, GET, GET_POST};

/// The proxy routes and the role health checks.
pub fn route_specs<B: Backend>() -> Vec<RouteSpec<B>> {
    use Access::*;
    let mut v = vec![
        spec("/api/clusters/{cluster}/topology/proxies", GET, Token, false, "Proxy objects with the backends they hold", get(proxies::<B>)),
    ];
    for (suffix, stop, summary) in [
        ("start-traffic", false, "The master back in the write backend of every proxy"),
        ("stop-traffic", true, "The write backend of every proxy in maintenance (no write reaches the cluster)"),
    ] {
        let h = move |st: St<B>, requester: Requester, Path(c): Path<String>| async move {
            let action = if stop { Action::StopTraffic } else { Action::StartTraffic };
            action_answer(st.backend.run_action(&c, action, requester).await)
        };
        v.push(spec(format!("/api/clusters/{{cluster}}/actions/{suffix}"), GET_POST, Grant(&["cluster-traffic"]), true, summary, get(h).post(h)));
    }
    let actions: &[(&str, &'static [&'static str], &'static str, ProxyAction)] = &[
        ("start", &["proxy-start"], "Start a local proxy (its last rendered configuration)", ProxyAction::Start),
        ("stop", &["proxy-stop"], "Stop a local proxy by its PID (not started again until start or provision)", ProxyAction::Stop),
        ("provision", &["prov-proxy-provision"], "Render a local proxy's configuration and start or reload it", ProxyAction::Provision),
        ("unprovision", &["prov-proxy-unprovision"], "Stop a local proxy and remove its files", ProxyAction::Unprovision),
    ];
    for (suffix, grants, summary, action) in actions {
        let action = *action;
        let h = move |st: St<B>, requester: Requester, Path((c, proxy)): Path<(String, String)>| async move {
            action_answer(st.backend.run_action(&c, Action::Proxy { proxy, action }, requester).await)
        };
        v.push(spec(format!("/api/clusters/{{cluster}}/proxies/{{proxy}}/actions/{suffix}"), GET_POST, Grant(grants), true, summary, get(h).post(h)));
    }
    for prefix in ["/clusters", "/api/clusters"] {
        for (suffix, summary) in [
            ("primary", "Role check: 200 when the server is the writable master, else 503"),
            ("replica", "Role check: 200 for a replicating replica (?lag=N: at most N seconds behind), else 503"),
            ("read-only", "Role check: 200 for a healthy read-only server, else 503"),
        ] {
            let h = move |st: St<B>, Path((c, s)): Path<(String, String)>, q: RawQuery| async move { role(st, c, s, suffix, q.0) };
            v.push(spec(format!("{prefix}/{{cluster}}/servers/{{server}}/{suffix}"), GET, Public, false, summary, get(h)));
        }
    }
    v
}

async fn proxies<B: Backend>(State(st): St<B>, Path(c): Path<String>) -> Response {
    st.backend.proxies(&c).map_or_else(no_cluster, |v| json(&v))
}

/// `lag=N` of a query string.
fn lag(query: Option<&str>) -> Result<Option<u64>, String> {
    let Some(v) = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("lag="))) else { return Ok(None) };
    v.parse::<u64>().map(Some).map_err(|_| format!("Bad parameter lag={v}: expected seconds (0 or more)"))
}

fn role<B: Backend>(st: St<B>, c: String, s: String, suffix: &str, query: Option<String>) -> Response {
    let (check, name) = match suffix {
        "primary" => (RoleCheck::Primary, "Primary"),
        "read-only" => (RoleCheck::ReadOnly, "Read-Only"),
        _ => match lag(query.as_deref()) {
            Ok(max_lag) => (RoleCheck::Replica { max_lag }, "Replica"),
            Err(e) => return text(StatusCode::BAD_REQUEST, e),
        },
    };
    match st.backend.role_health(&c, ServerRef::Name(&s), check) {
        Health::NoCluster => text(StatusCode::INTERNAL_SERVER_ERROR, "No cluster!"),
        Health::Valid => text(StatusCode::OK, format!("200 -Valid {name}!")),
        Health::NotValid | Health::NotFound => text(StatusCode::SERVICE_UNAVAILABLE, format!("503 -Not a Valid {name}!")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_parameter() {
        assert_eq!(lag(None), Ok(None));
        assert_eq!(lag(Some("lag=5")), Ok(Some(5)));
        assert_eq!(lag(Some("x=1&lag=0")), Ok(Some(0)));
        assert!(lag(Some("lag=-1")).is_err());
    }
}
