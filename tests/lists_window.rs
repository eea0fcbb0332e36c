//! `rsd-repeat-exceeders` counts failing passes per plate in a sliding window of W days with a
//! window function (issue 12 item 5: the earlier self-join took 25 s and 8 GB on 5 M passes).
//! Checked here against hand-made passes at the window's edges, and against the self-join
//! formulation (the definition in `remote-sensing.md §1.5`, written independently as SQL) on
//! generated passes for several parameter sets.

mod common;

use common::*;

/// `plumewatch ingest --stream rsd --quiet --out TABLES INPUT`.
fn ingest_rsd(tables: &std::path::Path, input: &std::path::Path) {
    ok(&[
        "ingest",
        "--stream",
        "rsd",
        "--quiet",
        "--out",
        tables.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
}

/// `plumewatch list rsd-repeat-exceeders --tables TABLES --format FORMAT --param …`: stdout.
fn exceeders(tables: &std::path::Path, format: &str, params: &[String]) -> String {
    let mut a = vec![
        "list",
        "rsd-repeat-exceeders",
        "--tables",
        tables.to_str().unwrap(),
        "--format",
        format,
    ];
    for p in params {
        a.extend(["--param", p.as_str()]);
    }
    ok(&a)
}

/// A diesel pass failing NO (no_co2_ratio far above the 1500 ppm limit), valid speed and
/// acceleration, at `t_ms`.
fn failing(id: &str, plate: &str, t_ms: i64) -> String {
    format!(
        "{{\"pass_id\":\"{id}\",\"passed_at\":{t_ms},\"site_id\":\"S1\",\"plate\":\"{plate}\",\"plate_color\":\"yellow\",\"fuel\":\"diesel\",\"speed_kmh\":40,\"accel_mps2\":0.3,\"co_co2_ratio\":0.002,\"hc_co2_ratio\":0.0002,\"no_co2_ratio\":0.05}}\n"
    )
}

#[test]
fn window_edges_by_hand() {
    let t = tempfile::tempdir().unwrap();
    let day = 86_400_000i64;
    let t0 = 1_759_276_800_000i64; // 2025-10-01T00:00:00Z (the last pass is in the past)
    let mut nd = String::new();
    // A: two passes 183 days minus 1 ms apart: one window holds both.
    nd += &failing("a1", "苏E9Z981", t0);
    nd += &failing("a2", "苏E9Z981", t0 + 183 * day - 1);
    // B: exactly 183 days apart: (t − 183 d, t] holds one pass each.
    nd += &failing("b1", "苏E9Z982", t0);
    nd += &failing("b2", "苏E9Z982", t0 + 183 * day);
    // C: three passes 100 days apart: at most two in any window.
    nd += &failing("c1", "苏E9Z983", t0);
    nd += &failing("c2", "苏E9Z983", t0 + 100 * day);
    nd += &failing("c3", "苏E9Z983", t0 + 200 * day);
    let input = t.path().join("p.ndjson");
    std::fs::write(&input, nd).unwrap();
    let tables = t.path().join("t");
    ingest_rsd(&tables, &input);
    assert_eq!(
        scalar_i64(
            &tables,
            "SELECT count(*) FROM rsd_passes WHERE verdict = 'fail' AND valid"
        ),
        7
    );
    let out = exceeders(
        &tables,
        "json",
        &["min_failing_passes=2".into(), "window_days=183".into()],
    );
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let got: Vec<(String, i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r["plate"].as_str().unwrap().to_string(),
                r["max_failing_in_window"].as_i64().unwrap(),
                r["failing_passes"].as_i64().unwrap(),
            )
        })
        .collect();
    let mut got = got;
    got.sort();
    assert_eq!(
        got,
        [
            ("苏E9Z981".to_string(), 2, 2),
            ("苏E9Z983".to_string(), 2, 3)
        ]
    );
    // W = 201 days: C's three passes fall in one window.
    let out = exceeders(
        &tables,
        "csv",
        &["min_failing_passes=3".into(), "window_days=201".into()],
    );
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("苏E9Z983"), "{out}");
    // A zero-day window is refused, naming the parameter.
    let o = pw(&[
        "list",
        "rsd-repeat-exceeders",
        "--tables",
        tables.to_str().unwrap(),
        "--param",
        "window_days=0",
    ]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("window_days"));
}

/// The definition as a self-join: for each failing pass a, the distinct failing passes b of
/// the same plate (and pollutant) with a.t − W < b.t ≤ a.t.
const SELF_JOIN: &str = r#"
WITH f AS (
  SELECT plate, plate_color, vin, pass_id, passed_at, CAST(passed_at AS BIGINT) AS t_ms,
         site_id, limit_set, unnest(exceeded) AS pollutant
  FROM rsd_passes
  WHERE verdict = 'fail' AND valid AND plate IS NOT NULL
    AND plate_status IN ('standard', 'nonstandard')
),
w AS (
  SELECT a.plate, a.pass_id, a.pollutant, count(DISTINCT b.pass_id) AS n
  FROM f a JOIN f b ON a.plate = b.plate
   AND b.t_ms <= a.t_ms AND b.t_ms > a.t_ms - {W} * 86400000
   AND (NOT {SAME} OR a.pollutant = b.pollutant)
  GROUP BY a.plate, a.pass_id, a.pollutant
),
hits AS (
  SELECT plate, max(n) AS max_failing_in_window FROM w GROUP BY plate
  HAVING max(n) >= {N}
)
SELECT f.plate, h.max_failing_in_window, count(DISTINCT f.pass_id) AS failing_passes
FROM f JOIN hits h ON f.plate = h.plate
GROUP BY f.plate, h.max_failing_in_window
ORDER BY f.plate
"#;

#[test]
fn same_answer_as_the_self_join_on_generated_passes() {
    let t = tempfile::tempdir().unwrap();
    let input = t.path().join("p.ndjson");
    ok(&[
        "gen",
        "rsd",
        "--count",
        "30000",
        "--seed",
        "5",
        "--out",
        input.to_str().unwrap(),
    ]);
    let tables = t.path().join("t");
    ingest_rsd(&tables, &input);
    let mut compared = 0;
    for (same, n, w) in [
        ("true", 2, 183),
        ("false", 2, 30),
        ("true", 3, 365),
        ("false", 4, 7),
    ] {
        let q = SELF_JOIN
            .replace("{W}", &w.to_string())
            .replace("{SAME}", same)
            .replace("{N}", &n.to_string());
        let want: Vec<(String, String, String)> = rows(&sql(&tables, &q))
            .into_iter()
            .map(|r| {
                (
                    r["plate"].clone().unwrap(),
                    r["max_failing_in_window"].clone().unwrap(),
                    r["failing_passes"].clone().unwrap(),
                )
            })
            .collect();
        let out = exceeders(
            &tables,
            "json",
            &[
                format!("same_pollutant={same}"),
                format!("min_failing_passes={n}"),
                format!("window_days={w}"),
            ],
        );
        let list: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        let mut got: Vec<(String, String, String)> = list
            .iter()
            .map(|r| {
                (
                    r["plate"].as_str().unwrap().to_string(),
                    r["max_failing_in_window"].to_string(),
                    r["failing_passes"].to_string(),
                )
            })
            .collect();
        got.sort();
        assert!(!want.is_empty(), "parameters {same} {n} {w} list nobody");
        assert_eq!(got, want, "same_pollutant={same} N={n} W={w}");
        compared += want.len();
    }
    assert!(compared > 100, "{compared}");
}
