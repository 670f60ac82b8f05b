//! The job kinds taskwire ships: `bulk_update`, `export` and `import`. They use only the
//! public job API, so they double as examples for an app's own kinds.

mod bulk_update;
mod export;
mod import;
pub mod records;

pub use bulk_update::BulkUpdate;
pub use export::Export;
pub use import::Import;

use super::Registry;

/// Tasks read per page (exports).
pub const BATCH: usize = 200;

/// Tasks written per transaction (bulk updates, imports): small enough that a batch holds the
/// SQLite writer for a millisecond or two (REST writes queue behind it), large enough to
/// amortise the transaction. Jobs also [pace](crate::jobs::JobContext::pace) themselves
/// between batches.
pub const WRITE_BATCH: usize = 50;

/// Registers the built-in kinds.
pub fn register_builtin(registry: &Registry) {
    registry
        .register(BulkUpdate)
        .register(Export)
        .register(Import);
}

/// How long one write batch should hold the database's writer (SQLite has one): REST writes
/// that arrive meanwhile wait about this long.
const TARGET_HOLD: std::time::Duration = std::time::Duration::from_millis(2);

/// Sizes write batches so each takes about [`TARGET_HOLD`] however busy the server is: smaller
/// when a batch took longer, larger when it was quick, between 10 and 500 tasks.
#[derive(Debug, Clone)]
pub struct BatchSizer {
    size: usize,
}

impl Default for BatchSizer {
    fn default() -> Self {
        BatchSizer { size: WRITE_BATCH }
    }
}

impl BatchSizer {
    const MIN: usize = 10;
    const MAX: usize = 500;

    /// Tasks to put in the next batch.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Adjusts the size after a batch that held the writer for `held`.
    pub fn record(&mut self, held: std::time::Duration) {
        if held > TARGET_HOLD {
            self.size = (self.size * 3 / 4).max(Self::MIN);
        } else if held < TARGET_HOLD / 2 {
            self.size = (self.size + self.size / 4 + 1).min(Self::MAX);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn batches_shrink_when_slow_and_grow_when_quick_within_bounds() {
        let mut sizer = BatchSizer::default();
        sizer.record(Duration::from_millis(10));
        assert!(sizer.size() < WRITE_BATCH);
        for _ in 0..50 {
            sizer.record(Duration::from_millis(10));
        }
        assert_eq!(sizer.size(), BatchSizer::MIN);
        for _ in 0..100 {
            sizer.record(Duration::from_micros(100));
        }
        assert_eq!(sizer.size(), BatchSizer::MAX);
        let before = sizer.size();
        sizer.record(Duration::from_micros(1500));
        assert_eq!(sizer.size(), before, "about right: unchanged");
    }
}
