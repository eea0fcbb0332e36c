//! One ANPR plate read to a `plate_reads` row, joined to the registry by plate + colour; a
//! China III vehicle seen by the camera gives a sighting (`obd-remote-monitoring.md §5`).
//! Plate and colour go through the one normaliser ([`crate::enrich::plate_id`]): a "no plate"
//! read is stored with plate NULL and status `no_plate`, never joined and never alerted on.

use datafusion::arrow::array::{ListBuilder, StringBuilder};

use crate::decode::fields::pr as F;
use crate::decode::record::{FieldError, Record};
use crate::decode::text::SourcePos;
use crate::detect::china3;
use crate::enrich::plate_id::PlateId;
use crate::enrich::rsd::RsdContext;
use crate::model::PlateColor;
use crate::schema::{DetectionRow, PlateReadsBuilder};

/// Appends one read; pushes a China III detection when the rule applies. Returns the
/// normalised plate when it is recognised (the only plates an entrance alert may name).
/// Errors (field `plate`: control character inside, lone surrogate, GBK mojibake) leave `out`
/// untouched.
pub fn append_read(
    rec: &Record,
    pos: &SourcePos<'_>,
    ctx: &RsdContext<'_>,
    out: &mut PlateReadsBuilder,
    detections: &mut Vec<DetectionRow>,
) -> Result<Option<String>, FieldError> {
    let mut id = PlateId::from_fields(
        rec.str(F::PLATE),
        rec.plate_placeholder,
        rec.str(F::PLATE_COLOR),
    )?;
    let joined = id.join(ctx.registry);
    let vehicle = joined.map(|j| j.vehicle);
    let read_id = rec.str(F::READ_ID).unwrap_or_default();
    let at = rec.time(F::READ_AT).unwrap_or_default();
    out.read_id.append_value(read_id);
    out.read_at.append_value(at);
    out.site_id.append_option(rec.str(F::SITE_ID));
    out.plate.append_option(id.plate());
    out.plate_color
        .append_option(id.color.map(PlateColor::as_str));
    out.plate_status.append_value(id.status().as_str());
    out.confidence_pct.append_option(rec.num(F::CONFIDENCE));
    out.lon_deg.append_option(rec.num(F::LON));
    out.lat_deg.append_option(rec.num(F::LAT));
    out.vin
        .append_option(vehicle.and_then(|v| v.vin.as_deref()));
    out.source_file.append_value(pos.file);
    out.source_offset.append_value(pos.offset);
    out.plate_cols[0].append_option(id.raw.as_deref());
    out.plate_cols[1].append_option(id.class_str());
    out.plate_cols[2].append_option(id.color_raw.as_deref());
    append_list(&mut out.flags, &id.flags);
    if let Some(j) = joined {
        let s = china3::Sighting {
            stream: "plates",
            source_key: read_id,
            at_ms: at,
            site_id: rec.str(F::SITE_ID),
            lon_deg: rec.num(F::LON),
            lat_deg: rec.num(F::LAT),
            colour_confirmed: j.colour_confirmed,
            read_plate_color: id.color.map(PlateColor::as_str),
        };
        crate::detect::check_record(
            &ctx.limits.rules,
            &crate::detect::RecordInput::Sighting {
                vehicle: j.vehicle,
                sighting: &s,
            },
            ctx.limit_set_id,
            detections,
        );
    }
    if id.text.is_recognised() {
        Ok(id.plate().map(str::to_string))
    } else {
        Ok(None)
    }
}

/// Appends one list value (`flags`).
pub fn append_list(b: &mut ListBuilder<StringBuilder>, items: &[&str]) {
    for i in items {
        b.values().append_value(i);
    }
    b.append(true);
}
