//! The element-wise activations a dense layer applies, and their codes: the
//! `act` field of `DenseArgs`, matched by the `ACT_*` constants in
//! `shaders/dense.wgsl` (tests/shaders.rs checks that they agree).

use serde::{Deserialize, Serialize};

/// Element-wise activation applied after a dense layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    #[default]
    Identity,
    Relu,
    Tanh,
    Sigmoid,
}

impl Activation {
    /// Every activation, in code order.
    pub const ALL: [Activation; 4] = [
        Activation::Identity,
        Activation::Relu,
        Activation::Tanh,
        Activation::Sigmoid,
    ];

    /// The code shared with the WGSL shaders (`ACT_*` constants in `shaders/dense.wgsl`).
    pub const fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Relu => 1,
            Activation::Tanh => 2,
            Activation::Sigmoid => 3,
        }
    }
}
