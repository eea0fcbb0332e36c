//! The commit manifest (DESIGN.md "Delivery guarantees"): one JSON entry per commit, naming
//! the data files of the commit, the source positions they cover (Kafka topic-partition
//! offsets, file byte offsets) and the per-vehicle detector state at that cut.
//!
//! Protocol of a commit:
//! 1. every table's data file is written under a hidden temporary name and fsynced;
//! 2. the manifest entry `<tables>/_manifest/<instance>-<seq>.json` is written to a temporary
//!    name, fsynced and renamed (this rename is the commit point);
//! 3. the data files are renamed to their visible names and their directories fsynced.
//!
//! Recovery at start ([`recover`]): files named by a manifest entry but still hidden are
//! renamed (roll forward); hidden files of this instance that no entry names are deleted
//! (roll back). So a crash at any moment loses nothing and duplicates nothing.

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A data file of a commit: `tmp` (hidden) becomes `path`; both relative to the tables root,
/// so a restart with another spelling of the root (relative path, mount point) still finds them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct CommittedFile {
    pub table: String,
    pub tmp: PathBuf,
    pub path: PathBuf,
    pub rows: u64,
}

/// One manifest entry.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub instance: String,
    pub seq: u64,
    pub committed_at_ms: i64,
    pub files: Vec<CommittedFile>,
    /// `topic/partition` → next offset to consume.
    pub kafka_offsets: BTreeMap<String, i64>,
    /// `topic/partition` → fingerprint of the last record consumed before the offset in
    /// `kafka_offsets` (the record at offset − 1; see `run::kafka::fingerprint`). A restart
    /// reads that record again and compares: a different record means the topic was
    /// re-created (issue 10). Absent in entries written before it existed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka_marks: BTreeMap<String, String>,
    /// `topic/partition` → how many source resets (a `source_reset` row each: re-created
    /// topic, offset outside the broker's watermarks) came before this position. Positions
    /// are ordered by (resets, offset): after a reset the offsets start again lower.
    /// Absent = 0.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub kafka_resets: BTreeMap<String, u64>,
    /// Input file path → next byte offset.
    pub file_offsets: BTreeMap<String, u64>,
    /// Source partition key (`topic/partition` or `file:<path>`) → VIN → serialized
    /// detector state (JSON). Only partitions this instance owned at the cut.
    pub state: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Inputs a file ingest read for this entry (content hash and byte range), so the same
    /// content ingested again is recognised and skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<IngestedInput>,
    /// Files of an older `vehicles` snapshot this entry replaced, moved out of the table to
    /// a dated version directory (`from` → `to`, relative to the tables root).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub archived: Vec<ArchivedFile>,
}

/// One input of a file ingest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct IngestedInput {
    /// Path as given on the command line.
    pub path: String,
    /// Stream name (`rsd`, `plates`, `vehicles`, `obd`, `frames`).
    pub stream: String,
    /// How it was read: format and mapping (`csv;mapping=<sha256 prefix>`, `ndjson;canonical`
    /// …). The same bytes read another way are not "the same input" (a corrected mapping must
    /// be able to read a file again). Empty in entries written before this field existed.
    #[serde(default)]
    pub reading: String,
    /// SHA-256 of the bytes `[bytes_from, bytes_to)`, hex.
    pub sha256: String,
    pub bytes_from: u64,
    pub bytes_to: u64,
}

/// A file of a replaced snapshot, moved from `from` to `to` (relative to the tables root).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ArchivedFile {
    pub from: PathBuf,
    pub to: PathBuf,
}

/// The committed entry (and its input) that already ingested these bytes of this stream
/// (same SHA-256 over the same whole range), if any.
pub fn find_ingested<'a>(
    entries: &'a [ManifestEntry],
    stream: &str,
    reading: &str,
    sha256: &str,
    len: u64,
) -> Option<(&'a ManifestEntry, &'a IngestedInput)> {
    entries.iter().find_map(|e| {
        e.inputs
            .iter()
            .find(|i| {
                i.stream == stream
                    && i.reading == reading
                    && i.sha256 == sha256
                    && i.bytes_from == 0
                    && i.bytes_to == len
            })
            .map(|i| (e, i))
    })
}

/// Directory of the manifest under a tables root.
pub fn dir(root: &Path) -> PathBuf {
    root.join("_manifest")
}

/// Writes `entry` atomically and exclusively (temp + fsync + hard link + dir fsync): the
/// commit point. An entry is never overwritten: when `<instance>-<seq>` exists already
/// (another process with the same instance id committed it), this fails with
/// `AlreadyExists` and leaves that entry as it was.
pub fn write_entry(root: &Path, entry: &ManifestEntry) -> std::io::Result<PathBuf> {
    let d = dir(root);
    fs::create_dir_all(&d)?;
    let name = format!("{}-{:012}.json", entry.instance, entry.seq);
    let path = d.join(&name);
    // A temporary name of this process only: two writers never share it.
    let tmp = d.join(format!(
        ".{name}.{}-{:08x}.tmp",
        std::process::id(),
        rand::random::<u32>()
    ));
    let bytes = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
    {
        let f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        use std::io::Write;
        let mut w = std::io::BufWriter::new(&f);
        w.write_all(&bytes)?;
        w.flush()?;
        drop(w);
        f.sync_all()?;
    }
    // link(2) fails when the target exists, unlike rename(2): the entry appears whole, once.
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    if let Err(e) = linked {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!(
                    "manifest entry {} already exists: another process with instance id '{}' committed it (give each instance its own instance_id)",
                    path.display(),
                    entry.instance
                ),
            ));
        }
        return Err(e);
    }
    if let Ok(df) = fs::File::open(&d) {
        df.sync_all()?;
    }
    Ok(path)
}

/// Every entry under `root`, of every instance, ordered by (instance, seq). Unreadable
/// entries are an error (a manifest is never partially written: see [`write_entry`]).
pub fn read_all(root: &Path) -> std::io::Result<Vec<ManifestEntry>> {
    let d = dir(root);
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(&d) else {
        return Ok(out);
    };
    for e in rd.flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let bytes = fs::read(&p)?;
        let m: ManifestEntry = serde_json::from_slice(&bytes).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {e}", p.display()),
            )
        })?;
        out.push(m);
    }
    out.sort_by(|a, b| (a.instance.as_str(), a.seq).cmp(&(b.instance.as_str(), b.seq)));
    Ok(out)
}

/// What a restarting instance resumes from.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// Next sequence number for this instance.
    pub next_seq: u64,
    /// Latest committed next-offset per `topic/partition`, over all instances: the highest
    /// offset among the entries with the most source resets of that partition.
    pub kafka_offsets: BTreeMap<String, i64>,
    /// Fingerprint of the record before each offset of `kafka_offsets`, when recorded.
    pub kafka_marks: BTreeMap<String, String>,
    /// Source resets before each offset of `kafka_offsets`.
    pub kafka_resets: BTreeMap<String, u64>,
    /// Per partition key: the entry (instance, seq) whose state is the latest for it.
    pub state_source: BTreeMap<String, (String, u64)>,
    pub file_offsets: BTreeMap<String, u64>,
}

/// Rolls committed files forward and this instance's uncommitted files back, then returns
/// the resume point. `instance` scopes the roll-back to this instance's own hidden files.
pub fn recover(root: &Path, instance: &str) -> std::io::Result<(Resume, Vec<ManifestEntry>)> {
    let entries = read_all(root)?;
    let mut named: HashSet<PathBuf> = HashSet::new();
    // Files of replaced snapshots: moved out on purpose, not missing.
    let archived: HashSet<&Path> = entries
        .iter()
        .flat_map(|e| e.archived.iter().map(|a| a.from.as_path()))
        .collect();
    for e in &entries {
        // A replaced snapshot's files leave the table before the new ones appear.
        for a in &e.archived {
            let (from, to) = (root.join(&a.from), root.join(&a.to));
            if from.exists() {
                if let Some(p) = to.parent() {
                    fs::create_dir_all(p)?;
                }
                rename_idempotent(&from, &to)?;
            }
        }
        for f in &e.files {
            let (tmp, path) = (root.join(&f.tmp), root.join(&f.path));
            named.insert(tmp.clone());
            if archived.contains(f.path.as_path()) {
                continue;
            }
            if tmp.exists() && !path.exists() {
                rename_idempotent(&tmp, &path)?;
            } else if !tmp.exists() && !path.exists() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "manifest entry {}-{} names {} but neither it nor its temporary file exists: committed data was removed by hand",
                        e.instance,
                        e.seq,
                        path.display()
                    ),
                ));
            }
        }
    }
    // Roll back: hidden temp files of this instance (exact name pattern, so instance `a`
    // never touches instance `a-2`) that no entry names.
    for p in walk(root) {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if is_own_temp(&name, instance) && !named.contains(&p) {
            fs::remove_file(&p)?;
        }
    }
    let r = resume_view(&entries, instance);
    Ok((r, entries))
}

/// `.part-<instance>-<12 digits>-<5 digits>.parquet.tmp`.
fn is_own_temp(name: &str, instance: &str) -> bool {
    let Some(rest) = name.strip_prefix(&format!(".part-{instance}-")) else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() > 13
        && b[..12].iter().all(u8::is_ascii_digit)
        && b[12] == b'-'
        && rest.ends_with(".parquet.tmp")
}

/// Renames `from` to `to`; when `from` is gone but `to` exists (another process rolled it
/// forward first), that is success.
pub fn rename_idempotent(from: &Path, to: &Path) -> std::io::Result<()> {
    match fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && to.exists() => Ok(()),
        r => r,
    }
}

/// Takes the exclusive lock of `instance` (`_manifest/<instance>.lock`): two processes with
/// one instance id would overwrite each other's entries. Hold the returned file while running.
pub fn lock_instance(root: &Path, instance: &str) -> std::io::Result<fs::File> {
    let d = dir(root);
    fs::create_dir_all(&d)?;
    let f = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(d.join(format!("{instance}.lock")))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(fs::TryLockError::WouldBlock) => Err(std::io::Error::other(format!(
            "instance id '{instance}' is already running on {} (give each instance its own instance_id)",
            root.display()
        ))),
        Err(fs::TryLockError::Error(e)) => Err(e),
    }
}

/// The resume point that `entries` give `instance` (no file-system changes).
pub fn resume_view(entries: &[ManifestEntry], instance: &str) -> Resume {
    let mut r = Resume::default();
    for e in entries {
        if e.instance == instance {
            r.next_seq = r.next_seq.max(e.seq + 1);
        }
        for (k, v) in &e.kafka_offsets {
            let resets = e.kafka_resets.get(k).copied().unwrap_or(0);
            let cur = (
                r.kafka_resets.get(k).copied().unwrap_or(0),
                r.kafka_offsets.get(k).copied().unwrap_or(i64::MIN),
            );
            if (resets, *v) >= cur {
                r.kafka_offsets.insert(k.clone(), *v);
                r.kafka_resets.insert(k.clone(), resets);
                match e.kafka_marks.get(k) {
                    Some(m) => r.kafka_marks.insert(k.clone(), m.clone()),
                    None => r.kafka_marks.remove(k),
                };
                if e.state.contains_key(k) {
                    r.state_source
                        .insert(k.clone(), (e.instance.clone(), e.seq));
                }
            }
        }
        // File sources belong to one instance: resume only from its own entries.
        if e.instance != instance {
            continue;
        }
        for (k, v) in &e.file_offsets {
            let cur = r.file_offsets.entry(k.clone()).or_insert(*v);
            *cur = (*cur).max(*v);
            let key = format!("file:{k}");
            if e.state.contains_key(&key) {
                r.state_source.insert(key, (e.instance.clone(), e.seq));
            }
        }
    }
    r
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_forward_and_back() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let d = root.join("rsd_passes/date=2026-10-01");
        fs::create_dir_all(&d).unwrap();
        // Committed but not yet renamed (crash after the manifest).
        let tmp1 = d.join(".part-i1-000000000001-00001.parquet.tmp");
        let fin1 = d.join("part-i1-000000000001-00001.parquet");
        fs::write(&tmp1, b"a").unwrap();
        // Uncommitted (crash before the manifest).
        let tmp2 = d.join(".part-i1-000000000002-00001.parquet.tmp");
        fs::write(&tmp2, b"b").unwrap();
        // Another instance's in-flight file: not ours to delete.
        let other = d.join(".part-i1-2-000000000001-00001.parquet.tmp");
        fs::write(&other, b"c").unwrap();
        let mut e = ManifestEntry {
            instance: "i1".into(),
            seq: 1,
            ..Default::default()
        };
        e.files.push(CommittedFile {
            table: "rsd_passes".into(),
            tmp: tmp1.clone(),
            path: fin1.clone(),
            rows: 1,
        });
        e.kafka_offsets.insert("rsd/0".into(), 42);
        write_entry(root, &e).unwrap();
        let (r, entries) = recover(root, "i1").unwrap();
        assert!(lock_instance(root, "i1").is_ok());
        assert_eq!(entries.len(), 1);
        assert!(fin1.exists() && !tmp1.exists());
        assert!(!tmp2.exists());
        assert!(other.exists());
        assert_eq!(r.next_seq, 2);
        assert_eq!(r.kafka_offsets["rsd/0"], 42);
    }

    /// Two processes with one instance id both wrote `seq 0`; the second overwrote the
    /// first and its files stayed visible (issue 10 item 4). Entries are now exclusive.
    #[test]
    fn an_entry_is_never_overwritten() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        let mut a = ManifestEntry {
            instance: "twin".into(),
            seq: 0,
            ..Default::default()
        };
        a.kafka_offsets.insert("rsd/0".into(), 400);
        let p = write_entry(root, &a).unwrap();
        let mut b = a.clone();
        b.kafka_offsets.insert("rsd/0".into(), 800);
        let err = write_entry(root, &b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("instance id 'twin'"), "{err}");
        let kept: ManifestEntry = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(kept.kafka_offsets["rsd/0"], 400);
        // No temporary file is left behind, and the next seq is free.
        assert_eq!(fs::read_dir(dir(root)).unwrap().count(), 1);
        b.seq = 1;
        assert!(write_entry(root, &b).is_ok());
    }

    #[test]
    fn the_instance_lock_is_exclusive() {
        let t = tempfile::tempdir().unwrap();
        let held = lock_instance(t.path(), "i1").unwrap();
        let err = lock_instance(t.path(), "i1").unwrap_err().to_string();
        assert!(err.contains("instance id 'i1' is already running"), "{err}");
        assert!(lock_instance(t.path(), "i2").is_ok());
        drop(held);
        assert!(lock_instance(t.path(), "i1").is_ok());
    }

    /// After a source reset the offsets of a partition start again lower: the resume point
    /// is the highest offset among the entries with the most resets, not the highest offset.
    #[test]
    fn resume_orders_positions_by_resets_then_offset() {
        let entry = |seq: u64, off: i64, resets: u64, mark: Option<&str>| {
            let mut e = ManifestEntry {
                instance: "i1".into(),
                seq,
                ..Default::default()
            };
            e.kafka_offsets.insert("t/0".into(), off);
            if resets > 0 {
                e.kafka_resets.insert("t/0".into(), resets);
            }
            if let Some(m) = mark {
                e.kafka_marks.insert("t/0".into(), m.into());
            }
            e
        };
        let entries = vec![
            entry(0, 500, 0, Some("aa")),
            entry(1, 0, 1, None),
            entry(2, 40, 1, Some("bb")),
        ];
        let r = resume_view(&entries, "i1");
        assert_eq!(r.kafka_offsets["t/0"], 40);
        assert_eq!(r.kafka_resets["t/0"], 1);
        assert_eq!(r.kafka_marks["t/0"], "bb");
        // Without the reset count (old entries) the highest offset wins, as before.
        let r = resume_view(&entries[..1], "i1");
        assert_eq!(r.kafka_offsets["t/0"], 500);
        assert_eq!(r.kafka_marks["t/0"], "aa");
    }
}
