//! The web board at `/`: one HTML page, a stylesheet and a script from `assets/board/`,
//! embedded in the binary at compile time so that `cargo run` alone gives a working UI (no CDN,
//! no npm build, nothing read from disk at run time). The page is an ordinary client of the
//! REST API and of the SSE stream on the same origin.
//!
//! Responses carry a content hash as `ETag` with `Cache-Control: no-cache`: browsers revalidate
//! on every load and get a cheap 304 until a new binary serves different bytes, so an upgrade
//! never leaves a stale script running against a newer server.

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::domain::error::Error;

/// One embedded file.
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
    hash: u64,
}

impl Asset {
    const fn new(content_type: &'static str, body: &'static [u8]) -> Self {
        Asset {
            content_type,
            body,
            hash: fnv1a(body),
        }
    }
}

/// FNV-1a, evaluated at compile time: an ETag that changes exactly when the bytes do.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

static INDEX: Asset = Asset::new(
    "text/html; charset=utf-8",
    include_bytes!("../../assets/board/index.html"),
);
static CSS: Asset = Asset::new(
    "text/css; charset=utf-8",
    include_bytes!("../../assets/board/board.css"),
);
static JS: Asset = Asset::new(
    "text/javascript; charset=utf-8",
    include_bytes!("../../assets/board/board.js"),
);

/// The page only talks to its own origin; anything else it tried to load would be a bug or an
/// injection, so the policy forbids it. `data:` images allow the inline favicon.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `/` (the board page) and `/board/{file}` (its stylesheet and script).
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(index))
        .route("/board/{file}", get(file))
}

async fn index(headers: HeaderMap) -> Response {
    let mut response = serve(&INDEX, &headers);
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    response
}

async fn file(name: Result<Path<String>, PathRejection>, headers: HeaderMap) -> Response {
    // A name that does not even decode (invalid percent-encoding) names no file either: answer
    // the same JSON 404 instead of axum's plain-text 400.
    let name = name.map(|Path(name)| name).unwrap_or_default();
    let asset = match name.as_str() {
        "board.css" => &CSS,
        "board.js" => &JS,
        _ => return Error::NotFound(format!("no board file named {name:?}")).into_response(),
    };
    serve(asset, &headers)
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == etag || tag == "*");
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            )],
            asset.body,
        )
            .into_response()
    };
    let out = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        out.insert(header::ETAG, value);
    }
    out.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        router::<()>()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response.headers()[name].to_str().unwrap()
    }

    #[tokio::test]
    async fn index_is_html_with_a_policy_and_links_the_embedded_files() {
        let response = get("/", None).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            header_of(&response, header::CONTENT_TYPE),
            "text/html; charset=utf-8"
        );
        assert!(header_of(&response, header::CONTENT_SECURITY_POLICY).contains("'self'"));
        assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let html = std::str::from_utf8(&body).unwrap();
        assert!(html.contains("/board/board.css") && html.contains("/board/board.js"));
    }

    #[tokio::test]
    async fn stylesheet_and_script_have_their_content_types() {
        for (path, kind) in [
            ("/board/board.css", "text/css; charset=utf-8"),
            ("/board/board.js", "text/javascript; charset=utf-8"),
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(header_of(&response, header::CONTENT_TYPE), kind);
            assert_eq!(
                header_of(&response, header::X_CONTENT_TYPE_OPTIONS),
                "nosniff"
            );
        }
    }

    #[tokio::test]
    async fn a_matching_etag_gets_304_and_a_stale_one_the_file() {
        let etag = header_of(&get("/board/board.js", None).await, header::ETAG).to_owned();
        let cached = get("/board/board.js", Some(&format!("\"0\", {etag}"))).await;
        assert_eq!(cached.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&cached, header::ETAG), etag);
        let stale = get("/board/board.js", Some("\"0000000000000000\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn an_unknown_board_file_is_a_json_404() {
        for path in ["/board/nope.js", "/board/..%2Fmain.rs", "/board/%FF"] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            let body = response.into_body().collect().await.unwrap().to_bytes();
            let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(json["error"]["code"], "not_found", "{path}");
        }
    }
}
