-- plumewatch's RSD ingest job, written for DuckDB: the same columns and rules as
-- `plumewatch ingest --stream rsd` with no registry and the default limit set
-- (fixtures/limits/cn-observed.toml), so that scripts/compare_duckdb.sh compares the two on
-- one job (issue 12 item 1). Run by bench/duckdb/run_job.py, which first defines the view
-- `rsd_input` (every input field of schemas/rsd_pass.schema.json, typed, plus `filename`)
-- over an NDJSON or CSV file and replaces :out_dir below.
--
-- Rules, with the code each one mirrors:
--   plate normaliser     src/model.rs PlateText::parse, classify; src/enrich/plate_id.rs
--   colour, fuel words   src/model.rs PlateColor::parse, Fuel::parse
--   reduction            src/enrich/reduce.rs (remote-sensing.md §4.2–§4.4), same operation
--                        order as the Rust code so that the doubles agree bit for bit
--   validity, verdict    src/detect/rsd_limits.rs (§1.4, §1.5, §4.5)
--   flags, row           src/enrich/rsd.rs append_pass
--   date partitions      src/sink/parquet.rs (calendar day in [time].zone)
-- Every threshold below is a value of cn-observed.toml (version 2026.1); change both together.
--
-- Known differences (none of them is exercised by `plumewatch gen rsd`):
--   * source_offset is NULL: DuckDB's readers do not expose a record's byte offset.
--   * quarantine: records plumewatch would quarantine (no pass_id, time outside
--     [2000-01-01, now + 1 day], unknown fuel, control character inside the plate) are left
--     out here rather than written to a quarantine table; GBK-misread plates are not detected.
--   * plate_raw keeps control characters instead of escaping them as \uXXXX; a colour word in
--     front of a plate is stripped only when it is the longest colour word that matches.

SET TimeZone = 'UTC';

-- ---- plate normaliser (src/model.rs) -------------------------------------------------
-- Full-width ASCII → half-width, then ASCII upper case (one translate), then separators and
-- zero-width characters removed (`clean`).
CREATE OR REPLACE TEMP MACRO pw_clean(s) AS regexp_replace(
    translate(s,
        '！＂＃＄％＆＇（）＊＋，－．／０１２３４５６７８９：；＜＝＞？＠ＡＢＣＤＥＦＧＨＩＪＫＬＭＮＯＰＱＲＳＴＵＶＷＸＹＺ［＼］＾＿｀ａｂｃｄｅｆｇｈｉｊｋｌｍｎｏｐｑｒｓｔｕｖｗｘｙｚ｛｜｝～abcdefghijklmnopqrstuvwxyz',
        '!"#$%&''()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`ABCDEFGHIJKLMNOPQRSTUVWXYZ{|}~ABCDEFGHIJKLMNOPQRSTUVWXYZ'),
    '[\s·•.\-_\x{30FB}\x{FEFF}\x{200B}-\x{200D}\x{2060}]', '', 'g');

-- Ends trimmed of whitespace, control and zero-width characters (`end_junk`).
CREATE OR REPLACE TEMP MACRO pw_trim_junk(s) AS regexp_replace(
    s, '^[\p{Cc}\s\x{FEFF}\x{200B}-\x{200D}\x{2060}]+|[\p{Cc}\s\x{FEFF}\x{200B}-\x{200D}\x{2060}]+$', '', 'g');

-- DEFAULT_PLATE_PLACEHOLDERS, empty, no letter or digit, all zeros.
CREATE OR REPLACE TEMP MACRO pw_placeholder(c) AS
    c = '' OR NOT regexp_matches(c, '[\p{L}\p{N}]') OR regexp_full_match(c, '0+')
    OR c IN ('无车牌', '无牌', '无牌车', '无号牌', '无车牌号', '未识别', '未识别车牌', '车牌未识别',
             '识别失败', '未知', '未知车牌', '无结果', '车牌', '车牌号', '无', '空', '默认', 'NULL',
             'NONE', 'UNKNOWN', 'NOPLATE', 'N/A');

-- Class from first/last character and length (`classify::by_suffix`).
CREATE OR REPLACE TEMP MACRO pw_by_suffix(p) AS CASE
    WHEN starts_with(p, '使') THEN 'embassy'
    WHEN starts_with(p, '领') THEN 'consulate'
    WHEN ends_with(p, '挂') THEN 'trailer'
    WHEN ends_with(p, '学') THEN 'coach'
    WHEN ends_with(p, '警') THEN 'police'
    WHEN ends_with(p, '港') OR ends_with(p, '澳') THEN 'hk_macau'
    WHEN length(p) = 8 THEN 'new_energy'
    ELSE 'ordinary' END;

-- (status, class): strict §6 regex → standard; special forms or the permissive fallback →
-- nonstandard; else unrecognised (`classify`).
CREATE OR REPLACE TEMP MACRO pw_classify(p) AS CASE
    WHEN regexp_full_match(p, '[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼使领][A-HJ-NP-Z](?:[A-HJ-NP-Z0-9]{4}[A-HJ-NP-Z0-9挂学警港澳]|[DF][A-HJ-NP-Z0-9][0-9]{4}|[0-9]{5}[DF])')
        THEN {'status': 'standard', 'class': pw_by_suffix(p)}
    WHEN regexp_full_match(p, '使[0-9]{6}|[0-9]{6}使')
        THEN {'status': 'nonstandard', 'class': 'embassy'}
    WHEN regexp_full_match(p, '[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼](?:[A-HJ-NP-Z][A-HJ-NP-Z0-9]{4}|[0-9]{5})领')
        THEN {'status': 'nonstandard', 'class': 'consulate'}
    WHEN regexp_full_match(p, '[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼][A-HJ-NP-Z][A-HJ-NP-Z0-9]{4,5}应急')
        THEN {'status': 'nonstandard', 'class': 'emergency'}
    WHEN regexp_full_match(p, '[A-Z]{2}[0-9]{5}|WJ(?:[京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼]|[0-9]{2})[A-HJ-NP-Z0-9]{4,5}\p{Han}?')
        THEN {'status': 'nonstandard', 'class': 'military'}
    WHEN regexp_full_match(p, '\p{Han}[A-Z][A-Z0-9挂学警港澳]{5,6}')
        THEN {'status': 'nonstandard', 'class': pw_by_suffix(p)}
    ELSE {'status': 'unrecognised', 'class': NULL::VARCHAR} END;

-- Canonical colour of a colour word (`PlateColor::parse`); NULL when not understood.
CREATE OR REPLACE TEMP MACRO pw_color_base(b) AS CASE
    WHEN b IN ('blue', '蓝', '蓝底白字') THEN 'blue'
    WHEN b IN ('yellow', '黄', '黄底黑字') THEN 'yellow'
    WHEN b IN ('black', '黑', '黑底白字') THEN 'black'
    WHEN b IN ('white', '白', '白底黑字') THEN 'white'
    WHEN b IN ('green', 'gradient_green', 'new_energy_green', '绿', '渐变绿', '渐变绿底黑字') THEN 'green'
    WHEN b IN ('yellow_green', 'yellowgreen', '黄绿', '黄绿双拼', '黄绿双拼底黑字') THEN 'yellow_green'
    WHEN b IN ('other', '其他', '其它') THEN 'other'
    ELSE NULL END;
CREATE OR REPLACE TEMP MACRO pw_color_norm(l) AS
    pw_color_base(coalesce(nullif(regexp_replace(l, '(色牌|牌|色)$', ''), ''), l));
CREATE OR REPLACE TEMP MACRO pw_color(s) AS pw_color_norm(replace(replace(
    translate(trim(s), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz'), '-', '_'), ' ', '_'));

-- Fuel word → canonical fuel (`Fuel::parse`); '?' when not understood (quarantined).
CREATE OR REPLACE TEMP MACRO pw_fuel(s) AS CASE
    WHEN s IS NULL THEN NULL
    ELSE CASE translate(trim(s), 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
        WHEN 'petrol' THEN 'petrol' WHEN 'gasoline' THEN 'petrol' WHEN 'a' THEN 'petrol' WHEN '汽油' THEN 'petrol'
        WHEN 'diesel' THEN 'diesel' WHEN 'b' THEN 'diesel' WHEN '柴油' THEN 'diesel'
        WHEN 'natural_gas' THEN 'natural_gas' WHEN 'natural gas' THEN 'natural_gas' WHEN 'ng' THEN 'natural_gas'
        WHEN 'cng' THEN 'natural_gas' WHEN 'lng' THEN 'natural_gas' WHEN 'e' THEN 'natural_gas' WHEN '天然气' THEN 'natural_gas'
        WHEN 'lpg' THEN 'lpg' WHEN 'f' THEN 'lpg' WHEN '液化石油气' THEN 'lpg'
        WHEN 'hybrid_petrol' THEN 'hybrid_petrol' WHEN 'hybrid petrol/electric' THEN 'hybrid_petrol'
        WHEN 'o' THEN 'hybrid_petrol' WHEN '混合动力' THEN 'hybrid_petrol'
        WHEN 'hybrid_diesel' THEN 'hybrid_diesel' WHEN 'hybrid diesel/electric' THEN 'hybrid_diesel'
        WHEN 'electric' THEN 'electric' WHEN 'c' THEN 'electric' WHEN '电' THEN 'electric' WHEN '纯电动' THEN 'electric'
        ELSE '?' END END;

-- ---- the job ---------------------------------------------------------------------------
COPY (
WITH parsed AS (
    SELECT *,
        coalesce(epoch_ms(try_cast(passed_at AS BIGINT)) AT TIME ZONE 'UTC',
                 try_cast(passed_at AS TIMESTAMPTZ)) AS at_ts,
        pw_fuel(fuel) AS fuel_c,
        -- plate: ends trimmed, cleaned (NULL when absent)
        pw_trim_junk(plate) AS plate_trim,
        nullif(trim(plate_color), '') AS color_in
    FROM rsd_input
),
plate1 AS (
    SELECT *,
        pw_clean(plate_trim) AS plate_clean,
        length(regexp_replace(plate, '[^\p{Cc}]', '', 'g'))
            - length(regexp_replace(plate_trim, '[^\p{Cc}]', '', 'g')) AS ctrl_stripped
    FROM parsed
    WHERE pass_id IS NOT NULL AND at_ts IS NOT NULL
      AND at_ts >= TIMESTAMPTZ '2000-01-01 00:00:00+00'
      AND at_ts <= now() + INTERVAL 1 DAY
      AND (fuel_c IS NULL OR fuel_c <> '?')
      AND NOT coalesce(regexp_matches(plate_trim, '[\p{Cc}\x{FFFD}]'), false)
),
plate2 AS (
    SELECT *,
        plate IS NULL OR pw_placeholder(plate_clean) AS no_plate,
        pw_classify(plate_clean) AS cls0
    FROM plate1
),
plate3 AS (
    SELECT *,
        -- a colour word in front of an otherwise unrecognised plate (`colour_prefixes`)
        CASE WHEN NOT no_plate AND cls0.status = 'unrecognised' THEN
            regexp_extract(plate_clean,
                '^(黄绿双拼色牌|渐变绿色牌|黄绿双拼色|黄绿双拼牌|黄绿双拼底|渐变绿色|渐变绿牌|渐变绿底|黄绿色牌|黄绿双拼|蓝色牌|黄色牌|黑色牌|白色牌|绿色牌|渐变绿|黄绿色|黄绿牌|黄绿底|蓝色|蓝牌|蓝底|黄色|黄牌|黄底|黑色|黑牌|黑底|白色|白牌|白底|绿色|绿牌|绿底|黄绿|蓝|黄|黑|白|绿)(.+)$',
                ['word', 'rest'])
        END AS pre
    FROM plate2
),
plate4 AS (
    SELECT *,
        CASE WHEN pre.word <> '' AND pw_classify(pre.rest).status <> 'unrecognised'
             THEN pre.rest END AS pre_rest
    FROM plate3
),
plate AS (
    SELECT *,
        CASE WHEN no_plate THEN NULL WHEN pre_rest IS NOT NULL THEN pre_rest ELSE plate_clean END AS plate_n,
        CASE WHEN no_plate THEN 'no_plate' WHEN pre_rest IS NOT NULL THEN pw_classify(pre_rest).status
             ELSE cls0.status END AS plate_status_n,
        CASE WHEN no_plate THEN NULL WHEN pre_rest IS NOT NULL THEN pw_classify(pre_rest).class
             ELSE cls0.class END AS plate_class_n,
        CASE WHEN pre_rest IS NOT NULL THEN pw_color_base(regexp_replace(pre.word, '(色牌|色|牌|底)$', '')) END AS prefix_color,
        pw_color(color_in) AS color_explicit
    FROM plate4
),
colour AS (
    SELECT *,
        CASE WHEN color_in IS NULL THEN prefix_color ELSE color_explicit END AS plate_color_n,
        -- class of the fuel: selects MF, windows and limits
        CASE WHEN fuel_c IN ('diesel', 'hybrid_diesel') THEN 'ci'
             WHEN fuel_c IN ('petrol', 'natural_gas', 'lpg', 'hybrid_petrol') THEN 'si'
             WHEN fuel_c = 'electric' THEN 'ev' END AS fclass
    FROM plate
),
reduced AS (
    SELECT *,
        -- §4.2
        42.0::DOUBLE / (2.79::DOUBLE + 2.0::DOUBLE * co_co2_ratio) AS co2_pct_r,
        -- §4.3: D = 1 + Q + RF·SF·Q', k = 1000 / MF / D ([fuels], default_mf_g_per_mol_c)
        1000.0::DOUBLE / (CASE fuel_c WHEN 'natural_gas' THEN 16.04::DOUBLE WHEN 'lpg' THEN 14.60::DOUBLE
                                      ELSE 14.0::DOUBLE END)
            / (1.0::DOUBLE + co_co2_ratio + 2.0::DOUBLE * 3.0::DOUBLE * coalesce(hc_co2_ratio, 0.0::DOUBLE)) AS k,
        -- §4.4 [vsp]: v·(1.1·a + 9.81·G + 0.213) + 0.000302·v³, v = speed / 3.6, G = grade / 100
        speed_kmh / 3.6::DOUBLE AS v_ms,
        coalesce(road_grade_pct, 0.0::DOUBLE) / 100.0::DOUBLE AS grade_frac
    FROM colour
),
judged AS (
    SELECT *,
        co_co2_ratio * co2_pct_r AS co_pct_r,
        hc_co2_ratio * co2_pct_r * 1e4::DOUBLE AS hc_ppm_r,
        no_co2_ratio * co2_pct_r * 1e4::DOUBLE AS no_ppm_r,
        46.006::DOUBLE * k * no_co2_ratio AS no_g_r,
        46.006::DOUBLE * k * no2_co2_ratio AS no2_g_r,
        v_ms * (1.1::DOUBLE * accel_mps2 + 9.81::DOUBLE * grade_frac + 0.213::DOUBLE)
            + 0.000302::DOUBLE * v_ms * v_ms * v_ms AS vsp_r
    FROM reduced
),
statuses AS (
    SELECT *,
        -- [validity.*]: speed [5, 120] required for both classes
        CASE WHEN fclass NOT IN ('ci', 'si') OR fclass IS NULL THEN 'not_checked'
             WHEN speed_kmh IS NULL THEN 'missing'
             WHEN speed_kmh < 5.0 OR speed_kmh > 120.0 THEN 'out_of_window' ELSE 'ok' END AS speed_st,
        -- diesel: accel ≥ 0 required
        CASE WHEN fclass IS DISTINCT FROM 'ci' THEN 'not_checked'
             WHEN accel_mps2 IS NULL THEN 'missing'
             WHEN accel_mps2 < 0.0 THEN 'out_of_window' ELSE 'ok' END AS accel_st,
        -- spark ignition: VSP [0, 14] required (NULL when speed or accel is missing)
        CASE WHEN fclass IS DISTINCT FROM 'si' THEN 'not_checked'
             WHEN speed_kmh IS NULL OR accel_mps2 IS NULL THEN 'missing'
             WHEN vsp_r < 0.0 OR vsp_r > 14.0 THEN 'out_of_window' ELSE 'ok' END AS vsp_st,
        -- wind ≤ 5, optional
        CASE WHEN fclass NOT IN ('ci', 'si') OR fclass IS NULL THEN 'not_checked'
             WHEN wind_mps IS NULL THEN 'not_measured'
             WHEN wind_mps > 5.0 THEN 'out_of_window' ELSE 'ok' END AS wind_st,
        -- ambient temperature [-20, 45], optional
        CASE WHEN fclass NOT IN ('ci', 'si') OR fclass IS NULL THEN 'not_checked'
             WHEN ambient_temp_c IS NULL THEN 'not_measured'
             WHEN ambient_temp_c < -20.0 OR ambient_temp_c > 45.0 THEN 'out_of_window' ELSE 'ok' END AS temp_st,
        -- no plume-CO2 window in cn-observed
        'not_checked' AS co2_st
    FROM judged
),
valid AS (
    SELECT *,
        nullif(concat_ws('; ',
            CASE WHEN fclass IS NULL THEN 'fuel unknown (not on the pass, not in the registry)'
                 WHEN fclass = 'ev' THEN 'electric vehicle: no tailpipe to judge' END,
            CASE speed_st WHEN 'missing' THEN 'speed_kmh missing'
                 WHEN 'out_of_window' THEN printf('speed_kmh %.3f outside [5, 120]', speed_kmh) END,
            CASE accel_st WHEN 'missing' THEN 'accel_mps2 missing'
                 WHEN 'out_of_window' THEN printf('accel_mps2 %.3f outside [0, ∞]', accel_mps2) END,
            CASE vsp_st WHEN 'missing' THEN 'vsp_kw_t missing'
                 WHEN 'out_of_window' THEN printf('vsp_kw_t %.3f outside [0, 14]', vsp_r) END,
            CASE wind_st WHEN 'out_of_window' THEN printf('wind_mps %.3f outside [∞, 5]', wind_mps) END,
            CASE temp_st WHEN 'out_of_window' THEN printf('ambient_temp_c %.3f outside [-20, 45]', ambient_temp_c) END
        ), '') AS invalid_reason_r
    FROM statuses
),
verdicts AS (
    SELECT *,
        -- [limits.*]: strictly above the limit fails (§1.3, §3)
        CASE WHEN invalid_reason_r IS NOT NULL OR fclass NOT IN ('ci', 'si') OR fclass IS NULL THEN []::VARCHAR[]
             WHEN fclass = 'ci' THEN list_filter([
                 CASE WHEN opacity_pct > 30.0 THEN 'opacity' END,
                 CASE WHEN ringelmann > 1.0 THEN 'ringelmann' END,
                 CASE WHEN no_ppm_r > 1500.0 THEN 'no' END], lambda x: x IS NOT NULL)
             ELSE list_filter([
                 CASE WHEN no_ppm_r > 1500.0 THEN 'no' END,
                 CASE WHEN co_pct_r > 2.5 THEN 'co' END,
                 CASE WHEN hc_ppm_r > 1200.0 THEN 'hc' END], lambda x: x IS NOT NULL)
        END AS exceeded_r,
        CASE WHEN invalid_reason_r IS NOT NULL OR fclass NOT IN ('ci', 'si') OR fclass IS NULL THEN false
             WHEN fclass = 'ci' THEN opacity_pct IS NOT NULL OR ringelmann IS NOT NULL OR no_ppm_r IS NOT NULL
             ELSE no_ppm_r IS NOT NULL OR co_pct_r IS NOT NULL OR hc_ppm_r IS NOT NULL
        END AS judged_r
    FROM valid
)
SELECT
    pass_id,
    at_ts AS passed_at,
    site_id,
    lane,
    instrument,
    plate_n AS plate,
    plate_color_n AS plate_color,
    plate_status_n AS plate_status,
    fuel_c AS fuel,
    CASE WHEN fuel_c IS NOT NULL THEN 'pass' END AS fuel_source,
    vehicle_category,
    NULL::VARCHAR AS vin,
    speed_kmh, accel_mps2, road_grade_pct,
    co_co2_ratio, hc_co2_ratio, no_co2_ratio, no2_co2_ratio, nh3_co2_ratio,
    opacity_pct, ringelmann, co2_plume_pct_m, wind_mps, ambient_temp_c, humidity_pct,
    pressure_kpa, lon_deg, lat_deg, plate_confidence_pct,
    co2_pct_r AS co2_pct,
    co_pct_r AS co_pct,
    hc_ppm_r AS hc_ppm,
    no_ppm_r AS no_ppm,
    -- §4.3: EF_x = M_x · k · R_x (k = 1000 / MF / D); HC as propane, R = RF·Q'; NO as NO2
    CASE WHEN co_co2_ratio IS NOT NULL THEN 28.010::DOUBLE * k * co_co2_ratio END AS co_g_per_kg,
    CASE WHEN co_co2_ratio IS NOT NULL THEN 44.096::DOUBLE * k * 2.0::DOUBLE * hc_co2_ratio END AS hc_g_per_kg,
    CASE WHEN co_co2_ratio IS NOT NULL THEN no_g_r END AS no_g_per_kg,
    CASE WHEN co_co2_ratio IS NOT NULL THEN no2_g_r END AS no2_g_per_kg,
    CASE WHEN co_co2_ratio IS NOT NULL THEN 17.031::DOUBLE * k * nh3_co2_ratio END AS nh3_g_per_kg,
    CASE WHEN co_co2_ratio IS NOT NULL THEN no_g_r + no2_g_r END AS nox_g_per_kg,
    vsp_r AS vsp_kw_t,
    vsp_reported_kw_t,
    speed_st AS speed_status,
    accel_st AS accel_status,
    vsp_st AS vsp_status,
    wind_st AS wind_status,
    temp_st AS temp_status,
    co2_st AS co2_status,
    invalid_reason_r IS NULL AS valid,
    -- the first reason's stable code (rsd_limits::code), then every reason in words
    CASE WHEN fclass IS NULL THEN 'fuel_unknown'
         WHEN fclass = 'ev' THEN 'electric_vehicle'
         WHEN speed_st = 'missing' THEN 'speed_missing'
         WHEN speed_st = 'out_of_window' THEN CASE WHEN speed_kmh < 5.0 THEN 'speed_too_low' ELSE 'speed_too_high' END
         WHEN accel_st = 'missing' THEN 'accel_missing'
         WHEN accel_st = 'out_of_window' THEN 'accel_too_low'
         WHEN vsp_st = 'missing' THEN 'vsp_missing'
         WHEN vsp_st = 'out_of_window' THEN CASE WHEN vsp_r < 0.0 THEN 'vsp_too_low' ELSE 'vsp_too_high' END
         WHEN wind_st = 'out_of_window' THEN 'wind_too_high'
         WHEN temp_st = 'out_of_window' THEN CASE WHEN ambient_temp_c < -20.0 THEN 'temp_too_low' ELSE 'temp_too_high' END
         WHEN NOT judged_r THEN 'no_limited_pollutant_measured'
    END AS invalid_code,
    coalesce(invalid_reason_r,
             CASE WHEN NOT judged_r THEN 'none of the limited pollutants measured' END) AS invalid_detail,
    CASE WHEN NOT judged_r THEN 'invalid' WHEN len(exceeded_r) = 0 THEN 'pass' ELSE 'fail' END AS verdict,
    exceeded_r AS exceeded,
    'cn-observed@2026.1' AS limit_set,
    -- flags in the order append_pass pushes them
    list_filter([
        CASE WHEN ctrl_stripped > 0 THEN 'plate_control_stripped' END,
        CASE WHEN prefix_color IS NOT NULL THEN 'colour_prefix_stripped' END,
        CASE WHEN color_in IS NOT NULL AND color_explicit IS NOT NULL AND prefix_color IS NOT NULL
                  AND prefix_color <> color_explicit THEN 'plate_colour_conflict' END,
        CASE WHEN color_in IS NOT NULL AND color_explicit IS NULL THEN 'plate_color_unknown' END,
        CASE WHEN plate_color_n IS NOT NULL AND plate_class_n IS NOT NULL AND plate_color_n <> 'other'
                  AND (plate_color_n IN ('green', 'yellow_green')) <> (plate_class_n = 'new_energy')
             THEN 'plate_colour_length_mismatch' END,
        CASE WHEN co_co2_ratio IS NOT NULL AND hc_co2_ratio IS NULL THEN 'hc_ratio_missing_as_zero' END,
        CASE WHEN fuel_c IS NULL AND co_co2_ratio IS NOT NULL THEN 'fuel_unknown_default_mf' END
    ], lambda x: x IS NOT NULL) AS flags,
    filename AS source_file,
    NULL::UBIGINT AS source_offset,
    plate AS plate_raw,
    plate_class_n AS plate_class,
    color_in AS plate_color_raw,
    -- [time].zone = Asia/Shanghai
    (at_ts AT TIME ZONE 'Asia/Shanghai')::DATE AS date
FROM verdicts
) TO ':out_dir' (FORMAT parquet, COMPRESSION snappy, PARTITION_BY (date), OVERWRITE_OR_IGNORE);
