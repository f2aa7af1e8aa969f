//! Reads the golden vectors in this folder: what PyTorch computed for our layers and for both
//! networks, written by `scripts/golden.py` (`python scripts/golden.py` makes them again).
//!
//! Each `.safetensors` file holds named tensors in PyTorch's layouts (NCHW activations, OIHW
//! convolution weights, `[out, in]` linear weights) and a `__metadata__` entry with the script,
//! its version, the torch version and a description of the cases.
#![allow(dead_code)]

use safetensors::{Dtype, SafeTensors};
use simd_cnn::kernels::{Kernels, Pool2dShape};
use simd_cnn::nn::{Conv2d, Linear, MaxPool2d, Param};
use simd_cnn::tensor::Tensor;
use simd_cnn::tensor::layout::{nchw_to_nhwc, oihw_to_hwio};
use std::collections::HashMap;
use std::path::PathBuf;

/// The script every file must come from.
pub const SCRIPT: &str = "scripts/golden.py";

/// One golden file, read whole (the largest is 2 MB).
pub struct Golden {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Golden {
    /// Reads `tests/golden/{name}.safetensors` and checks that [`SCRIPT`] wrote it.
    pub fn open(name: &str) -> Golden {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.safetensors"));
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e} (`python {SCRIPT}` writes it)", path.display()));
        let golden = Golden { path, bytes };
        let meta = golden.metadata();
        let field = |key: &str| meta.get(key).map(String::as_str).unwrap_or("?");
        assert_eq!(field("script"), SCRIPT, "{}: not written by {SCRIPT}", golden.path.display());
        println!("{name}: golden vectors from torch {} ({SCRIPT} version {})", field("torch"), field("script_version"));
        golden
    }

    /// The file's `__metadata__`.
    pub fn metadata(&self) -> HashMap<String, String> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes).unwrap_or_else(|e| self.fail("header", e));
        meta.metadata().clone().unwrap_or_default()
    }

    /// Shape and raw little-endian bytes of tensor `name`, which must be of type `dtype`.
    fn raw(&self, name: &str, dtype: Dtype) -> (Vec<usize>, Vec<u8>) {
        let file = SafeTensors::deserialize(&self.bytes).unwrap_or_else(|e| self.fail("header", e));
        let view = file.tensor(name).unwrap_or_else(|e| self.fail(name, e));
        assert_eq!(view.dtype(), dtype, "{}: {name} has the wrong type", self.path.display());
        (view.shape().to_vec(), view.data().to_vec())
    }

    fn fail(&self, what: &str, e: impl std::fmt::Display) -> ! {
        panic!("{}: {what}: {e}", self.path.display())
    }

    /// A float32 tensor, in the file's (PyTorch's) layout.
    pub fn tensor(&self, name: &str) -> Tensor {
        let (shape, bytes) = self.raw(name, Dtype::F32);
        let values = bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        Tensor::from_vec(&shape, values)
    }

    /// A 0-d float32 tensor, such as a loss.
    pub fn scalar(&self, name: &str) -> f32 {
        let t = self.tensor(name);
        assert!(t.shape().is_empty(), "{}: {name} is not a scalar", self.path.display());
        t.as_slice()[0]
    }

    /// A uint8 tensor's values (class labels).
    pub fn u8s(&self, name: &str) -> Vec<u8> {
        self.raw(name, Dtype::U8).1
    }

    /// Case `case`'s `nn.Conv2d` weight (OIHW) and bias, as our layer (HWIO weight).
    pub fn conv2d(&self, case: &str) -> Conv2d {
        Conv2d {
            weight: Param::new(oihw_to_hwio(&self.tensor(&format!("{case}.weight")))),
            bias: Param::new(self.tensor(&format!("{case}.bias"))),
        }
    }

    /// Case `case`'s `nn.Linear` weight and bias, as our layer (same layout).
    pub fn linear(&self, case: &str) -> Linear {
        Linear {
            weight: Param::new(self.tensor(&format!("{case}.weight"))),
            bias: Param::new(self.tensor(&format!("{case}.bias"))),
        }
    }

    /// uint8 pixels as float32 `p / 255`: the same correctly rounded division as PyTorch's
    /// `images.float() / 255` (the script checks that PyTorch's result is exactly that).
    pub fn images(&self, name: &str) -> Tensor {
        let (shape, pixels) = self.raw(name, Dtype::U8);
        Tensor::from_vec(&shape, pixels.iter().map(|&p| p as f32 / 255.0).collect())
    }
}

/// Our `MaxPool2d` forward on an NCHW input from a file: the shape, and the input and output
/// in our NHWC layout (the backward pass needs all three).
pub fn max_pool2d_forward(k: &Kernels, x_nchw: &Tensor) -> (Pool2dShape, Tensor, Tensor) {
    let &[n, c, h, w] = x_nchw.shape() else { panic!("x is not NCHW") };
    let shape = Pool2dShape { n, h, w, c };
    let x = nchw_to_nhwc(x_nchw);
    let mut y = Tensor::zeros(&[n, h / 2, w / 2, c]);
    MaxPool2d.forward(k, &shape, x.as_slice(), y.as_mut_slice());
    (shape, x, y)
}

/// How close our value must be to PyTorch's: `|ours - torch| <= atol + rtol * |torch|`.
#[derive(Clone, Copy, Debug)]
pub struct Tol {
    pub atol: f32,
    pub rtol: f32,
}

impl Tol {
    /// For ops that only copy, compare or select values: no rounding happens on either side.
    pub const EXACT: Tol = Tol { atol: 0.0, rtol: 0.0 };
}

/// Prints the largest difference between our values and PyTorch's (and how much of the
/// tolerance it uses), then checks every element against `tol`.
#[track_caller]
pub fn check(what: &str, ours: &[f32], torch: &[f32], tol: Tol) {
    assert_eq!(ours.len(), torch.len(), "{what}: lengths differ");
    let (mut largest, mut share) = (0.0f32, 0.0f32);
    for (&o, &t) in ours.iter().zip(torch) {
        let diff = (o - t).abs();
        if diff > 0.0 {
            largest = largest.max(diff);
            share = share.max(diff / (tol.atol + tol.rtol * t.abs()));
        }
    }
    println!("{what}: largest |ours - torch| {largest:.2e} ({:.1}% of the tolerance)", 100.0 * share);
    crate::common::assert_close(what, ours, torch, tol.atol, tol.rtol);
}
