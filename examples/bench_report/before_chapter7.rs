//! Before chapter 7 the report measures no memory: nothing to add.

use simd_cnn::bench::{Op, Report, TimingSettings};

/// SVG charts to write, by file name.
pub type Charts = Vec<(&'static str, String)>;

pub fn memory_and_roofline(
    _: &mut Report,
    _: &[Op],
    _: &TimingSettings,
    _: impl FnMut(&str),
) -> Result<(String, Charts), String> {
    Ok((String::new(), Vec::new()))
}
