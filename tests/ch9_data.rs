//! Chapter 9: the cat/dog data pipeline. Decoding odd and broken files, the cache, the split,
//! augmentation, batches, the loader, and the extraction of the archive; then a sample of the
//! real photos when `SIMD_CNN_DATA` holds them.

mod common;

use common::images::{
    GIF, cmyk_jpeg, fixture_file, gray_jpeg, huge_png, jpeg, jpeg_claiming_8000x8000, png, rgb_pixels, solid_jpeg,
};
use image::ExtendedColorType;
use simd_cnn::data::catdog::{
    Augment, CacheOrigin, CatDog, CatDogError, IMAGE_SIZE, LoaderOptions, MAX_THREADS, OpenEvent, OpenOptions, PAD,
    Scan, SkipCounts, SkipReason, SourceFile, Split, augment_into, decode_file, decode_image, decode_image_to,
    extract_pet_images, jpeg_reaches_end, resize_rgb, to_unit_f32,
};
use simd_cnn::tensor::init::rng;
use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const S: usize = IMAGE_SIZE;
const IMAGE_LEN: usize = S * S * 3;

fn pixel(image: &[u8], size: usize, x: usize, y: usize) -> [u8; 3] {
    let at = (y * size + x) * 3;
    [image[at], image[at + 1], image[at + 2]]
}

fn assert_near(what: &str, got: [u8; 3], want: [u8; 3], tolerance: u8) {
    let ok = got.iter().zip(&want).all(|(&g, &w)| g.abs_diff(w) <= tolerance);
    assert!(ok, "{what}: got {got:?}, want {want:?} within {tolerance}");
}

// ---------------------------------------------------------------- decoding single files

#[test]
fn good_and_odd_images_decode_to_128x128_rgb() {
    let colour = [200, 40, 90];
    for (what, bytes) in [
        ("wide JPEG", solid_jpeg(300, 120, colour)),
        ("tall JPEG", solid_jpeg(50, 400, colour)),
        ("128x128 JPEG", solid_jpeg(128, 128, colour)),
        ("RGB PNG", png(70, 90, &rgb_pixels(70, 90, |_, _| colour), ExtendedColorType::Rgb8)),
        ("RGBA PNG", png(70, 90, &[colour[0], colour[1], colour[2], 17].repeat(70 * 90), ExtendedColorType::Rgba8)),
    ] {
        let image = decode_image(&bytes, S as u32).unwrap_or_else(|r| panic!("{what}: skipped as {r}"));
        assert_eq!(image.len(), IMAGE_LEN, "{what}");
        for (x, y) in [(0, 0), (64, 64), (127, 127), (5, 100)] {
            assert_near(what, pixel(&image, S, x, y), colour, 6);
        }
    }
}

#[test]
fn grayscale_jpeg_becomes_three_equal_channels() {
    let image = decode_image(&gray_jpeg(100, 80, 77), S as u32).unwrap();
    assert_eq!(image.len(), IMAGE_LEN);
    for p in image.chunks_exact(3) {
        assert!(p[0] == p[1] && p[1] == p[2] && p[0].abs_diff(77) <= 2, "{p:?}");
    }
}

#[test]
fn cmyk_jpeg_gets_the_colours_pillow_sees() {
    // Quadrants red, green / blue, white (see tests/fixtures/README.md). Decoded at 32x32 (no
    // resampling), their centres must have those colours.
    let image = decode_image(&cmyk_jpeg(), 32).unwrap();
    assert_near("red", pixel(&image, 32, 6, 6), [255, 0, 0], 12);
    assert_near("green", pixel(&image, 32, 25, 6), [0, 255, 0], 12);
    assert_near("blue", pixel(&image, 32, 6, 25), [0, 0, 255], 12);
    assert_near("white", pixel(&image, 32, 25, 25), [255, 255, 255], 12);
    assert_eq!(decode_image(&cmyk_jpeg(), S as u32).unwrap().len(), IMAGE_LEN);
}

#[test]
fn the_resize_averages_rather_than_samples() {
    // Vertical stripes one pixel wide, black and white: shrunk 4x with an averaging filter every
    // output pixel is mid-grey; point sampling would give black or white.
    let stripes = jpeg(512, 512, |x, _| if x % 2 == 0 { [0; 3] } else { [255; 3] });
    let image = decode_image(&stripes, S as u32).unwrap();
    for p in image.chunks_exact(3).step_by(97) {
        assert!(p.iter().all(|&v| (100..=155).contains(&v)), "{p:?}");
    }
    // And the left half of a half-black half-white photo stays black, the right half white.
    let halves = jpeg(400, 200, |x, _| if x < 200 { [0; 3] } else { [255; 3] });
    let image = decode_image(&halves, S as u32).unwrap();
    assert_near("left", pixel(&image, S, 10, 64), [0; 3], 4);
    assert_near("right", pixel(&image, S, 117, 64), [255; 3], 4);
}

#[test]
fn the_resize_matches_pillow_to_the_byte() {
    // tests/fixtures/README.md: a 45x31 PNG and Pillow's BILINEAR resizes of it, shrinking,
    // enlarging, both at once, one axis only, and the two orders of the passes.
    let input = image::load_from_memory(&fixture_file("resize_input.png")).unwrap().into_rgb8();
    assert_eq!(input.dimensions(), (45, 31));
    for (w, h) in [(16, 16), (60, 20), (45, 10), (40, 8), (128, 128)] {
        let want = image::load_from_memory(&fixture_file(&format!("resize_pil_{w}x{h}.png"))).unwrap().into_rgb8();
        let got = resize_rgb(input.as_raw(), 45, 31, w as usize, h as usize);
        assert_eq!(got, want.as_raw().as_slice(), "{w}x{h}");
    }
    // PNG decoding is lossless, so the whole path from the file gives Pillow's bytes too.
    let want = image::load_from_memory(&fixture_file("resize_pil_128x128.png")).unwrap().into_rgb8();
    assert_eq!(decode_image(&fixture_file("resize_input.png"), 128).unwrap(), want.into_raw());
    // Same size: a copy.
    assert_eq!(resize_rgb(input.as_raw(), 45, 31, 45, 31), input.as_raw().as_slice());
}

#[test]
fn broken_files_are_skipped_with_their_reason() {
    let good = solid_jpeg(200, 150, [10, 200, 30]);
    let truncated = good[..good.len() / 2].to_vec();
    let mut no_end_marker = good.clone();
    no_end_marker.truncate(good.len() - 2);
    let mut corrupt = good.clone();
    let sos = corrupt.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
    corrupt[sos + 2..sos + 4].copy_from_slice(&[0xFF, 0xFF]); // a start-of-scan segment 65535 bytes long
    let truncated_png = {
        let p = png(60, 60, &rgb_pixels(60, 60, |x, y| [x as u8, y as u8, 7]), ExtendedColorType::Rgb8);
        p[..p.len() * 2 / 3].to_vec()
    };
    let cases: [(&str, Vec<u8>, SkipReason); 9] = [
        ("empty file", vec![], SkipReason::Empty),
        ("text named .jpg", b"<html>404 Not Found</html>\n".to_vec(), SkipReason::NotAnImage),
        ("JPEG cut in half", truncated, SkipReason::Truncated),
        ("JPEG without its end marker", no_end_marker, SkipReason::Truncated),
        ("JPEG with a broken segment", corrupt, SkipReason::Truncated),
        ("PNG cut short", truncated_png, SkipReason::Truncated),
        ("GIF named .jpg", GIF.to_vec(), SkipReason::Unsupported),
        ("real 8000x8000 PNG", huge_png(), SkipReason::TooLarge),
        ("JPEG header claiming 8000x8000", jpeg_claiming_8000x8000(), SkipReason::TooLarge),
    ];
    for (what, bytes, reason) in cases {
        assert_eq!(decode_image(&bytes, S as u32), Err(reason), "{what}");
    }
    assert!(decode_image(&good, S as u32).is_ok());
}

#[test]
fn the_end_marker_check_skips_embedded_thumbnails() {
    let photo = solid_jpeg(64, 64, [1, 2, 3]);
    let thumbnail = solid_jpeg(8, 8, [4, 5, 6]); // has its own FF D9
    // SOI, an APP1 segment holding the thumbnail, then the photo's segments without its SOI.
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1];
    bytes.extend_from_slice(&((thumbnail.len() + 2) as u16).to_be_bytes());
    bytes.extend_from_slice(&thumbnail);
    bytes.extend_from_slice(&photo[2..]);
    assert!(jpeg_reaches_end(&bytes));
    assert!(decode_image(&bytes, 32).is_ok());
    let cut = &bytes[..bytes.len() - 100]; // the thumbnail's end marker is still in there
    assert!(!jpeg_reaches_end(cut));
    assert_eq!(decode_image(cut, 32), Err(SkipReason::Truncated));
}

#[test]
fn progressive_and_restart_marker_jpegs_load_and_every_cut_is_caught() {
    for name in ["progressive.jpg", "restart.jpg"] {
        let bytes = fixture_file(name);
        assert!(jpeg_reaches_end(&bytes), "{name}");
        let image = decode_image(&bytes, S as u32).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_near(name, pixel(&image, S, 0, 0), [0, 0, 0], 8);
        assert_near(name, pixel(&image, S, 127, 127), [252, 235, 220], 8);
        // Cut anywhere after the first scan starts (inside compressed data, inside the
        // Huffman tables between progressive scans, inside a restart marker): truncated.
        let first_scan = bytes.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        for cut in first_scan..bytes.len() - 1 {
            assert!(!jpeg_reaches_end(&bytes[..cut]), "{name} cut at {cut} of {}", bytes.len());
        }
    }
}

#[test]
fn skip_reasons_round_trip_through_their_codes() {
    let codes: BTreeSet<u8> = SkipReason::ALL.iter().map(|r| r.code()).collect();
    assert_eq!(codes.len(), SkipReason::ALL.len());
    assert!(!codes.contains(&0), "0 means stored");
    for r in SkipReason::ALL {
        assert_eq!(SkipReason::from_code(r.code()), Some(r));
    }
    assert_eq!(SkipReason::from_code(0), None);
    let mut counts = SkipCounts::default();
    counts.add(SkipReason::Empty);
    counts.add(SkipReason::TooLarge);
    counts.add(SkipReason::TooLarge);
    assert_eq!(counts.to_string(), "3 skipped: 1 empty, 2 too large");
}

// ---------------------------------------------------------------- a folder of photos

/// What a test folder should load as.
struct Folder {
    /// The folder that contains `PetImages`.
    dir: PathBuf,
    /// The photos that must load, in order.
    loaded: Vec<&'static str>,
    skipped: SkipCounts,
}

impl Folder {
    fn root(&self) -> PathBuf {
        self.dir.join("PetImages")
    }

    fn write(&self, name: &str, bytes: &[u8]) {
        fs::write(self.root().join(name), bytes).unwrap();
    }
}

fn colour_of(k: u32) -> [u8; 3] {
    [(40 * k % 256) as u8, (90 + 25 * k) as u8, (250 - 20 * k) as u8]
}

/// Good JPEGs of several sizes, every kind of odd-but-valid file, and every kind of broken one.
fn pet_folder(dir: &Path) -> Folder {
    let folder = Folder {
        dir: dir.to_path_buf(),
        loaded: vec![
            "Cat/1.jpg",
            "Cat/2.jpg",
            "Cat/10.jpg",
            "Cat/20.jpg",
            "Cat/21.jpg",
            "Dog/1.jpg",
            "Dog/3.jpg",
            "Dog/7.jpg",
            "Dog/22.jpg",
        ],
        skipped: {
            let mut s = SkipCounts::default();
            for r in [
                SkipReason::Empty,
                SkipReason::Truncated,
                SkipReason::NotAnImage,
                SkipReason::TooLarge,
                SkipReason::TooLarge,
                SkipReason::Unsupported,
            ] {
                s.add(r);
            }
            s
        },
    };
    for class in ["Cat", "Dog"] {
        fs::create_dir_all(folder.root().join(class)).unwrap();
        folder.write(&format!("{class}/Thumbs.db"), b"not a photo, not named .jpg");
    }
    let gradient =
        |w: u32, h: u32, k: u32| jpeg(w, h, move |x, y| [(x * 255 / w) as u8, (y * 255 / h) as u8, (k * 30) as u8]);
    folder.write("Cat/1.jpg", &gradient(200, 150, 1));
    folder.write("Cat/2.jpg", &solid_jpeg(128, 128, colour_of(2)));
    folder.write("Cat/10.jpg", &gradient(64, 300, 3));
    folder.write("Cat/20.jpg", &gray_jpeg(90, 90, 120));
    folder.write("Cat/21.jpg", &cmyk_jpeg());
    folder.write("Cat/32.jpg", &huge_png());
    folder.write("Cat/666.jpg", b"");
    folder.write("Dog/1.jpg", &gradient(180, 180, 4));
    folder.write("Dog/3.jpg", &solid_jpeg(500, 375, colour_of(5)));
    folder.write("Dog/7.jpg", &gradient(129, 127, 6));
    folder.write(
        "Dog/22.jpg",
        &png(40, 30, &rgb_pixels(40, 30, |x, y| [x as u8 * 6, y as u8 * 8, 99]), ExtendedColorType::Rgb8),
    );
    let good = gradient(160, 120, 7);
    folder.write("Dog/30.jpg", &good[..good.len() / 2]);
    folder.write("Dog/31.jpg", b"<html><body>Service unavailable</body></html>");
    folder.write("Dog/33.jpg", &jpeg_claiming_8000x8000());
    folder.write("Dog/34.jpg", GIF);
    folder
}

/// Options that send the cache, when the data folder is read-only, to `fallback_dir` rather
/// than to the user's cache folder.
fn options(fallback_dir: &Path) -> OpenOptions {
    OpenOptions {
        threads: 2,
        fallback_dir: Some(fallback_dir.to_path_buf()),
        progress: false,
        ..OpenOptions::default()
    }
}

/// A fresh [`pet_folder`] in a temporary folder, and options that keep the fallback cache in
/// there too.
fn fixture() -> (tempfile::TempDir, Folder, OpenOptions) {
    let tmp = tempfile::tempdir().unwrap();
    let folder = pet_folder(&tmp.path().join("data"));
    let opts = options(&tmp.path().join("user-cache"));
    (tmp, folder, opts)
}

fn names(data: &CatDog) -> Vec<String> {
    (0..data.len())
        .map(|i| data.source(i).strip_prefix(data.root()).unwrap().to_string_lossy().replace('\\', "/"))
        .collect()
}

fn image(data: &CatDog, i: usize) -> Vec<u8> {
    let mut out = vec![0u8; data.image_len()];
    data.read_image(i, &mut out).unwrap();
    out
}

#[test]
fn scan_lists_jpg_names_in_natural_order_from_either_folder() {
    let (tmp, folder, _) = fixture();
    let from_parent = Scan::new(&folder.dir).unwrap();
    let from_root = Scan::new(&folder.root()).unwrap();
    assert_eq!(from_parent.root, folder.root());
    assert_eq!(from_root.root, folder.root());
    assert_eq!(from_parent.files, from_root.files);
    let listed: Vec<String> = from_parent.files.iter().map(|f| f.name.to_string_lossy().into_owned()).collect();
    let want = [
        "Cat/1.jpg",
        "Cat/2.jpg",
        "Cat/10.jpg",
        "Cat/20.jpg",
        "Cat/21.jpg",
        "Cat/32.jpg",
        "Cat/666.jpg",
        "Dog/1.jpg",
        "Dog/3.jpg",
        "Dog/7.jpg",
        "Dog/22.jpg",
        "Dog/30.jpg",
        "Dog/31.jpg",
        "Dog/33.jpg",
        "Dog/34.jpg",
    ];
    assert_eq!(listed, want);
    assert_eq!((from_parent.count(0), from_parent.count(1)), (7, 8));
    assert_eq!(from_parent.ignored, 2, "the two Thumbs.db");
    assert!(from_parent.files.iter().all(|f| f.label == u8::from(f.name.starts_with("Dog"))));

    assert!(matches!(Scan::new(&tmp.path().join("nowhere")), Err(CatDogError::NotFound(_))));
    let empty = tmp.path().join("empty");
    fs::create_dir_all(empty.join("PetImages/Cat")).unwrap();
    fs::create_dir_all(empty.join("PetImages/Dog")).unwrap();
    assert!(matches!(Scan::new(&empty), Err(CatDogError::NoImages(_))));
}

#[test]
fn a_class_without_photos_is_an_error_naming_its_folder() {
    // Only dogs: a network trained on them answers "dog" whatever it sees, and validates at
    // 100 %. Opening the folder must say what is missing, before anything is decoded.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("PetImages");
    fs::create_dir_all(root.join("Cat")).unwrap();
    fs::create_dir_all(root.join("Dog")).unwrap();
    fs::write(root.join("Cat/Thumbs.db"), b"not a photo").unwrap();
    for k in 0..3 {
        fs::write(root.join(format!("Dog/{k}.jpg")), solid_jpeg(40, 40, colour_of(k))).unwrap();
    }
    for err in [
        Scan::new(tmp.path()).unwrap_err(),
        CatDog::open_with(tmp.path(), &options(&tmp.path().join("c"))).unwrap_err(),
    ] {
        assert!(matches!(&err, CatDogError::NoImages(folder) if *folder == root.join("Cat")), "{err:?}");
        let message = err.to_string();
        assert!(!message.contains('\n') && message.contains("both classes"), "{message}");
    }
    assert!(!tmp.path().join("PetImages.128x128.simdcnn").exists());
    // And the other way round.
    fs::write(root.join("Cat/1.jpg"), solid_jpeg(40, 40, [1, 2, 3])).unwrap();
    for k in 0..3 {
        fs::remove_file(root.join(format!("Dog/{k}.jpg"))).unwrap();
    }
    assert!(matches!(Scan::new(tmp.path()), Err(CatDogError::NoImages(folder)) if folder == root.join("Dog")));
}

#[test]
fn a_class_none_of_whose_photos_decodes_is_an_error_and_writes_no_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("PetImages");
    fs::create_dir_all(root.join("Cat")).unwrap();
    fs::create_dir_all(root.join("Dog")).unwrap();
    fs::write(root.join("Cat/1.jpg"), b"").unwrap();
    fs::write(root.join("Cat/2.jpg"), GIF).unwrap();
    for k in 0..3 {
        fs::write(root.join(format!("Dog/{k}.jpg")), solid_jpeg(40, 40, colour_of(k))).unwrap();
    }
    let err = CatDog::open_with(tmp.path(), &options(&tmp.path().join("c"))).unwrap_err();
    let CatDogError::ClassUndecodable { folder, files, skipped } = &err else { panic!("{err:?}") };
    assert_eq!((folder, *files), (&root.join("Cat"), 2));
    assert_eq!((skipped.get(SkipReason::Empty), skipped.get(SkipReason::Unsupported), skipped.total()), (1, 1, 2));
    let message = err.to_string();
    assert!(!message.contains('\n') && message.contains("Cat") && message.contains("both classes"), "{message}");
    let left: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["PetImages"], "no cache of a set that cannot train");
}

#[test]
fn too_many_decoding_threads_are_refused_before_anything_starts() {
    let (_tmp, folder, opts) = fixture();
    let opts = OpenOptions { threads: MAX_THREADS + 1, ..opts };
    let err = CatDog::open_with(&folder.dir, &opts).unwrap_err();
    assert!(matches!(err, CatDogError::Invalid(_)) && err.to_string().contains("threads"), "{err}");
    let listing: Vec<_> = fs::read_dir(&folder.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(listing, ["PetImages"]);
}

#[test]
fn open_loads_exactly_the_decodable_photos_and_counts_the_rest() {
    let (_tmp, folder, opts) = fixture();
    let data = CatDog::open_with(&folder.dir, &opts).unwrap();
    assert_eq!(data.origin(), CacheOrigin::Built);
    assert_eq!(names(&data), folder.loaded);
    assert_eq!(*data.skipped(), folder.skipped);
    let skipped: Vec<(String, SkipReason)> =
        data.skipped_files().iter().map(|(name, r)| (name.to_string_lossy().replace('\\', "/"), *r)).collect();
    let want = [
        ("Cat/32.jpg", SkipReason::TooLarge),
        ("Cat/666.jpg", SkipReason::Empty),
        ("Dog/30.jpg", SkipReason::Truncated),
        ("Dog/31.jpg", SkipReason::NotAnImage),
        ("Dog/33.jpg", SkipReason::TooLarge),
        ("Dog/34.jpg", SkipReason::Unsupported),
    ];
    assert_eq!(skipped, want.map(|(n, r)| (n.to_string(), r)));
    assert_eq!(data.labels(), &[0, 0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!((data.count(0), data.count(1)), (5, 4));
    assert_eq!(data.cache_path(), folder.dir.join("PetImages.128x128.simdcnn"), "beside the data");
    // Every stored image is byte for byte what a fresh decode of its photo gives.
    for i in 0..data.len() {
        assert_eq!(image(&data, i), decode_file(&data.source(i), S as u32).unwrap(), "{}", names(&data)[i]);
    }
    // Spot checks that the pixels are the right photo's: solid colours, the CMYK quadrants.
    assert_near("Cat/2.jpg", pixel(&image(&data, 1), S, 64, 64), colour_of(2), 6);
    assert_near("Dog/3.jpg", pixel(&image(&data, 6), S, 64, 64), colour_of(5), 6);
    assert_near("Cat/21.jpg", pixel(&image(&data, 4), S, 10, 10), [255, 0, 0], 12);
}

#[test]
fn a_second_open_reads_the_cache_and_decodes_nothing() {
    let (_tmp, folder, opts) = fixture();
    let first = CatDog::open_with(&folder.dir, &opts).unwrap();
    let before: Vec<Vec<u8>> = (0..first.len()).map(|i| image(&first, i)).collect();
    // Replace a photo's content with garbage of the same size: the folder's fingerprint (names
    // and sizes) is unchanged, so a second open that decoded anything would now skip that photo.
    let victim = folder.root().join("Dog/3.jpg");
    let len = fs::metadata(&victim).unwrap().len() as usize;
    fs::write(&victim, vec![b'x'; len]).unwrap();
    let second = CatDog::open_with(&folder.dir, &opts).unwrap();
    assert_eq!(second.origin(), CacheOrigin::Opened);
    assert_eq!(second.len(), first.len());
    assert_eq!(*second.skipped(), folder.skipped);
    assert_eq!(second.cache_path(), first.cache_path());
    for (i, want) in before.iter().enumerate() {
        assert_eq!(&image(&second, i), want);
    }
}

#[test]
fn a_changed_folder_rebuilds_the_cache() {
    let (_tmp, folder, opts) = fixture();
    let first = CatDog::open_with(&folder.dir, &opts).unwrap();
    folder.write("Dog/8.jpg", &solid_jpeg(100, 100, [1, 2, 3]));
    let added = CatDog::open_with(&folder.dir, &opts).unwrap();
    assert_eq!(added.origin(), CacheOrigin::Built);
    assert_eq!(added.len(), first.len() + 1);
    assert_eq!(added.source(8), folder.root().join("Dog/8.jpg"));
    assert_near("Dog/8.jpg", pixel(&image(&added, 8), S, 50, 50), [1, 2, 3], 6);

    fs::remove_file(folder.root().join("Cat/1.jpg")).unwrap();
    let removed = CatDog::open_with(&folder.dir, &opts).unwrap();
    assert_eq!(removed.origin(), CacheOrigin::Built);
    assert_eq!(names(&removed)[0], "Cat/2.jpg");
    assert_eq!(removed.len(), first.len());

    // Same names, one size changed (a photo replaced by another).
    folder.write("Cat/2.jpg", &solid_jpeg(60, 60, [250, 250, 0]));
    let replaced = CatDog::open_with(&folder.dir, &opts).unwrap();
    assert_eq!(replaced.origin(), CacheOrigin::Built);
    assert_near("new Cat/2.jpg", pixel(&image(&replaced, 0), S, 64, 64), [250, 250, 0], 6);
    assert_eq!(CatDog::open_with(&folder.dir, &opts).unwrap().origin(), CacheOrigin::Opened);
}

#[test]
fn a_damaged_cache_is_rebuilt() {
    let (_tmp, folder, opts) = fixture();
    let good = CatDog::open_with(&folder.dir, &opts).unwrap();
    let path = good.cache_path().to_path_buf();
    let want: Vec<Vec<u8>> = (0..good.len()).map(|i| image(&good, i)).collect();
    let full_len = fs::metadata(&path).unwrap().len();

    type Damage = fn(&Path, u64);
    let damages: [(&str, Damage); 5] = [
        ("cut short", |p, len| fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len - 1000).unwrap()),
        ("too long", |p, len| fs::OpenOptions::new().write(true).open(p).unwrap().set_len(len + 1).unwrap()),
        ("bad magic", |p, _| patch(p, 0, b"garbage!")),
        ("other version", |p, _| patch(p, 8, &99u32.to_le_bytes())),
        ("unknown skip code", |p, _| patch(p, 136 + 15 + 3, &[200])),
    ];
    for (what, damage) in damages {
        damage(&path, full_len);
        let rebuilt = CatDog::open_with(&folder.dir, &opts).unwrap();
        assert_eq!(rebuilt.origin(), CacheOrigin::Built, "{what}");
        assert_eq!(rebuilt.cache_path(), path, "{what}");
        assert_eq!(fs::metadata(&path).unwrap().len(), full_len, "{what}");
        for (i, w) in want.iter().enumerate() {
            assert_eq!(&image(&rebuilt, i), w, "{what}: image {i}");
        }
    }
    // Nothing is left behind but the cache itself.
    let mut left: Vec<String> =
        fs::read_dir(&folder.dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    left.sort();
    assert_eq!(left, ["PetImages", "PetImages.128x128.simdcnn"]);
}

fn patch(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom};
    let mut file = fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
}

#[test]
fn a_build_clears_old_partial_files_of_killed_builds_only() {
    let (_tmp, folder, opts) = fixture();
    let old = folder.dir.join(".PetImages.128x128.simdcnn.a1b2c3.partial");
    let recent = folder.dir.join(".PetImages.128x128.simdcnn.d4e5f6.partial");
    let other = folder.dir.join("notes.partial");
    for path in [&old, &recent, &other] {
        fs::write(path, b"half a cache").unwrap();
    }
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for path in [&old, &other] {
        fs::File::options().write(true).open(path).unwrap().set_modified(two_hours_ago).unwrap();
    }
    CatDog::open_with(&folder.dir, &opts).unwrap();
    assert!(!old.exists(), "a killed build's file, untouched for two hours");
    assert!(recent.exists(), "may be a build in progress in another process");
    assert!(other.exists(), "not ours");
}

#[test]
fn a_cache_cut_short_while_open_gives_an_error_not_a_crash() {
    let (_tmp, folder, opts) = fixture();
    let data = CatDog::open_with(&folder.dir, &opts).unwrap();
    let len = fs::metadata(data.cache_path()).unwrap().len();
    fs::OpenOptions::new().write(true).open(data.cache_path()).unwrap().set_len(len / 2).unwrap();
    let last = data.len() - 1;
    let mut out = vec![0u8; data.image_len()];
    let err = data.read_image(last, &mut out).unwrap_err();
    assert!(matches!(err, CatDogError::Cache { .. }), "{err}");
    assert!(err.to_string().contains("cut short"), "{err}");
    assert!(data.read_image(0, &mut out).is_ok(), "the start of the file is still there");
    // Through the loader: the error arrives as an item, then the epoch ends.
    let loader = data.loader(&[0, 1, last, 2], LoaderOptions::eval(1));
    let results: Vec<bool> = loader.epoch(0).map(|b| b.is_ok()).collect();
    assert_eq!(results, [true, true, false]);
}

#[cfg(unix)]
#[test]
fn a_read_only_data_folder_sends_the_cache_to_the_cache_dir() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, folder, opts) = fixture();
    let cache_dir = opts.fallback_dir.clone().unwrap();
    fs::set_permissions(&folder.dir, fs::Permissions::from_mode(0o555)).unwrap();
    let built = CatDog::open_with(&folder.dir, &opts);
    let opened = CatDog::open_with(&folder.root(), &opts); // the same folder, named the other way
    let listing: Vec<_> = fs::read_dir(&folder.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    fs::set_permissions(&folder.dir, fs::Permissions::from_mode(0o755)).unwrap();
    let (built, opened) = (built.unwrap(), opened.unwrap());
    assert_eq!(built.origin(), CacheOrigin::Built);
    assert!(built.cache_path().starts_with(&cache_dir), "{}", built.cache_path().display());
    let name = built.cache_path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("PetImages.128x128.") && name.ends_with(".simdcnn"), "{name}");
    assert_eq!(listing, ["PetImages"], "nothing written into the read-only folder");
    assert_eq!(opened.origin(), CacheOrigin::Opened);
    assert_eq!(opened.cache_path(), built.cache_path());
    assert_eq!(names(&opened), folder.loaded);
}

#[test]
fn a_cache_dir_holds_the_cache_even_when_the_data_folder_is_writable() {
    let (tmp, folder, opts) = fixture();
    // A valid cache beside the data, which a run given a cache folder must neither use nor touch.
    let beside = CatDog::open_with(&folder.dir, &opts).unwrap();
    let beside_bytes = fs::read(beside.cache_path()).unwrap();
    let cache_dir = tmp.path().join("my caches");
    let opts = OpenOptions { cache_dir: Some(cache_dir.clone()), ..opts };
    let built = CatDog::open_with(&folder.dir, &opts).unwrap();
    assert_eq!(built.origin(), CacheOrigin::Built, "the cache beside the data is not the one asked for");
    assert_eq!(built.cache_path().parent(), Some(cache_dir.as_path()));
    let name = built.cache_path().file_name().unwrap().to_string_lossy().into_owned();
    assert!(name.starts_with("PetImages.128x128.") && name.ends_with(".simdcnn"), "{name}");
    let opened = CatDog::open_with(&folder.root(), &opts).unwrap();
    assert_eq!((opened.origin(), opened.cache_path()), (CacheOrigin::Opened, built.cache_path()));
    assert_eq!(names(&opened), folder.loaded);
    for i in 0..opened.len() {
        assert_eq!(image(&opened, i), image(&beside, i));
    }
    assert_eq!(fs::read(beside.cache_path()).unwrap(), beside_bytes);
    // Without the option, the cache beside the data is found again.
    let again = CatDog::open_with(&folder.dir, &OpenOptions { cache_dir: None, ..opts }).unwrap();
    assert_eq!((again.origin(), again.cache_path()), (CacheOrigin::Opened, beside.cache_path()));
}

#[cfg(unix)]
#[test]
fn a_read_only_cache_dir_is_an_error_not_a_cache_elsewhere() {
    use std::os::unix::fs::PermissionsExt;
    let (tmp, folder, opts) = fixture();
    let cache_dir = tmp.path().join("locked");
    fs::create_dir_all(&cache_dir).unwrap();
    fs::set_permissions(&cache_dir, fs::Permissions::from_mode(0o555)).unwrap();
    let result = CatDog::open_with(&folder.dir, &OpenOptions { cache_dir: Some(cache_dir.clone()), ..opts });
    fs::set_permissions(&cache_dir, fs::Permissions::from_mode(0o755)).unwrap();
    let err = result.unwrap_err();
    assert!(matches!(err, CatDogError::Cache { .. }) && err.to_string().contains("read-only"), "{err}");
    let listing: Vec<_> = fs::read_dir(&folder.dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(listing, ["PetImages"]);
}

#[cfg(unix)]
#[test]
fn opening_reports_what_it_does_as_events() {
    use std::os::unix::fs::PermissionsExt;
    let (_tmp, folder, opts) = fixture();
    let opts = OpenOptions { progress: true, ..opts };
    let files = Scan::new(&folder.dir).unwrap().files.len();
    let open = |opts: &OpenOptions| {
        let mut events = Vec::new();
        let data = CatDog::open_reporting(&folder.dir, opts, &mut |e| events.push(e)).unwrap();
        (data, events)
    };
    // A build: a progress event as it starts and one per photo, up to all of them, then the summary.
    let (data, events) = open(&opts);
    let progress: Vec<usize> = events
        .iter()
        .filter_map(|e| match e {
            OpenEvent::Decoding { done, total } => Some(if *total == files { *done } else { usize::MAX }),
            _ => None,
        })
        .collect();
    assert_eq!(progress, (0..=files).collect::<Vec<_>>());
    let Some(OpenEvent::Built { stored, files: f, skipped, path, first_skipped, more_skipped, .. }) = events.last()
    else {
        panic!("{events:?}")
    };
    assert_eq!((*stored, *f, skipped, path.as_path()), (data.len(), files, data.skipped(), data.cache_path()));
    assert_eq!(first_skipped.as_slice(), &data.skipped_files()[..5]);
    assert_eq!(*more_skipped, data.skipped_files().len() - 5);
    let text = events.last().unwrap().to_string();
    assert!(text.starts_with(&format!("cat/dog: decoded {} of {files} photos", data.len())), "{text}");
    assert_eq!(text.lines().count(), 1 + 5 + 1, "the summary, 5 skipped photos, and how many more");
    // Quiet: no progress, nothing to say when the cache is valid.
    let (_, events) = open(&OpenOptions { progress: false, ..opts.clone() });
    assert_eq!(events, []);
    // A damaged cache is named before it is rebuilt.
    patch(data.cache_path(), 0, b"garbage!");
    let (_, events) = open(&OpenOptions { progress: false, ..opts.clone() });
    assert!(
        matches!(&events[0], OpenEvent::Rebuilding { path, reason } if path == data.cache_path() && reason.contains("magic")),
        "{events:?}"
    );
    assert!(matches!(events.last(), Some(OpenEvent::Built { .. })));
    // A cache that cannot go beside the data says where it goes instead.
    fs::remove_file(data.cache_path()).unwrap();
    fs::set_permissions(&folder.dir, fs::Permissions::from_mode(0o555)).unwrap();
    let (moved, events) = open(&OpenOptions { progress: false, ..opts.clone() });
    fs::set_permissions(&folder.dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        matches!(&events[0], OpenEvent::Elsewhere { refused, path } if path == moved.cache_path() && refused[0].contains("read-only")),
        "{events:?}"
    );
    assert!(events[0].to_string().starts_with("note: "), "{}", events[0]);
}

#[test]
fn a_folder_of_nothing_but_broken_files_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("PetImages");
    for class in ["Cat", "Dog"] {
        fs::create_dir_all(root.join(class)).unwrap();
        fs::write(root.join(class).join("1.jpg"), b"").unwrap();
    }
    let err = CatDog::open_with(tmp.path(), &options(&tmp.path().join("c"))).unwrap_err();
    assert!(matches!(err, CatDogError::NothingDecoded { files: 2, .. }), "{err}");
    assert!(!tmp.path().join("PetImages.128x128.simdcnn").exists());
}

#[cfg(unix)]
#[test]
fn unreadable_photos_are_skipped_and_sub_folders_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("PetImages");
    fs::create_dir_all(root.join("Cat")).unwrap();
    fs::create_dir_all(root.join("Dog/folder.jpg")).unwrap();
    fs::write(root.join("Cat/1.jpg"), solid_jpeg(30, 30, [9, 9, 9])).unwrap();
    fs::write(root.join("Dog/1.jpg"), solid_jpeg(30, 30, [90, 9, 9])).unwrap();
    std::os::unix::fs::symlink(tmp.path().join("gone.jpg"), root.join("Dog/2.jpg")).unwrap();
    let scan = Scan::new(tmp.path()).unwrap();
    assert_eq!(scan.files.len(), 3, "the dangling link is listed, the folder is not");
    assert_eq!(scan.ignored, 0);
    let data = CatDog::open_with(tmp.path(), &options(&tmp.path().join("c"))).unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data.skipped().get(SkipReason::Unreadable), 1);
    assert_eq!(data.skipped().total(), 1);
}

// ---------------------------------------------------------------- split

#[test]
fn the_split_is_deterministic_disjoint_complete_and_balanced() {
    let labels: Vec<u8> = (0..1003).map(|i| u8::from(i % 3 == 0)).collect(); // 335 dogs, 668 cats
    let a = Split::new(&labels, 0.2, 7).unwrap();
    assert_eq!(a, Split::new(&labels, 0.2, 7).unwrap(), "same seed, same split");
    assert_ne!(a, Split::new(&labels, 0.2, 8).unwrap(), "another seed, another split");
    let train: BTreeSet<usize> = a.train.iter().copied().collect();
    let val: BTreeSet<usize> = a.val.iter().copied().collect();
    assert_eq!(train.len(), a.train.len(), "no repeats");
    assert_eq!(val.len(), a.val.len(), "no repeats");
    assert!(train.is_disjoint(&val));
    assert_eq!(train.union(&val).copied().collect::<Vec<_>>(), (0..labels.len()).collect::<Vec<_>>());
    let dogs_in_val = a.val.iter().filter(|&&i| labels[i] == 1).count();
    assert_eq!(dogs_in_val, 67, "round(0.2 * 335)");
    assert_eq!(a.val.len() - dogs_in_val, 134, "round(0.2 * 668)");
    assert!(a.train.windows(2).all(|w| w[0] < w[1]));

    let none = Split::new(&labels, 0.0, 1).unwrap();
    assert!(none.val.is_empty() && none.train.len() == labels.len());
    for bad in [1.0, -0.1, f64::NAN] {
        assert!(matches!(Split::new(&labels, bad, 1), Err(CatDogError::Invalid(_))), "{bad}");
    }
}

#[test]
fn a_split_that_cannot_train_or_validate_is_an_error() {
    // One dog, which validation would take: no dog left to train on.
    let err = Split::new(&[0, 0, 0, 0, 1], 0.5, 0).unwrap_err();
    assert!(err.to_string().contains("no dog image left for training"), "{err}");
    // No dog at all (a subset of a folder can lack a class).
    let err = Split::new(&[0, 0, 0], 0.2, 0).unwrap_err();
    assert!(err.to_string().contains("no dog image left for training"), "{err}");
    // Validation asked for, but too few images for round(fraction * n) to give one.
    let err = Split::new(&[0, 1, 0, 1], 0.1, 0).unwrap_err();
    assert!(err.to_string().contains("no validation image"), "{err}");
    // Just enough.
    let ok = Split::new(&[0, 1, 0, 1], 0.25, 0).unwrap();
    assert_eq!((ok.train.len(), ok.val.len()), (2, 2));
}

// ---------------------------------------------------------------- augmentation

fn random_image(seed: u64) -> Vec<u8> {
    use rand::RngExt;
    let mut r = rng(seed);
    (0..IMAGE_LEN).map(|_| r.random::<u8>()).collect()
}

/// The image padded by `PAD` on each side as NumPy's `np.pad(mode="reflect")` pads it, built
/// row by row from explicit index lists: `[8, 7, ..., 1, 0, 1, ..., n-1, n-2, ..., n-9]`.
fn numpy_reflect_pad(image: &[u8]) -> Vec<[u8; 3]> {
    let order: Vec<usize> = (1..=PAD).rev().chain(0..S).chain((S - 1 - PAD..S - 1).rev()).collect();
    assert_eq!(order.len(), S + 2 * PAD);
    order.iter().flat_map(|&y| order.iter().map(move |&x| pixel(image, S, x, y))).collect()
}

#[test]
fn augmentation_crops_the_reflect_padded_image_and_flips() {
    let img = random_image(3);
    let padded = numpy_reflect_pad(&img);
    let w = S + 2 * PAD;
    for aug in [
        Augment::NONE,
        Augment { dy: 0, dx: 0, flip: false },
        Augment { dy: 16, dx: 16, flip: true },
        Augment { dy: 3, dx: 11, flip: false },
        Augment { dy: 13, dx: 1, flip: true },
    ] {
        let mut out = vec![0f32; IMAGE_LEN];
        augment_into(&img, S, aug, &mut out);
        for y in 0..S {
            for x in 0..S {
                let sx = if aug.flip { S - 1 - x } else { x };
                let want = padded[(y + aug.dy) * w + sx + aug.dx];
                for c in 0..3 {
                    assert_eq!(out[(y * S + x) * 3 + c], want[c] as f32 / 255.0, "{aug:?} at ({y}, {x})");
                }
            }
        }
    }
}

#[test]
fn no_augmentation_is_plain_conversion_and_a_flip_is_a_mirror() {
    let img = random_image(4);
    let mut plain = vec![0f32; IMAGE_LEN];
    to_unit_f32(&img, &mut plain);
    let mut none = vec![0f32; IMAGE_LEN];
    augment_into(&img, S, Augment::NONE, &mut none);
    assert_eq!(none, plain);
    let mut flipped = vec![0f32; IMAGE_LEN];
    augment_into(&img, S, Augment { flip: true, ..Augment::NONE }, &mut flipped);
    for y in 0..S {
        for x in 0..S {
            assert_eq!(flipped[(y * S + x) * 3..][..3], plain[(y * S + S - 1 - x) * 3..][..3]);
        }
    }
    assert!(plain.iter().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(plain.iter().cloned().fold(0.0, f32::max), 1.0, "255 maps to 1");
}

#[test]
fn random_augmentations_cover_their_range() {
    let mut r = rng(5);
    let augs: Vec<Augment> = (0..2000).map(|_| Augment::random(&mut r)).collect();
    let dys: BTreeSet<usize> = augs.iter().map(|a| a.dy).collect();
    let dxs: BTreeSet<usize> = augs.iter().map(|a| a.dx).collect();
    assert_eq!(dys, (0..=2 * PAD).collect());
    assert_eq!(dxs, (0..=2 * PAD).collect());
    let flips = augs.iter().filter(|a| a.flip).count();
    assert!((850..1150).contains(&flips), "{flips} flips in 2000");
}

// ---------------------------------------------------------------- batches and the loader

#[test]
fn batches_hold_the_right_images_and_labels() {
    let (_tmp, folder, opts) = fixture();
    let data = CatDog::open_with(&folder.dir, &opts).unwrap();
    let indices = [8, 0, 5, 4];
    let batch = data.batch(&indices, None).unwrap();
    assert_eq!(batch.x.shape(), &[4, S, S, 3]);
    assert_eq!(batch.labels, [1.0, 0.0, 1.0, 0.0]);
    assert_eq!(batch.indices, indices);
    for (b, &i) in indices.iter().enumerate() {
        let want: Vec<f32> = image(&data, i).iter().map(|&p| p as f32 / 255.0).collect();
        assert_eq!(&batch.x.as_slice()[b * IMAGE_LEN..][..IMAGE_LEN], &want[..]);
    }
    let augmented = data.batch(&indices, Some(&mut rng(1))).unwrap();
    assert_eq!(augmented.x.shape(), batch.x.shape());
    assert_eq!(augmented.labels, batch.labels);
    assert!(augmented.x.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    assert_ne!(augmented.x.as_slice(), batch.x.as_slice());
}

#[test]
fn the_eval_loader_serves_every_image_once_in_order() {
    let (_tmp, folder, opts) = fixture();
    let data = CatDog::open_with(&folder.dir, &opts).unwrap();
    let all: Vec<usize> = (0..data.len()).collect();
    let loader = data.loader(&all, LoaderOptions::eval(4));
    assert_eq!(loader.batches_per_epoch(), 3);
    let batches: Vec<_> = loader.epoch(0).map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.len()).collect::<Vec<_>>(), [4, 4, 1]);
    let served: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(served, all);
    let labels: Vec<f32> = batches.iter().flat_map(|b| b.labels.clone()).collect();
    assert_eq!(labels, data.labels().iter().map(|&l| f32::from(l)).collect::<Vec<_>>());
    for b in &batches {
        assert_eq!(b.x.as_slice(), data.batch(&b.indices, None).unwrap().x.as_slice());
    }
}

#[test]
fn the_train_loader_shuffles_by_seed_and_epoch() {
    let (_tmp, folder, opts) = fixture();
    let data = CatDog::open_with(&folder.dir, &opts).unwrap();
    let split = data.split(0.2, 0).unwrap();
    assert_eq!(split.val.len(), 2, "round(0.2 * 5) cats and round(0.2 * 4) dogs");
    let opts = LoaderOptions::train(3, 11).augmented();
    let loader = data.loader(&split.train, opts.clone());
    assert_eq!(loader.batches_per_epoch(), 2, "7 images, full batches of 3");
    let epoch = |l: &simd_cnn::data::catdog::Loader, e| l.epoch(e).map(Result::unwrap).collect::<Vec<_>>();

    let e0 = epoch(&loader, 0);
    let mut served: Vec<usize> = e0.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(served, loader.order(0)[..6]);
    served.sort();
    served.dedup();
    assert_eq!(served.len(), 6);
    assert!(served.iter().all(|i| split.train.contains(i)));
    let mut order = loader.order(0);
    order.sort();
    assert_eq!(order, split.train, "an epoch's order is a permutation of the indices");
    for b in &e0 {
        assert_eq!(b.x.shape(), &[3, S, S, 3]);
        assert_eq!(b.labels, b.indices.iter().map(|&i| f32::from(data.labels()[i])).collect::<Vec<_>>());
        assert!(b.x.as_slice().iter().all(|v| (0.0..=1.0).contains(v)));
    }
    // The same seed gives the same batches, augmentation included; another epoch or seed not.
    let again = epoch(&data.loader(&split.train, opts.clone()), 0);
    for (a, b) in e0.iter().zip(&again) {
        assert_eq!((&a.indices, a.x.as_slice()), (&b.indices, b.x.as_slice()));
    }
    assert_ne!(loader.order(1), loader.order(0));
    let other_seed = epoch(&data.loader(&split.train, LoaderOptions { seed: 12, ..opts.clone() }), 0);
    assert_ne!(other_seed[0].x.as_slice(), e0[0].x.as_slice());
    // Abandoning an epoch after one batch stops its thread (the test would hang otherwise).
    let mut partial = loader.epoch(2);
    assert!(partial.next().unwrap().is_ok());
    drop(partial);
    // A resumed epoch starts at its batch without the ones before it, and gives exactly the
    // batches the whole epoch gives from there, augmentation included.
    let resumed: Vec<_> = loader.epoch_from(0, 1).map(Result::unwrap).collect();
    assert_eq!(resumed.len(), 1);
    assert_eq!((&resumed[0].indices, resumed[0].x.as_slice()), (&e0[1].indices, e0[1].x.as_slice()));
    assert_eq!(loader.epoch_from(0, 2).count(), 0);
}

// ---------------------------------------------------------------- the archive

fn zip_of(path: &Path, entries: &[(&str, &[u8])]) {
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        if name.ends_with('/') {
            zip.add_directory(*name, zip::write::SimpleFileOptions::default()).unwrap();
        } else {
            zip.start_file(*name, zip::write::SimpleFileOptions::default()).unwrap();
            zip.write_all(bytes).unwrap();
        }
    }
    zip.finish().unwrap();
}

#[test]
fn extract_takes_only_the_photos_and_renames_them_into_place() {
    let tmp = tempfile::tempdir().unwrap();
    let archive = tmp.path().join("kagglecatsanddogs_5340.zip");
    let (cat, dog) = (solid_jpeg(90, 60, [200, 10, 10]), solid_jpeg(60, 90, [10, 10, 200]));
    zip_of(
        &archive,
        &[
            ("PetImages/", b""),
            ("PetImages/Cat/", b""),
            ("PetImages/Cat/0.jpg", &cat),
            ("PetImages/Cat/Thumbs.db", b"thumbs"),
            ("PetImages/Dog/", b""),
            ("PetImages/Dog/0.jpg", &dog),
            ("PetImages/Dog/1.JPG", &dog),
            ("PetImages/Dog/Thumbs.db", b"thumbs"),
            ("CDLA-Permissive-2.0.pdf", b"%PDF-1.5"),
            ("readme[1].txt", b"Cats and dogs"),
        ],
    );
    let dest = tmp.path().join("catdog");
    let done = extract_pet_images(&archive, &dest).unwrap();
    assert_eq!(done.root, dest.join("PetImages"));
    assert_eq!((done.files, done.ignored), (3, 7));
    assert_eq!(fs::read(dest.join("PetImages/Cat/0.jpg")).unwrap(), cat);
    assert_eq!(fs::read(dest.join("PetImages/Dog/1.JPG")).unwrap(), dog);
    assert!(!dest.join("PetImages/Cat/Thumbs.db").exists());
    let mut left: Vec<_> = fs::read_dir(&dest).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(left, ["PetImages"], "no temporary folder left behind");
    // The loader takes it from there.
    let data = CatDog::open_with(&dest, &options(&tmp.path().join("c"))).unwrap();
    assert_eq!((data.len(), data.labels()), (3, &[0u8, 1, 1][..]));
    // It does not extract over an existing folder.
    assert!(matches!(extract_pet_images(&archive, &dest), Err(CatDogError::Invalid(_))));
}

#[test]
fn extract_refuses_an_archive_with_unsafe_paths() {
    let tmp = tempfile::tempdir().unwrap();
    let photo = solid_jpeg(8, 8, [1, 1, 1]);
    for evil in [
        "PetImages/Cat/../../../escaped.jpg",
        "/etc/PetImages/Cat/1.jpg",
        "PetImages\\Cat\\..\\..\\x.jpg",
        "C:/PetImages/Cat/1.jpg",
    ] {
        let archive = tmp.path().join("evil.zip");
        zip_of(&archive, &[("PetImages/Cat/1.jpg", &photo), (evil, &photo)]);
        let dest = tmp.path().join("out");
        let err = extract_pet_images(&archive, &dest).unwrap_err();
        assert!(matches!(err, CatDogError::Archive { .. }) && err.to_string().contains("unsafe"), "{evil}: {err}");
        assert!(!dest.join("PetImages").exists(), "{evil}");
        assert!(!tmp.path().join("escaped.jpg").exists());
        assert!(fs::read_dir(&dest).map_or(true, |d| d.count() == 0), "{evil}: nothing written");
    }
    let not_zip = tmp.path().join("not.zip");
    fs::write(&not_zip, b"PK but not really").unwrap();
    assert!(matches!(extract_pet_images(&not_zip, &tmp.path().join("o2")), Err(CatDogError::Archive { .. })));
    let missing = extract_pet_images(&tmp.path().join("missing.zip"), &tmp.path().join("o3")).unwrap_err();
    assert!(matches!(missing, CatDogError::Io { .. }), "{missing}");
}

// ---------------------------------------------------------------- the real photos

/// `$SIMD_CNN_DATA/catdog` (default `data/catdog`) if it holds the photos. When it does not,
/// says so loudly and returns `None`, unless `SIMD_CNN_REQUIRE_DATA=1`, which makes it fail.
fn real_data() -> Option<PathBuf> {
    let dir = simd_cnn::data::default_dir("catdog");
    if dir.join("PetImages").is_dir() {
        return Some(dir);
    }
    let required = std::env::var("SIMD_CNN_REQUIRE_DATA").is_ok_and(|v| v == "1");
    assert!(!required, "SIMD_CNN_REQUIRE_DATA=1 but {} has no PetImages folder", dir.display());
    eprintln!("\n*** SKIPPED: no cat/dog photos in {} (set SIMD_CNN_DATA) ***\n", dir.display());
    None
}

/// The regular files (symlinks followed) of a class folder, listed here without [`Scan`]:
/// the names ending in `.jpg` or `.jpeg` in any case, and how many other files there are.
fn listed_photos(folder: &Path) -> (BTreeSet<String>, usize) {
    let (mut photos, mut others) = (BTreeSet::new(), 0);
    for entry in fs::read_dir(folder).unwrap() {
        let path = entry.unwrap().path();
        if fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let lower = name.to_lowercase();
        if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
            photos.insert(name);
        } else {
            others += 1;
        }
    }
    (photos, others)
}

/// The checks every honest copy of the photos passes, whatever its size: the scan lists exactly
/// the photos of each class folder, with their labels and sizes, in natural order; and of
/// `sample` photos picked by a seeded generator, nearly all decode to full images of photos
/// (the public archive has a few dozen broken files in 25,000). Returns the scan and the photos
/// of the sample that did not decode.
fn check_photo_folder(dir: &Path, sample: usize) -> (Scan, Vec<(PathBuf, SkipReason)>) {
    let scan = Scan::new(dir).unwrap();
    let mut others = 0;
    for (label, class) in ["Cat", "Dog"].into_iter().enumerate() {
        let (listed, other) = listed_photos(&scan.root.join(class));
        others += other;
        let scanned: Vec<&SourceFile> = scan.files.iter().filter(|f| f.name.starts_with(class)).collect();
        assert_eq!(scan.count(label as u8), listed.len(), "{class}");
        assert!(!listed.is_empty(), "{class}: an honest copy has both classes");
        assert!(scanned.iter().all(|f| f.label == label as u8), "{class}: labels");
        let names: BTreeSet<String> =
            scanned.iter().map(|f| f.name.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, listed, "{class}: every photo, each once");
        let numbers: Vec<u64> = scanned.iter().filter_map(|f| f.name.file_stem()?.to_str()?.parse().ok()).collect();
        assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{class}: natural order");
    }
    assert_eq!(scan.files.len(), scan.count(0) + scan.count(1));
    assert_eq!(scan.ignored, others, "the files not named .jpg");
    for (k, f) in scan.files.iter().enumerate() {
        assert_eq!(f.len, fs::metadata(scan.path(k)).map_or(0, |m| m.len()), "{}", f.name.display());
    }

    use rand::seq::IndexedRandom;
    let all: Vec<usize> = (0..scan.files.len()).collect();
    let picks: Vec<usize> = all.sample(&mut rng(9), sample.min(all.len())).copied().collect();
    let mut failed = Vec::new();
    let mut mean = [0f64; 3];
    let mut decoded = 0;
    for &k in &picks {
        match decode_file(&scan.path(k), S as u32) {
            Ok(image) => {
                assert_eq!(image.len(), IMAGE_LEN);
                decoded += 1;
                for p in image.chunks_exact(3) {
                    for c in 0..3 {
                        mean[c] += p[c] as f64;
                    }
                }
            }
            Err(reason) => failed.push((scan.files[k].name.clone(), reason)),
        }
    }
    assert!(failed.len() * 20 <= picks.len(), "more than 5 % of the sample is broken: {failed:?}");
    // Photos, not blank frames: the average colour is a mid tone in every channel.
    let mean = mean.map(|m| m / (decoded * S * S) as f64);
    assert!(mean.iter().all(|&m| (60.0..200.0).contains(&m)), "{mean:?}");
    (scan, failed)
}

#[test]
fn real_photos_are_all_found_and_a_sample_decodes() {
    let Some(dir) = real_data() else { return };
    let (scan, _) = check_photo_folder(&dir, 300);
    // The Microsoft archive has about 12,500 photos of each class; a copy may have lost or
    // dropped some, but a set of a few hundred is not the data set.
    assert!(scan.count(0) >= 1000 && scan.count(1) >= 1000, "{} cats, {} dogs", scan.count(0), scan.count(1));
}

/// Puts the photo at `from` at `to`: a symbolic link where there are some, else a copy. The link
/// points at `from`'s absolute path: a relative one (`SIMD_CNN_DATA=data`) would be read from the
/// link's folder, not from here.
fn link(from: &Path, to: &Path) {
    #[cfg(unix)]
    std::os::unix::fs::symlink(from.canonicalize().unwrap(), to).unwrap();
    #[cfg(not(unix))]
    fs::copy(from, to).unwrap();
}

#[test]
fn a_copy_of_another_size_passes_the_same_checks_and_loads_consistently() {
    let Some(dir) = real_data() else { return };
    let real = Scan::new(&dir).unwrap();
    // 150 cats and 110 dogs of the real set, picked by a seeded generator, under their names.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("copy/PetImages");
    use rand::seq::IndexedRandom;
    for (label, class, n) in [(0u8, "Cat", 150), (1, "Dog", 110)] {
        fs::create_dir_all(root.join(class)).unwrap();
        let members: Vec<usize> = (0..real.files.len()).filter(|&k| real.files[k].label == label).collect();
        for &k in members.sample(&mut rng(u64::from(label) + 20), n) {
            link(&real.path(k), &root.join(&real.files[k].name));
        }
    }
    // Two broken photos, a photo of an odd size and shape, a file that is not a photo.
    let donor = real.path(0);
    let bytes = fs::read(&donor).unwrap();
    fs::write(root.join("Cat/broken_empty.jpg"), b"").unwrap();
    fs::write(root.join("Dog/broken_cut.jpg"), &bytes[..bytes.len() / 2]).unwrap();
    let odd = image::load_from_memory(&bytes).unwrap().resize_exact(333, 97, image::imageops::FilterType::Triangle);
    odd.to_rgb8().save(root.join("Dog/odd_333x97.JPG")).unwrap();
    fs::write(root.join("Dog/Thumbs.db"), b"thumbnails").unwrap();

    let (scan, _) = check_photo_folder(&root, 1000);
    assert_eq!((scan.count(0), scan.count(1)), (151, 112));
    assert_eq!(scan.ignored, 1);

    let data = CatDog::open_with(&root, &options(&tmp.path().join("c"))).unwrap();
    assert_eq!(data.origin(), CacheOrigin::Built);
    assert_eq!(data.len() as u64 + data.skipped().total(), scan.files.len() as u64, "each photo stored or skipped");
    assert_eq!(data.skipped().total() as usize, data.skipped_files().len());
    let skipped: Vec<String> =
        data.skipped_files().iter().map(|(n, _)| n.to_string_lossy().replace('\\', "/")).collect();
    assert!(data.skipped_files().contains(&(PathBuf::from("Cat/broken_empty.jpg"), SkipReason::Empty)), "{skipped:?}");
    assert!(
        data.skipped_files().contains(&(PathBuf::from("Dog/broken_cut.jpg"), SkipReason::Truncated)),
        "{skipped:?}"
    );
    for (label, class) in ["Cat", "Dog"].into_iter().enumerate() {
        let skipped_here = skipped.iter().filter(|n| n.starts_with(class)).count();
        assert_eq!(data.count(label as u8), scan.count(label as u8) - skipped_here, "{class}");
    }
    let loaded = names(&data);
    let odd = loaded.iter().position(|n| n == "Dog/odd_333x97.JPG").expect("the odd photo loads");
    for i in (0..data.len()).step_by(7).chain([odd]) {
        assert_eq!(image(&data, i), decode_file(&data.source(i), S as u32).unwrap(), "{}", loaded[i]);
        assert_eq!(data.labels()[i], u8::from(loaded[i].starts_with("Dog")), "{}", loaded[i]);
    }
    // The split and the loader hold for it too.
    let split = data.split(0.2, 0).unwrap();
    assert_eq!(split.train.len() + split.val.len(), data.len());
    let loader = data.loader(&split.train, LoaderOptions::train(16, 0));
    assert_eq!(loader.epoch(0).map(|b| b.unwrap().len()).sum::<usize>(), split.train.len() / 16 * 16);
}

// ---------------------------------------------------------------- photos of other sizes

#[test]
fn photos_decode_to_any_width_and_height() {
    let halves = jpeg(300, 200, |x, _| if x < 150 { [0; 3] } else { [255; 3] });
    let image = decode_image_to(&halves, 96, 40).unwrap();
    assert_eq!(image.len(), 96 * 40 * 3);
    let at = |x: usize, y: usize| image[(y * 96 + x) * 3];
    assert!(at(5, 20) < 8 && at(90, 20) > 247, "{} {}", at(5, 20), at(90, 20));
    assert_eq!(decode_image_to(&halves, 128, 128).unwrap(), decode_image(&halves, 128).unwrap());
}

#[test]
fn pictures_take_a_photo_at_the_size_of_any_network() {
    use simd_cnn::kernels::Kernels;
    use simd_cnn::model::CatDogCnn;
    use simd_cnn::trainer::{feature_maps, photo_input};
    let tmp = tempfile::tempdir().unwrap();
    let photo = tmp.path().join("photo.jpg");
    fs::write(&photo, solid_jpeg(300, 200, [200, 100, 50])).unwrap();
    for (h, w) in [(64, 64), (64, 128), (96, 32)] {
        let mut model = CatDogCnn::new(h, w, 0);
        let x = photo_input(&model, &photo).unwrap();
        assert_eq!(x.len(), model.image_len(), "{h}x{w}");
        let maps = feature_maps(&mut model, Kernels::best().unwrap(), &x);
        assert_eq!(maps[0].dimensions().1, 4 * (h as u32 + 2) + 2, "{h}x{w}: 4 rows of 8 maps of conv1");
    }
    let broken = tmp.path().join("broken.jpg");
    fs::write(&broken, b"").unwrap();
    let err = photo_input(&CatDogCnn::new(64, 128, 0), &broken).unwrap_err();
    assert_eq!(err.to_string(), format!("{}: empty", broken.display()));
}
