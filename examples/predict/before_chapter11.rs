//! Before chapter 11 there is no int8 network: `--int8` says so.
use simd_cnn::kernels::Kernels;
use simd_cnn::model::CatDogCnn;

pub enum Quantized {}

impl Quantized {
    pub fn new(_: &mut CatDogCnn, _: &Kernels, _: &[f32]) -> Result<Quantized, String> {
        Err("--int8 comes with chapter 11: build with --features ch11 (the default)".to_string())
    }

    pub fn predict_proba(&mut self, _: &Kernels, _: &[f32]) -> Vec<f32> {
        match *self {}
    }
}
