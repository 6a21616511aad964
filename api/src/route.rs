//! What a route is, apart from its handler: path template, methods, who may call it, whether
//! it mutates, its summary, and how it answers unknown names. The router serves these and the
//! OpenAPI document describes them, both from the same list.

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No token needed.
    Public,
    /// Any valid token.
    Token,
    /// A valid token whose user holds one of these grants (403 `No valid ACL` otherwise).
    Grant(&'static [&'static str]),
}

/// One route: its path template, methods, access, whether it mutates (then it runs on the
/// leader, forwarded if needed), a summary for the OpenAPI document, and its handler. The
/// router and `/api/openapi.json` are both built from this list, so they cannot drift.
pub struct RouteSpec<H> {
    pub path: String,
    pub methods: &'static [&'static str],
    pub access: Access,
    pub mutating: bool,
    pub summary: &'static str,
    /// How an unknown cluster or server name in the path is answered.
    pub unknown: UnknownNames,
    pub handler: H,
}

/// How a route answers a cluster or server name (in its path) that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnknownNames {
    /// The path names no cluster.
    NoName,
    /// Checked before the handler runs: 404 with a plain-text message naming the unknown
    /// cluster (`Unknown cluster: <name>`) or server (`Unknown server: <server> (cluster <name>)`).
    NotFound,
    /// The user's API document gives this route its own answers, and its handler keeps them:
    /// `cluster` for an unknown cluster, `server` for an unknown server of a known cluster.
    Documented { cluster: u16, server: Option<u16> },
}

impl<H> RouteSpec<H> {
    /// Keeps the user's API document's answers to unknown names for this route.
    pub(crate) fn documented_unknown(mut self, cluster: u16, server: Option<u16>) -> Self {
        self.unknown = UnknownNames::Documented { cluster, server };
        self
    }

    /// The statuses answered for an unknown cluster, and for an unknown server of a known one.
    pub fn unknown_statuses(&self) -> (Option<u16>, Option<u16>) {
        match self.unknown {
            UnknownNames::NoName => (None, None),
            UnknownNames::NotFound => (Some(404), self.path.contains("{server}").then_some(404)),
            UnknownNames::Documented { cluster, server } => (Some(cluster), server),
        }
    }
}
