//! The binary end to end: bad input goes to quarantine with a reason naming the field, the
//! rest of the batch is kept, the exit code is 0; lists bind parameters; CSV has a BOM; the
//! demo prints non-empty lists from the bundled fixtures.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use common::*;

#[test]
fn bad_input_is_quarantined_and_the_rest_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let good = |id: &str| {
        format!(
            "{{\"pass_id\":\"{id}\",\"passed_at\":\"2026-10-02T08:00:00+08:00\",\"fuel\":\"diesel\",\"speed_kmh\":40,\"accel_mps2\":0.3,\"co_co2_ratio\":0.002,\"hc_co2_ratio\":0.0002,\"no_co2_ratio\":0.004}}\n"
        )
    };
    let mut nd: Vec<u8> = Vec::new();
    nd.extend(good("g1").bytes());
    nd.extend(b"{\"pass_id\":\"t1\",\"passed_at\":\"2026-10-02T08:00:00Z\",\"speed_kmh\":4\n"); // truncated
    nd.extend(
        b"{\"pass_id\":\"w1\",\"passed_at\":\"2026-10-02T08:00:00Z\",\"speed_kmh\":\"fast\"}\n",
    ); // wrong type
    nd.extend(
        b"{\"pass_id\":\"n1\",\"passed_at\":\"2026-10-02T08:00:00Z\",\"no_co2_ratio\":NaN}\n",
    );
    nd.extend(
        b"{\"pass_id\":\"i1\",\"passed_at\":\"2026-10-02T08:00:00Z\",\"opacity_pct\":Infinity}\n",
    );
    nd.extend(
        b"{\"pass_id\":\"f1\",\"passed_at\":\"2026-10-02T08:00:00Z\",\"fuel\":\"kerosene\"}\n",
    ); // unknown fuel
    nd.extend(b"{\"pass_id\":\"p1\",\"passed_at\":\"2026-10-02T08:00:00Z\",\"plate\":\"\xBE\xA9A12345\"}\n"); // GBK 京
    nd.extend(b"{\"pass_id\":\"m1\",\"speed_kmh\":30}\n"); // required time missing
    nd.extend(good("g2").bytes());
    std::fs::write(t.join("passes.ndjson"), &nd).unwrap();
    std::fs::write(t.join("empty.ndjson"), b"").unwrap();
    std::fs::write(
        t.join("passes.csv"),
        "pass_id,passed_at,fuel,speed_kmh\nc1,1790820000000,petrol,30\nc2,1790820000000,petrol,31,99\nc3,1790820000000,petrol,32\n",
    )
    .unwrap();
    let out = t.join("tables");
    let o = out.to_str().unwrap();
    let s = ok(&[
        "ingest",
        "--stream",
        "rsd",
        "--out",
        o,
        t.join("passes.ndjson").to_str().unwrap(),
        t.join("empty.ndjson").to_str().unwrap(),
    ]);
    // The empty file is no records (it used to be one quarantined "empty input" record).
    assert!(s.contains("records in:   9"), "{s}");
    assert!(s.contains("quarantined:  7"), "{s}");
    let s2 = ok(&[
        "ingest",
        "--stream",
        "rsd",
        "--format",
        "csv",
        "--out",
        o,
        t.join("passes.csv").to_str().unwrap(),
    ]);
    assert!(s2.contains("quarantined:  1"), "{s2}");

    let q = rows(&sql(
        &out,
        "SELECT field, reason, source_line, raw FROM quarantine ORDER BY source_file, source_line",
    ));
    let reasons: Vec<(Option<String>, String)> = q
        .iter()
        .map(|r| (r["field"].clone(), r["reason"].clone().unwrap()))
        .collect();
    let find = |needle: &str| {
        reasons
            .iter()
            .find(|(_, r)| r.contains(needle))
            .unwrap_or_else(|| panic!("no '{needle}' in {reasons:#?}"))
    };
    assert!(find("invalid JSON").0.is_none());
    assert_eq!(find("expected a number").0.as_deref(), Some("speed_kmh"));
    assert_eq!(find("non-finite").0.as_deref(), Some("no_co2_ratio"));
    assert!(
        reasons
            .iter()
            .any(|(f, r)| f.as_deref() == Some("opacity_pct") && r.contains("non-finite")),
        "{reasons:#?}"
    );
    assert_eq!(find("unknown fuel 'kerosene'").0.as_deref(), Some("fuel"));
    assert_eq!(find("not valid UTF-8").0.as_deref(), Some("plate"));
    assert_eq!(
        find("required field is missing").0.as_deref(),
        Some("passed_at")
    );
    assert!(find("row has 5 fields, header has 4").0.is_none());
    // The rest of each batch is kept: g1, g2, c1, c3.
    let kept = rows(&sql(
        &out,
        "SELECT pass_id FROM rsd_passes ORDER BY pass_id",
    ));
    let ids: Vec<_> = kept.iter().map(|r| r["pass_id"].clone().unwrap()).collect();
    assert_eq!(ids, ["c1", "c3", "g1", "g2"]);
    // 9 + 3 records in, 4 + 8 out.
    assert_eq!(scalar_i64(&out, "SELECT count(*) FROM quarantine"), 8);
}

/// Independent repeat-exceeder computation: per plate, the largest number of valid failing
/// passes (same pollutant) within any window of `days` ending at a failing pass.
fn repeat_by_hand(dir: &Path, n: usize, days: i64) -> BTreeMap<String, usize> {
    let r = rows(&sql(
        dir,
        "SELECT plate, CAST(passed_at AS BIGINT) AS t, array_to_string(exceeded, ',') AS ex FROM rsd_passes \
         WHERE verdict = 'fail' AND valid AND plate IS NOT NULL",
    ));
    let mut by: HashMap<(String, String), Vec<i64>> = HashMap::new();
    for x in &r {
        for p in x["ex"].as_deref().unwrap().split(',') {
            by.entry((x["plate"].clone().unwrap(), p.to_string()))
                .or_default()
                .push(x["t"].as_deref().unwrap().parse().unwrap());
        }
    }
    let mut out = BTreeMap::new();
    for ((plate, _), mut ts) in by {
        ts.sort();
        let w = days * 86_400_000;
        let best = (0..ts.len())
            .map(|i| ts[..=i].iter().filter(|&&t| t > ts[i] - w).count())
            .max()
            .unwrap();
        let e = out.entry(plate).or_insert(0);
        *e = (*e).max(best);
    }
    out.retain(|_, v| *v >= n);
    out
}

#[test]
fn demo_lists_bind_parameters_and_match_hand_computation() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = out.to_str().unwrap();
    let text = ok(&["demo", "--out", o]);
    assert!(
        text.contains("SYNTHETIC") && text.contains("CONOX"),
        "{text}"
    );

    for (n, days) in [(2usize, 183i64), (3, 10)] {
        let got = ok(&[
            "list",
            "rsd-repeat-exceeders",
            "--tables",
            o,
            "--format",
            "json",
            "--param",
            &format!("min_failing_passes={n}"),
            "--param",
            &format!("window_days={days}"),
        ]);
        let v: Vec<serde_json::Value> = serde_json::from_str(&got).unwrap();
        let listed: BTreeMap<String, usize> = v
            .iter()
            .map(|r| {
                (
                    r["plate"].as_str().unwrap().to_string(),
                    r["max_failing_in_window"].as_i64().unwrap() as usize,
                )
            })
            .collect();
        let hand = repeat_by_hand(&out, n, days);
        assert!(!hand.is_empty());
        assert_eq!(listed, hand, "n={n} days={days}");
    }

    // China III: every sighting (pass or read) of a registered 国III-or-older diesel H/Q truck.
    let fleet = std::fs::read_to_string(repo("fixtures/demo/synthetic_vehicles.csv")).unwrap();
    let mut banned = BTreeSet::new();
    for line in fleet.lines().skip(1) {
        let f: Vec<_> = line.split(',').collect();
        if f[3] == "diesel"
            && ["国III", "国II", "国I"].contains(&f[4])
            && (f[5].starts_with('H') || f[5].starts_with('Q'))
        {
            banned.insert(f[0].to_string());
        }
    }
    assert!(!banned.is_empty());
    let count_in = |file: &str| -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for l in std::fs::read_to_string(repo(file)).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            if let Some(p) = v["plate"].as_str().filter(|p| banned.contains(*p)) {
                *m.entry(p.to_string()).or_insert(0) += 1;
            }
        }
        m
    };
    let mut expect = count_in("fixtures/demo/synthetic_passes.ndjson");
    for (k, v) in count_in("fixtures/demo/synthetic_plate_reads.ndjson") {
        *expect.entry(k).or_insert(0) += v;
    }
    let got = ok(&["list", "china3-diesel", "--tables", o, "--format", "json"]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&got).unwrap();
    let listed: BTreeMap<String, i64> = v
        .iter()
        .map(|r| {
            (
                r["plate"].as_str().unwrap().to_string(),
                r["sightings"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, expect);

    // CSV output starts with a UTF-8 BOM and carries Chinese plates.
    let o2 = pw(&["list", "china3-diesel", "--tables", o, "--format", "csv"]);
    assert!(o2.stdout.starts_with(b"\xEF\xBB\xBFplate,"));
    assert!(
        String::from_utf8(o2.stdout[3..].to_vec())
            .unwrap()
            .lines()
            .count()
            == expect.len() + 1
    );

    // Parameters are bound, never spliced: SQL in a value is just a bad value.
    let bad = pw(&[
        "list",
        "china3-diesel",
        "--tables",
        o,
        "--param",
        "since=2026-01-01' OR '1'='1",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("parameter since"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let unknown = pw(&["list", "china3-diesel", "--tables", o, "--param", "n=2"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no parameter 'n'"));
    // A period with no sightings gives an empty list.
    let none = ok(&[
        "list",
        "china3-diesel",
        "--tables",
        o,
        "--format",
        "json",
        "--param",
        "until=2020-01-01",
    ]);
    assert_eq!(
        serde_json::from_str::<Vec<serde_json::Value>>(&none)
            .unwrap()
            .len(),
        0
    );
}

/// A plate lookup reads only the row groups whose Bloom filter on `plate` may hold the plate
/// (`sink::parquet::BLOOM_COLUMNS`): over the demo's passes (one row group per day file), the
/// plan's `row_groups_pruned_bloom_filter` metric shows the row groups of the days the plate
/// was not seen skipped, and an unknown plate skips the row groups but for about 1 % false
/// positives; the count is unchanged.
#[test]
fn plate_lookup_skips_row_groups_by_bloom_filter() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    ingest_demo(&t);
    let tables = t.to_str().unwrap();
    // The plate seen on the fewest days, and the number of day files (row groups) holding it.
    let plate_sql = "SELECT plate, count(*) AS n, count(DISTINCT date) AS days FROM rsd_passes \
        WHERE plate IS NOT NULL GROUP BY plate ORDER BY days, plate LIMIT 1";
    let top = ok(&["query", "--tables", tables, "--format", "csv", plate_sql]);
    let line = top
        .lines()
        .nth(1)
        .unwrap()
        .trim_start_matches('\u{feff}')
        .to_string();
    let f: Vec<&str> = line.split(',').collect();
    let (plate, n, days) = (f[0], f[1], f[2].parse::<u64>().unwrap());
    let groups: u64 = ok(&[
        "query",
        "--tables",
        tables,
        "--format",
        "csv",
        "SELECT count(DISTINCT date) FROM rsd_passes",
    ])
    .lines()
    .nth(1)
    .unwrap()
    .trim()
    .parse()
    .unwrap();
    assert!(groups > days, "{groups} day files, plate on {days} days");
    // `row_groups_pruned_bloom_filter=<total> total → <matched> matched` in the plan.
    let bloom = |p: &str| -> (u64, u64, String) {
        let sql =
            format!("EXPLAIN ANALYZE SELECT count(*) AS n FROM rsd_passes WHERE plate = '{p}'");
        let plan = ok(&["query", "--tables", tables, "--format", "csv", &sql]);
        let i = plan
            .find("row_groups_pruned_bloom_filter=")
            .unwrap_or_else(|| panic!("no bloom filter metric in {plan}"));
        let rest = &plan[i + "row_groups_pruned_bloom_filter=".len()..];
        let nums: Vec<u64> = rest
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .take(2)
            .map(|s| s.parse().unwrap())
            .collect();
        (nums[0], nums[1], plan)
    };
    let (total, matched, plan) = bloom(plate);
    assert_eq!(total, groups, "{plan}");
    assert_eq!(matched, days, "{plan}");
    // Plates never seen: every row group skipped but for the filters' false positives
    // (BLOOM_FPP, 1 %: here 1 of the 120 row-group checks, for 京Z00000).
    let mut false_positives = 0;
    for p in ["京Z00000", "京Z00001", "沪A99999", "粤B12345"] {
        let (total, matched, plan) = bloom(p);
        assert_eq!(total, groups, "{plan}");
        false_positives += matched;
    }
    assert!(false_positives <= 2, "{false_positives} of {}", 4 * groups);
    // The answer itself is unchanged by the skipping.
    let q = format!("SELECT count(*) AS n FROM rsd_passes WHERE plate = '{plate}'");
    let c = ok(&["query", "--tables", tables, "--format", "csv", &q]);
    assert_eq!(c.lines().nth(1).unwrap().trim(), n, "{c}");
}

/// `--query-memory` bounds what a list's operators may hold: over the demo tables the
/// repeat-exceeders list (a sort for its window) answers within the default 512 MiB and is
/// refused with DataFusion's "Resources exhausted" error within 64 KiB, never cut short.
#[test]
fn query_memory_bounds_list_operators() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    ingest_demo(&t);
    let tables = t.to_str().unwrap();
    let all = ok(&[
        "list",
        "rsd-repeat-exceeders",
        "--tables",
        tables,
        "--format",
        "csv",
    ]);
    assert!(all.lines().count() > 1, "{all}");
    let o = pw(&[
        "list",
        "rsd-repeat-exceeders",
        "--query-memory",
        "64K",
        "--tables",
        tables,
        "--format",
        "csv",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("Resources exhausted"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// `plumewatch hash-secret | head -1` (the reader closes the pipe before the second line):
/// the command ends quietly with exit 0 instead of panicking on EPIPE. Its first line is
/// written before the pipe closes; the second write meets the closed pipe.
#[test]
fn output_to_a_closed_pipe_ends_quietly() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(env!("CARGO_BIN_EXE_plumewatch"))
        .arg("hash-secret")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end of stdout before the command writes anything.
    drop(child.stdout.take());
    child.stdin.take().unwrap().write_all(b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

/// The demo's remote-OBD part (issue 13): a SYNTHETIC labelled gas-truck fleet generated at
/// demo time and a REAL healthy Torque log. `gas-twc-suspects` lists exactly the fleet's
/// faulty trucks (from the generator's labels), the real log stays unflagged, the printed
/// labels-vs-detectors counts match the tables, the first suspect's evidence plot is an SVG
/// with its samples drawn, and `serve.toml` is a valid loopback `[serve]` config whose
/// printed secrets match its hashes.
#[test]
fn demo_gas_fleet_matches_labels_real_log_unflagged_plot_and_serve_config() {
    use plumewatch::demo::{FLEET_SEED, FLEET_VEHICLES, REAL_LOG_VIN};
    use plumewatch::synth::obd_fleet::{FleetClass, class_for_index};

    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("demo");
    let o = out.to_str().unwrap();
    let text = ok(&["demo", "--out", o]);

    // The generator's labels, as written under inputs/ (vin, class, expected rules).
    let labels =
        std::fs::read_to_string(out.join("inputs/synthetic_gas_fleet.labels.csv")).unwrap();
    let mut expect: BTreeMap<String, (String, BTreeSet<String>)> = BTreeMap::new();
    for l in labels.lines().skip(1) {
        let c: Vec<_> = l.split(',').collect();
        let rules = c[2]
            .split(';')
            .filter(|x| !x.is_empty())
            .map(str::to_string)
            .collect();
        expect.insert(c[0].to_string(), (c[1].to_string(), rules));
    }
    assert_eq!(expect.len(), FLEET_VEHICLES);
    let faulty: BTreeSet<String> = expect
        .iter()
        .filter(|(_, (_, r))| !r.is_empty())
        .map(|(v, _)| v.clone())
        .collect();
    // Independent check of the class mix (`class_for_index`: splitmix64(seed ^ i·0x9E37…) mod
    // 10), recomputed outside Rust (Python) for seed 439: vehicles 0, 1, 4, 6, 7 are faulty
    // (catalyst removed, slow sensor, square-wave simulator, missing sensor, flat simulator),
    // one of each fault class; 2, 3, 5, 8, 9 are healthy.
    let by_hand: BTreeSet<String> = [0usize, 1, 4, 6, 7]
        .iter()
        .map(|i| plumewatch::synth::obd::vin_for(*i, FLEET_SEED))
        .collect();
    assert_eq!(faulty, by_hand);
    let classes: BTreeSet<&str> = expect
        .values()
        .filter(|(_, r)| !r.is_empty())
        .map(|(c, _)| c.as_str())
        .collect();
    let fault_classes: BTreeSet<&str> = FleetClass::ALL[1..].iter().map(|c| c.name()).collect();
    assert_eq!(classes, fault_classes);
    for (i, (vin, (class, _))) in expect.iter().enumerate() {
        assert_eq!(class, class_for_index(i, FLEET_SEED).name(), "{vin}");
    }

    // The list: exactly the faulty trucks, each with its plate and its own rule only.
    let list = |extra: &[&str]| -> Vec<serde_json::Value> {
        let mut args = vec![
            "list",
            "gas-twc-suspects",
            "--tables",
            o,
            "--format",
            "json",
        ];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&args)).unwrap()
    };
    let rows = list(&[]);
    let listed: BTreeSet<String> = rows
        .iter()
        .map(|r| r["vin"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, faulty);
    for r in &rows {
        let vin = r["vin"].as_str().unwrap();
        assert!(r["plate"].as_str().is_some_and(|p| !p.is_empty()), "{r}");
        assert_eq!(r["status"], "suspect");
        let (_, rules) = &expect[vin];
        assert!(rules.contains(r["strongest_rule"].as_str().unwrap()), "{r}");
        for rule in [
            "rear_o2_flatline",
            "rear_o2_periodic",
            "rear_o2_mirrors_front",
            "dfco_no_lean",
            "rear_o2_missing",
        ] {
            assert_eq!(
                r[rule].as_i64().unwrap() > 0,
                rules.contains(rule),
                "{vin} {rule}: {r}"
            );
        }
    }

    // The real healthy log: all its samples stored, no detection, in no list even when the
    // list takes every vehicle (the registry says petrol car).
    let vin_q = format!("SELECT count(*) FROM obd_samples WHERE vin = '{REAL_LOG_VIN}'");
    assert_eq!(scalar_i64(&out, &vin_q), 2662);
    let det_q = format!("SELECT count(*) FROM detections WHERE vin = '{REAL_LOG_VIN}'");
    assert_eq!(scalar_i64(&out, &det_q), 0);
    let every = list(&["--param", "all_vehicles=true"]);
    assert!(every.iter().all(|r| r["vin"] != REAL_LOG_VIN), "{every:?}");
    assert!(text.contains(REAL_LOG_VIN), "{text}");

    // Labels vs detectors, counted here from the tables: a vehicle agrees when exactly its
    // expected rules fired (none for a healthy one).
    let fired = common::rows(&sql(
        &out,
        "SELECT DISTINCT vin, rule_id FROM detections WHERE vin IS NOT NULL",
    ));
    let mut got: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in &fired {
        got.entry(r["vin"].clone().unwrap())
            .or_default()
            .insert(r["rule_id"].clone().unwrap());
    }
    let agree =
        |vin: &str, want: &BTreeSet<String>| got.get(vin).cloned().unwrap_or_default() == *want;
    let faulty_ok = faulty.iter().filter(|v| agree(v, &expect[*v].1)).count();
    let healthy_ok = expect
        .iter()
        .filter(|(v, (_, r))| r.is_empty() && agree(v, r))
        .count();
    let real_ok = usize::from(agree(REAL_LOG_VIN, &BTreeSet::new()));
    assert_eq!((faulty_ok, healthy_ok, real_ok), (5, 5, 1));
    let line = format!(
        "labels vs detectors: {} of 11 agree (synthetic {} of 10: {faulty_ok} of 5 faulty caught with their own rule only, {healthy_ok} of 5 healthy with no detection; real healthy log {real_ok} of 1 with no detection)",
        faulty_ok + healthy_ok + real_ok,
        faulty_ok + healthy_ok
    );
    assert!(text.contains(&line), "{line}\n{text}");
    assert_eq!(text.matches("| agree ").count(), 11, "{text}");

    // The evidence plot of the first suspect whose rear O2 sensor is there (a missing sensor
    // would leave its panel empty): an SVG with the vehicle's samples drawn.
    let first = rows
        .iter()
        .find(|r| r["strongest_rule"].as_str() != Some("rear_o2_missing"))
        .unwrap()["vin"]
        .as_str()
        .unwrap();
    let svg = out.join("evidence").join(format!("{first}.svg"));
    assert!(text.contains(&svg.display().to_string()), "{text}");
    let n = scalar_i64(
        &out,
        &format!("SELECT count(*) FROM obd_samples WHERE vin = '{first}'"),
    );
    assert!(n > 1700, "{n}");
    assert!(
        text.contains(&format!("{first}.svg ({n} samples")),
        "{text}"
    );
    let s = std::fs::read_to_string(&svg).unwrap();
    assert!(
        s.starts_with("<svg") && s.trim_end().ends_with("</svg>"),
        "{s}"
    );
    assert!(s.contains("upstream lambda") && s.contains(first), "{s}");
    // Data lines are the polylines of more than 2 points (axis ticks have 2): the suspect's
    // upstream λ and rear O2 voltage (about 1,800 samples each, lines broken at gaps); each point
    // inside the 1400×800 canvas.
    let mut points = 0;
    for p in s.split("<polyline").skip(1) {
        let pts = p
            .split("points=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let xy: Vec<(f64, f64)> = pts
            .split_whitespace()
            .map(|q| {
                let (x, y) = q.split_once(',').unwrap();
                (x.parse().unwrap(), y.parse().unwrap())
            })
            .collect();
        assert!(
            xy.iter()
                .all(|&(x, y)| (0.0..=1400.0).contains(&x) && (0.0..=800.0).contains(&y))
        );
        if xy.len() > 2 {
            points += xy.len();
        }
    }
    assert!(points >= 3000, "{points} points plotted");

    // serve.toml: a [serve] config on loopback whose printed secrets are the hashed ones.
    use plumewatch::serve::config::{Role, ServeFile};
    let toml_text = std::fs::read_to_string(out.join("serve.toml")).unwrap();
    let f: ServeFile = toml::from_str(&toml_text).unwrap();
    f.serve.check().unwrap();
    let ip = |a: &str| a.parse::<std::net::SocketAddr>().unwrap().ip();
    assert!(ip(&f.serve.listen).is_loopback());
    assert!(ip(f.serve.pg_listen.as_deref().unwrap()).is_loopback());
    let roles: Vec<Role> = f.serve.users.iter().map(|u| u.role).collect();
    assert_eq!(roles, [Role::Police, Role::Analyst, Role::Patrol]);
    assert_eq!(f.serve.users[2].sites, ["C130102001"]);
    let token = text
        .split("Authorization: Bearer ")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    assert_eq!(
        f.serve.users[0].token_sha256.as_deref(),
        Some(
            plumewatch::serve::auth::hash_secret(token)
                .unwrap()
                .1
                .as_str()
        )
    );
    assert!(toml_text.contains("DEMO-ONLY SECRETS") && toml_text.contains(token));
    assert!(text.contains(&format!("--config {}", out.join("serve.toml").display())));
    assert!(
        text.contains("psql -h 127.0.0.1 -p 5433 -U demo-analyst"),
        "{text}"
    );
}
