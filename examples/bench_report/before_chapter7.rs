//! Before chapter 7 the report measures no memory: nothing to add.

use simd_cnn::bench::{Op, Report, TimingSettings};

pub fn memory_and_roofline(
    _: &mut Report,
    _: &[Op],
    _: &TimingSettings,
    _: impl FnMut(&str),
) -> Result<(String, Vec<(&'static str, String)>), String> {
    Ok((String::new(), Vec::new()))
}
