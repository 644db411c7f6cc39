//! How the training rows reach the device, and each epoch's row order.
//!
//! - **Resident**: every row is uploaded once (read from the source a block
//!   at a time, so the host never holds a second copy) into chunks that each
//!   fit one buffer binding; each epoch writes one row order.
//! - **Streamed**: the rows are cut into shards of `shard_rows` (a whole
//!   number of batches) and read again every epoch. The device holds one
//!   shard; a reader thread reads and decodes the next shard while the device
//!   trains on this one, and the upload of a shard is queued behind the steps
//!   of the one before (queue writes are ordered after earlier submissions),
//!   so one device slot serves. Shuffling permutes the shards' order each
//!   epoch and the rows within each shard (a shuffle window of one shard);
//!   without shuffling, a streamed epoch visits the same batches in the same
//!   order as a resident one.
//!
//! Either way the row order buffer is a ring (`batch_gather` reads it modulo
//! its length): a streamed epoch writes each shard's part of it before the
//! shard's steps.

pub mod choose;
mod prefetch;

pub use choose::{decide, Decision};

use super::step::counts::{LabelCounts, StepCounts};
use super::step::device_rows::DeviceRows;
use super::step::gather;
use crate::backend::Backend;
use crate::data::DataSource;
use crate::model::ModelSpec;
use crate::ops::PAD_INDEX;
use crate::Result;
use prefetch::Prefetch;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::borrow::Cow;

/// Rows read per block while uploading resident data.
const UPLOAD_BLOCK_ROWS: usize = 65_536;

/// The rows of one epoch, in the order the steps see them.
#[derive(Debug, Clone)]
pub enum EpochPlan {
    /// Every row on the device: the epoch's order, padded to whole batches.
    Resident(Vec<u32>),
    /// The shards in visiting order, each with the seed of its rows' shuffle
    /// (None: in file order).
    Streamed(Vec<(usize, Option<u64>)>),
}

/// One part of an epoch: its row order (indices into the rows on the device,
/// padded to whole batches) and each of its steps' label counts.
pub struct Segment<'p> {
    /// Resident: the plan's own order (not copied each epoch).
    pub order: Cow<'p, [u32]>,
    pub counts: Vec<StepCounts>,
}

/// Where the training rows live.
pub enum Feed {
    Resident {
        rows: DeviceRows,
        counts: LabelCounts,
    },
    Streamed(Box<Streamed>),
}

/// A streamed feed: the source (behind its reader thread), the shard on the
/// device, and what a shard's labels need (bagging masks, member counts).
pub struct Streamed {
    reader: Prefetch,
    pub rows: DeviceRows,
    total_rows: usize,
    shard_rows: usize,
    masks: Option<Vec<Vec<bool>>>,
    stacked: Vec<usize>,
    spec: ModelSpec,
}

/// What the trainer needs to build a feed.
pub struct FeedShape<'a> {
    pub spec: &'a ModelSpec,
    /// The graph's members per task (their labels count that often).
    pub stacked: &'a [usize],
    pub batch: usize,
    pub seed: u64,
    /// Rows per chunk (each chunk's tensors within one binding).
    pub chunk_rows: usize,
}

impl Feed {
    /// Uploads every row of `source`, a block at a time.
    pub fn resident(
        b: &mut dyn Backend,
        source: &mut dyn DataSource,
        shape: &FeedShape,
    ) -> Result<Feed> {
        let n = source.rows();
        let widths = gather::device_label_widths(shape.spec);
        let rows = DeviceRows::alloc(b, n, source.inputs(), &widths, shape.chunk_rows, "dataset")?;
        let masks = gather::bag_masks(shape.spec, n, shape.seed);
        let mut present = vec![Vec::with_capacity(n); widths.len()];
        let mut at = 0;
        while at < n {
            let len = UPLOAD_BLOCK_ROWS.min(n - at);
            let block = source.read(at, len)?;
            let dev = gather::device_block(shape.spec, &block, masks.as_deref(), at);
            rows.write(b, at, &block.features, &dev.labels)?;
            for (all, p) in present.iter_mut().zip(dev.present) {
                all.extend(p);
            }
            at += len;
        }
        let counts = LabelCounts::new(present, shape.stacked, masks.is_some());
        Ok(Feed::Resident { rows, counts })
    }

    /// A device slot of `shard_rows` rows (a whole number of batches) for
    /// `source`, read shard by shard every epoch.
    pub fn streamed(
        b: &mut dyn Backend,
        source: Box<dyn DataSource>,
        shard_rows: usize,
        shape: &FeedShape,
    ) -> Result<Feed> {
        let total_rows = source.rows();
        let shard_rows = shard_rows.clamp(1, total_rows.max(1));
        let widths = gather::device_label_widths(shape.spec);
        let rows = DeviceRows::alloc(
            b,
            shard_rows,
            source.inputs(),
            &widths,
            shape.chunk_rows,
            "shard",
        )?;
        Ok(Feed::Streamed(Box::new(Streamed {
            masks: gather::bag_masks(shape.spec, total_rows, shape.seed),
            reader: Prefetch::spawn(source),
            rows,
            total_rows,
            shard_rows,
            stacked: shape.stacked.to_vec(),
            spec: shape.spec.clone(),
        })))
    }

    /// The rows on the device.
    pub fn device_rows(&self) -> &DeviceRows {
        match self {
            Feed::Resident { rows, .. } => rows,
            Feed::Streamed(s) => &s.rows,
        }
    }

    /// Length of the row order ring on the device: the epoch's whole order
    /// when resident, two shards' when streamed, in steps of `batch` global
    /// rows of which the device holds `device_batch` (a rank's part).
    pub fn order_len(&self, steps_per_epoch: usize, batch: usize, device_batch: usize) -> usize {
        match self {
            Feed::Resident { .. } => steps_per_epoch * device_batch,
            Feed::Streamed(s) => 2 * s.shard_rows.div_ceil(batch) * device_batch,
        }
    }

    /// The next epoch's plan, drawn from `rng` when `shuffle`.
    pub fn plan(
        &self,
        rows: usize,
        order_len: usize,
        shuffle: bool,
        rng: &mut ChaCha8Rng,
    ) -> EpochPlan {
        match self {
            Feed::Resident { .. } => {
                let mut order: Vec<u32> = (0..rows as u32).collect();
                if shuffle {
                    order.shuffle(rng);
                }
                order.resize(order_len, PAD_INDEX);
                EpochPlan::Resident(order)
            }
            Feed::Streamed(s) => {
                let mut shards: Vec<usize> = (0..s.total_rows.div_ceil(s.shard_rows)).collect();
                if shuffle {
                    shards.shuffle(rng);
                }
                let plan = shards
                    .into_iter()
                    .map(|k| (k, shuffle.then(|| rng.random::<u64>())))
                    .collect();
                EpochPlan::Streamed(plan)
            }
        }
    }

    /// Steps in each segment of `plan`.
    pub fn segment_steps(&self, plan: &EpochPlan, batch: usize) -> Vec<usize> {
        match (self, plan) {
            (_, EpochPlan::Resident(order)) => vec![order.len() / batch],
            (Feed::Streamed(s), EpochPlan::Streamed(shards)) => shards
                .iter()
                .map(|&(k, _)| s.shard_len(k).div_ceil(batch))
                .collect(),
            (Feed::Resident { .. }, EpochPlan::Streamed(_)) => Vec::new(),
        }
    }

    /// Segment `i` of `plan`: a streamed shard is read (or taken from the
    /// reader) and, when `upload`, written to the device; the next shard of
    /// the plan is then asked for. Without `upload` only its order and
    /// counts are made (a resumed epoch's shards done before the stop).
    pub fn segment<'p>(
        &mut self,
        b: &mut dyn Backend,
        plan: &'p EpochPlan,
        i: usize,
        batch: usize,
        upload: bool,
    ) -> Result<Segment<'p>> {
        match (self, plan) {
            (Feed::Resident { counts, .. }, EpochPlan::Resident(order)) => Ok(Segment {
                counts: counts.per_step(order, batch),
                order: Cow::Borrowed(order),
            }),
            (Feed::Streamed(s), EpochPlan::Streamed(shards)) => {
                let (k, seed) = shards[i];
                let seg = s.shard(b, k, seed, batch, upload)?;
                if let Some(&(next, _)) = shards.get(i + 1) {
                    s.reader.request(next * s.shard_rows, s.shard_len(next));
                }
                Ok(seg)
            }
            _ => Err(crate::Error::Invalid(
                "an epoch plan of the other kind of feed".into(),
            )),
        }
    }
}

impl Streamed {
    /// Rows in shard `k` (the last may be short).
    fn shard_len(&self, k: usize) -> usize {
        self.shard_rows.min(self.total_rows - k * self.shard_rows)
    }

    fn shard(
        &mut self,
        b: &mut dyn Backend,
        k: usize,
        seed: Option<u64>,
        batch: usize,
        upload: bool,
    ) -> Result<Segment<'static>> {
        let spec = &self.spec;
        let (first, len) = (k * self.shard_rows, self.shard_len(k));
        let block = self.reader.take(first, len)?;
        let dev = gather::device_block(spec, &block, self.masks.as_deref(), first);
        if upload {
            self.rows.write(b, 0, &block.features, &dev.labels)?;
        }
        let mut order: Vec<u32> = (0..len as u32).collect();
        if let Some(seed) = seed {
            order.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
        }
        order.resize(len.div_ceil(batch) * batch, PAD_INDEX);
        let counts = LabelCounts::new(dev.present, &self.stacked, self.masks.is_some());
        Ok(Segment {
            counts: counts.per_step(&order, batch),
            order: Cow::Owned(order),
        })
    }
}
