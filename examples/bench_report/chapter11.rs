//! Chapter 11: the hand-written AVX-512 convolution tile, timed right after the compiler's, and
//! the int8 forward pass beside the fp32 ones.

use simd_cnn::bench::asm::{ASM_SUFFIX, asm_markdown, asm_ops, measure_asm_op};
use simd_cnn::bench::{
    Measurement, Op, Report, TimingSettings, int8_markdown, measure_int8_inference, measure_int8_peak,
    measure_winograd_inference,
};
use simd_cnn::kernels::Isa;
use simd_cnn::kernels::int8::Int8Kernels;

/// `<op>_asm` timed with the asm table, if `op` has such a twin and AVX-512 is among `isas`.
pub fn asm_twin(op: &Op, isas: &[Isa], settings: &TimingSettings) -> Result<Option<Measurement>, String> {
    let name = format!("{}{ASM_SUFFIX}", op.name);
    match asm_ops().into_iter().find(|a| a.name == name) {
        Some(asm) if isas.contains(&Isa::Avx512) => measure_asm_op(&asm, settings).map(Some).map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}

/// The forward passes chapter 11 adds beside `inference_catdog`: fp32 on Winograd's
/// convolutions (the fastest fp32, on the best of `isas` that has them), and int8 with its peak
/// where the CPU has VNNI (a printed line where not).
pub fn inference(isas: &[Isa], settings: &TimingSettings) -> Result<Vec<Measurement>, String> {
    let mut measured = Vec::new();
    if let Some(&isa) = isas.iter().rev().find(|&&isa| isa != Isa::Scalar) {
        measured.push(measure_winograd_inference(isa, settings).map_err(|e| e.to_string())?);
    }
    match Int8Kernels::for_isa(Isa::Avx512) {
        Ok(_) if isas.contains(&Isa::Avx512) => {
            measured.push(measure_int8_peak(settings).map_err(|e| e.to_string())?);
            measured.push(measure_int8_inference(settings).map_err(|e| e.to_string())?);
        }
        Ok(_) => eprintln!("skipping int8: avx512 is not among the instruction sets measured"),
        Err(e) => eprintln!("skipping int8: {e}"),
    }
    Ok(measured)
}

/// The asm records beside the compiler's, and the int8 forward pass beside the fp32 ones.
pub fn markdown(report: &Report) -> String {
    asm_markdown(report) + &int8_markdown(report)
}
