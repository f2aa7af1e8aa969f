//! Files that survive a crash: every file the crate writes goes through [`write_atomic`].
//!
//! A file written in place can be caught half-way by a crash, a kill or a full disk, and then
//! holds neither the old content nor the new. The cure is the same everywhere:
//!
//! 1. write the new bytes to a temporary file beside the target (same folder, so the same file
//!    system), named `<name>.part`;
//! 2. flush it to the disk (`fsync`), so that its bytes are there before its name is;
//! 3. rename it over the target: on one file system a rename is atomic, so any reader, and the
//!    disk after a power cut, sees the old file or the new one, never a mixture;
//! 4. flush the folder, so that the rename itself is on the disk.
//!
//! The temporary file's name is fixed, not random: a writer killed between steps 1 and 3 leaves
//! `<name>.part` behind, and the next write of the same file reuses and renames it, so a leftover
//! never outlives the next write. (A random name, as `tempfile` draws, would pile up one orphan
//! per kill.)
//!
//! [`write_atomic_with`] is the same write with a hook called before every step, which is how the
//! tests inject a failure or a kill at each one of them.

use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// One step of a durable write, as [`write_atomic_with`]'s hook sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// Create (or truncate) a file and write bytes into it.
    Write(&'a Path),
    /// Flush a file's bytes to the disk.
    Sync(&'a Path),
    /// Rename a file over another.
    Rename { from: &'a Path, to: &'a Path },
    /// Flush a folder's entries (a rename) to the disk.
    SyncDir(&'a Path),
}

/// What a fault-injection hook does to a [`Step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The step fails with an I/O error (as on a full disk); the writer cleans up as it would.
    Fail,
    /// The process dies at this step: nothing more happens, no clean-up. A `Write` killed
    /// writes half of its bytes first, as a crash during a write may leave them.
    Kill,
}

/// Writes `bytes` to `path` so that `path` holds either its old content or all of the new, even
/// if the process or the machine dies half-way (see the module's summary).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    write_atomic_with(path, bytes, &mut |_| None)
}

// ANCHOR: write_atomic
/// [`write_atomic`], calling `hook` before each step; a step the hook faults fails (see [`Fault`]).
/// A killed write returns an error for which [`is_killed`] is true and leaves the disk as a killed
/// process would.
pub fn write_atomic_with(path: &Path, bytes: &[u8], hook: &mut dyn FnMut(Step) -> Option<Fault>) -> io::Result<()> {
    let tmp = part_path(path);
    let written = (|| {
        let fault = hook(Step::Write(&tmp));
        let mut file = File::create(&tmp)?;
        if let Some(fault) = fault {
            file.write_all(&bytes[..bytes.len() / 2])?;
            return Err(fault_error(fault));
        }
        file.write_all(bytes)?;
        step(hook, Step::Sync(&tmp))?;
        file.sync_all()?;
        step(hook, Step::Rename { from: &tmp, to: path })?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        if !is_killed(&e) {
            let _ = fs::remove_file(&tmp);
        }
        return Err(e);
    }
    step(hook, Step::SyncDir(parent(path)))?;
    sync_dir(parent(path));
    Ok(())
}
// ANCHOR_END: write_atomic

/// Asks the hook about `s`: `Ok` to go on, the fault's error otherwise.
fn step(hook: &mut dyn FnMut(Step) -> Option<Fault>, s: Step) -> io::Result<()> {
    hook(s).map_or(Ok(()), |fault| Err(fault_error(fault)))
}

/// The marker of an injected kill.
#[derive(Debug, thiserror::Error)]
#[error("killed (injected)")]
struct Killed;

fn fault_error(fault: Fault) -> io::Error {
    match fault {
        Fault::Fail => io::Error::new(io::ErrorKind::StorageFull, "no space left on device (injected)"),
        Fault::Kill => io::Error::other(Killed),
    }
}

/// Whether `e` is an injected [`Fault::Kill`]: the writer must stop at once, as a dead process.
pub fn is_killed(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Killed>())
}

/// Renames `from` over `to` and flushes the folder: the commit point of a set of files.
pub fn rename_durably(from: &Path, to: &Path, hook: &mut dyn FnMut(Step) -> Option<Fault>) -> io::Result<()> {
    step(hook, Step::Rename { from, to })?;
    fs::rename(from, to)?;
    step(hook, Step::SyncDir(parent(to)))?;
    sync_dir(parent(to));
    Ok(())
}

/// `<path>.part`: where [`write_atomic`] puts the bytes until they are whole.
pub fn part_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(".part");
    PathBuf::from(name)
}

/// The folder a file lives in (`.` for a bare name).
pub fn parent(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// Flushes a folder's entries to the disk, so that a rename or a new file in it is durable. Best
/// effort: not every system can open a folder as a file.
pub fn sync_dir(dir: &Path) {
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
}

/// Checks, before any work is done, that [`write_atomic`] will be able to write `path`: it is not
/// a folder, its folder exists and takes new files. (A file that exists is fine: whether it may
/// be replaced is the caller's question.)
pub fn check_writable(path: &Path) -> io::Result<()> {
    if path.is_dir() {
        return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a folder, not a file"));
    }
    if path.file_name().is_none() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "names no file"));
    }
    let dir = parent(path);
    if !dir.is_dir() {
        return Err(io::Error::new(io::ErrorKind::NotFound, format!("the folder {} does not exist", dir.display())));
    }
    // The one sure test is to try: create the temporary file write_atomic would use, then remove it.
    let probe = part_path(path);
    File::create(&probe)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create files in {}: {e}", dir.display())))?;
    fs::remove_file(&probe)
}

/// [`check_writable`], and, unless `replace` is set, that nothing is at `path` yet: a program
/// never replaces an earlier result unasked. The errors are one line each; the one for an
/// existing file is of kind [`io::ErrorKind::AlreadyExists`] and says to pass `--overwrite`.
pub fn check_output(path: &Path, replace: bool) -> io::Result<()> {
    check_writable(path)?;
    if !replace && path.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "already exists (an earlier result): pass --overwrite to replace it, or write elsewhere",
        ));
    }
    Ok(())
}

/// The lowercase hexadecimal SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Bytes in lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
