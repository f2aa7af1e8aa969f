//! Chapter 7: the read-bandwidth kernel of every instruction set against a sum worked out one
//! load at a time, the caches as the CPU describes them, and the report's memory object.
mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::bench::memory::{LevelBandwidth, Memory, MountainPoint};
use simd_cnn::kernels::cache::{CacheKind, data_caches};
use simd_cnn::kernels::memory::{bytes_read, read_sum};
use simd_cnn::kernels::{Isa, Kernels};

/// The floats `read_sum` must add: one vector of `lanes` every `stride` vectors, then (stride
/// 1 only) the floats after the last whole vector.
fn expected(data: &[f32], lanes: usize, stride: usize) -> f64 {
    let step = stride.max(1) * lanes;
    let mut sum = 0.0;
    let mut start = 0;
    while start + lanes <= data.len() {
        sum += data[start..start + lanes].iter().map(|&x| f64::from(x)).sum::<f64>();
        start += step;
    }
    if stride <= 1 {
        let whole = data.len() / lanes * lanes;
        sum += data[whole..].iter().map(|&x| f64::from(x)).sum::<f64>();
    }
    sum
}

// ANCHOR: read_sum_test
/// Every instruction set, on lengths and strides chosen at random (lengths from 0 to a few
/// vectors past 2,000, so every tail and every leftover group of loads occurs), on small
/// integers (every sum is exact in f32) followed by NaN sentinels: a load past the end of the
/// slice makes the sum NaN.
#[test]
fn read_sum_adds_exactly_its_floats() {
    common::for_each_isa(|k| {
        let lanes = k.isa().lanes();
        let mut runner = TestRunner::new(Config { cases: 200, failure_persistence: None, ..Config::default() });
        let strategy = (0..2100usize, 0..10usize, any::<u64>());
        let result = runner.run(&strategy, |(len, stride, seed)| {
            let mut buffer: Vec<f32> = (0..len).map(|i| ((i as u64 ^ seed) % 61) as f32 - 30.0).collect();
            buffer.extend([f32::NAN; 16]);
            let data = &buffer[..len];
            let got = read_sum(k, data, stride);
            let want = expected(data, lanes, stride);
            prop_assert_eq!(f64::from(got), want, "{} floats, stride {}", len, stride);
            let loaded = if stride <= 1 { len } else { expected(&vec![1.0; len], lanes, stride) as usize };
            prop_assert_eq!(bytes_read(len, lanes, stride), 4 * loaded);
            Ok::<(), TestCaseError>(())
        });
        if let Err(e) = result {
            panic!("{}: {e}", k.isa());
        }
    });
}
// ANCHOR_END: read_sum_test

/// What the CPU says about its caches holds together: sizes grow with the level, and each is
/// ways x sets x line (AMD and Intel report one partition per set on every current part).
#[test]
fn caches_are_described_consistently() {
    let caches = data_caches();
    if caches.is_empty() {
        println!("skipping: neither cpuid nor Linux describes this CPU's caches");
        return;
    }
    assert_eq!(caches[0].level, 1, "the first data cache is L1: {caches:?}");
    for pair in caches.windows(2) {
        assert!(pair[0].level < pair[1].level && pair[0].bytes < pair[1].bytes, "{pair:?}");
    }
    for c in &caches {
        assert_ne!(c.kind, CacheKind::Instruction);
        assert!(c.line_bytes.is_power_of_two() && c.ways > 0, "{c:?}");
        assert_eq!(c.ways * c.sets * c.line_bytes, c.bytes, "{c:?}");
    }
}

/// The report's `"memory"` object has the fields the book's scripts read.
#[test]
fn memory_json_names_each_level() {
    let level = |name, bytes, gbs| LevelBandwidth { name, bytes, gbs, gbs_all_threads: 2.0 * gbs };
    let memory = Memory {
        isa: Isa::Avx2,
        threads: 2,
        caches: Vec::new(),
        levels: vec![level("l1", 16 << 10, 300.0), level("l2", 256 << 10, 100.0), level("dram", 64 << 20, 20.0)],
        mountain: vec![MountainPoint { bytes: 16 << 10, stride: 1, gbs: 310.0 }],
    };
    let json = memory.to_json();
    assert_eq!(json["isa"], "avx2");
    assert_eq!(json["l1"]["gbs"], 300.0);
    assert_eq!(json["l1"]["bytes"], 16 << 10);
    assert_eq!(json["dram"]["gbs_all_threads"], 40.0);
    assert!(json["l3"].is_null(), "a level not measured is null");
    assert_eq!(json["mountain"][0]["stride"], 1);
    // Every instruction set this CPU has gives its kernels to the measurement.
    assert!(Isa::available().iter().all(|&isa| Kernels::for_isa(isa).is_ok()));
}
