//! Tasks as rows of a file, both ways: the CSV columns and JSON objects exports write, and
//! the per-row validation imports apply. One column list, so an export imports back whole.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::error::{Error, Result};
use crate::domain::task::{Actor, NewTask, Task, type_name};

/// File formats exports write and imports read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Comma-separated values with a header row.
    Csv,
    /// A JSON array of task objects.
    Json,
}

impl Format {
    /// The `Content-Type` of a file in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Json => "application/json",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Json => "json",
        }
    }
}

/// CSV columns, in order: every field of a task.
pub const COLUMNS: [&str; 12] = [
    "id",
    "title",
    "description",
    "status",
    "assignee",
    "assignee_email",
    "due_date",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "version",
];

/// A task as one CSV record, in [`COLUMNS`] order; a missing value is an empty cell.
pub fn csv_record(task: &Task) -> [String; 12] {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    let at = |t: &chrono::DateTime<chrono::Utc>| crate::domain::event::format_at(*t);
    [
        task.id.to_string(),
        task.title.clone(),
        task.description.clone(),
        task.status.as_str().to_owned(),
        opt(&task.assignee),
        opt(&task.assignee_email),
        opt(&task.due_date),
        at(&task.created_at),
        at(&task.updated_at),
        opt(&task.created_by),
        opt(&task.updated_by),
        task.version.to_string(),
    ]
}

/// The rows of a CSV file as JSON objects keyed by header; empty cells are left out, so they
/// mean "not given". Malformed CSV, a missing `title` column or a blank header is an error on
/// `field`.
pub fn csv_rows(bytes: &[u8], field: &str) -> Result<Vec<Value>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::Headers)
        .from_reader(bytes);
    let bad = |e: csv::Error| Error::invalid(field, format!("malformed CSV: {e}"));
    let headers: Vec<String> = reader
        .headers()
        .map_err(bad)?
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase())
        .collect();
    if !headers.iter().any(|h| h == "title") {
        return Err(Error::invalid(
            field,
            format!(
                "the CSV header must name a `title` column (got {})",
                headers.join(",")
            ),
        ));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(bad)?;
        let mut row = Map::new();
        for (name, cell) in headers.iter().zip(record.iter()) {
            if !cell.is_empty() {
                row.insert(name.clone(), Value::String(cell.to_owned()));
            }
        }
        rows.push(Value::Object(row));
    }
    Ok(rows)
}

/// The rows of a JSON import: an array (each element checked when it is imported).
pub fn json_rows(value: Value, field: &str) -> Result<Vec<Value>> {
    match value {
        Value::Array(rows) => Ok(rows),
        other => Err(Error::invalid(
            field,
            format!(
                "field `{field}` must be an array of tasks, got {}",
                type_name(&other)
            ),
        )),
    }
}

/// A task from an import row, checked like a new task; `id`, timestamps, authors and
/// `version` are kept when the row gives them, so an exported file imports back unchanged.
pub fn task_from_row(row: &Value, actor: &Actor) -> Result<Task> {
    let fields = row.as_object().ok_or_else(|| {
        Error::invalid(
            "row",
            format!("each row must be an object, got {}", type_name(row)),
        )
    })?;
    let mut task = NewTask::from_json(row)?.into_task(actor);
    let text = |key: &str| -> Result<Option<String>> {
        match fields.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(other) => Err(Error::invalid(
                key,
                format!("field `{key}` must be a string, got {}", type_name(other)),
            )),
        }
    };
    if let Some(id) = text("id")? {
        task.id = Uuid::parse_str(&id)
            .map_err(|_| Error::invalid("id", format!("field `id` must be a UUID (got {id:?})")))?;
    }
    let time = |key: &str| -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        text(key)?
            .map(|raw| {
                chrono::DateTime::parse_from_rfc3339(&raw)
                    .map(|t| chrono::SubsecRound::trunc_subsecs(t.with_timezone(&chrono::Utc), 3))
                    .map_err(|_| {
                        Error::invalid(
                            key,
                            format!("field `{key}` must be an RFC 3339 timestamp (got {raw:?})"),
                        )
                    })
            })
            .transpose()
    };
    if let Some(at) = time("created_at")? {
        task.created_at = at;
        task.updated_at = at;
    }
    if let Some(at) = time("updated_at")? {
        task.updated_at = at;
    }
    if let Some(by) = text("created_by")? {
        task.created_by = Some(by);
    }
    if let Some(by) = text("updated_by")? {
        task.updated_by = Some(by);
    }
    let version = match fields.get("version") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.trim().parse::<i64>().unwrap_or(0)),
        Some(_) => Some(0),
    };
    if let Some(v) = version {
        if v < 1 {
            return Err(Error::invalid(
                "version",
                "field `version` must be a whole number of at least 1",
            ));
        }
        task.version = v;
    }
    Ok(task)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_csv_record_reads_back_as_the_same_task() {
        let actor = Actor::anonymous();
        let mut task =
            NewTask::from_json(&json!({"title": "a, \"quoted\"\nline", "assignee": "bo"}))
                .unwrap()
                .into_task(&actor);
        task.version = 3;
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(COLUMNS).unwrap();
        writer.write_record(csv_record(&task)).unwrap();
        let bytes = writer.into_inner().unwrap();
        let rows = csv_rows(&bytes, "data").unwrap();
        let back = task_from_row(&rows[0], &actor).unwrap();
        assert_eq!(back, task);
    }

    #[test]
    fn bad_rows_name_their_field() {
        let actor = Actor::anonymous();
        let err = task_from_row(&json!({"title": " "}), &actor).unwrap_err();
        assert_eq!(err.field(), Some("title"));
        let err = task_from_row(&json!({"title": "x", "status": "later"}), &actor).unwrap_err();
        assert_eq!(err.field(), Some("status"));
        let err = task_from_row(&json!({"title": "x", "id": "42"}), &actor).unwrap_err();
        assert_eq!(err.field(), Some("id"));
        let err = task_from_row(&json!({"title": "x", "version": "0"}), &actor).unwrap_err();
        assert_eq!(err.field(), Some("version"));
        let err = task_from_row(&json!(7), &actor).unwrap_err();
        assert_eq!(err.field(), Some("row"));
    }

    #[test]
    fn malformed_csv_is_refused_up_front() {
        assert!(csv_rows(b"title,status\na,pending,extra\n", "data").is_err());
        let err = csv_rows(b"name\nx\n", "data").unwrap_err();
        assert!(err.to_string().contains("title"), "{err}");
        assert_eq!(csv_rows(b"title\n", "data").unwrap().len(), 0);
    }
}
