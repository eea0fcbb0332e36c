//! Result output: an aligned text table, CSV (UTF-8 with BOM, so Excel shows Chinese plates),
//! or JSON (an array of objects; numbers stay numbers).

use std::io::Write;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};

/// Output format of `query` and `list`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

/// Writes `batches` to `w` in `format`.
pub fn write(
    batches: &[RecordBatch],
    format: OutputFormat,
    w: &mut dyn Write,
) -> anyhow::Result<()> {
    match format {
        OutputFormat::Table => {
            // An empty result may come as no batch at all (no header to print).
            if !batches.is_empty() {
                let t = datafusion::arrow::util::pretty::pretty_format_batches(batches)?;
                writeln!(w, "{t}")?;
            }
            if batches.iter().all(|b| b.num_rows() == 0) {
                writeln!(w, "(no rows)")?;
            }
        }
        OutputFormat::Csv => {
            w.write_all(b"\xEF\xBB\xBF")?;
            let mut cw = csv::Writer::from_writer(w);
            if let Some(b) = batches.first() {
                cw.write_record(b.schema().fields().iter().map(|f| f.name().as_str()))?;
            }
            let opts = FormatOptions::default();
            for b in batches {
                let fmts = formatters(b, &opts)?;
                for r in 0..b.num_rows() {
                    let row: Vec<String> = (0..b.num_columns())
                        .map(|c| {
                            if b.column(c).is_null(r) {
                                String::new()
                            } else {
                                fmts[c].value(r).to_string()
                            }
                        })
                        .collect();
                    cw.write_record(&row)?;
                }
            }
            cw.flush()?;
        }
        OutputFormat::Json => {
            let rows = to_json(batches)?;
            serde_json::to_writer_pretty(&mut *w, &rows)?;
            writeln!(w)?;
        }
    }
    Ok(())
}

fn formatters<'a>(
    b: &'a RecordBatch,
    opts: &'a FormatOptions<'a>,
) -> Result<Vec<ArrayFormatter<'a>>, datafusion::arrow::error::ArrowError> {
    b.columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), opts))
        .collect()
}

/// Batches as JSON objects.
pub fn to_json(
    batches: &[RecordBatch],
) -> anyhow::Result<Vec<serde_json::Map<String, serde_json::Value>>> {
    use serde_json::Value;
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for b in batches {
        let fmts = formatters(b, &opts)?;
        for r in 0..b.num_rows() {
            let mut obj = serde_json::Map::new();
            for (c, field) in b.schema().fields().iter().enumerate() {
                let col = b.column(c);
                let v = if col.is_null(r) {
                    Value::Null
                } else {
                    match col.data_type() {
                        DataType::Int64 => Value::from(col.as_primitive::<Int64Type>().value(r)),
                        DataType::UInt64 => Value::from(col.as_primitive::<UInt64Type>().value(r)),
                        DataType::Float64 => {
                            serde_json::Number::from_f64(col.as_primitive::<Float64Type>().value(r))
                                .map(Value::Number)
                                .unwrap_or(Value::Null)
                        }
                        DataType::Boolean => Value::from(col.as_boolean().value(r)),
                        _ => Value::from(fmts[c].value(r).to_string()),
                    }
                };
                obj.insert(field.name().clone(), v);
            }
            out.push(obj);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_results_say_so_in_table_format() {
        let mut out = Vec::new();
        write(&[], OutputFormat::Table, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "(no rows)\n");
        // A zero-row batch keeps its header.
        let empty = RecordBatch::new_empty(crate::schema::detections());
        let mut out = Vec::new();
        write(&[empty], OutputFormat::Table, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("| detection_id") && text.ends_with("(no rows)\n"),
            "{text}"
        );
    }
}
