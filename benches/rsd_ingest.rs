//! Hot path of RSD ingest, in memory (no disk): NDJSON decode through the simd-json tape, and
//! decode + reduction + validity + verdict + Arrow append. `cargo bench --bench rsd_ingest`.
//! End-to-end figures (with Parquet writes) come from `plumewatch ingest` (see README).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use plumewatch::decode::fields::RSD_FIELDS;
use plumewatch::decode::mapping::Mapping;
use plumewatch::decode::text::{NdjsonDecoder, SourcePos};
use plumewatch::enrich::registry::Registry;
use plumewatch::enrich::rsd::{RsdContext, append_pass};
use plumewatch::limits::LimitSet;
use plumewatch::schema::{RsdPassesBuilder, TableBuilder};
use plumewatch::synth::rsd as synth;

fn bench(c: &mut Criterion) {
    let fleet = synth::fleet(1000, 1);
    let mut data = Vec::new();
    synth::write_passes(&mut data, &fleet, 20_000, 30, 1).unwrap();
    let lines: Vec<&[u8]> = data
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let mapping = Mapping::compile(None, RSD_FIELDS, "canonical").unwrap();
    let limits = LimitSet::default_set();
    let id = limits.id();
    let registry = Registry::default();
    let mut g = c.benchmark_group("rsd");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("ndjson_decode_20k", |b| {
        let mut dec = NdjsonDecoder::new(mapping.clone(), RSD_FIELDS);
        b.iter(|| {
            let mut n = 0usize;
            for l in &lines {
                n += dec.decode_line(l).is_ok() as usize;
            }
            n
        })
    });
    g.bench_function("ndjson_decode_reduce_append_20k", |b| {
        let mut dec = NdjsonDecoder::new(mapping.clone(), RSD_FIELDS);
        let ctx = RsdContext {
            limits: &limits,
            limit_set_id: &id,
            registry: &registry,
        };
        let mut out = RsdPassesBuilder::default();
        let mut det = Vec::new();
        b.iter(|| {
            for l in &lines {
                let pos = SourcePos {
                    file: "bench",
                    offset: 0,
                    line: 0,
                };
                if let Ok(rec) = dec.decode_line(l) {
                    let _ = append_pass(rec, &pos, &ctx, &mut out, &mut det);
                }
            }
            out.finish().num_rows()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
