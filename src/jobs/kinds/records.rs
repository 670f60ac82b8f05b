//! Tasks as rows of a file, both ways: the CSV columns and JSON objects exports write, and
//! the per-row validation imports apply. One column list, so an export imports back whole.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::domain::error::{Error, Result};
use crate::domain::task::{Actor, NewTask, STORABLE_YEARS, Task, type_name};

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
            RowReader::Json(rows) => rows.next().map(|raw| json_row(raw, field)),
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

    /// Checks a whole file and counts its rows, keeping none of them. Every row that
    /// [`RowReader::next_row`] will read is read here once, so a file accepted at submission
    /// cannot fail the job later on a row that is not readable.
    pub fn count(format: Format, bytes: &[u8], field: &str) -> Result<usize> {
        match RowReader::open(format, bytes, field)? {
            RowReader::Json(rows) => {
                let total = rows.len();
                for (i, raw) in rows.enumerate() {
                    json_row(raw, field).map_err(|err| match err {
                        Error::Validation { field, message } => Error::Validation {
                            message: format!("row {}: {message}", i + 1),
                            field,
                        },
                        other => other,
                    })?;
                }
                Ok(total)
            }
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

/// One element of a JSON file as a value. Splitting the array only checks the syntax; a row
/// can still be unreadable as a value: a string with a lone UTF-16 surrogate (`"\ud800"`),
/// nesting deeper than serde_json's recursion limit, a number too large for an `f64`.
fn json_row(raw: &serde_json::value::RawValue, field: &str) -> Result<Value> {
    serde_json::from_str(raw.get())
        .map_err(|e| Error::invalid(field, format!("unreadable JSON row: {e}")))
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
                // In UTC the time must keep a four-digit year, or it would be stored in a
                // form that neither the databases nor this parser read back.
                chrono::DateTime::parse_from_rfc3339(&raw)
                    .ok()
                    .map(|t| chrono::SubsecRound::trunc_subsecs(t.with_timezone(&chrono::Utc), 3))
                    .filter(|t| STORABLE_YEARS.contains(&chrono::Datelike::year(t)))
                    .ok_or_else(|| {
                        Error::invalid(
                            key,
                            format!(
                                "field `{key}` must be an RFC 3339 timestamp in the years 0000 \
                                 to 9999 in UTC (got {raw:?})"
                            ),
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
        // A fraction or a number beyond i64 is a wrong value, not an absent one.
        Some(Value::Number(n)) => Some(n.as_i64().unwrap_or(0)),
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
    fn a_version_that_is_not_a_whole_number_is_refused() {
        let actor = Actor::anonymous();
        for version in [json!(1.5), json!(1e300), json!(u64::MAX)] {
            let err = task_from_row(&json!({"title": "x", "version": version}), &actor)
                .expect_err("a version that is no whole i64 is refused");
            assert_eq!(err.field(), Some("version"), "{version}");
        }
        let task = task_from_row(&json!({"title": "x", "version": 4}), &actor).unwrap();
        assert_eq!(task.version, 4);
    }

    #[test]
    fn import_times_outside_four_digit_years_in_utc_are_refused() {
        let actor = Actor::anonymous();
        for (key, at) in [
            ("created_at", "9999-12-31T23:00:00-05:00"),
            ("updated_at", "0000-01-01T00:00:00+00:01"),
        ] {
            let err = task_from_row(&json!({"title": "x", key: at}), &actor).unwrap_err();
            assert_eq!(err.field(), Some(key), "{at}");
        }
        let task = task_from_row(
            &json!({"title": "x", "created_at": "9999-12-31T23:00:00+05:00"}),
            &actor,
        )
        .unwrap();
        assert_eq!(
            crate::domain::event::format_at(task.created_at),
            "9999-12-31T18:00:00.000Z"
        );
    }

    #[test]
    fn an_unreadable_json_row_is_refused_when_the_file_is_counted() {
        let deep = format!("[{}{}]", "[".repeat(200), "]".repeat(200));
        for file in [
            r#"[{"title": "a"}, {"title": "\ud800"}]"#.to_owned(),
            r#"[{"title": "a", "n": 1e400}]"#.to_owned(),
            deep,
        ] {
            // Splitting the array accepts each of these; reading the row as a value does not.
            let mut rows = RowReader::open(Format::Json, file.as_bytes(), "file").unwrap();
            let unreadable = std::iter::from_fn(|| rows.next_row("file")).any(|r| r.is_err());
            assert!(unreadable, "{file}");
            let err = RowReader::count(Format::Json, file.as_bytes(), "file").unwrap_err();
            assert_eq!(err.field(), Some("file"), "{file}");
            assert!(err.to_string().contains("row "), "{err}");
        }
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
