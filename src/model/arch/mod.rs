//! The architectures tandem builds, one file each, composed from `blocks/`
//! over the vocabulary of `graph.rs`.
pub mod ensemble;
pub mod mmoe;
pub mod ple;
pub mod shared;
