WITH f AS (
  SELECT plate, plate_color, vin, pass_id, passed_at, CAST(passed_at AS BIGINT) AS t_ms,
         site_id, limit_set, unnest(exceeded) AS pollutant
  FROM rsd_passes
  WHERE verdict = 'fail' AND valid AND plate IS NOT NULL
    AND plate_status IN ('standard', 'nonstandard')
    AND passed_at >= to_timestamp($since) AND passed_at < to_timestamp($until)
),
p AS (
  SELECT DISTINCT plate, pass_id, t_ms,
         CASE WHEN $same_pollutant THEN pollutant ELSE '' END AS pk
  FROM f
),
w AS (
  SELECT plate,
         count(*) OVER (PARTITION BY plate, pk ORDER BY t_ms
                        RANGE BETWEEN {window_days_ms_minus_1} PRECEDING AND CURRENT ROW) AS n
  FROM p
),
hits AS (
  SELECT plate, max(n) AS max_failing_in_window FROM w GROUP BY plate
  HAVING max(n) >= $min_failing_passes
)
SELECT f.plate,
       max(f.plate_color) AS plate_color,
       max(f.vin) AS vin,
       h.max_failing_in_window,
       count(DISTINCT f.pass_id) AS failing_passes,
       array_to_string(array_sort(array_agg(DISTINCT f.pollutant)), ',') AS pollutants,
       min(f.passed_at) AS first_fail,
       max(f.passed_at) AS last_fail,
       last_value(f.site_id ORDER BY f.passed_at) AS last_site,
       max(f.limit_set) AS limit_set
FROM hits h JOIN f ON f.plate = h.plate
GROUP BY f.plate, h.max_failing_in_window
ORDER BY h.max_failing_in_window DESC, last_fail DESC, f.plate
