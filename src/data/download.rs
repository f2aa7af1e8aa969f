//! Fetching a file over HTTP(S) and putting it on disk safely.
//!
//! [`download`] is what every data set of the crate uses when its files are missing (MNIST in
//! chapter 3, the 790 MB cat/dog archive in chapter 9). It is built for large files on poor
//! connections:
//!
//! - the bytes go to `<dest>.part` while SHA-256 hashes them, so nothing is read twice;
//! - a `.part` left by an interrupted run is resumed with an HTTP `Range` request (if the server
//!   ignores the range and sends the whole file, the download restarts cleanly from zero);
//! - when the expected hash is known, a file that does not match it is deleted, never kept;
//! - the finished file is flushed to disk (`fsync`) and renamed into place, so `dest` is either
//!   absent or complete, whatever happens to the process or the machine;
//! - nothing is printed: [`download_reporting`] tells a caller how far it is
//!   ([`DownloadEvent`]), and the examples draw a bar from that;
//! - every failure is one [`DownloadError`] whose message is one line; nothing panics.
//!
//! [`write_atomic`] (from [`crate::files`]) is the same temporary-file-then-rename pattern for
//! the files the crate writes itself (JSON results, checkpoints).

pub use crate::files::write_atomic;
use crate::files::{hex, parent, sync_dir};
use indicatif::HumanBytes;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How patient a download is.
#[derive(Clone, Debug)]
pub struct DownloadOptions {
    /// Longest wait for the name lookup and for the connection to open (TCP and TLS).
    pub connect_timeout: Duration,
    /// Longest silence while waiting for the response or for the next bytes of the body. There is
    /// no limit on the whole transfer: a large file on a slow line may take hours.
    pub read_timeout: Duration,
}

impl Default for DownloadOptions {
    /// 30 s to connect, 60 s of silence at most.
    fn default() -> Self {
        DownloadOptions { connect_timeout: Duration::from_secs(30), read_timeout: Duration::from_secs(60) }
    }
}

/// A finished download.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Downloaded {
    /// Where the file now is (the `dest` that was asked for).
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// Its SHA-256, 64 lowercase hex digits (computed whether or not one was expected).
    pub sha256: String,
    /// How many bytes came from a `.part` file left by an earlier attempt (0 for a fresh start).
    pub resumed_from: u64,
}

/// Why a download failed. Each message is one line that says what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// No connection: no network, an unknown host, a refused connection, a timeout before the
    /// response.
    #[error(
        "cannot reach {url} ({reason}); without network, fetch that file on another machine and put it at {}",
        dest.display()
    )]
    Unreachable { url: String, dest: PathBuf, reason: String },
    /// The server answered with an error status (404, 500, ...).
    #[error("{url}: the server answered HTTP {status}")]
    Status { url: String, status: u16 },
    /// The connection broke during the transfer; what arrived is kept in `part`.
    #[error("{url}: the transfer broke off after {} ({reason}); run again to resume from {}", HumanBytes(*received), part.display())]
    Interrupted { url: String, part: PathBuf, received: u64, reason: String },
    /// The server said something this client cannot use (a wrong `Content-Range`, a compressed
    /// transfer, an invalid URL).
    #[error("{url}: {reason}")]
    Protocol { url: String, reason: String },
    /// The file arrived whole but is not the expected one; it has been deleted.
    #[error("{url}: SHA-256 mismatch: expected {expected}, got {actual}; the download was deleted")]
    Checksum { url: String, expected: String, actual: String },
    /// Reading or writing the local disk failed.
    #[error("{}: cannot {action}: {source}", path.display())]
    Disk {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: io::Error,
    },
    /// The expected hash given by the caller is not a SHA-256.
    #[error("'{value}' is not a SHA-256 (64 hex digits)")]
    BadSha256 { value: String },
}

/// What a download reports as it goes, for the caller to show: the library prints nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadEvent<'a> {
    /// The transfer begins. `start` bytes are already there from an interrupted attempt;
    /// `total` is the file's size, when the server announced it.
    Start { url: &'a str, dest: &'a Path, start: u64, total: Option<u64> },
    /// The server ignored the request to resume: the download starts again from zero.
    Restart { url: &'a str },
    /// `received` bytes of the file are on disk.
    Received { received: u64 },
    /// All `received` bytes arrived, and are flushed to disk.
    Done { received: u64 },
    /// The transfer broke off; an error follows.
    Failed,
}

// ANCHOR: download
/// Downloads `url` to `dest` with [`DownloadOptions::default`]; see [`download_reporting`].
pub fn download(url: &str, dest: &Path, expected_sha256: Option<&str>) -> Result<Downloaded, DownloadError> {
    download_with(url, dest, expected_sha256, &DownloadOptions::default())
}

/// [`download_reporting`] with `options`, telling no one how far it is.
pub fn download_with(
    url: &str,
    dest: &Path,
    expected_sha256: Option<&str>,
    options: &DownloadOptions,
) -> Result<Downloaded, DownloadError> {
    download_reporting(url, dest, expected_sha256, options, &mut |_| {})
}

/// Downloads `url` to `dest`, creating `dest`'s folder if needed and replacing any file already
/// there (callers decide whether a download is needed).
///
/// The bytes stream into `<dest>.part` through SHA-256. If that `.part` exists from an
/// interrupted attempt, its bytes are hashed and only the rest is requested (`Range:
/// bytes=<len>-`). With `expected_sha256` (64 hex digits, either case) a mismatching file is
/// deleted and reported; without it, whatever the server sent is kept. The result is flushed and
/// renamed into place, so `dest` is never seen half-written. `on` hears how far it is.
pub fn download_reporting(
    url: &str,
    dest: &Path,
    expected_sha256: Option<&str>,
    options: &DownloadOptions,
    on: &mut dyn FnMut(DownloadEvent),
) -> Result<Downloaded, DownloadError> {
    let expected = expected_sha256.map(parse_sha256).transpose()?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dir_all(dir).map_err(disk(dir, "create the folder"))?;
    }
    let part = part_path(dest);
    let agent = agent(options);

    // What an earlier attempt left behind: hash it, then ask only for the rest.
    let mut hasher = Sha256::new();
    let mut start = hash_existing(&part, &mut hasher)?;
    let mut response = match request(&agent, url, dest, start) {
        // 416: the server has no bytes after `start`. The part is the whole file (the earlier
        // run stopped between the last byte and the rename), or it is longer than the file.
        Err(DownloadError::Status { status: 416, .. }) if start > 0 => {
            if let Some(want) = &expected
                && *want == hex(&hasher.clone().finalize())
            {
                return finish(url, &part, dest, start, hasher, expected, start);
            }
            remove_if_present(&part)?;
            (hasher, start) = (Sha256::new(), 0);
            request(&agent, url, dest, 0)?
        }
        other => other?,
    };
    let status = response.status().as_u16();
    let total = match status {
        206 => Some(check_content_range(url, &part, &response, start)?),
        _ => {
            if start > 0 {
                on(DownloadEvent::Restart { url });
                (hasher, start) = (Sha256::new(), 0);
            }
            response.body().content_length()
        }
    };
    if let Some(encoding) = response.headers().get("content-encoding").and_then(|v| v.to_str().ok())
        && !encoding.eq_ignore_ascii_case("identity")
    {
        let reason = format!("the server compressed the transfer (Content-Encoding: {encoding}) although asked not to");
        return Err(DownloadError::Protocol { url: url.to_string(), reason });
    }

    let mut file = open_part(&part, start)?;
    on(DownloadEvent::Start { url, dest, start, total });
    let mut body = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut received = start;
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                on(DownloadEvent::Failed);
                return Err(interrupted(url, &part, received, e.to_string()));
            }
        };
        file.write_all(&buf[..n]).map_err(disk(&part, "write"))?;
        hasher.update(&buf[..n]);
        received += n as u64;
        on(DownloadEvent::Received { received });
    }
    if let Some(total) = total.filter(|&t| t != received) {
        on(DownloadEvent::Failed);
        return Err(interrupted(url, &part, received, format!("the server announced {}", HumanBytes(total))));
    }
    file.sync_all().map_err(disk(&part, "flush"))?;
    drop(file);
    on(DownloadEvent::Done { received });
    finish(url, &part, dest, received, hasher, expected, start)
}
// ANCHOR_END: download

/// Checks the hash of the complete `.part` file and moves it to `dest`.
fn finish(
    url: &str,
    part: &Path,
    dest: &Path,
    bytes: u64,
    hasher: Sha256,
    expected: Option<String>,
    resumed_from: u64,
) -> Result<Downloaded, DownloadError> {
    let actual = hex(&hasher.finalize());
    if let Some(expected) = expected
        && expected != actual
    {
        remove_if_present(part)?;
        return Err(DownloadError::Checksum { url: url.to_string(), expected, actual });
    }
    persist(part, dest).map_err(disk(dest, "move the download into place"))?;
    Ok(Downloaded { path: dest.to_path_buf(), bytes, sha256: actual, resumed_from })
}

/// Renames the finished temporary file `tmp` to `dest` (atomic within a file system) and flushes
/// the folder's entry to disk.
fn persist(tmp: &Path, dest: &Path) -> io::Result<()> {
    fs::rename(tmp, dest)?;
    sync_dir(parent(dest));
    Ok(())
}

/// `<dest>.part`: where the bytes collect until the file is complete and verified.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.as_os_str().to_os_string();
    name.push(".part");
    PathBuf::from(name)
}

/// The lowercase hex form of a caller's SHA-256, or [`DownloadError::BadSha256`].
fn parse_sha256(value: &str) -> Result<String, DownloadError> {
    let trimmed = value.trim();
    if trimmed.len() == 64 && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(trimmed.to_ascii_lowercase())
    } else {
        Err(DownloadError::BadSha256 { value: value.to_string() })
    }
}

fn agent(options: &DownloadOptions) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_resolve(Some(options.connect_timeout))
        .timeout_connect(Some(options.connect_timeout))
        .timeout_recv_response(Some(options.read_timeout))
        .timeout_per_read(Some(options.read_timeout))
        .user_agent(concat!("simd-cnn/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// GET `url`, from byte `start` on. The body must arrive as the server stores it
/// (`Accept-Encoding: identity`): the hash and the byte offsets are those of the file itself.
fn request(
    agent: &ureq::Agent,
    url: &str,
    dest: &Path,
    start: u64,
) -> Result<ureq::http::Response<ureq::Body>, DownloadError> {
    let mut request = agent.get(url).header("Accept-Encoding", "identity");
    if start > 0 {
        request = request.header("Range", format!("bytes={start}-"));
    }
    request.call().map_err(|e| match e {
        ureq::Error::StatusCode(status) => DownloadError::Status { url: url.to_string(), status },
        ureq::Error::BadUri(reason) => {
            DownloadError::Protocol { url: url.to_string(), reason: format!("not a valid URL ({reason})") }
        }
        other => {
            DownloadError::Unreachable { url: url.to_string(), dest: dest.to_path_buf(), reason: other.to_string() }
        }
    })
}

/// Checks that a 206 answer starts where we asked; returns the size of the whole file.
fn check_content_range(
    url: &str,
    part: &Path,
    response: &ureq::http::Response<ureq::Body>,
    start: u64,
) -> Result<u64, DownloadError> {
    let header = response.headers().get("content-range").and_then(|v| v.to_str().ok()).unwrap_or("");
    // "bytes <first>-<last>/<total>"
    let parsed = header.strip_prefix("bytes ").and_then(|r| {
        let (range, total) = r.split_once('/')?;
        let (first, last) = range.split_once('-')?;
        Some((first.trim().parse::<u64>().ok()?, last.trim().parse::<u64>().ok()?, total.trim().parse::<u64>().ok()))
    });
    match parsed {
        Some((first, last, total)) if first == start => Ok(total.unwrap_or(last + 1)),
        _ => {
            remove_if_present(part)?;
            let reason = format!(
                "asked for the bytes from {start} on, the server sent Content-Range '{header}'; the partial download was deleted, run again to start over"
            );
            Err(DownloadError::Protocol { url: url.to_string(), reason })
        }
    }
}

/// Feeds the bytes of an existing `.part` file to `hasher`; returns how many there were (0 if
/// there is no such file).
fn hash_existing(part: &Path, hasher: &mut Sha256) -> Result<u64, DownloadError> {
    let mut file = match File::open(part) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(disk(part, "read the partial download")(e)),
    };
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        match file.read(&mut buf) {
            Ok(0) => return Ok(len),
            Ok(n) => {
                hasher.update(&buf[..n]);
                len += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(disk(part, "read the partial download")(e)),
        }
    }
}

/// The `.part` file, positioned to receive byte `start`: appended to when resuming, emptied when
/// starting from zero.
fn open_part(part: &Path, start: u64) -> Result<File, DownloadError> {
    let file = if start > 0 { OpenOptions::new().append(true).open(part) } else { File::create(part) };
    file.map_err(disk(part, "write"))
}

fn remove_if_present(path: &Path) -> Result<(), DownloadError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(disk(path, "delete")(e)),
        _ => Ok(()),
    }
}

fn disk(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> DownloadError {
    let path = path.to_path_buf();
    move |source| DownloadError::Disk { path, action, source }
}

fn interrupted(url: &str, part: &Path, received: u64, reason: String) -> DownloadError {
    DownloadError::Interrupted { url: url.to_string(), part: part.to_path_buf(), received, reason }
}
