//! Socket command payloads: the first byte picks the event (`create_task`, `update_task`,
//! `delete_task`, `join-task`, `leave_task`, `sync`, …), the rest is the JSON payload. A
//! command is refused with a client error, or names exactly the task its payload names and
//! carries a body within limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use taskwire::fuzzing::{SocketCommand, socket_command, socket_since};
use taskwire_fuzz::{assert_patch_within_limits, assert_rejected};
use uuid::Uuid;

const EVENTS: [&str; 10] = [
    "create_task",
    "update_task",
    "delete_task",
    "join-task",
    "join_task",
    "leave-task",
    "leave_task",
    "sync",
    "task_updated",
    "",
];

/// The id a payload names under `keys` (or as a bare string), parsed as the server does.
fn named_id(payload: &Value, keys: &[&str]) -> Option<Uuid> {
    let raw = match payload {
        Value::String(raw) => raw.as_str(),
        Value::Object(obj) => keys.iter().find_map(|k| obj.get(*k))?.as_str()?,
        _ => return None,
    };
    Uuid::parse_str(raw.trim()).ok()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let event = EVENTS[usize::from(pick) % EVENTS.len()];
    let Ok(payload) = serde_json::from_slice::<Value>(rest) else {
        return;
    };
    if let Ok(Some(since)) = socket_since(&payload) {
        assert!(since >= 0, "a resume position is never negative");
        assert_eq!(payload.get("since").and_then(Value::as_i64), Some(since));
    }
    let command = match socket_command(event, &payload) {
        Ok(command) => command,
        Err(err) => {
            // An id that is no UUID names no task: not found, like any unknown id.
            return assert_rejected(&err, &["validation_failed", "not_found"]);
        }
    };
    match command {
        SocketCommand::Sync(since) => {
            assert!(since >= 0);
            assert_eq!(payload.get("since").and_then(Value::as_i64), Some(since));
        }
        SocketCommand::Create(new) => {
            assert!(new.patch.title.is_some());
            assert_patch_within_limits(&new.patch);
        }
        SocketCommand::Update(id, patch) => {
            assert_eq!(named_id(&payload, &["id"]), Some(id));
            assert!(payload.is_object(), "an update names its task in an object");
            assert_patch_within_limits(&patch);
        }
        SocketCommand::Delete(id) => assert_eq!(named_id(&payload, &["id"]), Some(id)),
        SocketCommand::Room(id) => {
            assert_eq!(named_id(&payload, &["taskId", "task_id", "id"]), Some(id));
        }
        SocketCommand::Ignored => assert!(["task_updated", ""].contains(&event)),
    }
});
