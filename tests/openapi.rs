//! The OpenAPI document at `/api/openapi.json` against the router that serves it: it is
//! OpenAPI 3.1 JSON, it describes every route the router mounts with every method the router
//! answers on it, and `/api/docs` shows it with files from the binary only.
//!
//! How the route check can fail: axum does not list a router's routes, but its `Debug` output
//! names every mounted path. [`mounted_paths`] reads them from the real router (the one the
//! binary serves), so a `.route("/api/x", …)` added anywhere, outside utoipa-axum's `routes!`,
//! shows up there and fails [`undocumented`] until it is documented or named a page for
//! people. Methods are probed: each of GET/POST/PUT/PATCH/DELETE is sent to every mounted path,
//! and whatever the router answers other than with its 405 fallback must be a documented
//! operation, and every documented operation must be answered. A method added with plain
//! axum to a documented path, or an operation documented but not routed, fails the same way.
//! `a_route_added_without_documentation_is_caught` proves this on a router with one extra
//! undocumented route.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use common::{Backend, TestApp, TestDb, settings_for};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

/// Routes that are pages for people, not the API: the board and the documentation page with
/// their files. Everything else the router mounts must be in the document.
const PAGES: [&str; 5] = [
    "/",
    "/board/{file}",
    "/api/docs",
    "/api/docs/",
    "/api/docs/{file}",
];

/// The methods probed on every path. HEAD is what axum answers for every GET and OPTIONS is
/// CORS's; neither is an operation of its own.
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
];

/// Every path the router mounts, read from its `Debug` output (`RouteId(n): "/path"`).
fn mounted_paths(router: &Router) -> BTreeSet<String> {
    let text = format!("{router:?}");
    let mut paths = BTreeSet::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("RouteId(") {
        rest = &rest[at..];
        let Some(open) = rest.find("): \"") else {
            break;
        };
        let start = open + 4;
        let Some(len) = rest[start..].find('"') else {
            break;
        };
        let path = &rest[start..start + len];
        // axum mounts the router's fallback (the JSON 404) as a catch-all route of its own.
        if !path.contains("__private__axum_fallback") {
            paths.insert(path.to_owned());
        }
        rest = &rest[start + len..];
    }
    // If axum ever prints its routes differently, say so instead of checking nothing.
    assert!(
        paths.contains("/api/tasks") && paths.contains("/healthz"),
        "could not read the mounted paths from the router's Debug output: {paths:?}"
    );
    paths
}

/// `/api/tasks/{id}` with every parameter replaced by a fresh UUID.
fn concrete(path: &str) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') {
                id.clone()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The (method, path) pairs the document describes.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for method in item.as_object().expect("a path item is an object").keys() {
            operations.insert((method.to_ascii_uppercase(), path.clone()));
        }
    }
    operations
}

/// What the router mounts or answers that the document does not describe, and what the
/// document describes that the router does not answer; empty when they agree.
async fn undocumented(router: &Router, doc: &Value) -> Vec<String> {
    let documented = documented(doc);
    let documented_paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    let mut problems = Vec::new();
    let mut answered = BTreeSet::new();
    for path in mounted_paths(router) {
        if PAGES.contains(&path.as_str()) {
            continue;
        }
        if !documented_paths.contains(&path) {
            problems.push(format!("{path} is mounted but not in the document"));
        }
        for method in METHODS {
            let request = Request::builder()
                .method(method.clone())
                .uri(concrete(&path))
                .body(Body::empty())
                .expect("a valid request");
            let response = router
                .clone()
                .oneshot(request)
                .await
                .expect("the router is infallible");
            // The method fallback's 405 is the only answer that means "no such operation";
            // a 404 here comes from a handler (the UUID names nothing), since the path matched.
            if response.status() != StatusCode::METHOD_NOT_ALLOWED {
                answered.insert((method.to_string(), path.clone()));
            }
        }
    }
    for operation in answered.difference(&documented) {
        problems.push(format!(
            "{} {} is answered but not documented",
            operation.0, operation.1
        ));
    }
    for operation in documented.difference(&answered) {
        problems.push(format!(
            "{} {} is documented but not answered",
            operation.0, operation.1
        ));
    }
    problems
}

/// The real router of an app with default settings (auth off), and its document.
async fn router_and_document() -> (taskwire::Taskwire, Router, Value, TestDb) {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut taskwire = taskwire::Taskwire::new(settings_for(&db))
        .await
        .expect("taskwire starts");
    let router = taskwire.router();
    let response = router
        .clone()
        .oneshot(
            Request::get("/api/openapi.json")
                .body(Body::empty())
                .expect("a valid request"),
        )
        .await
        .expect("the router is infallible");
    assert_eq!(response.status(), StatusCode::OK);
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let doc: Value = serde_json::from_slice(&body).expect("the document is JSON");
    (taskwire, router, doc, db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_the_router_answers_is_in_the_document_and_nothing_else() {
    let (taskwire, router, doc, _db) = router_and_document().await;
    let problems = undocumented(&router, &doc).await;
    assert!(
        problems.is_empty(),
        "the OpenAPI document and the router disagree:\n{}",
        problems.join("\n")
    );
    taskwire.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_added_without_documentation_is_caught() {
    let (taskwire, router, doc, _db) = router_and_document().await;
    let extended = router
        .clone()
        .merge(Router::new().route("/api/extra", axum::routing::get(|| async { "hidden" })));
    let problems = undocumented(&extended, &doc).await;
    assert!(
        problems.iter().any(|p| p.contains("/api/extra is mounted")),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p == "GET /api/extra is answered but not documented"),
        "{problems:?}"
    );
    // And an operation the document describes but the router lacks.
    let mut fewer = doc.clone();
    fewer["paths"]["/api/tasks"]
        .as_object_mut()
        .expect("/api/tasks is documented")
        .insert("head".into(), serde_json::json!({"responses": {}}));
    let problems = undocumented(&router, &fewer).await;
    assert_eq!(
        problems,
        vec!["HEAD /api/tasks is documented but not answered".to_owned()]
    );
    taskwire.shutdown().await;
}

/// Every `$ref` in `value` (recursively).
fn refs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "$ref"
                    && let Some(r) = v.as_str()
                {
                    out.push(r.to_owned());
                }
                refs(v, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_is_openapi_3_1_json_with_errors_auth_and_etags() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let response = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let doc: Value = response.json().await.expect("the document is JSON");

    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "taskwire");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );

    // Every reference points at something the document has.
    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    assert!(!all_refs.is_empty());
    for r in &all_refs {
        let pointer = r.strip_prefix('#').expect("local references only");
        assert!(doc.pointer(pointer).is_some(), "dangling $ref {r}");
    }

    let error_ref = "#/components/schemas/ErrorBody";
    let mut operation_ids = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let name = format!("{} {path}", method.to_ascii_uppercase());
            let id = op["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{name}: operationId"));
            assert!(
                operation_ids.insert(id.to_owned(), name.clone()).is_none(),
                "{id} twice"
            );
            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{name}: no success response"
            );
            // Every error answers with the one error body; every operation can be refused
            // with 503 (MAX_CONNECTIONS, shutdown, database down).
            assert!(responses.contains_key("503"), "{name}: 503 not documented");
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"], error_ref,
                        "{name} {status}"
                    );
                }
                for header in response["headers"].as_object().into_iter().flatten() {
                    assert_eq!(header.1["required"], true, "{name} {status} {}", header.0);
                }
            }
            let open = ["/healthz", "/readyz", "/metrics", "/api/openapi.json"];
            let security = op["security"].as_array().expect("security");
            if open.contains(&path.as_str()) {
                assert_eq!(security, &vec![serde_json::json!({})], "{name}");
            } else {
                // Auth is off here: a token is accepted but not needed.
                assert!(
                    security.contains(&serde_json::json!({"bearer": []})),
                    "{name}"
                );
                assert!(security.contains(&serde_json::json!({})), "{name}");
                assert!(responses.contains_key("401"), "{name}: 401 not documented");
            }
            if ["post", "put", "patch", "delete"].contains(&method.as_str())
                && path.starts_with("/api/")
                || path == "/update_task"
            {
                assert!(responses.contains_key("429"), "{name}: 429 not documented");
            }
        }
    }

    // ETag and If-Match where versions matter; the task routes' links for stateful clients.
    let task = &doc["paths"]["/api/tasks/{id}"];
    for method in ["get", "put", "patch"] {
        assert!(
            task[method]["responses"]["200"]["headers"]["ETag"].is_object(),
            "{method}"
        );
    }
    for method in ["put", "patch", "delete"] {
        let params = task[method]["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "If-Match" && p["in"] == "header"),
            "{method}"
        );
        assert!(task[method]["responses"]["412"].is_object(), "{method}");
    }
    let created = &doc["paths"]["/api/tasks"]["post"]["responses"]["201"];
    assert_eq!(created["links"]["GetTask"]["operationId"], "get_task");
    assert!(created["headers"]["Location"].is_object());
    let submit = &doc["paths"]["/api/jobs"]["post"]["requestBody"]["content"];
    assert!(submit["application/json"].is_object() && submit["multipart/form-data"].is_object());
    // Found by schemathesis: utoipa wrote links as `operation_id`, which no client reads, and
    // the event streams as one string, while OpenAPI 3.1 describes each event.
    let text = doc.to_string();
    for snake in ["\"operation_id\"", "\"operation_ref\"", "\"request_body\""] {
        assert!(!text.contains(snake), "{snake} in the document");
    }
    for path in [
        "/api/tasks/stream",
        "/task_updates",
        "/api/jobs/{id}/events",
    ] {
        let stream = &doc["paths"][path]["get"]["responses"]["200"]["content"];
        assert_eq!(
            stream["text/event-stream"]["schema"]["$ref"], "#/components/schemas/ServerSentEvent",
            "{path}"
        );
    }
    // Only export jobs have a result file, so no link promises one from every submission.
    let links = &doc["paths"]["/api/jobs"]["post"]["responses"]["202"]["links"];
    assert_eq!(links["GetJob"]["operationId"], "get_job", "{links}");
    assert!(links.get("JobResult").is_none(), "{links}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_jwt_secret_every_api_operation_requires_a_token() {
    let app = TestApp::spawn_with(Backend::Sqlite, |s| {
        s.jwt_secret = Some("a-secret-for-the-document-test".parse().unwrap());
    })
    .await;
    let doc = app.get_json("/api/openapi.json").await;
    let tasks = &doc["paths"]["/api/tasks"]["get"]["security"];
    assert_eq!(
        tasks,
        &serde_json::json!([{"bearer": []}, {"token_query": []}])
    );
    assert_eq!(
        doc["paths"]["/healthz"]["get"]["security"],
        serde_json::json!([{}])
    );
    // The document itself needs no token.
    let response = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_docs_page_loads_every_file_from_the_server_itself() {
    let app = TestApp::spawn(Backend::Sqlite).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let redirect = no_redirects
        .get(app.url("/api/docs"))
        .send()
        .await
        .expect("GET");
    assert_eq!(redirect.status(), 308);
    assert_eq!(redirect.headers()["location"], "/api/docs/");

    let page = app
        .http
        .get(app.url("/api/docs/"))
        .send()
        .await
        .expect("GET");
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .expect("text")
            .starts_with("text/html")
    );
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    let html = page.text().await.expect("text");

    // Every file the page loads is named relatively and is served from the binary.
    let mut files = Vec::new();
    for attribute in ["src=\"", "href=\""] {
        for part in html.split(attribute).skip(1) {
            let url = part.split('"').next().unwrap_or_default();
            assert!(
                !url.contains("://") && !url.starts_with("//"),
                "the page loads {url} from elsewhere"
            );
            files.push(url.trim_start_matches("./").to_owned());
        }
    }
    assert!(files.iter().any(|f| f.ends_with(".js")), "{files:?}");
    assert!(files.iter().any(|f| f.ends_with(".css")), "{files:?}");
    for file in &files {
        let response = app
            .http
            .get(app.url(&format!("/api/docs/{file}")))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), 200, "{file}");
        assert!(!response.bytes().await.expect("body").is_empty(), "{file}");
    }

    // The script that starts Swagger UI points it at the document and at no validator.
    let init = app
        .http
        .get(app.url("/api/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    assert!(init.contains("\"/api/openapi.json\""), "{init}");
    assert!(init.contains("\"validatorUrl\": \"none\""), "{init}");

    let missing = app
        .http
        .get(app.url("/api/docs/nope.js"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}
