//! Reading and writing: config, data (npy/csv), weights.
