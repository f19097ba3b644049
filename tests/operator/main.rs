//! The Flink Kubernetes Operator runbooks of `runbooks/flink/operator/`, and the `kubernetes`
//! action under them, run end to end by the real `runbook` binary.
//!
//! No Kubernetes API server can run here: the binary talks to the API double
//! (`tests/support/kube_api.rs`) through a kubeconfig written for it, and the operator double
//! (`tests/support/flink_operator.rs`) reconciles the FlinkDeployments and FlinkStateSnapshots
//! against a REAL Flink: the sandbox of `RUNBOOK_FLINK_ENV` (`scripts/test-all.sh` starts one),
//! or one started by the first Flink test and stopped when the test binary exits. The Flink
//! tests run one at a time; a sandbox that cannot start fails them, nothing is skipped.
//!
//! - `backup_restore`: backup.yaml (a real savepoint, the snapshot COMPLETED, copies of both
//!   resources), then restore.yaml (a new job restored from it, with its state); recreate.yaml
//!   after the FlinkDeployment was deleted (from the copy, once its prerequisites hold).
//! - `upgrade`: upgrade.yaml with a good image (restored from the upgrade savepoint) and with
//!   one that cannot come up (rolled back, old image, to the old job's newest snapshot: the
//!   savepoint the operator stopped it with); lib/rollback.yaml after a job that ended
//!   without a savepoint (its latest retained checkpoint).
//! - `errors`: conflicts retried or reported, an unknown kind, a broken kubeconfig or a
//!   missing context refused before anything runs, a wrong token, and `runbook plan`.

#[path = "../support/kube_api.rs"]
mod kube_api;

#[path = "../support/flink_operator.rs"]
mod flink_operator;
#[path = "../support/flink_sandbox.rs"]
mod flink_sandbox;

mod harness;

mod auth;
mod backup_restore;
mod errors;
mod failures;
mod last_state;
mod transient;
mod upgrade;
