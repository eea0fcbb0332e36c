-- DuckDB's answer to the question of `plumewatch list rsd-repeat-exceeders` with the default
-- limit set (min_failing_passes 2, window_days 183, same_pollutant true, no date bounds),
-- over the same committed Parquet files: the same columns, the same window function
-- (src/query/lists/rsd_repeat_exceeders.sql). `TABLES` is replaced by the tables directory.
WITH f AS (
  SELECT plate, plate_color, vin, pass_id, passed_at, epoch_ms(passed_at) AS t_ms,
         site_id, limit_set, unnest(exceeded) AS pollutant
  FROM read_parquet('TABLES/rsd_passes/**/*.parquet', hive_partitioning = true)
  WHERE verdict = 'fail' AND valid AND plate IS NOT NULL
    AND plate_status IN ('standard', 'nonstandard')
),
p AS (
  SELECT DISTINCT plate, pass_id, t_ms, pollutant AS pk FROM f
),
w AS (
  SELECT plate,
         count(*) OVER (PARTITION BY plate, pk ORDER BY t_ms
                        RANGE BETWEEN 15811199999 PRECEDING AND CURRENT ROW) AS n
  FROM p
),
hits AS (
  SELECT plate, max(n) AS max_failing_in_window FROM w GROUP BY plate
  HAVING max(n) >= 2
)
SELECT f.plate,
       max(f.plate_color) AS plate_color,
       max(f.vin) AS vin,
       h.max_failing_in_window,
       count(DISTINCT f.pass_id) AS failing_passes,
       array_to_string(list_sort(list_distinct(list(f.pollutant))), ',') AS pollutants,
       min(f.passed_at) AS first_fail,
       max(f.passed_at) AS last_fail,
       arg_max(f.site_id, f.passed_at) AS last_site,
       max(f.limit_set) AS limit_set
FROM f JOIN hits h ON f.plate = h.plate
GROUP BY f.plate, h.max_failing_in_window
ORDER BY h.max_failing_in_window DESC, last_fail DESC, f.plate
