//! Decoding one photo: whatever it really is, to `size x size` RGB bytes, or a reason to skip it.
//!
//! The public archive is messy: a few files are empty, some are truncated, some are PNG or GIF
//! files named `.jpg`, some are grayscale or CMYK. The format is guessed from the first bytes,
//! never from the name; grayscale and CMYK photos are converted to RGB; anything that cannot be
//! decoded is skipped with a [`SkipReason`].

use super::resize::resize_rgb;
use image::{ImageError, ImageFormat, ImageReader, Limits};
use std::fmt;
use std::io::Cursor;
use std::path::Path;

/// The largest width or height accepted. The photos of the set are at most a few hundred pixels
/// on a side; a 4096x4096 photo (16 megapixels) still decodes, an 8000x8000 one is refused from
/// its header, before any pixel memory is allocated.
pub const MAX_SIDE: u32 = 4096;
/// The most memory the decoder may allocate for one image: 4096 x 4096 x 4 bytes (RGBA).
pub const MAX_DECODED_BYTES: u64 = 64 << 20;
/// Files larger than this are not even read.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Why a photo was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SkipReason {
    /// Zero bytes.
    Empty,
    /// The first bytes are not those of any image format.
    NotAnImage,
    /// An image format this crate does not decode (GIF, BMP, WebP, ...).
    Unsupported,
    /// The file ends before the image does.
    Truncated,
    /// The decoder rejected the data.
    Corrupt,
    /// Wider or higher than [`MAX_SIDE`], or a file larger than [`MAX_FILE_BYTES`].
    TooLarge,
    /// The file could not be read (permissions, I/O error).
    Unreadable,
}

impl SkipReason {
    /// Every reason, in the order of [`SkipReason::code`].
    pub const ALL: [SkipReason; 7] = [
        SkipReason::Empty,
        SkipReason::NotAnImage,
        SkipReason::Unsupported,
        SkipReason::Truncated,
        SkipReason::Corrupt,
        SkipReason::TooLarge,
        SkipReason::Unreadable,
    ];

    /// A small number for the cache file: 1 + the position in [`SkipReason::ALL`] (0 means
    /// "not skipped").
    pub fn code(self) -> u8 {
        1 + Self::ALL.iter().position(|&r| r == self).expect("ALL lists every reason") as u8
    }

    /// The reason with this [`code`](SkipReason::code), if any.
    pub fn from_code(code: u8) -> Option<SkipReason> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }

    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::Empty => "empty",
            SkipReason::NotAnImage => "not an image",
            SkipReason::Unsupported => "unsupported format",
            SkipReason::Truncated => "truncated",
            SkipReason::Corrupt => "corrupt",
            SkipReason::TooLarge => "too large",
            SkipReason::Unreadable => "unreadable",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// How many photos were skipped, by reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SkipCounts([u64; SkipReason::ALL.len()]);

impl SkipCounts {
    pub fn get(&self, reason: SkipReason) -> u64 {
        self.0[usize::from(reason.code() - 1)]
    }

    pub fn add(&mut self, reason: SkipReason) {
        self.0[usize::from(reason.code() - 1)] += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The counts in the order of [`SkipReason::ALL`].
    pub fn as_array(&self) -> [u64; SkipReason::ALL.len()] {
        self.0
    }

    pub fn from_array(counts: [u64; SkipReason::ALL.len()]) -> SkipCounts {
        SkipCounts(counts)
    }
}

/// "none skipped", or e.g. "3 skipped: 1 empty, 2 truncated".
impl fmt::Display for SkipCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.total() == 0 {
            return f.write_str("none skipped");
        }
        write!(f, "{} skipped:", self.total())?;
        let mut sep = " ";
        for reason in SkipReason::ALL.into_iter().filter(|&r| self.get(r) > 0) {
            write!(f, "{sep}{} {reason}", self.get(reason))?;
            sep = ", ";
        }
        Ok(())
    }
}

/// The decoder limits: see [`MAX_SIDE`] and [`MAX_DECODED_BYTES`].
fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    limits
}

// ANCHOR: decode_image
/// Decodes the image in `bytes` and resizes it to `size x size` RGB: `[size, size, 3]` bytes,
/// row by row (HWC).
///
/// The format comes from the content (a PNG named `.jpg` is a PNG). Grayscale, CMYK and images
/// with alpha become RGB (alpha is dropped). The resize is [`resize_rgb`], Pillow's bilinear
/// filter: a large photo is averaged rather than sampled. The aspect ratio is not kept: the
/// photo is squeezed into the square, as the PyTorch reference does.
pub fn decode_image(bytes: &[u8], size: u32) -> Result<Vec<u8>, SkipReason> {
    decode_image_to(bytes, size, size)
}

/// [`decode_image`] to `width x height` (`[height, width, 3]` bytes), for a network trained on
/// images that are not square.
pub fn decode_image_to(bytes: &[u8], width: u32, height: u32) -> Result<Vec<u8>, SkipReason> {
    if bytes.is_empty() {
        return Err(SkipReason::Empty);
    }
    let mut reader = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(|_| SkipReason::Corrupt)?;
    let format = reader.format().ok_or(SkipReason::NotAnImage)?;
    if format == ImageFormat::Jpeg && !jpeg_reaches_end(bytes) {
        return Err(SkipReason::Truncated);
    }
    reader.limits(limits()); // checked against the header before the pixels are allocated
    let image = reader.decode().map_err(|e| reason_for(&e))?;
    let (source_width, source_height) = (image.width() as usize, image.height() as usize);
    let rgb = image.into_rgb8().into_raw();
    Ok(resize_rgb(&rgb, source_width, source_height, width as usize, height as usize))
}
// ANCHOR_END: decode_image

/// [`decode_image`] of the file at `path`. Never panics: a decoder that panics on a hostile file
/// makes that file `Corrupt`.
pub fn decode_file(path: &Path, size: u32) -> Result<Vec<u8>, SkipReason> {
    decode_file_to(path, size, size)
}

/// [`decode_file`] to `width x height`, as [`decode_image_to`].
pub fn decode_file_to(path: &Path, width: u32, height: u32) -> Result<Vec<u8>, SkipReason> {
    let len = std::fs::metadata(path).map_err(|_| SkipReason::Unreadable)?.len();
    if len > MAX_FILE_BYTES {
        return Err(SkipReason::TooLarge);
    }
    let bytes = std::fs::read(path).map_err(|_| SkipReason::Unreadable)?;
    std::panic::catch_unwind(|| decode_image_to(&bytes, width, height)).unwrap_or(Err(SkipReason::Corrupt))
}

fn reason_for(error: &ImageError) -> SkipReason {
    match error {
        ImageError::Limits(_) => SkipReason::TooLarge,
        ImageError::Unsupported(_) => SkipReason::Unsupported,
        ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => SkipReason::Truncated,
        _ => SkipReason::Corrupt,
    }
}

// ANCHOR: jpeg_reaches_end
/// True if the JPEG in `bytes` gets to its end-of-image marker (`FF D9`).
///
/// The JPEG decoder, like a web browser, paints a truncated photo grey from where the data
/// stops; we would rather skip it, as PIL does. A JPEG is a list of segments, each a marker
/// `FF xx` and (for most markers) a big-endian length; the compressed pixels that follow a
/// start-of-scan segment contain `FF` only as `FF 00` (a stuffed byte) or `FF D0..D7` (restart
/// markers). Walking the segments by their lengths, rather than searching for `FF D9`, steps
/// over the thumbnail that cameras embed in their EXIF segment, which has its own end marker.
pub fn jpeg_reaches_end(bytes: &[u8]) -> bool {
    let mut i = 2; // after the start-of-image marker FF D8
    while i + 1 < bytes.len() {
        if bytes[i] != 0xFF {
            i += 1; // compressed data (or junk between segments, which decoders tolerate)
            continue;
        }
        match bytes[i + 1] {
            0xD9 => return true,                 // end of image
            0xFF => i += 1,                      // fill byte before a marker
            0x00 | 0x01 | 0xD0..=0xD7 => i += 2, // stuffed byte, TEM, restart marker: no length
            _ if i + 3 >= bytes.len() => return false,
            _ => i += 2 + usize::from(u16::from_be_bytes([bytes[i + 2], bytes[i + 3]])), // a segment
        }
    }
    false
}
// ANCHOR_END: jpeg_reaches_end
