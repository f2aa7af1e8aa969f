//! Chapter 10: the SSE Winograd kernels and tables, the generic ones of
//! `kernels::generic::winograd` with the register tiles of this instruction set's direct
//! convolution.

crate::kernels::generic::winograd::isa_tables!(super::Sse, "sse2", [5, 2], [5, 2]);
