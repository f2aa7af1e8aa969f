//! MNIST: 70,000 handwritten digits of 28x28 grey pixels, in the IDX format of
//! <http://yann.lecun.com/exdb/mnist/>.
//!
//! An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
//! dimensions), one big-endian `u32` per dimension, then the data. We read the four files under
//! their official names, gzipped or not, and reject anything whose header or length is off.
//!
//! [`Mnist::load_or_download`] fetches whichever files are missing from the mirrors in
//! [`MIRRORS`] (or from `$SIMD_CNN_MNIST_URL`), checking each against its SHA-256 in [`FILES`].

use super::download::{DownloadError, DownloadEvent, DownloadOptions, download_reporting};
use flate2::read::GzDecoder;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

/// Pixels per image.
pub const IMAGE_LEN: usize = 28 * 28;
/// The most images (or labels) an IDX file may hold: 1,048,576, 822 MB of pixels. MNIST has
/// 60,000; EMNIST, the largest set in this format, 814,255. A header that promises more is
/// refused before anything is read.
pub const MAX_IMAGES: usize = 1 << 20;
/// Mean and standard deviation of the training pixels (scaled to [0, 1]), used to normalise.
pub const PIXEL_MEAN: f32 = 0.1307;
pub const PIXEL_STD: f32 = 0.3081;

/// What an IDX file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdxKind {
    /// Magic 2051: `[n, 28, 28]` bytes.
    Images,
    /// Magic 2049: `[n]` bytes, each 0..=9.
    Labels,
}

impl IdxKind {
    pub fn magic(self) -> u32 {
        match self {
            IdxKind::Images => 0x0803,
            IdxKind::Labels => 0x0801,
        }
    }
}

/// One of the four MNIST files.
#[derive(Clone, Copy, Debug)]
pub struct MnistFile {
    /// The official name without `.gz`.
    pub name: &'static str,
    pub kind: IdxKind,
    /// SHA-256 of the official `.gz` download.
    ///
    /// Only downloads are checked against it. A file already in the folder is accepted as it is,
    /// unhashed: copies that were unzipped, or unzipped and gzipped again, hold the same images
    /// under other hashes (the copies in `../shared/data/mnist` that the project's CI reads are
    /// recompressed, so their hashes differ from these), and [`read_idx`] checks their structure
    /// anyway.
    pub sha256_gz: &'static str,
}

impl MnistFile {
    /// The file name the mirrors serve: the official name plus `.gz`.
    pub fn gz_name(&self) -> String {
        format!("{}.gz", self.name)
    }
}

/// The four files, training set first.
pub const FILES: [MnistFile; 4] = [
    MnistFile {
        name: "train-images-idx3-ubyte",
        kind: IdxKind::Images,
        sha256_gz: "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    },
    MnistFile {
        name: "train-labels-idx1-ubyte",
        kind: IdxKind::Labels,
        sha256_gz: "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    },
    MnistFile {
        name: "t10k-images-idx3-ubyte",
        kind: IdxKind::Images,
        sha256_gz: "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    },
    MnistFile {
        name: "t10k-labels-idx1-ubyte",
        kind: IdxKind::Labels,
        sha256_gz: "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
];

/// Base URLs of the official `.gz` files, tried in this order: the copy PyTorch's torchvision
/// downloads from, then the CVDF copy TensorFlow Datasets downloads from. The original site,
/// <http://yann.lecun.com/exdb/mnist/>, no longer serves the files reliably.
pub const MIRRORS: [&str; 2] =
    ["https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"];

/// Environment variable with base URLs (separated by spaces or commas) to download from instead
/// of [`MIRRORS`]: a mirror inside a company network, a local server.
pub const MIRROR_ENV: &str = "SIMD_CNN_MNIST_URL";

/// The base URLs to download from: those in `$SIMD_CNN_MNIST_URL` if it names any, else
/// [`MIRRORS`].
pub fn mirrors() -> Vec<String> {
    let from_env: Vec<String> = std::env::var(MIRROR_ENV)
        .unwrap_or_default()
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|url| !url.is_empty())
        .map(str::to_string)
        .collect();
    if from_env.is_empty() { MIRRORS.iter().map(|url| url.to_string()).collect() } else { from_env }
}

/// Why a data set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MnistError {
    /// None of the accepted names exists in the folder.
    #[error("{}: neither {name} nor {name}.gz is there", dir.display())]
    Missing { dir: PathBuf, name: &'static str },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// The file exists but is not what it should be.
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    /// The file is well formed, but what it holds cannot train or test the network.
    #[error("{}: {reason}", path.display())]
    Unusable { path: PathBuf, reason: String },
    /// No mirror delivered `file`: `failures` has one error per mirror tried (or the one disk
    /// error that stopped everything), `missing` every file still absent from `dir`.
    #[error("{}", download_message(dir, file, missing, failures))]
    Download { dir: PathBuf, file: String, missing: Vec<String>, failures: Vec<DownloadError> },
}

/// The one line of [`MnistError::Download`]: offline, it says which files to put where.
fn download_message(dir: &Path, file: &str, missing: &[String], failures: &[DownloadError]) -> String {
    let offline = failures.iter().all(|e| matches!(e, DownloadError::Unreachable { .. }));
    if offline && !failures.is_empty() {
        let reasons: Vec<String> = failures
            .iter()
            .map(|e| match e {
                DownloadError::Unreachable { url, reason, .. } => format!("{url}: {reason}"),
                other => other.to_string(),
            })
            .collect();
        format!(
            "cannot download MNIST ({}); without network, put {} (gzipped or not) into {}, or set {} to a folder whose mnist/ has them (see data/README.md)",
            reasons.join("; "),
            missing.join(", "),
            dir.display(),
            super::DATA_ENV,
        )
    } else if failures.is_empty() {
        format!("cannot download {file} into {}: no URL to download it from", dir.display())
    } else {
        let reasons: Vec<String> = failures.iter().map(ToString::to_string).collect();
        format!("cannot download {file} into {}: {}", dir.display(), reasons.join("; "))
    }
}

/// Images and labels of one split.
#[derive(Clone, Debug, Default)]
pub struct MnistSplit {
    /// `len() * 784` bytes, row by row.
    pub images: Vec<u8>,
    /// One digit per image.
    pub labels: Vec<u8>,
}

impl MnistSplit {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_LEN..][..IMAGE_LEN]
    }

    // ANCHOR: normalize
    /// Writes images `indices` as normalised floats, `(pixel / 255 - mean) / std`, into
    /// `x[indices.len(), 784]` and their labels into `labels`.
    pub fn batch(&self, indices: &[usize], x: &mut [f32], labels: &mut [u8]) {
        assert!(
            x.len() == indices.len() * IMAGE_LEN && labels.len() == indices.len(),
            "batch buffers have the wrong size"
        );
        for ((&i, row), label) in indices.iter().zip(x.chunks_exact_mut(IMAGE_LEN)).zip(labels.iter_mut()) {
            for (v, &p) in row.iter_mut().zip(self.image(i)) {
                *v = (p as f32 / 255.0 - PIXEL_MEAN) / PIXEL_STD;
            }
            *label = self.labels[i];
        }
    }
    // ANCHOR_END: normalize
}

/// The training (60,000) and test (10,000) splits.
#[derive(Clone, Debug, Default)]
pub struct Mnist {
    pub train: MnistSplit,
    pub test: MnistSplit,
    /// What the caller may want to tell the user, one line each: which file was read when a
    /// folder holds two copies of one that differ.
    pub notices: Vec<String>,
}

impl Mnist {
    /// Reads the four files from `dir`, each either raw or gzipped.
    ///
    /// A set that cannot train and test the network is an error: no training or no test
    /// images, or training labels that are all the same digit.
    pub fn load(dir: &Path) -> Result<Mnist, MnistError> {
        let [train_x, train_y, test_x, test_y] = FILES.map(|file| locate(dir, &file));
        let (train_x, train_y, test_x, test_y) = (train_x?, train_y?, test_x?, test_y?);
        let train = read_split(&train_x, &train_y, "training")?;
        let test = read_split(&test_x, &test_y, "test")?;
        if let Some(&first) = train.labels.first()
            && train.labels.iter().all(|&l| l == first)
        {
            let reason = format!("all {} training labels are {first}: there is nothing to tell apart", train.len());
            return Err(MnistError::Unusable { path: train_y, reason });
        }
        let notices = FILES
            .iter()
            .zip([&train_x, &train_y, &test_x, &test_y])
            .filter_map(|(f, p)| two_copies(dir, f, p))
            .collect();
        Ok(Mnist { train, test, notices })
    }

    /// Downloads whichever of the four files is missing from `dir` (from [`mirrors`]), then
    /// reads them all. Without network, and with files missing, the error says which files to
    /// put where.
    pub fn load_or_download(dir: &Path) -> Result<Mnist, MnistError> {
        Mnist::load_or_download_reporting(dir, &mut |_| {})
    }

    /// [`Mnist::load_or_download`], telling `on` how each download goes.
    pub fn load_or_download_reporting(dir: &Path, on: &mut dyn FnMut(DownloadEvent)) -> Result<Mnist, MnistError> {
        download_missing_reporting(dir, &mirrors(), &FILES, on)?;
        Mnist::load(dir)
    }
}

/// The path of `file` in `dir`: the raw name if present, else the `.gz` name, else the raw name
/// with a dot before `idx` (`train-images.idx3-ubyte`, as some copies of the set spell it).
pub fn locate(dir: &Path, file: &MnistFile) -> Result<PathBuf, MnistError> {
    let dotted = file.name.replacen("-idx", ".idx", 1);
    [file.name.to_string(), file.gz_name(), dotted]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| MnistError::Missing { dir: dir.to_path_buf(), name: file.name })
}

// ANCHOR: download_missing
/// Downloads into `dir`, as `<name>.gz`, each of `files` that [`locate`] does not find, trying
/// the `base_urls` in order and checking every download against the file's `sha256_gz`. Returns
/// the paths written (none when everything was there).
///
/// Files already present are accepted as they are, unhashed (see [`MnistFile::sha256_gz`]).
/// A mirror that cannot be reached, answers with an error, or sends the wrong bytes is
/// skipped for the next one; a disk error stops at once. An interrupted transfer leaves a
/// `.part` file that the next mirror, or the next run, resumes.
pub fn download_missing(
    dir: &Path,
    base_urls: &[impl AsRef<str>],
    files: &[MnistFile],
) -> Result<Vec<PathBuf>, MnistError> {
    download_missing_reporting(dir, base_urls, files, &mut |_| {})
}

/// [`download_missing`], telling `on` how each download goes.
pub fn download_missing_reporting(
    dir: &Path,
    base_urls: &[impl AsRef<str>],
    files: &[MnistFile],
    on: &mut dyn FnMut(DownloadEvent),
) -> Result<Vec<PathBuf>, MnistError> {
    let missing: Vec<&MnistFile> = files.iter().filter(|file| locate(dir, file).is_err()).collect();
    let mut written = Vec::new();
    for (i, file) in missing.iter().enumerate() {
        match fetch_from_mirrors(dir, file, base_urls, on) {
            Ok(path) => written.push(path),
            Err(failures) => {
                return Err(MnistError::Download {
                    dir: dir.to_path_buf(),
                    file: file.gz_name(),
                    missing: missing[i..].iter().map(|f| f.gz_name()).collect(),
                    failures,
                });
            }
        }
    }
    Ok(written)
}

/// Tries the mirrors in turn for one file; returns where it now is, or every mirror's error.
fn fetch_from_mirrors(
    dir: &Path,
    file: &MnistFile,
    base_urls: &[impl AsRef<str>],
    on: &mut dyn FnMut(DownloadEvent),
) -> Result<PathBuf, Vec<DownloadError>> {
    let dest = dir.join(file.gz_name());
    let mut failures = Vec::new();
    for base in base_urls {
        let url = format!("{}/{}", base.as_ref().trim_end_matches('/'), file.gz_name());
        match download_reporting(&url, &dest, Some(file.sha256_gz), &DownloadOptions::default(), on) {
            Ok(done) => return Ok(done.path),
            // The disk, or the expected hash itself, is at fault: another mirror would not help.
            Err(e @ (DownloadError::Disk { .. } | DownloadError::BadSha256 { .. })) => {
                failures.push(e);
                break;
            }
            Err(e) => failures.push(e),
        }
    }
    Err(failures)
}
// ANCHOR_END: download_missing

/// When `dir` holds `file` both raw (at `used`, which [`locate`] chose) and gzipped, and the two
/// do not hold the same data, a line that says which one is read.
fn two_copies(dir: &Path, file: &MnistFile, used: &Path) -> Option<String> {
    let gz = dir.join(file.gz_name());
    if used == gz || !gz.is_file() {
        return None;
    }
    let same = match (read_idx(used, file.kind), read_idx(&gz, file.kind)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    (!same).then(|| format!("{} and {} differ; reading {}", used.display(), gz.display(), used.display()))
}

fn read_split(images: &Path, labels: &Path, split: &str) -> Result<MnistSplit, MnistError> {
    let (image_dims, images_data) = read_idx(images, IdxKind::Images)?;
    if image_dims[0] == 0 {
        let reason = format!("0 images: the {split} set is empty");
        return Err(MnistError::Unusable { path: images.to_path_buf(), reason });
    }
    let (label_dims, labels_data) = read_idx(labels, IdxKind::Labels)?;
    if image_dims[0] != label_dims[0] {
        return Err(MnistError::Invalid {
            path: labels.to_path_buf(),
            reason: format!("{} labels for {} images in {}", label_dims[0], image_dims[0], images.display()),
        });
    }
    if let Some((i, bad)) = labels_data.iter().enumerate().find(|&(_, &l)| l > 9) {
        let reason = format!("label {bad} at index {i} is not a digit (0 to 9)");
        return Err(MnistError::Invalid { path: labels.to_path_buf(), reason });
    }
    Ok(MnistSplit { images: images_data, labels: labels_data })
}

// ANCHOR: read_idx
/// Reads an IDX file of unsigned bytes (gunzipping it if its name ends in `.gz`) and checks
/// its magic number, its dimensions and its length. Returns the dimensions and the data.
///
/// The header is read first, and then no more than the data it promises (at most
/// [`MAX_IMAGES`] images) plus a little to find out whether more follows: a small gzip file
/// that unpacks to gigabytes costs no more memory than an honest one.
pub fn read_idx(path: &Path, kind: IdxKind) -> Result<(Vec<usize>, Vec<u8>), MnistError> {
    let invalid = |reason: String| MnistError::Invalid { path: path.to_path_buf(), reason };
    let io_error = |source| MnistError::Io { path: path.to_path_buf(), source };
    let gzipped = path.extension().is_some_and(|e| e == "gz");
    let file = BufReader::new(File::open(path).map_err(io_error)?);
    let mut reader: Box<dyn Read> = if gzipped { Box::new(GzDecoder::new(file)) } else { Box::new(file) };
    let read_error = |e: io::Error| match gzipped {
        true => invalid(format!("not a complete gzip file ({e})")),
        false => io_error(e),
    };

    let mut magic = [0u8; 4];
    let got = read_up_to(&mut reader, &mut magic).map_err(read_error)?;
    if got < magic.len() {
        return Err(invalid(format!("{got} bytes is too short for an IDX header")));
    }
    let magic_number = u32::from_be_bytes(magic);
    if magic_number != kind.magic() {
        let found = match magic_number {
            0x0803 => "an image file (are the files mixed up?)".to_string(),
            0x0801 => "a label file (are the files mixed up?)".to_string(),
            _ if magic[..2] == [0x1f, 0x8b] => "gzip data (a gzipped file needs a name ending in .gz)".to_string(),
            _ if magic[..3] == [0, 0, 0x08] => format!("bytes in {} dimensions (magic {magic_number:#010x})", magic[3]),
            _ => format!("magic number {magic_number:#010x}, which is not IDX of bytes"),
        };
        let wanted = match kind {
            IdxKind::Images => "images [n, 28, 28] (magic 0x00000803)",
            IdxKind::Labels => "labels [n] (magic 0x00000801)",
        };
        return Err(invalid(format!("expected {wanted}, found {found}")));
    }
    let mut dim_bytes = vec![0u8; 4 * usize::from(magic[3])];
    let got = read_up_to(&mut reader, &mut dim_bytes).map_err(read_error)?;
    if got < dim_bytes.len() {
        let need = 4 + dim_bytes.len();
        return Err(invalid(format!("truncated header: {} bytes, need {need}", 4 + got)));
    }
    let dims: Vec<usize> =
        dim_bytes.chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize).collect();
    let expected_dims = match kind {
        IdxKind::Images => dims.len() == 3 && dims[1] == 28 && dims[2] == 28,
        IdxKind::Labels => dims.len() == 1,
    };
    if !expected_dims {
        return Err(invalid(format!(
            "dimensions {dims:?} are not those of MNIST {}",
            match kind {
                IdxKind::Images => "images [n, 28, 28]",
                IdxKind::Labels => "labels [n]",
            }
        )));
    }
    if dims[0] > MAX_IMAGES {
        return Err(invalid(format!("the header promises {} items, more than the {MAX_IMAGES} accepted", dims[0])));
    }
    let len: usize = dims.iter().product(); // at most 2^20 * 28 * 28: no overflow

    // The vector grows with the data that really arrives, up to `len`.
    let mut data = Vec::new();
    reader.by_ref().take(len as u64).read_to_end(&mut data).map_err(read_error)?;
    if data.len() < len {
        return Err(invalid(format!(
            "truncated: the header promises {len} bytes of data, the file has {}",
            data.len()
        )));
    }
    let extra = io::copy(&mut reader.take(MAX_TRAILING), &mut io::sink()).map_err(read_error)?;
    match extra {
        0 => Ok((dims, data)),
        MAX_TRAILING => {
            Err(invalid(format!("at least {MAX_TRAILING} bytes of trailing data after the {len} the header promises")))
        }
        n => Err(invalid(format!("{n} bytes of trailing data after the {len} the header promises"))),
    }
}
// ANCHOR_END: read_idx

/// Bytes after the data that [`read_idx`] counts before it gives up counting.
const MAX_TRAILING: u64 = 1 << 20;

/// Reads into `buf` until it is full or the input ends; returns the bytes read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
