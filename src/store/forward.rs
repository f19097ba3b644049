//! The [`Store`](super::Store) trait for a store whose inherent methods carry its name's
//! work (`create_run`, `append_events`, ...) and whose `explain` puts a failure into words:
//! the SQLite and PostgreSQL stores, which differ in SQL, not in what each method promises.

/// Implements [`Store`](super::Store) for `$store` by forwarding each method to the inherent
/// one, its failure explained with what the store was doing.
macro_rules! forward_store {
    ($store:ty) => {
        impl $crate::store::Store for $store {
            fn location(&self) -> String {
                self.location.clone()
            }

            fn create<'a>(
                &'a self,
                run_id: &'a str,
                owner: &'a $crate::store::Owner,
                first: &'a $crate::event::Envelope,
            ) -> $crate::store::StoreFuture<'a, $crate::store::Lease> {
                Box::pin(async move {
                    self.insert_run(run_id, $crate::store::NewRun::Owned(owner), first)
                        .await
                        .map(|lease| lease.expect("a run created with an owner has a lease"))
                        .map_err(|f| self.explain(f, || format!("creating run `{run_id}`")))
                })
            }

            fn enqueue<'a>(
                &'a self,
                run_id: &'a str,
                first: &'a $crate::event::Envelope,
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    self.insert_run(run_id, $crate::store::NewRun::Queued, first)
                        .await
                        .map(|_| ())
                        .map_err(|f| self.explain(f, || format!("enqueuing run `{run_id}`")))
                })
            }

            fn claim_queued<'a>(
                &'a self,
                owner: &'a $crate::store::Owner,
            ) -> $crate::store::StoreFuture<'a, Option<$crate::store::Lease>> {
                Box::pin(async move {
                    self.take_queued(owner)
                        .await
                        .map_err(|f| self.explain(f, || "claiming a queued run".to_owned()))
                })
            }

            fn claim<'a>(
                &'a self,
                run_id: &'a str,
                owner: &'a $crate::store::Owner,
            ) -> $crate::store::StoreFuture<'a, $crate::store::Lease> {
                Box::pin(async move {
                    self.claim_run(run_id, owner)
                        .await
                        .map_err(|f| self.explain(f, || format!("claiming run `{run_id}`")))
                })
            }

            fn renew<'a>(
                &'a self,
                lease: &'a $crate::store::Lease,
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    self.renew_lease(lease).await.map_err(|f| {
                        self.explain(f, || {
                            format!("renewing the lease on run `{}`", lease.run_id)
                        })
                    })
                })
            }

            fn release<'a>(
                &'a self,
                lease: &'a $crate::store::Lease,
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    self.release_lease(lease).await.map_err(|f| {
                        self.explain(f, || {
                            format!("releasing the lease on run `{}`", lease.run_id)
                        })
                    })
                })
            }

            fn append<'a>(
                &'a self,
                lease: &'a $crate::store::Lease,
                first_seq: u64,
                events: &'a [$crate::event::Envelope],
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    self.append_events(lease, first_seq, events)
                        .await
                        .map_err(|f| {
                            self.explain(f, || format!("appending to run `{}`", lease.run_id))
                        })
                })
            }

            fn events<'a>(
                &'a self,
                run_id: &'a str,
            ) -> $crate::store::StoreFuture<'a, Vec<$crate::event::Envelope>> {
                Box::pin(async move {
                    self.read_events(run_id)
                        .await
                        .map_err(|f| self.explain(f, || format!("reading run `{run_id}`")))
                })
            }

            fn run<'a>(
                &'a self,
                run_id: &'a str,
            ) -> $crate::store::StoreFuture<'a, $crate::store::RunSummary> {
                Box::pin(async move {
                    self.summary(run_id)
                        .await
                        .map_err(|f| self.explain(f, || format!("reading run `{run_id}`")))
                })
            }

            fn runs<'a>(
                &'a self,
            ) -> $crate::store::StoreFuture<'a, Vec<$crate::store::RunSummary>> {
                Box::pin(async move {
                    self.summaries()
                        .await
                        .map_err(|f| self.explain(f, || "listing runs".to_owned()))
                })
            }

            fn runs_page<'a>(
                &'a self,
                page: &'a $crate::store::RunsPage,
            ) -> $crate::store::StoreFuture<'a, Vec<$crate::store::RunSummary>> {
                Box::pin(async move {
                    self.summaries_page(page)
                        .await
                        .map_err(|f| self.explain(f, || "listing runs".to_owned()))
                })
            }

            fn queue_not_over(
                &self,
            ) -> $crate::store::StoreFuture<'_, Vec<$crate::store::RunSummary>> {
                Box::pin(async move {
                    self.queue_summaries()
                        .await
                        .map_err(|f| self.explain(f, || "listing the queue's runs".to_owned()))
                })
            }

            fn prune<'a>(
                &'a self,
                ended_before: &'a str,
            ) -> $crate::store::StoreFuture<'a, Vec<$crate::store::RunSummary>> {
                Box::pin(async move {
                    self.delete_ended_before(ended_before)
                        .await
                        .map_err(|f| self.explain(f, || "pruning old runs".to_owned()))
                })
            }

            fn decide<'a>(
                &'a self,
                run_id: &'a str,
                decision: &'a $crate::store::Decision,
                needed: u32,
            ) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    self.record_decision(run_id, decision, needed)
                        .await
                        .map_err(|f| {
                            self.explain(f, || {
                                format!(
                                    "recording the answer to `{}` of run `{run_id}`",
                                    decision.path
                                )
                            })
                        })
                })
            }

            fn acquire_lock<'a>(
                &'a self,
                name: &'a str,
                holder: &'a $crate::store::LockHolder,
                lease: std::time::Duration,
            ) -> $crate::store::StoreFuture<'a, $crate::store::LockAttempt> {
                Box::pin(async move {
                    self.take_lock(name, holder, lease)
                        .await
                        .map_err(|f| self.explain(f, || format!("taking lock `{name}`")))
                })
            }

            fn renew_locks<'a>(
                &'a self,
                run_id: &'a str,
                lease: std::time::Duration,
            ) -> $crate::store::StoreFuture<'a, Vec<String>> {
                Box::pin(async move {
                    self.extend_locks(run_id, lease).await.map_err(|f| {
                        self.explain(f, || format!("renewing the locks of run `{run_id}`"))
                    })
                })
            }

            fn release_lock<'a>(
                &'a self,
                name: &'a str,
                holder: &'a $crate::store::LockHolder,
            ) -> $crate::store::StoreFuture<'a, bool> {
                Box::pin(async move {
                    self.let_go_of_lock(name, holder)
                        .await
                        .map_err(|f| self.explain(f, || format!("releasing lock `{name}`")))
                })
            }

            fn keep_locks<'a>(&'a self, run_id: &'a str) -> $crate::store::StoreFuture<'a, ()> {
                Box::pin(async move {
                    self.keep_locks_unleased(run_id).await.map_err(|f| {
                        self.explain(f, || format!("keeping the locks of run `{run_id}`"))
                    })
                })
            }

            fn locks(&self) -> $crate::store::StoreFuture<'_, Vec<$crate::store::HeldLock>> {
                Box::pin(async move {
                    self.held_locks()
                        .await
                        .map_err(|f| self.explain(f, || "listing locks".to_owned()))
                })
            }

            fn append_on_calling_thread(&self) -> $crate::store::StoreFuture<'_, ()> {
                Box::pin(async move {
                    self.write_appends_inline().await;
                    Ok(())
                })
            }

            fn close(&self) -> $crate::store::StoreFuture<'_, ()> {
                Box::pin(async move {
                    self.close_connections().await;
                    Ok(())
                })
            }

            fn add_records<'a>(
                &'a self,
                name: &'a str,
                run_id: &'a str,
                path: &'a str,
                values: &'a [String],
            ) -> $crate::store::StoreFuture<'a, Vec<String>> {
                Box::pin(async move {
                    self.insert_records(name, run_id, path, values)
                        .await
                        .map_err(|f| self.explain(f, || format!("adding to record `{name}`")))
                })
            }

            fn records<'a>(
                &'a self,
                name: &'a str,
            ) -> $crate::store::StoreFuture<'a, Vec<$crate::store::RecordEntry>> {
                Box::pin(async move {
                    self.read_records(name)
                        .await
                        .map_err(|f| self.explain(f, || format!("reading record `{name}`")))
                })
            }

            fn step_durations<'a>(
                &'a self,
                runbook: &'a str,
                span: $crate::store::StepSpan<'a>,
                runs: usize,
            ) -> $crate::store::StoreFuture<'a, Vec<u64>> {
                Box::pin(async move {
                    self.read_step_durations(runbook, span, runs)
                        .await
                        .map_err(|f| {
                            self.explain(f, || {
                                format!("reading the durations of step `{}`", span.from)
                            })
                        })
                })
            }

            fn decisions<'a>(
                &'a self,
                run_id: &'a str,
            ) -> $crate::store::StoreFuture<'a, Vec<$crate::store::Decision>> {
                Box::pin(async move {
                    self.read_decisions(run_id).await.map_err(|f| {
                        self.explain(f, || format!("reading the answers of run `{run_id}`"))
                    })
                })
            }
        }
    };
}
pub(crate) use forward_store;
