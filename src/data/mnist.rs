//! MNIST: 70,000 handwritten digits of 28x28 grey pixels, in the IDX format of
//! <http://yann.lecun.com/exdb/mnist/>.
//!
//! An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of
//! dimensions), one big-endian `u32` per dimension, then the data. We read the four files under
//! their official names, gzipped or not, and reject anything whose header or length is off.

use flate2::read::GzDecoder;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Pixels per image.
pub const IMAGE_LEN: usize = 28 * 28;
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
    pub sha256_gz: &'static str,
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

/// Why a data set could not be read.
#[derive(Debug)]
pub enum MnistError {
    /// None of the accepted names exists in the folder.
    Missing {
        dir: PathBuf,
        name: &'static str,
    },
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file exists but is not what it should be.
    Invalid {
        path: PathBuf,
        reason: String,
    },
}

impl fmt::Display for MnistError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MnistError::Missing { dir, name } => {
                write!(f, "{}: neither {name} nor {name}.gz is there", dir.display())
            }
            MnistError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            MnistError::Invalid { path, reason } => write!(f, "{}: {reason}", path.display()),
        }
    }
}

impl std::error::Error for MnistError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MnistError::Io { source, .. } => Some(source),
            _ => None,
        }
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
}

impl Mnist {
    /// Reads the four files from `dir`, each either raw or gzipped.
    pub fn load(dir: &Path) -> Result<Mnist, MnistError> {
        let [train_x, train_y, test_x, test_y] = FILES.map(|file| locate(dir, &file));
        let train = read_split(&train_x?, &train_y?)?;
        let test = read_split(&test_x?, &test_y?)?;
        Ok(Mnist { train, test })
    }
}

/// The path of `file` in `dir`: the raw name if present, else the `.gz` name.
pub fn locate(dir: &Path, file: &MnistFile) -> Result<PathBuf, MnistError> {
    let raw = dir.join(file.name);
    let gz = dir.join(format!("{}.gz", file.name));
    if raw.is_file() {
        Ok(raw)
    } else if gz.is_file() {
        Ok(gz)
    } else {
        Err(MnistError::Missing { dir: dir.to_path_buf(), name: file.name })
    }
}

fn read_split(images: &Path, labels: &Path) -> Result<MnistSplit, MnistError> {
    let (image_dims, images_data) = read_idx(images, IdxKind::Images)?;
    let (label_dims, labels_data) = read_idx(labels, IdxKind::Labels)?;
    if image_dims[0] != label_dims[0] {
        return Err(MnistError::Invalid {
            path: labels.to_path_buf(),
            reason: format!("{} labels for {} images in {}", label_dims[0], image_dims[0], images.display()),
        });
    }
    if let Some(bad) = labels_data.iter().find(|&&l| l > 9) {
        return Err(MnistError::Invalid { path: labels.to_path_buf(), reason: format!("label {bad} is not a digit") });
    }
    Ok(MnistSplit { images: images_data, labels: labels_data })
}

// ANCHOR: read_idx
/// Reads an IDX file of unsigned bytes (gunzipping it if its name ends in `.gz`) and checks
/// its magic number, its dimensions and its length. Returns the dimensions and the data.
pub fn read_idx(path: &Path, kind: IdxKind) -> Result<(Vec<usize>, Vec<u8>), MnistError> {
    let invalid = |reason: String| MnistError::Invalid { path: path.to_path_buf(), reason };
    let raw = std::fs::read(path).map_err(|source| MnistError::Io { path: path.to_path_buf(), source })?;
    let bytes = if path.extension().is_some_and(|e| e == "gz") {
        let mut out = Vec::new();
        GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .map_err(|e| invalid(format!("not a complete gzip file ({e})")))?;
        out
    } else {
        raw
    };
    if bytes.len() < 4 {
        return Err(invalid(format!("{} bytes is too short for an IDX header", bytes.len())));
    }
    let magic = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if magic != kind.magic() {
        let found = match magic {
            0x0803 => "an image file".to_string(),
            0x0801 => "a label file".to_string(),
            _ => format!("magic number {magic:#010x}"),
        };
        let wanted = match kind {
            IdxKind::Images => "images (magic 0x00000803)",
            IdxKind::Labels => "labels (magic 0x00000801)",
        };
        return Err(invalid(format!("expected {wanted}, found {found}")));
    }
    let ndim = bytes[3] as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(invalid(format!("truncated header: {} bytes, need {header}", bytes.len())));
    }
    let dims: Vec<usize> =
        bytes[4..header].chunks_exact(4).map(|d| u32::from_be_bytes([d[0], d[1], d[2], d[3]]) as usize).collect();
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
    let expected_len = dims.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    let body = bytes.len() - header;
    match expected_len {
        Some(len) if len == body => Ok((dims, bytes[header..].to_vec())),
        Some(len) if len > body => {
            Err(invalid(format!("truncated: the header promises {len} bytes of data, the file has {body}")))
        }
        Some(len) => Err(invalid(format!("{} bytes of trailing data after the {len} the header promises", body - len))),
        None => Err(invalid(format!("dimensions {dims:?} overflow"))),
    }
}
// ANCHOR_END: read_idx
