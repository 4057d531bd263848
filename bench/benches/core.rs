//! Core figures of the engine: appends (non-durable and durable), random
//! reads across 1,000 keys, and streaming one large key.
//!
//! Run: `cargo bench -p nano-wal-bench --bench core`

#![expect(
    missing_docs,
    reason = "criterion's macros generate undocumented items"
)]

use std::hint::black_box;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use nano_wal::Wal;

fn appends(c: &mut Criterion) {
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(1));
    let payload = Bytes::from(vec![7u8; 100]);
    for keys in [1usize, 1000] {
        let dir = tempfile::tempdir().expect("tempdir");
        let wal = Wal::builder(dir.path())
            .max_open_files(2048)
            .open()
            .expect("open");
        let mut i = 0usize;
        g.bench_function(format!("100B non-durable, {keys} keys"), |b| {
            b.iter(|| {
                i += 1;
                let key = format!("k{}", i % keys);
                black_box(
                    wal.append_entry(key, None, payload.clone(), false)
                        .expect("append"),
                )
            });
        });
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let wal = Wal::builder(dir.path()).open().expect("open");
    g.sample_size(20);
    g.bench_function("100B durable, 1 key", |b| {
        b.iter(|| {
            black_box(
                wal.append_entry("k", None, payload.clone(), true)
                    .expect("append"),
            )
        });
    });
    let wal = Arc::new(wal);
    g.throughput(Throughput::Elements(16 * 32));
    g.bench_function("100B durable, 16 threads on 1 key (x512)", |b| {
        b.iter(|| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    let wal = wal.clone();
                    let p = payload.clone();
                    std::thread::spawn(move || {
                        for _ in 0..32 {
                            wal.append_entry("shared", None, p.clone(), true)
                                .expect("append");
                        }
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("thread");
            }
        });
    });
    g.finish();
}

fn random_reads(c: &mut Criterion) {
    let (wal, refs, _dir) = nano_wal_bench::populated(1000, 100, 100).expect("populate");
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(1));
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    g.bench_function("random read_entry_at, 1000 keys", |b| {
        b.iter(|| {
            // xorshift: a cheap, fixed pseudo-random order.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let r = refs[usize::try_from(x % refs.len() as u64).unwrap_or(0)];
            black_box(wal.read_entry_at(r).expect("read"))
        });
    });
    g.finish();
}

fn enumerate(c: &mut Criterion) {
    let (wal, _refs, _dir) = nano_wal_bench::populated(1, 100_000, 100).expect("populate");
    let mut g = c.benchmark_group("enumerate");
    g.sample_size(10);
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("records() one key of 100k x 100B", |b| {
        b.iter_batched(
            || (),
            |()| {
                wal.records("key-0")
                    .expect("records")
                    .map(|r| r.expect("ok").content.len())
                    .sum::<usize>()
            },
            BatchSize::SmallInput,
        );
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = appends, random_reads, enumerate
}
criterion_main!(benches);
