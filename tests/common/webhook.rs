//! A real HTTP webhook receiver on a free loopback port that answers 200 (after an optional
//! delay, to keep deliveries in flight) and records each delivery's `webhook-id`, for tests
//! that need notifications to be delivered.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;

#[derive(Default)]
struct Seen {
    hits: AtomicUsize,
    ids: Mutex<Vec<String>>,
    delay: Duration,
    /// Never answer the first delivery of a notification (its sender is about to die).
    hold_first: bool,
}

/// A receiver that accepts every delivery.
pub struct Receiver {
    port: u16,
    seen: Arc<Seen>,
    server: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_with(Duration::ZERO, false).await
    }

    /// A receiver that never answers the first delivery of each notification and answers
    /// repeats at once: what a sender killed mid-delivery leaves behind.
    pub async fn start_holding_first() -> Receiver {
        Self::start_with(Duration::ZERO, true).await
    }

    /// A receiver that counts a delivery at once and answers it after `delay`.
    pub async fn start_with(delay: Duration, hold_first: bool) -> Receiver {
        let seen = Arc::new(Seen {
            delay,
            hold_first,
            ..Seen::default()
        });
        let app = Router::new()
            .route(
                "/hook",
                post(
                    |State(seen): State<Arc<Seen>>, headers: HeaderMap| async move {
                        let mut first = false;
                        if let Some(id) = headers.get("webhook-id").and_then(|v| v.to_str().ok()) {
                            let mut ids = seen.ids.lock().expect("not poisoned");
                            first = !ids.iter().any(|seen| seen == id);
                            ids.push(id.to_owned());
                        }
                        seen.hits.fetch_add(1, Ordering::SeqCst);
                        if first && seen.hold_first {
                            std::future::pending::<()>().await;
                        }
                        tokio::time::sleep(seen.delay).await;
                        "ok"
                    },
                ),
            )
            .with_state(seen.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { port, seen, server }
    }

    /// The `webhook-id` of every delivery received, in order (repeats included).
    pub fn ids(&self) -> Vec<String> {
        self.seen.ids.lock().expect("not poisoned").clone()
    }

    /// The URL to put in `WEBHOOK_URL`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    /// Deliveries received so far.
    pub fn hits(&self) -> usize {
        self.seen.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}
