//! Task rules: what a task is, which input is valid, how a change is applied. Plain types with
//! no knowledge of HTTP, sockets or SQL, so every transport gets exactly the same behaviour.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::error::{Error, Result};

/// Longest title accepted, in characters.
pub const MAX_TITLE_CHARS: usize = 500;
/// Longest description accepted, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 20_000;
/// Longest assignee name accepted, in characters.
pub const MAX_ASSIGNEE_CHARS: usize = 200;
/// Longest e-mail address accepted (RFC 5321 path limit).
pub const MAX_EMAIL_CHARS: usize = 254;

/// Where a task is in its life; the wire form is always the canonical snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Not started.
    Pending,
    /// Someone is working on it.
    InProgress,
    /// Done.
    Completed,
}

impl TaskStatus {
    /// Every status, in board order.
    pub const ALL: [TaskStatus; 3] = [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Completed,
    ];

    /// The canonical name, as stored and sent.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Completed => "completed",
        }
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a status string was not understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownStatus(pub String);

impl FromStr for TaskStatus {
    type Err = UnknownStatus;

    /// Lenient: case, surrounding blanks and the separator (space, `-`, `_`, none) do not
    /// matter, because seed-era frontends send "In Progress", "in-progress" or "IN_PROGRESS".
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        let key: String = s
            .trim()
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_'))
            .flat_map(char::to_lowercase)
            .collect();
        match key.as_str() {
            "pending" => Ok(TaskStatus::Pending),
            "inprogress" => Ok(TaskStatus::InProgress),
            "completed" => Ok(TaskStatus::Completed),
            _ => Err(UnknownStatus(s.to_owned())),
        }
    }
}

/// Parses a status for field `field`, with an error that lists the allowed values.
pub fn parse_status(field: &str, raw: &str) -> Result<TaskStatus> {
    raw.parse().map_err(|UnknownStatus(got)| {
        Error::invalid(
            field,
            format!("field `{field}` must be one of pending, in_progress, completed (got {got:?})"),
        )
    })
}

/// A task as stored and sent to clients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Task {
    /// Time-ordered UUID v7.
    pub id: Uuid,
    /// The workspace that owns the task; never sent (it is implied by the caller's token).
    #[serde(skip)]
    pub workspace: String,
    /// Short name, trimmed, 1–500 characters.
    pub title: String,
    /// Free text, may be empty.
    pub description: String,
    /// Canonical status.
    pub status: TaskStatus,
    /// Who the task is assigned to, if anyone.
    pub assignee: Option<String>,
    /// Where to notify the assignee.
    pub assignee_email: Option<String>,
    /// `YYYY-MM-DD` or an RFC 3339 UTC timestamp.
    pub due_date: Option<String>,
    /// When the task was created (UTC, millisecond precision).
    pub created_at: DateTime<Utc>,
    /// When the task last changed.
    pub updated_at: DateTime<Utc>,
    /// `sub` of whoever created it, when auth is on.
    pub created_by: Option<String>,
    /// `sub` of whoever changed it last, when auth is on.
    pub updated_by: Option<String>,
    /// Starts at 1, grows by one on every change; the ETag.
    pub version: i64,
}

/// Who is making a change, and in which workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// Workspace the caller belongs to.
    pub workspace: String,
    /// The caller's `sub`, when known.
    pub user: Option<String>,
    /// The caller's display name (token `name`), for presence.
    pub name: Option<String>,
    /// The caller's e-mail (token `email`), so notifications can skip the person who acted.
    pub email: Option<String>,
}

/// The workspace of callers without a token or without a `workspace` claim.
pub const DEFAULT_WORKSPACE: &str = "default";

impl Actor {
    /// An anonymous caller in the default workspace (auth off).
    pub fn anonymous() -> Self {
        Actor {
            workspace: DEFAULT_WORKSPACE.to_owned(),
            user: None,
            name: None,
            email: None,
        }
    }
}

/// The current time at the precision tasks carry, so values survive a round trip through
/// either database unchanged.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The instant `age` ago, for retention cutoffs; None when that lies before any date the
/// databases hold (so nothing is that old). Comparing with a sentinel such as
/// `DateTime::MIN_UTC` instead would go wrong on SQLite, where times compare as text.
pub fn older_than(age: std::time::Duration) -> Option<DateTime<Utc>> {
    let age = chrono::Duration::from_std(age).ok()?;
    let cutoff = Utc::now().checked_sub_signed(age)?;
    (cutoff.year() >= 1).then_some(cutoff)
}

/// A change to some fields of a task: `None` = leave as is, `Some(None)` = clear.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPatch {
    /// New title.
    pub title: Option<String>,
    /// New description (`null` clears it to empty).
    pub description: Option<String>,
    /// New status.
    pub status: Option<TaskStatus>,
    /// New assignee or `Some(None)` to clear.
    pub assignee: Option<Option<String>>,
    /// New assignee e-mail or `Some(None)` to clear.
    pub assignee_email: Option<Option<String>>,
    /// New due date or `Some(None)` to clear.
    pub due_date: Option<Option<String>>,
}

/// Fields that clients may send but that the server owns; they are ignored on input.
const READ_ONLY_FIELDS: [&str; 7] = [
    "id",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
    "version",
    "workspace",
];

impl TaskPatch {
    /// Reads a patch from a JSON object. Unknown and read-only fields are ignored; a known
    /// field with the wrong type or an invalid value is an error naming the field.
    pub fn from_json(body: &Value) -> Result<Self> {
        let obj = as_object(body)?;
        let mut patch = TaskPatch::default();
        for (key, value) in obj {
            match key.as_str() {
                "title" => patch.title = Some(parse_title(value)?),
                "description" => {
                    patch.description = Some(
                        optional_text(value, "description", MAX_DESCRIPTION_CHARS, false)?
                            .unwrap_or_default(),
                    )
                }
                "status" => match value {
                    Value::String(s) => patch.status = Some(parse_status("status", s)?),
                    other => return Err(wrong_type("status", "a string", other)),
                },
                "assignee" => {
                    patch.assignee =
                        Some(optional_text(value, "assignee", MAX_ASSIGNEE_CHARS, true)?)
                }
                "assignee_email" => {
                    patch.assignee_email = Some(parse_email(value, "assignee_email")?)
                }
                "due_date" => patch.due_date = Some(parse_due_date(value)?),
                k if READ_ONLY_FIELDS.contains(&k) => {}
                _ => {}
            }
        }
        Ok(patch)
    }

    fn apply_fields(&self, mut task: Task) -> Task {
        if let Some(t) = &self.title {
            task.title.clone_from(t);
        }
        if let Some(d) = &self.description {
            task.description.clone_from(d);
        }
        if let Some(s) = self.status {
            task.status = s;
        }
        if let Some(a) = &self.assignee {
            task.assignee.clone_from(a);
        }
        if let Some(e) = &self.assignee_email {
            task.assignee_email.clone_from(e);
        }
        if let Some(d) = &self.due_date {
            task.due_date.clone_from(d);
        }
        task
    }

    /// The task after this patch: fields changed, version + 1, `updated_at`/`updated_by` set.
    /// Every accepted update counts as a change, even one that rewrites equal values, so a
    /// client's write is always visible as a new version.
    pub fn apply(&self, task: &Task, actor: &Actor) -> Task {
        let mut next = self.apply_fields(task.clone());
        next.version = task.version + 1;
        next.updated_at = now().max(task.updated_at);
        next.updated_by.clone_from(&actor.user);
        next
    }
}

/// A task to be created, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    /// Required fields plus any optional ones the client gave.
    pub patch: TaskPatch,
}

impl NewTask {
    /// Reads a new task from a JSON object: `title` is required, everything else optional.
    pub fn from_json(body: &Value) -> Result<Self> {
        let patch = TaskPatch::from_json(body)?;
        if patch.title.is_none() {
            return Err(Error::invalid("title", "field `title` is required"));
        }
        Ok(NewTask { patch })
    }

    /// Builds the stored task: new v7 id, version 1, timestamps now, `created_by` = actor.
    pub fn into_task(self, actor: &Actor) -> Task {
        let at = now();
        let blank = Task {
            id: Uuid::now_v7(),
            workspace: actor.workspace.clone(),
            title: String::new(),
            description: String::new(),
            status: TaskStatus::Pending,
            assignee: None,
            assignee_email: None,
            due_date: None,
            created_at: at,
            updated_at: at,
            created_by: actor.user.clone(),
            updated_by: actor.user.clone(),
            version: 1,
        };
        self.patch.apply_fields(blank)
    }
}

/// The body must be a JSON object; anything else is a 422 on `body`.
pub fn as_object(body: &Value) -> Result<&Map<String, Value>> {
    body.as_object().ok_or_else(|| {
        Error::invalid(
            "body",
            format!(
                "request body must be a JSON object, got {}",
                type_name(body)
            ),
        )
    })
}

/// JSON type name for error messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn wrong_type(field: &str, expected: &str, got: &Value) -> Error {
    Error::invalid(
        field,
        format!("field `{field}` must be {expected}, got {}", type_name(got)),
    )
}

fn parse_title(value: &Value) -> Result<String> {
    let Value::String(raw) = value else {
        return Err(wrong_type("title", "a string", value));
    };
    let title = raw.trim();
    if title.is_empty() {
        return Err(Error::invalid("title", "field `title` must not be blank"));
    }
    let len = title.chars().count();
    if len > MAX_TITLE_CHARS {
        return Err(Error::invalid(
            "title",
            format!("field `title` must be at most {MAX_TITLE_CHARS} characters (got {len})"),
        ));
    }
    Ok(title.to_owned())
}

/// A string-or-null field. `blank_is_null` turns "" (after trimming) into `None`.
fn optional_text(
    value: &Value,
    field: &str,
    max: usize,
    blank_is_null: bool,
) -> Result<Option<String>> {
    match value {
        Value::Null => Ok(None),
        Value::String(s) => {
            let len = s.chars().count();
            if len > max {
                return Err(Error::invalid(
                    field,
                    format!("field `{field}` must be at most {max} characters (got {len})"),
                ));
            }
            let trimmed = if blank_is_null { s.trim() } else { s.as_str() };
            Ok((!(blank_is_null && trimmed.is_empty())).then(|| trimmed.to_owned()))
        }
        other => Err(wrong_type(field, "a string or null", other)),
    }
}

/// Validates an e-mail address loosely (one `@`, something on both sides, no blanks): the
/// mail server is the real judge.
pub fn parse_email(value: &Value, field: &str) -> Result<Option<String>> {
    let Some(email) = optional_text(value, field, MAX_EMAIL_CHARS, true)? else {
        return Ok(None);
    };
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.contains(char::is_whitespace)
        }
        None => false,
    };
    if !valid {
        return Err(Error::invalid(
            field,
            format!("field `{field}` must be an e-mail address (got {email:?})"),
        ));
    }
    Ok(Some(email))
}

/// The years a stored date or timestamp may fall in, in UTC. RFC 3339 and `YYYY-MM-DD` have
/// four-digit years; outside them chrono writes `+10000-…` or `-0001-…`, which the API's own
/// parsers refuse and which sorts wrongly as text, so such a value could be stored but never
/// sent back (an exported file would not import, a task read with GET could not be PUT).
pub const STORABLE_YEARS: std::ops::RangeInclusive<i32> = 0..=9999;

/// A due date is a calendar date (`2026-12-01`) or an RFC 3339 timestamp, normalised to UTC.
/// Either must fall in [`STORABLE_YEARS`] once in UTC, so the normalised form parses back.
fn parse_due_date(value: &Value) -> Result<Option<String>> {
    let Some(raw) = optional_text(value, "due_date", 64, true)? else {
        return Ok(None);
    };
    let (year, normalised) = if let Ok(date) = NaiveDate::parse_from_str(&raw, "%Y-%m-%d") {
        (date.year(), date.format("%Y-%m-%d").to_string())
    } else if let Ok(ts) = DateTime::parse_from_rfc3339(&raw) {
        let utc = ts.with_timezone(&Utc);
        (
            utc.year(),
            utc.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )
    } else {
        return Err(Error::invalid(
            "due_date",
            format!(
                "field `due_date` must be a date (YYYY-MM-DD) or an RFC 3339 timestamp (got {raw:?})"
            ),
        ));
    };
    if !STORABLE_YEARS.contains(&year) {
        return Err(Error::invalid(
            "due_date",
            format!("field `due_date` must fall in the years 0000 to 9999 in UTC (got {raw:?})"),
        ));
    }
    Ok(Some(normalised))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(err: Error) -> String {
        match err {
            Error::Validation { field, .. } => field,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn status_parsing_is_lenient_and_output_canonical() {
        for raw in [
            "In Progress",
            "in-progress",
            "IN_PROGRESS",
            " inprogress ",
            "in_progress",
        ] {
            assert_eq!(
                raw.parse::<TaskStatus>(),
                Ok(TaskStatus::InProgress),
                "{raw}"
            );
        }
        assert_eq!("Completed".parse::<TaskStatus>(), Ok(TaskStatus::Completed));
        assert_eq!("PENDING".parse::<TaskStatus>(), Ok(TaskStatus::Pending));
        assert!("done".parse::<TaskStatus>().is_err());
        assert_eq!(
            serde_json::to_value(TaskStatus::InProgress).unwrap(),
            json!("in_progress")
        );
    }

    #[test]
    fn unknown_status_names_field_and_allowed_values() {
        let err = TaskPatch::from_json(&json!({"status": "done"})).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("status") && msg.contains("in_progress") && msg.contains("done"),
            "{msg}"
        );
        assert_eq!(field_of(err), "status");
    }

    #[test]
    fn title_is_required_trimmed_and_bounded() {
        assert_eq!(
            field_of(NewTask::from_json(&json!({})).unwrap_err()),
            "title"
        );
        assert_eq!(
            field_of(NewTask::from_json(&json!({"title": "   "})).unwrap_err()),
            "title"
        );
        assert_eq!(
            field_of(NewTask::from_json(&json!({"title": 5})).unwrap_err()),
            "title"
        );
        let long = "x".repeat(MAX_TITLE_CHARS + 1);
        assert_eq!(
            field_of(NewTask::from_json(&json!({"title": long})).unwrap_err()),
            "title"
        );
        let exact = "é".repeat(MAX_TITLE_CHARS);
        assert!(
            NewTask::from_json(&json!({"title": exact})).is_ok(),
            "limit counts characters"
        );
        let t = NewTask::from_json(&json!({"title": "  Write report "}))
            .unwrap()
            .into_task(&Actor::anonymous());
        assert_eq!(t.title, "Write report");
    }

    #[test]
    fn body_must_be_an_object() {
        for body in [json!([]), json!("x"), json!(3), json!(null)] {
            assert_eq!(field_of(TaskPatch::from_json(&body).unwrap_err()), "body");
        }
    }

    #[test]
    fn wrong_types_name_the_field() {
        let cases = [
            (json!({"description": 1}), "description"),
            (json!({"status": 1}), "status"),
            (json!({"assignee": []}), "assignee"),
            (json!({"assignee_email": "nope"}), "assignee_email"),
            (json!({"due_date": "tomorrow"}), "due_date"),
        ];
        for (body, field) in cases {
            assert_eq!(
                field_of(TaskPatch::from_json(&body).unwrap_err()),
                field,
                "{body}"
            );
        }
    }

    #[test]
    fn new_task_gets_v7_id_version_one_and_actor() {
        let actor = Actor {
            workspace: "acme".into(),
            user: Some("alice".into()),
            name: None,
            email: None,
        };
        let t =
            NewTask::from_json(&json!({"title": "A", "status": "In Progress", "id": "ignored"}))
                .unwrap()
                .into_task(&actor);
        assert_eq!(t.id.get_version_num(), 7);
        assert_eq!(t.version, 1);
        assert_eq!(t.status, TaskStatus::InProgress);
        assert_eq!(t.workspace, "acme");
        assert_eq!(t.created_by.as_deref(), Some("alice"));
        assert_eq!(t.created_at, t.updated_at);
    }

    #[test]
    fn patch_changes_only_given_fields_and_null_clears() {
        let actor = Actor::anonymous();
        let t = NewTask::from_json(&json!({"title": "A", "assignee": "bob", "description": "d"}))
            .unwrap()
            .into_task(&actor);
        let p = TaskPatch::from_json(&json!({"assignee": null, "status": "completed"})).unwrap();
        let next = p.apply(&t, &actor);
        assert_eq!(next.title, "A");
        assert_eq!(next.description, "d");
        assert_eq!(next.assignee, None);
        assert_eq!(next.status, TaskStatus::Completed);
        assert_eq!(next.version, 2);
        assert!(next.updated_at >= t.updated_at);
        assert_eq!(next.created_at, t.created_at);
    }

    #[test]
    fn due_dates_are_normalised() {
        let p = TaskPatch::from_json(&json!({"due_date": "2026-12-01"})).unwrap();
        assert_eq!(p.due_date, Some(Some("2026-12-01".into())));
        let p = TaskPatch::from_json(&json!({"due_date": "2026-12-01T10:00:00+02:00"})).unwrap();
        assert_eq!(p.due_date, Some(Some("2026-12-01T08:00:00Z".into())));
    }

    #[test]
    fn a_due_date_outside_four_digit_years_in_utc_is_refused() {
        // The offset moves this past the end of year 9999 in UTC; it used to be stored as
        // `+10000-01-01T04:00:00Z`, which the API itself then refused to read back.
        for raw in [
            "9999-12-31T23:00:00-05:00",
            "0000-01-01T00:30:00+01:00",
            "+10000-01-01",
            "-0001-12-31",
        ] {
            let err = TaskPatch::from_json(&json!({ "due_date": raw })).unwrap_err();
            assert_eq!(field_of(err), "due_date", "{raw}");
        }
        let p = TaskPatch::from_json(&json!({"due_date": "9999-12-31T23:00:00+05:00"})).unwrap();
        assert_eq!(p.due_date, Some(Some("9999-12-31T18:00:00Z".into())));
        let p = TaskPatch::from_json(&json!({"due_date": "0000-01-01"})).unwrap();
        assert_eq!(p.due_date, Some(Some("0000-01-01".into())));
    }

    #[test]
    fn a_normalised_due_date_reads_back_as_itself() {
        for raw in [
            "2026-12-01",
            "2026-12-01T10:00:00.5+02:00",
            "9999-12-31T23:59:59.999999999Z",
            "2016-12-31T23:59:60Z",
        ] {
            let once = TaskPatch::from_json(&json!({ "due_date": raw })).unwrap();
            let Some(Some(stored)) = once.due_date else {
                panic!("{raw} has a due date")
            };
            let twice = TaskPatch::from_json(&json!({ "due_date": stored })).unwrap();
            assert_eq!(twice.due_date, Some(Some(stored)), "{raw}");
        }
    }

    #[test]
    fn task_json_has_the_documented_shape() {
        let t = NewTask::from_json(&json!({"title": "A"}))
            .unwrap()
            .into_task(&Actor::anonymous());
        let v = serde_json::to_value(&t).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        for k in [
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
        ] {
            assert!(keys.contains(&k), "missing {k}");
        }
        assert!(!keys.contains(&"workspace"));
        assert!(v["created_at"].as_str().unwrap().ends_with('Z'));
    }
}
