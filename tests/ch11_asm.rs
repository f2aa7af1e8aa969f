//! Chapter 11: the hand-written AVX-512 convolution tile against the scalar kernel on awkward
//! shapes, and against the compiler's tile, which does the same multiply-adds in the same order
//! and so must give the same bits.
mod common;

use common::{compare, rand_vec, same_bits, sum_atol};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use simd_cnn::kernels::{Conv2dShape, Isa, Kernels};
use simd_cnn::tensor::AlignedVec;

/// The asm table, or `None` (with a printed line) where the CPU has no AVX-512; a failure if
/// `SIMD_CNN_REQUIRE_ISA` asks for AVX-512.
fn asm_table() -> Option<&'static Kernels> {
    match Kernels::avx512_asm() {
        Ok(k) => Some(k),
        Err(why) => {
            let required = std::env::var(common::REQUIRE_ISA_ENV).ok().and_then(|v| v.parse::<Isa>().ok());
            assert!(required.is_none_or(|r| r < Isa::Avx512), "the asm table cannot run: {why}");
            println!("skipping: {why}");
            None
        }
    }
}

const WIDTHS: [usize; 10] = [1, 2, 3, 7, 8, 9, 15, 17, 33, 40];
/// Output channels of 64 and more take the 6 x 4 tile; the others check that the table still
/// works where the tile is not used.
const C_OUT: [usize; 8] = [1, 17, 32, 63, 64, 65, 128, 129];
const C_IN: [usize; 7] = [1, 3, 4, 5, 16, 33, 64];

fn shapes() -> impl Strategy<Value = (Conv2dShape, u64)> {
    (
        1..=2usize,
        1..=5usize,
        prop::sample::select(&WIDTHS[..]),
        prop::sample::select(&C_IN[..]),
        prop::sample::select(&C_OUT[..]),
        any::<u64>(),
    )
        .prop_map(|(n, h, w, c_in, c_out, seed)| (Conv2dShape { n, h, w, c_in, c_out }, seed))
}

#[test]
fn asm_conv2d_forward_matches_scalar_and_the_compilers_tile() {
    let Some(asm) = asm_table() else { return };
    assert!(asm.is_asm() && asm.isa() == Isa::Avx512);
    let compiled = Kernels::for_isa(Isa::Avx512).unwrap();
    assert!(!compiled.is_asm());
    let scalar = Kernels::scalar();
    let mut runner = TestRunner::new(Config { cases: 150, failure_persistence: None, ..Config::default() });
    let result = runner.run(&shapes(), |(s, seed)| {
        let (x, w, b) =
            (rand_vec(s.input_len(), seed), rand_vec(s.weight_len(), seed ^ 1), rand_vec(s.c_out, seed ^ 2));
        // The same weights on a cache line, which the pass reads in place when the output
        // channels fill whole vectors (`w` starts wherever the allocator put it).
        let mut aligned = AlignedVec::zeros(w.len());
        aligned.copy_from_slice(&w);
        for relu in [false, true] {
            let mut got = vec![f32::NAN; s.output_len()];
            let mut in_place = vec![f32::NAN; s.output_len()];
            asm.conv2d_forward(&s, &x, &aligned, &b, &mut in_place, relu);
            let (mut want, mut compiler) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
            asm.conv2d_forward(&s, &x, &w, &b, &mut got, relu);
            scalar.conv2d_forward(&s, &x, &w, &b, &mut want, relu);
            compiled.conv2d_forward(&s, &x, &w, &b, &mut compiler, relu);
            compare(&format!("asm conv2d_forward {s:?} relu {relu}"), &got, &want, sum_atol(9 * s.c_in), 1e-4)
                .map_err(TestCaseError::fail)?;
            prop_assert!(same_bits(&got, &compiler), "asm and compiler tiles differ on {s:?}");
            prop_assert!(same_bits(&got, &in_place), "asm tiles differ with the weights on a cache line on {s:?}");
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
