//! Chapter 11: the hand-written AVX-512 convolution tile, timed right after the compiler's.

use simd_cnn::bench::asm::{ASM_SUFFIX, asm_markdown, asm_ops, measure_asm_op};
use simd_cnn::bench::{Measurement, Op, Report, TimingSettings};
use simd_cnn::kernels::Isa;

/// `<op>_asm` timed with the asm table, if `op` has such a twin and AVX-512 is among `isas`.
pub fn asm_twin(op: &Op, isas: &[Isa], settings: &TimingSettings) -> Result<Option<Measurement>, String> {
    let name = format!("{}{ASM_SUFFIX}", op.name);
    match asm_ops().into_iter().find(|a| a.name == name) {
        Some(asm) if isas.contains(&Isa::Avx512) => measure_asm_op(&asm, settings).map(Some).map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}

/// The asm records beside the compiler's.
pub fn markdown(report: &Report) -> String {
    asm_markdown(report)
}
