//! REST API of the manager: the axum router for the documented routes, JWT login, and the wire
//! types that serialize exactly as the API document shows. The node implements [`Backend`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod acl;
pub mod auth;
pub mod backend;
pub mod dashboard;
pub mod openapi;
pub mod proxy_wire;
pub mod route;
pub mod router;
pub mod wire;

pub use auth::{LoginLimiter, TokenKeys};
pub use backend::{
    Action, ActionError, ActionResult, AuthUser, Backend, Health, HealthCheck, LeaderRoute, Lookup, ProxyAction, Requester, RoleCheck,
    ServerAction, ServerInfo, ServerRef,
};
pub use router::{router, ApiState};
