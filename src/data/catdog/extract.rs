//! Unpacking the Microsoft archive (`kagglecatsanddogs_5340.zip`, 787 MB) into `PetImages/`.
//!
//! The archive holds `PetImages/Cat/*.jpg`, `PetImages/Dog/*.jpg`, a `Thumbs.db` in each folder,
//! a licence and a readme. Only the photos are extracted, into a temporary folder beside the
//! destination that is renamed into place at the end: an interrupted extraction leaves no
//! half-filled `PetImages` behind for the loader to trust.

use super::{CLASSES, CatDogError};
use crate::files::sync_dir;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// The name of the archive as Microsoft publishes it.
pub const ARCHIVE_NAME: &str = "kagglecatsanddogs_5340.zip";
/// An entry that unpacks to more than this is refused (the photos are well under 1 MB).
pub const MAX_ENTRY_BYTES: u64 = 64 << 20;

/// What [`extract_pet_images`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extracted {
    /// The new `PetImages` folder.
    pub root: PathBuf,
    /// Photos written.
    pub files: usize,
    /// Entries left out: folders, `Thumbs.db`, the licence, anything outside `PetImages/Cat`
    /// and `PetImages/Dog`.
    pub ignored: usize,
}

// ANCHOR: extract
/// Extracts the `PetImages/{Cat,Dog}/*.jpg` entries of the zip file `archive` into
/// `dest/PetImages`, which must not exist yet.
///
/// The photos go to a temporary folder in `dest` first, are flushed to disk, and the folder is
/// renamed to `PetImages` in one step. An archive with an entry whose path could escape the
/// destination (`../`, an absolute path, a drive letter, a backslash) is refused as a whole.
pub fn extract_pet_images(archive: &Path, dest: &Path) -> Result<Extracted, CatDogError> {
    extract_pet_images_reporting(archive, dest, &mut |_, _| {})
}

/// [`extract_pet_images`], calling `on(done, total)` before the first photo and after each one.
pub fn extract_pet_images_reporting(
    archive: &Path,
    dest: &Path,
    on: &mut dyn FnMut(usize, usize),
) -> Result<Extracted, CatDogError> {
    let bad = |reason: String| CatDogError::Archive { path: archive.to_path_buf(), reason };
    let target = dest.join("PetImages");
    if target.exists() {
        return Err(CatDogError::Invalid(format!("{} already exists; not extracting over it", target.display())));
    }
    let file = File::open(archive).map_err(CatDogError::io(archive))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| bad(format!("not a zip file ({e})")))?;
    let photos = list_photos(&mut zip, archive)?;
    let ignored = zip.len() - photos.len();

    fs::create_dir_all(dest).map_err(CatDogError::io(dest))?;
    let temp = tempfile::Builder::new()
        .prefix(".PetImages.")
        .suffix(".partial")
        .tempdir_in(dest)
        .map_err(CatDogError::io(dest))?;
    let staged = temp.path().join("PetImages");
    for class in CLASSES {
        fs::create_dir_all(staged.join(class)).map_err(CatDogError::io(&staged))?;
    }
    on(0, photos.len());
    for (done, (i, name)) in photos.iter().enumerate() {
        let mut entry = zip.by_index(*i).map_err(|e| bad(format!("entry {}: {e}", name.display())))?;
        let out_path = staged.join(name);
        let mut out = File::create_new(&out_path).map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => bad(format!("entry {} appears twice", name.display())),
            _ => CatDogError::Io { path: out_path.clone(), source: e },
        })?;
        let copied = io::copy(&mut (&mut entry).take(MAX_ENTRY_BYTES + 1), &mut out)
            .map_err(|e| bad(format!("entry {}: {e}", name.display())))?;
        if copied > MAX_ENTRY_BYTES {
            return Err(bad(format!("entry {} unpacks to more than {MAX_ENTRY_BYTES} bytes", name.display())));
        }
        out.flush().map_err(CatDogError::io(&out_path))?;
        on(done + 1, photos.len());
    }
    // Flush every photo before the rename makes them visible: after a crash the folder is
    // either absent or complete. (Syncing after all the writes costs one disk flush, not one
    // per photo.)
    for (_, name) in &photos {
        let path = staged.join(name);
        File::open(&path).and_then(|f| f.sync_all()).map_err(CatDogError::io(&path))?;
    }
    for dir in CLASSES.iter().map(|c| staged.join(c)).chain([staged.clone()]) {
        sync_dir(&dir);
    }
    fs::rename(&staged, &target).map_err(CatDogError::io(&target))?;
    sync_dir(dest);
    Ok(Extracted { root: target, files: photos.len(), ignored })
}
// ANCHOR_END: extract

/// The photos of the zip file `archive`, as (entry index, path below `PetImages`), after
/// checking that every entry name is safe.
fn list_photos<R: io::Read + io::Seek>(
    zip: &mut zip::ZipArchive<R>,
    archive: &Path,
) -> Result<Vec<(usize, PathBuf)>, CatDogError> {
    let bad = |reason: String| CatDogError::Archive { path: archive.to_path_buf(), reason };
    let mut photos = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index_raw(i).map_err(|e| bad(format!("entry {i}: {e}")))?;
        let name = entry.name().map_err(|e| bad(format!("entry {i}: {e}")))?;
        if !is_safe_entry_name(&name) {
            return Err(bad(format!("entry {name:?} has an unsafe path; refusing the whole archive")));
        }
        if let Some(path) = photo_path(&name).filter(|_| entry.is_file() && !entry.is_symlink()) {
            photos.push((i, path));
        }
    }
    Ok(photos)
}

/// A relative path of plain names separated by `/`: no `..`, no leading `/`, no backslash (a
/// separator on Windows), no `:` (a drive letter or an NTFS stream), no NUL.
fn is_safe_entry_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.contains(['\\', ':', '\0'])
        && name.split('/').all(|part| part != "..")
}

/// `Cat/1.jpg` for the entry `PetImages/Cat/1.jpg`, `None` for any other entry.
fn photo_path(name: &str) -> Option<PathBuf> {
    let mut parts = name.split('/');
    let (root, class, file) = (parts.next()?, parts.next()?, parts.next()?);
    let is_photo = root == "PetImages"
        && CLASSES.contains(&class)
        && parts.next().is_none()
        && !file.starts_with('.')
        && Path::new(file)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"));
    is_photo.then(|| Path::new(class).join(file))
}
