//! Robust reading of text inputs (issue 8 kinds 3, 5, 6; issue 9 items 2 and 3): encodings,
//! vendor CSV headers and number styles, ids as text, bounded records, format sniffing.
//! Field cases copied under `fixtures/field-cases/` (see its README); the rest are our own
//! examples of the same kinds, written inline.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

fn fc(rel: &str) -> String {
    repo(&format!("fixtures/field-cases/{rel}"))
        .display()
        .to_string()
}

fn ingest(out: &Path, args: &[&str]) -> std::process::Output {
    let mut a = vec!["ingest", "--quiet", "--out", out.to_str().unwrap()];
    a.extend_from_slice(args);
    pw(&a)
}

fn ingest_ok(out: &Path, args: &[&str]) -> String {
    let o = ingest(out, args);
    assert!(
        o.status.success(),
        "{args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Rows of a query as tuples of display strings ("" for NULL).
fn q(dir: &Path, sql_text: &str) -> Vec<Vec<String>> {
    let b = sql(dir, sql_text);
    let cols: Vec<String> = b
        .first()
        .map(|b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.name().clone())
                .collect()
        })
        .unwrap_or_default();
    rows(&b)
        .into_iter()
        .map(|r| {
            cols.iter()
                .map(|c| r[c].clone().unwrap_or_default())
                .collect()
        })
        .collect()
}

fn quarantined(dir: &Path) -> i64 {
    if !dir.join("quarantine").exists() {
        return 0;
    }
    scalar_i64(dir, "SELECT count(*) FROM quarantine")
}

fn parquet_files(dir: &Path) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, n);
                } else if p.extension().is_some_and(|x| x == "parquet") {
                    *n += 1;
                }
            }
        }
    }
    let mut n = 0;
    walk(dir, &mut n);
    n
}

fn close(got: &str, want: f64) -> bool {
    got.parse::<f64>()
        .is_ok_and(|g| (g - want).abs() <= 1e-9 + want.abs() * 1e-6)
}

/// `pass_id, co_co2_ratio, no_co2_ratio, no_ppm, verdict, exceeded` of every pass.
fn passes(dir: &Path) -> Vec<Vec<String>> {
    q(
        dir,
        "SELECT pass_id, co_co2_ratio, no_co2_ratio, no_ppm, verdict, array_to_string(exceeded, ',') AS ex \
         FROM rsd_passes ORDER BY pass_id",
    )
}

fn check_pass(r: &[String], id: &str, co: f64, no: f64, verdict: &str, ex: &str) {
    assert_eq!(r[0], id, "{r:?}");
    assert!(close(&r[1], co) && close(&r[2], no), "{r:?}");
    assert_eq!((r[4].as_str(), r[5].as_str()), (verdict, ex), "{r:?}");
}

// ---------------------------------------------------------------- vendor CSV headers

#[test]
fn repeated_reordered_header_rebinds_columns_by_name() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    let m = fc("csv-repeated-reordered-header/vendor.toml");
    let s = ingest_ok(
        &out,
        &[
            "--stream",
            "rsd",
            "--format",
            "csv",
            "--mapping",
            &m,
            &fc("csv-repeated-reordered-header/week.csv"),
        ],
    );
    assert!(
        s.contains("header repeated at line 4; columns re-bound"),
        "{s}"
    );
    assert!(s.contains("records in:   4"), "{s}");
    let r = passes(&out);
    assert_eq!(r.len(), 4);
    check_pass(&r[0], "A1", 0.0100, 0.0020, "pass", "");
    check_pass(&r[1], "A2", 0.0080, 0.0015, "pass", "");
    // B1: NO 0.03 × 15.00 % CO2 × 10⁴ = 4500 ppm > 1500.
    check_pass(&r[2], "B1", 0.0050, 0.0300, "fail", "no");
    assert!(close(&r[2][3], 4500.0), "{:?}", r[2]);
    check_pass(&r[3], "B2", 0.0090, 0.0012, "pass", "");
    assert!(
        (r[3][3].parse::<f64>().unwrap() - 179.5).abs() < 0.5,
        "{:?}",
        r[3]
    );
    assert_eq!(quarantined(&out), 0);

    // Two Excel exports joined with `cat`: each starts with a byte-order mark, the second
    // one mid-file (found by a tester: the second header was not recognised and B1 lost).
    let week = std::fs::read_to_string(fc("csv-repeated-reordered-header/week.csv")).unwrap();
    let (first, second) = week.split_at(week.find("jlbh,jcsj,hphm,rllx,cs,jsd,no_co2").unwrap());
    let joined = t.path().join("joined.csv");
    std::fs::write(&joined, format!("\u{FEFF}{first}\u{FEFF}{second}")).unwrap();
    let out_bom = t.path().join("tables_bom");
    let s = ingest_ok(
        &out_bom,
        &[
            "--stream",
            "rsd",
            "--format",
            "csv",
            "--mapping",
            &m,
            joined.to_str().unwrap(),
        ],
    );
    assert!(
        s.contains("header repeated at line 4; columns re-bound"),
        "{s}"
    );
    let r = passes(&out_bom);
    assert_eq!(r.len(), 4);
    check_pass(&r[2], "B1", 0.0050, 0.0300, "fail", "no");
    assert_eq!(quarantined(&out_bom), 0);

    // A wider header re-binds as well.
    let out2 = t.path().join("tables2");
    ingest_ok(
        &out2,
        &[
            "--stream",
            "rsd",
            "--format",
            "csv",
            "--mapping",
            &m,
            &fc("csv-repeated-reordered-header/week_extra_column.csv"),
        ],
    );
    let r = passes(&out2);
    assert_eq!(r.len(), 5);
    check_pass(&r[4], "C1", 0.0050, 0.0300, "fail", "no");
    assert!(close(&r[4][3], 4500.0), "{:?}", r[4]);
    assert_eq!(quarantined(&out2), 0);
}

const VENDOR_X: &str = r#"[mapping]
name = "vendor-x"
[fields.pass_id]
source = "jlbh"
[fields.passed_at]
source = "jcsj"
time = "%Y-%m-%d %H:%M:%S"
utc_offset = "+08:00"
[fields.fuel]
source = "rllx"
[fields.speed_kmh]
source = "cs"
[fields.accel_mps2]
source = "jsd"
[fields.co_co2_ratio]
source = "co_co2"
[fields.no_co2_ratio]
source = "no_co2"
"#;

#[test]
fn a_header_missing_a_mapped_column_quarantines_the_rows_under_it() {
    let t = tempfile::tempdir().unwrap();
    let csv = t.path().join("three.csv");
    std::fs::write(
        &csv,
        "jlbh,jcsj,rllx,cs,jsd,co_co2,no_co2\n\
         D1,2025-11-08 10:00:01,A,42.0,0.2,0.0100,0.0020\n\
         jcsj,jlbh,rllx,cs,jsd,co_co2\n\
         D2,2025-11-08 10:00:02,A,42.0,0.2,0.0300\n\
         D3,2025-11-08 10:00:03,A,42.0,0.2,0.0300\n\
         no_co2 , jcsj , jlbh , rllx , cs , jsd , co_co2\n\
         0.0400,2025-11-08 10:00:04,D4,A,42.0,0.2,0.0010\n",
    )
    .unwrap();
    let m = t.path().join("m.toml");
    std::fs::write(&m, VENDOR_X).unwrap();
    let out = t.path().join("tables");
    // Two of four rows rejected: not every one, so the ingest succeeds.
    let s = ingest_ok(
        &out,
        &[
            "--stream",
            "rsd",
            "--format",
            "csv",
            "--mapping",
            m.to_str().unwrap(),
            csv.to_str().unwrap(),
        ],
    );
    assert!(s.contains("records in:   4"), "{s}");
    assert!(
        s.contains("the header at line 3 has no column for no_co2_ratio"),
        "{s}"
    );
    let qr = q(
        &out,
        "SELECT source_line, field, reason FROM quarantine ORDER BY source_line",
    );
    assert_eq!(qr.len(), 2, "{qr:?}");
    assert_eq!(
        (qr[0][0].as_str(), qr[0][1].as_str()),
        ("4", "no_co2_ratio")
    );
    assert_eq!(qr[1][0], "5");
    assert!(
        qr[0][2].contains("has no column for no_co2_ratio"),
        "{qr:?}"
    );
    // The complete (padded, reordered) header at line 6 restores reading by name.
    let r = passes(&out);
    assert_eq!(r.len(), 2);
    check_pass(&r[0], "D1", 0.0100, 0.0020, "pass", "");
    check_pass(&r[1], "D4", 0.0010, 0.0400, "fail", "no");
}

#[test]
fn semicolon_csv_with_decimal_comma_thousands_and_comments() {
    let t = tempfile::tempdir().unwrap();
    let csv = t.path().join("eu.csv");
    std::fs::write(
        &csv,
        "# exported 2025-11-08 by RSD-4600; units: ratios mol/mol\n\
         jlbh;jcsj;rllx;cs;jsd;co_co2;no_co2;plume\n\
         E1;2025-11-08 10:00:01;A;42,5;0,2;0,0100;0,0020;1.234,5\n\
         # logger restart\n\
         E2;2025-11-08 10:00:02;A;40;0,1;\"0,0050\";0,0300;12\n\
         E3;2025-11-08 10:00:03;A;40;0,1;0,0050;0,03;1.5\n",
    )
    .unwrap();
    let m = t.path().join("m.toml");
    std::fs::write(
        &m,
        VENDOR_X.replace(
            "name = \"vendor-x\"",
            "name = \"vendor-eu\"\ndelimiter = \";\"\ndecimal_comma = true\nthousands_separator = \".\"\ncomment = \"#\"",
        ) + "[fields.co2_plume_pct_m]\nsource = \"plume\"\n",
    )
    .unwrap();
    let out = t.path().join("tables");
    let s = ingest_ok(
        &out,
        &[
            "--stream",
            "rsd",
            "--format",
            "csv",
            "--mapping",
            m.to_str().unwrap(),
            csv.to_str().unwrap(),
        ],
    );
    assert!(s.contains("records in:   3"), "{s}");
    let r = q(
        &out,
        "SELECT pass_id, speed_kmh, co_co2_ratio, no_co2_ratio, co2_plume_pct_m FROM rsd_passes ORDER BY pass_id",
    );
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0][0], "E1");
    assert!(
        close(&r[0][1], 42.5) && close(&r[0][2], 0.01) && close(&r[0][3], 0.002),
        "{r:?}"
    );
    assert!(close(&r[0][4], 1234.5), "{r:?}");
    assert!(close(&r[1][2], 0.005) && close(&r[1][3], 0.03), "{r:?}");
    // `1.5` with `.` as thousands separator is not 15: quarantined, field named.
    let qr = q(&out, "SELECT field, reason FROM quarantine");
    assert_eq!(qr.len(), 1);
    assert_eq!(qr[0][0], "co2_plume_pct_m", "{qr:?}");
}

#[test]
fn torque_log_with_a_reordered_repeated_header_is_read_by_name() {
    let t = tempfile::tempdir().unwrap();
    let csv = t.path().join("torque.csv");
    std::fs::write(
        &csv,
        "GPS Time, Device Time, Engine RPM(rpm), Speed (OBD)(km/h)\n\
         Sat Nov 08 10:00:01 GMT+08:00 2025,08-Nov-2025 10:00:01.000,1500,40\n\
         GPS Time, Device Time, Speed (OBD)(km/h), Engine RPM(rpm)\n\
         Sat Nov 08 10:00:02 GMT+08:00 2025,08-Nov-2025 10:00:02.000,41,1600\n",
    )
    .unwrap();
    let out = t.path().join("tables");
    let s = ingest_ok(
        &out,
        &[
            "--stream",
            "obd",
            "--format",
            "csv",
            "--vin",
            "LTEST000000000001",
            "--mapping",
            repo("fixtures/mappings/torque.toml").to_str().unwrap(),
            csv.to_str().unwrap(),
        ],
    );
    assert!(s.contains("header repeated at line 3"), "{s}");
    let r = q(
        &out,
        "SELECT engine_rpm, speed_kmh FROM obd_samples ORDER BY sampled_at",
    );
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(close(&r[0][0], 1500.0) && close(&r[0][1], 40.0), "{r:?}");
    assert!(close(&r[1][0], 1600.0) && close(&r[1][1], 41.0), "{r:?}");
}

// ---------------------------------------------------------------- bounded records

#[test]
fn an_over_long_csv_row_is_quarantined_with_its_length_and_a_prefix() {
    let t = tempfile::tempdir().unwrap();
    let csv = t.path().join("long.csv");
    let long = "x".repeat(5000);
    std::fs::write(
        &csv,
        format!(
            "pass_id,passed_at,speed_kmh\nL1,2025-11-08T02:00:00Z,40\nL2,2025-11-08T02:00:00Z,{long}\nL3,2025-11-08T02:00:00Z,41\n"
        ),
    )
    .unwrap();
    let out = t.path().join("tables");
    ingest_ok(
        &out,
        &[
            "--stream",
            "rsd",
            "--format",
            "csv",
            "--max-record-bytes",
            "1K",
            csv.to_str().unwrap(),
        ],
    );
    let qr = q(
        &out,
        "SELECT source_offset, source_line, length(raw), reason FROM quarantine",
    );
    assert_eq!(qr.len(), 1);
    // 28 header bytes + 27 of L1; the row is 3 + 20 + 1 + 5000 bytes long.
    assert_eq!(&qr[0][..3], ["55", "3", "1024"]);
    assert!(
        qr[0][3].starts_with("line of 5024 bytes exceeds the 1 KiB record limit"),
        "{qr:?}"
    );
    let r = q(&out, "SELECT pass_id FROM rsd_passes ORDER BY pass_id");
    assert_eq!(r, [["L1"], ["L3"]]);
}

/// Runs `ingest … -` with `input` on stdin.
fn ingest_stdin(out: &Path, args: &[&str], input: Vec<u8>) -> std::process::Output {
    let mut a = vec!["ingest", "--quiet", "--out", out.to_str().unwrap()];
    a.extend_from_slice(args);
    a.push("-");
    let mut child = Command::new(env!("CARGO_BIN_EXE_plumewatch"))
        .args(&a)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    w.join().unwrap();
    o
}

#[test]
fn a_huge_line_on_stdin_is_skipped_not_held() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    // huge-line-memory: 50 MB of NUL bytes, no newline.
    let o = ingest_stdin(&out, &["--stream", "rsd"], vec![0u8; 50_000_000]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("quarantined:  1"), "{s}");
    // Every record rejected: non-zero exit, and the summary says so.
    assert!(!o.status.success());
    assert!(s.contains("every record was rejected"), "{s}");
    let qr = q(
        &out,
        "SELECT source_offset, length(raw), reason FROM quarantine",
    );
    assert_eq!(&qr[0][..2], ["0", "4096"]);
    assert!(
        qr[0][2].starts_with("line of 50000000 bytes exceeds the 1 MiB record limit"),
        "{qr:?}"
    );
    assert!(!qr[0][2].contains('\0'));

    // Our own: a 3 MB line between two good ones; the good ones are kept.
    let out2 = t.path().join("tables2");
    let mut input = b"{\"pass_id\":\"a\",\"passed_at\":\"2025-11-08T02:00:00Z\"}\n".to_vec();
    input.extend(std::iter::repeat_n(b'{', 3_000_000));
    input.extend(b"\r\n{\"pass_id\":\"b\",\"passed_at\":\"2025-11-08T02:00:00Z\"}");
    let o = ingest_stdin(&out2, &["--stream", "rsd"], input);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = q(&out2, "SELECT pass_id FROM rsd_passes ORDER BY pass_id");
    assert_eq!(r, [["a"], ["b"]]);
    let qr = q(
        &out2,
        "SELECT source_offset, source_line, reason FROM quarantine",
    );
    assert_eq!(&qr[0][..2], ["51", "2"]);
    assert!(qr[0][2].starts_with("line of 3000000 bytes"), "{qr:?}");
}

#[test]
fn reasons_carry_no_control_bytes() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("ctl.ndjson");
    std::fs::write(
        &f,
        b"{\"pass_id\":\"a\",\"passed_at\":\"2025-11-08T02:00:00Z\"}\n{\"pass_id\":\"b\",\"passed_at\":\"20\x1b[31m25\"}\n\x00\x01garbage\n",
    )
    .unwrap();
    let out = t.path().join("tables");
    ingest_ok(&out, &["--stream", "rsd", f.to_str().unwrap()]);
    let qr = q(&out, "SELECT reason FROM quarantine ORDER BY source_line");
    assert_eq!(qr.len(), 2);
    for r in &qr {
        assert!(!r[0].chars().any(char::is_control), "{r:?}");
    }
    assert!(qr[0][0].contains("\\x1b[31m"), "{qr:?}");
    assert!(qr[1][0].contains("\\x00"), "{qr:?}");
}

// ---------------------------------------------------------------- ids are text

#[test]
fn json_number_ids_keep_their_digits() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    ingest_ok(
        &out,
        &["--stream", "rsd", &fc("json-number-id-rounded/pass.ndjson")],
    );
    ingest_ok(
        &out,
        &[
            "--stream",
            "plates",
            &fc("json-number-id-rounded/read.ndjson"),
        ],
    );
    assert_eq!(
        q(&out, "SELECT pass_id FROM rsd_passes"),
        [["20251108103059003"]]
    );
    assert_eq!(
        q(&out, "SELECT read_id FROM plate_reads"),
        [["12345678901234567"]]
    );
    assert_eq!(quarantined(&out), 0);
}

#[test]
fn negative_exponent_and_other_text_fields_as_json_numbers() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("ids.ndjson");
    std::fs::write(
        &f,
        "{\"pass_id\":-90071992547409931,\"passed_at\":\"2025-11-08T02:00:00Z\",\"site_id\":12345678901234567}\n\
         {\"pass_id\":\"s1\",\"passed_at\":\"2025-11-08T02:00:00Z\",\"instrument\":98765432109876543210}\n\
         {\"pass_id\":2.0251108103059003e16,\"passed_at\":\"2025-11-08T02:00:00Z\"}\n",
    )
    .unwrap();
    let out = t.path().join("tables");
    ingest_ok(&out, &["--stream", "rsd", f.to_str().unwrap()]);
    assert_eq!(
        q(
            &out,
            "SELECT pass_id, site_id, instrument FROM rsd_passes ORDER BY pass_id"
        ),
        [
            ["-90071992547409931", "12345678901234567", ""],
            ["s1", "", "98765432109876543210"],
        ]
    );
    let qr = q(&out, "SELECT field, reason FROM quarantine");
    assert_eq!(qr[0][0], "pass_id");
    assert!(qr[0][1].contains("exponent form"), "{qr:?}");
}

#[test]
fn csv_ids_with_a_spreadsheet_fraction_keep_their_digits() {
    let t = tempfile::tempdir().unwrap();
    let csv = t.path().join("ids.csv");
    std::fs::write(
        &csv,
        "pass_id,passed_at\n12345678901234567.0,2025-11-08T02:00:00Z\n34.000,2025-11-08T02:00:00Z\n",
    )
    .unwrap();
    let out = t.path().join("tables");
    ingest_ok(
        &out,
        &["--stream", "rsd", "--format", "csv", csv.to_str().unwrap()],
    );
    assert_eq!(
        q(&out, "SELECT pass_id FROM rsd_passes ORDER BY pass_id"),
        [["12345678901234567"], ["34"]]
    );
}

// ---------------------------------------------------------------- encodings

#[test]
fn gbk_csv_with_encoding_is_transcoded() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    ingest_ok(
        &out,
        &[
            "--stream",
            "rsd",
            "--format",
            "csv",
            "--mapping",
            &fc("plate-gbk-mojibake/vendor_gbk.toml"),
            &fc("plate-gbk-mojibake/gbk.csv"),
        ],
    );
    assert_eq!(
        q(
            &out,
            "SELECT pass_id, plate, plate_color FROM rsd_passes ORDER BY pass_id"
        ),
        [
            ["a1", "粤BD12345", "yellow_green"],
            ["b1", "豫A12345", ""],
            ["c1", "鲁B12345", ""],
        ]
    );
    assert_eq!(quarantined(&out), 0);
}

#[test]
fn gb18030_four_byte_characters_gbk_headers_and_bad_bytes() {
    let t = tempfile::tempdir().unwrap();
    let (gb, _, bad) = encoding_rs::GB18030.encode("编号,检测时间,号牌号码,站点\n");
    assert!(!bad);
    let mut data = gb.into_owned();
    for (id, plate, site) in [("g1", "京A12345", "𠮷站"), ("g2", "沪C54321", "北站")] {
        let row = format!("{id},2025-11-08 10:30:59,{plate},{site}\n");
        let (b, _, _) = encoding_rs::GB18030.encode(&row);
        data.extend_from_slice(&b);
    }
    // A byte that is no GBK/GB18030 sequence at all: quarantined, field and offset named.
    data.extend_from_slice(b"g3,2025-11-08 10:30:59,\xFF\xFFA12345,x\n");
    let csv = t.path().join("gb.csv");
    std::fs::write(&csv, &data).unwrap();
    let m = t.path().join("m.toml");
    std::fs::write(
        &m,
        "[mapping]\nname = \"gb\"\nencoding = \"gb18030\"\n\
         [fields.pass_id]\nsource = \"编号\"\n\
         [fields.passed_at]\nsource = \"检测时间\"\ntime = \"%Y-%m-%d %H:%M:%S\"\nutc_offset = \"+08:00\"\n\
         [fields.plate]\nsource = \"号牌号码\"\n\
         [fields.site_id]\nsource = \"站点\"\n",
    )
    .unwrap();
    let out = t.path().join("tables");
    ingest_ok(
        &out,
        &[
            "--stream",
            "rsd",
            "--format",
            "csv",
            "--mapping",
            m.to_str().unwrap(),
            csv.to_str().unwrap(),
        ],
    );
    assert_eq!(
        q(
            &out,
            "SELECT pass_id, plate, site_id FROM rsd_passes ORDER BY pass_id"
        ),
        [["g1", "京A12345", "𠮷站"], ["g2", "沪C54321", "北站"]]
    );
    let qr = q(&out, "SELECT field, reason FROM quarantine");
    assert_eq!(qr[0][0], "plate");
    assert!(qr[0][1].contains("0xFF at byte 0"), "{qr:?}");
    assert!(qr[0][1].contains("gb18030"), "{qr:?}");
}

#[test]
fn gbk_ndjson_with_encoding_is_transcoded() {
    let t = tempfile::tempdir().unwrap();
    let (line, _, _) = encoding_rs::GBK.encode(
        "{\"pass_id\":\"n1\",\"passed_at\":\"2025-11-08T02:00:00Z\",\"plate\":\"鲁B12345\"}\n",
    );
    let f = t.path().join("gbk.ndjson");
    std::fs::write(&f, &line).unwrap();
    let m = t.path().join("m.toml");
    std::fs::write(
        &m,
        "[mapping]\nencoding = \"gbk\"\n[fields.pass_id]\nsource = \"pass_id\"\n[fields.passed_at]\nsource = \"passed_at\"\n[fields.plate]\nsource = \"plate\"\n",
    )
    .unwrap();
    let out = t.path().join("tables");
    ingest_ok(
        &out,
        &[
            "--stream",
            "rsd",
            "--mapping",
            m.to_str().unwrap(),
            f.to_str().unwrap(),
        ],
    );
    assert_eq!(q(&out, "SELECT plate FROM rsd_passes"), [["鲁B12345"]]);
}

#[test]
fn unknown_mapping_keys_are_refused_by_name() {
    let t = tempfile::tempdir().unwrap();
    let csv = fc("plate-gbk-mojibake/gbk.csv");
    for (toml, key) in [
        ("[mapping]\nencodng = \"gbk\"\n", "encodng"),
        ("[fields.plate]\nsorce = \"hphm\"\n", "sorce"),
        (
            "[[fields.plate]]\nsource = \"hphm\"\nunits = \"x\"\n",
            "units",
        ),
        ("[field.plate]\nsource = \"hphm\"\n", "field"),
        ("[mapping]\nencoding = \"klingon\"\n", "klingon"),
    ] {
        let m = t.path().join("m.toml");
        std::fs::write(&m, toml).unwrap();
        let out = t.path().join("tables");
        let o = ingest(
            &out,
            &[
                "--stream",
                "rsd",
                "--format",
                "csv",
                "--mapping",
                m.to_str().unwrap(),
                &csv,
            ],
        );
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{toml}");
        assert!(e.contains(key), "{toml}: {e}");
        assert_eq!(parquet_files(&out), 0);
    }
}

// ---------------------------------------------------------------- format sniffing

#[test]
fn registry_csv_without_format_stops_before_writing() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    let reg = fc("registry-csv-without-format/registry.csv");
    let o = ingest(&out, &["--stream", "vehicles", &reg]);
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(
            "registry.csv does not look like NDJSON (the first line is a CSV header: plate,plate_color,"
        ),
        "{e}"
    );
    assert!(e.contains("use --format csv"), "{e}");
    assert_eq!(parquet_files(&out), 0);
    assert!(!out.join("quarantine").exists());

    let out2 = t.path().join("tables2");
    ingest_ok(&out2, &["--stream", "vehicles", "--format", "csv", &reg]);
    assert_eq!(
        q(
            &out2,
            "SELECT plate, fuel, emission_standard FROM vehicles ORDER BY plate"
        ),
        [["冀F12345", "diesel", "3"], ["苏E9Z981", "petrol", "6"]]
    );
}

fn walkdir(p: &Path) -> Vec<std::path::PathBuf> {
    let mut v = vec![];
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                v.extend(walkdir(&p));
            } else if p.extension().is_some_and(|x| x == "parquet") {
                v.push(p);
            }
        }
    }
    v
}

#[test]
fn parquet_and_ndjson_fed_as_the_wrong_format_stop() {
    let t = tempfile::tempdir().unwrap();
    // A Parquet file plumewatch wrote itself, fed back as NDJSON.
    let out = t.path().join("tables");
    ingest_ok(
        &out,
        &["--stream", "rsd", &fc("json-number-id-rounded/pass.ndjson")],
    );
    let pq = walkdir(&out.join("rsd_passes"))
        .pop()
        .expect("a parquet file");
    let out2 = t.path().join("t2");
    let o = ingest(&out2, &["--stream", "rsd", pq.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains("does not look like NDJSON (a Parquet file)"),
        "{e}"
    );
    assert_eq!(parquet_files(&out2), 0);
    // NDJSON fed as CSV.
    let o = ingest(
        &out2,
        &[
            "--stream",
            "rsd",
            "--format",
            "csv",
            &fc("json-number-id-rounded/pass.ndjson"),
        ],
    );
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(e.contains("does not look like CSV (NDJSON"), "{e}");
    assert!(e.contains("use --format ndjson"), "{e}");
    assert_eq!(parquet_files(&out2), 0);
}

#[test]
fn a_wrong_stream_fails_the_same_way_and_stops() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    // Plate reads fed as RSD passes: every line lacks pass_id.
    let f = t.path().join("reads.ndjson");
    let line = |i: u32| {
        format!(
            "{{\"read_id\":\"r{i}\",\"read_at\":\"2025-11-08T02:00:00Z\",\"plate\":\"京A1234{i}\"}}\n"
        )
    };
    std::fs::write(&f, (0..5).map(line).collect::<String>()).unwrap();
    let o = ingest(&out, &["--stream", "rsd", f.to_str().unwrap()]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        e.contains(
            "the first 5 records all fail the same way (field pass_id: required field is missing)"
        ),
        "{e}"
    );
    assert_eq!(parquet_files(&out), 0);
}

#[test]
fn empty_input_is_no_records_and_all_rejected_exits_non_zero() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("tables");
    let f = t.path().join("empty.ndjson");
    std::fs::write(&f, b"").unwrap();
    let s = ingest_ok(&out, &["--stream", "rsd", f.to_str().unwrap()]);
    assert!(s.contains("records in:   0"), "{s}");
    assert!(s.contains("quarantined:  0"), "{s}");
    assert_eq!(quarantined(&out), 0);
    // Two records, both bad in different ways: quarantined, exit non-zero, said so.
    let g = t.path().join("bad.ndjson");
    std::fs::write(
        &g,
        "{\"pass_id\":\"x\"}\n{\"pass_id\":\"y\",\"passed_at\":\"yesterday\"}\n",
    )
    .unwrap();
    let o = ingest(&out, &["--stream", "rsd", g.to_str().unwrap()]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(!o.status.success());
    assert!(
        s.contains("every record was rejected (2 of 2 quarantined)"),
        "{s}"
    );
    assert_eq!(quarantined(&out), 2);
}

#[test]
fn run_file_sources_bound_their_lines_too() {
    let t = tempfile::tempdir().unwrap();
    let f = t.path().join("passes.ndjson");
    let good =
        |id: &str| format!("{{\"pass_id\":\"{id}\",\"passed_at\":\"2025-11-08T02:00:00Z\"}}\n");
    let mut data = good("r1");
    data.push_str(&"z".repeat(5000));
    data.push('\n');
    data.push_str(&good("r2"));
    std::fs::write(&f, &data).unwrap();
    let tables = t.path().join("tables");
    let cfg = t.path().join("run.toml");
    std::fs::write(
        &cfg,
        format!(
            "tables = {:?}\ninstance_id = \"lines\"\nidle_exit_ms = 300\n[[files]]\nstream = \"rsd\"\npath = {:?}\nmax_record_bytes = 1024\n",
            tables.display().to_string(),
            f.display().to_string()
        ),
    )
    .unwrap();
    let o = pw(&["run", "--config", cfg.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        q(&tables, "SELECT pass_id FROM rsd_passes ORDER BY pass_id"),
        [["r1"], ["r2"]]
    );
    let qr = q(
        &tables,
        "SELECT source_offset, length(raw), reason FROM quarantine",
    );
    assert_eq!(&qr[0][..2], ["52", "1024"]);
    assert!(
        qr[0][2].starts_with("line of 5000 bytes exceeds the 1 KiB record limit"),
        "{qr:?}"
    );
}
