//! Evidence plot: upstream lambda and rear O2 voltage of one vehicle over time, with the
//! windows of its TWC / rear-O2 detections shaded (`plumewatch plot`). Drawn with `plotters`
//! (SVG backend).

use std::collections::HashMap;
use std::path::Path;

use datafusion::common::{ParamValues, ScalarValue};
use plotters::prelude::*;

use super::{Lake, output::to_json};

/// What a plot contains.
#[derive(Debug, Clone, PartialEq)]
pub struct PlotSummary {
    pub samples: usize,
    /// (rule id, window start ms, window end ms)
    pub windows: Vec<(String, i64, i64)>,
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

/// Draws the plot of `vin` (samples in `[since, until)`, RFC 3339) to `out` (SVG).
/// Errors when the vehicle has no samples in the period, and before reading anything when
/// `out` does not end in `.svg` (an SVG named `.png` would not open as one).
pub async fn plot(
    dir: &Path,
    vin: &str,
    since: &str,
    until: &str,
    out: &Path,
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
        .with_param_values(ParamValues::Map(p))?;
    let dets = lake.collect(dets).await?;
    let rows = to_json(&samples)?;
    if rows.is_empty() {
        anyhow::bail!("no obd_samples for VIN {vin} in [{since}, {until})");
    }
    let t0 = rows[0]["t"].as_i64().unwrap_or(0);
    let t1 = rows[rows.len() - 1]["t"].as_i64().unwrap_or(t0);
    let secs = |t: i64| (t - t0) as f64 / 1000.0;
    let lam: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((secs(r["t"].as_i64()?), r["upstream_lambda"].as_f64()?)))
        .collect();
    let rear: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((secs(r["t"].as_i64()?), r["rear_o2_v"].as_f64()?)))
        .collect();
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
    let root = SVGBackend::new(out, (1400, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!("VIN {vin}: upstream lambda and rear O2 voltage, shaded = flagged windows"),
        ("sans-serif", 22),
    )?;
    let (top, bottom) = root.split_vertically(380);
    let panels: [(
        &DrawingArea<SVGBackend, plotters::coord::Shift>,
        &str,
        &[(f64, f64)],
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
            .x_desc("seconds since first sample")
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
        ch.draw_series(LineSeries::new(data.iter().copied(), &c))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], c));
        ch.configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(PlotSummary {
        samples: rows.len(),
        windows,
    })
}
