//! Before chapter 11 there is no hand-written tile to race and no int8 pass: nothing to add.

use simd_cnn::bench::{Measurement, Op, Report, TimingSettings};
use simd_cnn::kernels::Isa;

pub fn asm_twin(_: &Op, _: &[Isa], _: &TimingSettings) -> Result<Option<Measurement>, String> {
    Ok(None)
}

pub fn inference(_: &[Isa], _: &TimingSettings) -> Result<Vec<Measurement>, String> {
    Ok(Vec::new())
}

pub fn markdown(_: &Report) -> String {
    String::new()
}
