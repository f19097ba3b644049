//! A value of a named record: what the `record` action keeps in the store across runs.

/// One value of a record, with the run and step that added it first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    pub value: String,
    pub run_id: String,
    /// The step path, as in events.
    pub path: String,
    /// RFC 3339, UTC.
    pub at: String,
}
