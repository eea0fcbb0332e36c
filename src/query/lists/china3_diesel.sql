WITH v AS ({china3_registered}),
s AS (
  SELECT plate, plate_color, 'rsd:' || pass_id AS sighting, passed_at AS seen_at, site_id, flags
  FROM rsd_passes
  WHERE plate IS NOT NULL AND plate_status IN ('standard', 'nonstandard')
    AND passed_at >= to_timestamp($since) AND passed_at < to_timestamp($until)
  UNION ALL
  SELECT plate, plate_color, 'plates:' || read_id, read_at, site_id, flags
  FROM plate_reads
  WHERE plate IS NOT NULL AND plate_status IN ('standard', 'nonstandard')
    AND read_at >= to_timestamp($since) AND read_at < to_timestamp($until)
),
j AS (
  SELECT s.plate, coalesce(v.plate_color, s.plate_color) AS plate_color, v.vin, v.basis,
         s.sighting, s.seen_at, s.site_id,
         (s.plate_color IS NOT NULL AND v.plate_color = s.plate_color) AS colour_confirmed
  FROM v JOIN s ON s.plate = v.plate
   AND ((s.plate_color IS NOT NULL AND v.plate_color = s.plate_color)
        OR (v.plate_regs = 1 AND (s.plate_color IS NULL OR v.plate_color IS NULL)))
  WHERE NOT array_has(coalesce(s.flags, make_array()), 'plate_color_unknown')
)
SELECT plate,
       max(plate_color) AS plate_color,
       max(vin) AS vin,
       count(DISTINCT sighting) AS sightings,
       min(seen_at) AS first_seen,
       max(seen_at) AS last_seen,
       last_value(site_id ORDER BY seen_at) AS last_site,
       array_to_string(array_sort(array_agg(DISTINCT site_id)), ',') AS sites,
       max(basis) AS basis,
       bool_and(colour_confirmed) AS plate_colour_confirmed,
       '1' AS rule_version
FROM j
GROUP BY plate
ORDER BY last_seen DESC, plate
