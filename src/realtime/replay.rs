//! Reading missed events back from the log: whether a position can still be resumed from, and
//! paging through what came after it.

use std::sync::Arc;

use crate::domain::error::Result;
use crate::domain::event::TaskEvent;
use crate::store::Store;

/// Events read from the log per query while replaying.
pub const PAGE: i64 = 500;

/// Whether a client can resume from a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Everything after the position is still in the log.
    From(i64),
    /// Part of what came after it was pruned (or the position is from another database):
    /// the client must refetch; the log is at `latest`.
    TooOld {
        /// Latest sequence number of the workspace.
        latest: i64,
    },
}

/// Decides whether `since` can be resumed from in `workspace`.
pub async fn resume_point(store: &Arc<dyn Store>, workspace: &str, since: i64) -> Result<Resume> {
    let (oldest, latest) = store.log_bounds(workspace).await?;
    let ok =
        since == latest || (since < latest && since >= 0 && oldest.is_some_and(|o| o <= since + 1));
    Ok(if ok {
        Resume::From(since)
    } else {
        Resume::TooOld { latest }
    })
}

/// Walks the log after a position, a page at a time, oldest first.
pub struct LogCursor<'a> {
    store: &'a Arc<dyn Store>,
    workspace: &'a str,
    /// The last sequence number returned so far.
    pub last: i64,
    done: bool,
}

impl<'a> LogCursor<'a> {
    /// A cursor positioned after `after`.
    pub fn new(store: &'a Arc<dyn Store>, workspace: &'a str, after: i64) -> Self {
        LogCursor {
            store,
            workspace,
            last: after,
            done: false,
        }
    }

    /// The next page, or `None` once the end of the log was reached. `last` advances to the
    /// end of the returned page.
    pub async fn next_page(&mut self) -> Result<Option<Vec<TaskEvent>>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .store
            .events_after(self.workspace, self.last, PAGE)
            .await?;
        self.done = (page.len() as i64) < PAGE;
        match page.last() {
            Some(event) => {
                self.last = event.seq;
                Ok(Some(page))
            }
            None => Ok(None),
        }
    }
}
