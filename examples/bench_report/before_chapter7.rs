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

/// `--fc1-rows` chooses among chapter 7's tiles, which this build does not have.
pub fn ask_fc1_rows(rows: Option<usize>) -> Result<(), String> {
    match rows {
        None => Ok(()),
        Some(_) => Err("--fc1-rows needs chapter 7's tiles: build with the feature ch7".to_string()),
    }
}
