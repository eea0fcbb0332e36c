//! The vehicle registry in memory: plate (+ colour) → registered vehicle, loaded from the
//! `vehicles` table and used to enrich passes and plate reads (DESIGN.md "enrich").

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{Date32Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::model::{Fuel, PlateColor};

/// One registered vehicle.
#[derive(Clone, Debug, PartialEq)]
pub struct VehicleInfo {
    pub plate: String,
    pub plate_color: Option<PlateColor>,
    pub vin: Option<String>,
    pub fuel: Option<Fuel>,
    /// Emission stage 0–6.
    pub emission_standard: Option<u8>,
    pub emission_standard_raw: Option<String>,
    /// GA 802 code.
    pub vehicle_type: Option<String>,
    /// Days since 1970-01-01.
    pub registered_on: Option<i32>,
}

/// Result of [`Registry::lookup`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Lookup<'a> {
    /// Plate and colour match one registered vehicle.
    Matched(&'a VehicleInfo),
    /// Matched on the plate number alone (no colour on the record, or none on file); the
    /// number is registered once. The colour is not confirmed.
    PlateOnly(&'a VehicleInfo),
    /// The plate number is not registered.
    NotRegistered,
    /// The plate is registered in other colours only: another vehicle, or a misread.
    ColourConflict,
    /// No colour to decide between several registrations of the number.
    Ambiguous,
}

/// Plate → vehicles (several when plate colours differ).
#[derive(Clone, Debug, Default)]
pub struct Registry {
    by_plate: HashMap<String, Vec<VehicleInfo>>,
    by_vin: HashMap<String, (String, usize)>,
}

impl Registry {
    /// Adds (or replaces, same plate and colour) a vehicle.
    pub fn insert(&mut self, v: VehicleInfo) {
        let list = self.by_plate.entry(v.plate.clone()).or_default();
        let idx = match list.iter().position(|o| o.plate_color == v.plate_color) {
            Some(i) => {
                list[i] = v.clone();
                i
            }
            None => {
                list.push(v.clone());
                list.len() - 1
            }
        };
        if let Some(vin) = &v.vin {
            self.by_vin.insert(vin.clone(), (v.plate.clone(), idx));
        }
    }

    /// Number of plates.
    pub fn len(&self) -> usize {
        self.by_plate.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.by_plate.is_empty()
    }

    /// The registered vehicle for a normalised plate and colour. Plate + colour identify a
    /// vehicle (the same number in two colours is two vehicles, DESIGN.md "Time, plates and
    /// keys"): with a colour, only a vehicle of that colour matches, or the one vehicle of
    /// that number when its colour is not on file ([`Lookup::PlateOnly`]); without a colour,
    /// the number must be registered once.
    pub fn lookup(&self, plate: &str, color: Option<PlateColor>) -> Lookup<'_> {
        let Some(list) = self.by_plate.get(plate).filter(|l| !l.is_empty()) else {
            return Lookup::NotRegistered;
        };
        match color {
            Some(c) => {
                if let Some(v) = list.iter().find(|v| v.plate_color == Some(c)) {
                    Lookup::Matched(v)
                } else if list.len() == 1 && list[0].plate_color.is_none() {
                    Lookup::PlateOnly(&list[0])
                } else if list.iter().any(|v| v.plate_color.is_some()) {
                    Lookup::ColourConflict
                } else {
                    Lookup::Ambiguous
                }
            }
            None if list.len() == 1 => Lookup::PlateOnly(&list[0]),
            None => Lookup::Ambiguous,
        }
    }

    /// The vehicle with this VIN.
    pub fn by_vin(&self, vin: &str) -> Option<&VehicleInfo> {
        let (plate, i) = self.by_vin.get(vin)?;
        self.by_plate.get(plate).and_then(|l| l.get(*i))
    }

    /// Loads every Parquet file under `dir` (the `vehicles` table). A missing directory is an
    /// empty registry.
    pub fn load(dir: &Path) -> Result<Registry, String> {
        let mut reg = Registry::default();
        if !dir.exists() {
            return Ok(reg);
        }
        let files = walk_parquet(dir)?;
        for p in files {
            let f = File::open(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let rdr = ParquetRecordBatchReaderBuilder::try_new(f)
                .and_then(|b| b.build())
                .map_err(|e| format!("{}: {e}", p.display()))?;
            for batch in rdr {
                let b = batch.map_err(|e| format!("{}: {e}", p.display()))?;
                let col = |n: &str| {
                    b.column_by_name(n)
                        .ok_or_else(|| format!("{}: no column {n}", p.display()))
                };
                let plate = col("plate")?.as_string::<i32>().clone();
                let color = col("plate_color")?.as_string::<i32>().clone();
                let vin = col("vin")?.as_string::<i32>().clone();
                let fuel = col("fuel")?.as_string::<i32>().clone();
                let es = col("emission_standard")?
                    .as_primitive::<Int64Type>()
                    .clone();
                let es_raw = col("emission_standard_raw")?.as_string::<i32>().clone();
                let vt = col("vehicle_type")?.as_string::<i32>().clone();
                let reg_on = col("registered_on")?.as_primitive::<Date32Type>().clone();
                let opt = |a: &datafusion::arrow::array::StringArray, i: usize| {
                    (!a.is_null(i)).then(|| a.value(i).to_string())
                };
                for i in 0..b.num_rows() {
                    reg.insert(VehicleInfo {
                        plate: plate.value(i).to_string(),
                        plate_color: opt(&color, i).and_then(|c| PlateColor::parse(&c)),
                        vin: opt(&vin, i),
                        fuel: opt(&fuel, i).and_then(|f| Fuel::parse(&f).ok()),
                        emission_standard: (!es.is_null(i)).then(|| es.value(i) as u8),
                        emission_standard_raw: opt(&es_raw, i),
                        vehicle_type: opt(&vt, i),
                        registered_on: (!reg_on.is_null(i)).then(|| reg_on.value(i)),
                    });
                }
            }
        }
        Ok(reg)
    }
}

/// The data files of the table directory `dir` (`<tables>/<table>`), by the one rule the
/// query layer uses too (`query::files`): the files the commit manifest names, or, when it
/// names none of this table, every `*.parquet` whose name does not start with `.` or `_`.
/// Left-out files are named in one warning. Errors when the manifest cannot be read.
pub fn walk_parquet(dir: &Path) -> Result<Vec<std::path::PathBuf>, String> {
    let (Some(root), Some(table)) = (dir.parent(), dir.file_name()) else {
        return Ok(Vec::new());
    };
    let table = table.to_string_lossy();
    let mut tf = crate::query::files::table_files(root, &table)
        .map_err(|e| format!("reading the commit manifest under {}: {e}", root.display()))?;
    tf.forget_committed_since(root, &table);
    if let Some(w) = tf.warning(&dir.display().to_string()) {
        tracing::warn!("{w}");
    }
    Ok(tf.files)
}
