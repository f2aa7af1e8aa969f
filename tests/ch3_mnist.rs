//! Chapter 3: reading MNIST, downloading it, and the pieces of the training loop.
//!
//! The IDX reader is fed small files built here, each broken in one way, and must name the
//! problem in one line. The downloader talks to a small HTTP/1.1 server that this file starts on
//! 127.0.0.1 and that can cut a transfer half-way, ignore `Range`, or answer 404. The real data
//! set is read when `SIMD_CNN_DATA` has it.

mod common;

use common::http::{Quirk, Server, dead_url};
use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use simd_cnn::data::download::{DownloadError, DownloadOptions, Downloaded, download_with, part_path, write_atomic};
use simd_cnn::data::mnist::{
    FILES, IMAGE_LEN, IdxKind, MAX_IMAGES, Mnist, MnistError, MnistFile, download_missing, read_idx,
};
use simd_cnn::model::StepStats;
use simd_cnn::train::{EpochOrder, EpochStats, LossGuard, argmax};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use tempfile::TempDir;

// ------------------------------------------------------------------ building IDX files

/// An IDX file of unsigned bytes: magic, dimensions, data.
fn idx(kind: IdxKind, dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut out = kind.magic().to_be_bytes().to_vec();
    out[3] = dims.len() as u8;
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(data);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Pixels that gzip cannot shrink much (so a transfer has many bytes to cut), from a seed.
fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut state = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            (state >> 24) as u8
        })
        .collect()
}

/// A small MNIST: the four raw files, `n_train` and `n_test` images, labels `i % 10`.
fn tiny_mnist(n_train: usize, n_test: usize) -> [Vec<u8>; 4] {
    let images = |n: usize, seed| idx(IdxKind::Images, &[n as u32, 28, 28], &noise(n * IMAGE_LEN, seed));
    let labels = |n: usize| idx(IdxKind::Labels, &[n as u32], &(0..n).map(|i| (i % 10) as u8).collect::<Vec<_>>());
    [images(n_train, 1), labels(n_train), images(n_test, 2), labels(n_test)]
}

/// Writes `files` (in the order of [`FILES`]) into a new temporary folder under the given names.
fn folder_with(files: &[(String, Vec<u8>)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    dir
}

/// The tiny set as raw files, with file `broken` (an index into [`FILES`]) replaced by `bytes`
/// under the name `name_suffix` appended to the official name.
fn folder_with_broken(broken: usize, bytes: Vec<u8>, name_suffix: &str) -> TempDir {
    let mut files: Vec<(String, Vec<u8>)> =
        FILES.iter().zip(tiny_mnist(3, 2)).map(|(f, bytes)| (f.name.to_string(), bytes)).collect();
    files[broken] = (format!("{}{name_suffix}", FILES[broken].name), bytes);
    folder_with(&files)
}

/// Loads `dir`, expects an error, and checks that its message is one line naming `file` and
/// containing every one of `words`.
#[track_caller]
fn assert_load_fails(dir: &Path, file: &str, words: &[&str]) -> String {
    let message = match Mnist::load(dir) {
        Ok(_) => panic!("{}: loaded, but should have failed with {words:?}", dir.display()),
        Err(e) => e.to_string(),
    };
    assert!(!message.contains('\n'), "not one line: {message}");
    assert!(message.contains(file), "does not name {file}: {message}");
    for word in words {
        assert!(message.contains(word), "does not say '{word}': {message}");
    }
    message
}

// ------------------------------------------------------------------ the IDX reader

#[test]
fn a_truncated_image_file_is_named_as_such() {
    let [images, ..] = tiny_mnist(3, 2);
    let cut = images[..images.len() - IMAGE_LEN / 2].to_vec();
    let dir = folder_with_broken(0, cut, "");
    let message = assert_load_fails(dir.path(), "train-images-idx3-ubyte", &["truncated"]);
    // 3 images of 784 bytes promised, 392 missing.
    assert!(message.contains(&format!("{}", 3 * IMAGE_LEN)) && message.contains(&format!("{}", 3 * IMAGE_LEN - 392)));
}

#[test]
fn a_truncated_header_is_named_as_such() {
    let [images, ..] = tiny_mnist(3, 2);
    let dir = folder_with_broken(0, images[..10].to_vec(), "");
    assert_load_fails(dir.path(), "train-images-idx3-ubyte", &["truncated header", "10 bytes", "need 16"]);
    let dir = folder_with_broken(3, vec![0, 0], "");
    assert_load_fails(dir.path(), "t10k-labels-idx1-ubyte", &["too short for an IDX header"]);
}

#[test]
fn a_label_file_where_the_images_should_be_is_mislabelled() {
    let [_, labels, ..] = tiny_mnist(3, 2);
    let dir = folder_with_broken(0, labels, "");
    assert_load_fails(dir.path(), "train-images-idx3-ubyte", &["expected images", "a label file", "mixed up"]);
}

#[test]
fn wrong_dimensions_are_named() {
    let bad = idx(IdxKind::Images, &[3, 27, 28], &noise(3 * 27 * 28, 5));
    let dir = folder_with_broken(2, bad, "");
    assert_load_fails(dir.path(), "t10k-images-idx3-ubyte", &["dimensions [3, 27, 28]", "[n, 28, 28]"]);
    // The number of dimensions is the last byte of the magic number.
    let bad = idx(IdxKind::Labels, &[2, 1], &[1, 2]);
    let dir = folder_with_broken(3, bad, "");
    assert_load_fails(dir.path(), "t10k-labels-idx1-ubyte", &["expected labels [n]", "bytes in 2 dimensions"]);
}

#[test]
fn trailing_bytes_are_named() {
    let [_, mut labels, ..] = tiny_mnist(3, 2);
    labels.extend([7, 7, 7]);
    let dir = folder_with_broken(1, labels, "");
    assert_load_fails(dir.path(), "train-labels-idx1-ubyte", &["3 bytes of trailing data"]);
}

#[test]
fn a_corrupt_gzip_is_named() {
    let [images, ..] = tiny_mnist(3, 2);
    let packed = gzip(&images);
    let dir = folder_with_broken(0, packed[..packed.len() / 2].to_vec(), ".gz");
    assert_load_fails(dir.path(), "train-images-idx3-ubyte.gz", &["not a complete gzip file"]);
    let dir = folder_with_broken(0, b"this is not gzip at all".to_vec(), ".gz");
    assert_load_fails(dir.path(), "train-images-idx3-ubyte.gz", &["not a complete gzip file"]);
}

#[test]
fn gzip_data_under_a_raw_name_is_named() {
    let [images, ..] = tiny_mnist(3, 2);
    let dir = folder_with_broken(0, gzip(&images), "");
    assert_load_fails(dir.path(), "train-images-idx3-ubyte", &["gzip data", ".gz"]);
}

#[test]
fn a_label_above_nine_is_named() {
    let bad = idx(IdxKind::Labels, &[3], &[4, 1, 12]);
    let dir = folder_with_broken(1, bad, "");
    assert_load_fails(dir.path(), "train-labels-idx1-ubyte", &["label 12 at index 2", "not a digit"]);
}

#[test]
fn counts_that_disagree_are_named() {
    let bad = idx(IdxKind::Labels, &[4], &[1, 2, 3, 4]);
    let dir = folder_with_broken(1, bad, "");
    assert_load_fails(dir.path(), "train-labels-idx1-ubyte", &["4 labels for 3 images", "train-images-idx3-ubyte"]);
}

#[test]
fn a_missing_file_is_named() {
    let dir = folder_with_broken(2, Vec::new(), ".elsewhere");
    assert_load_fails(dir.path(), "t10k-images-idx3-ubyte", &["neither", ".gz"]);
}

#[test]
fn raw_gzipped_and_dotted_names_are_all_found() {
    let raw = tiny_mnist(3, 2);
    // train images raw, train labels gzipped, test images gzipped, test labels with the dotted name.
    let dir = folder_with(&[
        (FILES[0].name.to_string(), raw[0].clone()),
        (FILES[1].gz_name(), gzip(&raw[1])),
        (FILES[2].gz_name(), gzip(&raw[2])),
        ("t10k-labels.idx1-ubyte".to_string(), raw[3].clone()),
    ]);
    let mnist = Mnist::load(dir.path()).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (3, 2));
    assert_eq!(mnist.train.images, raw[0][16..]);
    assert_eq!(mnist.train.labels, [0, 1, 2]);
    assert_eq!(mnist.test.images, raw[2][16..]);
    assert_eq!(mnist.test.labels, [0, 1]);
}

#[test]
fn batch_normalises_pixels_with_the_training_mean_and_std() {
    let raw = tiny_mnist(3, 2);
    let names: Vec<(String, Vec<u8>)> = FILES.iter().zip(raw.clone()).map(|(f, b)| (f.name.to_string(), b)).collect();
    let mnist = Mnist::load(folder_with(&names).path()).unwrap();
    let mut x = vec![0.0; 2 * IMAGE_LEN];
    let mut y = [0u8; 2];
    mnist.train.batch(&[2, 0], &mut x, &mut y);
    assert_eq!(y, [2, 0]);
    for (i, &pixel) in mnist.train.image(2).iter().enumerate().step_by(97) {
        let want = (pixel as f32 / 255.0 - 0.1307) / 0.3081;
        assert!((x[i] - want).abs() < 1e-6, "pixel {i}: {} vs {want}", x[i]);
    }
}

#[test]
fn an_empty_training_or_test_set_is_an_error_that_says_so() {
    let named = |raw: [Vec<u8>; 4]| -> Vec<(String, Vec<u8>)> {
        FILES.iter().zip(raw).map(|(f, b)| (f.name.to_string(), b)).collect()
    };
    let dir = folder_with(&named(tiny_mnist(0, 2)));
    assert_load_fails(dir.path(), "train-images-idx3-ubyte", &["0 images", "training set is empty"]);
    let dir = folder_with(&named(tiny_mnist(3, 0)));
    assert_load_fails(dir.path(), "t10k-images-idx3-ubyte", &["0 images", "test set is empty"]);
}

#[test]
fn training_labels_that_are_all_one_digit_are_an_error() {
    let bad = idx(IdxKind::Labels, &[3], &[7, 7, 7]);
    let dir = folder_with_broken(1, bad, "");
    assert_load_fails(dir.path(), "train-labels-idx1-ubyte", &["all 3 training labels are 7"]);
    // One test label is fine: the test set only measures.
    let one = idx(IdxKind::Labels, &[2], &[4, 4]);
    assert!(Mnist::load(folder_with_broken(3, one, "").path()).is_ok());
}

#[test]
fn a_header_promising_more_than_the_limit_is_refused_before_the_data_is_read() {
    let n = MAX_IMAGES as u32 + 1;
    let dir = folder_with_broken(0, idx(IdxKind::Images, &[n, 28, 28], &[]), "");
    assert_load_fails(dir.path(), "train-images-idx3-ubyte", &[&format!("promises {n} items"), "more than"]);
}

/// The process's peak resident memory so far, in bytes.
#[cfg(target_os = "linux")]
fn peak_memory() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn a_gzip_bomb_is_read_no_further_than_its_header_promises() {
    use flate2::{Compress, FlushCompress};
    // A label file of 3 labels followed by 1 GiB of zeros, in 1 MB of gzip: the compressed
    // block of 1 MiB of zeros, ended by a full flush (which makes it independent of what comes
    // before), written 1024 times. No end: a reader that reads it all fails only after 1 GiB.
    let deflate = |c: &mut Compress, input: &[u8]| {
        let (mut out, before) = (Vec::with_capacity(input.len() + 1024), c.total_in());
        c.compress_vec(input, &mut out, FlushCompress::Full).unwrap();
        assert_eq!(c.total_in() - before, input.len() as u64, "all input taken");
        out
    };
    let mut c = Compress::new(Compression::best(), false);
    let head = deflate(&mut c, &idx(IdxKind::Labels, &[3], &[1, 2, 3]));
    let zeros = deflate(&mut c, &vec![0u8; 1 << 20]);
    let mut bomb = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    bomb.extend(&head);
    for _ in 0..1024 {
        bomb.extend(&zeros);
    }
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("train-labels-idx1-ubyte.gz");
    std::fs::write(&path, &bomb).unwrap();

    let before = peak_memory();
    let err = read_idx(&path, IdxKind::Labels).unwrap_err();
    let grown = peak_memory().saturating_sub(before);
    let message = err.to_string();
    assert!(message.contains("train-labels-idx1-ubyte.gz") && message.contains("trailing data"), "{message}");
    // Reading it all would take a GiB; other tests running meanwhile take far less than 256 MiB.
    assert!(grown < 256 << 20, "peak memory grew by {} MiB", grown >> 20);
}

#[test]
fn two_copies_of_a_file_that_differ_are_reported_and_the_raw_one_is_read() {
    let raw = tiny_mnist(3, 2);
    let mut files: Vec<(String, Vec<u8>)> =
        FILES.iter().zip(raw.clone()).map(|(f, b)| (f.name.to_string(), b)).collect();
    // The same labels gzipped: nothing to say.
    files.push((FILES[1].gz_name(), gzip(&raw[1])));
    let dir = folder_with(&files);
    assert_eq!(Mnist::load(dir.path()).unwrap().notices, Vec::<String>::new());
    // Other labels under the .gz name.
    let other = idx(IdxKind::Labels, &[3], &[9, 8, 7]);
    std::fs::write(dir.path().join(FILES[1].gz_name()), gzip(&other)).unwrap();
    let mnist = Mnist::load(dir.path()).unwrap();
    assert_eq!(mnist.train.labels, [0, 1, 2], "the raw file is read");
    let raw_path = dir.path().join(FILES[1].name);
    assert_eq!(
        mnist.notices,
        [format!(
            "{} and {} differ; reading {}",
            raw_path.display(),
            dir.path().join(FILES[1].gz_name()).display(),
            raw_path.display()
        )]
    );
    // A broken .gz beside a good raw file is a difference too, not an error.
    std::fs::write(dir.path().join(FILES[1].gz_name()), b"not gzip").unwrap();
    assert_eq!(Mnist::load(dir.path()).unwrap().notices.len(), 1);
}

// ------------------------------------------------------------------ the real data set

/// The real MNIST folder, or `None` (after a loud line) when it is absent and
/// `SIMD_CNN_REQUIRE_DATA` is not `1`.
fn real_mnist() -> Option<Mnist> {
    let dir = simd_cnn::data::default_dir("mnist");
    match Mnist::load(&dir) {
        Ok(mnist) => Some(mnist),
        Err(MnistError::Missing { .. }) if std::env::var("SIMD_CNN_REQUIRE_DATA").as_deref() != Ok("1") => {
            eprintln!(
                "\n*** SKIPPED: no MNIST in {} (set SIMD_CNN_DATA to the folder holding mnist/, and SIMD_CNN_REQUIRE_DATA=1 to make this a failure) ***\n",
                dir.display()
            );
            None
        }
        Err(e) => panic!("real MNIST: {e}"),
    }
}

#[test]
fn the_real_data_set_has_the_known_shape_and_first_labels() {
    let Some(mnist) = real_mnist() else { return };
    assert_eq!(mnist.train.len(), 60_000);
    assert_eq!(mnist.test.len(), 10_000);
    assert_eq!(mnist.train.images.len(), 60_000 * 28 * 28);
    assert_eq!(mnist.test.images.len(), 10_000 * 28 * 28);
    assert_eq!(mnist.train.labels[0], 5, "the first training digit is a 5");
    assert_eq!(mnist.test.labels[0], 7, "the first test digit is a 7");
    // Every digit is well represented (each has between 5,000 and 7,000 training images).
    let mut counts = [0usize; 10];
    mnist.train.labels.iter().for_each(|&l| counts[l as usize] += 1);
    assert!(counts.iter().all(|&c| (5_000..7_000).contains(&c)), "{counts:?}");
}

#[test]
fn the_real_training_pixels_have_the_mean_and_std_used_to_normalise() {
    let Some(mnist) = real_mnist() else { return };
    let n = mnist.train.images.len() as f64;
    let mean = mnist.train.images.iter().map(|&p| p as f64 / 255.0).sum::<f64>() / n;
    let var = mnist.train.images.iter().map(|&p| (p as f64 / 255.0 - mean).powi(2)).sum::<f64>() / n;
    assert!((mean - f64::from(simd_cnn::data::mnist::PIXEL_MEAN)).abs() < 1e-4, "mean {mean}");
    assert!((var.sqrt() - f64::from(simd_cnn::data::mnist::PIXEL_STD)).abs() < 1e-4, "std {}", var.sqrt());
}

// ------------------------------------------------------------------ a small HTTP server

fn quiet() -> DownloadOptions {
    DownloadOptions::default()
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

// ------------------------------------------------------------------ the general downloader

/// A server holding one file, `/f.bin`, of noise, and an empty folder to download it into.
struct OneFile {
    body: Vec<u8>,
    server: Server,
    dir: TempDir,
    dest: PathBuf,
}

impl OneFile {
    fn new(len: usize, seed: u32) -> OneFile {
        let body = noise(len, seed);
        let server = Server::start([("/f.bin".to_string(), body.clone())]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("f.bin");
        OneFile { body, server, dir, dest }
    }

    fn sha(&self) -> String {
        sha256_hex(&self.body)
    }

    fn fetch(&self, expected_sha256: Option<&str>) -> Result<Downloaded, DownloadError> {
        download_with(&self.server.url("/f.bin"), &self.dest, expected_sha256, &quiet())
    }

    /// The requests the server saw, as (path, Range header).
    fn requests(&self) -> Vec<(String, Option<String>)> {
        self.server.requests()
    }
}

#[test]
fn a_download_arrives_whole_with_its_hash() {
    let f = OneFile::new(100_000, 9);
    let dest = f.dir.path().join("sub/f.bin");
    let done = download_with(&f.server.url("/f.bin"), &dest, Some(&f.sha().to_uppercase()), &quiet()).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), f.body);
    assert_eq!((done.bytes, done.resumed_from), (100_000, 0));
    assert_eq!(done.sha256, f.sha());
    assert!(!part_path(&dest).exists());
    assert_eq!(f.requests(), [("/f.bin".to_string(), None)]);
}

#[test]
fn a_wrong_hash_deletes_the_download_and_names_both_hashes() {
    let f = OneFile::new(50_000, 3);
    let wrong = "ab".repeat(32);
    let e = f.fetch(Some(&wrong)).unwrap_err();
    assert!(matches!(e, DownloadError::Checksum { .. }), "{e}");
    let message = e.to_string();
    assert!(message.contains(&wrong) && message.contains(&f.sha()), "{message}");
    assert!(files_in(f.dir.path()).is_empty(), "left behind: {:?}", files_in(f.dir.path()));
}

#[test]
fn a_cut_transfer_keeps_its_part_and_the_next_call_resumes_it() {
    let f = OneFile::new(200_000, 4);
    f.server.set_quirk("/f.bin", Quirk::CutHalfway);
    let e = f.fetch(Some(&f.sha())).unwrap_err();
    assert!(matches!(e, DownloadError::Interrupted { .. }), "{e}");
    assert!(e.to_string().contains("run again to resume"), "{e}");
    assert!(!f.dest.exists());
    assert_eq!(std::fs::read(part_path(&f.dest)).unwrap(), f.body[..100_000]);

    let done = f.fetch(Some(&f.sha())).unwrap();
    assert_eq!(done.resumed_from, 100_000);
    assert_eq!(std::fs::read(&f.dest).unwrap(), f.body);
    assert_eq!(f.requests()[1], ("/f.bin".to_string(), Some("bytes=100000-".to_string())));
    assert_eq!(files_in(f.dir.path()), ["f.bin"]);
}

#[test]
fn a_server_that_ignores_range_makes_the_download_start_over() {
    let f = OneFile::new(60_000, 6);
    f.server.set_quirk("/f.bin", Quirk::IgnoreRange);
    // A stale part whose bytes are not the file's: if they were kept, the hash would not match.
    std::fs::write(part_path(&f.dest), vec![0xee; 1000]).unwrap();
    let done = f.fetch(Some(&f.sha())).unwrap();
    assert_eq!(done.resumed_from, 0);
    assert_eq!(std::fs::read(&f.dest).unwrap(), f.body);
    assert_eq!(f.requests(), [("/f.bin".to_string(), Some("bytes=1000-".to_string()))]);
}

#[test]
fn a_part_that_is_already_whole_is_finished_without_downloading() {
    let f = OneFile::new(5_000, 7);
    std::fs::write(part_path(&f.dest), &f.body).unwrap();
    let done = f.fetch(Some(&f.sha())).unwrap();
    assert_eq!((done.bytes, done.resumed_from), (5_000, 5_000));
    assert_eq!(std::fs::read(&f.dest).unwrap(), f.body);
    // The server answered 416 to the one request, which asked for the bytes after the end.
    assert_eq!(f.requests(), [("/f.bin".to_string(), Some("bytes=5000-".to_string()))]);
}

#[test]
fn a_part_longer_than_the_file_is_thrown_away() {
    let f = OneFile::new(5_000, 8);
    std::fs::write(part_path(&f.dest), noise(6_000, 8)).unwrap();
    let done = f.fetch(Some(&f.sha())).unwrap();
    assert_eq!(done.resumed_from, 0);
    assert_eq!(std::fs::read(&f.dest).unwrap(), f.body);
    // 416 to the resume request, then the whole file from the start.
    assert_eq!(f.requests(), [("/f.bin".to_string(), Some("bytes=6000-".to_string())), ("/f.bin".to_string(), None)]);
}

#[test]
fn http_errors_and_unreachable_hosts_are_one_line_each() {
    let server = Server::start([]);
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("f.bin");
    let e = download_with(&server.url("/nothing.bin"), &dest, None, &quiet()).unwrap_err();
    assert!(matches!(e, DownloadError::Status { status: 404, .. }), "{e}");
    assert!(e.to_string().contains("HTTP 404") && e.to_string().contains("/nothing.bin"), "{e}");

    let e = download_with(&format!("{}f.bin", dead_url("/mnist/")), &dest, None, &quiet()).unwrap_err();
    assert!(matches!(e, DownloadError::Unreachable { .. }), "{e}");
    let message = e.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("cannot reach") && message.contains(&dest.display().to_string()), "{message}");

    let e = download_with(&server.url("/x"), &dest, Some("not-a-hash"), &quiet()).unwrap_err();
    assert!(matches!(e, DownloadError::BadSha256 { .. }), "{e}");
    assert!(files_in(dir.path()).is_empty());
}

#[test]
fn write_atomic_replaces_a_file_and_leaves_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("result.json");
    write_atomic(&path, b"first").unwrap();
    write_atomic(&path, b"second, longer").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"second, longer");
    assert_eq!(files_in(dir.path()), ["result.json"]);
    let e = write_atomic(&dir.path().join("no/such/folder/x.json"), b"x").unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
}

#[test]
fn outputs_that_cannot_be_written_are_found_before_any_work() {
    use simd_cnn::files::{check_writable, write_atomic_with};
    let dir = tempfile::tempdir().unwrap();
    let fine = dir.path().join("report.json");
    check_writable(&fine).unwrap();
    assert!(files_in(dir.path()).is_empty(), "the probe is removed");
    for bad in [dir.path().to_path_buf(), dir.path().join("missing/report.json"), "/proc/report.json".into()] {
        let e = check_writable(&bad).expect_err(&bad.display().to_string());
        assert!(!e.to_string().contains('\n'), "{e}");
    }
    // A write that dies half-way leaves its temporary file, which the next write of the same
    // file takes over: leftovers never pile up.
    std::fs::write(&fine, b"old").unwrap();
    let mut kill = |_: simd_cnn::files::Step| Some(simd_cnn::files::Fault::Kill);
    assert!(write_atomic_with(&fine, b"new, longer", &mut kill).is_err());
    assert_eq!(std::fs::read(&fine).unwrap(), b"old");
    assert_eq!(files_in(dir.path()), ["report.json", "report.json.part"]);
    write_atomic(&fine, b"new").unwrap();
    assert_eq!(files_in(dir.path()), ["report.json"]);
}

// ------------------------------------------------------------------ downloading MNIST

/// A tiny MNIST served as `.gz` files under `/mnist/`, and the [`MnistFile`]s whose hashes are
/// those of these files (the real hashes belong to the real files).
fn served_mnist() -> (Server, [MnistFile; 4], [Vec<u8>; 4]) {
    let raw = tiny_mnist(40, 20);
    let gz = raw.clone().map(|bytes| gzip(&bytes));
    let files: [MnistFile; 4] = std::array::from_fn(|i| MnistFile { sha256_gz: sha256_hex(&gz[i]).leak(), ..FILES[i] });
    let server = Server::start(FILES.iter().zip(gz).map(|(f, bytes)| (format!("/mnist/{}", f.gz_name()), bytes)));
    (server, files, raw)
}

#[test]
fn missing_mnist_files_are_downloaded_verified_and_loaded() {
    let (server, files, raw) = served_mnist();
    let dir = tempfile::tempdir().unwrap();
    let written = download_missing(dir.path(), &[server.url("/mnist")], &files).unwrap();
    let want: Vec<PathBuf> = files.iter().map(|f| dir.path().join(f.gz_name())).collect();
    assert_eq!(written, want);
    let mnist = Mnist::load(dir.path()).unwrap();
    assert_eq!((mnist.train.len(), mnist.test.len()), (40, 20));
    assert_eq!(mnist.train.images, raw[0][16..]);
    assert_eq!(mnist.test.labels, raw[3][8..]);
    // Everything is there now: a second call asks the server for nothing.
    let requests = server.requests().len();
    assert!(download_missing(dir.path(), &[server.url("/mnist/")], &files).unwrap().is_empty());
    assert_eq!(server.requests().len(), requests);
}

#[test]
fn files_already_present_are_kept_without_hashing() {
    let (server, files, raw) = served_mnist();
    // The raw training images are there; their hash is not that of any .gz.
    let dir = folder_with(&[(FILES[0].name.to_string(), raw[0].clone())]);
    let written = download_missing(dir.path(), &[server.url("/mnist/")], &files).unwrap();
    assert_eq!(written.len(), 3);
    let asked: HashSet<String> = server.requests().into_iter().map(|(path, _)| path).collect();
    assert!(!asked.contains("/mnist/train-images-idx3-ubyte.gz"), "{asked:?}");
    assert_eq!(Mnist::load(dir.path()).unwrap().train.images, raw[0][16..]);
}

#[test]
fn a_wrong_mnist_hash_fails_and_leaves_no_file() {
    let (server, mut files, _) = served_mnist();
    files[1].sha256_gz = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let e = download_missing(dir.path(), &[server.url("/mnist/")], &files).unwrap_err();
    let message = e.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("train-labels-idx1-ubyte.gz") && message.contains(files[1].sha256_gz), "{message}");
    assert!(message.contains("SHA-256 mismatch"), "{message}");
    // The first file arrived and stays; the bad one left nothing, not even a .part.
    assert_eq!(files_in(dir.path()), ["train-images-idx3-ubyte.gz"]);
}

#[test]
fn a_cut_mnist_download_is_resumed_by_the_next_call() {
    let (server, files, raw) = served_mnist();
    server.set_quirk("/mnist/train-images-idx3-ubyte.gz", Quirk::CutHalfway);
    let dir = tempfile::tempdir().unwrap();
    let e = download_missing(dir.path(), &[server.url("/mnist/")], &files).unwrap_err();
    assert!(e.to_string().contains("broke off"), "{e}");
    let part = part_path(&dir.path().join("train-images-idx3-ubyte.gz"));
    let half = std::fs::metadata(&part).unwrap().len();
    assert!(half > 1000, "the .part holds {half} bytes");

    download_missing(dir.path(), &[server.url("/mnist/")], &files).unwrap();
    let range = format!("bytes={half}-");
    assert!(
        server
            .requests()
            .iter()
            .any(|(path, r)| path.ends_with("train-images-idx3-ubyte.gz") && r.as_deref() == Some(&range)),
        "no request with Range: {range} in {:?}",
        server.requests()
    );
    assert!(!part.exists());
    assert_eq!(Mnist::load(dir.path()).unwrap().train.images, raw[0][16..]);
}

#[test]
fn the_next_mirror_is_tried_when_one_fails() {
    let (server, files, _) = served_mnist();
    let dir = tempfile::tempdir().unwrap();
    let mirrors = [dead_url("/mnist/"), server.url("/not-here/"), server.url("/mnist/")];
    assert_eq!(download_missing(dir.path(), &mirrors, &files).unwrap().len(), 4);
    assert!(Mnist::load(dir.path()).is_ok());
}

#[test]
fn without_network_the_message_says_which_files_to_put_where() {
    let dir = tempfile::tempdir().unwrap();
    let e = download_missing(dir.path(), &[dead_url("/mnist/"), dead_url("/mnist/")], &FILES).unwrap_err();
    let message = e.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.starts_with("cannot download MNIST"), "{message}");
    for file in FILES {
        assert!(message.contains(&file.gz_name()), "{message}");
    }
    assert!(message.contains(&format!("into {}", dir.path().display())), "{message}");
    assert!(files_in(dir.path()).is_empty());
}

// ------------------------------------------------------------------ training-loop pieces

#[test]
fn epoch_orders_are_seeded_permutations_that_change_every_epoch() {
    let mut a = EpochOrder::new(1000, 7);
    let mut b = EpochOrder::new(1000, 7);
    let first = a.next_epoch().to_vec();
    assert_eq!(first, b.next_epoch());
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
    assert_ne!(first, a.next_epoch());
    assert_ne!(first, EpochOrder::new(1000, 8).next_epoch());
}

#[test]
fn epoch_stats_weight_each_batch_by_its_size() {
    let mut stats = EpochStats::default();
    assert_eq!((stats.mean_loss(), stats.accuracy()), (0.0, 0.0));
    stats.add(StepStats { loss: 1.0, correct: 30 }, 32);
    stats.add(StepStats { loss: 4.0, correct: 2 }, 8);
    assert_eq!(stats.seen(), 40);
    assert!((stats.mean_loss() - (32.0 + 32.0) / 40.0).abs() < 1e-12);
    assert!((stats.accuracy() - 32.0 / 40.0).abs() < 1e-12);
}

#[test]
fn the_loss_guard_stops_nan_infinite_and_lasting_losses() {
    let window = LossGuard::WINDOW;
    assert_eq!(LossGuard::new().check(f32::NAN).unwrap_err().to_string(), "the loss is NaN");
    assert_eq!(LossGuard::new().check(f32::INFINITY).unwrap_err().to_string(), "the loss is infinite");

    // A loss that stays ten times above its start stops the run once the window is full.
    let mut guard = LossGuard::new();
    guard.check(2.3).unwrap();
    for i in 1..window - 1 {
        assert!(guard.check(30.0).is_ok(), "stopped after {i} batches: the window is not full");
    }
    let e = guard.check(30.0).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("the loss rose from 2.3000 to 30.0000 (the median of the last {window} batches)")
    );
    // NaN stops at once, whatever came before.
    assert!(guard.check(f32::NAN).is_err());

    // Below the bound it goes on for ever; a small first loss does not make it hair-trigger.
    let mut guard = LossGuard::new();
    guard.check(0.01).unwrap();
    for _ in 0..3 * window {
        guard.check(9.0).unwrap();
    }
}

#[test]
fn a_spike_the_run_recovers_from_does_not_stop_it() {
    // A default cat/dog run on 120 photos (seed 3) went 0.87 -> 27.7 at its second batch, then
    // recovered within the epoch: a guard that stops it costs more than it saves.
    let mut guard = LossGuard::new();
    let mut losses = vec![0.87, 27.7, 9.3, 2.1, 0.9];
    losses.extend((0..40).map(|i| 0.8 - 0.005 * i as f32));
    // Spikes shorter than half the window, again and again.
    for round in 0..10 {
        losses.extend([40.0, 35.0, 0.7 - 0.01 * round as f32, 0.69, 0.7, 0.68, 0.66, 0.71, 0.7, 0.69]);
    }
    for (batch, loss) in losses.into_iter().enumerate() {
        assert!(guard.check(loss).is_ok(), "stopped at batch {batch} on a loss of {loss}");
    }
}

#[test]
fn argmax_takes_the_first_of_equal_maxima() {
    assert_eq!(argmax(&[0.1, 0.7, 0.2]), 1);
    assert_eq!(argmax(&[3.0, 1.0, 3.0]), 0);
    assert_eq!(argmax(&[1.0, f32::NAN, 2.0]), 2);
}
