//! Mount taskwire inside your own axum app: your routes and taskwire's REST, Socket.IO and
//! ops endpoints on one port.
//!
//! Run: `cargo run --example embed` (listens on 127.0.0.1:3000, or `PORT`), then
//! `curl localhost:3000/hello` and `curl localhost:3000/api/tasks`.

use axum::Router;
use axum::routing::get;
use taskwire::app::shutdown_signal;
use taskwire::{Settings, Taskwire};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let mut settings = Settings::defaults();
    if std::env::var_os("DATABASE_URL").is_none() {
        settings.database_url = "sqlite://embed-example.db".into();
    }
    // The host app owns `/`, so taskwire's board stays off.
    settings.board = false;
    let mut taskwire = Taskwire::new(settings).await?;

    // The host app's own routes, merged with taskwire's router (which owns the fallback, so
    // Socket.IO requests and unknown paths are answered by taskwire).
    let app = Router::new()
        .route("/", get(async || "the host app's home page"))
        .route("/hello", get(async || "hello from the host app"))
        .merge(taskwire.router());

    let port = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000u16);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "embed example listening on http://{}",
        listener.local_addr()?
    );
    // End every Socket.IO connection when the signal comes, so open long-polling requests
    // do not hold up axum's graceful shutdown.
    let sockets = taskwire.socket_closer();
    let stop = shutdown_signal();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            stop.await;
            sockets.close().await;
        })
        .await?;
    taskwire.shutdown().await;
    Ok(())
}
