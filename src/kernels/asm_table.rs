//! Chapter 11: the AVX-512 table whose convolution forward pass runs a tile written by hand
//! with `asm!` (`kernels::x86::avx512::asm`), for the race against the compiler's tile.

use super::{Isa, IsaError, Kernels};

impl Kernels {
    /// The AVX-512 table with the hand-written 6 x 4 convolution tile in its forward pass, or
    /// why it cannot run here. Every other entry is [`Kernels::for_isa`]`(Isa::Avx512)`'s.
    pub fn avx512_asm() -> Result<&'static Kernels, IsaError> {
        Isa::Avx512.check()?;
        #[cfg(target_arch = "x86_64")]
        return Ok(&super::x86::avx512::asm::KERNELS);
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("Isa::Avx512.check() passes only on x86-64")
    }

    /// Whether this is the table of [`Kernels::avx512_asm`].
    pub fn is_asm(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        return std::ptr::eq(self, &super::x86::avx512::asm::KERNELS);
        #[cfg(not(target_arch = "x86_64"))]
        false
    }
}
