//! Chapter 11: int8 inference. The products are integers, so the VNNI kernel must equal the
//! scalar oracle *bit for bit* (sums, scales and rounding), on shapes chosen to break its
//! packing and tiling: input channels that are not a multiple of 4 with garbage in the padding
//! bytes, output channels that are not a multiple of 16, widths that leave tails, batches of
//! one. The oracle itself is checked against sums written out in the test. The whole int8
//! network is checked against the fp32 network it came from.
mod common;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use rand::RngExt;
use simd_cnn::kernels::int8::{
    Int8Kernels, Int8Layer, Int8Out, Int8Output, Int8Shape, max_pool_u8, quantize_images, requantize_f32, requantize_u8,
};
use simd_cnn::kernels::{Isa, Kernels};
use simd_cnn::model::{CATDOG, Calibration, CatDogCnn, Int8Network, Layer, Network};

/// A random layer and input for `shape`: weights in [-128, 127] (the full signed range, though
/// quantisation uses [-127, 127]), scales and biases that put outputs across the byte range.
fn random_case(s: &Int8Shape, output: Int8Output, seed: u64) -> (Int8Layer, Vec<u8>) {
    let mut rng = simd_cnn::tensor::init::rng(seed);
    let hwio: Vec<i8> = (0..s.k * s.k * s.c_in * s.c_out).map(|_| rng.random::<i8>()).collect();
    let terms = (s.k * s.k * s.c_in) as f32;
    let scale: Vec<f32> = (0..s.c_out).map(|_| rng.random_range(0.1..4.0) / terms).collect();
    let bias: Vec<f32> = (0..s.c_out).map(|_| rng.random_range(-100.0..200.0)).collect();
    let layer = Int8Layer::new(s.k, s.c_in, s.in_stride, s.c_out, hwio, &scale, &bias, output).expect("a valid layer");
    // Every byte random, the padding channels and the border too: the kernels must agree on
    // what they read, and the packed zeros must cancel the padding channels.
    let input: Vec<u8> = (0..s.input_len()).map(|_| rng.random::<u8>()).collect();
    (layer, input)
}

fn run(k: &Int8Kernels, layer: &Int8Layer, s: &Int8Shape, input: &[u8]) -> (Vec<u8>, Vec<f32>) {
    let (mut bytes, mut floats) = (vec![0u8; s.output_len()], vec![0f32; s.output_len()]);
    match layer.output() {
        Int8Output::U8 => k.product(layer, s, input, Int8Out::U8(&mut bytes)),
        Int8Output::F32 => k.product(layer, s, input, Int8Out::F32(&mut floats)),
    }
    (bytes, floats)
}

fn vnni() -> Option<&'static Int8Kernels> {
    match Int8Kernels::for_isa(Isa::Avx512) {
        Ok(k) => Some(k),
        Err(e) => {
            println!("skipping the VNNI kernel: {e}");
            None
        }
    }
}

// ANCHOR: vnni_equals_scalar
/// The VNNI product equals the scalar one exactly, on convolutions and fully connected layers.
#[test]
fn the_vnni_product_is_the_scalar_product_bit_for_bit() {
    let Some(vnni) = vnni() else { return };
    let scalar = Int8Kernels::for_isa(Isa::Scalar).unwrap();
    let shapes = (1usize..=3, 1usize..=6, 1usize..=14, prop_oneof![Just(1usize), Just(3)], 1usize..=37, 0usize..=1)
        .prop_flat_map(|(n, h, w, k, c_in, extra)| {
            let stride = c_in.next_multiple_of(4) + 4 * extra;
            (
                Just(Int8Shape { n, h, w, k, c_in, in_stride: stride, c_out: 1 }),
                1usize..=80,
                any::<bool>(),
                any::<u64>(),
            )
        });
    let mut runner = TestRunner::new(Config { cases: 160, ..Config::default() });
    runner
        .run(&shapes, |(shape, c_out, bytes, seed)| {
            let s = Int8Shape { c_out, ..shape };
            let output = if bytes { Int8Output::U8 } else { Int8Output::F32 };
            let (layer, input) = random_case(&s, output, seed);
            let want = run(scalar, &layer, &s, &input);
            let got = run(vnni, &layer, &s, &input);
            prop_assert!(got.0 == want.0, "{s:?}: the bytes differ");
            let same = got.1.iter().zip(&want.1).all(|(a, b)| a.to_bits() == b.to_bits());
            prop_assert!(same, "{s:?}: the floats differ");
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{e}"));
}
// ANCHOR_END: vnni_equals_scalar

/// The fully connected shape of the book's fc1 (32768 inputs, 128 outputs) at batches 1, 5 and
/// 16: the single run over the whole batch, with its tail.
#[test]
fn the_vnni_product_is_exact_on_fc1() {
    let Some(vnni) = vnni() else { return };
    let scalar = Int8Kernels::for_isa(Isa::Scalar).unwrap();
    for n in [1, 5, 16] {
        let s = Int8Shape { n, h: 1, w: 1, k: 1, c_in: 32768, in_stride: 32768, c_out: 128 };
        let (layer, input) = random_case(&s, Int8Output::U8, n as u64);
        assert!(run(vnni, &layer, &s, &input) == run(scalar, &layer, &s, &input), "batch {n}");
    }
}

// ANCHOR: oracle
/// The scalar oracle against the sums written out here: for every output, the window's
/// products of codes summed in i64, then the requantisation.
#[test]
fn the_scalar_product_is_the_sum_of_the_windows_products() {
    let scalar = Int8Kernels::for_isa(Isa::Scalar).unwrap();
    for (i, s) in [
        Int8Shape { n: 2, h: 3, w: 5, k: 3, c_in: 3, in_stride: 4, c_out: 17 },
        Int8Shape { n: 3, h: 1, w: 1, k: 1, c_in: 40, in_stride: 44, c_out: 5 },
    ]
    .into_iter()
    .enumerate()
    {
        for output in [Int8Output::U8, Int8Output::F32] {
            let (layer, input) = random_case(&s, output, 7 + i as u64);
            // The case's weights, scales and biases again, from the same seed.
            let mut rng = simd_cnn::tensor::init::rng(7 + i as u64);
            let hwio: Vec<i8> = (0..s.k * s.k * s.c_in * s.c_out).map(|_| rng.random::<i8>()).collect();
            let terms = (s.k * s.k * s.c_in) as f32;
            let scale: Vec<f32> = (0..s.c_out).map(|_| rng.random_range(0.1..4.0) / terms).collect();
            let bias: Vec<f32> = (0..s.c_out).map(|_| rng.random_range(-100.0..200.0)).collect();
            let (bytes, floats) = run(scalar, &layer, &s, &input);
            let (hp, wp, os) = (s.h + 2 * s.pad(), s.w + 2 * s.pad(), s.out_stride());
            for img in 0..s.n {
                for y in 0..s.h {
                    for x in 0..s.w {
                        for co in 0..os {
                            let mut sum = 0i64;
                            for ky in 0..s.k {
                                for kx in 0..s.k {
                                    for ci in 0..s.c_in {
                                        let a = input[((img * hp + y + ky) * wp + x + kx) * s.in_stride + ci];
                                        let w = if co < s.c_out {
                                            hwio[((ky * s.k + kx) * s.c_in + ci) * s.c_out + co]
                                        } else {
                                            0
                                        };
                                        sum += i64::from(a) * i64::from(w);
                                    }
                                }
                            }
                            let (sc, b) = if co < s.c_out { (scale[co], bias[co]) } else { (0.0, 0.0) };
                            let at = ((img * s.h + y) * s.w + x) * os + co;
                            match output {
                                Int8Output::U8 => assert_eq!(bytes[at], requantize_u8(sum as i32, sc, b), "{s:?} {at}"),
                                Int8Output::F32 => {
                                    assert_eq!(floats[at], requantize_f32(sum as i32, sc, b), "{s:?} {at}")
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
// ANCHOR_END: oracle

/// The requantisation rounds to nearest with ties to even (as `vcvtps2dq` does), clamps at 0
/// and saturates at 255.
#[test]
fn requantisation_rounds_to_nearest_even_and_saturates() {
    assert_eq!(requantize_u8(5, 0.5, 0.0), 2); // 2.5 -> 2
    assert_eq!(requantize_u8(7, 0.5, 0.0), 4); // 3.5 -> 4
    assert_eq!(requantize_u8(-9, 1.0, 0.0), 0);
    assert_eq!(requantize_u8(300, 1.0, 0.0), 255);
    assert_eq!(requantize_u8(i32::MAX, 1.0, 0.0), 255);
    assert_eq!(requantize_f32(-4, 0.25, 1.0), 0.0);
}

/// Images quantise to their pixels, and pooling the codes is pooling the values.
#[test]
fn images_quantise_to_their_pixels_and_codes_pool_exactly() {
    let pixels: Vec<u8> = (0..2 * 4 * 4 * 3).map(|i| (i * 37 % 256) as u8).collect();
    let x: Vec<f32> = pixels.iter().map(|&p| f32::from(p) / 255.0).collect();
    let mut padded = vec![0u8; 2 * 6 * 6 * 4];
    quantize_images(&x, 2, 4, 4, 3, 1, 4, &mut padded);
    for (i, &p) in pixels.iter().enumerate() {
        let (img, y, xx, c) = (i / 48, i / 12 % 4, i / 3 % 4, i % 3);
        assert_eq!(padded[((img * 6 + y + 1) * 6 + xx + 1) * 4 + c], p);
    }
    let mut pooled = vec![0u8; 2 * 2 * 2 * 3];
    max_pool_u8(&pixels, 2, 4, 4, 3, 0, &mut pooled);
    for (i, &got) in pooled.iter().enumerate() {
        let (img, y, xx, c) = (i / 12, i / 6 % 2, i / 3 % 2, i % 3);
        let at = |dy, dx| pixels[((img * 4 + 2 * y + dy) * 4 + 2 * xx + dx) * 3 + c];
        assert_eq!(got, at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1)));
    }
}

// ANCHOR: network_close
/// The int8 cat/dog network against the fp32 one it was quantised from, on images it was not
/// calibrated on, on every int8 table.
#[test]
fn the_int8_network_follows_the_fp32_network() {
    let k = Kernels::best().unwrap();
    let mut fp32 = CatDogCnn::new(32, 32, 3);
    let images =
        |seed| common::rand_vec(24 * fp32.image_len(), seed).iter().map(|v| v.abs().min(1.0)).collect::<Vec<_>>();
    let (calibration_images, test_images) = (images(1), images(2));
    let want = fp32.forward(k, &test_images).to_vec();
    let mut int8 = Int8Network::from_model(&mut fp32, k, &calibration_images).unwrap();
    for isa in [Isa::Scalar, Isa::Avx512] {
        let Ok(k8) = Int8Kernels::for_isa(isa) else { continue };
        let got = int8.forward(k8, &test_images).to_vec();
        let r = correlation(&got, &want);
        let worst = got.iter().zip(&want).map(|(g, w)| (g - w).abs()).fold(0.0, f32::max);
        let size = want.iter().map(|v| v.abs()).fold(0.0, f32::max);
        // The logits of different images must keep their order and spacing (a wrong layout,
        // such as a flatten in the wrong order or a shifted window, scrambles them), and stay
        // within a few percent of their size: four layers of 8-bit codes, each rounding to
        // 1/255 of its range, and max-pools that pick the largest of four rounded values and so
        // drift upwards.
        assert!(r > 0.98, "{isa}: correlation {r} of int8 logits {got:?} with fp32 {want:?}");
        assert!(worst < 0.05 * size, "{isa}: off by {worst}, logits up to {size}");
    }
}

/// Pearson's correlation of two series.
fn correlation(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let mean = |v: &[f32]| v.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let (ma, mb) = (mean(a), mean(b));
    let cov: f64 = a.iter().zip(b).map(|(&x, &y)| (f64::from(x) - ma) * (f64::from(y) - mb)).sum();
    let var = |v: &[f32], m: f64| v.iter().map(|&x| (f64::from(x) - m).powi(2)).sum::<f64>();
    cov / (var(a, ma) * var(b, mb)).sqrt()
}
// ANCHOR_END: network_close

/// The scalar and VNNI tables give the same logits, bit for bit, for a whole network.
#[test]
fn the_int8_network_is_the_same_on_every_table() {
    let Some(vnni) = vnni() else { return };
    let k = Kernels::best().unwrap();
    let mut fp32 = CatDogCnn::new(24, 40, 5);
    let x: Vec<f32> = common::rand_vec(3 * fp32.image_len(), 9).iter().map(|v| v.abs().min(1.0)).collect();
    let mut int8 = Int8Network::from_model(&mut fp32, k, &x).unwrap();
    let scalar = int8.forward(Int8Kernels::for_isa(Isa::Scalar).unwrap(), &x).to_vec();
    assert_eq!(int8.forward(vnni, &x), &scalar[..]);
}

/// What int8 cannot run is a one-line error, not a panic.
#[test]
fn what_int8_cannot_run_is_a_clear_error() {
    for isa in [Isa::Sse, Isa::Avx2] {
        let e = Int8Kernels::for_isa(isa).err().expect("no int8 table for this isa").to_string();
        assert!(e.contains("int8") && !e.contains('\n'), "{e}");
    }
    // Sums that could overflow their 32 bits.
    let e = Int8Layer::new(1, 70_000, 70_000, 1, vec![0; 70_000], &[1.0], &[0.0], Int8Output::F32).unwrap_err();
    assert!(e.to_string().contains("overflow"), "{e}");
    // A convolution without a ReLU after it would need signed codes.
    let table =
        [Layer::Conv2d { name: "conv1", c_out: 4 }, Layer::Flatten, Layer::Linear { name: "fc", out_features: 1 }];
    let net = Network::new(&table, 4, 4, 3, 0);
    let e = Int8Network::new(net.plan(), &net.params(), &Calibration { ranges: vec![1.0] }).unwrap_err().to_string();
    assert!(e.contains("conv1") && e.contains("ReLU"), "{e}");
    // Tables the int8 network does not run: a linear layer first, a pool after the last layer.
    for (table, side) in [
        (vec![Layer::Flatten, Layer::Linear { name: "fc", out_features: 1 }], 4),
        (vec![Layer::Conv2d { name: "conv1", c_out: 1 }, Layer::MaxPool2d { name: "pool1" }, Layer::Flatten], 2),
    ] {
        let net = Network::new(&table, side, side, 3, 0);
        let e = Int8Network::new(net.plan(), &net.params(), &Calibration { ranges: vec![] }).unwrap_err().to_string();
        assert!(e.contains("int8"), "{e}");
    }
    // Too few ranges for the layers.
    let cnn = CatDogCnn::new(8, 8, 0);
    let e = Int8Network::new(cnn.plan(), &cnn.params(), &Calibration { ranges: vec![1.0] }).unwrap_err().to_string();
    assert!(e.contains("ranges"), "{e}");
    assert_eq!(CATDOG.len(), 13);
}
