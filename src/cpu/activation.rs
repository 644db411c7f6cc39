//! The activation math the dense kernels fuse, as in `activate` and
//! `activate_grad` of shaders/dense.wgsl. `act` is an `Activation::code()`.

use crate::kernel::Activation;

const RELU: u32 = Activation::Relu.code();
const TANH: u32 = Activation::Tanh.code();
const SIGMOID: u32 = Activation::Sigmoid.code();

/// act(z); any other code (identity) returns z.
pub fn activate(z: f32, act: u32) -> f32 {
    match act {
        RELU => z.max(0.0),
        TANH => z.tanh(),
        SIGMOID => 1.0 / (1.0 + (-z).exp()),
        _ => z,
    }
}

/// act'(z), written in terms of the output y = act(z).
pub fn activate_grad(y: f32, act: u32) -> f32 {
    match act {
        RELU => {
            if y > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        TANH => 1.0 - y * y,
        SIGMOID => y * (1.0 - y),
        _ => 1.0,
    }
}
