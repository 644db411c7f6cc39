//! `tandem predict`: a saved model's predictions for a feature file (npy, or a CSV or
//! Parquet table), as CSV (named columns, class names) or npy.

use super::output::{check, Outputs};
use anyhow::{bail, Context, Result};
use npyz::WriterBuilder;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use tandem::io::dataset::check_finite_rows;
use tandem::io::npy_rows::NpyRows;
use tandem::io::table_blocks::{open_blocks, TableBlocks};
use tandem::io::Preprocess;
use tandem::train::valid::BlockPredictor;
use tandem::{BackendChoice, Model, Predictions, TaskKind};

/// Rows predicted per block of an npy feature file.
const BLOCK_ROWS: usize = 65_536;

pub fn predict(model_path: &Path, features: &Path, out: &Path, backend: &str) -> Result<()> {
    check(out, "--out")?;
    let choice: BackendChoice = backend.parse()?;
    let model = Model::load(model_path)?;
    let is_table = features.extension().is_some_and(|e| e == "csv")
        || tandem::io::table_blocks::is_parquet(features);
    let mut source = if is_table {
        let pre = model.preprocess.as_ref().with_context(|| {
            format!(
                "{} was trained on npy data: give --features as .npy",
                model_path.display()
            )
        })?;
        let columns = pre
            .features
            .iter()
            .map(|f| f.column().to_string())
            .collect();
        let table = open_blocks(features, BLOCK_ROWS)?;
        Rows::Table(table, pre, columns)
    } else {
        let x = NpyRows::open(features)?;
        if x.cols != model.spec.inputs {
            bail!(
                "{}: {} features per row, the model takes {}",
                features.display(),
                x.cols,
                model.spec.inputs
            );
        }
        Rows::File(x)
    };
    let rows = source.rows();
    let mut b = tandem::open_backend(choice)?;
    let mut blocks = BlockPredictor::new(&model, b.as_mut(), rows.clamp(1, BLOCK_ROWS))?;
    let mut next = |start: usize| -> Result<Predictions> {
        let len = blocks.capacity().min(rows - start);
        let x = source.read(features, start, len)?;
        Ok(blocks.predict(&model, b.as_mut(), &x, len)?)
    };
    // The first block says the columns (an ensemble adds spreads).
    let first = next(0)?;
    let mut outputs = Outputs::default();
    outputs.stage(out, "--out", |tmp| {
        let file = std::io::BufWriter::new(std::fs::File::create(tmp)?);
        let as_npy = out.extension().is_some_and(|e| e == "npy");
        let mut sink = match as_npy {
            true => Sink::npy(file, [rows, npy_width(&first)])?,
            false => Sink::csv(file, csv_header(&model, &first))?,
        };
        let mut p = first;
        let mut done = 0;
        loop {
            sink.write(&model, &p)?;
            done += p.rows;
            if done >= rows {
                break;
            }
            p = next(done)?;
        }
        sink.finish()
    })?;
    outputs.commit()?;
    eprintln!("wrote {} predictions to {}", rows, out.display());
    let _ = std::io::stdout().flush();
    Ok(())
}

/// Feature rows read a block at a time: a CSV or Parquet table's feature
/// columns encoded as in training (no row dropped), or an npy file.
enum Rows<'a> {
    Table(Box<dyn TableBlocks>, &'a Preprocess, Vec<String>),
    File(NpyRows),
}

impl Rows<'_> {
    fn rows(&self) -> usize {
        match self {
            Rows::Table(t, ..) => t.rows(),
            Rows::File(x) => x.rows,
        }
    }

    /// Rows `[start, start + len)`, checked finite.
    fn read(&mut self, path: &Path, start: usize, len: usize) -> Result<Vec<f32>> {
        match self {
            Rows::Table(table, pre, columns) => {
                let block = table.read(start, len, columns)?;
                let rows: Vec<usize> = (0..len).collect();
                Ok(pre.encode_features(&block, &rows)?)
            }
            Rows::File(x) => {
                let data = x.read(start, len)?;
                check_finite_rows(path, &data, x.cols, start)?;
                Ok(data)
            }
        }
    }
}

/// The output file, written a block of predictions at a time.
enum Sink {
    Npy(npyz::NpyWriter<f32, BufWriter<File>>),
    Csv(BufWriter<File>),
}

impl Sink {
    /// An npy file of `shape` (the rows to come).
    fn npy(file: BufWriter<File>, shape: [usize; 2]) -> Result<Sink> {
        let dims = [shape[0] as u64, shape[1] as u64];
        let w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&dims)
            .writer(file)
            .begin_nd()?;
        Ok(Sink::Npy(w))
    }

    /// A CSV file starting with `header`.
    fn csv(mut file: BufWriter<File>, header: String) -> Result<Sink> {
        file.write_all(header.as_bytes())?;
        Ok(Sink::Csv(file))
    }

    fn write(&mut self, model: &Model, p: &Predictions) -> Result<()> {
        match self {
            Sink::Npy(w) => w.extend(npy_rows(p, p.rows))?,
            Sink::Csv(f) => f.write_all(csv_rows(model, p, p.rows).as_bytes())?,
        }
        Ok(())
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Npy(w) => w.finish()?,
            Sink::Csv(mut f) => f.flush()?,
        }
        Ok(())
    }
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

/// The CSV output's header row: class names for multiclass tasks, `_spread`
/// columns for ensembles.
fn csv_header(model: &Model, p: &Predictions) -> String {
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
    header.join(",") + "\n"
}

/// One CSV row per input row of `p`.
fn csv_rows(model: &Model, p: &Predictions, rows: usize) -> String {
    let mut text = String::new();
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
