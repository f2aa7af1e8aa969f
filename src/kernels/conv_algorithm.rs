//! Chapter 10: which algorithm the 3x3 convolutions take, direct or Winograd, chosen through the
//! kernel table so that the layers and the network do not change.
//!
//! [`Kernels::for_isa_with`] returns the instruction set's table with the convolutions of the
//! chosen algorithm. The Winograd table takes F(4x4, 3x3) for the forward and backward-input
//! passes of every convolution with at least [`WINOGRAD_MIN_CHANNELS`] input channels and the
//! direct kernel for the others (conv1 and its 3 colour channels); the weight gradient stays
//! direct. The tables exist from chapter 10 (feature `ch10`) on x86-64, for SSE, AVX2 and
//! AVX-512.

use super::isa::{Isa, IsaError};
use super::table::{Kernels, winograd_tables};
use std::str::FromStr;

// ANCHOR: conv_algorithm
/// How the 3x3 convolutions are computed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum ConvAlgorithm {
    /// The register-tiled direct convolution of chapters 4-6.
    #[default]
    Direct,
    /// Winograd's F(4x4, 3x3) for forward and backward-input where it pays (chapter 10).
    Winograd,
}

/// The Winograd tile, for the tables that take it for every convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WinogradSize {
    /// F(2x2, 3x3): 16 multiplications for 36.
    F2,
    /// F(4x4, 3x3): 36 multiplications for 144.
    F4,
}

/// The fewest input channels for which the Winograd table leaves the direct kernel: with 3 (conv1)
/// the transforms cost more than the products they save.
pub const WINOGRAD_MIN_CHANNELS: usize = 16;
// ANCHOR_END: conv_algorithm

/// Whether the Winograd table takes F(4x4, 3x3) for a convolution of `c_in` input channels.
pub fn winograd_pays(c_in: usize) -> bool {
    c_in >= WINOGRAD_MIN_CHANNELS
}

/// The Winograd kernel tables of one instruction set.
pub(crate) struct WinogradTables {
    /// F(4x4) where [`winograd_pays`], direct elsewhere.
    pub(crate) chosen: Kernels,
    /// F(2x2) for every convolution.
    pub(crate) f2: Kernels,
    /// F(4x4) for every convolution.
    pub(crate) f4: Kernels,
}

/// Why a table with the asked convolutions cannot run here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConvAlgorithmError {
    #[error("{0}")]
    Isa(#[from] IsaError),
    #[error(
        "Winograd convolutions come with the sse, avx2 and avx512 kernels of chapter 10 (x86-64, feature `ch10` or later); this build has none for {isa}"
    )]
    NoWinograd { isa: Isa },
    #[error("unknown convolution algorithm '{name}': expected direct or winograd")]
    UnknownName { name: String },
}

impl ConvAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            ConvAlgorithm::Direct => "direct",
            ConvAlgorithm::Winograd => "winograd",
        }
    }
}

impl ConvAlgorithm {
    /// The convolutions a run takes when it does not choose: Winograd's where `isa` has them
    /// (chapter 10 measured them faster, with the same accuracy), the direct ones elsewhere.
    pub fn fastest_for(isa: Isa) -> ConvAlgorithm {
        if winograd_tables(isa).is_some() { ConvAlgorithm::Winograd } else { ConvAlgorithm::Direct }
    }

    /// Whether this build has the algorithm's kernels for some instruction set (Winograd's come
    /// with chapter 10 on x86-64).
    pub fn is_compiled(self) -> bool {
        match self {
            ConvAlgorithm::Direct => true,
            ConvAlgorithm::Winograd => Isa::ALL.into_iter().any(|isa| winograd_tables(isa).is_some()),
        }
    }
}

impl std::fmt::Display for ConvAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ConvAlgorithm {
    type Err = ConvAlgorithmError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "direct" => Ok(ConvAlgorithm::Direct),
            "winograd" => Ok(ConvAlgorithm::Winograd),
            _ => Err(ConvAlgorithmError::UnknownName { name: s.to_string() }),
        }
    }
}

// ANCHOR: for_isa_with
impl Kernels {
    /// The table for `isa` with the convolutions of `conv`, or why it cannot run here.
    pub fn for_isa_with(isa: Isa, conv: ConvAlgorithm) -> Result<&'static Kernels, ConvAlgorithmError> {
        let direct = Kernels::for_isa(isa)?;
        match conv {
            ConvAlgorithm::Direct => Ok(direct),
            ConvAlgorithm::Winograd => Ok(&winograd_tables(isa).ok_or(ConvAlgorithmError::NoWinograd { isa })?.chosen),
        }
    }

    /// The table for `isa` that takes Winograd's `size` for the forward and backward-input pass
    /// of every convolution, whatever its channels: for tests and measurements.
    pub fn winograd_everywhere(isa: Isa, size: WinogradSize) -> Result<&'static Kernels, ConvAlgorithmError> {
        Kernels::for_isa(isa)?;
        let tables = winograd_tables(isa).ok_or(ConvAlgorithmError::NoWinograd { isa })?;
        Ok(match size {
            WinogradSize::F2 => &tables.f2,
            WinogradSize::F4 => &tables.f4,
        })
    }

    /// Which convolutions this table runs.
    pub fn conv_algorithm(&self) -> ConvAlgorithm {
        match winograd_tables(self.isa) {
            Some(t) if [&t.chosen, &t.f2, &t.f4].into_iter().any(|k| std::ptr::eq(k, self)) => ConvAlgorithm::Winograd,
            _ => ConvAlgorithm::Direct,
        }
    }
}
// ANCHOR_END: for_isa_with
