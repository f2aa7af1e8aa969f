//! Chapter 10: the AVX2 Winograd kernels and tables, the generic ones of
//! `kernels::generic::winograd` with the register tiles of this instruction set's direct
//! convolution.

crate::kernels::generic::winograd::isa_tables!(super::Avx2, "avx2,fma", [6, 2], [6, 2]);
