//! A SQLite database file in a fresh temp directory, removed on drop.

#![allow(dead_code, unreachable_pub)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// `<temp>/tta-sqlite-<pid>-<n>/tokens.db`, its directory removed on drop.
pub struct SqliteFile {
    dir: PathBuf,
}

impl SqliteFile {
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("tta-sqlite-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        Self { dir }
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join("tokens.db")
    }

    /// `sqlite://<path>`.
    pub fn url(&self) -> String {
        format!("sqlite://{}", self.path().display())
    }
}

impl Drop for SqliteFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
