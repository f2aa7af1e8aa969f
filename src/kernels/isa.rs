//! Which instruction set to run, and whether this CPU has it.

use std::fmt;
use std::str::FromStr;

/// The environment variable that caps the instruction set everywhere (tests, benches,
/// examples): `SIMD_CNN_MAX_ISA=sse cargo test` runs only the scalar and SSE paths.
pub const MAX_ISA_ENV: &str = "SIMD_CNN_MAX_ISA";

// ANCHOR: isa
/// An instruction-set level. Each level is a superset of the one before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Plain Rust; whatever the compiler makes of it for the baseline target.
    Scalar,
    /// SSE2: 16 registers of 128 bits, 4 floats each. Every x86-64 CPU has it.
    Sse,
    /// AVX2 and FMA: 16 registers of 256 bits, 8 floats, fused multiply-add.
    Avx2,
    /// AVX-512F: 32 registers of 512 bits, 16 floats, and mask registers.
    Avx512,
}
// ANCHOR_END: isa

impl Isa {
    pub const ALL: [Isa; 4] = [Isa::Scalar, Isa::Sse, Isa::Avx2, Isa::Avx512];

    /// The name used on command lines, in benchmark ids and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Sse => "sse",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// The CPU features this level needs, as `is_x86_feature_detected!` spells them.
    pub fn cpu_features(self) -> &'static [&'static str] {
        match self {
            Isa::Scalar => &[],
            Isa::Sse => &["sse2"],
            Isa::Avx2 => &["avx2", "fma"],
            Isa::Avx512 => &["avx512f"],
        }
    }

    /// Floats per vector register.
    pub fn lanes(self) -> usize {
        match self {
            Isa::Scalar => 1,
            Isa::Sse => 4,
            Isa::Avx2 => 8,
            Isa::Avx512 => 16,
        }
    }

    /// The chapter feature that brings this level's kernels into the crate.
    pub fn feature(self) -> &'static str {
        match self {
            Isa::Scalar => "ch2",
            Isa::Sse => "ch4",
            Isa::Avx2 => "ch5",
            Isa::Avx512 => "ch6",
        }
    }

    /// Whether this build contains kernels for the level: the chapter's feature is on and the
    /// target is x86-64.
    pub fn is_compiled(self) -> bool {
        match self {
            Isa::Scalar => true,
            Isa::Sse => cfg!(all(target_arch = "x86_64", feature = "ch4")),
            Isa::Avx2 => cfg!(all(target_arch = "x86_64", feature = "ch5")),
            Isa::Avx512 => cfg!(all(target_arch = "x86_64", feature = "ch6")),
        }
    }

    /// Whether the CPU running this program has the instructions (and the operating system
    /// saves their registers).
    pub fn cpu_supports(self) -> bool {
        cpu_supports(self)
    }

    /// The highest level this CPU supports, whatever the build or the cap.
    pub fn cpu_best() -> Isa {
        Isa::ALL.into_iter().rev().find(|isa| isa.cpu_supports()).unwrap_or(Isa::Scalar)
    }

    /// The cap set by `SIMD_CNN_MAX_ISA`, or `Avx512` (no cap) when it is unset.
    pub fn cap() -> Result<Isa, IsaError> {
        match std::env::var(MAX_ISA_ENV) {
            Ok(value) if !value.trim().is_empty() => value.parse().map_err(|_| IsaError::BadCap { value }),
            _ => Ok(Isa::Avx512),
        }
    }

    // ANCHOR: check
    /// `Ok` if kernels of this level can run here and now, else the reason they cannot.
    pub fn check(self) -> Result<(), IsaError> {
        if !self.is_compiled() {
            return Err(IsaError::NotCompiled { isa: self });
        }
        if !self.cpu_supports() {
            return Err(IsaError::NotSupported { isa: self, best: Isa::best_within(Isa::Avx512) });
        }
        let cap = Isa::cap()?;
        if self > cap {
            return Err(IsaError::AboveCap { isa: self, cap });
        }
        Ok(())
    }
    // ANCHOR_END: check

    pub fn is_available(self) -> bool {
        self.check().is_ok()
    }

    /// The highest level that is compiled in, supported by the CPU and within the cap.
    pub fn best() -> Result<Isa, IsaError> {
        Ok(Isa::best_within(Isa::cap()?))
    }

    /// Every level that can run here, from `Scalar` up.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|isa| isa.is_available()).collect()
    }

    fn best_within(cap: Isa) -> Isa {
        Isa::ALL
            .into_iter()
            .rev()
            .find(|&isa| isa <= cap && isa.is_compiled() && isa.cpu_supports())
            .unwrap_or(Isa::Scalar)
    }
}

#[cfg(target_arch = "x86_64")]
fn cpu_supports(isa: Isa) -> bool {
    match isa {
        Isa::Scalar => true,
        Isa::Sse => is_x86_feature_detected!("sse2"),
        Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        Isa::Avx512 => is_x86_feature_detected!("avx512f"),
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn cpu_supports(isa: Isa) -> bool {
    isa == Isa::Scalar
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Isa {
    type Err = IsaError;
    fn from_str(s: &str) -> Result<Isa, IsaError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "sse" | "sse2" => Ok(Isa::Sse),
            "avx2" => Ok(Isa::Avx2),
            "avx512" | "avx-512" | "avx512f" => Ok(Isa::Avx512),
            _ => Err(IsaError::UnknownName { name: s.to_string() }),
        }
    }
}

/// Why an instruction set cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsaError {
    #[error("unknown instruction set '{name}': expected scalar, sse, avx2 or avx512")]
    UnknownName { name: String },
    #[error("{MAX_ISA_ENV}='{value}' is not an instruction set: expected scalar, sse, avx2 or avx512")]
    BadCap { value: String },
    #[error(
        "{isa} kernels are not in this build: they need an x86-64 target (this one is {}) and feature `{}` (`cargo run --features {}` or any later chapter)",
        std::env::consts::ARCH,
        isa.feature(),
        isa.feature()
    )]
    NotCompiled { isa: Isa },
    #[error(
        "this CPU does not support {isa} (it needs {}); the best this build can run here is {best}",
        isa.cpu_features().join(" + ")
    )]
    NotSupported { isa: Isa, best: Isa },
    #[error("{isa} is above the cap {MAX_ISA_ENV}={cap}; unset the variable or raise it to run {isa}")]
    AboveCap { isa: Isa, cap: Isa },
}
