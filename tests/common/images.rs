//! Images for the chapter 9 tests: JPEGs and PNGs made on the spot, and the committed fixtures.

use image::ExtendedColorType;
use image::ImageEncoder;
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use std::fs;
use std::path::Path;

pub fn rgb_pixels(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    (0..h).flat_map(|y| (0..w).map(move |x| (x, y))).flat_map(|(x, y)| f(x, y)).collect()
}

pub fn jpeg(w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95).encode(&rgb_pixels(w, h, f), w, h, ExtendedColorType::Rgb8).unwrap();
    out
}

pub fn solid_jpeg(w: u32, h: u32, colour: [u8; 3]) -> Vec<u8> {
    jpeg(w, h, |_, _| colour)
}

pub fn gray_jpeg(w: u32, h: u32, level: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, 95)
        .encode(&vec![level; (w * h) as usize], w, h, ExtendedColorType::L8)
        .unwrap();
    out
}

pub fn png(w: u32, h: u32, pixels: &[u8], colour: ExtendedColorType) -> Vec<u8> {
    let mut out = Vec::new();
    PngEncoder::new(&mut out).write_image(pixels, w, h, colour).unwrap();
    out
}

/// A real 8000x8000 image (a black PNG: 64 MB of pixels, 65 KB of file).
pub fn huge_png() -> Vec<u8> {
    png(8000, 8000, &vec![0u8; 8000 * 8000], ExtendedColorType::L8)
}

/// A 16x16 JPEG whose frame header claims 8000x8000: the pixel data for that size is not there,
/// so only a refusal based on the header (before decoding) reports "too large".
pub fn jpeg_claiming_8000x8000() -> Vec<u8> {
    let mut bytes = solid_jpeg(16, 16, [90, 90, 90]);
    let sof = bytes.windows(2).position(|w| w == [0xFF, 0xC0]).expect("a baseline JPEG has an SOF0 segment");
    // FF C0, length (2 bytes), precision (1), height (2), width (2)
    bytes[sof + 5..sof + 9].copy_from_slice(&[0x1F, 0x40, 0x1F, 0x40]);
    bytes
}

/// The smallest GIF: 1x1, one colour.
pub const GIF: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";

pub fn fixture_file(name: &str) -> Vec<u8> {
    fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)).unwrap()
}

pub fn cmyk_jpeg() -> Vec<u8> {
    fixture_file("cmyk.jpg")
}
