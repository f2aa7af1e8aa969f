//! Chapter 11: the precision of the products in the convolutions, fp32 or bf16, chosen through
//! the kernel table as chapter 10 chose the algorithm, so that the layers and the network do not
//! change.
//!
//! [`Kernels::for_isa_precision`] returns the table of an instruction set with the convolutions
//! of the chosen precision. The bf16 table exists only on x86-64 from chapter 11 (feature
//! `ch11`), only for AVX-512, and only runs on a CPU with AVX-512 BF16 (`vdpbf16ps`): Intel
//! from Cooper Lake and Sapphire Rapids, AMD from Zen 4. Elsewhere asking for it is a one-line
//! error.

use super::conv_algorithm::{ConvAlgorithm, ConvAlgorithmError};
use super::isa::{Isa, IsaError};
use super::table::{Kernels, bf16_table};
use std::str::FromStr;

// ANCHOR: precision
/// What the convolutions multiply.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// fp32 products and sums: the kernels of chapters 4 to 10.
    #[default]
    Fp32,
    /// Inputs and weights rounded to bf16 (8 significant bits) for the products, fp32 sums,
    /// fp32 outputs; the weights the optimiser updates stay fp32.
    Bf16,
}
// ANCHOR_END: precision

/// Why a table of the asked precision cannot run here.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrecisionError {
    #[error("{0}")]
    Isa(#[from] IsaError),
    #[error("{0}")]
    Conv(#[from] ConvAlgorithmError),
    #[error("bf16 needs the avx512 kernels: {0}")]
    NeedsAvx512(IsaError),
    #[error(
        "bf16 kernels come with the avx512 table of chapter 11 (x86-64, feature `ch11` or later); there are none for {isa}"
    )]
    NotCompiled { isa: Isa },
    #[error("this CPU has no AVX-512 BF16 (vdpbf16ps), which bf16 training needs; use --precision fp32")]
    NoCpuSupport,
    #[error("the bf16 kernels compute the convolutions directly; use --conv direct with --precision bf16")]
    NotWithWinograd,
    #[error("unknown precision '{name}': expected fp32 or bf16")]
    UnknownName { name: String },
}

impl Precision {
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
        }
    }

    /// Whether this build has kernels of this precision.
    pub fn is_compiled(self) -> bool {
        match self {
            Precision::Fp32 => true,
            Precision::Bf16 => bf16_table(Isa::Avx512).is_some(),
        }
    }

    /// Whether this build has the precision's kernels and this CPU (within `SIMD_CNN_MAX_ISA`)
    /// can run them.
    pub fn is_available(self) -> bool {
        Kernels::for_isa_precision(Isa::Avx512, ConvAlgorithm::Direct, self).is_ok()
    }
}

/// Whether the CPU has the AVX-512 BF16 instructions.
#[cfg(target_arch = "x86_64")]
pub fn cpu_has_bf16() -> bool {
    is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16")
}

/// Whether the CPU has the AVX-512 BF16 instructions.
#[cfg(not(target_arch = "x86_64"))]
pub fn cpu_has_bf16() -> bool {
    false
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Precision {
    type Err = PrecisionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "fp32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            _ => Err(PrecisionError::UnknownName { name: s.to_string() }),
        }
    }
}

// ANCHOR: for_isa_precision
impl Kernels {
    /// The table for `isa` with the convolutions of `conv` in `precision`, or why it cannot run
    /// here. bf16 needs `isa` to be avx512 (within the cap), the CPU to have AVX-512 BF16, and
    /// the direct convolutions.
    pub fn for_isa_precision(
        isa: Isa,
        conv: ConvAlgorithm,
        precision: Precision,
    ) -> Result<&'static Kernels, PrecisionError> {
        let fp32 = Kernels::for_isa_with(isa, conv)?;
        match precision {
            Precision::Fp32 => Ok(fp32),
            Precision::Bf16 => {
                // The avx512 table's refusal first (not compiled, not on this CPU, above the
                // cap): it says what to change.
                Isa::Avx512.check().map_err(PrecisionError::NeedsAvx512)?;
                let table = bf16_table(isa).ok_or(PrecisionError::NotCompiled { isa })?;
                if !cpu_has_bf16() {
                    return Err(PrecisionError::NoCpuSupport);
                }
                if conv != ConvAlgorithm::Direct {
                    return Err(PrecisionError::NotWithWinograd);
                }
                Ok(table)
            }
        }
    }

    /// What this table's convolutions multiply.
    pub fn precision(&self) -> Precision {
        match bf16_table(self.isa) {
            Some(t) if std::ptr::eq(t, self) => Precision::Bf16,
            _ => Precision::Fp32,
        }
    }
}
// ANCHOR_END: for_isa_precision
