//! Which files under a tables directory are table data (issue 8 kind 9, "the lake as others
//! write it"). One rule, used by the query layer (`query::context`) and by the registry loader
//! (`enrich::registry::walk_parquet`):
//!
//! 1. A table whose files are named by the commit manifest (`<tables>/_manifest/*.json`, see
//!    `sink::manifest`) is exactly those files: anything else in its directory (a copied
//!    `part-x (1).parquet`, a file written by another tool) is skipped, so it can neither break a
//!    query nor double a count.
//! 2. A table that no manifest entry names (written by `ingest` or by another tool) is every
//!    `*.parquet` file below its directory whose name, and every directory name on the way,
//!    does not start with `.` or `_` (the Hadoop/Spark hidden-file rule: `._x.parquet` AppleDouble
//!    files, `_SUCCESS`, `.x.crc`, `_temporary/`).
//!
//! Everything skipped is returned (and warned about once by the callers), except the
//! product's own in-flight temporary files (`.part-….parquet.tmp`), which are expected while
//! `run` or `ingest` writes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::sink::manifest;

/// The data files of one table and what was left out.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TableFiles {
    /// Files read as table data (absolute when the root was absolute), sorted.
    pub files: Vec<PathBuf>,
    /// Files (or hidden directories) below the table directory that are not read, sorted.
    pub skipped: Vec<PathBuf>,
    /// Files the manifest names that are neither at their final nor at their temporary path
    /// (`.<name>.tmp`, where a commit between its manifest entry and its rename has it).
    pub missing: Vec<PathBuf>,
    /// True when the manifest decided (rule 1).
    pub from_manifest: bool,
}

impl TableFiles {
    /// Drops from `skipped` the files that the commit manifest names now (read again): a
    /// commit that landed between this listing's manifest read and its directory walk (a
    /// `run` committing while its watchlist query opens the tables). They stay out of
    /// `files` (this snapshot is the manifest as first read) but are not warned about.
    /// Only for a listing decided by the manifest; a manifest that cannot be read now
    /// leaves `skipped` as it is.
    pub fn forget_committed_since(&mut self, root: &Path, table: &str) {
        if !self.from_manifest || self.skipped.is_empty() {
            return;
        }
        let Ok(now) = committed(root) else {
            return;
        };
        let named: BTreeSet<PathBuf> = now
            .get(table)
            .map(|v| v.iter().map(|p| root.join(p)).collect())
            .unwrap_or_default();
        self.skipped.retain(|p| !named.contains(p));
    }

    /// One warning line naming what was left out (None when nothing was). `what` names the
    /// table for the message.
    pub fn warning(&self, what: &str) -> Option<String> {
        let mut parts = Vec::new();
        if !self.skipped.is_empty() {
            parts.push(format!(
                "{what}: {} file(s) not read as table data ({}): {}",
                self.skipped.len(),
                if self.from_manifest {
                    "not named by the commit manifest, or hidden"
                } else {
                    "names starting with '.' or '_', or not *.parquet"
                },
                name_list(&self.skipped)
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!(
                "{what}: {} committed file(s) named by the manifest are missing: {}",
                self.missing.len(),
                name_list(&self.missing)
            ));
        }
        (!parts.is_empty()).then(|| parts.join("; "))
    }
}

fn name_list(paths: &[PathBuf]) -> String {
    const MAX: usize = 10;
    let mut s: Vec<String> = paths
        .iter()
        .take(MAX)
        .map(|p| p.display().to_string())
        .collect();
    if paths.len() > MAX {
        s.push(format!("… and {} more", paths.len() - MAX));
    }
    s.join(", ")
}

/// True for a name the Hadoop rule hides (`.x`, `_x`).
pub fn is_hidden_name(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

/// The product's own temporary data file (`.part-….parquet.tmp`, see `sink::parquet`).
fn is_own_temp(name: &str) -> bool {
    name.starts_with(".part-") && name.ends_with(".parquet.tmp")
}

/// The temporary path `sink::parquet` writes the data file `p` under before its commit
/// renames it: `.<name>.tmp` in the same directory.
fn own_temp_of(p: &Path) -> PathBuf {
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    p.with_file_name(format!(".{name}.tmp"))
}

/// Files named by the commit manifest, per table name, relative to `root`, less the files a
/// later entry archived (a replaced registry snapshot). Errors when a manifest entry cannot
/// be read (a manifest is never partially written).
/// Only the `files` of each entry are decoded (entries also carry detector state, which
/// can be large and is not needed here).
pub fn committed(root: &Path) -> std::io::Result<std::collections::BTreeMap<String, Vec<PathBuf>>> {
    #[derive(serde::Deserialize)]
    struct FilesOnly {
        files: Vec<manifest::CommittedFile>,
        /// Files of a replaced snapshot moved out of the table (registry re-ingest).
        #[serde(default)]
        archived: Vec<manifest::ArchivedFile>,
    }
    let mut moved: BTreeSet<PathBuf> = BTreeSet::new();
    let mut out: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    let Ok(rd) = std::fs::read_dir(manifest::dir(root)) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        // The same entries `manifest::read_all` reads.
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let bytes = std::fs::read(&p)?;
        let m: FilesOnly = serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", p.display()),
            )
        })?;
        for f in m.files {
            out.entry(f.table).or_default().push(f.path);
        }
        moved.extend(m.archived.into_iter().map(|a| a.from));
    }
    // A file a later entry archived is no longer part of its table (not "missing").
    if !moved.is_empty() {
        for v in out.values_mut() {
            v.retain(|p| !moved.contains(p));
        }
    }
    Ok(out)
}

/// The data files of `table` under the tables directory `root` (rule in the module doc).
pub fn table_files(root: &Path, table: &str) -> std::io::Result<TableFiles> {
    let committed = committed(root)?;
    Ok(table_files_with(
        root,
        table,
        committed.get(table).map(|v| v.as_slice()),
    ))
}

/// As [`table_files`], with the manifest's files of this table already read (`None`: the
/// manifest names no file of it).
pub fn table_files_with(root: &Path, table: &str, committed: Option<&[PathBuf]>) -> TableFiles {
    let dir = root.join(table);
    let mut visible = Vec::new();
    let mut skipped = Vec::new();
    walk(&dir, &mut visible, &mut skipped);
    let mut out = TableFiles::default();
    match committed.filter(|c| !c.is_empty()) {
        None => out.files = visible,
        Some(c) => {
            out.from_manifest = true;
            let named: BTreeSet<PathBuf> = c.iter().map(|p| root.join(p)).collect();
            for p in visible {
                if named.contains(&p) {
                    out.files.push(p);
                } else {
                    skipped.push(p);
                }
            }
            for p in &named {
                // The temporary path first: a commit renames it to the final one (atomic
                // rename, `sink::parquet`), so one of the two is found while a commit is
                // between its manifest entry and its rename.
                if !own_temp_of(p).is_file() && !p.is_file() {
                    out.missing.push(p.clone());
                }
            }
        }
    }
    out.files.sort();
    skipped.sort();
    out.skipped = skipped;
    out
}

/// Every `*.parquet` under `dir` (recursively) by the Hadoop rule alone (no manifest), sorted:
/// the files of one partition directory as the key index reads them.
pub fn visible_parquet(dir: &Path) -> Vec<PathBuf> {
    let (mut visible, mut skipped) = (Vec::new(), Vec::new());
    walk(dir, &mut visible, &mut skipped);
    visible.sort();
    visible
}

fn walk(dir: &Path, visible: &mut Vec<PathBuf>, skipped: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().to_string();
        let is_dir = p.is_dir();
        if is_hidden_name(&name) {
            if !is_own_temp(&name) {
                skipped.push(p);
            }
        } else if is_dir {
            walk(&p, visible, skipped);
        } else if name.ends_with(".parquet") {
            visible.push(p);
        } else {
            skipped.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::manifest::{CommittedFile, ManifestEntry, write_entry};

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, b"x").unwrap();
    }

    #[test]
    fn hadoop_rule_without_a_manifest() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let d = root.join("rsd_passes/date=2025-11-08");
        for n in [
            "part-a-00001.parquet",
            "._part-a-00001.parquet",
            "_SUCCESS",
            ".part-a-00001.parquet.crc",
            "part-x.parquet.tmp",
            ".part-run-000000000001-00001.parquet.tmp",
        ] {
            touch(&d.join(n));
        }
        touch(&root.join("rsd_passes/_temporary/0/part-b.parquet"));
        let f = table_files(root, "rsd_passes").unwrap();
        assert_eq!(f.files, vec![d.join("part-a-00001.parquet")]);
        assert_eq!(
            f.skipped,
            vec![
                root.join("rsd_passes/_temporary"),
                d.join("._part-a-00001.parquet"),
                d.join(".part-a-00001.parquet.crc"),
                d.join("_SUCCESS"),
                d.join("part-x.parquet.tmp"),
            ]
        );
        let w = f.warning("rsd_passes").unwrap();
        assert!(
            w.contains("5 file(s)") && w.contains("._part-a-00001.parquet"),
            "{w}"
        );
        // The product's own in-flight temp file is neither read nor warned about.
        assert!(!w.contains("part-run"), "{w}");
    }

    #[test]
    fn manifest_names_the_files_of_its_tables() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let d = root.join("detections/date=2025-11-08");
        let ok = d.join("part-i1-000000000001-00001.parquet");
        let stray = d.join("BLy4oBo5y8roqhSh.parquet");
        let copy = d.join("part-i1-000000000001-00001 (1).parquet");
        for p in [&ok, &stray, &copy] {
            touch(p);
        }
        touch(&root.join("vehicles/part-ingest-00001.parquet"));
        let mut e = ManifestEntry {
            instance: "i1".into(),
            seq: 1,
            ..Default::default()
        };
        for (table, rel) in [
            (
                "detections",
                "detections/date=2025-11-08/part-i1-000000000001-00001.parquet",
            ),
            (
                "detections",
                "detections/date=2025-11-09/part-i1-000000000001-00002.parquet",
            ),
        ] {
            e.files.push(CommittedFile {
                table: table.into(),
                tmp: PathBuf::from(format!("{rel}.tmp")),
                path: PathBuf::from(rel),
                rows: 1,
            });
        }
        write_entry(root, &e).unwrap();
        let f = table_files(root, "detections").unwrap();
        assert!(f.from_manifest);
        assert_eq!(f.files, vec![ok]);
        assert_eq!(f.skipped, vec![stray, copy]);
        assert_eq!(
            f.missing,
            vec![root.join("detections/date=2025-11-09/part-i1-000000000001-00002.parquet")]
        );
        // A table the manifest never names keeps the Hadoop rule.
        let v = table_files(root, "vehicles").unwrap();
        assert!(!v.from_manifest);
        assert_eq!(
            v.files,
            vec![root.join("vehicles/part-ingest-00001.parquet")]
        );
    }

    /// A commit between the manifest read and the directory walk (seen in the issue 10 soak:
    /// "1 file(s) not read as table data" from `run`'s watchlist query once per run) is not
    /// warned about; the file is not read by this snapshot; a stray file still is warned.
    #[test]
    fn a_commit_during_the_listing_is_not_a_stray_file() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let d = root.join("plate_reads/date=2026-10-03");
        let entry = |seq: u64, rel: &str| {
            let mut e = ManifestEntry {
                instance: "solo".into(),
                seq,
                ..Default::default()
            };
            e.files.push(CommittedFile {
                table: "plate_reads".into(),
                tmp: PathBuf::from(format!("{rel}.tmp")),
                path: PathBuf::from(rel),
                rows: 1,
            });
            e
        };
        let a = "plate_reads/date=2026-10-03/part-solo-000000000001-00001.parquet";
        let b = "plate_reads/date=2026-10-03/part-solo-000000000002-00001.parquet";
        write_entry(root, &entry(1, a)).unwrap();
        let before = committed(root).unwrap();
        // Commit 2 lands after the manifest was read, before the walk.
        write_entry(root, &entry(2, b)).unwrap();
        touch(&root.join(a));
        touch(&root.join(b));
        let stray = d.join("part-x (1).parquet");
        touch(&stray);
        let mut f = table_files_with(
            root,
            "plate_reads",
            before.get("plate_reads").map(|v| v.as_slice()),
        );
        assert_eq!(f.files, vec![root.join(a)]);
        assert_eq!(f.skipped, vec![root.join(b), stray.clone()]);
        f.forget_committed_since(root, "plate_reads");
        assert_eq!(f.files, vec![root.join(a)]);
        assert_eq!(f.skipped, vec![stray]);
        let w = f.warning("plate_reads").unwrap();
        assert!(w.contains("1 file(s)") && w.contains("part-x (1)"), "{w}");
        // Commit 3: its entry is written, its file not yet renamed from the temporary name
        // (seen in a soak: "1 committed file(s) named by the manifest are missing"). Not
        // missing, not read; a named file at neither path is missing.
        let c = "plate_reads/date=2026-10-03/part-solo-000000000003-00001.parquet";
        write_entry(root, &entry(3, c)).unwrap();
        touch(&d.join(".part-solo-000000000003-00001.parquet.tmp"));
        let gone = "plate_reads/date=2026-10-03/part-solo-000000000004-00001.parquet";
        write_entry(root, &entry(4, gone)).unwrap();
        let f = table_files(root, "plate_reads").unwrap();
        assert_eq!(f.files, vec![root.join(a), root.join(b)]);
        assert_eq!(f.missing, vec![root.join(gone)]);
        assert!(f.skipped.contains(&d.join("part-x (1).parquet")));
        assert!(
            !f.skipped
                .iter()
                .any(|p| p.to_string_lossy().contains("000000000003"))
        );
    }
}
