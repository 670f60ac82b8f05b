//! The API's own description: an OpenAPI 3.1 document generated from the routes themselves.
//! Each REST handler carries its `#[utoipa::path]` and is registered with utoipa-axum's
//! `routes!`, so mounting a route and documenting it are one act; this module adds what no
//! single route knows (info, tags, the bearer scheme, the shared error body) and serves the
//! result at `GET /api/openapi.json`. The page for people is in `docs.rs`.
//!
//! Layout: `errors.rs` (the error body and one response per error status), `schemas.rs`
//! (request bodies, described but parsed by hand in the handlers).

pub mod errors;
pub mod schemas;

use std::sync::Arc;

use axum::Extension;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::config::Settings;

/// Where the document is served.
pub const DOCUMENT_PATH: &str = "/api/openapi.json";

/// Name of the bearer-token security scheme (`Authorization: Bearer <jwt>`).
pub const BEARER: &str = "bearer";
/// Name of the `?token=` security scheme, for clients that cannot set headers (EventSource).
pub const TOKEN_QUERY: &str = "token_query";

/// What no single route says: the API's name, its tags, its security schemes and the error
/// body every error response refers to.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "taskwire",
        description = "REST task API with real-time delivery. Socket.IO (`/socket.io/`) is on the same port and is described in the project's docs, not here. Every error is `{\"error\": {\"code\", \"message\"}}` with the status listed for each operation.",
    ),
    tags(
        (name = "tasks", description = "Tasks: list, create, read, update, delete."),
        (name = "realtime", description = "Server-Sent Events and Socket.IO presence."),
        (name = "notifications", description = "The notification outbox (webhooks, e-mail)."),
        (name = "jobs", description = "Background jobs with progress."),
        (name = "ops", description = "Health, readiness, metrics and this document."),
    ),
    components(schemas(errors::ErrorBody)),
    modifiers(&SecuritySchemes)
)]
pub struct ApiDoc;

/// Adds the two ways a token may be sent.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An HS256 JWT with `sub` and `exp` (optional `name`, `email`, `workspace`), signed with `JWT_SECRET`.",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            TOKEN_QUERY,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                "token",
                "The same JWT as `?token=`, for clients that cannot set headers (EventSource).",
            ))),
        );
    }
}

/// Schemas of what the server sends that carry every property every time (`null` where there
/// is no value): utoipa takes an `Option` field for an optional one, so [`finish`] lists them
/// all as required, which is what a generated client should rely on.
const COMPLETE_SCHEMAS: [&str; 9] = [
    "Task",
    "JobRecord",
    "Progress",
    "JobFailure",
    "Notification",
    "Attempt",
    "PresenceStats",
    "RoomUsers",
    "PresenceUser",
];

/// The finished document as JSON, for the settings this server runs with.
///
/// With auth off (no `JWT_SECRET`) every operation may also be called without a token (an
/// empty security requirement is added). Every response header the routes name is always
/// sent, so each is marked required (utoipa has no attribute for that); so is every property
/// of [`COMPLETE_SCHEMAS`].
pub fn finish(document: utoipa::openapi::OpenApi, settings: &Settings) -> Value {
    let mut doc = match serde_json::to_value(&document) {
        Ok(doc) => doc,
        // A document of plain strings, maps and numbers always serialises.
        Err(err) => unreachable!("the OpenAPI document does not serialise: {err}"),
    };
    doc["info"]["version"] = json!(env!("CARGO_PKG_VERSION"));
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for name in COMPLETE_SCHEMAS {
            let Some(schema) = schemas.get_mut(name) else {
                continue;
            };
            let names: Vec<Value> = match schema["properties"].as_object() {
                Some(properties) => properties.keys().map(|k| json!(k)).collect(),
                None => continue,
            };
            schema["required"] = Value::Array(names);
        }
    }
    let auth_off = settings.jwt_secret.is_none();
    let operations = doc
        .pointer_mut("/paths")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|paths| paths.values_mut())
        .filter_map(Value::as_object_mut)
        .flat_map(|item| item.values_mut());
    for operation in operations {
        if auth_off
            && let Some(security) = operation.get_mut("security").and_then(Value::as_array_mut)
            && !security.contains(&json!({}))
        {
            security.push(json!({}));
        }
        fix_links(operation);
        let headers = operation
            .get_mut("responses")
            .and_then(Value::as_object_mut)
            .into_iter()
            .flat_map(|responses| responses.values_mut())
            .filter_map(|response| response.get_mut("headers").and_then(Value::as_object_mut))
            .flat_map(|headers| headers.values_mut())
            .filter_map(Value::as_object_mut);
        for header in headers {
            header.insert("required".into(), json!(true));
        }
    }
    doc
}

/// utoipa 5.5 writes a link's fields in snake case (`operation_id`); OpenAPI's names are
/// camel case (`operationId`), and a client reading the document would find no target.
fn fix_links(operation: &mut Value) {
    let links = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
        .into_iter()
        .flat_map(|responses| responses.values_mut())
        .filter_map(|response| response.get_mut("links").and_then(Value::as_object_mut))
        .flat_map(|links| links.values_mut())
        .filter_map(Value::as_object_mut);
    for link in links {
        for (from, to) in [
            ("operation_id", "operationId"),
            ("operation_ref", "operationRef"),
            ("request_body", "requestBody"),
        ] {
            if let Some(value) = link.remove(from) {
                link.insert(to.to_owned(), value);
            }
        }
    }
}

/// The finished document, serialised once; reaches [`document`] as a request extension.
#[derive(Clone)]
pub struct DocumentJson(Arc<[u8]>);

impl DocumentJson {
    /// Serialises a finished document (from [`finish`]).
    pub fn new(document: &Value) -> Self {
        match serde_json::to_vec(document) {
            Ok(bytes) => DocumentJson(bytes.into()),
            // A JSON value always serialises.
            Err(err) => unreachable!("a JSON value does not serialise: {err}"),
        }
    }
}

/// `GET /api/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "ops",
    security(()),
    responses(
        (status = 200, description = "This document (OpenAPI 3.1).", content_type = "application/json", body = Object),
        errors::Unavailable,
    )
)]
pub async fn document(Extension(DocumentJson(json)): Extension<DocumentJson>) -> Response {
    let mut response = json.to_vec().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}
