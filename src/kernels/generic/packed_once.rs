//! Chapter 7: weights packed once per step and thread, not once per call.
//!
//! Chapter 4's backward-input pass turns and transposes the weights in every call
//! (`pack_weights_transposed`), and chapter 7's fused passes call it once per image: sixteen
//! times a batch for weights that do not change within the step. Each thread now keeps the
//! last few packings it made, with the weights they came from, and a call whose weights are
//! equal, bit for bit, uses its packing again. The weights are compared by their bits, not by
//! address, because SGD changes them in place; the comparison reads each weight once, where
//! the packing writes each one to a scattered place. Chapter 10's transformed filters are kept
//! the same way.

use super::conv2d::pack_weights_transposed;
use crate::tensor::AlignedVec;
use std::cell::RefCell;
use std::rc::Rc;

// ANCHOR: packed_once
/// A packing, the weights it was made from, and what else it depends on (`key`: the shape,
/// the padding, the direction).
pub(crate) struct Packed<K> {
    key: K,
    weight: Vec<f32>,
    packed: Rc<AlignedVec>,
}

/// One thread's packings, oldest first.
pub(crate) type PackCache<K> = RefCell<Vec<Packed<K>>>;

/// The packing of `weight` for `key`: the one in `cache` if these very weights were packed
/// for `key` before, else `pack()`'s, kept in place of the oldest when `cache` holds `capacity`.
pub(crate) fn packed_once<K: PartialEq>(
    cache: &PackCache<K>,
    capacity: usize,
    key: K,
    weight: &[f32],
    pack: impl FnOnce() -> AlignedVec,
) -> Rc<AlignedVec> {
    let same = |p: &&Packed<K>| p.key == key && same_bits(&p.weight, weight);
    if let Some(p) = cache.borrow().iter().find(same) {
        return Rc::clone(&p.packed);
    }
    // Packed with the cache free, so that a packing may itself use the cache.
    let packed = Rc::new(pack());
    let mut cache = cache.borrow_mut();
    if cache.len() >= capacity {
        cache.remove(0); // the oldest
    }
    cache.push(Packed { key, weight: weight.to_vec(), packed: Rc::clone(&packed) });
    packed
}

/// Whether `a` and `b` hold the same floats, bit for bit (so -0.0 is not 0.0 and a NaN is
/// itself). The differences are OR-ed over chunks of 64 with no exit inside a chunk, a loop
/// the compiler turns into vector XORs and ORs: an exit at every float would compare one at
/// a time, and the comparison would cost as much as the packing it saves.
fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len()
        && a.chunks(64)
            .zip(b.chunks(64))
            .all(|(a, b)| a.iter().zip(b).fold(0, |d, (x, y)| d | (x.to_bits() ^ y.to_bits())) == 0)
}
// ANCHOR_END: packed_once

/// Turned weights kept per thread: one per convolution of the cat/dog network that has an
/// input gradient (conv2, conv3), with room for a second network's.
const CACHED_TURNED: usize = 4;

thread_local! {
    static TURNED: PackCache<(usize, usize, usize)> = const { RefCell::new(Vec::new()) };
}

/// [`pack_weights_transposed`], once per step: the weights backward-input convolves with, made
/// again only when these weights were not packed by this thread for this shape.
pub(crate) fn transposed_weights(weight: &[f32], c_in: usize, c_out: usize, c_in_p: usize) -> Rc<AlignedVec> {
    TURNED.with(|cache| {
        packed_once(cache, CACHED_TURNED, (c_in, c_out, c_in_p), weight, || {
            pack_weights_transposed(weight, c_in, c_out, c_in_p)
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cache gives back the packing of the weights it is given, never of weights that were
    /// equal before SGD changed one of them, and makes a new packing only for new weights.
    #[test]
    fn a_packing_is_reused_only_for_the_same_bits_and_key() {
        let cache: PackCache<usize> = RefCell::new(Vec::new());
        let packs = std::cell::Cell::new(0);
        let pack = |w: &[f32]| {
            packs.set(packs.get() + 1);
            let mut v = AlignedVec::zeros(w.len());
            v.copy_from_slice(w);
            v
        };
        let mut w = vec![1.0f32, 2.0, 3.0];
        let a = packed_once(&cache, 2, 0, &w, || pack(&w));
        let b = packed_once(&cache, 2, 0, &w, || pack(&w));
        assert!(Rc::ptr_eq(&a, &b) && packs.get() == 1);
        // The same values under another key are another packing.
        packed_once(&cache, 2, 1, &w, || pack(&w));
        assert_eq!(packs.get(), 2);
        // One weight changed by the smallest step there is: packed again, with the new value.
        w[1] = f32::from_bits(w[1].to_bits() + 1);
        let c = packed_once(&cache, 2, 0, &w, || pack(&w));
        assert_eq!((packs.get(), c[1]), (3, w[1]));
        // Three packings in a cache of two: the oldest, key 0 with the old weights, went;
        // key 1's is still there.
        assert_eq!(cache.borrow().len(), 2);
        let old = [1.0, 2.0, 3.0];
        packed_once(&cache, 2, 1, &old, || pack(&old));
        assert_eq!(packs.get(), 3);
        packed_once(&cache, 2, 0, &old, || pack(&old));
        assert_eq!(packs.get(), 4);
    }
}
