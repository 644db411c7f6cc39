//! How much each step's losses weigh in an epoch's means, known on the host.
//!
//! A task's step loss L_{s,j} is a masked mean over the c_{s,j} label elements
//! present in step s's batch (`multitask_loss_reduce`: Σ l / Σ count). So the
//! epoch mean that is consistent with it is
//!
//!   L̄_j = Σ_s c_{s,j}·L_{s,j} / Σ_s c_{s,j},
//!
//! the masked mean over every label element the epoch saw (at each step's
//! parameters). Without missing labels c_{s,j} is the step's rows (times the
//! label width), and L̄_j is the row-weighted mean LibMTL's loss meter keeps
//! (`(record * bs).sum() / bs.sum()`), which DWA's ratios and GradNorm's L(0)
//! read; a short last batch weighs by its rows, not as a full one. The
//! objective's epoch mean is weighted by the step's rows, as Keras' loss
//! tracker weights each batch by its size.
//!
//! The host knows each epoch's row order and the labels, so the counts need no
//! readback: a per-row count per task is computed once, and summed per step at
//! each epoch start.

use crate::model::TaskKind;
use crate::ops::PAD_INDEX;

/// Per task, how many label elements each training row contributes to the
/// task's loss (over every member that trains on it).
#[derive(Debug, Clone)]
pub struct LabelCounts {
    /// [T][N].
    per_row: Vec<Vec<u32>>,
}

/// One step's weights: its rows and, per task, its present label elements.
#[derive(Debug, Clone, PartialEq)]
pub struct StepCounts {
    pub rows: usize,
    pub labels: Vec<f32>,
}

/// Label elements the loss counts in one row's block of `values`: not missing
/// (NaN), and for a multiclass task a class index in [0, outputs).
pub fn present(kind: TaskKind, outputs: usize, values: &[f32]) -> u32 {
    let valid = |y: f32| match kind {
        TaskKind::Multiclass => !y.is_nan() && y >= 0.0 && (y as usize) < outputs,
        _ => !y.is_nan(),
    };
    values.iter().filter(|&&y| valid(y)).count() as u32
}

impl LabelCounts {
    /// `present[j][r]`: the present label elements in row r of task j's
    /// labels as on the device (with bagging, every member's block of the row,
    /// each read by its own member). Without bagging, each of the task's
    /// `stacked[j]` members trains on the same labels, so they count that often.
    pub fn new(present: Vec<Vec<u32>>, stacked: &[usize], bagged: bool) -> LabelCounts {
        let per_row = present
            .into_iter()
            .zip(stacked)
            .map(|(rows, &m)| {
                let times = if bagged { 1 } else { m as u32 };
                rows.into_iter().map(|c| c * times).collect()
            })
            .collect();
        LabelCounts { per_row }
    }

    /// Each step's counts under the row order `order` (padded with `PAD_INDEX`)
    /// in batches of `batch`.
    pub fn per_step(&self, order: &[u32], batch: usize) -> Vec<StepCounts> {
        order
            .chunks(batch)
            .map(|rows| {
                let real: Vec<usize> = (rows.iter())
                    .filter(|&&r| r != PAD_INDEX)
                    .map(|&r| r as usize)
                    .collect();
                StepCounts {
                    rows: real.len(),
                    labels: (self.per_row.iter())
                        .map(|t| real.iter().map(|&r| t[r] as f32).sum())
                        .collect(),
                }
            })
            .collect()
    }
}

/// Σ_s w_s·x_s / Σ_s w_s in f64, rounded once; 0 when every weight is 0 (a
/// task without labels in the epoch, whose step losses are all 0).
pub fn weighted_mean(values: impl IntoIterator<Item = (f32, f32)>) -> f32 {
    let (mut sum, mut weight) = (0.0f64, 0.0f64);
    for (x, w) in values {
        sum += x as f64 * w as f64;
        weight += w as f64;
    }
    if weight > 0.0 {
        (sum / weight) as f32
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_follow_the_row_order_and_the_masks() {
        // Task 0: rows 1 and 3 unlabelled; task 1: two members trained on each row.
        let present = vec![vec![1, 0, 1, 0, 1], vec![1, 1, 1, 1, 1]];
        let counts = LabelCounts::new(present, &[1, 2], false);
        let order = [4, 3, 2, 1, 0, PAD_INDEX];
        let steps = counts.per_step(&order, 2);
        let want = |rows, a: f32, b: f32| StepCounts {
            rows,
            labels: vec![a, b],
        };
        assert_eq!(
            steps,
            vec![want(2, 1.0, 4.0), want(2, 1.0, 4.0), want(1, 1.0, 2.0)]
        );
    }

    #[test]
    fn present_counts_what_the_loss_counts() {
        let nan = f32::NAN;
        assert_eq!(present(TaskKind::Binary, 3, &[1.0, nan, 0.0]), 2);
        assert_eq!(present(TaskKind::Multiclass, 3, &[2.0, 3.0, nan, -1.0]), 1);
        assert_eq!(present(TaskKind::Regression, 1, &[nan]), 0);
    }

    #[test]
    fn weighted_mean_weighs_and_survives_no_weight() {
        assert_eq!(weighted_mean([(1.0, 3.0), (0.5, 1.0)]), 0.875);
        assert_eq!(weighted_mean([(0.0, 0.0), (0.0, 0.0)]), 0.0);
    }
}
