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

/// The rows of an import file, read one at a time so memory stays near the size of the file
/// whatever its row count. CSV rows become JSON objects keyed by header, with empty cells left
/// out (they mean "not given"); JSON rows are the array's elements, parsed when reached.
pub enum RowReader<'a> {
    /// A CSV file with a header row.
    Csv {
        /// The reader over the file's bytes.
        reader: csv::Reader<&'a [u8]>,
        /// Lower-cased column names.
        headers: Vec<String>,
        /// Reused for every record.
        record: csv::StringRecord,
    },
    /// A JSON array, split into its elements' text without parsing them.
    Json(std::vec::IntoIter<&'a serde_json::value::RawValue>),
}

impl<'a> RowReader<'a> {
    /// Opens a file. Malformed JSON, JSON that is not an array, unreadable CSV headers or a
    /// CSV without a `title` column is an error on `field`.
    pub fn open(format: Format, bytes: &'a [u8], field: &str) -> Result<Self> {
        match format {
            Format::Json => {
                let rows: Vec<&serde_json::value::RawValue> = serde_json::from_slice(bytes)
                    .map_err(|e| {
                        Error::invalid(
                            field,
                            format!("`{field}` must be a JSON array of tasks: {e}"),
                        )
                    })?;
                Ok(RowReader::Json(rows.into_iter()))
            }
            Format::Csv => {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(true)
                    .trim(csv::Trim::Headers)
                    .from_reader(bytes);
                let headers: Vec<String> = reader
                    .headers()
                    .map_err(|e| malformed(field, e))?
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
                Ok(RowReader::Csv {
                    reader,
                    headers,
                    record: csv::StringRecord::new(),
                })
            }
        }
    }

    /// The next row, `None` after the last; a malformed CSV record is an error on `field`.
    pub fn next_row(&mut self, field: &str) -> Option<Result<Value>> {
        match self {
            RowReader::Json(rows) => rows.next().map(|raw| {
                serde_json::from_str(raw.get()).map_err(|e| Error::invalid(field, e.to_string()))
            }),
            RowReader::Csv {
                reader,
                headers,
                record,
            } => match reader.read_record(record) {
                Ok(false) => None,
                Err(e) => Some(Err(malformed(field, e))),
                Ok(true) => {
                    let mut row = Map::new();
                    for (name, cell) in headers.iter().zip(record.iter()) {
                        if !cell.is_empty() {
                            row.insert(name.clone(), Value::String(cell.to_owned()));
                        }
                    }
                    Some(Ok(Value::Object(row)))
                }
            },
        }
    }

    /// Checks a whole file and counts its rows, keeping none of them.
    pub fn count(format: Format, bytes: &[u8], field: &str) -> Result<usize> {
        match RowReader::open(format, bytes, field)? {
            RowReader::Json(rows) => Ok(rows.len()),
            RowReader::Csv {
                mut reader,
                mut record,
                ..
            } => {
                let mut rows = 0;
                while reader
                    .read_record(&mut record)
                    .map_err(|e| malformed(field, e))?
                {
                    rows += 1;
                }
                Ok(rows)
            }
        }
    }
}

fn malformed(field: &str, err: csv::Error) -> Error {
    Error::invalid(field, format!("malformed CSV: {err}"))
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
        let mut rows = RowReader::open(Format::Csv, &bytes, "data").unwrap();
        let row = rows.next_row("data").unwrap().unwrap();
        let back = task_from_row(&row, &actor).unwrap();
        assert!(rows.next_row("data").is_none());
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
        let count = |bytes: &[u8]| RowReader::count(Format::Csv, bytes, "data");
        assert!(count(b"title,status\na,pending,extra\n").is_err());
        let err = count(b"name\nx\n").unwrap_err();
        assert!(err.to_string().contains("title"), "{err}");
        assert_eq!(count(b"title\n").unwrap(), 0);
        assert_eq!(count(b"title\na\nb\n").unwrap(), 2);
        let json = |bytes: &[u8]| RowReader::count(Format::Json, bytes, "data");
        assert_eq!(json(br#"[{"title": "a"}, 7, []]"#).unwrap(), 3);
        assert_eq!(
            json(br#"{"title": "a"}"#).unwrap_err().field(),
            Some("data")
        );
        assert!(json(b"[{").is_err());
    }
}
