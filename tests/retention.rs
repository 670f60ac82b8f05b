//! Tables that would otherwise only grow: settled notifications (and their attempts) are
//! pruned after `NOTIFICATION_RETENTION_SECONDS`, with the default of seven days and through
//! the background pass of a running app; open notifications stay whatever their age.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::{Backend, TestApp, TestDb};
use taskwire::Settings;
use taskwire::domain::notification::{Attempt, Channel, NewNotification, Status};
use taskwire::store::Store;
use taskwire::store::outbox::Settlement;
use uuid::Uuid;

on_both_backends!(
    settled_notifications_older_than_the_default_week_are_pruned,
    the_background_pass_prunes_delivered_notifications_of_a_running_app,
);

fn row(workspace: &str, created_at: DateTime<Utc>) -> NewNotification {
    NewNotification {
        id: Uuid::now_v7(),
        workspace: workspace.to_owned(),
        channel: Channel::Webhook,
        target: "http://127.0.0.1:9/hook".to_owned(),
        event_type: "task.updated",
        task_id: Uuid::now_v7(),
        payload: "{}".to_owned(),
        created_at,
    }
}

/// Settles the first attempt of `n` (already claimed) as `status`, finished at `at`.
async fn settle(store: &Arc<dyn Store>, n: &NewNotification, status: Status, at: DateTime<Utc>) {
    store
        .outbox()
        .settle(&Settlement {
            id: n.id,
            attempt: Attempt {
                attempt: 1,
                started_at: at,
                finished_at: at,
                outcome: status.as_str().to_owned(),
                status_code: Some(200),
                error: None,
            },
            status,
            next_attempt_at: at,
        })
        .await
        .unwrap();
}

async fn settled_notifications_older_than_the_default_week_are_pruned(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = taskwire::store::connect(&db.url, 2).await.unwrap();
    let settings = Settings::defaults();
    assert_eq!(settings.notification_retention_seconds, 7 * 24 * 3600);
    let days = |d: i64| Utc::now() - chrono::Duration::days(d);

    let old_delivered = row("ws", days(9));
    let old_dead = row("ws", days(9));
    let recent_delivered = row("ws", days(7));
    let old_pending = row("ws", days(30));
    let old_failed = row("ws", days(30));
    for n in [
        &old_delivered,
        &old_dead,
        &recent_delivered,
        &old_pending,
        &old_failed,
    ] {
        store
            .outbox()
            .enqueue(std::slice::from_ref(n))
            .await
            .unwrap();
    }
    let claimed = store
        .outbox()
        .claim_due(Utc::now(), Utc::now() + chrono::Duration::seconds(60), 100)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 5, "every row is due and claimed once");
    settle(&store, &old_delivered, Status::Delivered, days(8)).await;
    settle(&store, &old_dead, Status::Dead, days(8)).await;
    settle(&store, &recent_delivered, Status::Delivered, days(6)).await;
    settle(&store, &old_failed, Status::Failed, days(8)).await;
    // `old_pending` stays pending: claimed, its attempt still in flight.

    taskwire::store::retention::prune_once(&store, &settings).await;

    let left: Vec<Uuid> = store
        .outbox()
        .list_notifications("ws", None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert!(
        !left.contains(&old_delivered.id),
        "delivered 8 days ago is pruned"
    );
    assert!(!left.contains(&old_dead.id), "dead 8 days ago is pruned");
    assert!(
        left.contains(&recent_delivered.id),
        "delivered 6 days ago is kept"
    );
    assert!(
        left.contains(&old_pending.id),
        "pending rows are never pruned"
    );
    assert!(
        left.contains(&old_failed.id),
        "failed rows (to be retried) are never pruned"
    );
    assert_eq!(left.len(), 3, "{left:?}");
    assert!(
        store
            .outbox()
            .get_notification("ws", old_delivered.id)
            .await
            .unwrap()
            .is_none()
    );
    let (_, attempts) = store
        .outbox()
        .get_notification("ws", recent_delivered.id)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(attempts.len(), 1, "a kept row keeps its attempts");
    const ORPHANS: &str = "SELECT COUNT(*) FROM notification_attempts \
        WHERE notification_id NOT IN (SELECT id FROM notifications)";
    let orphans: (i64,) = match backend {
        Backend::Sqlite => {
            let pool = sqlx::SqlitePool::connect(&db.url).await.unwrap();
            let n = sqlx::query_as(ORPHANS).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
            let n = sqlx::query_as(ORPHANS).fetch_one(&pool).await.unwrap();
            pool.close().await;
            n
        }
    };
    assert_eq!(orphans.0, 0, "attempts go with their notification");
    store.close().await;
    db.drop_database().await;
}

async fn the_background_pass_prunes_delivered_notifications_of_a_running_app(backend: Backend) {
    let receiver = common::webhook::Receiver::start().await;
    let app = TestApp::spawn_with(backend, |s| {
        s.webhook_url = vec![receiver.url()];
        s.notification_retention_seconds = 1;
        s.event_prune_interval_seconds = 1;
    })
    .await;
    let created = app
        .create(serde_json::json!({"title": "pruned later"}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    // The row is written with the task, so it exists now; once delivered and a second old, the
    // background pass removes it.
    let listed = app
        .get_json(&format!("/api/notifications?task_id={id}"))
        .await;
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let listed = app
            .get_json(&format!("/api/notifications?task_id={id}"))
            .await;
        if receiver.hits() >= 1 && listed.as_array().is_some_and(Vec::is_empty) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never pruned: {listed} after {} deliveries",
            receiver.hits()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.stop().await;
}
