//! Which tasks a caller asks for: filters, text search, paging and sort order, parsed from
//! query-string pairs with the same rules for REST lists and job filters.

use serde_json::Value;

use super::error::{Error, Result};
use super::task::{TaskStatus, parse_status, type_name};

/// Default page size of `GET /api/tasks`.
pub const DEFAULT_LIMIT: i64 = 100;
/// Page sizes above this are clamped.
pub const MAX_LIMIT: i64 = 1000;

/// Which tasks match (no paging): shared by lists, exports and bulk updates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    /// Only tasks with this status.
    pub status: Option<TaskStatus>,
    /// Only tasks assigned to exactly this name.
    pub assignee: Option<String>,
    /// Case-insensitive substring of title or description.
    pub q: Option<String>,
}

/// A column tasks can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// `created_at`
    CreatedAt,
    /// `updated_at`
    UpdatedAt,
    /// `title`
    Title,
    /// `status`
    Status,
    /// `due_date`
    DueDate,
    /// `version`
    Version,
}

impl SortField {
    /// The column name, which is also the name clients use.
    pub fn column(self) -> &'static str {
        match self {
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::Title => "title",
            SortField::Status => "status",
            SortField::DueDate => "due_date",
            SortField::Version => "version",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created_at" => SortField::CreatedAt,
            "updated_at" => SortField::UpdatedAt,
            "title" => SortField::Title,
            "status" => SortField::Status,
            "due_date" => SortField::DueDate,
            "version" => SortField::Version,
            _ => return None,
        })
    }
}

/// One sort key; `-field` means descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// The column.
    pub field: SortField,
    /// Largest first.
    pub descending: bool,
}

/// A page of tasks: filter, order and window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskQuery {
    /// Which tasks.
    pub filter: TaskFilter,
    /// Sort keys in priority order; ties are broken by id (creation order).
    pub sort: Vec<SortKey>,
    /// Page size, 0..=1000.
    pub limit: i64,
    /// Tasks to skip.
    pub offset: i64,
}

impl Default for TaskQuery {
    fn default() -> Self {
        TaskQuery {
            filter: TaskFilter::default(),
            sort: vec![SortKey {
                field: SortField::CreatedAt,
                descending: false,
            }],
            limit: DEFAULT_LIMIT,
            offset: 0,
        }
    }
}

impl TaskFilter {
    /// Reads a filter from a JSON object (`{"status"?, "assignee"?, "q"?}`), as job params
    /// carry it; `field` prefixes error names.
    pub fn from_json(value: &Value, field: &str) -> Result<Self> {
        let obj = value.as_object().ok_or_else(|| {
            Error::invalid(
                field,
                format!(
                    "field `{field}` must be an object, got {}",
                    type_name(value)
                ),
            )
        })?;
        let mut pairs = Vec::new();
        for key in ["status", "assignee", "q"] {
            match obj.get(key) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) => pairs.push((key.to_owned(), s.clone())),
                Some(other) => {
                    return Err(Error::invalid(
                        format!("{field}.{key}"),
                        format!(
                            "field `{field}.{key}` must be a string, got {}",
                            type_name(other)
                        ),
                    ));
                }
            }
        }
        let mut filter = TaskFilter::default();
        for (k, v) in &pairs {
            filter.set(k, v).map_err(|err| match err {
                Error::Validation { message, .. } => Error::Validation {
                    field: format!("{field}.{k}"),
                    message,
                },
                other => other,
            })?;
        }
        Ok(filter)
    }

    /// Applies one query-string pair; returns false when the key is not a filter key.
    fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "status" => self.status = Some(parse_status("status", value)?),
            "assignee" => self.assignee = Some(value.to_owned()),
            "q" => self.q = (!value.trim().is_empty()).then(|| value.trim().to_owned()),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

impl TaskQuery {
    /// Parses query-string pairs. Unknown keys are ignored (clients add cache busters);
    /// known keys with bad values are 422 naming the key. `limit` above 1000 is clamped.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut query = TaskQuery::default();
        for (key, value) in pairs {
            if query.filter.set(key, value)? {
                continue;
            }
            match key {
                "limit" => query.limit = parse_count("limit", value)?.min(MAX_LIMIT),
                "offset" => query.offset = parse_count("offset", value)?,
                "sort" => query.sort = parse_sort(value)?,
                _ => {}
            }
        }
        Ok(query)
    }
}

fn parse_count(field: &str, value: &str) -> Result<i64> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| *n >= 0)
        .ok_or_else(|| {
            Error::invalid(
                field,
                format!("`{field}` must be a non-negative integer (got {value:?})"),
            )
        })
}

fn parse_sort(value: &str) -> Result<Vec<SortKey>> {
    let mut keys = Vec::new();
    for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (descending, name) = match part.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, part.strip_prefix('+').unwrap_or(part)),
        };
        let field = SortField::parse(name).ok_or_else(|| {
            Error::invalid(
                "sort",
                format!(
                    "`sort` fields must be among created_at, updated_at, title, status, due_date, version, optionally prefixed with `-` (got {part:?})"
                ),
            )
        })?;
        keys.push(SortKey { field, descending });
    }
    if keys.is_empty() {
        return Ok(TaskQuery::default().sort);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_clamping() {
        let q = TaskQuery::from_pairs([]).unwrap();
        assert_eq!(q.limit, 100);
        let q = TaskQuery::from_pairs([("limit", "5000"), ("offset", "3")]).unwrap();
        assert_eq!((q.limit, q.offset), (1000, 3));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (k, v) in [
            ("limit", "-1"),
            ("offset", "x"),
            ("sort", "colour"),
            ("status", "done"),
        ] {
            match TaskQuery::from_pairs([(k, v)]).unwrap_err() {
                Error::Validation { field, .. } => assert_eq!(field, k),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn sort_accepts_several_keys_and_direction() {
        let q = TaskQuery::from_pairs([("sort", "-updated_at,title")]).unwrap();
        assert_eq!(
            q.sort,
            vec![
                SortKey {
                    field: SortField::UpdatedAt,
                    descending: true
                },
                SortKey {
                    field: SortField::Title,
                    descending: false
                }
            ]
        );
    }

    #[test]
    fn filters_are_parsed_leniently() {
        let q = TaskQuery::from_pairs([("status", "In Progress"), ("q", "  report "), ("x", "1")])
            .unwrap();
        assert_eq!(q.filter.status, Some(TaskStatus::InProgress));
        assert_eq!(q.filter.q.as_deref(), Some("report"));
    }
}
