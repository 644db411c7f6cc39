//! Reading and writing: config, data (npy/csv), weights.
//!
//! - [`config`]: the TOML run config, validated, paths resolved against its directory.
//! - [`npy`]: `.npy` arrays as f32.
//! - [`table`]: tables as string columns (a CSV file read whole, or a block of rows).
//! - [`table_blocks`]: CSV ([`csv_blocks`]) or Parquet ([`parquet`]) tables read a block of
//!   rows at a time, for data larger than memory.
//! - [`source`]: a table read in blocks and encoded by a fitted preprocessing, as a
//!   `data::DataSource`.
//! - [`preprocess`]: CSV cells → standardised / one-hot inputs and class labels, stored with a model.
//! - [`plot`]: the PNG figures of `tandem inspect` (allocation heatmap, task weights).
//! - [`dataset`]: a config's data loaded, validated and split into training and validation rows
//!   (the in-memory [`Dataset`] itself is `crate::data`'s).
pub mod config;
pub mod csv_blocks;
pub mod dataset;
pub mod npy;
pub mod npy_rows;
pub mod parquet;
pub mod plot;
pub mod preprocess;
pub mod source;
pub mod table;
pub mod table_blocks;
pub mod table_source;

pub use crate::data::{Dataset, Split};
pub use config::{
    AdamStyle, Combine, Config, DataConfig, EarlyStopping, FeatureSource, OptimizerConfig,
    OptimizerKind, TargetSource, TrainConfig, Weighting,
};
pub use dataset::{load_all, load_split, split_rows};
pub use preprocess::{
    FeatureTransform, Features, Preprocess, PreprocessFit, Standardize, TargetTransform,
};
pub use source::{open_split, SourceSplit};
pub use table::Table;
pub use table_blocks::{open_blocks, TableBlocks};
pub use table_source::TableSource;
