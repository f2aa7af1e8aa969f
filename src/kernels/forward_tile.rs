//! Chapter 7: the tile of fc1's AVX-512 forward pass, chosen by timing.
//!
//! The L1's ways suggest a bound on the rows of the batch-16 tile (one line per row in one set,
//! `rows_for_l1`), but they do not pick the fastest: on two Xeons with a 12-way L1 the rule's
//! 11 rows were the slowest tile and 4 the fastest, and on a Zen 4 with an 8-way L1 the 8-row
//! tile, one above the rule's 7, was the fastest. So the first call of the AVX-512 forward pass
//! at batch 16 or less whose rows are a page or more apart (fc1's are 128 KB apart, on any
//! number of threads) runs every tile on its own inputs, on its own thread while any other
//! thread waits, and keeps the fastest; every later call with rows that far apart
//! uses it, whatever its shape (the cat/dog network has one such layer). Every tile sums each
//! output's products in feature order, so the choice changes the speed and never a bit of the
//! result: training stays reproducible on any machine.
//!
//! [`forward_tile`] says what was chosen and how long each candidate took (the report prints
//! it); [`ask_forward_tile_rows`] fixes the rows before the first call instead (the report's
//! `--fc1-rows`, for measuring one tile against another).

use std::sync::OnceLock;

// ANCHOR: tile_rows
/// The rows per tile the forward pass has a kernel for, the candidates of the timing: chapter
/// 6's 12, the L1 rule's 11 and 7 for 12- and 8-way L1s, 8, and AVX2's 4.
pub const TILE_ROWS: [usize; 5] = [12, 11, 8, 7, 4];

/// The tile the forward pass uses for weights whose rows are a page or more apart, and how it
/// was chosen.
#[derive(Clone, Debug, PartialEq)]
pub struct ForwardTile {
    /// Rows of the weight matrix per tile, one of [`TILE_ROWS`].
    pub rows: usize,
    /// Each candidate's rows and its fastest time in seconds, fastest first; empty when the
    /// rows were asked for with [`ask_forward_tile_rows`].
    pub timings: Vec<(usize, f64)>,
}
// ANCHOR_END: tile_rows

static CHOICE: OnceLock<ForwardTile> = OnceLock::new();

/// The tile asked for with [`ask_forward_tile_rows`], or else the one the first AVX-512 forward
/// pass with rows a page apart chose; `None` before either (and always on a CPU or build
/// without chapter 7's AVX-512 table, unless asked).
pub fn forward_tile() -> Option<&'static ForwardTile> {
    CHOICE.get()
}

/// Why [`ask_forward_tile_rows`] refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TileRowsError {
    #[error("there is no forward tile of {0} rows; the tiles have {rows:?} rows", rows = TILE_ROWS)]
    NoSuchTile(usize),
    #[error("fc1's forward tile is already chosen ({0} rows); ask before the first training step")]
    AlreadyChosen(usize),
}

/// Makes every later AVX-512 forward pass with rows a page apart use tiles of `rows` rows,
/// without timing the others. Must be called before the first such pass.
pub fn ask_forward_tile_rows(rows: usize) -> Result<(), TileRowsError> {
    if !TILE_ROWS.contains(&rows) {
        return Err(TileRowsError::NoSuchTile(rows));
    }
    let chosen = CHOICE.get_or_init(|| ForwardTile { rows, timings: Vec::new() });
    match chosen.rows == rows && chosen.timings.is_empty() {
        true => Ok(()),
        false => Err(TileRowsError::AlreadyChosen(chosen.rows)),
    }
}

/// The choice, made by `time` the first time it is needed; the other threads wait for it.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) fn chosen_or(time: impl FnOnce() -> ForwardTile) -> &'static ForwardTile {
    CHOICE.get_or_init(time)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tiles_that_exist_can_be_asked_for() {
        assert_eq!(ask_forward_tile_rows(5), Err(TileRowsError::NoSuchTile(5)));
        assert_eq!(ask_forward_tile_rows(0), Err(TileRowsError::NoSuchTile(0)));
        assert_eq!(ask_forward_tile_rows(usize::MAX), Err(TileRowsError::NoSuchTile(usize::MAX)));
    }
}
