//! The tables as the server reads them: one open [`Lake`] shared by the requests, opened
//! again (through the commit manifest, `query::files`) when a table directory changed.
//!
//! Opening the lake lists every table's files and registers them, which costs more than a
//! plate lookup's queries. Whether anything changed is told by the modification times of the
//! table directories and their partition directories: a commit creates its files in them
//! (hidden names) and renames them into view after its manifest entry, and each of those
//! changes the directory's time, so the first request after the rename opens the lake again and
//! sees the commit. The `audit` table is left out of the check: the server's own audit commits
//! (every `audit_commit_ms`) would otherwise reopen the lake each time, and no API answer reads
//! it (it is read through `plumewatch query`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::Mutex;

use crate::query::Lake;
use crate::schema;

/// Directory times of every table but `audit`: (path, modified).
type Stamp = Vec<(PathBuf, Option<SystemTime>)>;

/// The shared lake and the directory times it was opened at.
pub struct LakeCache {
    root: PathBuf,
    current: Mutex<Option<(Stamp, Arc<Lake>)>>,
}

impl LakeCache {
    /// A cache over the tables under `root` (opened at the first request).
    pub fn new(root: &Path) -> LakeCache {
        LakeCache {
            root: root.to_path_buf(),
            current: Mutex::new(None),
        }
    }

    /// The lake as committed now: the cached one when no table directory changed since it was
    /// opened, else a new one (errors as `Lake::open`).
    pub async fn get(&self) -> anyhow::Result<Arc<Lake>> {
        let stamp = stamp(&self.root);
        let mut cur = self.current.lock().await;
        if let Some((s, lake)) = cur.as_ref()
            && *s == stamp
        {
            return Ok(lake.clone());
        }
        let lake = Arc::new(Lake::open(&self.root).await?);
        *cur = Some((stamp, lake.clone()));
        Ok(lake)
    }
}

fn stamp(root: &Path) -> Stamp {
    schema::CATALOG
        .iter()
        .filter(|t| t.name != schema::AUDIT)
        .flat_map(|t| dir_stamp(&root.join(t.name)))
        .collect()
}

/// Modification times of `dir` and of its subdirectories (the `date=` partitions), sorted by
/// path: a commit's rename changes one of them, so an unchanged stamp means no new files.
pub(crate) fn dir_stamp(dir: &Path) -> Vec<(PathBuf, Option<std::time::SystemTime>)> {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut out = vec![(dir.to_path_buf(), mtime(dir))];
    if let Ok(rd) = std::fs::read_dir(dir) {
        let mut subs: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        subs.sort();
        out.extend(subs.into_iter().map(|s| {
            let m = mtime(&s);
            (s, m)
        }));
    }
    out
}
