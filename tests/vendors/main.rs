//! The vendor runbooks of `runbooks/bai/` (IBM Business Automation Insights, seed 000) and
//! `runbooks/ververica/` (Ververica Platform, seed 001), run end to end by the real `runbook`
//! binary.
//!
//! Neither platform can run here: the runbooks talk to test doubles of their HTTP APIs
//! (`tests/support/bai_api.rs`, `tests/support/ververica_api.rs`), which are backed by a REAL
//! Flink: the sandbox of `RUNBOOK_FLINK_ENV` (`scripts/test-all.sh` starts one), or one started
//! by the first test and stopped when the test binary exits. BAI's custom resource and secret
//! live in the Kubernetes API double (`tests/support/kube_api.rs`), which `kubectl` and the
//! `kubernetes` action reach through a kubeconfig written for it. The tests run one at a time;
//! a sandbox that cannot start fails them, nothing is skipped.
//!
//! - `bai`: an upgrade where one job's savepoint fails and it restarts from its latest
//!   checkpoint, the others from their savepoints (never a recovery path for ODM); a path
//!   already used refused, then reused when told to; wrong credentials stop the run before
//!   anything changes; an untrusted certificate refused unless `insecure`, which warns.
//! - `ververica`: a restore from a retained checkpoint registered as a Savepoint resource; a
//!   Deployment without the spec-version annotation refused with the reason; suspend, upgrade
//!   and resume from the suspend savepoint.

#[path = "../support/kube_api.rs"]
mod kube_api;

#[path = "../support/flink_operator.rs"]
mod flink_operator;
#[path = "../support/flink_sandbox.rs"]
mod flink_sandbox;

#[path = "../support/vendor_http.rs"]
mod vendor_http;

#[path = "../support/bai_api.rs"]
mod bai_api;
#[path = "../support/ververica_api.rs"]
mod ververica_api;

/// The operator tests' harness: the binary run against the Kubernetes API double, the shared
/// sandbox, one Flink test at a time.
#[allow(dead_code)]
#[path = "../operator/harness.rs"]
mod harness;

mod bai;
mod ververica;
