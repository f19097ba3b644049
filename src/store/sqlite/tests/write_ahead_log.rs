//! The write-ahead log: a torn log refused at open, and the locks SQLite holds kept when
//! this process opens a store again.

use super::*;

/// Copies the store's three files while it is open, as a crash would leave them.
fn copy_open_store(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut source = from.as_os_str().to_owned();
        source.push(suffix);
        let mut target = to.as_os_str().to_owned();
        target.push(suffix);
        std::fs::copy(&source, &target).unwrap();
    }
}

fn wal_of(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// A store holding run `r1` with eleven events, each appended in a commit of its own.
async fn store_with_eleven_events(dir: &tempfile::TempDir) -> SqliteStore {
    let store = open(dir).await;
    let lease = store
        .create("r1", &Owner::current(), &started("r1"))
        .await
        .unwrap();
    for seq in 2..12 {
        store
            .append(&lease, seq, &[step("r1", &format!("s{seq}"))])
            .await
            .unwrap();
    }
    store
}

/// Cuts the write-ahead log of `db` after half the `recorded` committed frames. Half the
/// frames, not half the file: a log restarted after a checkpoint keeps its former length,
/// with frames of the earlier generation after the current ones.
fn keep_half_the_committed_frames(db: &Path, recorded: u32) {
    let header = std::fs::read(wal_of(db)).unwrap();
    let page = u64::from(u32::from_be_bytes(header[8..12].try_into().unwrap()));
    std::fs::OpenOptions::new()
        .write(true)
        .open(wal_of(db))
        .unwrap()
        .set_len(32 + u64::from(recorded / 2) * (24 + page))
        .unwrap();
}

#[tokio::test]
async fn a_torn_write_ahead_log_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = store_with_eleven_events(&dir).await;
    let events = store.events("r1").await.unwrap();

    // Untouched, the copy opens with every event: the checker agrees with SQLite's
    // own reading of the files.
    let whole = dir.path().join("whole.db");
    copy_open_store(&path, &whole);
    let (recorded, intact) = wal::inspect(&whole).expect("a usable wal-index");
    assert!(recorded > 10 && intact, "{recorded} {intact}");
    let copy = SqliteStore::open(&whole).await.unwrap();
    assert_eq!(copy.events("r1").await.unwrap(), events);

    // Half the log gone: SQLite alone would open it and forget the last events.
    let torn = dir.path().join("torn.db");
    copy_open_store(&path, &torn);
    keep_half_the_committed_frames(&torn, recorded);
    let error = SqliteStore::open(&torn).await.err().unwrap();
    match &error {
        StoreError::Damaged { location, detail } => {
            assert_eq!(location, &format!("sqlite:{}", torn.display()));
            assert!(
                detail.starts_with("the write-ahead log is torn"),
                "{detail}"
            );
            assert!(
                detail.contains(&format!("records {recorded} committed frames")),
                "{detail}"
            );
        }
        other => panic!("expected Damaged, got {other}"),
    }
    // Refused again on the next try: nothing was opened or rebuilt.
    assert!(matches!(
        SqliteStore::open(&torn).await,
        Err(StoreError::Damaged { .. })
    ));
    // What the check prevents: SQLite on its own opens the copy without complaint and
    // has forgotten committed events.
    let plain = SqlitePool::connect_with(SqliteConnectOptions::new().filename(&torn))
        .await
        .unwrap();
    let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&plain)
        .await
        .unwrap_or(0);
    assert!(kept < events.len() as i64, "{kept}");
    plain.close().await;

    // One flipped bit in the first frame: SQLite would silently drop the whole log.
    let flipped = dir.path().join("flipped.db");
    copy_open_store(&path, &flipped);
    let mut bytes = std::fs::read(wal_of(&flipped)).unwrap();
    bytes[32 + 24 + 100] ^= 0x01;
    std::fs::write(wal_of(&flipped), bytes).unwrap();
    let error = SqliteStore::open(&flipped).await.err().unwrap();
    assert!(error.to_string().contains("only 0 are intact"), "{error}");
}

/// A store this process opened and closed is checked again when it opens it anew: its file
/// may have been restored from a copy meanwhile, or deleted and its file number given to
/// another store's file.
#[tokio::test]
async fn a_store_closed_and_torn_is_refused_when_this_process_opens_it_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = db_path(&dir);
    let store = store_with_eleven_events(&dir).await;
    let copy = dir.path().join("copy.db");
    copy_open_store(&path, &copy);
    let (recorded, _) = wal::inspect(&copy).expect("a usable wal-index");
    store.close().await.unwrap();
    drop(store);

    // Restored over the same files (the same file numbers), with half its log lost.
    copy_open_store(&copy, &path);
    keep_half_the_committed_frames(&path, recorded);
    let error = SqliteStore::open(&path).await.err().unwrap();
    assert!(
        error.to_string().contains("the write-ahead log is torn"),
        "{error}"
    );
}

/// Opening a store again in a process that has it open keeps the locks SQLite holds on its
/// wal-index: another process must still see the store in use, and not reset the index
/// under this one (which faulted a serve worker with SIGBUS while `runbook runs show` read
/// the store). Seen from a forked child, as another process sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_store_again_keeps_the_locks_sqlite_holds_on_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("runbook.db");
    let first = SqliteStore::open(&db).await.unwrap();
    first
        .create("held", &Owner::current(), &started("held"))
        .await
        .unwrap();
    let shm = wal::sibling(&db, "-shm");
    assert!(
        wal_index_in_use_seen_from_another_process(&shm),
        "an open store holds the wal-index's lock"
    );
    let second = SqliteStore::open(&db).await.unwrap();
    assert_eq!(second.events("held").await.unwrap().len(), 1);
    assert!(
        wal_index_in_use_seen_from_another_process(&shm),
        "opening the store again dropped the lock that tells other processes it is in use"
    );
    second.close().await.unwrap();
    first.close().await.unwrap();
}

/// Whether a forked child finds the wal-index's "in use" byte (the DMS lock SQLite's unix
/// VFS takes at offset 128 of the `-shm` file) locked by another process. The child only
/// calls open, fcntl and _exit, which are safe after a fork.
fn wal_index_in_use_seen_from_another_process(shm: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(shm.as_os_str().as_bytes()).unwrap();
    // SAFETY: the child calls only async-signal-safe functions and exits.
    let child = unsafe { libc::fork() };
    if child == 0 {
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDWR);
            if fd < 0 {
                libc::_exit(2);
            }
            let mut lock: libc::flock = std::mem::zeroed();
            lock.l_type = libc::F_WRLCK as _;
            lock.l_whence = libc::SEEK_SET as _;
            lock.l_start = 128;
            lock.l_len = 1;
            if libc::fcntl(fd, libc::F_GETLK, &mut lock) != 0 {
                libc::_exit(3);
            }
            libc::_exit(if i32::from(lock.l_type) == libc::F_UNLCK {
                0
            } else {
                1
            });
        }
    }
    assert!(child > 0, "fork failed");
    let mut status = 0;
    // SAFETY: waits for the child forked above.
    unsafe { libc::waitpid(child, &mut status, 0) };
    assert!(libc::WIFEXITED(status), "the probe did not exit");
    match libc::WEXITSTATUS(status) {
        0 => false,
        1 => true,
        other => panic!("the probe could not look at {}: {other}", shm.display()),
    }
}
