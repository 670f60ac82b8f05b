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

/// Tasks read or written per batch: small enough that a batch holds the SQLite writer for
/// milliseconds (REST writes queue behind it), large enough to amortise the transaction.
pub const BATCH: usize = 200;

/// Registers the built-in kinds.
pub fn register_builtin(registry: &Registry) {
    registry
        .register(BulkUpdate)
        .register(Export)
        .register(Import);
}
