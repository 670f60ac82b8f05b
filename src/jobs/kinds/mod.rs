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
