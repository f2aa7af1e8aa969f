//! Cats and dogs: the photos of the Kaggle / Microsoft "Dogs vs. Cats" set, decoded once into a
//! cache file and served as batches of `[n, 128, 128, 3]` floats.
//!
//! The pipeline, one file per step:
//!
//! | step | file | what it does |
//! | --- | --- | --- |
//! | find | `scan.rs` | lists `PetImages/Cat/*.jpg` (label 0) and `PetImages/Dog/*.jpg` (label 1) |
//! | decode | `decode.rs` | any JPEG or PNG, any colour type, to RGB bytes; bad files are skipped and counted |
//! | resize | `resize.rs` | to 128x128 with Pillow's bilinear filter, to the byte |
//! | cache | `cache.rs` | all decoded images in one file beside the data (or in a folder of your choice), read back with positional reads |
//! | split | `split.rs` | a seeded, class-balanced train/validation split |
//! | batch | `batch.rs` | bytes to NHWC floats in [0, 1], with optional flips and crops |
//! | load | `loader.rs` | the next batch is assembled on a background thread while the current one trains |
//! | extract | `extract.rs` | the photos out of the Microsoft zip, into place atomically |
//!
//! ```no_run
//! use simd_cnn::data::catdog::{CatDog, LoaderOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let data = CatDog::open(&simd_cnn::data::default_dir("catdog"))?; // decodes on the first run only
//! let split = data.split(0.2, 0)?;
//! let train = data.loader(&split.train, LoaderOptions::train(16, 0).augmented());
//! for epoch in 0..10 {
//!     for batch in train.epoch(epoch) {
//!         let batch = batch?; // batch.x: [16, 128, 128, 3], batch.labels: [16], 1.0 = dog
//!     }
//! }
//! # Ok(()) }
//! ```

mod batch;
mod cache;
mod decode;
mod extract;
mod fetch;
mod loader;
mod resize;
mod scan;
mod split;

pub use batch::{Augment, Batch, PAD, augment_into, to_unit_f32};
pub use cache::{
    CACHE_EXTENSION, CacheOrigin, CatDog, MAX_THREADS, OpenEvent, OpenOptions, cache_file_name, user_cache_dir,
};
pub use decode::{
    MAX_DECODED_BYTES, MAX_FILE_BYTES, MAX_SIDE, SkipCounts, SkipReason, decode_file, decode_file_to, decode_image,
    decode_image_to, jpeg_reaches_end,
};
pub use extract::{ARCHIVE_NAME, Extracted, MAX_ENTRY_BYTES, extract_pet_images, extract_pet_images_reporting};
pub use fetch::{ARCHIVE_URL, ARCHIVE_URL_ENV, FetchEvent, Fetched, archive_url, fetch, fetch_reporting};
pub use loader::{EpochBatches, Loader, LoaderOptions};
pub use resize::resize_rgb;
pub use scan::{Scan, SourceFile, find_pet_images};
pub use split::{Split, sub_seed};

use std::path::PathBuf;

/// The side of the square images the network sees.
pub const IMAGE_SIZE: usize = 128;
/// Red, green, blue.
pub const CHANNELS: usize = 3;
/// The folder of each class; a label is an index into this array (cat = 0, dog = 1), so the
/// network's single output is the probability of "dog".
pub const CLASSES: [&str; 2] = ["Cat", "Dog"];
/// The label of a cat.
pub const CAT: u8 = 0;
/// The label of a dog.
pub const DOG: u8 = 1;

/// Why the data set could not be read. Single photos that cannot be decoded are not errors: they
/// are skipped and counted (see [`SkipCounts`]).
#[derive(Debug, thiserror::Error)]
pub enum CatDogError {
    #[error("{}: no PetImages folder (expected PetImages/Cat/*.jpg and PetImages/Dog/*.jpg in it)", .0.display())]
    NotFound(PathBuf),
    /// A class folder (`PetImages/Cat` or `PetImages/Dog`) without a single photo.
    #[error("{}: no .jpg photos in it; training needs photos of both classes (cats in Cat/, dogs in Dog/)", .0.display())]
    NoImages(PathBuf),
    #[error("{}: none of the {files} photos could be decoded ({skipped})", root.display())]
    NothingDecoded { root: PathBuf, files: usize, skipped: SkipCounts },
    /// A class folder none of whose photos decodes.
    #[error("{}: none of its {files} photos could be decoded ({skipped}); training needs photos of both classes", folder.display())]
    ClassUndecodable { folder: PathBuf, files: usize, skipped: SkipCounts },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("image cache {}: {reason}", path.display())]
    Cache { path: PathBuf, reason: String },
    #[error("archive {}: {reason}", path.display())]
    Archive { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Download(Box<crate::data::download::DownloadError>),
}

impl CatDogError {
    fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> CatDogError {
        let path = path.into();
        move |source| CatDogError::Io { path, source }
    }
}
