//! Evaluation metrics of one task on a set of rows: accuracy and ROC AUC for binary (and
//! multi-label) tasks, accuracy and macro-F1 for multiclass tasks, MSE, MAE and R² for
//! regression.
//!
//! Everything here is a pure function over row-major slices: `f32` inputs, `f64` accumulation.
//! A label that is NaN means "missing": that (row, column) pair is skipped everywhere, so a
//! set whose labels are all missing gives `rows == 0` and NaN metrics, never a panic.
//!
//! `rows` in every [`TaskMetrics`] counts the rows that have at least one non-missing label.
//!
//! Shape mismatches between scores and labels are programming errors and panic.

use std::cmp::Ordering;
use std::fmt;

/// Metrics of one task on a set of rows.
///
/// Values are NaN when undefined (no valid rows, AUC with one class, R² with constant labels),
/// so derived `PartialEq` compares such values as unequal.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskMetrics {
    /// A binary or multi-label task.
    Binary {
        /// Fraction of valid (score, label) pairs classified correctly.
        accuracy: f64,
        /// ROC AUC, the mean over label columns that have both classes; NaN when none has.
        auc: f64,
        /// Rows with at least one non-missing label.
        rows: usize,
    },
    /// A single-label multiclass task.
    Multiclass {
        /// Fraction of valid rows whose argmax is the label.
        accuracy: f64,
        /// Unweighted mean of per-class F1 over classes present in labels or predictions.
        macro_f1: f64,
        /// Rows with a non-missing label.
        rows: usize,
    },
    /// A regression task (one or more outputs).
    Regression {
        /// Mean squared error over valid elements.
        mse: f64,
        /// Mean absolute error over valid elements.
        mae: f64,
        /// Coefficient of determination, averaged over columns whose labels vary.
        r2: f64,
        /// Rows with at least one non-missing label.
        rows: usize,
    },
}

impl TaskMetrics {
    /// Rows that took part: rows with at least one non-missing label.
    pub fn rows(&self) -> usize {
        match *self {
            TaskMetrics::Binary { rows, .. }
            | TaskMetrics::Multiclass { rows, .. }
            | TaskMetrics::Regression { rows, .. } => rows,
        }
    }

    /// The kind of task, as written in tables: `"binary"`, `"multiclass"` or `"regression"`.
    pub fn kind(&self) -> &'static str {
        match self {
            TaskMetrics::Binary { .. } => "binary",
            TaskMetrics::Multiclass { .. } => "multiclass",
            TaskMetrics::Regression { .. } => "regression",
        }
    }

    /// `(name, value)` pairs in display order, e.g. `[("acc", 0.97), ("auc", 0.99)]`.
    ///
    /// Names: `acc`, `auc` (binary); `acc`, `macro-F1` (multiclass); `mse`, `mae`, `R²`
    /// (regression).
    pub fn values(&self) -> Vec<(&'static str, f64)> {
        match *self {
            TaskMetrics::Binary { accuracy, auc, .. } => vec![("acc", accuracy), ("auc", auc)],
            TaskMetrics::Multiclass {
                accuracy, macro_f1, ..
            } => vec![("acc", accuracy), ("macro-F1", macro_f1)],
            TaskMetrics::Regression { mse, mae, r2, .. } => {
                vec![("mse", mse), ("mae", mae), ("R²", r2)]
            }
        }
    }

    /// The headline value used for "best" comparisons, higher is better: accuracy for
    /// classification, R² for regression. NaN when undefined.
    pub fn headline(&self) -> f64 {
        match *self {
            TaskMetrics::Binary { accuracy, .. } | TaskMetrics::Multiclass { accuracy, .. } => {
                accuracy
            }
            TaskMetrics::Regression { r2, .. } => r2,
        }
    }
}

impl fmt::Display for TaskMetrics {
    /// The metrics with 4 decimals, two spaces apart: `acc 0.9706  auc 0.9950`,
    /// `acc 0.9700  macro-F1 0.9600`, `mse 0.1200  mae 0.2500  R² 0.8800`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (name, value)) in self.values().into_iter().enumerate() {
            if i > 0 {
                f.write_str("  ")?;
            }
            write!(f, "{name} {value:.4}")?;
        }
        Ok(())
    }
}

/// Whether a label is present (not the NaN "missing" marker).
fn present(label: f32) -> bool {
    !label.is_nan()
}

/// `num / den` as f64, NaN when `den == 0`.
fn ratio(num: usize, den: usize) -> f64 {
    if den == 0 {
        f64::NAN
    } else {
        num as f64 / den as f64
    }
}

/// Mean of the values, NaN when there are none.
fn mean(values: &[f64]) -> f64 {
    if values.is_empty() {
        f64::NAN
    } else {
        values.iter().sum::<f64>() / values.len() as f64
    }
}

/// Metrics of a binary or multi-label task.
///
/// `scores` and `labels` are row-major `[N, K]` with `K = outputs`; every label column is a
/// separate (score, label) pair. A label is positive when `>= 0.5`, NaN labels are missing.
/// A score predicts positive when `>= 0.5` (probabilities, `logits == false`) or `>= 0`
/// (logits, `logits == true`). Accuracy is over all valid pairs; AUC is the mean of
/// [`roc_auc`] over label columns that have both classes (NaN when none has).
///
/// # Panics
/// If `outputs == 0`, `scores.len() != labels.len()` or the length is not a multiple of
/// `outputs`.
pub fn binary(scores: &[f32], labels: &[f32], outputs: usize, logits: bool) -> TaskMetrics {
    assert!(outputs > 0, "binary metrics: outputs must be > 0");
    assert_eq!(
        scores.len(),
        labels.len(),
        "binary metrics: scores and labels must both be [N, {outputs}]"
    );
    assert_eq!(
        labels.len() % outputs,
        0,
        "binary metrics: length {} is not a multiple of {outputs} outputs",
        labels.len()
    );
    let threshold = if logits { 0.0 } else { 0.5 };
    let (mut correct, mut pairs, mut rows) = (0usize, 0usize, 0usize);
    for (s_row, l_row) in scores
        .chunks_exact(outputs)
        .zip(labels.chunks_exact(outputs))
    {
        let mut any = false;
        for (&s, &l) in s_row.iter().zip(l_row) {
            if !present(l) {
                continue;
            }
            any = true;
            pairs += 1;
            if (s >= threshold) == (l >= 0.5) {
                correct += 1;
            }
        }
        rows += usize::from(any);
    }
    let aucs: Vec<f64> = (0..outputs)
        .filter_map(|k| {
            let s: Vec<f32> = scores.iter().skip(k).step_by(outputs).copied().collect();
            let l: Vec<f32> = labels.iter().skip(k).step_by(outputs).copied().collect();
            roc_auc(&s, &l)
        })
        .collect();
    TaskMetrics::Binary {
        accuracy: ratio(correct, pairs),
        auc: mean(&aucs),
        rows,
    }
}

/// ROC AUC of one column: the probability that a random positive scores above a random
/// negative, ties counting half (Mann–Whitney U with average ranks).
///
/// Labels `>= 0.5` are positive, NaN labels are skipped. Returns `None` if, after skipping,
/// either class is absent. Scores are ordered by `f32::total_cmp`.
///
/// # Panics
/// If `scores.len() != labels.len()`.
pub fn roc_auc(scores: &[f32], labels: &[f32]) -> Option<f64> {
    assert_eq!(
        scores.len(),
        labels.len(),
        "roc_auc: scores and labels differ in length"
    );
    let mut pairs: Vec<(f32, bool)> = scores
        .iter()
        .zip(labels)
        .filter(|&(_, &l)| present(l))
        .map(|(&s, &l)| (s, l >= 0.5))
        .collect();
    let positives = pairs.iter().filter(|p| p.1).count();
    let negatives = pairs.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the (1-based, tie-averaged) ranks of the positives.
    let mut rank_sum = 0.0f64;
    let mut start = 0;
    while start < pairs.len() {
        let mut end = start + 1;
        while end < pairs.len() && pairs[end].0.total_cmp(&pairs[start].0) == Ordering::Equal {
            end += 1;
        }
        // Ranks start+1 ..= end, averaged.
        let avg_rank = (start + 1 + end) as f64 / 2.0;
        let tied_positives = pairs[start..end].iter().filter(|p| p.1).count();
        rank_sum += avg_rank * tied_positives as f64;
        start = end;
    }
    let (p, n) = (positives as f64, negatives as f64);
    let u = rank_sum - p * (p + 1.0) / 2.0;
    Some(u / (p * n))
}

/// Index of the largest score (the first on ties; NaN scores never win unless all are NaN).
fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate().skip(1) {
        if v > row[best] || (row[best].is_nan() && !v.is_nan()) {
            best = i;
        }
    }
    best
}

/// Metrics of a single-label multiclass task.
///
/// `scores` is row-major `[N, C]` with `C = classes` (logits or probabilities: the prediction
/// is the argmax either way, the first on ties); `labels` is `[N]` class indices stored as
/// `f32`, NaN for missing. Macro-F1 is the mean, over classes that appear in the labels or
/// the predictions of valid rows, of per-class F1 = 2·TP / (2·TP + FP + FN) (0 when
/// precision + recall = 0).
///
/// # Panics
/// If `classes == 0`, `scores.len() != labels.len() * classes`, or a non-missing label is
/// not an integer in `0..classes`.
pub fn multiclass(scores: &[f32], labels: &[f32], classes: usize) -> TaskMetrics {
    assert!(classes > 0, "multiclass metrics: classes must be > 0");
    assert_eq!(
        scores.len(),
        labels.len() * classes,
        "multiclass metrics: scores must be [N, {classes}] for {} labels",
        labels.len()
    );
    let mut tp = vec![0usize; classes];
    let mut fp = vec![0usize; classes];
    let mut fneg = vec![0usize; classes];
    let (mut correct, mut rows) = (0usize, 0usize);
    for (row, &label) in scores.chunks_exact(classes).zip(labels) {
        if !present(label) {
            continue;
        }
        assert!(
            label >= 0.0 && label.fract() == 0.0 && (label as usize) < classes,
            "multiclass metrics: label {label} is not a class index in 0..{classes}"
        );
        let truth = label as usize;
        let pred = argmax(row);
        rows += 1;
        if pred == truth {
            correct += 1;
            tp[truth] += 1;
        } else {
            fp[pred] += 1;
            fneg[truth] += 1;
        }
    }
    let f1s: Vec<f64> = (0..classes)
        .filter(|&c| tp[c] + fp[c] + fneg[c] > 0)
        .map(|c| 2.0 * tp[c] as f64 / (2 * tp[c] + fp[c] + fneg[c]) as f64)
        .collect();
    TaskMetrics::Multiclass {
        accuracy: ratio(correct, rows),
        macro_f1: mean(&f1s),
        rows,
    }
}

/// Metrics of a regression task.
///
/// `pred` and `labels` are row-major `[N, K]` with `K = outputs`; NaN labels are missing.
/// MSE and MAE are over all valid elements. R² = 1 − SS_res / SS_tot per column, with SS_tot
/// about that column's mean of valid labels; with `K > 1` it is the mean over columns whose
/// SS_tot > 0. R² is NaN when no column has SS_tot > 0 (e.g. constant labels).
///
/// # Panics
/// If `outputs == 0`, `pred.len() != labels.len()` or the length is not a multiple of
/// `outputs`.
pub fn regression(pred: &[f32], labels: &[f32], outputs: usize) -> TaskMetrics {
    assert!(outputs > 0, "regression metrics: outputs must be > 0");
    assert_eq!(
        pred.len(),
        labels.len(),
        "regression metrics: predictions and labels must both be [N, {outputs}]"
    );
    assert_eq!(
        labels.len() % outputs,
        0,
        "regression metrics: length {} is not a multiple of {outputs} outputs",
        labels.len()
    );
    let rows = labels
        .chunks_exact(outputs)
        .filter(|row| row.iter().any(|&l| present(l)))
        .count();
    let (mut sq, mut abs, mut count) = (0.0f64, 0.0f64, 0usize);
    let mut r2s = Vec::with_capacity(outputs);
    for k in 0..outputs {
        let column = || {
            pred.iter()
                .skip(k)
                .step_by(outputs)
                .zip(labels.iter().skip(k).step_by(outputs))
                .filter(|&(_, &l)| present(l))
                .map(|(&p, &l)| (f64::from(p), f64::from(l)))
        };
        let (mut sum, mut n, mut ss_res) = (0.0f64, 0usize, 0.0f64);
        for (p, l) in column() {
            let err = p - l;
            sq += err * err;
            abs += err.abs();
            ss_res += err * err;
            sum += l;
            n += 1;
        }
        count += n;
        if n == 0 {
            continue;
        }
        let label_mean = sum / n as f64;
        let ss_tot: f64 = column().map(|(_, l)| (l - label_mean).powi(2)).sum();
        if ss_tot > 0.0 {
            r2s.push(1.0 - ss_res / ss_tot);
        }
    }
    let (mse, mae) = if count == 0 {
        (f64::NAN, f64::NAN)
    } else {
        (sq / count as f64, abs / count as f64)
    };
    TaskMetrics::Regression {
        mse,
        mae,
        r2: mean(&r2s),
        rows,
    }
}

/// A plain-text table, one line per task (each ending in `\n`): the name padded to the
/// longest name, the kind padded, the row count right-aligned followed by `rows`, then the
/// metrics as [`TaskMetrics`]'s `Display` writes them. E.g.
///
/// ```text
/// species  multiclass  120 rows  acc 0.9750  macro-F1 0.9712
/// mass     regression  118 rows  mse 0.1200  mae 0.2500  R² 0.8800
/// ```
pub fn table(rows: &[(String, TaskMetrics)]) -> String {
    let name_w = rows
        .iter()
        .map(|(n, _)| n.chars().count())
        .max()
        .unwrap_or(0);
    let kind_w = rows.iter().map(|(_, m)| m.kind().len()).max().unwrap_or(0);
    let rows_w = rows
        .iter()
        .map(|(_, m)| m.rows().to_string().len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (name, metrics) in rows {
        out.push_str(&format!(
            "{name:<name_w$}  {:<kind_w$}  {:>rows_w$} rows  {metrics}\n",
            metrics.kind(),
            metrics.rows(),
        ));
    }
    out
}
