//! The commit manifest (DESIGN.md "Delivery guarantees"): one JSON entry per commit, naming
//! the data files of the commit, the source positions they cover (per [`SourceId`], whatever
//! its kind: file byte offsets, Kafka topic-partition offsets) and the per-vehicle detector
//! state at that cut.
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

use crate::position::{Position, SourceId};

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
    /// Source → where it goes on after this commit (next offset, source resets before it,
    /// fingerprint of the record before it: see [`Position`]). Only resumable sources
    /// (files, Kafka partitions).
    #[serde(default)]
    pub positions: BTreeMap<SourceId, Position>,
    /// Source → VIN → serialized detector state (JSON). Only sources this instance owned at
    /// the cut.
    #[serde(default)]
    pub state: BTreeMap<SourceId, BTreeMap<String, serde_json::Value>>,
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
        let m = parse_entry(&bytes).map_err(|e| {
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

/// Reads one entry, converting the per-kind position maps of entries written before
/// [`ManifestEntry::positions`] (`kafka_offsets` keyed `topic/partition`, `file_offsets` keyed
/// by path, state keyed `topic/partition` or `file:<path>`).
pub fn parse_entry(bytes: &[u8]) -> Result<ManifestEntry, String> {
    #[derive(Deserialize)]
    struct Raw {
        #[serde(flatten)]
        entry: ManifestEntry,
        #[serde(default)]
        state: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
        // Entries written before `positions` existed.
        #[serde(default)]
        kafka_offsets: BTreeMap<String, i64>,
        #[serde(default)]
        kafka_marks: BTreeMap<String, String>,
        #[serde(default)]
        kafka_resets: BTreeMap<String, u64>,
        #[serde(default)]
        file_offsets: BTreeMap<String, u64>,
    }
    let raw: Raw = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut e = raw.entry;
    let legacy_id = |k: &str| -> Result<SourceId, String> {
        k.parse::<SourceId>().or_else(|_| match k.rsplit_once('/') {
            Some((topic, p)) => p
                .parse()
                .map(|partition| SourceId::Kafka {
                    topic: topic.to_string(),
                    partition,
                })
                .map_err(|_| format!("unknown source key {k:?}")),
            None => Err(format!("unknown source key {k:?}")),
        })
    };
    for (k, v) in raw.state {
        e.state.insert(legacy_id(&k)?, v);
    }
    for (k, next) in raw.kafka_offsets {
        let pos = Position {
            next,
            resets: raw.kafka_resets.get(&k).copied().unwrap_or(0),
            mark: raw.kafka_marks.get(&k).cloned(),
        };
        e.positions.insert(legacy_id(&format!("kafka:{k}"))?, pos);
    }
    for (path, next) in raw.file_offsets {
        e.positions.insert(
            SourceId::file(&path),
            Position {
                next: next as i64,
                ..Default::default()
            },
        );
    }
    Ok(e)
}

/// What a restarting instance resumes from.
#[derive(Clone, Debug, Default)]
pub struct Resume {
    /// Next sequence number for this instance.
    pub next_seq: u64,
    /// Latest committed position per source: for a shared source (a Kafka partition) over
    /// all instances, the greatest by [`Position::order`]; for the others over this
    /// instance's entries.
    pub positions: BTreeMap<SourceId, Position>,
    /// Per source: the entry (instance, seq) whose detector state is the latest for it.
    pub state_source: BTreeMap<SourceId, (String, u64)>,
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
        for (id, pos) in &e.positions {
            // Files belong to one instance: resume only from its own entries.
            if !id.shared() && e.instance != instance {
                continue;
            }
            if r.positions
                .get(id)
                .is_none_or(|cur| pos.order() >= cur.order())
            {
                r.positions.insert(id.clone(), pos.clone());
                if e.state.contains_key(id) {
                    r.state_source
                        .insert(id.clone(), (e.instance.clone(), e.seq));
                }
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
        e.positions.insert(kafka("rsd", 0), at(42));
        write_entry(root, &e).unwrap();
        let (r, entries) = recover(root, "i1").unwrap();
        assert!(lock_instance(root, "i1").is_ok());
        assert_eq!(entries.len(), 1);
        assert!(fin1.exists() && !tmp1.exists());
        assert!(!tmp2.exists());
        assert!(other.exists());
        assert_eq!(r.next_seq, 2);
        assert_eq!(r.positions[&kafka("rsd", 0)].next, 42);
    }

    fn kafka(topic: &str, partition: i32) -> SourceId {
        SourceId::Kafka {
            topic: topic.into(),
            partition,
        }
    }

    fn at(next: i64) -> Position {
        Position {
            next,
            ..Default::default()
        }
    }

    /// An entry written before `positions` existed (per-kind maps, Kafka keys without a
    /// prefix) reads as the same positions and state keys.
    #[test]
    fn legacy_entries_read_as_positions() {
        let old = br#"{"instance":"i1","seq":3,"committed_at_ms":1,"files":[],
            "kafka_offsets":{"rsd.passes/2":120},"kafka_marks":{"rsd.passes/2":"ab12"},
            "kafka_resets":{"rsd.passes/2":1},"file_offsets":{"/d/obd.ndjson":4096},
            "state":{"rsd.passes/2":{"V1":{"n":1}},"file:/d/obd.ndjson":{"V2":{"n":2}}}}"#;
        let e = parse_entry(old).unwrap();
        assert_eq!(
            e.positions[&kafka("rsd.passes", 2)],
            Position {
                next: 120,
                resets: 1,
                mark: Some("ab12".into())
            }
        );
        let f = SourceId::File("/d/obd.ndjson".into());
        assert_eq!(e.positions[&f], at(4096));
        assert_eq!(e.state[&f]["V2"]["n"], 2);
        assert_eq!(e.state[&kafka("rsd.passes", 2)]["V1"]["n"], 1);
        // Written back, only the new form remains, and it reads back the same.
        let text = serde_json::to_string(&e).unwrap();
        assert!(
            !text.contains("kafka_offsets") && !text.contains("file_offsets"),
            "{text}"
        );
        assert!(
            text.contains(r#""kafka:rsd.passes/2":{"next":120,"resets":1,"mark":"ab12"}"#),
            "{text}"
        );
        let again = parse_entry(text.as_bytes()).unwrap();
        assert_eq!(again.positions, e.positions);
        assert_eq!(again.state, e.state);
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
        a.positions.insert(kafka("rsd", 0), at(400));
        let p = write_entry(root, &a).unwrap();
        let mut b = a.clone();
        b.positions.insert(kafka("rsd", 0), at(800));
        let err = write_entry(root, &b).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert!(err.to_string().contains("instance id 'twin'"), "{err}");
        let kept = parse_entry(&fs::read(&p).unwrap()).unwrap();
        assert_eq!(kept.positions[&kafka("rsd", 0)].next, 400);
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
            e.positions.insert(
                kafka("t", 0),
                Position {
                    next: off,
                    resets,
                    mark: mark.map(str::to_string),
                },
            );
            e
        };
        let entries = vec![
            entry(0, 500, 0, Some("aa")),
            entry(1, 0, 1, None),
            entry(2, 40, 1, Some("bb")),
        ];
        let r = resume_view(&entries, "i1");
        let p = &r.positions[&kafka("t", 0)];
        assert_eq!((p.next, p.resets, p.mark.as_deref()), (40, 1, Some("bb")));
        // Without the reset count (old entries) the highest offset wins, as before.
        let r = resume_view(&entries[..1], "i1");
        let p = &r.positions[&kafka("t", 0)];
        assert_eq!((p.next, p.mark.as_deref()), (500, Some("aa")));
        // A file position is the instance's own: another instance's entry is not resumed.
        let mut other = entry(3, 0, 0, None);
        other.instance = "i2".into();
        other
            .positions
            .insert(SourceId::File("a.ndjson".into()), at(99));
        let r = resume_view(&[other], "i1");
        assert!(!r.positions.contains_key(&SourceId::File("a.ndjson".into())));
        assert_eq!(r.positions[&kafka("t", 0)].next, 0);
    }
}
