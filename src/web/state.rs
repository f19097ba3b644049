//! What every handler reaches: the store, the schedules, who may sign in.

use super::auth::{SignIn, Users};
use crate::serve::Schedule;
use crate::store::Store;
use std::sync::Arc;

/// Shared by every request; cheap to clone.
#[derive(Clone)]
pub struct WebState {
    pub store: Arc<dyn Store>,
    /// The store's URL as serve was given it (`None`: the default store), for the
    /// application layer's functions that open it themselves (`app::enqueue`).
    pub store_url: Option<String>,
    /// The schedules of the serve configuration, for their next windows.
    pub schedules: Arc<Vec<Schedule>>,
    /// The configuration file's folder (runbook paths of a start request are read from it).
    pub base: Arc<std::path::Path>,
    pub users: Arc<Users>,
    /// The open sessions of the sign-in page, and how its cookies are set.
    pub sign_in: Arc<SignIn>,
    /// The runbooks the web may start.
    pub catalog: Arc<super::catalog::Catalog>,
    /// The store pollers of the runs watched live.
    pub live: super::live::LiveEvents,
    /// Where runs a request claimed (retry, resume, abort) are run.
    pub runs: super::api::WebRuns,
    /// Cancelled when serve stops: live streams end, so that the server can drain.
    pub stop: tokio_util::sync::CancellationToken,
}
