//! Chapter 4: the vocabulary every SIMD kernel is written in.
//!
//! SSE, AVX2 and AVX-512 differ in width (4, 8, 16 floats), in register count (16, 16, 32), in
//! whether a multiply and an add can be fused, and in how they handle the last, partial vector
//! of a row. The algorithms of the kernels do not change with any of that, so we write each
//! algorithm once, against this trait, and instantiate it for each instruction set in
//! `kernels::x86::{sse, avx2, avx512}` with tile sizes that suit its registers.

// ANCHOR: simd_f32
/// An instruction set that computes on vectors of `LANES` floats.
///
/// A value of a type implementing `SimdF32` is a *token*: it can only be created inside a
/// function compiled for the instruction set (`#[target_feature]`), which Rust lets us call
/// only where the CPU was checked. Holding one proves the instructions exist, so the arithmetic
/// methods are safe. Loads and stores take raw pointers and are `unsafe`: the token says nothing
/// about whether the memory is there.
///
/// Every method is `#[inline(always)]` in the implementations: a kernel generic over `S` is
/// compiled into the `#[target_feature]` function that calls it, and its vector operations
/// become single instructions there.
pub(crate) trait SimdF32: Copy {
    /// A register of `LANES` floats: `__m128`, `__m256` or `__m512`.
    type V: Copy;
    /// The result of a comparison, one bit or one lane per float: a vector of all-ones and
    /// all-zeros lanes on SSE and AVX2, a 16-bit mask register on AVX-512.
    type M: Copy;
    const LANES: usize;

    fn zero(self) -> Self::V;
    /// Every lane set to `x`.
    fn splat(self, x: f32) -> Self::V;
    /// # Safety
    /// `src` must be valid for reading `LANES` floats (no alignment needed).
    unsafe fn load(self, src: *const f32) -> Self::V;
    /// # Safety
    /// `dst` must be valid for writing `LANES` floats (no alignment needed).
    unsafe fn store(self, dst: *mut f32, v: Self::V);
    /// The first `n < LANES` floats at `src`, the other lanes zero.
    /// # Safety
    /// `src` must be valid for reading `n` floats.
    unsafe fn load_partial(self, src: *const f32, n: usize) -> Self::V;
    /// Writes the first `n < LANES` lanes of `v` to `dst`.
    /// # Safety
    /// `dst` must be valid for writing `n` floats.
    unsafe fn store_partial(self, dst: *mut f32, v: Self::V, n: usize);

    fn add(self, a: Self::V, b: Self::V) -> Self::V;
    /// `a * b + c`: one fused instruction with FMA, a multiply and an add without.
    fn mul_add(self, a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    fn max(self, a: Self::V, b: Self::V) -> Self::V;

    /// Lanes where `a == b`.
    fn eq(self, a: Self::V, b: Self::V) -> Self::M;
    /// Lanes where `a > b`.
    fn gt(self, a: Self::V, b: Self::V) -> Self::M;
    /// Lanes in `a` and not in `b`.
    fn and_not(self, a: Self::M, b: Self::M) -> Self::M;
    fn or(self, a: Self::M, b: Self::M) -> Self::M;
    /// No lane.
    fn none(self) -> Self::M;
    /// `v` in the lanes of `m`, zero elsewhere.
    fn select(self, m: Self::M, v: Self::V) -> Self::V;

    /// Asks for the cache line holding `p` to be brought into L1. A hint: it never faults,
    /// whatever `p` is, and changes no result.
    fn prefetch(self, p: *const f32);

    /// Writes a whole vector to `dst` without reading its cache line first (a streaming, or
    /// non-temporal, store): an ordinary store to a line the core does not hold reads the line
    /// from memory before changing it, this one sends the bytes towards memory only. Such
    /// stores may be seen after later ones; [`SimdF32::store_fence`] orders them.
    /// # Safety
    /// `dst` must be valid for writing `LANES` floats and aligned to a whole vector
    /// (`4 * LANES` bytes).
    unsafe fn store_stream(self, dst: *mut f32, v: Self::V);

    /// Puts every streaming store before it ahead of every store after it (`sfence`): to be
    /// called before anything else may read what the streaming stores wrote.
    fn store_fence(self);

    /// `n` floats at `src`: a full vector when `n >= LANES`, else a partial one.
    /// # Safety
    /// `src` must be valid for reading `min(n, LANES)` floats.
    #[inline(always)]
    unsafe fn load_n(self, src: *const f32, n: usize) -> Self::V {
        // SAFETY: forwarded from the caller.
        unsafe { if n >= Self::LANES { self.load(src) } else { self.load_partial(src, n) } }
    }

    /// Writes `min(n, LANES)` lanes of `v` to `dst`.
    /// # Safety
    /// `dst` must be valid for writing `min(n, LANES)` floats.
    #[inline(always)]
    unsafe fn store_n(self, dst: *mut f32, v: Self::V, n: usize) {
        // SAFETY: forwarded from the caller.
        unsafe { if n >= Self::LANES { self.store(dst, v) } else { self.store_partial(dst, v, n) } }
    }
}
// ANCHOR_END: simd_f32
