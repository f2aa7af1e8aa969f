//! Chapter 7: the read-bandwidth kernel of every instruction set against a sum worked out one
//! load at a time, the caches as the CPU describes them, and the report's memory object.
mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::bench::memory::{LevelBandwidth, Memory, MountainPoint};
use simd_cnn::bench::roofline::{activation_bytes, annotate, min_bytes, place, roof_level, step_kernels};
use simd_cnn::bench::{Machine, Measurement, Model, OpKind, Peak, Report, Timing, report_ops};
use simd_cnn::kernels::cache::CacheLevel;
use simd_cnn::kernels::cache::{CacheKind, data_caches};
use simd_cnn::kernels::memory::{bytes_read, read_sum};
use simd_cnn::kernels::{Isa, Kernels, LinearShape};

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

fn sample_memory() -> Memory {
    let cache = |level, bytes| CacheLevel {
        level,
        kind: CacheKind::Data,
        bytes,
        ways: 16,
        sets: 64,
        line_bytes: 64,
        shared_by: 1,
    };
    let level = |name, bytes, gbs| LevelBandwidth { name, bytes, gbs, gbs_all_threads: 2.0 * gbs };
    Memory {
        isa: Isa::Avx512,
        threads: 2,
        caches: vec![cache(1, 48 << 10), cache(2, 1 << 20), cache(3, 32 << 20)],
        levels: vec![
            level("l1", 24 << 10, 400.0),
            level("l2", 512 << 10, 200.0),
            level("l3", 16 << 20, 100.0),
            level("dram", 128 << 20, 10.0),
        ],
        mountain: Vec::new(),
    }
}

/// After `annotate`, the report's JSON has the memory object and, on each record, the bytes,
/// the intensity, the roof and the share of it: pool1's forward pass (42 MB, more than the L3)
/// under memory's sloped roof, conv2's forward pass under the flat one.
#[test]
fn the_report_places_each_record_on_its_roofline() {
    let timing = |seconds| Timing {
        seconds,
        min_seconds: seconds,
        max_seconds: seconds,
        calls_per_run: 1,
        runs: 1,
        cpu_fraction: None,
        other_load: None,
    };
    let ops = report_ops();
    let measure = |name: &str, seconds| {
        let op = ops.iter().find(|op| op.name == name).unwrap();
        Measurement {
            op: op.name.clone(),
            isa: Isa::Avx512,
            flops: op.flops(),
            images: op.images(),
            timing: timing(seconds),
        }
    };
    let machine = Machine {
        cpu_model: "Test CPU".into(),
        logical_cpus: 2,
        os: "linux".into(),
        arch: "x86_64".into(),
        rustc: "rustc".into(),
        cpu_isas: vec![Isa::Avx512],
        available_isas: vec![Isa::Avx512],
        debug_assertions: false,
    };
    let peaks = vec![Peak { isa: Isa::Avx512, gflops: 200.0, timing: timing(1e-3) }];
    let mut report = Report::new(
        machine,
        peaks,
        vec![measure("pool1_forward", 0.01), measure("conv2_forward", 0.02), measure("train_step_catdog", 0.1)],
    );
    assert!(report.to_json()["records"][0]["bytes"].is_null(), "no roofline before the memory is measured");
    annotate(&mut report, &ops, &sample_memory());
    let json = report.to_json();
    assert_eq!(json["memory"]["l3"]["gbs"], 100.0);
    let pool = &json["records"][0];
    // 16 x 128 x 128 x 32 floats in, a quarter of that out.
    let floats = 16 * 128 * 128 * 32 * 5 / 4;
    assert_eq!(pool["bytes"], 4 * floats);
    assert_eq!(pool["roof"], "dram");
    let intensity = pool["intensity"].as_f64().unwrap();
    assert!((pool["roof_gflops"].as_f64().unwrap() - 10.0 * intensity).abs() < 1e-9);
    let conv = &json["records"][1];
    assert_eq!(conv["roof"], "l3");
    assert_eq!(conv["roof_gflops"], 200.0, "conv2 is far right of the ridge");
    let gflops = conv["gflops"].as_f64().unwrap();
    assert!((conv["roofline_fraction"].as_f64().unwrap() - gflops / 200.0).abs() < 1e-12);
    assert!(conv.get("activation_bytes").is_none(), "only a step keeps activations");
    let step = &json["records"][2];
    assert_eq!(step["activation_bytes"], activation_bytes(Model::CatDog, true).unwrap());
}

/// fc1's forward pass at batch 16: 16.8 MB of weights and 2.1 MB of input, 7.1 FLOPs per
/// byte, fit in a 32 MB L3, whose 100 GB/s allow 711 GFLOP/s: above a 263 GFLOP/s peak, so
/// the peak is the roof. With 20 GB/s it would be 142.
#[test]
fn fc1_forward_sits_under_the_l3_roof() {
    let s = LinearShape { batch: 16, in_features: 32768, out_features: 128 };
    let bytes = min_bytes(&OpKind::LinearForward(s)).unwrap();
    assert_eq!(bytes, 4 * (16 * 32768 + 128 * 32768 + 128 + 16 * 128));
    let p = place(s.flops(), bytes, 100.0, 263.0, &sample_memory()).unwrap();
    assert_eq!(p.roof, "l3");
    assert!((p.intensity - 7.108).abs() < 0.001, "{}", p.intensity);
    assert_eq!(p.roof_gflops, 263.0);
    assert!((p.roofline_fraction - 100.0 / 263.0).abs() < 1e-12);
    let mut slow = sample_memory();
    slow.levels[2].gbs = 20.0;
    let p = place(s.flops(), bytes, 100.0, 263.0, &slow).unwrap();
    assert!((p.roof_gflops - 7.108 * 20.0).abs() < 0.02, "{}", p.roof_gflops);
}

#[test]
fn each_level_holds_what_fits_in_it() {
    let m = sample_memory();
    assert_eq!(roof_level(48 << 10, &m).unwrap().0, "l1");
    assert_eq!(roof_level((48 << 10) + 1, &m).unwrap().0, "l2");
    assert_eq!(roof_level(32 << 20, &m).unwrap().0, "l3");
    assert_eq!(roof_level((32 << 20) + 1, &m), Some(("dram", 10.0)));
}

/// The whole step moves at least the bytes of its kernel calls, and those are far more
/// than any cache: its roof is memory's.
#[test]
fn the_step_is_the_sum_of_its_kernel_calls() {
    let calls = step_kernels(Model::CatDog);
    let sum: u64 = calls.iter().map(|c| min_bytes(c).unwrap()).sum();
    assert_eq!(min_bytes(&OpKind::TrainStep(Model::CatDog)), Some(sum));
    assert!(sum > 32 << 20);
    assert_eq!(roof_level(sum, &sample_memory()).unwrap().0, "dram");
    // conv1, pool1, conv2, pool2, conv3, pool3, fc1, fc2 (with fc1's ReLU) and the update.
    assert_eq!(calls.len(), 2 + 2 + 3 + 2 + 3 + 2 + 4 + 2 + 1);
}

/// Chapter 3's count: 75.5 MB of activations and as much of gradients at batch 16 (the
/// flattened copy of pool3's output included).
#[test]
fn the_cat_dog_step_keeps_151_mb() {
    let bytes = activation_bytes(Model::CatDog, false).unwrap();
    let per_image =
        128 * 128 * 32 + 64 * 64 * 32 + 64 * 64 * 64 + 32 * 32 * 64 + 32 * 32 * 128 + 2 * 16 * 16 * 128 + 128 + 1;
    assert_eq!(bytes, 2 * 4 * 16 * per_image as u64);
    assert_eq!(bytes / 100_000, 1510, "{bytes}");
}

/// Fused (chapter 7), the three convolutions' maps and their gradients are gone and each pooled
/// value gets one byte for its winner: 37 MB.
#[test]
fn the_fused_cat_dog_step_keeps_37_mb() {
    let bytes = activation_bytes(Model::CatDog, true).unwrap();
    let pooled = 64 * 64 * 32 + 32 * 32 * 64 + 16 * 16 * 128;
    let floats = pooled + 16 * 16 * 128 + 128 + 1;
    assert_eq!(bytes, 16 * (2 * 4 * floats + pooled) as u64);
    assert_eq!(bytes / 100_000, 372, "{bytes}");
}
