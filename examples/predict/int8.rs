//! Chapter 11: `predict --int8`, the network quantised to int8 beside the fp32 one.
use simd_cnn::kernels::Kernels;
use simd_cnn::kernels::int8::Int8Kernels;
use simd_cnn::model::{CatDogCnn, Int8Network};

/// The int8 network and the kernels it runs on.
pub struct Quantized {
    net: Int8Network,
    kernels: &'static Int8Kernels,
}

impl Quantized {
    /// `model` quantised, its activation ranges calibrated on `photos` (NHWC, values in [0, 1]),
    /// on VNNI where the CPU has it, else on the scalar int8 kernels (with a note).
    pub fn new(model: &mut CatDogCnn, k: &Kernels, photos: &[f32]) -> Result<Quantized, String> {
        let net = Int8Network::from_model(model, k, photos).map_err(|e| e.to_string())?;
        let kernels = Int8Kernels::best();
        if kernels.isa() != simd_cnn::kernels::Isa::Avx512 {
            eprintln!(
                "note: no AVX-512 VNNI here (or SIMD_CNN_MAX_ISA below avx512): int8 runs on the slow scalar kernels"
            );
        }
        Ok(Quantized { net, kernels })
    }

    /// The probability of "dog" for each image of `x`.
    pub fn predict_proba(&mut self, k: &Kernels, x: &[f32]) -> Vec<f32> {
        let logits = self.net.forward(self.kernels, x);
        let mut p = vec![0.0; logits.len()];
        k.sigmoid_forward(logits, &mut p);
        p
    }
}
