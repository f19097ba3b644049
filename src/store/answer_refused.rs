//! Why the store did not record a person's answer to an approval step.

use super::{Decision, StoreError};

/// Why an answer was not recorded, from the answers the step already has: this person
/// answered it, or it is settled (by whoever rejected it, or by everyone who approved it).
pub(crate) fn answer_refused(
    run_id: &str,
    decision: &Decision,
    earlier: &[Decision],
) -> StoreError {
    let step: Vec<&Decision> = earlier.iter().filter(|d| d.path == decision.path).collect();
    if step.iter().any(|d| d.by == decision.by) {
        return StoreError::AlreadyAnsweredBy {
            run_id: run_id.to_owned(),
            path: decision.path.clone(),
            by: decision.by.clone(),
        };
    }
    let by = match step.iter().find(|d| !d.approved) {
        Some(rejection) => rejection.by.clone(),
        None => step
            .iter()
            .map(|d| d.by.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    };
    StoreError::AlreadyDecided {
        run_id: run_id.to_owned(),
        path: decision.path.clone(),
        by,
    }
}
