//! Task create and patch bodies (`POST /api/tasks`, `PUT`/`PATCH /api/tasks/{id}`, the same
//! bodies over sockets and `/update_task`): any JSON either is refused with a validation error
//! naming a field, or yields values within the documented limits, and the task made from it
//! reads back through the API unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use taskwire::domain::task::{Actor, NewTask, TaskPatch};
use taskwire_fuzz::{assert_patch_within_limits, assert_rejected, assert_task_within_limits};

fuzz_target!(|data: &[u8]| {
    // Bytes that are not JSON are a 400 before these parsers run.
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let patch = TaskPatch::from_json(&body);
    match &patch {
        Ok(patch) => assert_patch_within_limits(patch),
        Err(err) => assert_rejected(err, &["validation_failed"]),
    }
    match NewTask::from_json(&body) {
        Ok(new) => {
            assert_eq!(Ok(&new.patch), patch.as_ref().map_err(|_| ()));
            assert!(new.patch.title.is_some(), "a new task has a title");
            assert_task_within_limits(&new.into_task(&Actor::anonymous()));
        }
        Err(err) => {
            assert_rejected(&err, &["validation_failed"]);
            if let Ok(patch) = &patch {
                assert!(patch.title.is_none(), "only a missing title fails creation");
                assert_eq!(err.field(), Some("title"));
            }
        }
    }
});
