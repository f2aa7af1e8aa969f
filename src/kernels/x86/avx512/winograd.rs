//! Chapter 10: the AVX-512 Winograd kernels and tables, the generic ones of
//! `kernels::generic::winograd` with the register tiles of this instruction set's direct
//! convolution.

crate::kernels::generic::winograd::isa_tables!(super::Avx512, "avx512f", [6, 4], [12, 2]);
