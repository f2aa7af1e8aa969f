//! Chapter 11: `predict --int8`, the network quantised to int8 beside the fp32 one.
use simd_cnn::kernels::int8::Int8Kernels;
use simd_cnn::kernels::{Isa, Kernels};
use simd_cnn::model::{CatDogCnn, Int8Network};

/// The int8 network and the kernels it runs on.
pub struct Quantized {
    net: Int8Network,
    kernels: &'static Int8Kernels,
}

impl Quantized {
    /// `model` quantised, its activation ranges calibrated on `photos` (NHWC, values in [0, 1]).
    /// It runs on VNNI when the fp32 table `k` is AVX-512's and the CPU has VNNI, else on the
    /// scalar int8 kernels (with a note): never above the instruction set chosen for fp32.
    pub fn new(model: &mut CatDogCnn, k: &Kernels, photos: &[f32]) -> Result<Quantized, String> {
        let net = Int8Network::from_model(model, k, photos).map_err(|e| e.to_string())?;
        let kernels = match Int8Kernels::for_isa(k.isa()) {
            Ok(kernels) => kernels,
            Err(e) => {
                eprintln!("note: {e}; int8 runs on the slow scalar kernels");
                Int8Kernels::for_isa(Isa::Scalar).map_err(|e| e.to_string())?
            }
        };
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
