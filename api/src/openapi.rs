//! The OpenAPI 3 document of the API, generated from the same route list the router is built
//! from (the router's route table), so the document cannot drift from the routes.

use serde_json::{json, Map, Value};

use crate::route::{Access, RouteSpec, UnknownNames};

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect()
}

fn responses<H>(s: &RouteSpec<H>) -> Value {
    let (access, mutating) = (s.access, s.mutating);
    let mut r = Map::new();
    r.insert("200".into(), json!({"description": "Success"}));
    r.insert("400".into(), json!({"description": "Bad input or refused precondition (text reason)"}));
    r.insert("500".into(), json!({"description": "Execution failure (text reason)"}));
    if access != Access::Public {
        r.insert("401".into(), json!({"description": "Missing or invalid token"}));
    }
    if let Access::Grant(_) = access {
        r.insert("403".into(), json!({"description": "No valid ACL"}));
    }
    if mutating {
        r.insert("409".into(), json!({"description": "Refused: another action runs, or no electable candidate"}));
        r.insert("503".into(), json!({"description": "No leader in the manager group, or this node is not the leader"}));
    }
    let (cluster, server) = s.unknown_statuses();
    for (code, what) in [(cluster, "Unknown cluster"), (server, "Unknown server")] {
        let Some(code) = code else { continue };
        let what = match s.unknown {
            UnknownNames::Documented { .. } => format!("{what} (the user's API document's answer)"),
            _ => format!("{what} (text naming it)"),
        };
        let description = match r.get(&code.to_string()).and_then(|d| d["description"].as_str()) {
            Some(d) if !d.contains(&what) => format!("{d}; {what}"),
            Some(d) => d.to_string(),
            None => what,
        };
        r.insert(code.to_string(), json!({"description": description}));
    }
    Value::Object(r)
}

/// The document.
pub fn document<H>(specs: &[RouteSpec<H>]) -> Value {
    let mut paths = Map::new();
    for s in specs {
        let entry = paths.entry(s.path.clone()).or_insert_with(|| Value::Object(Map::new()));
        let Some(obj) = entry.as_object_mut() else { continue };
        for m in s.methods {
            let mut op = json!({
                "summary": s.summary,
                "parameters": parameters(&s.path),
                "responses": responses(s),
                "x-mutating": s.mutating,
            });
            let (cluster, server) = s.unknown_statuses();
            if let Some(c) = cluster {
                op["x-unknown-cluster"] = json!(c);
            }
            if let Some(c) = server {
                op["x-unknown-server"] = json!(c);
            }
            match s.access {
                Access::Public => {}
                Access::Token => op["security"] = json!([{"bearer": []}]),
                Access::Grant(g) => {
                    op["security"] = json!([{"bearer": []}]);
                    op["x-grants"] = json!(g);
                }
            }
            obj.insert(m.to_ascii_lowercase(), op);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {"title": "replication-manager API", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}},
        "paths": paths,
    })
}
