//! Opening the cat/dog photos as the examples do: the library reports what it does
//! ([`OpenEvent`]), and the program shows it, a progress bar while the photos are decoded (on a
//! terminal) and the library's notes on stderr.
use indicatif::{ProgressBar, ProgressStyle};
use simd_cnn::data::catdog::{CatDog, CatDogError, OpenEvent, OpenOptions};
use std::path::Path;

/// [`CatDog::open_reporting`], shown on the terminal.
pub fn open_catdog(dir: &Path, options: &OpenOptions) -> Result<CatDog, CatDogError> {
    let mut bar: Option<ProgressBar> = None;
    let data = CatDog::open_reporting(dir, options, &mut |event| match event {
        OpenEvent::Decoding { done, total } => {
            let bar = bar.get_or_insert_with(|| {
                let style = ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} ({per_sec}, {eta} left)")
                    .expect("the template is valid");
                ProgressBar::new(total as u64).with_style(style).with_message("decoding photos")
            });
            bar.set_position(done as u64);
        }
        other => {
            if let Some(bar) = bar.take() {
                bar.finish_and_clear();
            }
            eprintln!("{other}");
        }
    });
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    data
}
