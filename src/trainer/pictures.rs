//! Chapter 9: what the network has learned, as pictures: the 32 filters of the first
//! convolution, and the feature maps each convolution makes of one photo.

use crate::data::catdog::{SkipReason, decode_file_to, to_unit_f32};
use crate::files::write_atomic;
use crate::kernels::Kernels;
use crate::model::CatDogCnn;
use image::{GrayImage, ImageEncoder, Luma, Rgb, RgbImage};
use std::path::{Path, PathBuf};

/// A photo that cannot be shown to the network.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct PhotoError {
    pub path: PathBuf,
    pub reason: SkipReason,
}

/// The photo at `path` as the network takes it: decoded, resized to the network's image size
/// (square or not) and scaled to [0, 1], `[h, w, 3]`, ready for [`feature_maps`].
pub fn photo_input(model: &CatDogCnn, path: &Path) -> Result<Vec<f32>, PhotoError> {
    let (h, w) = model.image_size();
    let pixels =
        decode_file_to(path, w as u32, h as u32).map_err(|reason| PhotoError { path: path.to_path_buf(), reason })?;
    let mut x = vec![0.0; pixels.len()];
    to_unit_f32(&pixels, &mut x);
    Ok(x)
}

/// Gap between the tiles of a grid, in pixels.
const GAP: u32 = 2;

// ANCHOR: conv1_filters
/// The 32 filters of conv1, each a 3x3 RGB patch shown `scale` pixels per weight, in a grid of
/// 8 per row. Each filter is stretched to the full range on its own (its smallest weight
/// black, its largest white), so the picture shows the pattern a filter responds to, not its
/// strength.
pub fn conv1_filters(model: &CatDogCnn, scale: u32) -> RgbImage {
    let w = model.conv1.weight.value.as_slice(); // [3, 3, 3, 32] (ky, kx, c_in, c_out)
    let c_out = model.conv1.c_out();
    let per_row = 8;
    let tile = 3 * scale;
    let rows = c_out.div_ceil(per_row) as u32;
    let mut out =
        RgbImage::from_pixel(per_row as u32 * (tile + GAP) + GAP, rows * (tile + GAP) + GAP, Rgb([255, 255, 255]));
    for f in 0..c_out {
        let weight = |ky: usize, kx: usize, c: usize| w[((ky * 3 + kx) * 3 + c) * c_out + f];
        let values: Vec<f32> = (0..27).map(|i| weight(i / 9, (i / 3) % 3, i % 3)).collect();
        let (lo, hi) = values.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let level = |v: f32| (255.0 * (v - lo) / (hi - lo).max(1e-12)).round() as u8;
        let (x0, y0) = (GAP + (f % per_row) as u32 * (tile + GAP), GAP + (f / per_row) as u32 * (tile + GAP));
        for py in 0..tile {
            for px in 0..tile {
                let (ky, kx) = ((py / scale) as usize, (px / scale) as usize);
                out.put_pixel(x0 + px, y0 + py, Rgb([0, 1, 2].map(|c| level(weight(ky, kx, c)))));
            }
        }
    }
    out
}
// ANCHOR_END: conv1_filters

// ANCHOR: feature_maps
/// The feature maps of one photo (`[h, w, 3]` in [0, 1]) after each convolution and its ReLU:
/// three grids of grey images (32 maps of conv1, 64 of conv2, 128 of conv3), each map
/// stretched so that its largest value is white.
///
/// # Panics
/// If `photo` is not one image of the network's size ([`photo_input`] makes one).
pub fn feature_maps(model: &mut CatDogCnn, k: &Kernels, photo: &[f32]) -> [GrayImage; 3] {
    assert_eq!(photo.len(), model.image_len(), "one photo of the network's size");
    model.forward_keeping_outputs(k, photo);
    let (h, w) = model.image_size();
    let [r1, r2, r3] = model.conv_outputs();
    [grid(r1, h, w, 8), grid(r2, h / 2, w / 2, 8), grid(r3, h / 4, w / 4, 16)]
}
// ANCHOR_END: feature_maps

/// The channels of one NHWC image `[h, w, c]` as a grid of `per_row` grey maps.
fn grid(maps: &[f32], h: usize, w: usize, per_row: usize) -> GrayImage {
    let c = maps.len() / (h * w);
    let rows = c.div_ceil(per_row) as u32;
    let (th, tw) = (h as u32, w as u32);
    let mut out = GrayImage::from_pixel(per_row as u32 * (tw + GAP) + GAP, rows * (th + GAP) + GAP, Luma([255]));
    for ch in 0..c {
        let max = (0..h * w).map(|p| maps[p * c + ch]).fold(0.0f32, f32::max);
        let (x0, y0) = (GAP + (ch % per_row) as u32 * (tw + GAP), GAP + (ch / per_row) as u32 * (th + GAP));
        for y in 0..h {
            for x in 0..w {
                let v = maps[(y * w + x) * c + ch] / max.max(1e-12);
                out.put_pixel(x0 + x as u32, y0 + y as u32, Luma([(255.0 * v.clamp(0.0, 1.0)).round() as u8]));
            }
        }
    }
    out
}

/// Writes `image` as a PNG at `path`, atomically.
pub fn save_png<P: image::PixelWithColorType>(
    image: &image::ImageBuffer<P, Vec<P::Subpixel>>,
    path: &Path,
) -> std::io::Result<()>
where
    [P::Subpixel]: image::EncodableLayout,
{
    use image::EncodableLayout;
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(image.as_raw().as_bytes(), image.width(), image.height(), P::COLOR_TYPE)
        .map_err(std::io::Error::other)?;
    write_atomic(path, &bytes)
}
