//! A unique temporary directory for unit tests, removed on drop once its database is closed.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system temp dir; removed (best effort) when dropped.
pub(crate) struct TestDir {
    path: PathBuf,
    /// When set, drop waits (at most 5 s) for the database in the directory to close, since
    /// background flushes may still hold it.
    db_closed: Option<Arc<AtomicBool>>,
}

impl TestDir {
    pub(crate) fn new(tag: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("rm-raft-unit-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!("creating {}: {e}", path.display());
        }
        TestDir { path, db_closed: None }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn wait_for_close(&mut self, flag: Arc<AtomicBool>) {
        self.db_closed = Some(flag);
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        if let Some(flag) = &self.db_closed {
            let deadline = Instant::now() + Duration::from_secs(5);
            while !flag.load(Ordering::SeqCst) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        for _ in 0..5 {
            if std::fs::remove_dir_all(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
