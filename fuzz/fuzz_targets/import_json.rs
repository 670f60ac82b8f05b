//! JSON import files (an uploaded `.json` array of tasks): a file is refused at submission
//! naming `file`, or every row it was counted with reads back when the job runs, and each row
//! is refused precisely or becomes a task within limits that exports and imports back
//! unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use taskwire::jobs::kinds::records::Format;
use taskwire_fuzz::check_import_file;

fuzz_target!(|data: &[u8]| check_import_file(Format::Json, data));
