//! One ANPR plate read to a `plate_reads` row, joined to the registry; a China III vehicle
//! seen by the camera gives a sighting (`obd-remote-monitoring.md §5`).

use crate::decode::fields::pr as F;
use crate::decode::record::{FieldError, Record};
use crate::decode::text::SourcePos;
use crate::detect::china3;
use crate::enrich::rsd::RsdContext;
use crate::model::{Plate, PlateColor};
use crate::schema::{DetectionRow, PlateReadsBuilder};

/// Appends one read; pushes a China III detection when the rule applies.
pub fn append_read(
    rec: &Record,
    pos: &SourcePos<'_>,
    ctx: &RsdContext<'_>,
    out: &mut PlateReadsBuilder,
    detections: &mut Vec<DetectionRow>,
) -> Result<(), FieldError> {
    let plate = rec
        .str(F::PLATE)
        .and_then(Plate::normalise)
        .ok_or_else(|| FieldError::field("plate", "empty plate"))?;
    let color = rec.str(F::PLATE_COLOR).and_then(PlateColor::parse);
    let vehicle = ctx.registry.lookup(&plate.0, color);
    let read_id = rec.str(F::READ_ID).unwrap_or_default();
    let at = rec.time(F::READ_AT).unwrap_or_default();
    out.read_id.append_value(read_id);
    out.read_at.append_value(at);
    out.site_id.append_option(rec.str(F::SITE_ID));
    out.plate.append_value(&plate.0);
    out.plate_color.append_option(color.map(PlateColor::as_str));
    out.plate_status.append_value(plate.status().as_str());
    out.confidence_pct.append_option(rec.num(F::CONFIDENCE));
    out.lon_deg.append_option(rec.num(F::LON));
    out.lat_deg.append_option(rec.num(F::LAT));
    out.vin
        .append_option(vehicle.and_then(|v| v.vin.as_deref()));
    out.source_file.append_value(pos.file);
    out.source_offset.append_value(pos.offset);
    if let Some(v) = vehicle
        && let Some(basis) = china3::applies(v, &ctx.limits.china3)
    {
        let s = china3::Sighting {
            stream: "plates",
            source_key: read_id,
            at_ms: at,
            site_id: rec.str(F::SITE_ID),
            lon_deg: rec.num(F::LON),
            lat_deg: rec.num(F::LAT),
        };
        detections.push(china3::detection(
            v,
            basis,
            &s,
            &ctx.limits.china3,
            ctx.limit_set_id,
        ));
    }
    Ok(())
}
