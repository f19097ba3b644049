//! Which store files this process has open.
//!
//! SQLite's locks on a file are POSIX advisory locks: they belong to the process, and closing
//! any descriptor of the file in the process releases every one of them. The torn-log check
//! (`wal::check`) opens and closes the `-wal` and `-shm` files; run while this process
//! already has connections to the store (serve opens the store for its runner, each run, its
//! web side and its notifier), it would drop the locks those connections hold on the
//! wal-index. Another process opening the store could then take the wal-index for unused and
//! rebuild it, truncating the file under the connections that have it mapped (SIGBUS). The
//! check only matters before this process's first connection, so it runs then only.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static OPEN: Mutex<BTreeMap<PathBuf, usize>> = Mutex::new(BTreeMap::new());

/// One store of this process open on a file; dropped with the store.
#[derive(Debug)]
pub(super) struct OpenInProcess(PathBuf);

impl OpenInProcess {
    /// Registers one more store on `db`; the flag says whether it is the only one.
    pub(super) fn register(db: &Path) -> (OpenInProcess, bool) {
        let key = std::fs::canonicalize(db).unwrap_or_else(|_| db.to_owned());
        let mut open = OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(key.clone()).or_default();
        *count += 1;
        let first = *count == 1;
        (OpenInProcess(key), first)
    }
}

impl Drop for OpenInProcess {
    fn drop(&mut self) {
        let mut open = OPEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.0) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_store_on_a_file_is_first() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        std::fs::write(&db, "").unwrap();
        let (one, first) = OpenInProcess::register(&db);
        assert!(first);
        let (two, first) = OpenInProcess::register(&dir.path().join(".").join("a.db"));
        assert!(!first);
        drop((one, two));
        let (_three, first) = OpenInProcess::register(&db);
        assert!(first);
    }
}
