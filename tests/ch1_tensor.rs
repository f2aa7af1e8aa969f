//! Chapter 1: tensors, layouts and initialisation.

use simd_cnn::tensor::init::{he_normal, rng, xavier_uniform};
use simd_cnn::tensor::layout::{hwio_to_oihw, nchw_to_nhwc, nhwc_to_nchw, oihw_to_hwio};
use simd_cnn::tensor::{AlignedVec, Tensor};

#[test]
fn storage_starts_on_a_cache_line_for_every_length() {
    for len in [1, 3, 15, 16, 17, 33, 1000, 4097] {
        let t = Tensor::zeros(&[len]);
        assert_eq!(t.as_slice().as_ptr() as usize % 64, 0, "length {len}");
        let v = AlignedVec::zeros(len);
        assert_eq!(v.as_ptr() as usize % 64, 0, "length {len}");
        assert_eq!(v.len(), len);
    }
}

#[test]
fn clones_are_aligned_and_independent() {
    let mut a = Tensor::from_fn(&[5, 7], |i| i as f32);
    let b = a.clone();
    a[[0, 0]] = 100.0;
    assert_eq!(b[[0, 0]], 0.0);
    assert_eq!(b.as_slice().as_ptr() as usize % 64, 0);
}

#[test]
fn strides_are_row_major() {
    let t = Tensor::zeros(&[2, 3, 4, 5]);
    assert_eq!(t.strides(), vec![60, 20, 5, 1]);
    assert_eq!(Tensor::zeros(&[7]).strides(), vec![1]);
}

#[test]
fn offset_is_the_dot_product_of_index_and_strides() {
    let t = Tensor::zeros(&[2, 3, 4, 5]);
    let strides = t.strides();
    let mut seen = vec![false; t.len()];
    for n in 0..2 {
        for c in 0..3 {
            for h in 0..4 {
                for w in 0..5 {
                    let idx = [n, c, h, w];
                    let off = t.offset(&idx);
                    let dot: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
                    assert_eq!(off, dot);
                    assert!(!seen[off], "two indices map to offset {off}");
                    seen[off] = true;
                }
            }
        }
    }
    assert!(seen.iter().all(|&s| s), "every element is reachable");
}

#[test]
#[should_panic(expected = "out of bounds for axis 2")]
fn out_of_bounds_index_panics_with_the_axis() {
    let t = Tensor::zeros(&[2, 3, 4, 5]);
    let _ = t[[1, 2, 4, 0]];
}

#[test]
#[should_panic(expected = "do not fill shape")]
fn from_vec_rejects_a_wrong_length() {
    let _ = Tensor::from_vec(&[2, 3], vec![0.0; 5]);
}

#[test]
fn nchw_and_nhwc_hold_the_same_values() {
    let x = Tensor::from_fn(&[2, 3, 4, 5], |i| i as f32);
    let y = nchw_to_nhwc(&x);
    assert_eq!(y.shape(), [2, 4, 5, 3]);
    for (n, c, h, w) in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 2, 3), (1, 0, 3, 1)] {
        assert_eq!(y[[n, h, w, c]], x[[n, c, h, w]]);
    }
    // In NHWC the channels of one pixel are neighbours in memory.
    assert_eq!(y.offset(&[0, 0, 0, 1]) - y.offset(&[0, 0, 0, 0]), 1);
    assert_eq!(nhwc_to_nchw(&y), x);
}

#[test]
fn oihw_and_hwio_hold_the_same_weights() {
    let w = Tensor::from_fn(&[4, 3, 3, 3], |i| i as f32 * 0.5);
    let h = oihw_to_hwio(&w);
    assert_eq!(h.shape(), [3, 3, 3, 4]);
    assert_eq!(h[[2, 1, 0, 3]], w[[3, 0, 2, 1]]);
    assert_eq!(hwio_to_oihw(&h), w);
}

fn mean_var(t: &Tensor) -> (f64, f64) {
    let n = t.len() as f64;
    let mean = t.as_slice().iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = t.as_slice().iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    (mean, var)
}

#[test]
fn he_normal_has_variance_two_over_fan_in() {
    let fan_in = 288;
    let t = he_normal(&[64, 288], fan_in, &mut rng(1));
    let (mean, var) = mean_var(&t);
    let want = 2.0 / fan_in as f64;
    assert!(mean.abs() < 0.01 * want.sqrt() * 10.0, "mean {mean}");
    assert!((var / want - 1.0).abs() < 0.03, "variance {var}, want {want}");
}

#[test]
fn xavier_uniform_stays_in_bounds_with_the_right_variance() {
    let (fan_in, fan_out) = (784, 128);
    let t = xavier_uniform(&[128, 784], fan_in, fan_out, &mut rng(2));
    let a = (6.0 / (fan_in + fan_out) as f64).sqrt();
    assert!(t.as_slice().iter().all(|&v| (v as f64).abs() <= a));
    let (_, var) = mean_var(&t);
    assert!((var / (a * a / 3.0) - 1.0).abs() < 0.03, "variance {var}");
}

#[test]
fn the_same_seed_gives_the_same_weights_and_another_seed_does_not() {
    let a = he_normal(&[100], 10, &mut rng(7));
    let b = he_normal(&[100], 10, &mut rng(7));
    let c = he_normal(&[100], 10, &mut rng(8));
    assert_eq!(a, b);
    assert_ne!(a, c);
}
