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

use super::last_seen::LastSeenIndex;
use crate::query::Lake;
use crate::schema;

/// Directory times of every table but `audit`: (path, modified).
type Stamp = Vec<(PathBuf, Option<SystemTime>)>;

/// The shared lake, the directory times it was opened at, and the plate lookup's
/// [`LastSeenIndex`] over it (built when the server starts or at the first lookup, then
/// extended with each commit's new files).
pub struct LakeCache {
    root: PathBuf,
    current: Mutex<Option<Cached>>,
}

struct Cached {
    stamp: Stamp,
    lake: Arc<Lake>,
    /// The index as of `lake` (None until a lookup asks for it).
    last_seen: Option<Arc<LastSeenIndex>>,
    /// The newest index built, perhaps over an older lake: the start of the next one.
    last_built: Option<Arc<LastSeenIndex>>,
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
        let mut cur = self.current.lock().await;
        Ok(self.fresh(&mut cur).await?.lake.clone())
    }

    /// As [`LakeCache::get`], with the [`LastSeenIndex`] of that lake: built on the blocking
    /// pool from the previous index and the files it has not folded in yet (all of them at
    /// the first call). Errors: as `get`, or a data file that could not be read.
    pub async fn get_with_last_seen(&self) -> anyhow::Result<(Arc<Lake>, Arc<LastSeenIndex>)> {
        let mut cur = self.current.lock().await;
        let c = self.fresh(&mut cur).await?;
        if let Some(ix) = &c.last_seen {
            return Ok((c.lake.clone(), ix.clone()));
        }
        // Extended in place (copied only while a request still holds the previous one).
        let mut ix = c
            .last_built
            .take()
            .map(Arc::unwrap_or_clone)
            .unwrap_or_default();
        let lake = c.lake.clone();
        let (ix, done) = tokio::task::spawn_blocking(move || {
            let done = ix.update(&lake);
            (ix, done)
        })
        .await?;
        // Kept even after an error: what it folded stays folded, the rest is tried next time.
        let ix = Arc::new(ix);
        c.last_built = Some(ix.clone());
        done?;
        c.last_seen = Some(ix.clone());
        Ok((c.lake.clone(), ix))
    }

    /// The cached entry, opened again when a table directory changed.
    async fn fresh<'a>(&self, cur: &'a mut Option<Cached>) -> anyhow::Result<&'a mut Cached> {
        let stamp = stamp(&self.root);
        if cur.as_ref().is_some_and(|c| c.stamp == stamp) {
            return Ok(cur.as_mut().expect("checked"));
        }
        let lake = Arc::new(Lake::open(&self.root).await?);
        let last_built = cur.take().and_then(|c| c.last_built);
        Ok(cur.insert(Cached {
            stamp,
            lake,
            last_seen: None,
            last_built,
        }))
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
