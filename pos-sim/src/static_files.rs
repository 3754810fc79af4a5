//! The demo's files: `www/` at `/`, `pkg/` at `/pkg/`, with the MIME types browsers insist on
//! (module scripts, `WebAssembly.instantiateStreaming`, manifests) and `Cache-Control: no-cache`.

use std::path::Path;

use axum::extract::Request;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use axum::Router;
use tower_http::services::ServeDir;

/// Routes `/pkg/*` to `pkg_dir` and everything else to `www_dir`. Missing directories
/// answer 404.
pub fn router(www_dir: &Path, pkg_dir: &Path) -> Router {
    Router::new()
        .nest_service("/pkg", ServeDir::new(pkg_dir))
        .fallback_service(ServeDir::new(www_dir))
        .layer(axum::middleware::from_fn(headers))
}

/// The content type for a file name, for the types that matter; `None` leaves ServeDir's guess.
pub fn content_type(path: &str) -> Option<&'static str> {
    if path.ends_with('/') {
        return Some("text/html; charset=utf-8");
    }
    let ext = path.rsplit_once('.').map(|(_, ext)| ext)?;
    Some(match ext.to_ascii_lowercase().as_str() {
        "js" | "mjs" => "text/javascript",
        "wasm" => "application/wasm",
        "json" | "map" => "application/json",
        "css" => "text/css",
        "html" | "htm" => "text/html; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        "ts" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

async fn headers(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if response.status().is_success() {
        if let Some(ct) = content_type(&path) {
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::StatusCode;
    use tower::ServiceExt;

    use super::*;

    #[test]
    fn mime_types() {
        assert_eq!(
            content_type("/pkg/pos_terminal.js"),
            Some("text/javascript")
        );
        assert_eq!(
            content_type("/pkg/pos_terminal_bg.wasm"),
            Some("application/wasm")
        );
        assert_eq!(
            content_type("/manifest.webmanifest"),
            Some("application/manifest+json")
        );
        assert_eq!(content_type("/"), Some("text/html; charset=utf-8"));
        assert_eq!(content_type("/a.css"), Some("text/css"));
        assert_eq!(content_type("/x.json"), Some("application/json"));
        assert_eq!(content_type("/noext"), None);
    }

    async fn get(
        router: &Router,
        path: &str,
    ) -> (StatusCode, Option<String>, Option<String>, String) {
        let req = Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request");
        let res = router.clone().oneshot(req).await.expect("response");
        let status = res.status();
        let h = |name| {
            res.headers()
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let ct = h(header::CONTENT_TYPE);
        let cc = h(header::CACHE_CONTROL);
        let body = axum::body::to_bytes(res.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, ct, cc, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn serves_www_and_pkg_with_types() {
        let dir = tempfile::tempdir().expect("tempdir");
        let www = dir.path().join("www");
        let pkg = dir.path().join("pkg");
        std::fs::create_dir_all(&www).expect("mkdir");
        std::fs::create_dir_all(&pkg).expect("mkdir");
        std::fs::write(www.join("index.html"), "<h1>POS</h1>").expect("write");
        std::fs::write(www.join("sw.js"), "self.x=1").expect("write");
        std::fs::write(pkg.join("pos_terminal_bg.wasm"), b"\0asm").expect("write");
        let router = router(&www, &pkg);

        let (status, ct, cc, body) = get(&router, "/").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"));
        assert_eq!(cc.as_deref(), Some("no-cache"));
        assert_eq!(body, "<h1>POS</h1>");

        let (status, ct, ..) = get(&router, "/sw.js").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("text/javascript"));

        let (status, ct, ..) = get(&router, "/pkg/pos_terminal_bg.wasm").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("application/wasm"));

        assert_eq!(get(&router, "/missing.js").await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            get(&router, "/../Cargo.toml").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&router, "/pkg/%2e%2e/www/index.html").await.0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn missing_directories_are_404() {
        let dir = tempfile::tempdir().expect("tempdir");
        let router = router(&dir.path().join("nope"), &dir.path().join("nope2"));
        assert_eq!(get(&router, "/").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get(&router, "/pkg/x.js").await.0, StatusCode::NOT_FOUND);
    }
}
