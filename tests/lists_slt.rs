//! The enforcement lists as SQL in, rows out (issue 11 item 5; as DataFusion tests its SQL):
//! every `tests/slt/*.slt` file runs on its own empty tables directory. Besides read-only SQL,
//! a record may be
//!
//! - `INGEST <stream>` followed by NDJSON lines: ingested like `plumewatch ingest --stream`
//!   (`INGEST frames` takes HJ 1239 frames as hex, one per line);
//! - `LIST <name> [param=value …] [| column,column …]`: the named list with its parameters
//!   bound as `list` does, in its own row order, optionally only the columns named.
//!
//! Values print as the query output's text (timestamps UTC, `NULL` for null).

use std::path::PathBuf;

use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use plumewatch::limits::LimitSet;
use sqllogictest::{DBOutput, DefaultColumnType};

struct Lists {
    dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    limits: LimitSet,
}

#[derive(Debug)]
struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Error {}

fn err(e: impl std::fmt::Display) -> Error {
    Error(e.to_string())
}

fn output(batches: &[RecordBatch]) -> Result<DBOutput<DefaultColumnType>, Error> {
    let opts = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    let mut ncols = 0;
    for b in batches {
        ncols = b.num_columns();
        let f = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        for r in 0..b.num_rows() {
            rows.push(f.iter().map(|x| x.value(r).to_string()).collect());
        }
    }
    Ok(DBOutput::Rows {
        types: vec![DefaultColumnType::Any; ncols],
        rows,
    })
}

impl sqllogictest::DB for Lists {
    type Error = Error;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, Error> {
        let text = sql.trim();
        if let Some(rest) = text.strip_prefix("INGEST ") {
            let (stream, body) = rest.split_once('\n').unwrap_or((rest, ""));
            let stream =
                <plumewatch::pipeline::Stream as clap::ValueEnum>::from_str(stream.trim(), true)
                    .map_err(err)?;
            let file = self.dir.path().join(format!(
                "input-{}.ndjson",
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
            ));
            // Frames are written as hex, one frame per line, and ingested as binary.
            let format = if stream == plumewatch::pipeline::Stream::Frames {
                let bytes = body
                    .split_whitespace()
                    .map(hex::decode)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(err)?
                    .concat();
                std::fs::write(&file, bytes).map_err(err)?;
                plumewatch::ingest::Format::Hj1239
            } else {
                std::fs::write(&file, format!("{body}\n")).map_err(err)?;
                plumewatch::ingest::Format::Ndjson
            };
            let tables = self.dir.path().join("t");
            let s = plumewatch::ingest::ingest(&plumewatch::ingest::IngestOptions {
                stream,
                format,
                vin: None,
                mapping: None,
                limits: &self.limits,
                out: &tables,
                inputs: &[file.display().to_string()],
                progress: false,
                max_record_bytes: plumewatch::decode::text::DEFAULT_MAX_RECORD_BYTES,
                force: false,
                commit_every: plumewatch::ingest::COMMIT_EVERY_RECORDS,
            })
            .map_err(err)?;
            return Ok(DBOutput::StatementComplete(s.records_in));
        }
        let tables = self.dir.path().join("t");
        std::fs::create_dir_all(&tables).map_err(err)?;
        let batches = if let Some(rest) = text.strip_prefix("LIST ") {
            let (rest, cols) = match rest.split_once('|') {
                Some((r, c)) => (r, Some(c)),
                None => (rest, None),
            };
            let mut words = rest.split_whitespace();
            let name = words.next().unwrap_or_default();
            let list = plumewatch::query::lists::LISTS
                .iter()
                .find(|l| l.name == name)
                .ok_or_else(|| Error(format!("no list {name}")))?;
            let params: Vec<(String, String)> = words
                .map(|w| {
                    let (k, v) = w.split_once('=').unwrap_or((w, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let batches = self
                .rt
                .block_on(plumewatch::query::lists::run(
                    &tables,
                    list,
                    &self.limits,
                    &params,
                ))
                .map_err(err)?;
            match cols {
                None => batches,
                Some(c) => {
                    let names: Vec<&str> = c.split(',').map(str::trim).collect();
                    batches
                        .iter()
                        .map(|b| {
                            let idx = names
                                .iter()
                                .map(|n| b.schema().index_of(n))
                                .collect::<Result<Vec<_>, _>>()?;
                            b.project(&idx)
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(err)?
                }
            }
        } else {
            self.rt
                .block_on(plumewatch::query::run_sql(&tables, text))
                .map_err(err)?
        };
        output(&batches)
    }
}

#[test]
fn lists_sql_in_rows_out() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/slt");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "slt"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "{files:?}");
    for f in files {
        let mut runner = sqllogictest::Runner::new(|| async {
            Ok(Lists {
                dir: tempfile::tempdir().map_err(err)?,
                rt: tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(err)?,
                limits: LimitSet::default_set(),
            })
        });
        if let Err(e) = runner.run_file(&f) {
            panic!("{}: {}", f.display(), e.display(false));
        }
    }
}
