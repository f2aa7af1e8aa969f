//! Fetching the photos: Microsoft's public archive, downloaded (resumably) and unpacked.

use super::CatDogError;
use super::extract::{ARCHIVE_NAME, Extracted, extract_pet_images_reporting};
use crate::data::download::{DownloadEvent, DownloadOptions, Downloaded, download_reporting};
use std::path::Path;

/// Where Microsoft publishes the Kaggle "Cats and Dogs" photos (about 790 MB).
pub const ARCHIVE_URL: &str =
    "https://download.microsoft.com/download/3/E/1/3E1C3F21-ECDB-4869-8368-6DEBA77B919F/kagglecatsanddogs_5340.zip";

/// An environment variable that replaces [`ARCHIVE_URL`], for a mirror.
pub const ARCHIVE_URL_ENV: &str = "SIMD_CNN_CATDOG_URL";

/// [`ARCHIVE_URL`], or the value of `SIMD_CNN_CATDOG_URL` when it is set.
pub fn archive_url() -> String {
    std::env::var(ARCHIVE_URL_ENV).ok().filter(|u| !u.trim().is_empty()).unwrap_or_else(|| ARCHIVE_URL.to_string())
}

/// What [`fetch_reporting`] tells its caller as it goes.
#[derive(Clone, Copy, Debug)]
pub enum FetchEvent<'a> {
    /// How the download of the archive goes.
    Download(DownloadEvent<'a>),
    /// `done` of the archive's `total` photos are extracted.
    Extracting { done: usize, total: usize },
}

/// What [`fetch`] did.
#[derive(Clone, Debug)]
pub struct Fetched {
    pub download: Downloaded,
    pub extracted: Extracted,
}

// ANCHOR: fetch
/// Downloads the archive from `url` into `dir` and extracts its photos into `dir/PetImages`.
///
/// The download resumes a `.part` file an earlier attempt left, and is checked against the
/// length the server announced. Microsoft publishes no checksum for this archive, so each photo
/// is checked instead against the CRC-32 the archive stores for it as it is extracted, and the
/// SHA-256 of the whole archive is reported for comparison. The archive is deleted once its
/// photos are safely in place.
pub fn fetch(url: &str, dir: &Path, options: &DownloadOptions) -> Result<Fetched, CatDogError> {
    fetch_reporting(url, dir, options, &mut |_| {})
}

/// [`fetch`], telling `on` how the download and the extraction go.
pub fn fetch_reporting(
    url: &str,
    dir: &Path,
    options: &DownloadOptions,
    on: &mut dyn FnMut(FetchEvent),
) -> Result<Fetched, CatDogError> {
    std::fs::create_dir_all(dir).map_err(CatDogError::io(dir))?;
    let archive = dir.join(ARCHIVE_NAME);
    let download = download_reporting(url, &archive, None, options, &mut |e| on(FetchEvent::Download(e)))
        .map_err(|e| CatDogError::Download(Box::new(e)))?;
    let extracted =
        extract_pet_images_reporting(&archive, dir, &mut |done, total| on(FetchEvent::Extracting { done, total }))?;
    std::fs::remove_file(&archive).map_err(CatDogError::io(&archive))?;
    Ok(Fetched { download, extracted })
}
// ANCHOR_END: fetch
