//! Model description, parameters and the training graph.
pub mod spec;
