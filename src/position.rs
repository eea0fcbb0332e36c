//! Source identity and positions: the keys and values of the manifest's positions
//! (`sink::manifest::ManifestEntry::positions`), shared by the sources (`crate::source`) and
//! the sink without either depending on the other.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The identity of one input: the key of its position in the manifest, of its detector state
/// and of its quarantine rows. Text form (manifest, logs): `file:<path>`, `stdin`,
/// `kafka:<topic>/<partition>`, `tcp:<listen address>/<peer address>`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SourceId {
    /// A file, by its path as configured or given on the command line.
    File(String),
    /// Standard input (cannot resume: not in the manifest's positions).
    Stdin,
    /// One partition of a Kafka topic.
    Kafka {
        /// Topic name.
        topic: String,
        /// Partition number.
        partition: i32,
    },
    /// One connection to a TCP listener (cannot resume: a reconnecting sender starts anew).
    Tcp {
        /// The listener's configured address.
        listen: String,
        /// The peer's address (`ip:port`).
        peer: String,
    },
}

impl SourceId {
    /// A file source; `-` is stdin.
    pub fn file(path: &str) -> SourceId {
        if path == "-" {
            SourceId::Stdin
        } else {
            SourceId::File(path.to_string())
        }
    }

    /// Whether a restart can resume it from a position (files and Kafka partitions; stdin
    /// and TCP connections cannot be read again).
    pub fn resumable(&self) -> bool {
        matches!(self, SourceId::File(_) | SourceId::Kafka { .. })
    }

    /// Whether any instance may hold it (a Kafka partition moves between the members of a
    /// group): its position is the latest over all instances' manifest entries. Others
    /// belong to one instance and resume from that instance's entries only.
    pub fn shared(&self) -> bool {
        matches!(self, SourceId::Kafka { .. })
    }

    /// Whether the manifest keeps a fingerprint of the record before its position (to
    /// recognise a re-created Kafka topic).
    pub fn marks_records(&self) -> bool {
        matches!(self, SourceId::Kafka { .. })
    }

    /// The name in `quarantine.source_file`: a file's path as given, else the text form.
    pub fn quarantine_name(&self) -> String {
        match self {
            SourceId::File(p) => p.clone(),
            SourceId::Stdin => "-".into(),
            other => other.to_string(),
        }
    }
}

impl fmt::Display for SourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceId::File(p) => write!(f, "file:{p}"),
            SourceId::Stdin => f.write_str("stdin"),
            SourceId::Kafka { topic, partition } => write!(f, "kafka:{topic}/{partition}"),
            SourceId::Tcp { listen, peer } => write!(f, "tcp:{listen}/{peer}"),
        }
    }
}

impl FromStr for SourceId {
    type Err = String;
    /// Parses the text form (see [`SourceId`]).
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "stdin" {
            return Ok(SourceId::Stdin);
        }
        if let Some(p) = s.strip_prefix("file:") {
            return Ok(SourceId::File(p.to_string()));
        }
        if let Some(tp) = s.strip_prefix("kafka:")
            && let Some((topic, p)) = tp.rsplit_once('/')
            && let Ok(partition) = p.parse::<i32>()
        {
            return Ok(SourceId::Kafka {
                topic: topic.to_string(),
                partition,
            });
        }
        if let Some(lp) = s.strip_prefix("tcp:")
            && let Some((listen, peer)) = lp.rsplit_once('/')
        {
            return Ok(SourceId::Tcp {
                listen: listen.to_string(),
                peer: peer.to_string(),
            });
        }
        Err(format!(
            "not a source id: {s:?} (expected file:<path>, stdin, kafka:<topic>/<partition> or tcp:<listen>/<peer>)"
        ))
    }
}

impl Serialize for SourceId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SourceId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a source goes on after a commit: opaque to everything but its source kind, ordered by
/// (`resets`, `next`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Next offset to read: a byte offset for files, a record offset for Kafka.
    pub next: i64,
    /// Source resets (a `source_reset` row each: re-created topic, offset outside the
    /// broker's watermarks) before this position: after a reset the offsets start lower.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub resets: u64,
    /// Fingerprint of the record before `next` (see `source::kafka::fingerprint`); a restart reads
    /// that record again and compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Position {
    /// The order of positions of one source: later is greater.
    pub fn order(&self) -> (u64, i64) {
        (self.resets, self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind's text form reads back to the same id; file ids keep the `file:` spelling of
    /// manifests written before `SourceId` existed.
    #[test]
    fn source_id_text_round_trips() {
        for id in [
            SourceId::File("/data/rsd 1.ndjson".into()),
            SourceId::Stdin,
            SourceId::Kafka {
                topic: "rsd.passes".into(),
                partition: 7,
            },
            SourceId::Tcp {
                listen: "0.0.0.0:7001".into(),
                peer: "10.1.2.3:50123".into(),
            },
        ] {
            let text = id.to_string();
            assert_eq!(text.parse::<SourceId>().unwrap(), id, "{text}");
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(serde_json::from_str::<SourceId>(&json).unwrap(), id);
        }
        assert_eq!(SourceId::File("a/b.csv".into()).to_string(), "file:a/b.csv");
        assert_eq!(
            "kafka:a/b/3".parse::<SourceId>().unwrap(),
            SourceId::Kafka {
                topic: "a/b".into(),
                partition: 3
            }
        );
        assert!("topic/3".parse::<SourceId>().is_err());
        assert_eq!(SourceId::file("-"), SourceId::Stdin);
        assert!(SourceId::File("x".into()).resumable() && !SourceId::Stdin.resumable());
    }

    /// Positions order by resets first: offset 5 after one reset is later than offset 900
    /// before it.
    #[test]
    fn positions_order_by_resets_then_offset() {
        let a = Position {
            next: 900,
            ..Default::default()
        };
        let b = Position {
            next: 5,
            resets: 1,
            mark: None,
        };
        assert!(b.order() > a.order());
        assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"next":900}"#);
    }
}
