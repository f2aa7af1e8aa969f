use crate::tensor::Tensor;

// ANCHOR: param
/// A trainable tensor and the gradient of the loss with respect to it.
#[derive(Clone, Debug)]
pub struct Param {
    pub value: Tensor,
    pub grad: Tensor,
}
// ANCHOR_END: param

impl Param {
    pub fn new(value: Tensor) -> Self {
        let grad = Tensor::zeros(value.shape());
        Param { value, grad }
    }
}
