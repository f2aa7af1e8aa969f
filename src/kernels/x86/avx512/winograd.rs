//! Chapter 10: the AVX-512 Winograd kernels and tables, the generic ones of
//! `kernels::generic::winograd` with the register tiles of this instruction set's direct
//! convolution where the output has 4 vectors of channels or more, and AVX2's 6 x 2 tile where it
//! has fewer (conv2's input gradient, 32 channels). A 12 x 2 tile took 1.08-1.17 times as long
//! there as 6 x 2 on a Zen 4 (family 25, model 17), in three rounds of one process, which left
//! the AVX-512 pass behind AVX2's on a CPU whose two peaks are equal. (The direct convolution's
//! narrower widths of chapter 7, 9 pixels by two vectors and 5 and 4 by four, were not measured
//! as Winograd's product tile.)

crate::kernels::generic::winograd::isa_tables!(super::Avx512, "avx512f", [6, 4], [6, 2]);
