//! `tandem predict`: a saved model's predictions for a feature file (npy, or a CSV or
//! Parquet table), as CSV (named columns, class names) or npy.

use super::output::{check, Outputs};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::Path;
use tandem::io::npy;
use tandem::{BackendChoice, Model, Predictions, TaskKind};

pub fn predict(model_path: &Path, features: &Path, out: &Path, backend: &str) -> Result<()> {
    check(out, "--out")?;
    let choice: BackendChoice = backend.parse()?;
    let model = Model::load(model_path)?;
    let is_table = features.extension().is_some_and(|e| e == "csv")
        || tandem::io::table_blocks::is_parquet(features);
    let (rows, x) = if is_table {
        let pre = model.preprocess.as_ref().with_context(|| {
            format!(
                "{} was trained on npy data: give --features as .npy",
                model_path.display()
            )
        })?;
        let f = pre.apply_features(features)?;
        (f.rows, f.data)
    } else {
        let (shape, data) = npy::read_f32(features)?;
        let cols = shape.get(1).copied().unwrap_or(1);
        if cols != model.spec.inputs {
            bail!(
                "{}: {} features per row, the model takes {}",
                features.display(),
                cols,
                model.spec.inputs
            );
        }
        tandem::io::dataset::check_finite_features(features, &data, cols)?;
        (shape.first().copied().unwrap_or(0), data)
    };
    let mut b = tandem::open_backend(choice)?;
    let p = tandem::predict(&model, &x, rows, b.as_mut())?;
    let mut outputs = Outputs::default();
    if out.extension().is_some_and(|e| e == "npy") {
        let shape = [rows, npy_width(&p)];
        let data = npy_rows(&p, rows);
        outputs.stage(out, "--out", |tmp| Ok(npy::write_f32(tmp, &shape, &data)?))?;
    } else {
        outputs.stage_bytes(out, "--out", csv_text(&model, &p, rows).as_bytes())?;
    }
    outputs.commit()?;
    eprintln!("wrote {} predictions to {}", rows, out.display());
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Values per row of the npy output: each task's outputs, and its spread (ensembles).
fn npy_width(p: &Predictions) -> usize {
    p.tasks
        .iter()
        .map(|t| t.outputs * (1 + t.spread.is_some() as usize))
        .sum()
}

/// The npy output [rows, width]: per row, each task's outputs, then its spread.
fn npy_rows(p: &Predictions, rows: usize) -> Vec<f32> {
    let mut data = Vec::with_capacity(rows * npy_width(p));
    for r in 0..rows {
        for t in &p.tasks {
            let at = r * t.outputs..(r + 1) * t.outputs;
            data.extend_from_slice(&t.values[at.clone()]);
            if let Some(s) = &t.spread {
                data.extend_from_slice(&s[at]);
            }
        }
    }
    data
}

/// The CSV output: a header row (class names for multiclass tasks, `_spread`
/// columns for ensembles), then one row per input row.
fn csv_text(model: &Model, p: &Predictions, rows: usize) -> String {
    let mut header = Vec::new();
    for (j, t) in p.tasks.iter().enumerate() {
        match t.kind {
            TaskKind::Multiclass => {
                header.push(t.name.clone());
                for c in 0..t.outputs {
                    header.push(format!("{}_p_{}", t.name, class_name(model, j, c)));
                }
            }
            _ if t.outputs == 1 => header.push(t.name.clone()),
            _ => (0..t.outputs).for_each(|c| header.push(format!("{}_{c}", t.name))),
        }
        if t.spread.is_some() {
            // Ensembles: the standard deviation of the members' outputs.
            match t.outputs {
                1 => header.push(format!("{}_spread", t.name)),
                c => (0..c).for_each(|k| header.push(format!("{}_spread_{k}", t.name))),
            }
        }
    }
    let mut text = header.join(",") + "\n";
    for r in 0..rows {
        let mut cells = Vec::new();
        for (j, t) in p.tasks.iter().enumerate() {
            if let Some(class) = &t.class {
                cells.push(class_name(model, j, class[r]));
            }
            for v in &t.values[r * t.outputs..(r + 1) * t.outputs] {
                cells.push(format!("{v}"));
            }
            if let Some(s) = &t.spread {
                for v in &s[r * t.outputs..(r + 1) * t.outputs] {
                    cells.push(format!("{v}"));
                }
            }
        }
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    text
}

/// Class `c` of task `j` by its name in the training CSV, or its index.
fn class_name(model: &Model, j: usize, c: usize) -> String {
    let names = model.preprocess.as_ref().and_then(|pr| pr.class_names(j));
    names
        .and_then(|n| n.get(c))
        .cloned()
        .unwrap_or(c.to_string())
}
