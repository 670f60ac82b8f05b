//! The API description for people at `/api/docs`: Swagger UI reading `/api/openapi.json`. Its
//! files come from `utoipa-swagger-ui` built with the `vendored` feature, so they are compiled
//! into the binary (no CDN, nothing downloaded at build or run time), like the board's.
//!
//! Swagger UI's page links its files relatively (`./swagger-ui.css`), so the page lives at
//! `/api/docs/` and `/api/docs` redirects there. The online validator badge, which would load
//! an image from another site, is switched off, and a Content-Security-Policy keeps the page
//! to its own origin.

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use utoipa_swagger_ui::Config;

use super::openapi::DOCUMENT_PATH;
use crate::domain::error::Error;

/// Where the page is.
pub const DOCS_PATH: &str = "/api/docs";

/// Swagger UI sets inline styles on its elements, so styles may be inline; scripts, images and
/// requests stay on this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// `/api/docs` (a redirect to `/api/docs/`), the page and its files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let config = Arc::new(
        Config::from(DOCUMENT_PATH)
            .validator_url("none")
            .try_it_out_enabled(true),
    );
    let index_config = config.clone();
    Router::new()
        .route(
            DOCS_PATH,
            get(|| async { Redirect::permanent(&format!("{DOCS_PATH}/")) }),
        )
        .route(
            &format!("{DOCS_PATH}/"),
            get(move || serve("index.html", index_config.clone())),
        )
        .route(
            &format!("{DOCS_PATH}/{{file}}"),
            get(move |file: Result<Path<String>, PathRejection>| {
                // A name that does not even decode names no file either.
                let name = file.map(|Path(name)| name).unwrap_or_default();
                serve_named(name, config.clone())
            }),
        )
}

async fn serve_named(name: String, config: Arc<Config<'static>>) -> Response {
    serve(&name, config).await
}

async fn serve(name: &str, config: Arc<Config<'static>>) -> Response {
    let file = match utoipa_swagger_ui::serve(name, config) {
        Ok(Some(file)) => file,
        Ok(None) => {
            return Error::NotFound(format!("no documentation file named {name:?}"))
                .into_response();
        }
        Err(err) => {
            return Error::Internal(format!("cannot render {name}: {err}").into()).into_response();
        }
    };
    let content_type = HeaderValue::from_str(&file.content_type)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    let mut response = (
        [(header::CONTENT_TYPE, content_type)],
        file.bytes.into_owned(),
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
