WITH d AS (
  SELECT * FROM detections
  WHERE rule_id IN ('rear_o2_flatline', 'rear_o2_periodic', 'rear_o2_mirrors_front', 'dfco_no_lean',
                    'rear_o2_missing', 'rear_o2_low_band', 'obd_catalyst_dtc', 'lambda_implausible',
                    'obd_readiness_incomplete')
    AND detected_at >= to_timestamp($since) AND detected_at < to_timestamp($until)
),
v AS (
  SELECT vin, plate_color, fuel, emission_standard,
         CASE WHEN plate_status IN ('standard', 'nonstandard') THEN plate END AS plate
  FROM vehicles
),
j AS (
  SELECT d.*, v.plate AS reg_plate, v.plate_color AS reg_plate_color,
         (v.fuel = 'natural_gas' AND v.emission_standard = 6) AS gas_vi,
         (d.rule_id = 'lambda_implausible') AS dq
  FROM d LEFT JOIN v ON (d.vin = v.vin
    OR (d.vin IS NULL AND d.plate = v.plate AND d.plate_color = v.plate_color))
),
dq AS (
  SELECT vin, max(detected_at) AS dq_last_at,
         last_value(evidence['upstream_lambda_median'] ORDER BY detected_at) AS dq_upstream,
         last_value(evidence['commanded_lambda_median'] ORDER BY detected_at) AS dq_commanded,
         last_value(evidence['ratio'] ORDER BY detected_at) AS dq_ratio,
         last_value(evidence['n_samples'] ORDER BY detected_at) AS dq_n_samples,
         last_value(evidence_text['hint'] ORDER BY detected_at) AS dq_hint
  FROM d WHERE rule_id = 'lambda_implausible' GROUP BY vin
),
last_pos AS (
  SELECT vin, max(sampled_at) AS last_sampled_at,
         last_value(lon_deg ORDER BY sampled_at) AS last_lon_deg,
         last_value(lat_deg ORDER BY sampled_at) AS last_lat_deg
  FROM obd_samples
  WHERE lon_deg IS NOT NULL AND lat_deg IS NOT NULL AND position_valid IS NOT FALSE
    AND NOT (lon_deg = 0 AND lat_deg = 0)
  GROUP BY vin
),
g AS (
SELECT j.vin,
       max(j.reg_plate) AS plate,
       max(j.reg_plate_color) AS plate_color,
       count(DISTINCT CASE WHEN NOT j.dq THEN j.detection_id END) AS detections,
       sum(CASE WHEN j.rule_id = 'rear_o2_flatline' THEN 1 ELSE 0 END) AS rear_o2_flatline,
       sum(CASE WHEN j.rule_id = 'rear_o2_periodic' THEN 1 ELSE 0 END) AS rear_o2_periodic,
       sum(CASE WHEN j.rule_id = 'rear_o2_mirrors_front' THEN 1 ELSE 0 END) AS rear_o2_mirrors_front,
       sum(CASE WHEN j.rule_id = 'dfco_no_lean' THEN 1 ELSE 0 END) AS dfco_no_lean,
       sum(CASE WHEN j.rule_id = 'rear_o2_missing' THEN 1 ELSE 0 END) AS rear_o2_missing,
       sum(CASE WHEN j.rule_id = 'obd_catalyst_dtc' THEN 1 ELSE 0 END) AS obd_catalyst_dtc,
       max(CASE WHEN NOT j.dq THEN j.strength END) AS max_strength,
       first_value(j.rule_id ORDER BY CASE WHEN j.dq THEN 1 ELSE 0 END, j.strength DESC NULLS LAST, j.detected_at DESC) AS strongest_rule,
       first_value(j.evidence ORDER BY CASE WHEN j.dq THEN 1 ELSE 0 END, j.strength DESC NULLS LAST, j.detected_at DESC) AS strongest_evidence,
       first_value(j.evidence_text ORDER BY CASE WHEN j.dq THEN 1 ELSE 0 END, j.strength DESC NULLS LAST, j.detected_at DESC) AS strongest_evidence_text,
       max(j.detected_at) AS last_detected_at,
       max(p.last_sampled_at) AS last_seen_at,
       max(p.last_lon_deg) AS last_lon_deg,
       max(p.last_lat_deg) AS last_lat_deg,
       max(j.limit_set) AS limit_set,
       sum(CASE WHEN j.rule_id = 'rear_o2_low_band' THEN 1 ELSE 0 END) AS rear_o2_low_band,
       sum(CASE WHEN j.dq THEN 1 ELSE 0 END) AS lambda_implausible,
       sum(CASE WHEN j.rule_id = 'obd_readiness_incomplete' THEN 1 ELSE 0 END) AS obd_readiness_incomplete
FROM j LEFT JOIN last_pos p ON j.vin = p.vin
WHERE $all_vehicles OR coalesce(j.gas_vi, false)
GROUP BY j.vin
)
SELECT g.*,
       CASE WHEN g.detections > 0 THEN 'suspect' ELSE 'not_evaluable' END AS status,
       CASE WHEN q.dq_last_at IS NULL THEN NULL ELSE
         'lambda_implausible: upstream lambda not plausible for a warm closed loop (median '
         || coalesce(CAST(round(q.dq_upstream, 4) AS VARCHAR), '?')
         || ' vs commanded '
         || coalesce(CAST(round(q.dq_commanded, 4) AS VARCHAR), 'none reported')
         || ', ratio '
         || coalesce(CAST(round(q.dq_ratio, 4) AS VARCHAR), '?')
         || ', ' || coalesce(CAST(CAST(q.dq_n_samples AS BIGINT) AS VARCHAR), '?')
         || ' samples): ' || coalesce(q.dq_hint, '')
         || '; lambda-based TWC / rear-O2 rules not evaluated'
       END AS not_evaluable_reason
FROM g LEFT JOIN dq q ON g.vin = q.vin
ORDER BY CASE WHEN g.detections > 0 THEN 0 ELSE 1 END, g.max_strength DESC NULLS LAST,
         g.detections DESC, g.vin
