//! Chapter 10: how far the Winograd convolutions are from an f64 reference, on the real layer
//! shapes of the cat/dog network (conv2: 32->64 on 64x64, conv3: 64->128 on 32x32, batch 16).
//!
//! ```text
//! cargo run --release --example winograd_error
//! ```
//!
//! The inputs are what the layers see at the start of training: the network at its initial
//! weights (seed 0) runs forward on 16 images of uniform random pixels, and conv2 and conv3 get
//! the pooled maps of the layer before them and their own He-initialised weights; the backward
//! passes get an output gradient of uniform values in [-1, 1). For every output `y` the error is
//! `|y - y64| / s64`, where `s64 = |b| + sum |x| |w|` over the products the direct convolution
//! adds (in f64): the scale that bounds a direct convolution's own rounding. The table gives the
//! largest and the mean of it over the layer's outputs, for the direct kernel, F(2x2, 3x3) and
//! F(4x4, 3x3) of the best instruction set.

#[path = "common/cli.rs"]
mod cli;

use clap::Parser;
use simd_cnn::bench::{CATDOG_BATCH, CATDOG_IMAGE};
use simd_cnn::kernels::{Conv2dShape, Kernels, Pool2dShape, WinogradSize};
use simd_cnn::model::CatDogCnn;
use simd_cnn::tensor::init::{rng, uniform};
use std::process::ExitCode;

/// Largest and mean relative error of the Winograd convolutions against f64, on conv2 and conv3.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Images per batch
    #[arg(long, default_value_t = CATDOG_BATCH as u64, value_parser = clap::value_parser!(u64).range(1..=64))]
    batch: u64,
}

fn main() -> ExitCode {
    let args = match cli::parse::<Args>() {
        Ok(args) => args,
        Err(code) => return code,
    };
    cli::finish(run(&args).map(|()| ExitCode::SUCCESS))
}

// ANCHOR: reference64
/// `y = b + conv(x, w)` and `s = |b| + conv(|x|, |w|)` in f64, NHWC input, HWIO weight.
fn conv64(s: &Conv2dShape, x: &[f32], w: &[f64], b: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let Conv2dShape { n, h, w: width, c_in, c_out } = *s;
    let (mut y, mut a) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
    for img in 0..n {
        for oy in 0..h {
            for ox in 0..width {
                let at = ((img * h + oy) * width + ox) * c_out;
                let (yo, ao) = (&mut y[at..at + c_out], &mut a[at..at + c_out]);
                for co in 0..c_out {
                    (yo[co], ao[co]) = (b[co], b[co].abs());
                }
                for ky in 0..3 {
                    let Some(iy) = (oy + ky).checked_sub(1).filter(|&v| v < h) else { continue };
                    for kx in 0..3 {
                        let Some(ix) = (ox + kx).checked_sub(1).filter(|&v| v < width) else { continue };
                        let px = &x[((img * h + iy) * width + ix) * c_in..][..c_in];
                        for (ci, &xv) in px.iter().enumerate() {
                            let taps = &w[((ky * 3 + kx) * c_in + ci) * c_out..][..c_out];
                            let xv = f64::from(xv);
                            for co in 0..c_out {
                                yo[co] += xv * taps[co];
                                ao[co] += (xv * taps[co]).abs();
                            }
                        }
                    }
                }
            }
        }
    }
    (y, a)
}
// ANCHOR_END: reference64

/// Largest and mean of `|got - want| / scale`.
fn errors(got: &[f32], want: &[f64], scale: &[f64]) -> (f64, f64) {
    let errs =
        got.iter().zip(want).zip(scale).map(|((&g, &w), &s)| (f64::from(g) - w).abs() / s.max(f64::MIN_POSITIVE));
    let (max, sum) = errs.fold((0.0f64, 0.0), |(m, t), e| (m.max(e), t + e));
    (max, sum / got.len().max(1) as f64)
}

/// The turned kernel backward-input convolves with: `w'[ky, kx, co, ci] = w[2-ky, 2-kx, ci, co]`.
fn turned(w: &[f32], c_in: usize, c_out: usize) -> Vec<f64> {
    let mut t = vec![0.0; w.len()];
    for ky in 0..3 {
        for kx in 0..3 {
            for ci in 0..c_in {
                for co in 0..c_out {
                    t[((ky * 3 + kx) * c_out + co) * c_in + ci] =
                        f64::from(w[(((2 - ky) * 3 + 2 - kx) * c_in + ci) * c_out + co]);
                }
            }
        }
    }
    t
}

fn run(args: &Args) -> Result<(), String> {
    let best = Kernels::best().map_err(|e| e.to_string())?;
    let tables = [
        ("direct", best),
        ("F(2x2,3x3)", Kernels::winograd_everywhere(best.isa(), WinogradSize::F2).map_err(|e| e.to_string())?),
        ("F(4x4,3x3)", Kernels::winograd_everywhere(best.isa(), WinogradSize::F4).map_err(|e| e.to_string())?),
    ];
    // The maps conv2 and conv3 read: the pooled outputs of conv1 and conv2 on random images.
    let (n, size) = (args.batch as usize, CATDOG_IMAGE);
    let mut net = CatDogCnn::new(size, size, 0);
    let images = uniform(&[n, size, size, 3], 0.0, 1.0, &mut rng(1));
    net.forward_keeping_outputs(best, images.as_slice());
    let pooled = |map: &[f32], side: usize, c: usize| {
        let p = Pool2dShape { n, h: side, w: side, c };
        let mut out = vec![0.0; p.output_len()];
        best.max_pool2d_forward(&p, map, &mut out);
        out
    };
    let outputs = net.conv_outputs();
    let layers = [
        (
            "conv2",
            Conv2dShape { n, h: size / 2, w: size / 2, c_in: 32, c_out: 64 },
            pooled(outputs[0], size, 32),
            &net.conv2,
        ),
        (
            "conv3",
            Conv2dShape { n, h: size / 4, w: size / 4, c_in: 64, c_out: 128 },
            pooled(outputs[1], size / 2, 64),
            &net.conv3,
        ),
    ];
    println!("Relative error |y - y64| / (|b| + sum |x w|), {} kernels, batch {n}:\n", best.isa());
    println!("| layer | pass | kernel | largest | mean |");
    println!("| --- | --- | --- | ---: | ---: |");
    for (name, s, x, conv) in layers {
        let (w, b) = (conv.weight.value.as_slice(), conv.bias.value.as_slice());
        assert_eq!((x.len(), w.len()), (s.input_len(), s.weight_len()), "{name}: the table's shapes changed");
        let w64: Vec<f64> = w.iter().map(|&v| f64::from(v)).collect();
        let b64: Vec<f64> = b.iter().map(|&v| f64::from(v)).collect();
        let (y64, scale) = conv64(&s, &x, &w64, &b64);
        for (kernel, k) in tables {
            let mut y = vec![0.0; s.output_len()];
            k.conv2d_forward(&s, &x, w, b, &mut y, false);
            let (max, mean) = errors(&y, &y64, &scale);
            println!("| {name} | forward | {kernel} | {max:.2e} | {mean:.2e} |");
        }
        // Backward-input: the forward convolution of the output gradient with the turned kernel.
        let g = uniform(&[s.output_len()], -1.0, 1.0, &mut rng(2));
        let t = Conv2dShape { c_in: s.c_out, c_out: s.c_in, ..s };
        let (gx64, gscale) = conv64(&t, g.as_slice(), &turned(w, s.c_in, s.c_out), &vec![0.0; s.c_in]);
        for (kernel, k) in tables {
            let mut gx = vec![0.0; s.input_len()];
            k.conv2d_backward_input(&s, g.as_slice(), w, &mut gx);
            let (max, mean) = errors(&gx, &gx64, &gscale);
            println!("| {name} | backward-input | {kernel} | {max:.2e} | {mean:.2e} |");
        }
    }
    println!("\nf32's unit roundoff is 2^-24 = {:.2e}.", f64::from(f32::EPSILON) / 2.0);
    Ok(())
}
