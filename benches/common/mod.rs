//! What both benchmark files need: the instruction sets to run, and whether criterion is
//! measuring or only testing.

use simd_cnn::kernels::{Isa, Kernels};

/// The kernel tables of every instruction set available here, and a line on stderr for each
/// one that is not (not compiled in, not supported by this CPU, or above `SIMD_CNN_MAX_ISA`).
pub fn available_kernels() -> Vec<&'static Kernels> {
    Isa::ALL
        .into_iter()
        .filter_map(|isa| match Kernels::for_isa(isa) {
            Ok(k) => Some(k),
            Err(e) => {
                eprintln!("skipping {isa}: {e}");
                None
            }
        })
        .collect()
}

/// Whether criterion is measuring (`cargo bench` passes `--bench`) rather than running each
/// benchmark once as a test (`cargo test --benches`, or `cargo bench -- --test`).
pub fn measuring() -> bool {
    let args: Vec<String> = std::env::args().collect();
    args.iter().any(|a| a == "--bench") && !args.iter().any(|a| a == "--test" || a == "--list")
}
