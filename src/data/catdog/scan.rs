//! Finding the photos: the `PetImages/Cat`, `PetImages/Dog` layout of the Kaggle / Microsoft set.

use super::{CLASSES, CatDogError};
use sha2::{Digest, Sha256};
use std::fs;
use std::path::{Path, PathBuf};

/// One photo of the folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    /// The path below the `PetImages` folder, e.g. `Cat/12.jpg`.
    pub name: PathBuf,
    /// 0 for a cat, 1 for a dog (the index of its folder in [`CLASSES`]).
    pub label: u8,
    /// Its size in bytes when the folder was scanned.
    pub len: u64,
}

/// Every photo of a `PetImages` folder, cats first, each class in the natural order of the file
/// names (`2.jpg` before `10.jpg`).
#[derive(Clone, Debug)]
pub struct Scan {
    /// The folder that holds `Cat/` and `Dog/`.
    pub root: PathBuf,
    pub files: Vec<SourceFile>,
    /// Files in `Cat/` and `Dog/` that are not named `*.jpg` or `*.jpeg` (`Thumbs.db`, ...).
    pub ignored: usize,
}

/// The `PetImages` folder for `dir`: `dir` itself if it has `Cat/` and `Dog/` inside, else
/// `dir/PetImages`.
pub fn find_pet_images(dir: &Path) -> Result<PathBuf, CatDogError> {
    let has_classes = |d: &Path| CLASSES.iter().all(|class| d.join(class).is_dir());
    if has_classes(dir) {
        Ok(dir.to_path_buf())
    } else if has_classes(&dir.join("PetImages")) {
        Ok(dir.join("PetImages"))
    } else {
        Err(CatDogError::NotFound(dir.to_path_buf()))
    }
}

impl Scan {
    // ANCHOR: scan
    /// Lists the photos under `dir` (the `PetImages` folder or the folder that contains it):
    /// every regular file named `*.jpg` or `*.jpeg` (any case) in `Cat/` and `Dog/`. The
    /// content is not looked at here; files that turn out not to be images are skipped later.
    /// A class folder without a single photo is an error ([`CatDogError::NoImages`]).
    pub fn new(dir: &Path) -> Result<Scan, CatDogError> {
        let root = find_pet_images(dir)?;
        let mut files = Vec::new();
        let mut ignored = 0;
        for (label, class) in CLASSES.iter().enumerate() {
            let folder = root.join(class);
            let mut found = Vec::new();
            for entry in fs::read_dir(&folder).map_err(CatDogError::io(&folder))? {
                let path = entry.map_err(CatDogError::io(&folder))?.path();
                // Follows symlinks. A dangling one is listed, to be skipped as unreadable.
                let meta = fs::metadata(&path).ok();
                if meta.as_ref().is_some_and(|m| !m.is_file()) {
                    continue; // a sub-folder
                }
                if is_jpeg_name(&path) {
                    let name = Path::new(class).join(path.file_name().expect("read_dir yields named entries"));
                    found.push(SourceFile { name, label: label as u8, len: meta.map_or(0, |m| m.len()) });
                } else {
                    ignored += 1;
                }
            }
            if found.is_empty() {
                return Err(CatDogError::NoImages(folder)); // nothing to learn from one class
            }
            found.sort_by_cached_key(|f| natural_key(&f.name));
            files.append(&mut found);
        }
        Ok(Scan { root, files, ignored })
    }
    // ANCHOR_END: scan

    /// How many photos have `label`.
    pub fn count(&self, label: u8) -> usize {
        self.files.iter().filter(|f| f.label == label).count()
    }

    /// The full path of photo `k`.
    pub fn path(&self, k: usize) -> PathBuf {
        self.root.join(&self.files[k].name)
    }

    // ANCHOR: fingerprint
    /// SHA-256 of every photo's name, label and size, in order: two scans have the same
    /// fingerprint when the folder holds the same files, so a cache built from one scan is
    /// valid for the other. (A photo rewritten in place with exactly the same size goes
    /// unnoticed; delete the cache file to force a rebuild.)
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        hash.update((self.files.len() as u64).to_le_bytes());
        for f in &self.files {
            hash.update(f.name.to_string_lossy().replace('\\', "/").as_bytes());
            hash.update([0, f.label]);
            hash.update(f.len.to_le_bytes());
        }
        hash.finalize().into()
    }
    // ANCHOR_END: fingerprint
}

fn is_jpeg_name(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
}

/// Sort key that puts `2.jpg` before `10.jpg`: names with a numeric stem first, by number, then
/// the others by name.
fn natural_key(name: &Path) -> (bool, u64, PathBuf) {
    let number = name.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<u64>().ok());
    (number.is_none(), number.unwrap_or(0), name.to_path_buf())
}
