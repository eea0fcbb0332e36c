//! List answers as files police open: JSON (UTC, as `plumewatch list --format json`), CSV
//! (UTF-8 with BOM, times in the enforcement zone with their offset, formula-looking text
//! defused: byte for byte `plumewatch list --format csv`) and XLSX (`rust_xlsxwriter`: numbers
//! as numbers, times as Excel date-times in the enforcement zone, text never read as a
//! formula); column headers in Chinese on request ([`ZH_HEADERS`]).

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

use crate::query::output::{self, OutputFormat};

/// Chinese column headers (`lang=zh`) of the lists' columns and the lookup's fields, in the
/// words of Chinese enforcement platforms (号牌号码, 号牌颜色, 车辆识别代号 as on the GA 36
/// registration documents). A column not listed keeps its English name.
pub const ZH_HEADERS: &[(&str, &str)] = &[
    ("plate", "号牌号码"),
    ("plate_color", "号牌颜色"),
    ("vin", "车辆识别代号"),
    ("site_id", "站点编号"),
    ("sightings", "发现次数"),
    ("first_seen", "首次发现时间"),
    ("last_seen", "最后发现时间"),
    ("last_site", "最后发现站点"),
    ("sites", "发现站点"),
    ("basis", "判定依据"),
    ("plate_colour_confirmed", "号牌颜色已核实"),
    ("rule_version", "规则版本"),
    ("max_failing_in_window", "窗口内最多超标次数"),
    ("failing_passes", "超标次数"),
    ("pollutants", "超标污染物"),
    ("first_fail", "首次超标时间"),
    ("last_fail", "最后超标时间"),
    ("limit_set", "限值版本"),
    ("detections", "检出次数"),
    ("rear_o2_flatline", "后氧信号平直"),
    ("rear_o2_periodic", "后氧信号周期性"),
    ("rear_o2_mirrors_front", "后氧跟随前氧"),
    ("dfco_no_lean", "断油时无稀信号"),
    ("rear_o2_missing", "后氧信号缺失"),
    ("obd_catalyst_dtc", "催化器故障码"),
    ("rear_o2_low_band", "后氧低电压"),
    ("lambda_implausible", "过量空气系数不可信"),
    ("max_strength", "最大证据强度"),
    ("strongest_rule", "最强证据规则"),
    ("strongest_evidence", "最强证据数值"),
    ("strongest_evidence_text", "最强证据说明"),
    ("last_detected_at", "最后检出时间"),
    ("last_seen_at", "最后上线时间"),
    ("last_lon_deg", "最后经度"),
    ("last_lat_deg", "最后纬度"),
    ("status", "状态"),
    ("not_evaluable_reason", "无法评估原因"),
];

/// The header of column `name` in `lang` (`zh`, or anything else for the column name).
pub fn header(name: &str, zh: bool) -> &str {
    if zh && let Some((_, h)) = ZH_HEADERS.iter().find(|(n, _)| *n == name) {
        return h;
    }
    name
}

/// `batches` with their columns renamed to the Chinese headers.
fn renamed(batches: &[RecordBatch]) -> anyhow::Result<Vec<RecordBatch>> {
    use datafusion::arrow::datatypes::{Field, Schema};
    batches
        .iter()
        .map(|b| {
            let fields: Vec<Field> = b
                .schema()
                .fields()
                .iter()
                .map(|f| f.as_ref().clone().with_name(header(f.name(), true)))
                .collect();
            Ok(RecordBatch::try_new(
                std::sync::Arc::new(Schema::new(fields)),
                b.columns().to_vec(),
            )?)
        })
        .collect()
}

/// JSON: an array of objects, times in UTC (`…Z`), as `plumewatch list --format json`.
pub fn json(batches: &[RecordBatch], zh: bool) -> anyhow::Result<Vec<u8>> {
    let b = if zh {
        renamed(batches)?
    } else {
        batches.to_vec()
    };
    let mut out = Vec::new();
    output::write(&b, OutputFormat::Json, &mut out)?;
    Ok(out)
}

/// CSV: UTF-8 with BOM, times in `zone` with their offset; the same bytes as `plumewatch list
/// --format csv` (English headers).
pub fn csv(batches: &[RecordBatch], zone: chrono_tz::Tz, zh: bool) -> anyhow::Result<Vec<u8>> {
    let local = output::in_zone(batches, zone.name())?;
    let b = if zh { renamed(&local)? } else { local };
    let mut out = Vec::new();
    output::write(&b, OutputFormat::Csv, &mut out)?;
    Ok(out)
}

/// XLSX: one sheet named `sheet` (≤ 31 characters), a header row (frozen), one row per
/// result row. Integers and floats are numbers, booleans booleans, zoned times Excel
/// date-times of the wall clock in `zone` (`yyyy-mm-dd hh:mm:ss`; Excel has no time zones,
/// so the zone is named in the sheet's last header cell), maps (evidence) JSON text, other
/// values their text. Strings are written as strings, never as formulas.
pub fn xlsx(
    batches: &[RecordBatch],
    zone: chrono_tz::Tz,
    zh: bool,
    sheet: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut wb = Workbook::new();
    let ws = wb.add_worksheet();
    ws.set_name(sheet.chars().take(31).collect::<String>())?;
    let bold = Format::new().set_bold();
    let when = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let Some(first) = batches.first() else {
        return Ok(wb.save_to_buffer()?);
    };
    let schema = first.schema();
    for (c, f) in schema.fields().iter().enumerate() {
        ws.write_string_with_format(0, c as u16, header(f.name(), zh), &bold)?;
        ws.set_column_width(c as u16, 16)?;
    }
    let ncols = schema.fields().len() as u16;
    ws.write_string(
        0,
        ncols,
        if zh {
            format!("时间为{}当地时间", zone.name())
        } else {
            format!("times are local time in {}", zone.name())
        },
    )?;
    ws.set_freeze_panes(1, 0)?;
    let opts = FormatOptions::default();
    let mut row: u32 = 1;
    for b in batches {
        let json = output::to_json(std::slice::from_ref(b))?;
        let fmts: Vec<ArrayFormatter> = b
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &opts))
            .collect::<Result<_, _>>()?;
        for r in 0..b.num_rows() {
            for (c, col) in b.columns().iter().enumerate() {
                let c16 = c as u16;
                if col.is_null(r) {
                    continue;
                }
                match col.data_type() {
                    DataType::Int64 => {
                        ws.write_number(row, c16, col.as_primitive::<Int64Type>().value(r) as f64)?;
                    }
                    DataType::UInt64 => {
                        ws.write_number(
                            row,
                            c16,
                            col.as_primitive::<UInt64Type>().value(r) as f64,
                        )?;
                    }
                    DataType::Float64 => {
                        let v = col.as_primitive::<Float64Type>().value(r);
                        if v.is_finite() {
                            ws.write_number(row, c16, v)?;
                        }
                    }
                    DataType::Boolean => {
                        ws.write_boolean(row, c16, col.as_boolean().value(r))?;
                    }
                    DataType::Timestamp(unit, Some(_)) => {
                        let ms = timestamp_ms(col.as_ref(), *unit, r);
                        ws.write_datetime_with_format(row, c16, local_excel(ms, zone)?, &when)?;
                    }
                    DataType::Map(_, _) => {
                        let name = schema.field(c).name();
                        let v = json
                            .get(r)
                            .and_then(|o| o.get(name))
                            .map(|v| v.to_string())
                            .unwrap_or_default();
                        ws.write_string(row, c16, v)?;
                    }
                    _ => {
                        ws.write_string(row, c16, fmts[c].value(r).to_string())?;
                    }
                }
            }
            row += 1;
        }
    }
    Ok(wb.save_to_buffer()?)
}

fn timestamp_ms(col: &dyn Array, unit: TimeUnit, r: usize) -> i64 {
    use datafusion::arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    match unit {
        TimeUnit::Second => col.as_primitive::<TimestampSecondType>().value(r) * 1000,
        TimeUnit::Millisecond => col.as_primitive::<TimestampMillisecondType>().value(r),
        TimeUnit::Microsecond => col.as_primitive::<TimestampMicrosecondType>().value(r) / 1000,
        TimeUnit::Nanosecond => col.as_primitive::<TimestampNanosecondType>().value(r) / 1_000_000,
    }
}

/// The wall-clock time in `zone` of the UTC instant `ms`, as an Excel date-time.
fn local_excel(ms: i64, zone: chrono_tz::Tz) -> anyhow::Result<ExcelDateTime> {
    use chrono::{Datelike, TimeZone, Timelike};
    let t = zone
        .timestamp_millis_opt(ms)
        .single()
        .ok_or_else(|| anyhow::anyhow!("instant {ms} ms out of range"))?;
    let d = ExcelDateTime::from_ymd(t.year() as u16, t.month() as u8, t.day() as u8)?
        .and_hms_milli(
            t.hour() as u16,
            t.minute() as u8,
            t.second() as u8,
            (t.nanosecond() / 1_000_000).min(999) as u16,
        )?;
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zh_headers_and_unknown_columns() {
        assert_eq!(header("plate", true), "号牌号码");
        assert_eq!(header("plate", false), "plate");
        assert_eq!(header("something_new", true), "something_new");
        // Every mapped name is distinct (two columns never share a header).
        let mut zh: Vec<_> = ZH_HEADERS.iter().map(|(_, h)| *h).collect();
        zh.sort();
        zh.dedup();
        assert_eq!(zh.len(), ZH_HEADERS.len());
    }

    #[test]
    fn excel_time_is_the_local_wall_clock() {
        // 2025-11-07T23:30:00.250Z is 07:30:00.250 on 8 Nov in Beijing.
        let d = local_excel(1_762_558_200_250, chrono_tz::Tz::Asia__Shanghai).unwrap();
        use rust_xlsxwriter::IntoExcelDateTime;
        let serial = d.to_excel_serial_date();
        // 45969 = 2025-11-08 (days since 1899-12-30); 07:30:00.250 = 27000.25 s.
        assert!(
            (serial - (45969.0 + 27000.25 / 86400.0)).abs() < 1e-9,
            "{serial}"
        );
    }
}
