//! The web dashboard: a single page and its script and style, embedded in the binary at build
//! time from the repository's `web/` folder and served at `/` and `/dashboard/{file}` by every
//! node. The page talks only to the documented REST API of the node that served it; nothing is
//! fetched from anywhere else (the Content-Security-Policy says so to the browser too).

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// The files of `web/`, embedded in debug builds too (`debug-embed`), so a test binary serves
/// exactly what a release binary would.
#[derive(rust_embed::RustEmbed)]
#[folder = "../web/"]
struct DashboardFiles;

/// The page only loads its own files and calls its own node's API; inline scripts, other
/// origins and framing are refused by the browser.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Content type of an embedded file, by its extension.
fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

fn serve(name: &str) -> Response {
    let Some(file) = DashboardFiles::get(name) else {
        return (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"))], "404 page not found")
            .into_response();
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type(name))),
            // The files change with the binary: always ask, so an upgraded node is never shown
            // with an old script.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        ],
        file.data.into_owned(),
    )
        .into_response()
}

/// `GET /`: the dashboard page.
pub async fn index() -> Response {
    serve("index.html")
}

/// `GET /dashboard/{file}`: a file of the dashboard (script, style); `404` for any other name.
pub async fn file(Path(name): Path<String>) -> Response {
    // Only top-level files are served: a name is never a path.
    if name.contains('/') || name.contains('\\') || name.starts_with('.') {
        return serve("");
    }
    serve(&name)
}

/// Names of the embedded files (for tests and the contract check).
pub fn file_names() -> Vec<String> {
    DashboardFiles::iter().map(|n| n.to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_embedded_with_a_known_type() {
        let names = file_names();
        for needed in ["index.html", "app.js", "style.css"] {
            assert!(names.iter().any(|n| n == needed), "{needed} not embedded: {names:?}");
        }
        for n in &names {
            assert_ne!(content_type(n), "application/octet-stream", "{n} has no known content type");
        }
    }

    #[test]
    fn the_page_loads_only_its_own_files() {
        let page = DashboardFiles::get("index.html").unwrap();
        let html = std::str::from_utf8(&page.data).unwrap();
        assert!(html.contains("/dashboard/app.js") && html.contains("/dashboard/style.css"));
        for forbidden in ["http://", "https://", "//cdn", "<script>"] {
            assert!(!html.contains(forbidden), "index.html contains {forbidden}");
        }
        let script = DashboardFiles::get("app.js").unwrap();
        let js = std::str::from_utf8(&script.data).unwrap();
        assert!(!js.contains("http://") && !js.contains("https://"), "app.js names another origin");
        assert!(js.contains("sessionStorage"), "the token lives in the browser session");
    }
}
