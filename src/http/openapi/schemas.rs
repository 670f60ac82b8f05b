//! Schemas of request bodies. The handlers read bodies as plain JSON and validate them field by
//! field (so that a 422 names the field, see [`crate::domain::task`]); these types exist only to
//! describe what those handlers accept, and are never built.
#![allow(dead_code)]

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::task::TaskStatus;

/// A new task (`POST /api/tasks`). Unknown fields and the read-only ones (`id`, `version`,
/// `created_at`, `updated_at`, `created_by`, `updated_by`) are ignored.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"title": "Write report", "status": "in_progress", "assignee": "alice"}))]
pub struct NewTaskBody {
    /// Required. Surrounding whitespace is trimmed; the rest must be 1-500 characters.
    #[schema(min_length = 1, max_length = 500)]
    title: String,
    #[serde(flatten)]
    fields: OptionalFields,
}

/// A partial update (`PUT` / `PATCH /api/tasks/{id}`): fields left out keep their values,
/// `null` clears a nullable one. Unknown and read-only fields are ignored.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"status": "completed", "assignee": null}))]
pub struct TaskPatchBody {
    /// Surrounding whitespace is trimmed; the rest must be 1-500 characters. Cannot be `null`.
    #[schema(min_length = 1, max_length = 500, required = false)]
    title: String,
    #[serde(flatten)]
    fields: OptionalFields,
}

/// The fields every task write may carry besides `title`.
#[derive(Deserialize, ToSchema)]
pub struct OptionalFields {
    /// At most 20000 characters; `null` sets it to `""`.
    #[schema(max_length = 20000)]
    description: Option<String>,
    /// `pending`, `in_progress` or `completed`. Input is lenient about case and separators
    /// (`"In Progress"`, `"in-progress"` and `"IN_PROGRESS"` all mean `in_progress`); output is
    /// always canonical. Cannot be `null`.
    #[schema(required = false)]
    status: TaskStatus,
    /// At most 200 characters, trimmed; blank or `null` clears it.
    #[schema(max_length = 200)]
    assignee: Option<String>,
    /// An address with exactly one `@`, text on both sides and no whitespace, at most 254
    /// characters; `null` clears it.
    #[schema(max_length = 254, example = "alice@example.com")]
    assignee_email: Option<String>,
    /// A date `YYYY-MM-DD` or an RFC 3339 timestamp (stored in UTC); `null` clears it.
    #[schema(example = "2026-12-01")]
    due_date: Option<String>,
}

/// `POST /update_task`: the seed-era form of a partial update.
#[derive(Deserialize, ToSchema)]
#[schema(example = json!({"task_id": "0193e2c4-5b1a-7c3e-9f00-1234567890ab", "user_email": "alice@example.com", "status": "completed"}))]
pub struct LegacyUpdateBody {
    /// The task to update.
    task_id: Uuid,
    /// Who to notify about the change (e-mail, when `SMTP_URL` is set).
    #[schema(max_length = 254)]
    user_email: Option<String>,
    #[serde(flatten)]
    patch: TaskPatchBody,
}

/// Which tasks a job works on; the list filters of `GET /api/tasks`. `{}` means every task of
/// the workspace.
#[derive(Deserialize, ToSchema)]
pub struct TaskFilterBody {
    /// Only tasks with this status (parsed leniently).
    #[schema(required = false)]
    status: TaskStatus,
    /// Only tasks assigned to exactly this name.
    #[schema(required = false)]
    assignee: String,
    /// Case-insensitive substring of title or description.
    #[schema(required = false)]
    q: String,
}

/// A job submission as JSON (`POST /api/jobs`), one shape per built-in kind. An embedding app
/// may register kinds of its own, with params of its own.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
pub enum JobSubmission {
    /// Apply one patch to every task the filter matches.
    BulkUpdate(BulkUpdateParams),
    /// Write the matching tasks to a file, downloaded from `GET /api/jobs/{id}/result`.
    Export(ExportParams),
    /// Create tasks from rows; each bad row is reported in the result, not refused here.
    Import(ImportParams),
}

/// `bulk_update` params.
#[derive(Deserialize, ToSchema)]
pub struct BulkUpdateParams {
    /// Which tasks.
    filter: TaskFilterBody,
    /// The fields to set on each.
    patch: TaskPatchBody,
}

/// Export file formats.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// A JSON array of tasks.
    Json,
}

/// `export` params.
#[derive(Deserialize, ToSchema)]
pub struct ExportParams {
    /// The file format.
    format: FileFormat,
    /// Which tasks; all when absent.
    #[schema(required = false)]
    filter: TaskFilterBody,
}

/// `import` params: the rows inline, as CSV text or as an array of task objects.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "format", rename_all = "lowercase")]
pub enum ImportParams {
    /// CSV text with a header row naming task fields.
    Csv {
        /// The CSV text.
        data: String,
        /// All rows or none (default: every valid row is created).
        #[schema(required = false)]
        atomic: bool,
    },
    /// An array of task objects (as for `POST /api/tasks`).
    Json {
        /// The rows; each is validated on its own and a bad one is reported in the result.
        data: Vec<Value>,
        /// All rows or none (default: every valid row is created).
        #[schema(required = false)]
        atomic: bool,
    },
}

/// A job submission as a form (`multipart/form-data`), as a plain HTML form sends an import.
#[derive(Deserialize, ToSchema)]
pub struct JobForm {
    /// The job kind, for example `import`.
    kind: String,
    /// The file to import.
    #[schema(value_type = String, format = Binary, required = false)]
    file: Vec<u8>,
    /// `csv` or `json` (otherwise taken from the file name or its Content-Type).
    #[schema(required = false)]
    format: FileFormat,
    /// `true` for all rows or none.
    #[schema(required = false)]
    atomic: bool,
    /// More params as a JSON object in text.
    #[schema(required = false)]
    params: String,
}

/// One Server-Sent Event as a client's parser sees it (OpenAPI 3.1 describes an event stream
/// by the schema of each event).
#[derive(Deserialize, ToSchema)]
pub struct ServerSentEvent {
    /// The event's data: JSON text (see the operation for its shape).
    #[schema(required = false)]
    data: String,
    /// The event name; absent (`message`) unless the stream names its events.
    #[schema(required = false)]
    event: String,
    /// The sequence number, for `Last-Event-ID`.
    #[schema(required = false)]
    id: String,
    /// How long EventSource waits before reconnecting, in milliseconds.
    #[schema(required = false)]
    retry: u64,
}
