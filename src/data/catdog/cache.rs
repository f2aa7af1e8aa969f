//! The image cache: every photo decoded once, into one file beside the data.
//!
//! Decoding 20,000 JPEGs takes a minute; reading 1 GB back takes a second. The first
//! [`CatDog::open`] decodes the photos on every core and writes them to
//! `<dir>/PetImages.128x128.simdcnn` (or, when the data folder is read-only, to
//! `~/.cache/simd-cnn/`, or wherever [`OpenOptions::cache_dir`] says); later runs only check the
//! file's header against the folder.
//!
//! Nothing here prints: what a caller may want to show (the decoding's progress, a cache being
//! rebuilt or written elsewhere, the photos skipped) arrives as [`OpenEvent`]s.
//!
//! The file is read with positional reads (`pread`), one image at a time, so the process holds
//! a few batches in memory rather than the whole gigabyte, and a file cut short while in use
//! is an error on the read that hits the gap instead of a crash. (A memory map would be faster
//! to write but needs `unsafe` and turns such a file into a `SIGBUS`.)

use super::decode::{SkipCounts, SkipReason, decode_file};
use super::scan::Scan;
use super::{CHANNELS, CLASSES, CatDogError, IMAGE_SIZE};
use crate::files::sync_dir;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The extension of cache files.
pub const CACHE_EXTENSION: &str = "simdcnn";
const MAGIC: [u8; 8] = *b"simd-cnn";
/// Bumped whenever the layout or the decoding (filter, colour conversion) changes, so that old
/// caches are rebuilt rather than misread.
const VERSION: u32 = 1;

// ANCHOR: layout
/// Where things are in a cache file of `files` photos of `size x size x 3` bytes. All numbers
/// are little-endian.
///
/// | offset | bytes | content |
/// | --- | --- | --- |
/// | 0 | 8 | magic `simd-cnn` |
/// | 8 | 4 | format version |
/// | 12 | 4 x 3 | height, width, channels |
/// | 24 | 8 | `files`: photos in the folder |
/// | 32 | 8 | photos stored (`files` minus the skipped ones) |
/// | 40 | 8 x 7 | photos skipped, by [`SkipReason`] |
/// | 96 | 32 | fingerprint of the folder ([`Scan::fingerprint`]) |
/// | 128 | 8 | offset of the pixels |
/// | 136 | `files` | label of each photo (0 cat, 1 dog) |
/// | 136 + `files` | `files` | 0 if the photo is stored, else its [`SkipReason::code`] |
/// | pixels | `files` x `image_len` | photo `k` at `pixels + k * image_len`, HWC; zeros if skipped |
///
/// The pixels start on a 4 KiB boundary. A skipped photo keeps its (never written, so sparse)
/// slot: workers can then write each photo at a place known in advance, in any order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Layout {
    files: u64,
    image_len: u64,
}

impl Layout {
    const HEADER: u64 = 136;

    fn new(files: usize, size: usize) -> Layout {
        Layout { files: files as u64, image_len: (size * size * CHANNELS) as u64 }
    }

    fn labels(&self) -> u64 {
        Self::HEADER
    }

    fn skips(&self) -> u64 {
        Self::HEADER + self.files
    }

    fn pixels(&self) -> u64 {
        (Self::HEADER + 2 * self.files).next_multiple_of(4096)
    }

    fn slot(&self, k: u64) -> u64 {
        self.pixels() + k * self.image_len
    }

    fn file_len(&self) -> u64 {
        self.slot(self.files)
    }
}
// ANCHOR_END: layout

/// The fixed part of the header (the first 136 bytes).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Header {
    size: u32,
    channels: u32,
    files: u64,
    stored: u64,
    skipped: SkipCounts,
    fingerprint: [u8; 32],
    pixels: u64,
}

impl Header {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Layout::HEADER as usize);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        for v in [self.size, self.size, self.channels] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [self.files, self.stored].into_iter().chain(self.skipped.as_array()) {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.fingerprint);
        out.extend_from_slice(&self.pixels.to_le_bytes());
        debug_assert_eq!(out.len() as u64, Layout::HEADER);
        out
    }

    fn from_bytes(b: &[u8; Layout::HEADER as usize]) -> Result<Header, CacheProblem> {
        let invalid = |why: String| CacheProblem::Invalid(why);
        let u32_at = |at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"));
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"));
        if b[..8] != MAGIC {
            return Err(invalid("not a simd-cnn image cache (wrong magic bytes)".into()));
        }
        if u32_at(8) != VERSION {
            return Err(invalid(format!("written by cache format {}, this is format {VERSION}", u32_at(8))));
        }
        let (height, width) = (u32_at(12), u32_at(16));
        if height != width {
            return Err(invalid(format!("holds {height}x{width} images, which are not square")));
        }
        Ok(Header {
            size: height,
            channels: u32_at(20),
            files: u64_at(24),
            stored: u64_at(32),
            skipped: SkipCounts::from_array(std::array::from_fn(|r| u64_at(40 + 8 * r))),
            fingerprint: b[96..128].try_into().expect("32 bytes"),
            pixels: u64_at(128),
        })
    }
}

/// Whether [`CatDog::open`] found a valid cache or decoded the photos.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheOrigin {
    /// A cache matching the folder was there: nothing was decoded.
    Opened,
    /// The photos were decoded and the cache written (first run, changed folder, damaged cache).
    Built,
}

/// How [`CatDog::open_with`] finds or builds its cache.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// The side of the square images (128 for the book's network).
    pub image_size: usize,
    /// Decoding threads; 0 means one per core. At most [`MAX_THREADS`].
    pub threads: usize,
    /// The folder the cache is looked for and written in, and no other. `None`: beside the data,
    /// or in [`OpenOptions::fallback_dir`] when the data folder is read-only.
    pub cache_dir: Option<PathBuf>,
    /// Where the cache goes when the data folder is read-only and `cache_dir` is `None`; `None`
    /// means [`user_cache_dir`].
    pub fallback_dir: Option<PathBuf>,
    /// Report the decoding's progress ([`OpenEvent::Decoding`]).
    pub progress: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions { image_size: IMAGE_SIZE, threads: 0, cache_dir: None, fallback_dir: None, progress: true }
    }
}

/// The most decoding threads [`CatDog::open_with`] starts.
pub const MAX_THREADS: usize = 1024;

/// What [`CatDog::open_reporting`] has to say while it works. The library prints nothing: the
/// caller shows these as it likes (`Display` gives the text the examples print).
#[derive(Clone, Debug, PartialEq)]
pub enum OpenEvent {
    /// A cache file was there but cannot be used; the photos are decoded again.
    Rebuilding { path: PathBuf, reason: String },
    /// The cache could not go to the first place it belongs (the data folder is read-only...),
    /// and goes to `path` instead.
    Elsewhere { refused: Vec<String>, path: PathBuf },
    /// `done` of `total` photos decoded, from 0 when decoding starts (only with
    /// [`OpenOptions::progress`]).
    Decoding { done: usize, total: usize },
    /// The photos were decoded and the cache written to `path`. `first_skipped` lists the first
    /// few photos that could not be decoded, `more_skipped` how many others did not.
    Built {
        stored: usize,
        files: usize,
        seconds: f64,
        skipped: SkipCounts,
        path: PathBuf,
        first_skipped: Vec<(PathBuf, SkipReason)>,
        more_skipped: usize,
    },
}

/// Photos listed by name in [`OpenEvent::Built`]; [`CatDog::skipped_files`] has them all.
const SHOWN_SKIPPED: usize = 5;

impl std::fmt::Display for OpenEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenEvent::Rebuilding { path, reason } => {
                write!(f, "note: image cache {}: {reason}; rebuilding it", path.display())
            }
            OpenEvent::Elsewhere { refused, path } => {
                write!(f, "note: {}; writing the image cache to {} instead", refused.join(", "), path.display())
            }
            OpenEvent::Decoding { done, total } => write!(f, "decoding photos: {done}/{total}"),
            OpenEvent::Built { stored, files, seconds, skipped, path, first_skipped, more_skipped } => {
                write!(
                    f,
                    "cat/dog: decoded {stored} of {files} photos in {seconds:.1} s ({skipped}); cache written to {}",
                    path.display()
                )?;
                for (name, reason) in first_skipped {
                    write!(f, "\n  skipped {} ({reason})", name.display())?;
                }
                if *more_skipped > 0 {
                    write!(f, "\n  ... and {more_skipped} more (CatDog::skipped_files lists them)")?;
                }
                Ok(())
            }
        }
    }
}

/// `$XDG_CACHE_HOME/simd-cnn` (usually `~/.cache/simd-cnn`) on Linux, the platform's cache
/// folder elsewhere.
pub fn user_cache_dir() -> Option<PathBuf> {
    dirs::cache_dir().map(|d| d.join("simd-cnn"))
}

/// `PetImages.128x128.simdcnn` for the folder `root` and 128-pixel images.
pub fn cache_file_name(root: &Path, size: usize) -> String {
    let stem = root.file_name().map_or("PetImages".into(), |n| n.to_string_lossy());
    format!("{stem}.{size}x{size}.{CACHE_EXTENSION}")
}

/// The data set: the photos of a `PetImages` folder as `size x size` RGB images, in the order
/// of [`Scan`] minus the skipped ones, read from the cache file on demand.
///
/// Cloning is cheap (the file and the tables are shared), so a loader thread can own a clone.
#[derive(Clone)]
pub struct CatDog {
    root: PathBuf,
    cache_path: PathBuf,
    origin: CacheOrigin,
    size: usize,
    layout: Layout,
    file: Arc<File>,
    /// For image `i`: its slot in the cache file, which is also its index in the [`Scan`].
    slots: Arc<[u32]>,
    labels: Arc<[u8]>,
    names: Arc<[PathBuf]>,
    skipped: SkipCounts,
    skipped_files: Arc<[(PathBuf, SkipReason)]>,
}

/// A summary: the tables are too long to print.
impl std::fmt::Debug for CatDog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CatDog")
            .field("root", &self.root)
            .field("cache_path", &self.cache_path)
            .field("origin", &self.origin)
            .field("size", &self.size)
            .field("len", &self.len())
            .field("skipped", &self.skipped)
            .finish_non_exhaustive()
    }
}

impl CatDog {
    /// [`CatDog::open_with`] with the default options: 128x128 images, one decoding thread per
    /// core, the cache beside the data.
    pub fn open(dir: &Path) -> Result<CatDog, CatDogError> {
        CatDog::open_with(dir, &OpenOptions::default())
    }

    /// [`CatDog::open_reporting`] without the reports.
    pub fn open_with(dir: &Path, options: &OpenOptions) -> Result<CatDog, CatDogError> {
        CatDog::open_reporting(dir, options, &mut |_| {})
    }

    // ANCHOR: open
    /// The photos under `dir` (the `PetImages` folder or the folder that contains it), from the
    /// cache if a valid one exists, else decoded now and cached for next time. What there is to
    /// tell on the way (progress, a cache rebuilt or written elsewhere) goes to `on_event`.
    ///
    /// A folder that cannot train the network is an error: a class with no photo that decodes
    /// (the network would learn to answer one class whatever it sees).
    pub fn open_reporting(
        dir: &Path,
        options: &OpenOptions,
        on_event: &mut dyn FnMut(OpenEvent),
    ) -> Result<CatDog, CatDogError> {
        if !(1..=4096).contains(&options.image_size) {
            return Err(CatDogError::Invalid(format!("image size {} is not in 1..=4096", options.image_size)));
        }
        if options.threads > MAX_THREADS {
            return Err(CatDogError::Invalid(format!("{} threads is more than {MAX_THREADS}", options.threads)));
        }
        let scan = Scan::new(dir)?;
        let locations = cache_locations(&scan.root, options);
        let mut problems = Vec::new();
        for path in &locations {
            match read_cache(path, &scan, options.image_size) {
                Ok(data) => {
                    check_classes(&scan, &data.skip_codes())?;
                    return Ok(data);
                }
                Err(CacheProblem::Missing) => {}
                Err(CacheProblem::Invalid(reason)) => problems.push((path.clone(), reason)),
            }
        }
        for (path, reason) in problems {
            on_event(OpenEvent::Rebuilding { path, reason });
        }
        build(&scan, &locations, options, on_event)
    }
    // ANCHOR_END: open

    /// Number of images (photos that decoded).
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The side of the square images.
    pub fn image_size(&self) -> usize {
        self.size
    }

    /// Bytes per image: `size * size * 3`.
    pub fn image_len(&self) -> usize {
        self.layout.image_len as usize
    }

    /// One label per image: 0 cat, 1 dog.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// How many images have `label`.
    pub fn count(&self, label: u8) -> usize {
        self.labels.iter().filter(|&&l| l == label).count()
    }

    /// Photos of the folder that could not be decoded, by reason.
    pub fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }

    /// The photos that could not be decoded (paths below [`CatDog::root`]), and why.
    pub fn skipped_files(&self) -> &[(PathBuf, SkipReason)] {
        &self.skipped_files
    }

    /// The `PetImages` folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The photo image `i` came from, e.g. `<root>/Dog/42.jpg`.
    pub fn source(&self, i: usize) -> PathBuf {
        self.root.join(&self.names[i])
    }

    pub fn cache_path(&self) -> &Path {
        &self.cache_path
    }

    pub fn origin(&self) -> CacheOrigin {
        self.origin
    }

    /// Per photo of the folder's [`Scan`]: 0 if it is stored, else the code of why it was
    /// skipped (the table of the cache file).
    fn skip_codes(&self) -> Vec<u8> {
        let files = self.layout.files as usize;
        let mut codes = vec![0u8; files];
        let mut reasons = self.skipped_files.iter().map(|(_, r)| r.code());
        let mut stored = self.slots.iter().peekable();
        for (k, code) in codes.iter_mut().enumerate() {
            if stored.next_if(|&&slot| slot as usize == k).is_none() {
                *code = reasons.next().unwrap_or(0);
            }
        }
        codes
    }

    // ANCHOR: read_image
    /// Reads image `i` (`[size, size, 3]` bytes, HWC) into `out`.
    ///
    /// # Panics
    /// If `i >= self.len()` or `out.len() != self.image_len()`.
    pub fn read_image(&self, i: usize, out: &mut [u8]) -> Result<(), CatDogError> {
        assert!(i < self.len(), "image {i} of a data set of {}", self.len());
        assert_eq!(out.len(), self.image_len(), "the buffer must hold one image");
        let offset = self.layout.slot(u64::from(self.slots[i]));
        read_at(&self.file, out, offset).map_err(|e| CatDogError::Cache {
            path: self.cache_path.clone(),
            reason: format!("reading image {i}: {e} (was the file cut short while in use?)"),
        })
    }
    // ANCHOR_END: read_image
}

/// Why a cache file cannot be used.
#[derive(Debug, thiserror::Error)]
enum CacheProblem {
    #[error("no such file")]
    Missing,
    #[error("{0}")]
    Invalid(String),
}

/// Where the cache of `root` may be: in [`OpenOptions::cache_dir`] when it is given, else beside
/// the data, then in the fallback folder. In a folder other than the data's, the name has a hash
/// of the data folder's path in it, so two data folders do not share a file.
fn cache_locations(root: &Path, options: &OpenOptions) -> Vec<PathBuf> {
    let name = cache_file_name(root, options.image_size);
    let elsewhere = |dir: &Path| {
        let absolute = fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
        let hash = Sha256::digest(absolute.to_string_lossy().as_bytes());
        let tag: String = hash[..8].iter().map(|b| format!("{b:02x}")).collect();
        let stem = name.strip_suffix(&format!(".{CACHE_EXTENSION}")).expect("the name ends in the extension");
        dir.join(format!("{stem}.{tag}.{CACHE_EXTENSION}"))
    };
    if let Some(dir) = &options.cache_dir {
        return vec![elsewhere(dir)];
    }
    let beside = root.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut locations = vec![beside.join(&name)];
    if let Some(dir) = options.fallback_dir.clone().or_else(user_cache_dir) {
        locations.push(elsewhere(&dir));
    }
    locations
}

// ANCHOR: check_classes
/// A data set that cannot train the network is an error: every class needs at least one photo
/// that decodes (`codes` as in the cache file: 0 stored, else why the photo was skipped).
fn check_classes(scan: &Scan, codes: &[u8]) -> Result<(), CatDogError> {
    for (label, class) in CLASSES.iter().enumerate() {
        let mut skipped = SkipCounts::default();
        let mut stored = 0;
        for (_, &code) in scan.files.iter().zip(codes).filter(|(f, _)| usize::from(f.label) == label) {
            match SkipReason::from_code(code) {
                Some(reason) => skipped.add(reason),
                None => stored += 1,
            }
        }
        if stored == 0 {
            return Err(CatDogError::ClassUndecodable {
                folder: scan.root.join(class),
                files: scan.count(label as u8),
                skipped,
            });
        }
    }
    Ok(())
}
// ANCHOR_END: check_classes

// ANCHOR: read_cache
/// Opens the cache at `path` if it holds `size x size` images of exactly the photos of `scan`.
fn read_cache(path: &Path, scan: &Scan, size: usize) -> Result<CatDog, CacheProblem> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(CacheProblem::Missing),
        Err(e) => return Err(CacheProblem::Invalid(e.to_string())),
    };
    let invalid = |why: String| CacheProblem::Invalid(why);
    let len = file.metadata().map_err(|e| invalid(e.to_string()))?.len();
    let mut fixed = [0u8; Layout::HEADER as usize];
    read_at(&file, &mut fixed, 0).map_err(|_| invalid(format!("{len} bytes is shorter than the header")))?;
    let header = Header::from_bytes(&fixed)?;
    if header.size as usize != size || header.channels as usize != CHANNELS {
        return Err(invalid(format!(
            "holds {0}x{0}x{1} images, not {size}x{size}x{CHANNELS}",
            header.size, header.channels
        )));
    }
    if header.files != scan.files.len() as u64 || header.fingerprint != scan.fingerprint() {
        return Err(invalid("the photo folder has changed since the cache was written".into()));
    }
    let layout = Layout::new(scan.files.len(), size);
    if header.pixels != layout.pixels() || len != layout.file_len() {
        return Err(invalid(format!("{len} bytes, expected {} (cut short?)", layout.file_len())));
    }
    let mut labels = vec![0u8; scan.files.len()];
    let mut skips = vec![0u8; scan.files.len()];
    read_at(&file, &mut labels, layout.labels()).map_err(|e| invalid(e.to_string()))?;
    read_at(&file, &mut skips, layout.skips()).map_err(|e| invalid(e.to_string()))?;
    if labels.iter().zip(&scan.files).any(|(&l, f)| l != f.label) {
        return Err(invalid("its labels do not match the folder".into()));
    }
    let mut skipped = SkipCounts::default();
    let mut skipped_files = Vec::new();
    for (k, &code) in skips.iter().enumerate().filter(|&(_, &c)| c != 0) {
        let reason = SkipReason::from_code(code).ok_or_else(|| invalid(format!("unknown skip code {code}")))?;
        skipped.add(reason);
        skipped_files.push((scan.files[k].name.clone(), reason));
    }
    let stored: Vec<u32> = (0..scan.files.len() as u32).filter(|&k| skips[k as usize] == 0).collect();
    if skipped != header.skipped || stored.len() as u64 != header.stored {
        return Err(invalid("its counts disagree with its tables".into()));
    }
    Ok(CatDog {
        root: scan.root.clone(),
        cache_path: path.to_path_buf(),
        origin: CacheOrigin::Opened,
        size,
        layout,
        file: Arc::new(file),
        labels: stored.iter().map(|&k| labels[k as usize]).collect(),
        names: stored.iter().map(|&k| scan.files[k as usize].name.clone()).collect(),
        slots: stored.into(),
        skipped,
        skipped_files: skipped_files.into(),
    })
}
// ANCHOR_END: read_cache

/// Decodes every photo of `scan` into a new cache file at the first of `locations` that can be
/// written, and opens it.
fn build(
    scan: &Scan,
    locations: &[PathBuf],
    options: &OpenOptions,
    on_event: &mut dyn FnMut(OpenEvent),
) -> Result<CatDog, CatDogError> {
    let size = options.image_size;
    let (path, partial) = create_partial(locations, on_event)?;
    let layout = Layout::new(scan.files.len(), size);
    let write_error = |e: io::Error| CatDogError::Io { path: partial.path().to_path_buf(), source: e };
    let started = Instant::now();
    let threads = match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let progress = |done| on_event(OpenEvent::Decoding { done, total: scan.files.len() });
    let mut progress = options.progress.then_some(progress);
    let skips = write_images(scan, partial.as_file(), layout, size, threads, progress.as_mut().map(|p| p as _))
        .map_err(write_error)?;

    let mut skipped = SkipCounts::default();
    skips.iter().filter_map(|&c| SkipReason::from_code(c)).for_each(|r| skipped.add(r));
    let stored = skips.iter().filter(|&&c| c == 0).count();
    if stored == 0 {
        return Err(CatDogError::NothingDecoded { root: scan.root.clone(), files: scan.files.len(), skipped });
    }
    check_classes(scan, &skips)?; // before the cache is written: it would be of no use
    let header = Header {
        size: size as u32,
        channels: CHANNELS as u32,
        files: scan.files.len() as u64,
        stored: stored as u64,
        skipped,
        fingerprint: scan.fingerprint(),
        pixels: layout.pixels(),
    };
    let labels: Vec<u8> = scan.files.iter().map(|f| f.label).collect();
    let file = partial.as_file();
    write_at(file, &header.to_bytes(), 0).map_err(write_error)?;
    write_at(file, &labels, layout.labels()).map_err(write_error)?;
    write_at(file, &skips, layout.skips()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    partial.persist(&path).map_err(|e| CatDogError::Io { path: path.clone(), source: e.error })?;
    sync_dir(path.parent().unwrap_or(Path::new(".")));

    let seconds = started.elapsed().as_secs_f64();
    let mut data = read_cache(&path, scan, size).map_err(|problem| CatDogError::Cache {
        path: path.clone(),
        reason: match problem {
            CacheProblem::Missing => "vanished right after it was written".into(),
            CacheProblem::Invalid(why) => format!("unreadable right after it was written: {why}"),
        },
    })?;
    data.origin = CacheOrigin::Built;
    on_event(OpenEvent::Built {
        stored,
        files: scan.files.len(),
        seconds,
        skipped,
        path,
        first_skipped: data.skipped_files().iter().take(SHOWN_SKIPPED).cloned().collect(),
        more_skipped: data.skipped_files().len().saturating_sub(SHOWN_SKIPPED),
    });
    Ok(data)
}

// ANCHOR: write_images
/// Decodes the photos of `scan` on `threads` threads, each writing its images straight into
/// their slots of `file`. Returns, per photo, 0 or the code of the reason it was skipped.
///
/// A thread takes the next photo from a shared counter, so a slow (large) photo does not hold
/// the others up, and nothing but the images being decoded is in memory: about 50 KB each. The
/// calling thread tells `progress` how many photos are done as they finish.
fn write_images(
    scan: &Scan,
    file: &File,
    layout: Layout,
    size: usize,
    threads: usize,
    progress: Option<&mut dyn FnMut(usize)>,
) -> io::Result<Vec<u8>> {
    file.set_len(layout.file_len())?; // unwritten slots read as zeros and take no disk space
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let skips: Vec<AtomicU8> = scan.files.iter().map(|_| AtomicU8::new(0)).collect();
    let work = |done: mpsc::Sender<()>| -> io::Result<()> {
        loop {
            let k = next.fetch_add(1, Ordering::Relaxed);
            if k >= scan.files.len() || failed.load(Ordering::Relaxed) {
                return Ok(());
            }
            match decode_file(&scan.path(k), size as u32) {
                Ok(pixels) => {
                    if let Err(e) = write_at(file, &pixels, layout.slot(k as u64)) {
                        failed.store(true, Ordering::Relaxed); // the other threads stop too
                        return Err(e);
                    }
                }
                Err(reason) => skips[k].store(reason.code(), Ordering::Relaxed),
            }
            let _ = done.send(()); // nobody listens when progress is not wanted
        }
    };
    let work = &work;
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads.min(scan.files.len()).max(1))
            .map(|_| {
                let done = done_tx.clone();
                s.spawn(move || work(done))
            })
            .collect();
        drop(done_tx); // the loop below ends when the last worker drops its sender
        if let Some(progress) = progress {
            progress(0);
            for (done, ()) in done_rx.iter().enumerate() {
                progress(done + 1);
            }
        }
        workers.into_iter().try_for_each(|w| w.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })?;
    Ok(skips.into_iter().map(AtomicU8::into_inner).collect())
}
// ANCHOR_END: write_images

/// A temporary file (`.<name>.XXXXXX.partial`) beside the first location whose folder takes one,
/// with a note when that is not the first; and the path it is to be renamed to.
fn create_partial(
    locations: &[PathBuf],
    on_event: &mut dyn FnMut(OpenEvent),
) -> Result<(PathBuf, tempfile::NamedTempFile), CatDogError> {
    let mut refused = Vec::new();
    for path in locations {
        let dir = path.parent().unwrap_or(Path::new("."));
        let name = path.file_name().expect("cache paths have a file name").to_string_lossy();
        // Honour a read-only folder even when running as root, who could write to it anyway.
        if fs::metadata(dir).is_ok_and(|m| m.permissions().readonly()) {
            refused.push(format!("{} is read-only", dir.display()));
            continue;
        }
        let created = fs::create_dir_all(dir).and_then(|()| {
            remove_stale_partials(dir, &name);
            tempfile::Builder::new().prefix(&format!(".{name}.")).suffix(".partial").tempfile_in(dir)
        });
        match created {
            Ok(partial) => {
                if !refused.is_empty() {
                    on_event(OpenEvent::Elsewhere { refused, path: path.clone() });
                }
                return Ok((path.clone(), partial));
            }
            Err(e) => refused.push(format!("cannot write in {} ({e})", dir.display())),
        }
    }
    Err(CatDogError::Cache {
        path: locations[0].clone(),
        reason: format!("no folder takes the cache: {}", refused.join(", ")),
    })
}

/// Removes the `.<name>.*.partial` files that a killed build left in `dir`, once they are an hour
/// old (a build in progress writes to its file all the time).
fn remove_stale_partials(dir: &Path, name: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let stale = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > Duration::from_secs(3600)));
        if file_name.starts_with(&prefix) && file_name.ends_with(".partial") && stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

// Positional reads and writes: each call names its offset, so threads can share one `File`.

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

/// Elsewhere, a seek then a read under a lock (the lock keeps another thread's seek out).
#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek, SeekFrom};
    let _guard = SEEK_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

#[cfg(not(unix))]
fn write_at(mut file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let _guard = SEEK_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    file.seek(SeekFrom::Start(offset))?;
    file.write_all(buf)
}

#[cfg(not(unix))]
static SEEK_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
