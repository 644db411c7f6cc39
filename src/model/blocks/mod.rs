//! Building blocks the architectures are composed of, each with its forward
//! and its backward side by side: task heads, gated mixes (softmax gates and
//! gated sums), mixtures of experts, and an ensemble's members and combiners.
pub mod combiner;
pub mod experts;
pub mod gate;
pub mod heads;
pub mod members;
