//! Result output: an aligned text table, CSV (UTF-8 with BOM, so Excel shows Chinese plates),
//! or JSON (an array of objects; numbers stay numbers).

use std::io::Write;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
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
                let text: Vec<bool> = b
                    .columns()
                    .iter()
                    .map(|c| is_text_type(c.data_type()))
                    .collect();
                for r in 0..b.num_rows() {
                    let row: Vec<String> = (0..b.num_columns())
                        .map(|c| {
                            if b.column(c).is_null(r) {
                                String::new()
                            } else if text[c] {
                                csv_text_cell(&fmts[c].value(r).to_string())
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

/// `batches` with every zoned timestamp column shown in `zone` (an IANA name): the same
/// instants, written as local time with its offset (`2025-11-08T10:00:00+08:00`). For the
/// table and CSV output people read; JSON and Parquet keep UTC (DESIGN.md "Time, plates and
/// keys").
pub fn in_zone(batches: &[RecordBatch], zone: &str) -> anyhow::Result<Vec<RecordBatch>> {
    use datafusion::arrow::datatypes::{Field, Schema};
    let mut out = Vec::with_capacity(batches.len());
    for b in batches {
        let mut fields = Vec::with_capacity(b.num_columns());
        let mut cols = Vec::with_capacity(b.num_columns());
        for (f, c) in b.schema().fields().iter().zip(b.columns()) {
            match f.data_type() {
                DataType::Timestamp(unit, Some(_)) => {
                    let dt = DataType::Timestamp(*unit, Some(zone.into()));
                    cols.push(datafusion::arrow::compute::cast(c, &dt)?);
                    fields.push(Field::new(f.name(), dt, f.is_nullable()));
                }
                _ => {
                    cols.push(c.clone());
                    fields.push(f.as_ref().clone());
                }
            }
        }
        out.push(RecordBatch::try_new(
            std::sync::Arc::new(Schema::new(fields)),
            cols,
        )?);
    }
    Ok(out)
}

/// A text cell for CSV meant for spreadsheets: a value whose first character is `=`, `+`,
/// `-`, `@`, TAB or CR would open as a formula (OWASP "CSV injection"), so it gets a leading
/// `'`, which Excel and LibreOffice show as text and do not evaluate. Other text is unchanged.
pub fn csv_text_cell(s: &str) -> String {
    match s.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{s}"),
        _ => s.to_string(),
    }
}

/// True for columns written as text (everything but numbers, booleans, dates and times),
/// the columns [`csv_text_cell`] applies to. Numbers are never altered (`-0.02` stays).
fn is_text_type(t: &DataType) -> bool {
    !(t.is_numeric()
        || t.is_temporal()
        || matches!(
            t,
            DataType::Boolean | DataType::Null | DataType::Interval(_)
        ))
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

/// One cell as JSON when its type has a JSON form: NULL, integers and floats as numbers
/// (non-finite floats as NULL), booleans, and maps (the `detections` evidence) as objects
/// of their entries. `None` for other types (written as their display text).
pub(crate) fn json_cell(col: &dyn Array, r: usize) -> Option<serde_json::Value> {
    use serde_json::Value;
    if col.is_null(r) {
        return Some(Value::Null);
    }
    let float = |x: f64| {
        serde_json::Number::from_f64(x)
            .map(Value::Number)
            .unwrap_or(Value::Null)
    };
    Some(match col.data_type() {
        DataType::Int8 => Value::from(col.as_primitive::<Int8Type>().value(r)),
        DataType::Int16 => Value::from(col.as_primitive::<Int16Type>().value(r)),
        DataType::Int32 => Value::from(col.as_primitive::<Int32Type>().value(r)),
        DataType::Int64 => Value::from(col.as_primitive::<Int64Type>().value(r)),
        DataType::UInt8 => Value::from(col.as_primitive::<UInt8Type>().value(r)),
        DataType::UInt16 => Value::from(col.as_primitive::<UInt16Type>().value(r)),
        DataType::UInt32 => Value::from(col.as_primitive::<UInt32Type>().value(r)),
        DataType::UInt64 => Value::from(col.as_primitive::<UInt64Type>().value(r)),
        DataType::Float32 => float(col.as_primitive::<Float32Type>().value(r) as f64),
        DataType::Float64 => float(col.as_primitive::<Float64Type>().value(r)),
        DataType::Boolean => Value::from(col.as_boolean().value(r)),
        DataType::Utf8 => Value::from(col.as_string::<i32>().value(r)),
        DataType::LargeUtf8 => Value::from(col.as_string::<i64>().value(r)),
        DataType::Utf8View => Value::from(col.as_string_view().value(r)),
        DataType::Map(_, _) => {
            let m = col.as_map();
            let entries = m.value(r);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut obj = serde_json::Map::new();
            for i in 0..entries.len() {
                let k = match json_cell(keys.as_ref(), i)? {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                obj.insert(k, json_cell(values.as_ref(), i)?);
            }
            Value::Object(obj)
        }
        _ => return None,
    })
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
                let v = json_cell(col.as_ref(), r)
                    .unwrap_or_else(|| Value::from(fmts[c].value(r).to_string()));
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
    fn times_for_people_are_local_with_offset() {
        use datafusion::arrow::array::TimestampMillisecondArray;
        use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
        let dt = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let b = RecordBatch::try_new(
            std::sync::Arc::new(Schema::new(vec![Field::new("t", dt, true)])),
            vec![std::sync::Arc::new(
                TimestampMillisecondArray::from(vec![Some(1_762_558_200_000), None])
                    .with_timezone("UTC"),
            )],
        )
        .unwrap();
        let local = in_zone(std::slice::from_ref(&b), "Asia/Shanghai").unwrap();
        let mut out = Vec::new();
        write(&local, OutputFormat::Csv, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\u{feff}t\n2025-11-08T07:30:00+08:00\n\"\"\n"
        );
        // JSON keeps UTC.
        let j = to_json(&[b]).unwrap();
        assert_eq!(j[0]["t"], "2025-11-07T23:30:00Z");
    }

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
