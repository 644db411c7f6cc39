//! `tandem eval`: per-task metrics and the loss of a saved model on a
//! config's data (all rows, or the validation rows of its seeded split).

use anyhow::{bail, Result};
use std::path::Path;
use tandem::io::{load_all, load_split};
use tandem::{BackendChoice, Config, Model};

pub fn eval(model_path: &Path, data: &Path, validation: bool, backend: &str) -> Result<()> {
    let choice: BackendChoice = backend.parse()?;
    let model = Model::load(model_path)?;
    let mut cfg = Config::load(data)?;
    super::check_tasks(&model, model_path, &cfg)?;
    let dataset = if validation {
        let split = load_split(&mut cfg)?;
        match split.valid {
            Some(v) if model.preprocess.is_none() => v,
            Some(_) => {
                // CSV data: re-encode the same validation rows with the model's own statistics.
                let all = load_all(&mut cfg, model.preprocess.as_ref())?;
                let (_, valid) =
                    tandem::io::split_rows(all.rows, cfg.data.validation, cfg.train.seed);
                all.select(&valid)
            }
            None => bail!(
                "{}: [data] validation is 0: no validation rows",
                data.display()
            ),
        }
    } else {
        load_all(&mut cfg, model.preprocess.as_ref())?
    };
    let mut b = tandem::open_backend(choice)?;
    let metrics = tandem::evaluate(&model, &dataset, b.as_mut())?;
    let (loss, _) = tandem::train::evaluate_loss(&model, &dataset, b.as_mut())?;
    println!(
        "{} rows, {}; loss {loss:.5} (Σ weight × task loss)",
        dataset.rows,
        b.describe()
    );
    print!("{}", tandem::train::metrics::table(&metrics));
    Ok(())
}
