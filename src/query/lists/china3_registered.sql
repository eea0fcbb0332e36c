  SELECT plate, plate_color, vin, vehicle_type, plate_regs,
         CASE WHEN emission_standard IS NOT NULL THEN 'registry_emission_standard'
              ELSE 'registered_before_cutoff' END AS basis
  FROM (SELECT *, count(*) OVER (PARTITION BY plate) AS plate_regs
        FROM vehicles WHERE plate IS NOT NULL AND plate_status IN ('standard', 'nonstandard'))
  WHERE fuel IN ('diesel', 'hybrid_diesel')
    AND length(trim(vehicle_type)) = 3
    AND (upper(substr(trim(vehicle_type), 1, 2)) IN ('H1', 'H2', 'Q1', 'Q2')
         OR upper(trim(vehicle_type)) = 'Z51')
    AND (emission_standard <= $max_emission_standard
         OR (emission_standard IS NULL
             AND registered_on < CAST(to_timestamp($infer_registered_before) AS DATE)))
