//! The Flink runbooks of `runbooks/flink/`, run end to end by the real `runbook` binary
//! against a real Apache Flink session cluster (`scripts/flink-sandbox.sh`).
//!
//! One cluster serves every test of this crate. `scripts/test-all.sh` starts it and passes
//! its env file in `RUNBOOK_FLINK_ENV`; without that variable the first test starts a sandbox
//! of its own in a temporary directory, and stops it when the test binary exits. The tests
//! run one at a time (they share the cluster's slots), each with jobs of its own names, and
//! each starts by cancelling every job on the cluster: never point `RUNBOOK_FLINK_ENV` at a
//! cluster that runs anything else. A cluster that cannot start fails every test: nothing
//! here is skipped.

mod cli;
mod drill;
mod flink;
#[path = "../support/flink_sandbox.rs"]
mod flink_sandbox;
mod runbook;
mod upgrade;
