//! Properties the fuzz targets share: what an accepted task, patch or import row must look
//! like (the documented limits), what a rejection must be (a client error, never `internal`),
//! and that what the API produced reads back as itself.

use chrono::DateTime;
use serde_json::{Value, json};
use taskwire::Error;
use taskwire::domain::task::{
    Actor, MAX_ASSIGNEE_CHARS, MAX_DESCRIPTION_CHARS, MAX_EMAIL_CHARS, MAX_TITLE_CHARS, Task,
    TaskPatch,
};
use taskwire::jobs::kinds::records::{COLUMNS, Format, RowReader, csv_record, task_from_row};

/// Panics unless `err` is a client error with one of the `codes`, and a validation error
/// names a field: bad input is a precise 4xx, never a 500.
pub fn assert_rejected(err: &Error, codes: &[&str]) {
    assert!(
        codes.contains(&err.code()),
        "unexpected error {:?} ({}), expected one of {codes:?}",
        err,
        err.code()
    );
    if let Error::Validation { field, message } = err {
        assert!(!field.is_empty(), "a validation error names its field");
        assert!(!message.is_empty(), "a validation error says what is wrong");
    }
}

fn assert_trimmed_within(value: &str, max: usize, what: &str) {
    assert_eq!(value, value.trim(), "{what} is trimmed");
    assert!(!value.is_empty(), "{what} is not blank");
    assert!(
        value.chars().count() <= max,
        "{what} is at most {max} chars"
    );
}

/// Panics unless `due` is a stored due date the API accepts again unchanged: `YYYY-MM-DD`,
/// or an RFC 3339 UTC timestamp with a four-digit year ending in `Z`.
pub fn assert_canonical_due_date(due: &str) {
    let bytes = due.as_bytes();
    assert!(
        bytes.len() >= 10
            && bytes[..4].iter().all(u8::is_ascii_digit)
            && bytes[4] == b'-'
            && bytes[5..7].iter().all(u8::is_ascii_digit)
            && bytes[7] == b'-'
            && bytes[8..10].iter().all(u8::is_ascii_digit),
        "due date {due:?} starts with YYYY-MM-DD"
    );
    if due.len() > 10 {
        assert!(due.ends_with('Z'), "due date {due:?} is in UTC");
        assert!(
            DateTime::parse_from_rfc3339(due).is_ok(),
            "due date {due:?} is RFC 3339"
        );
    }
    let again = TaskPatch::from_json(&json!({ "due_date": due }))
        .unwrap_or_else(|err| panic!("stored due date {due:?} is refused: {err}"));
    assert_eq!(
        again.due_date,
        Some(Some(due.to_owned())),
        "due date {due:?} reads back as itself"
    );
}

/// Panics unless every field a patch sets is within the documented limits.
pub fn assert_patch_within_limits(patch: &TaskPatch) {
    if let Some(title) = &patch.title {
        assert_trimmed_within(title, MAX_TITLE_CHARS, "title");
    }
    if let Some(description) = &patch.description {
        assert!(description.chars().count() <= MAX_DESCRIPTION_CHARS);
    }
    if let Some(Some(assignee)) = &patch.assignee {
        assert_trimmed_within(assignee, MAX_ASSIGNEE_CHARS, "assignee");
    }
    if let Some(Some(email)) = &patch.assignee_email {
        assert_trimmed_within(email, MAX_EMAIL_CHARS, "assignee_email");
        let (local, domain) = email.split_once('@').expect("an e-mail address has an @");
        assert!(!local.is_empty() && !domain.is_empty() && !domain.contains('@'));
        assert!(!email.contains(char::is_whitespace));
    }
    if let Some(Some(due)) = &patch.due_date {
        assert_canonical_due_date(due);
    }
}

/// Panics unless a task is within the limits and its JSON (what GET answers) is accepted
/// back as a patch that changes nothing: a client can always PUT what it read.
pub fn assert_task_within_limits(task: &Task) {
    assert!(task.version >= 1, "version starts at 1");
    let body = serde_json::to_value(task).expect("a task serialises");
    let patch = TaskPatch::from_json(&body)
        .unwrap_or_else(|err| panic!("the task's own JSON {body} is refused: {err}"));
    assert_patch_within_limits(&patch);
    assert_eq!(patch.title.as_ref(), Some(&task.title));
    assert_eq!(patch.description.as_ref(), Some(&task.description));
    assert_eq!(patch.status, Some(task.status));
    assert_eq!(patch.assignee.as_ref(), Some(&task.assignee));
    assert_eq!(patch.assignee_email.as_ref(), Some(&task.assignee_email));
    assert_eq!(patch.due_date.as_ref(), Some(&task.due_date));
}

/// Checks every row of an import file the way a job reads it: a file that counts (is
/// accepted at submission) yields exactly that many rows, each readable, and each row is
/// either rejected with a client error or a task within limits that exports and imports
/// back unchanged, as CSV and as JSON.
pub fn check_import_file(format: Format, bytes: &[u8]) {
    let counted = match RowReader::count(format, bytes, "file") {
        Ok(rows) => rows,
        Err(err) => {
            assert_rejected(&err, &["validation_failed"]);
            assert_eq!(err.field(), Some("file"));
            return;
        }
    };
    let mut reader = RowReader::open(format, bytes, "file").expect("a file that counts also opens");
    let mut read = 0;
    while let Some(row) = reader.next_row("file") {
        read += 1;
        let row = row.unwrap_or_else(|err| {
            panic!("row {read} of a file accepted at submission is unreadable: {err}")
        });
        check_import_row(&row);
    }
    assert_eq!(read, counted, "the job reads as many rows as were counted");
}

/// One import row: rejected precisely, or a valid task that round-trips through both
/// export formats.
pub fn check_import_row(row: &Value) {
    let actor = Actor::anonymous();
    let task = match task_from_row(row, &actor) {
        Ok(task) => task,
        Err(err) => return assert_rejected(&err, &["validation_failed"]),
    };
    assert_task_within_limits(&task);

    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(COLUMNS).expect("writing to memory");
    writer
        .write_record(csv_record(&task))
        .expect("writing to memory");
    let file = writer.into_inner().expect("writing to memory");
    let mut rows = RowReader::open(Format::Csv, &file, "file").expect("an export opens");
    let exported = rows
        .next_row("file")
        .expect("the export has the row")
        .expect("the export's row reads");
    let back = task_from_row(&exported, &actor)
        .unwrap_or_else(|err| panic!("exported row {exported} does not import: {err}"));
    assert_eq!(back, task, "CSV export imports back unchanged");

    let json = serde_json::to_value(&task).expect("a task serialises");
    let back = task_from_row(&json, &actor)
        .unwrap_or_else(|err| panic!("exported object {json} does not import: {err}"));
    assert_eq!(back, task, "JSON export imports back unchanged");
}
