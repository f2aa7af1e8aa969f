//! Chapter 1: tensors and memory.
//!
//! A [`Tensor`] is a shape and a flat, row-major buffer of `f32` whose first element sits on a
//! 64-byte boundary (one cache line, and exactly one AVX-512 register). Nothing more: no strides
//! other than row-major, no views, no autograd. What the axes *mean* is up to the code that uses
//! the tensor; this crate uses two conventions:
//!
//! - **NCHW** (batch, channel, row, column), PyTorch's default, in [`crate::reference`];
//! - **NHWC** (batch, row, column, channel), "channels last", in the fast kernels, because there
//!   the innermost, contiguous axis is the one the SIMD lanes run along.
//!
//! [`layout`] converts between the two.

mod aligned;
pub mod init;
pub mod layout;
#[cfg(feature = "ch7")]
pub mod squares;

pub use aligned::AlignedVec;

use std::fmt;
use std::ops::{Index, IndexMut};

// ANCHOR: tensor
/// An n-dimensional array of `f32` in row-major order with 64-byte aligned storage.
#[derive(Clone, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: AlignedVec,
}
// ANCHOR_END: tensor

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor { shape: shape.to_vec(), data: AlignedVec::zeros(shape.iter().product()) }
    }

    /// A tensor holding `values`, which must have as many elements as `shape` describes.
    ///
    /// # Panics
    /// If `values.len()` differs from the product of `shape`.
    pub fn from_vec(shape: &[usize], values: Vec<f32>) -> Self {
        Self::from_slice(shape, &values)
    }

    /// A tensor holding a copy of `values`.
    ///
    /// # Panics
    /// If `values.len()` differs from the product of `shape`.
    pub fn from_slice(shape: &[usize], values: &[f32]) -> Self {
        let len: usize = shape.iter().product();
        assert_eq!(values.len(), len, "{} values do not fill shape {:?}", values.len(), shape);
        let mut data = AlignedVec::zeros(len);
        data.copy_from_slice(values);
        Tensor { shape: shape.to_vec(), data }
    }

    /// A tensor whose element at flat position `i` is `f(i)`.
    pub fn from_fn(shape: &[usize], mut f: impl FnMut(usize) -> f32) -> Self {
        let mut t = Self::zeros(shape);
        for (i, x) in t.data.iter_mut().enumerate() {
            *x = f(i);
        }
        t
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data
    }

    // ANCHOR: strides
    /// Row-major strides: how far apart, in elements, neighbours along each axis are.
    /// For shape `[N, C, H, W]` they are `[C*H*W, H*W, W, 1]`.
    pub fn strides(&self) -> Vec<usize> {
        let mut strides = vec![1; self.shape.len()];
        for axis in (0..self.shape.len().saturating_sub(1)).rev() {
            strides[axis] = strides[axis + 1] * self.shape[axis + 1];
        }
        strides
    }

    /// The flat position of a multi-dimensional index.
    ///
    /// # Panics
    /// If the index has the wrong number of axes or is out of bounds on any axis.
    pub fn offset(&self, index: &[usize]) -> usize {
        assert_eq!(index.len(), self.shape.len(), "index {index:?} for shape {:?}", self.shape);
        let mut offset = 0;
        for (axis, (&i, &n)) in index.iter().zip(&self.shape).enumerate() {
            assert!(i < n, "index {i} out of bounds for axis {axis} of size {n}");
            offset = offset * n + i;
        }
        offset
    }
    // ANCHOR_END: strides

    /// The same data under another shape with the same number of elements.
    ///
    /// # Panics
    /// If the element counts differ.
    pub fn reshape(mut self, shape: &[usize]) -> Self {
        let len: usize = shape.iter().product();
        assert_eq!(len, self.len(), "cannot reshape {:?} to {:?}", self.shape, shape);
        self.shape = shape.to_vec();
        self
    }

    /// Largest absolute difference to another tensor of the same shape.
    pub fn max_abs_diff(&self, other: &Tensor) -> f32 {
        assert_eq!(self.shape, other.shape, "shapes differ");
        self.data.iter().zip(other.data.iter()).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max)
    }
}

impl<const D: usize> Index<[usize; D]> for Tensor {
    type Output = f32;
    /// `x[[n, c, h, w]]` reads one element of a 4-D tensor.
    fn index(&self, index: [usize; D]) -> &f32 {
        &self.data[self.offset(&index)]
    }
}

impl<const D: usize> IndexMut<[usize; D]> for Tensor {
    fn index_mut(&mut self, index: [usize; D]) -> &mut f32 {
        let offset = self.offset(&index);
        &mut self.data[offset]
    }
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let head: Vec<f32> = self.data.iter().take(8).copied().collect();
        write!(f, "Tensor {{ shape: {:?}, data: {:?}{} }}", self.shape, head, if self.len() > 8 { " .." } else { "" })
    }
}
