//! Evidence plot: upstream lambda and rear O2 voltage of one vehicle over time, with the
//! windows of its TWC / rear-O2 detections shaded (`plumewatch plot`). Drawn with `plotters`
//! (SVG backend). A missing value, or more than [`PlotOptions::gap_ms`] between two samples,
//! breaks the line (a gap is drawn as a gap, never joined); the time axis is local time in
//! the enforcement zone, named on the axis; the title names the plate (registry, else the
//! vehicle's detections) with the VIN.

use std::collections::HashMap;
use std::path::Path;

use datafusion::common::{ParamValues, ScalarValue};
use plotters::prelude::*;

use super::{Lake, output::to_json};

/// Default largest time between two samples still joined by a line: 5 s (a 1 Hz source
/// missing four samples in a row). Design choice, not from a standard.
pub const DEFAULT_GAP_MS: i64 = 5_000;

/// How to draw.
#[derive(Debug, Clone, Copy)]
pub struct PlotOptions {
    /// Zone of the time axis (the limit set's `[time].zone`).
    pub zone: chrono_tz::Tz,
    /// Two samples further apart than this (ms) are not joined.
    pub gap_ms: i64,
}

impl Default for PlotOptions {
    fn default() -> Self {
        PlotOptions {
            zone: chrono_tz::Asia::Shanghai,
            gap_ms: DEFAULT_GAP_MS,
        }
    }
}

/// What a plot contains.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSummary {
    pub samples: usize,
    /// (rule id, window start ms, window end ms)
    pub windows: Vec<(String, i64, i64)>,
    /// Lines drawn per panel (upstream λ, rear O2): one per run of samples without a gap.
    pub segments: [usize; 2],
    /// Plate (and colour) in the title, when known.
    pub plate: Option<String>,
    /// The title.
    pub title: String,
}

/// Splits `(t_ms, value)` samples (sorted by time) into runs to draw as separate lines: a
/// missing value or more than `gap_ms` between consecutive samples starts a new run. Runs
/// are `(t_ms, value)`; a run of one sample is kept (drawn as a dot-length line).
pub fn segments(samples: &[(i64, Option<f64>)], gap_ms: i64) -> Vec<Vec<(i64, f64)>> {
    let mut out: Vec<Vec<(i64, f64)>> = Vec::new();
    let mut cur: Vec<(i64, f64)> = Vec::new();
    for &(t, v) in samples {
        match v {
            Some(v) if v.is_finite() => {
                if cur.last().is_some_and(|(p, _)| t - p > gap_ms) {
                    out.push(std::mem::take(&mut cur));
                }
                cur.push((t, v));
            }
            _ => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn colour(rule: &str) -> RGBColor {
    match rule {
        "rear_o2_flatline" => RGBColor(230, 159, 0),
        "rear_o2_periodic" => RGBColor(86, 180, 233),
        "rear_o2_mirrors_front" => RGBColor(213, 94, 0),
        "dfco_no_lean" => RGBColor(204, 121, 167),
        "rear_o2_missing" => RGBColor(128, 128, 128),
        _ => RGBColor(0, 158, 115),
    }
}

/// Draws the plot of `vin` (samples in `[since, until)`, RFC 3339) to `out` (SVG), time axis
/// in `opts.zone`, lines broken at gaps longer than `opts.gap_ms`. Errors when the vehicle
/// has no samples in the period, and before reading anything when `out` does not end in
/// `.svg` (an SVG named `.png` would not open as one).
pub async fn plot(
    dir: &Path,
    vin: &str,
    since: &str,
    until: &str,
    out: &Path,
    opts: &PlotOptions,
) -> anyhow::Result<PlotSummary> {
    if !out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("svg"))
    {
        anyhow::bail!(
            "plot writes SVG only: give --out a file ending in .svg (got {})",
            out.display()
        );
    }
    let lake = Lake::open(dir).await?;
    let mut p = HashMap::new();
    p.insert(
        "vin".to_string(),
        ScalarValue::Utf8(Some(vin.to_string())).into(),
    );
    p.insert(
        "since".to_string(),
        ScalarValue::Utf8(Some(since.to_string())).into(),
    );
    p.insert(
        "until".to_string(),
        ScalarValue::Utf8(Some(until.to_string())).into(),
    );
    let samples = lake
        .sql(
            "SELECT CAST(sampled_at AS BIGINT) AS t, upstream_lambda, rear_o2_v FROM obd_samples \
             WHERE vin = $vin AND sampled_at >= to_timestamp($since) AND sampled_at < to_timestamp($until) ORDER BY sampled_at",
        )
        .await?
        .with_param_values(ParamValues::Map(p.clone()))?;
    let samples = lake.collect(samples).await?;
    let dets = lake
        .sql("SELECT rule_id, evidence FROM detections WHERE vin = $vin AND source_stream = 'obd' ORDER BY detected_at")
        .await?
        .with_param_values(ParamValues::Map(p.clone()))?;
    let dets = lake.collect(dets).await?;
    // The plate: the registry's (recognised plates only), else the latest on a detection.
    let plate_q = lake
        .sql(
            "SELECT plate, plate_color, 0 AS pri, CAST(NULL AS TIMESTAMP) AS at FROM vehicles \
             WHERE vin = $vin AND plate IS NOT NULL AND plate_status IN ('standard', 'nonstandard') \
             UNION ALL SELECT plate, plate_color, 1 AS pri, CAST(detected_at AS TIMESTAMP) AS at FROM detections \
             WHERE vin = $vin AND plate IS NOT NULL \
             ORDER BY pri, at DESC NULLS LAST LIMIT 1",
        )
        .await?
        .with_param_values(ParamValues::Map(p))?;
    let plate = to_json(&lake.collect(plate_q).await?)?
        .first()
        .and_then(|r| {
            let plate = r["plate"].as_str()?;
            Some(match r["plate_color"].as_str() {
                Some(c) => format!("{plate} ({c})"),
                None => plate.to_string(),
            })
        });
    let rows = to_json(&samples)?;
    if rows.is_empty() {
        anyhow::bail!("no obd_samples for VIN {vin} in [{since}, {until})");
    }
    let t0 = rows[0]["t"].as_i64().unwrap_or(0);
    let t1 = rows[rows.len() - 1]["t"].as_i64().unwrap_or(t0);
    let secs = |t: i64| (t - t0) as f64 / 1000.0;
    let series = |col: &str| -> Vec<Vec<(f64, f64)>> {
        let pts: Vec<(i64, Option<f64>)> = rows
            .iter()
            .filter_map(|r| Some((r["t"].as_i64()?, r[col].as_f64())))
            .collect();
        segments(&pts, opts.gap_ms)
            .into_iter()
            .map(|s| s.into_iter().map(|(t, v)| (secs(t), v)).collect())
            .collect()
    };
    let lam = series("upstream_lambda");
    let rear = series("rear_o2_v");
    let mut windows = Vec::new();
    for d in to_json(&dets)? {
        let rule = d["rule_id"].as_str().unwrap_or_default().to_string();
        let ev = &d["evidence"];
        let ms = |k: &str| ev[k].as_f64().map(|x| x as i64);
        if let (Some(a), Some(b)) = (ms("window_start_ms"), ms("window_end_ms"))
            && b >= t0
            && a <= t1
        {
            windows.push((rule, a, b));
        }
    }
    let x_max = secs(t1).max(1.0);
    let zone = opts.zone;
    let local = |x: f64| {
        chrono::DateTime::from_timestamp_millis(t0 + (x * 1000.0).round() as i64)
            .map(|t| t.with_timezone(&zone))
    };
    let first = local(0.0).expect("sample times are in range");
    let last = local(x_max).unwrap_or(first);
    let same_day = first.date_naive() == last.date_naive();
    let tick = move |x: &f64| {
        local(*x)
            .map(|t| {
                t.format(if same_day { "%H:%M:%S" } else { "%m-%d %H:%M" })
                    .to_string()
            })
            .unwrap_or_default()
    };
    let x_desc = format!(
        "local time, {} (UTC{}), from {}",
        zone.name(),
        first.format("%:z"),
        first.format("%Y-%m-%d %H:%M:%S")
    );
    let title = format!(
        "{}VIN {vin}: upstream lambda and rear O2 voltage, shaded = flagged windows",
        plate
            .as_deref()
            .map(|p| format!("{p}, "))
            .unwrap_or_default()
    );
    let root = SVGBackend::new(out, (1400, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(&title, ("sans-serif", 22))?;
    let (top, bottom) = root.split_vertically(380);
    let panels: [(
        &DrawingArea<SVGBackend, plotters::coord::Shift>,
        &str,
        &[Vec<(f64, f64)>],
        std::ops::Range<f64>,
        RGBColor,
    ); 2] = [
        (&top, "upstream lambda (-)", &lam, 0.6..1.6, BLUE),
        (&bottom, "rear O2 (V)", &rear, 0.0..1.2, RED),
    ];
    for (area, label, data, yr, c) in panels {
        let mut ch = ChartBuilder::on(area)
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..x_max, yr.clone())?;
        ch.configure_mesh()
            .x_desc(x_desc.as_str())
            .x_label_formatter(&tick)
            .y_desc(label)
            .draw()?;
        for (rule, a, b) in &windows {
            let col = colour(rule);
            ch.draw_series(std::iter::once(Rectangle::new(
                [(secs(*a).max(0.0), yr.start), (secs(*b).min(x_max), yr.end)],
                col.mix(0.25).filled(),
            )))?
            .label(rule.clone())
            .legend(move |(x, y)| {
                Rectangle::new([(x, y - 5), (x + 15, y + 5)], col.mix(0.5).filled())
            });
        }
        // One line per run without a gap; the legend entry once.
        for (i, seg) in data.iter().enumerate() {
            let s = ch.draw_series(LineSeries::new(seg.iter().copied(), &c))?;
            if i == 0 {
                s.label(label)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], c));
            }
        }
        ch.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(PlotSummary {
        samples: rows.len(),
        windows,
        segments: [lam.len(), rear.len()],
        plate,
        title,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_and_missing_values_split_lines() {
        let s = [
            (0, Some(1.0)),
            (1_000, Some(2.0)),
            (6_000, Some(3.0)),  // 5 s after: joined (not more than the gap)
            (11_001, Some(4.0)), // 5.001 s after: new line
            (12_000, None),      // missing: new line after it
            (13_000, Some(f64::NAN)),
            (14_000, Some(5.0)),
        ];
        assert_eq!(
            segments(&s, 5_000),
            vec![
                vec![(0, 1.0), (1_000, 2.0), (6_000, 3.0)],
                vec![(11_001, 4.0)],
                vec![(14_000, 5.0)],
            ]
        );
        assert!(segments(&[], 5_000).is_empty());
    }
}
