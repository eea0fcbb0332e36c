//! Field cases of issue 8, kinds 2 (plates) and 4 (plate colour and the registry join), end to
//! end through the binary: `plate-placeholder-and-colour-prefix`, `plate-nul-padding`,
//! `plate-colour-unknown-plate-only-join` and the plate half of `plate-gbk-mojibake` (inputs in
//! `fixtures/field-cases/`), plus our own examples of each kind.

mod common;

use std::collections::HashMap;
use std::path::Path;

use common::*;

type Row = HashMap<String, Option<String>>;

fn fixture(slug: &str, file: &str) -> String {
    repo(&format!("fixtures/field-cases/{slug}/{file}"))
        .to_str()
        .unwrap()
        .to_string()
}

fn ingest(out: &Path, stream: &str, extra: &[&str], input: &str) -> String {
    let mut args = vec!["ingest", "--stream", stream, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(input);
    ok(&args)
}

fn ingest_ok_or_all_rejected_at(out: &Path, stream: &str, extra: &[&str], input: &str) -> String {
    let mut args = vec!["ingest", "--stream", stream, "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    args.push(input);
    ingest_ok_or_all_rejected(&args)
}

fn query(out: &Path, q: &str) -> Vec<Row> {
    rows(&sql(out, q))
}

fn by_key(rows: Vec<Row>, key: &str) -> HashMap<String, Row> {
    rows.into_iter()
        .map(|r| (r[key].clone().unwrap(), r))
        .collect()
}

fn get<'a>(r: &'a Row, col: &str) -> Option<&'a str> {
    r[col].as_deref()
}

/// CSV output of a list (header + rows, BOM removed).
fn list_csv(out: &Path, name: &str) -> Vec<Vec<String>> {
    let s = ok(&[
        "list",
        name,
        "--tables",
        out.to_str().unwrap(),
        "--format",
        "csv",
    ]);
    let s = s.trim_start_matches('\u{feff}');
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(s.as_bytes());
    rdr.records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

fn col(table: &[Vec<String>], row: usize, name: &str) -> String {
    let i = table[0].iter().position(|h| h == name).unwrap();
    table[row][i].clone()
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

/// Runs `run` over one plate-read file with the entrance `site`; returns the alert lines.
fn run_reads(tables: &Path, reads: &str, site: &str) -> Vec<serde_json::Value> {
    let dir = tables.parent().unwrap();
    let cfg = write(
        dir,
        "run.toml",
        &format!(
            "tables = {t:?}\ninstance_id = \"plates-case\"\nidle_exit_ms = 1500\n\
             [[files]]\nstream = \"plates\"\npath = {reads:?}\n\
             [alerts]\nkinds = [\"entrance_alert\", \"china3_diesel_sighting\"]\n\
             [sites]\nurban_entrances = [{site:?}]\n",
            t = tables.to_str().unwrap()
        ),
    );
    let s = ok(&[
        "run",
        "--config",
        &cfg,
        "--tables",
        tables.to_str().unwrap(),
        "--alerts-ndjson",
        "-",
    ]);
    s.lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// ---- plate-placeholder-and-colour-prefix ----------------------------------------------

#[test]
fn placeholders_are_no_plate_and_colour_prefix_is_stripped() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    ingest(
        &t,
        "rsd",
        &[],
        &fixture("plate-placeholder-and-colour-prefix", "passes.ndjson"),
    );
    let r = by_key(
        query(
            &t,
            "SELECT pass_id, plate, plate_status, plate_color, verdict, plate_raw, plate_class, \
             array_to_string(flags, ',') AS flags FROM rsd_passes ORDER BY 1",
        ),
        "pass_id",
    );
    assert_eq!(r.len(), 8);
    for (id, raw) in [
        ("n1", "无车牌"),
        ("n2", "无车牌"),
        ("n3", "未识别"),
        ("n4", "无牌"),
        ("n5", "..."),
        ("n6", ""),
    ] {
        let p = &r[id];
        assert_eq!(get(p, "plate"), None, "{id}");
        assert_eq!(get(p, "plate_status"), Some("no_plate"), "{id}");
        assert_eq!(get(p, "plate_raw"), Some(raw), "{id}");
        assert_eq!(get(p, "plate_class"), None, "{id}");
        assert_eq!(get(p, "verdict"), Some("fail"), "{id}");
    }
    let n7 = &r["n7"];
    assert_eq!(get(n7, "plate"), Some("苏E9Z997"));
    assert_eq!(get(n7, "plate_color"), Some("blue"));
    assert_eq!(get(n7, "plate_status"), Some("standard"));
    assert_eq!(get(n7, "plate_class"), Some("ordinary"));
    assert_eq!(get(n7, "plate_raw"), Some("蓝苏E9Z997"));
    assert!(get(n7, "flags").unwrap().contains("colour_prefix_stripped"));
    assert_eq!(get(&r["n8"], "plate"), Some("苏E9Z997"));

    let l = list_csv(&t, "rsd-repeat-exceeders");
    assert_eq!(l.len(), 2, "exactly one row: {l:?}");
    assert_eq!(col(&l, 1, "plate"), "苏E9Z997");
    assert_eq!(col(&l, 1, "failing_passes"), "2");
    assert_eq!(col(&l, 1, "pollutants"), "co");

    // The 无车牌 read at the entrance raises no alert; our own reads: another placeholder
    // (no alert) and the listed plate with a colour prefix (alert, plate normalised).
    let reads = std::fs::read_to_string(fixture(
        "plate-placeholder-and-colour-prefix",
        "read.ndjson",
    ))
    .unwrap();
    let own = concat!(
        "{\"read_id\":\"q2\",\"read_at\":\"2025-11-09T01:00:01Z\",\"site_id\":\"C110119001\",\"plate\":\"未识别\"}\n",
        "{\"read_id\":\"q3\",\"read_at\":\"2025-11-09T01:00:02Z\",\"site_id\":\"C110119001\",\"plate\":\"蓝 苏E9Z997\"}\n",
    );
    let only_fixture = write(tmp.path(), "q1.ndjson", &reads);
    let alerts = run_reads(&t, &only_fixture, "C110119001");
    assert!(alerts.is_empty(), "{alerts:?}");
    let both = write(
        tmp.path(),
        "q123.ndjson",
        &format!("{}\n{own}", reads.trim_end()),
    );
    let t2 = tmp.path().join("tables2");
    ingest(
        &t2,
        "rsd",
        &[],
        &fixture("plate-placeholder-and-colour-prefix", "passes.ndjson"),
    );
    let alerts = run_reads(&t2, &both, "C110119001");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "entrance_alert");
    assert_eq!(alerts[0]["plate"], "苏E9Z997");
    assert_eq!(alerts[0]["source_key"], "q3");
    // The placeholder reads are stored as no_plate.
    let q = by_key(
        query(
            &t2,
            "SELECT read_id, plate, plate_status, plate_raw FROM plate_reads",
        ),
        "read_id",
    );
    assert_eq!(get(&q["q1"], "plate_status"), Some("no_plate"));
    assert_eq!(get(&q["q1"], "plate_raw"), Some("无车牌"));
    assert_eq!(get(&q["q2"], "plate"), None);
    assert_eq!(get(&q["q3"], "plate"), Some("苏E9Z997"));
}

/// Own examples: placeholder words a mapping declares (`plate_placeholders`), the mapping's
/// missing tokens on the plate field, other default forms (all zeros, dashes, `未知`), and a
/// colour prefix that disagrees with the colour column.
#[test]
fn mapping_placeholders_and_prefix_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    let mapping = write(
        tmp.path(),
        "m.toml",
        "[mapping]\nname = \"own\"\nmissing = [\"-\", \"NO DATA\"]\n\
         plate_placeholders = [\"车牌不清\", \"NOPLATE X\"]\n\
         [fields.pass_id]\nsource = \"id\"\n[fields.passed_at]\nsource = \"t\"\n\
         [fields.plate]\nsource = \"hphm\"\n[fields.plate_color]\nsource = \"cpys\"\n\
         values = { \"1\" = \"blue\", \"2\" = \"yellow\", \"5\" = \"green\", \"6\" = \"yellow_green\" }\n\
         [fields.fuel]\nsource = \"fuel\"\n[fields.co_co2_ratio]\nsource = \"co\"\n\
         [fields.speed_kmh]\nsource = \"v\"\n[fields.accel_mps2]\nsource = \"a\"\n",
    );
    let csv = write(
        tmp.path(),
        "p.csv",
        "id,t,hphm,cpys,fuel,co,v,a\n\
         m1,1762567200000,车牌不清,,petrol,0.5,40,0.2\n\
         m2,1762567200000,noplate x,,petrol,0.5,40,0.2\n\
         m3,1762567200000,NO DATA,,petrol,0.5,40,0.2\n\
         m4,1762567200000,0000000,,petrol,0.5,40,0.2\n\
         m5,1762567200000,未知,,petrol,0.5,40,0.2\n\
         m6,1762567200000,黄牌冀B1234挂,1,petrol,0.5,40,0.2\n\
         m7,1762567200000,粤BD12345,5,petrol,0.5,40,0.2\n\
         m8,1762567200000,京A12345,9,petrol,0.5,40,0.2\n",
    );
    ingest(&t, "rsd", &["--format", "csv", "--mapping", &mapping], &csv);
    let r = by_key(
        query(
            &t,
            "SELECT pass_id, plate, plate_status, plate_raw, plate_color, plate_color_raw, plate_class, \
             array_to_string(flags, ',') AS flags FROM rsd_passes",
        ),
        "pass_id",
    );
    for (id, raw) in [
        ("m1", "车牌不清"),
        ("m2", "noplate x"),
        ("m3", "NO DATA"),
        ("m4", "0000000"),
        ("m5", "未知"),
    ] {
        assert_eq!(get(&r[id], "plate_status"), Some("no_plate"), "{id}");
        assert_eq!(get(&r[id], "plate"), None, "{id}");
        assert_eq!(get(&r[id], "plate_raw"), Some(raw), "{id}");
    }
    // Prefix 黄 (yellow) vs the colour column 1 = blue: the column wins, the conflict is flagged.
    let m6 = &r["m6"];
    assert_eq!(get(m6, "plate"), Some("冀B1234挂"));
    assert_eq!(get(m6, "plate_color"), Some("blue"));
    assert_eq!(get(m6, "plate_class"), Some("trailer"));
    assert_eq!(
        get(m6, "flags"),
        Some("colour_prefix_stripped,plate_colour_conflict,hc_ratio_missing_as_zero")
    );
    // Vendor code 5 = green on an 8-character plate: consistent. Unmapped code 9: kept, flagged.
    assert_eq!(get(&r["m7"], "plate_color"), Some("green"));
    assert_eq!(get(&r["m7"], "plate_class"), Some("new_energy"));
    assert!(!get(&r["m7"], "flags").unwrap().contains("mismatch"));
    assert_eq!(get(&r["m8"], "plate_color"), None);
    assert_eq!(get(&r["m8"], "plate_color_raw"), Some("9"));
    assert!(
        get(&r["m8"], "flags")
            .unwrap()
            .contains("plate_color_unknown")
    );
    // Five failing no-plate passes, yet the repeat list is empty.
    let l = list_csv(&t, "rsd-repeat-exceeders");
    assert!(l.len() <= 1, "no data row: {l:?}");
}

/// Own examples of special plate classes, stored on every stream.
#[test]
fn plate_classes_are_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    let plates = [
        ("c1", "使014578", "nonstandard", "embassy"),
        ("c2", "沪A1234领", "nonstandard", "consulate"),
        ("c3", "京A·1234警", "standard", "police"),
        ("c4", "京A1234学", "standard", "coach"),
        ("c5", "粤Z·1234港", "standard", "hk_macau"),
        ("c6", "粤Z1234澳", "standard", "hk_macau"),
        ("c7", "京X1234应急", "nonstandard", "emergency"),
        ("c8", "VA·12345", "nonstandard", "military"),
        ("c9", "京AF12345", "standard", "new_energy"),
    ];
    let mut nd = String::new();
    for (id, p, _, _) in plates {
        nd.push_str(&format!(
            "{{\"read_id\":\"{id}\",\"read_at\":\"2025-11-08T02:00:00Z\",\"plate\":\"{p}\"}}\n"
        ));
    }
    ingest(&t, "plates", &[], &write(tmp.path(), "r.ndjson", &nd));
    let r = by_key(
        query(
            &t,
            "SELECT read_id, plate, plate_status, plate_class FROM plate_reads",
        ),
        "read_id",
    );
    for (id, p, status, class) in plates {
        let want = p.replace('·', "");
        assert_eq!(get(&r[id], "plate"), Some(want.as_str()), "{id}");
        assert_eq!(get(&r[id], "plate_status"), Some(status), "{id}");
        assert_eq!(get(&r[id], "plate_class"), Some(class), "{id}");
    }
}

// ---- plate-nul-padding -----------------------------------------------------------------

#[test]
fn nul_fill_is_stripped_inner_nul_and_lone_surrogates_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    ingest(
        &t,
        "vehicles",
        &[],
        &fixture("plate-nul-padding", "registry.ndjson"),
    );
    let s = ingest(
        &t,
        "plates",
        &[],
        &fixture("plate-nul-padding", "reads.ndjson"),
    );
    assert!(s.contains("records in:   5"), "{s}");
    assert!(s.contains("quarantined:  3"), "{s}");
    let r = by_key(
        query(
            &t,
            "SELECT read_id, plate_status, vin, encode(CAST(plate AS BYTEA),'hex') AS plate_hex, \
             plate_raw, array_to_string(flags, ',') AS flags FROM plate_reads",
        ),
        "read_id",
    );
    assert_eq!(r.len(), 2);
    let r1 = &r["r1"];
    assert_eq!(get(r1, "plate_status"), Some("standard"));
    assert_eq!(get(r1, "vin"), Some("LFWSRXSJ9N1999902"));
    assert_eq!(get(r1, "plate_hex"), Some("e4baac413132333435"));
    assert_eq!(get(r1, "plate_raw"), Some("京A12345\\u0000\\u0000\\u0000"));
    assert_eq!(get(r1, "flags"), Some("plate_control_stripped"));
    let r5 = &r["r5"];
    assert_eq!(get(r5, "plate_status"), Some("unrecognised"));
    assert_eq!(get(r5, "vin"), None);
    assert_eq!(get(r5, "plate_hex"), Some("e4baac413132333435f09f9a97"));

    let q = query(
        &t,
        "SELECT source_line, field, reason FROM quarantine ORDER BY source_line",
    );
    assert_eq!(q.len(), 3);
    assert_eq!(get(&q[0], "source_line"), Some("2"));
    assert_eq!(get(&q[0], "field"), Some("plate"));
    assert!(
        get(&q[0], "reason")
            .unwrap()
            .contains("lone surrogate escape \\ud800"),
        "{q:?}"
    );
    assert_eq!(get(&q[1], "field"), Some("plate"));
    assert!(get(&q[1], "reason").unwrap().contains("\\udc00"), "{q:?}");
    assert_eq!(get(&q[2], "source_line"), Some("4"));
    assert_eq!(get(&q[2], "field"), Some("plate"));
    assert!(
        get(&q[2], "reason")
            .unwrap()
            .contains("control character U+0000"),
        "{q:?}"
    );

    // No 0x00 byte in any CSV output.
    for q in [
        "SELECT read_id, plate FROM plate_reads",
        "SELECT * FROM plate_reads",
        "SELECT * FROM vehicles",
    ] {
        let s = ok(&[
            "query",
            "--tables",
            t.to_str().unwrap(),
            "--format",
            "csv",
            q,
        ]);
        assert_eq!(s.bytes().filter(|b| *b == 0).count(), 0, "{q}");
    }
    let l = list_csv(&t, "china3-diesel");
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(col(&l, 1, "plate"), "京A12345");
    assert_eq!(col(&l, 1, "sightings"), "1");
    assert_eq!(col(&l, 1, "sites"), "C110119001");
}

// ---- plate-colour-unknown-plate-only-join -----------------------------------------------

#[test]
fn unknown_or_conflicting_colour_never_joins() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    let slug = "plate-colour-unknown-plate-only-join";
    ingest(&t, "vehicles", &[], &fixture(slug, "registry.ndjson"));
    ingest(&t, "plates", &[], &fixture(slug, "reads.ndjson"));
    let r = by_key(
        query(
            &t,
            "SELECT read_id, plate, plate_color, plate_color_raw, plate_status, vin, \
             array_to_string(flags, ',') AS flags FROM plate_reads",
        ),
        "read_id",
    );
    for id in ["r1", "r2"] {
        assert_eq!(get(&r[id], "vin"), None, "{id}");
        assert_eq!(get(&r[id], "plate_color"), Some("green"), "{id}");
        assert_eq!(
            get(&r[id], "plate_color_raw"),
            Some("gradient_green"),
            "{id}"
        );
        assert!(
            get(&r[id], "flags")
                .unwrap()
                .contains("plate_colour_length_mismatch"),
            "{id}"
        );
    }
    // r1: the registered 鄂F02277 is yellow: the conflict is shown, not resolved.
    assert_eq!(
        get(&r["r1"], "flags"),
        Some("plate_colour_length_mismatch,plate_colour_registry_conflict")
    );
    assert_eq!(get(&r["r3"], "vin"), Some("LZZ5ELSDXND999901"));
    assert_eq!(get(&r["r3"], "flags"), Some(""));
    let d = query(
        &t,
        "SELECT source_key, evidence_text['plate_color_confirmed'] AS confirmed \
         FROM detections WHERE rule_id = 'china3_diesel_sighting'",
    );
    assert_eq!(d.len(), 1);
    assert_eq!(get(&d[0], "source_key"), Some("r3"));
    assert_eq!(get(&d[0], "confirmed"), Some("true"));
    // The evidence is typed (issue 9 item 5): the registry's 国III as the number 3, the basis
    // and registration date as text, addressable in SQL and grouped on.
    let d = query(
        &t,
        "SELECT evidence['emission_standard'] AS es, evidence['max_emission_standard'] AS max_es, \
         evidence_text['basis'] AS basis, evidence_text['registered_on'] AS reg, \
         evidence_text['emission_standard_raw'] AS raw, evidence['no_such'] AS absent \
         FROM detections WHERE rule_id = 'china3_diesel_sighting' AND evidence['emission_standard'] <= 3",
    );
    assert_eq!(d.len(), 1);
    assert_eq!(get(&d[0], "es"), Some("3.0"));
    assert_eq!(get(&d[0], "max_es"), Some("3.0"));
    assert_eq!(get(&d[0], "basis"), Some("registry_emission_standard"));
    assert_eq!(get(&d[0], "reg"), Some("2010-05-01"));
    assert_eq!(get(&d[0], "raw"), Some("国III"));
    assert_eq!(get(&d[0], "absent"), None);
    // JSON output: the maps are objects (numbers stay numbers).
    let j = ok(&[
        "query",
        "--tables",
        t.to_str().unwrap(),
        "--format",
        "json",
        "SELECT evidence, evidence_text FROM detections WHERE rule_id = 'china3_diesel_sighting'",
    ]);
    let j: serde_json::Value = serde_json::from_str(&j).unwrap();
    assert_eq!(j[0]["evidence"]["emission_standard"], 3.0);
    assert_eq!(j[0]["evidence_text"]["basis"], "registry_emission_standard");
    assert_eq!(j[0]["evidence_text"]["plate_color_confirmed"], "true");
    assert_eq!(j[0]["evidence_text"]["fuel"], "diesel");
    let l = list_csv(&t, "china3-diesel");
    assert_eq!(l.len(), 2, "{l:?}");
    assert_eq!(col(&l, 1, "plate"), "鄂F02277");
    assert_eq!(col(&l, 1, "sightings"), "1");
    assert_eq!(col(&l, 1, "sites"), "S2");
    for c in ["first_seen", "last_seen"] {
        let v = col(&l, 1, c);
        assert!(
            v.contains("2025-11-08T03:00:00") || v.contains("2025-11-08T11:00:00+08:00"),
            "{c} {v}"
        );
    }
}

/// Own examples: vendor colour codes through a mapping's value table (ETC codes 0 blue,
/// 1 yellow, 4 gradient green), a colour that conflicts with the registry, a read without
/// colour (joins only when the number is registered once; detection says the colour was not
/// confirmed), an unmapped code, and an RSD pass without colour for a number registered twice.
#[test]
fn colour_codes_conflicts_and_plate_only_joins() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    let reg = write(
        tmp.path(),
        "reg.ndjson",
        concat!(
            "{\"plate\":\"冀A11111\",\"plate_color\":\"黄\",\"vin\":\"LVIN0000000000001\",\"fuel\":\"B\",\"emission_standard\":\"国III\",\"vehicle_type\":\"H11\"}\n",
            "{\"plate\":\"冀A22222\",\"plate_color\":\"yellow\",\"vin\":\"LVIN0000000000002\",\"fuel\":\"B\",\"emission_standard\":\"国III\",\"vehicle_type\":\"H11\"}\n",
            "{\"plate\":\"冀A22222\",\"plate_color\":\"blue\",\"vin\":\"LVIN0000000000003\",\"fuel\":\"A\",\"emission_standard\":\"国V\",\"vehicle_type\":\"K33\"}\n",
            "{\"plate\":\"无牌\",\"plate_color\":\"yellow\",\"vin\":\"LVIN0000000000004\",\"fuel\":\"B\",\"emission_standard\":\"国III\",\"vehicle_type\":\"H11\"}\n",
        ),
    );
    let s = ingest(&t, "vehicles", &[], &reg);
    assert!(s.contains("quarantined:  1"), "{s}");
    let q = query(&t, "SELECT field, reason FROM quarantine");
    assert_eq!(get(&q[0], "field"), Some("plate"));
    assert!(get(&q[0], "reason").unwrap().contains("no plate"));

    let mapping = write(
        tmp.path(),
        "etc.toml",
        "[mapping]\nname = \"etc\"\n[fields.read_id]\nsource = \"id\"\n[fields.read_at]\nsource = \"t\"\n\
         [fields.site_id]\nsource = \"site\"\n[fields.plate]\nsource = \"plate\"\n\
         [fields.plate_color]\nsource = \"vehColor\"\nvalues = { \"0\" = \"blue\", \"1\" = \"yellow\", \"4\" = \"gradient_green\" }\n",
    );
    let reads = write(
        tmp.path(),
        "reads.csv",
        "id,t,site,plate,vehColor\n\
         k1,1762567200000,S1,冀A11111,1\n\
         k2,1762567200000,S1,冀A11111,0\n\
         k3,1762567200000,S1,冀A11111,\n\
         k4,1762567200000,S1,冀A22222,\n\
         k5,1762567200000,S1,冀A22222,1\n\
         k6,1762567200000,S1,冀A22222,7\n",
    );
    ingest(
        &t,
        "plates",
        &["--format", "csv", "--mapping", &mapping],
        &reads,
    );
    let r = by_key(
        query(
            &t,
            "SELECT read_id, plate_color, plate_color_raw, vin, array_to_string(flags, ',') AS flags FROM plate_reads",
        ),
        "read_id",
    );
    let vin_flags = |id: &str| {
        (
            get(&r[id], "vin").map(str::to_string),
            get(&r[id], "flags").unwrap().to_string(),
        )
    };
    assert_eq!(
        vin_flags("k1"),
        (Some("LVIN0000000000001".into()), "".into())
    );
    assert_eq!(
        vin_flags("k2"),
        (None, "plate_colour_registry_conflict".into())
    );
    assert_eq!(
        vin_flags("k3"),
        (
            Some("LVIN0000000000001".into()),
            "plate_colour_unconfirmed".into()
        )
    );
    assert_eq!(vin_flags("k4"), (None, "plate_registry_ambiguous".into()));
    assert_eq!(
        vin_flags("k5"),
        (Some("LVIN0000000000002".into()), "".into())
    );
    assert_eq!(vin_flags("k6"), (None, "plate_color_unknown".into()));
    assert_eq!(get(&r["k6"], "plate_color_raw"), Some("7"));
    let d = by_key(
        query(
            &t,
            "SELECT source_key, evidence_text['plate_color_confirmed'] AS confirmed \
             FROM detections WHERE rule_id = 'china3_diesel_sighting'",
        ),
        "source_key",
    );
    let mut keys: Vec<_> = d.keys().cloned().collect();
    keys.sort();
    assert_eq!(keys, ["k1", "k3", "k5"]);
    assert_eq!(get(&d["k3"], "confirmed"), Some("false"));
    assert_eq!(get(&d["k1"], "confirmed"), Some("true"));

    // An RSD pass with no colour for the number registered in two colours: not joined, so
    // the registry's fuel is not used.
    let pass = write(
        tmp.path(),
        "p.ndjson",
        "{\"pass_id\":\"x1\",\"passed_at\":\"2025-11-08T02:00:00Z\",\"plate\":\"冀A22222\"}\n",
    );
    ingest(&t, "rsd", &[], &pass);
    let p = query(
        &t,
        "SELECT vin, fuel, array_to_string(flags, ',') AS flags FROM rsd_passes",
    );
    assert_eq!(get(&p[0], "vin"), None);
    assert_eq!(get(&p[0], "fuel"), None);
    assert!(
        get(&p[0], "flags")
            .unwrap()
            .contains("plate_registry_ambiguous")
    );
}

// ---- plate-gbk-mojibake (plate half) -----------------------------------------------------

#[test]
fn gbk_plates_read_as_utf8_are_quarantined_with_a_hint() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    let slug = "plate-gbk-mojibake";
    // Every record rejected: exit status 1 ("every record (3) was rejected"), rows quarantined.
    ingest_ok_or_all_rejected_at(
        &t,
        "rsd",
        &[
            "--format",
            "csv",
            "--mapping",
            &fixture(slug, "vendor.toml"),
        ],
        &fixture(slug, "gbk.csv"),
    );
    assert_eq!(scalar_i64(&t, "SELECT count(*) FROM rsd_passes"), 0);
    let q = query(
        &t,
        "SELECT source_line, field, reason FROM quarantine ORDER BY source_line",
    );
    assert_eq!(q.len(), 3, "{q:?}");
    assert!(q.iter().all(|r| get(r, "field") == Some("plate")), "{q:?}");
    let b1 = get(&q[1], "reason").unwrap();
    assert!(
        b1.contains("first character U+0525")
            && b1.contains("not a province abbreviation")
            && b1.contains("GBK"),
        "{b1}"
    );
    let c1 = get(&q[2], "reason").unwrap();
    assert!(
        c1.contains("first character U+00B3") && c1.contains("GBK"),
        "{c1}"
    );
}

// ---- gas-twc-suspects: registry plates --------------------------------------------------

/// The gas TWC list joins the registry by VIN; a registered plate that is not recognised
/// (here `ABC1234`) is shown as NULL, so it cannot reach the list or the watchlist.
#[test]
fn gas_twc_list_shows_only_recognised_registry_plates() {
    use plumewatch::schema::{DetectionRow, DetectionsBuilder, TableBuilder};
    use plumewatch::sink::tables::{DETECTIONS, TableSet};
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    let reg = write(
        tmp.path(),
        "reg.ndjson",
        concat!(
            "{\"plate\":\"ABC1234\",\"plate_color\":\"yellow\",\"vin\":\"LGAS0000000000001\",\"fuel\":\"natural_gas\",\"emission_standard\":\"国VI\",\"vehicle_type\":\"Q11\"}\n",
            "{\"plate\":\"冀A33333\",\"plate_color\":\"yellow\",\"vin\":\"LGAS0000000000002\",\"fuel\":\"natural_gas\",\"emission_standard\":\"国VI\",\"vehicle_type\":\"Q11\"}\n",
        ),
    );
    ingest(&t, "vehicles", &[], &reg);
    let mut b = DetectionsBuilder::default();
    for (i, vin) in ["LGAS0000000000001", "LGAS0000000000002"]
        .iter()
        .enumerate()
    {
        b.append(&DetectionRow {
            detection_id: format!("d{i}"),
            rule_id: "rear_o2_flatline".into(),
            rule_version: "1".into(),
            limit_set: "test".into(),
            detected_at_ms: 1_762_567_200_000,
            vin: Some(vin.to_string()),
            source_stream: "obd".into(),
            source_key: format!("k{i}"),
            strength: Some(1.0),
            evidence: Default::default(),
            ..Default::default()
        });
    }
    let mut ts = TableSet::new(&t, "test-run");
    ts.write(DETECTIONS, &b.finish()).unwrap();
    ts.commit().unwrap();
    let s = ok(&[
        "list",
        "gas-twc-suspects",
        "--tables",
        t.to_str().unwrap(),
        "--format",
        "json",
    ]);
    let v: Vec<serde_json::Value> = serde_json::from_str(&s).unwrap();
    let plate = |vin: &str| {
        v.iter()
            .find(|r| r["vin"] == vin)
            .map(|r| r["plate"].clone())
            .unwrap()
    };
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(plate("LGAS0000000000001"), serde_json::Value::Null);
    assert_eq!(plate("LGAS0000000000002"), "冀A33333");
}

/// plate-nul-padding, the same kind in other text fields (found by a tester: a NUL inside a
/// site id made a second site in the China III list and put 0x00 bytes in its CSV): control
/// characters at the ends of any text field are padding and go; inside, the record is
/// quarantined naming the field — on the plates and the RSD stream alike.
#[test]
fn control_characters_in_other_text_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("tables");
    let reads = tmp.path().join("reads.ndjson");
    std::fs::write(
        &reads,
        concat!(
            r#"{"read_id":"x90","read_at":"2025-11-08T02:00:00Z","site_id":"C1101\u000019001","plate":"京A12345"}"#,
            "\n",
            r#"{"read_id":"x91\u0000","read_at":"2025-11-08T02:00:00Z","site_id":"C110119001","plate_color":"yellow\u0000","plate":"京A12345"}"#,
            "\n",
        ),
    )
    .unwrap();
    ingest(&t, "plates", &[], reads.to_str().unwrap());
    let passes = tmp.path().join("passes.ndjson");
    std::fs::write(
        &passes,
        concat!(
            r#"{"pass_id":"p1","passed_at":"2025-11-08T02:00:00Z","site_id":"A\u00011","plate":"京A12345"}"#,
            "\n",
            r#"{"pass_id":"p2\u0000\u0000","passed_at":"2025-11-08T02:00:00Z","site_id":"A1","plate":"京A12345"}"#,
            "\n",
        ),
    )
    .unwrap();
    ingest(&t, "rsd", &[], passes.to_str().unwrap());
    let q = query(
        &t,
        "SELECT stream, field, reason FROM quarantine ORDER BY stream",
    );
    assert_eq!(q.len(), 2, "{q:?}");
    assert_eq!(get(&q[0], "field"), Some("site_id"));
    assert!(
        get(&q[0], "reason")
            .unwrap()
            .contains("control character U+0000"),
        "{q:?}"
    );
    assert_eq!(get(&q[1], "stream"), Some("rsd"));
    assert_eq!(get(&q[1], "field"), Some("site_id"));
    assert!(get(&q[1], "reason").unwrap().contains("U+0001"), "{q:?}");
    // The padded ones are stored without their padding.
    let r = query(&t, "SELECT read_id, site_id, plate_color FROM plate_reads");
    assert_eq!(r.len(), 1);
    assert_eq!(get(&r[0], "read_id"), Some("x91"));
    assert_eq!(get(&r[0], "plate_color"), Some("yellow"));
    let p = query(&t, "SELECT pass_id FROM rsd_passes");
    assert_eq!(get(&p[0], "pass_id"), Some("p2"));
    // No 0x00 byte in any CSV of the stored text.
    let csv = ok(&[
        "query",
        "--tables",
        t.to_str().unwrap(),
        "--format",
        "csv",
        "SELECT read_id AS a, site_id AS b, plate_color_raw AS c FROM plate_reads \
         UNION ALL SELECT pass_id, site_id, plate FROM rsd_passes",
    ]);
    assert!(!csv.contains('\0'), "{csv:?}");
}

// ---- plate-gbk-mojibake, variation: non-standard tails (issue 8, lookahead) ---------------

/// Plates of every GA 36 class that has Chinese characters, with their stored status / class.
const CLASS_PLATES: &[(&str, &str, &str)] = &[
    ("京A12345", "standard", "ordinary"),
    ("粤BD12345", "standard", "new_energy"),
    ("豫A1234学", "standard", "coach"),
    ("鲁A1234学", "standard", "coach"),
    ("京A1234警", "standard", "police"),
    ("冀A1234挂", "standard", "trailer"),
    ("粤Z1234港", "standard", "hk_macau"),
    ("粤Z1234澳", "standard", "hk_macau"),
    ("使014578", "nonstandard", "embassy"),
    ("沪A1234领", "nonstandard", "consulate"),
    ("京X1234应急", "nonstandard", "emergency"),
];

/// An RSD CSV for `vendor.toml` (no `encoding`) with one row per plate, plate cells as bytes.
fn rsd_csv_bytes(plates: &[Vec<u8>]) -> Vec<u8> {
    let mut b = b"jlbh,jcsj,hphm,cpys,cpysmc,co_co2,cs\r\n".to_vec();
    for (i, p) in plates.iter().enumerate() {
        b.extend_from_slice(format!("p{i:02},2025-11-08 10:30:59,").as_bytes());
        b.extend_from_slice(p);
        b.extend_from_slice(b",,,0.0123,45\r\n");
    }
    b
}

fn ingest_vendor_csv(tmp: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let t = tmp.join(format!("tables_{name}"));
    let f = tmp.join(name);
    std::fs::write(&f, bytes).unwrap();
    ingest_ok_or_all_rejected_at(
        &t,
        "rsd",
        &[
            "--format",
            "csv",
            "--mapping",
            &fixture("plate-gbk-mojibake", "vendor.toml"),
        ],
        f.to_str().unwrap(),
    );
    t
}

#[test]
fn real_plates_of_every_class_are_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let rows: Vec<Vec<u8>> = CLASS_PLATES
        .iter()
        .map(|(p, _, _)| p.as_bytes().to_vec())
        .collect();
    let t = ingest_vendor_csv(tmp.path(), "utf8.csv", &rsd_csv_bytes(&rows));
    assert_eq!(scalar_i64(&t, "SELECT count(*) FROM quarantine"), 0);
    let r = by_key(
        query(
            &t,
            "SELECT pass_id, plate, plate_status, plate_class FROM rsd_passes",
        ),
        "pass_id",
    );
    for (i, (p, status, class)) in CLASS_PLATES.iter().enumerate() {
        let row = &r[&format!("p{i:02}")];
        assert_eq!(get(row, "plate"), Some(*p));
        assert_eq!(get(row, "plate_status"), Some(*status), "{p}");
        assert_eq!(get(row, "plate_class"), Some(*class), "{p}");
    }
}

#[test]
fn gbk_plates_of_every_class_read_as_utf8_are_quarantined_never_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let gbk: Vec<Vec<u8>> = CLASS_PLATES
        .iter()
        .map(|(p, _, _)| {
            let (b, _, unmappable) = encoding_rs::GBK.encode(p);
            assert!(!unmappable);
            b.into_owned()
        })
        .collect();
    // Which of them happen to be valid UTF-8 (the mojibake the reader cannot see).
    let valid: Vec<&str> = CLASS_PLATES
        .iter()
        .zip(&gbk)
        .filter(|(_, b)| std::str::from_utf8(b).is_ok())
        .map(|((p, _, _), _)| *p)
        .collect();
    assert_eq!(valid, ["豫A1234学", "鲁A1234学", "使014578"]);
    let t = ingest_vendor_csv(tmp.path(), "gbk.csv", &rsd_csv_bytes(&gbk));
    assert_eq!(scalar_i64(&t, "SELECT count(*) FROM rsd_passes"), 0);
    let q = by_key(
        query(&t, "SELECT raw, field, reason FROM quarantine"),
        "raw",
    );
    assert_eq!(q.len(), CLASS_PLATES.len());
    for r in q.values() {
        assert_eq!(get(r, "field"), Some("plate"), "{r:?}");
        assert!(get(r, "reason").unwrap().contains("GBK"), "{r:?}");
    }
    // The three that were stored garbled (ԥA1234ѧ, ³A1234ѧ, ʹ014578) name the first character
    // and the plate they read as in GBK.
    let reasons: Vec<String> = query(&t, "SELECT reason FROM quarantine ORDER BY source_line")
        .into_iter()
        .map(|r| r["reason"].clone().unwrap())
        .collect();
    for (i, first) in [(2, "U+0525 'ԥ'"), (3, "U+00B3 '³'"), (8, "U+02B9 'ʹ'")] {
        assert!(
            reasons[i].contains(&format!("first character {first} is not a province"))
                && reasons[i]
                    .contains(&format!("read as GBK the plate is '{}'", CLASS_PLATES[i].0)),
            "{}",
            reasons[i]
        );
    }
}

#[test]
fn gbk_plates_read_as_latin1_are_quarantined_never_stored() {
    // Own example: an upstream tool read the GBK export as Latin-1 and wrote UTF-8
    // (豫 D4 A5 → `Ô¥`, 学 D1 A7 → `Ñ§`); every class, plus a colour word in front.
    let tmp = tempfile::tempdir().unwrap();
    let mut plates: Vec<&str> = CLASS_PLATES.iter().map(|(p, _, _)| *p).collect();
    plates.push("蓝苏E9Z997");
    let rows: Vec<Vec<u8>> = plates
        .iter()
        .map(|p| {
            let (b, _, _) = encoding_rs::GBK.encode(p);
            b.iter()
                .map(|&x| char::from(x))
                .collect::<String>()
                .into_bytes()
        })
        .collect();
    let t = ingest_vendor_csv(tmp.path(), "latin1.csv", &rsd_csv_bytes(&rows));
    assert_eq!(scalar_i64(&t, "SELECT count(*) FROM rsd_passes"), 0);
    let reasons: Vec<String> = query(
        &t,
        "SELECT field, reason FROM quarantine ORDER BY source_line",
    )
    .into_iter()
    .map(|r| {
        assert_eq!(r["field"].as_deref(), Some("plate"));
        r["reason"].clone().unwrap()
    })
    .collect();
    assert_eq!(reasons.len(), plates.len());
    for (p, r) in plates.iter().zip(&reasons) {
        assert!(
            r.contains(&format!("read as GBK the plate is '{p}'")),
            "{p}: {r}"
        );
    }
    assert!(
        reasons[2].starts_with("field plate: first character U+00D4 'Ô'"),
        "{}",
        reasons[2]
    );
}
