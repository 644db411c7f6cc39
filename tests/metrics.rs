//! Metric tests: small cases whose expected values are computed by hand in the comments.

use tandem::train::metrics::{binary, multiclass, regression, roc_auc, table, TaskMetrics};

const NAN: f32 = f32::NAN;

/// Asserts `a ≈ b` within 1e-9 (f32 inputs, f64 accumulation).
fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

/// ROC AUC of a column that has both classes.
fn auc(scores: &[f32], labels: &[f32]) -> f64 {
    roc_auc(scores, labels).expect("both classes present")
}

/// Splits binary metrics into (accuracy, auc, rows).
fn bin(m: TaskMetrics) -> (f64, f64, usize) {
    match m {
        TaskMetrics::Binary {
            accuracy,
            auc,
            rows,
        } => (accuracy, auc, rows),
        other => panic!("expected binary metrics, got {other:?}"),
    }
}

/// Splits multiclass metrics into (accuracy, macro_f1, rows).
fn multi(m: TaskMetrics) -> (f64, f64, usize) {
    match m {
        TaskMetrics::Multiclass {
            accuracy,
            macro_f1,
            rows,
        } => (accuracy, macro_f1, rows),
        other => panic!("expected multiclass metrics, got {other:?}"),
    }
}

/// Splits regression metrics into (mse, mae, r2, rows).
fn reg(m: TaskMetrics) -> (f64, f64, f64, usize) {
    match m {
        TaskMetrics::Regression { mse, mae, r2, rows } => (mse, mae, r2, rows),
        other => panic!("expected regression metrics, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// ROC AUC
// ---------------------------------------------------------------------------------------------

#[test]
fn auc_perfect() {
    close(auc(&[0.1, 0.2, 0.8, 0.9], &[0., 0., 1., 1.]), 1.0);
}

#[test]
fn auc_reversed() {
    close(auc(&[0.9, 0.8, 0.2, 0.1], &[0., 0., 1., 1.]), 0.0);
}

#[test]
fn auc_all_tied() {
    close(auc(&[0.5; 4], &[0., 1., 0., 1.]), 0.5);
}

#[test]
fn auc_partial_tie() {
    // pos 0.5 beats neg 0.1 (1) and ties neg 0.5 (½); pos 0.9 beats both (2): 3.5 / 4.
    close(auc(&[0.1, 0.5, 0.5, 0.9], &[0., 0., 1., 1.]), 0.875);
}

#[test]
fn auc_known_case() {
    // pos 0.35 beats 0.1 only, pos 0.8 beats both: 3 / 4.
    close(auc(&[0.1, 0.4, 0.35, 0.8], &[0., 0., 1., 1.]), 0.75);
}

#[test]
fn auc_skips_missing_labels() {
    // The NaN-labelled 0.95 would otherwise be a negative above every positive.
    close(auc(&[0.1, 0.95, 0.8, 0.9], &[0., NAN, 1., 1.]), 1.0);
}

#[test]
fn auc_one_class_is_none() {
    assert_eq!(roc_auc(&[0.1, 0.9], &[1., 1.]), None);
    assert_eq!(roc_auc(&[0.1, 0.9], &[0., NAN]), None);
    assert_eq!(roc_auc(&[], &[]), None);
}

// ---------------------------------------------------------------------------------------------
// Binary
// ---------------------------------------------------------------------------------------------

#[test]
fn binary_accuracy_skips_nan_labels() {
    // Valid: (0.9,1) ok, (0.4,1) wrong, (0.2,0) ok → 2/3; 3 rows; AUC: 0.9 & 0.4 > 0.2 → 1.
    let (acc, auc, rows) = bin(binary(&[0.9, 0.1, 0.4, 0.2], &[1., NAN, 1., 0.], 1, false));
    close(acc, 2.0 / 3.0);
    close(auc, 1.0);
    assert_eq!(rows, 3);
}

#[test]
fn binary_logits_threshold_zero() {
    // Predictions (≥ 0): 0, 1, 1, 0 vs labels 0, 1, 1, 1 → 3/4.
    let (acc, _, rows) = bin(binary(&[-1.0, 0.5, 0.0, -0.2], &[0., 1., 1., 1.], 1, true));
    close(acc, 0.75);
    assert_eq!(rows, 4);
}

#[test]
fn binary_multi_label() {
    // [3, 2]: pairs (0.9,1)✓ (0.2,0)✓ | (0.3,1)✗ (0.7,NaN) skip | (0.1,0)✓ (0.6,0)✗ → 3/5.
    // Column 0 AUC: positives 0.9, 0.3 above negative 0.1 → 1; column 1 has only negatives
    // once the NaN is skipped → left out of the mean.
    let scores = [0.9, 0.2, 0.3, 0.7, 0.1, 0.6];
    let labels = [1., 0., 1., NAN, 0., 0.];
    let (acc, auc, rows) = bin(binary(&scores, &labels, 2, false));
    close(acc, 0.6);
    close(auc, 1.0);
    assert_eq!(rows, 3);
}

#[test]
fn binary_multi_label_auc_is_column_mean() {
    // Column 0 perfectly separated (1), column 1 reversed (0) → 0.5. Accuracy: col 0 all
    // right (2), col 1 all wrong (0) → 2/4.
    let scores = [0.9, 0.1, 0.2, 0.8];
    let labels = [1., 1., 0., 0.];
    let (acc, auc, rows) = bin(binary(&scores, &labels, 2, false));
    close(acc, 0.5);
    close(auc, 0.5);
    assert_eq!(rows, 2);
}

#[test]
fn binary_row_with_all_labels_missing_is_not_counted() {
    let (acc, _, rows) = bin(binary(&[0.9, 0.9, 0.1, 0.1], &[1., 1., NAN, NAN], 2, false));
    close(acc, 1.0);
    assert_eq!(rows, 1);
}

// ---------------------------------------------------------------------------------------------
// Multiclass
// ---------------------------------------------------------------------------------------------

#[test]
fn multiclass_macro_f1_by_hand() {
    // Labels 0 0 1 1 2 2, argmax 0 1 1 1 2 0: accuracy 4/6.
    // Class 0: TP 1, FP 1, FN 1 → F1 2/4 = 0.5; class 1: TP 2, FP 1, FN 0 → 4/5 = 0.8;
    // class 2: TP 1, FP 0, FN 1 → 2/3. Macro = (0.5 + 0.8 + 2/3) / 3.
    #[rustfmt::skip]
    let scores = [
        0.8, 0.1, 0.1,
        0.2, 0.7, 0.1,
        0.1, 0.6, 0.3,
        0.3, 0.4, 0.3,
        0.0, 0.1, 0.9,
        0.5, 0.2, 0.3,
    ];
    let labels = [0., 0., 1., 1., 2., 2.];
    let (acc, f1, rows) = multi(multiclass(&scores, &labels, 3));
    close(acc, 4.0 / 6.0);
    close(f1, (0.5 + 0.8 + 2.0 / 3.0) / 3.0);
    assert_eq!(rows, 6);
}

#[test]
fn multiclass_absent_class_excluded_and_nan_skipped() {
    // 4 classes, class 3 never labelled nor predicted; the NaN row (which would be wrong) is
    // skipped. Labels 0 1 1, argmax (logits) 0 1 0: class 0 F1 2/3, class 1 F1 2/3 → 2/3.
    #[rustfmt::skip]
    let scores = [
        2.0, -1.0, 0.0, -3.0,
        -1.0, 1.5, 0.0, -3.0,
        0.9, 0.3, 0.1, -3.0,
        0.0, 0.0, 5.0, -3.0,
    ];
    let labels = [0., 1., 1., NAN];
    let (acc, f1, rows) = multi(multiclass(&scores, &labels, 4));
    close(acc, 2.0 / 3.0);
    close(f1, 2.0 / 3.0);
    assert_eq!(rows, 3);
}

#[test]
fn multiclass_perfect() {
    let (acc, f1, _) = multi(multiclass(&[1., 0., 0., 1.], &[0., 1.], 2));
    close(acc, 1.0);
    close(f1, 1.0);
}

#[test]
#[should_panic(expected = "not a class index")]
fn multiclass_out_of_range_label_panics() {
    multiclass(&[1., 0.], &[2.], 2);
}

// ---------------------------------------------------------------------------------------------
// Regression
// ---------------------------------------------------------------------------------------------

#[test]
fn regression_perfect() {
    let (mse, mae, r2, rows) = reg(regression(&[1., 2., 3.], &[1., 2., 3.], 1));
    close(mse, 0.0);
    close(mae, 0.0);
    close(r2, 1.0);
    assert_eq!(rows, 3);
}

#[test]
fn regression_predicting_the_mean() {
    // Errors ±1.5, ±0.5: MSE (2.25+0.25+0.25+2.25)/4 = 1.25, MAE 1.0, R² 1 − 5/5 = 0.
    let (mse, mae, r2, _) = reg(regression(&[2.5; 4], &[1., 2., 3., 4.], 1));
    close(mse, 1.25);
    close(mae, 1.0);
    close(r2, 0.0);
}

#[test]
fn regression_mse_mae_r2_values() {
    // Errors −1, 0, −2: MSE 5/3, MAE 1; label mean 3, SS_tot 1+1+4 = 6 → R² 1 − 5/6.
    let (mse, mae, r2, rows) = reg(regression(&[1., 2., 3.], &[2., 2., 5.], 1));
    close(mse, 5.0 / 3.0);
    close(mae, 1.0);
    close(r2, 1.0 / 6.0);
    assert_eq!(rows, 3);
}

#[test]
fn regression_multi_output_with_missing_and_constant_column() {
    // [3, 2]. Column 0: pred 1 2 3 vs labels 2 2 5 (R² 1/6). Column 1: labels 7, NaN, 7 are
    // constant (SS_tot 0) → left out of the R² mean. Valid errors: −1, 0, −2, 1, −1 →
    // MSE 7/5, MAE 5/5.
    let pred = [1., 8., 2., 0., 3., 6.];
    let labels = [2., 7., 2., NAN, 5., 7.];
    let (mse, mae, r2, rows) = reg(regression(&pred, &labels, 2));
    close(mse, 7.0 / 5.0);
    close(mae, 1.0);
    close(r2, 1.0 / 6.0);
    assert_eq!(rows, 3);
}

#[test]
fn regression_constant_labels_r2_nan() {
    let (mse, _, r2, _) = reg(regression(&[1., 3.], &[2., 2.], 1));
    close(mse, 1.0);
    assert!(r2.is_nan());
}

// ---------------------------------------------------------------------------------------------
// All labels missing: rows 0, NaN metrics, no panic
// ---------------------------------------------------------------------------------------------

#[test]
fn all_missing_labels() {
    let (acc, auc, rows) = bin(binary(&[0.2, 0.9], &[NAN, NAN], 1, false));
    assert!(acc.is_nan() && auc.is_nan() && rows == 0);
    let (acc, f1, rows) = multi(multiclass(&[0.2, 0.9, 0.5, 0.5], &[NAN, NAN], 2));
    assert!(acc.is_nan() && f1.is_nan() && rows == 0);
    let (mse, mae, r2, rows) = reg(regression(&[0.2, 0.9], &[NAN, NAN], 2));
    assert!(mse.is_nan() && mae.is_nan() && r2.is_nan() && rows == 0);
}

#[test]
fn empty_sets() {
    assert_eq!(binary(&[], &[], 3, true).rows(), 0);
    assert!(multiclass(&[], &[], 3).headline().is_nan());
    assert!(regression(&[], &[], 1).headline().is_nan());
}

// ---------------------------------------------------------------------------------------------
// Accessors, Display, table
// ---------------------------------------------------------------------------------------------

#[test]
fn accessors() {
    let b = TaskMetrics::Binary {
        accuracy: 0.97,
        auc: 0.99,
        rows: 10,
    };
    assert_eq!(b.values(), vec![("acc", 0.97), ("auc", 0.99)]);
    assert_eq!((b.rows(), b.headline(), b.kind()), (10, 0.97, "binary"));
    let r = TaskMetrics::Regression {
        mse: 0.12,
        mae: 0.25,
        r2: 0.88,
        rows: 4,
    };
    assert_eq!(r.values(), vec![("mse", 0.12), ("mae", 0.25), ("R²", 0.88)]);
    assert_eq!((r.rows(), r.headline(), r.kind()), (4, 0.88, "regression"));
}

#[test]
fn display() {
    let b = TaskMetrics::Binary {
        accuracy: 0.970_61,
        auc: 0.995,
        rows: 1,
    };
    assert_eq!(b.to_string(), "acc 0.9706  auc 0.9950");
    let m = TaskMetrics::Multiclass {
        accuracy: 0.97,
        macro_f1: 0.96,
        rows: 1,
    };
    assert_eq!(m.to_string(), "acc 0.9700  macro-F1 0.9600");
    let r = TaskMetrics::Regression {
        mse: 0.12,
        mae: 0.25,
        r2: 0.88,
        rows: 1,
    };
    assert_eq!(r.to_string(), "mse 0.1200  mae 0.2500  R² 0.8800");
    let missing = binary(&[0.5], &[NAN], 1, false);
    assert_eq!(missing.to_string(), "acc NaN  auc NaN");
}

#[test]
fn table_lines() {
    let rows = vec![
        (
            "species".to_string(),
            TaskMetrics::Multiclass {
                accuracy: 0.975,
                macro_f1: 0.9712,
                rows: 120,
            },
        ),
        (
            "mass".to_string(),
            TaskMetrics::Regression {
                mse: 0.12,
                mae: 0.25,
                r2: 0.88,
                rows: 8,
            },
        ),
    ];
    assert_eq!(
        table(&rows),
        "species  multiclass  120 rows  acc 0.9750  macro-F1 0.9712\n\
         mass     regression    8 rows  mse 0.1200  mae 0.2500  R² 0.8800\n"
    );
    assert_eq!(table(&[]), "");
}
