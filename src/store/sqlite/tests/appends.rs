//! Appends and leases: the round trips an append takes, on which connection, and the fence
//! that keeps a run taken over from being written to.

use super::*;

/// The lease's expiry, as the store holds it.
async fn lease_expiry(store: &SqliteStore, run_id: &str) -> i64 {
    sqlx::query_scalar("SELECT expires_at_ms FROM owners WHERE run_id = ?")
        .bind(run_id)
        .fetch_one(&store.pool)
        .await
        .unwrap()
}

/// A store in `dir` holding run `r1`, created and appended to once by the lease returned.
async fn run_with_one_append(dir: &tempfile::TempDir) -> (SqliteStore, crate::store::Lease) {
    with_one_append(open(dir).await).await
}

/// Run `r1` created in `store` and appended to once (the long way, which keeps the tail the
/// next appends follow).
async fn with_one_append(store: SqliteStore) -> (SqliteStore, crate::store::Lease) {
    let lease = created_with_one_step(&store, "r1", "a").await;
    (store, lease)
}

/// Giving a run up at its end goes through the appends' connection: the pool, whose only
/// connection the appends took, opens none for it.
#[tokio::test]
async fn a_lease_is_released_on_the_appends_connection_without_opening_another() {
    let dir = tempfile::tempdir().unwrap();
    let (store, lease) = run_with_one_append(&dir).await;
    // Whatever the pool still holds is closed: any connection it has after this, it opened.
    // A connection given back is on its way to the idle ones for a moment (the pool takes
    // it back on a task of its own), so this goes on until none is left at all.
    let closing = async {
        while store.pool.size() > 0 {
            while store.pool.num_idle() > 0 {
                let idle = store.pool.acquire().await.unwrap().detach();
                sqlx::Connection::close(idle).await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), closing)
        .await
        .expect("the pool's connections are closed");
    store.release(&lease).await.unwrap();
    assert_eq!(
        store.pool.size(),
        0,
        "the pool opened a connection to release the run"
    );
    let token: Option<String> = sqlx::query_scalar("SELECT token FROM owners WHERE run_id = 'r1'")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(token, None);
}

/// An append after one of this handle's own goes in one round trip, which fences the lease
/// without renewing it: the lease's row is not written again (one page fewer to sync).
#[tokio::test]
async fn an_append_that_follows_its_own_leaves_the_lease_row_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (store, lease) = run_with_one_append(&dir).await;
    let renewed = lease_expiry(&store, "r1").await;
    // Past the millisecond, so that a renewal would show.
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.append(&lease, 3, &[step("r1", "b")]).await.unwrap();
    store.append(&lease, 4, &[step("r1", "c")]).await.unwrap();
    assert_eq!(lease_expiry(&store, "r1").await, renewed);
    let read = store.events("r1").await.unwrap();
    assert_eq!(read.len(), 4);
    // The run's row followed: its last event and link are the journal's.
    let summary = store.run("r1").await.unwrap();
    assert_eq!(summary.status, RunStatus::Running);
    // An explicit renewal still moves it.
    store.renew(&lease).await.unwrap();
    assert!(lease_expiry(&store, "r1").await > renewed);
}

/// The one-round-trip append writes nothing when the run moved on underneath it (here, by
/// plain SQL, as another writer would): the long way then reports the stale view.
#[tokio::test]
async fn an_append_after_the_run_moved_on_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, lease) = run_with_one_append(&dir).await;
    change(&store, "UPDATE runs SET last_seq = 3 WHERE id = 'r1'").await;
    let refused = store.append(&lease, 3, &[step("r1", "b")]).await;
    assert!(
        matches!(&refused, Err(StoreError::Corrupt { detail, .. }) if detail.contains("stale")),
        "{refused:?}"
    );
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&store.pool)
        .await
        .unwrap();
    assert_eq!(rows, 2);
}

/// As [`run_with_one_append`], the store writing small appends on the calling thread.
async fn inline_run_with_one_append(dir: &tempfile::TempDir) -> (SqliteStore, crate::store::Lease) {
    let store = open(dir).await;
    store.append_on_calling_thread().await.unwrap();
    with_one_append(store).await
}

/// Changes the store behind its handles' backs, as another writer would.
async fn change(store: &SqliteStore, sql: &'static str) {
    sqlx::query(sql).execute(&store.pool).await.unwrap();
}

async fn written_inline(store: &SqliteStore) -> u64 {
    store.writer.lock().await.written_inline()
}

/// A chain's appends go on the calling thread, and read back, chained, through the pool.
#[tokio::test]
async fn appends_on_the_calling_thread_follow_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let (store, lease) = inline_run_with_one_append(&dir).await;
    // The first append, right after the run's creation, went there too.
    assert_eq!(written_inline(&store).await, 1);
    store.append(&lease, 3, &[step("r1", "b")]).await.unwrap();
    let two = [step("r1", "c"), step("r1", "d")];
    store.append(&lease, 4, &two).await.unwrap();
    store
        .append(&lease, 6, &[ended("r1", RunStatus::Succeeded, 5)])
        .await
        .unwrap();
    assert_eq!(written_inline(&store).await, 4);
    let read = store.events("r1").await.unwrap();
    assert_eq!(read.len(), 6);
    assert_eq!(read[3..5], two);
    // The run's row followed, as the list of runs reads it.
    assert_eq!(store.run("r1").await.unwrap().status, RunStatus::Succeeded);
}

/// After a takeover, an append on the calling thread writes nothing; the long way says why.
#[tokio::test]
async fn an_append_on_the_calling_thread_after_a_takeover_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, lease) = inline_run_with_one_append(&dir).await;
    let before = written_inline(&store).await;
    append_after_a_takeover(&store, &lease, 3).await;
    assert_eq!(written_inline(&store).await, before);
    assert_eq!(store.events("r1").await.unwrap().len(), 2);
}

/// Gives `lease`'s run to another owner behind the store's back, then appends event `seq`
/// under `lease`: refused, as a lost lease.
async fn append_after_a_takeover(store: &SqliteStore, lease: &crate::store::Lease, seq: u64) {
    sqlx::query("UPDATE owners SET token = 'another' WHERE run_id = ?")
        .bind(&lease.run_id)
        .execute(&store.pool)
        .await
        .unwrap();
    let refused = store.append(lease, seq, &[step(&lease.run_id, "b")]).await;
    assert!(
        matches!(refused, Err(StoreError::LostOwnership(_))),
        "{refused:?}"
    );
}

/// A run's first append follows what its creation wrote, in one round trip on the calling
/// thread, and under the same fence: a run taken over between the two gets nothing written.
#[tokio::test]
async fn a_runs_first_append_follows_its_creation_in_one_round_trip_under_the_same_fence() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    store.append_on_calling_thread().await.unwrap();
    let lease = store
        .create("r1", &Owner::current(), &started("r1"))
        .await
        .unwrap();
    store.append(&lease, 2, &[step("r1", "a")]).await.unwrap();
    assert_eq!(written_inline(&store).await, 1);
    assert_eq!(store.events("r1").await.unwrap().len(), 2);

    let taken = store
        .create("r2", &Owner::current(), &started("r2"))
        .await
        .unwrap();
    append_after_a_takeover(&store, &taken, 2).await;
    assert_eq!(written_inline(&store).await, 1);
    assert_eq!(store.events("r2").await.unwrap().len(), 1);
}

/// While another connection holds the write lock, the append does not hold the calling
/// thread: it goes the long way, which waits for the lock, and then writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_append_on_the_calling_thread_waits_for_another_writer_the_long_way() {
    let dir = tempfile::tempdir().unwrap();
    let (store, lease) = inline_run_with_one_append(&dir).await;
    let before = written_inline(&store).await;
    let other = open(&dir).await;
    let mut holder = other.pool.acquire().await.unwrap();
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut *holder)
        .await
        .unwrap();
    let held = Duration::from_millis(400);
    let release = tokio::spawn(async move {
        tokio::time::sleep(held).await;
        sqlx::query("COMMIT").execute(&mut *holder).await.unwrap();
    });
    let start = std::time::Instant::now();
    store.append(&lease, 3, &[step("r1", "b")]).await.unwrap();
    assert!(start.elapsed() >= held - Duration::from_millis(50));
    release.await.unwrap();
    assert_eq!(written_inline(&store).await, before);
    // The lock is free again: the next one goes on the calling thread.
    store.append(&lease, 4, &[step("r1", "c")]).await.unwrap();
    assert_eq!(written_inline(&store).await, before + 1);
    assert_eq!(store.events("r1").await.unwrap().len(), 4);
}

#[tokio::test]
async fn thousands_of_events_go_in_one_quick_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir).await;
    let lease = store
        .create("r1", &Owner::current(), &started("r1"))
        .await
        .unwrap();
    let events: Vec<Envelope> = (0..4096)
        .map(|n| step("r1", &format!("items[{n}]/fetch")))
        .collect();
    let start = std::time::Instant::now();
    store.append(&lease, 2, &events).await.unwrap();
    let took = start.elapsed();
    // Milliseconds in a release build; a generous bound for debug builds on slow disks.
    assert!(took < Duration::from_secs(5), "{took:?}");
    let read = store.events("r1").await.unwrap();
    assert_eq!(read.len(), 4097);
    assert_eq!(read[4096], events[4095]);
}
