//! `tandem inspect`: the learned allocation (mean gate weight per expert or
//! member) and the task weights by epoch, printed and plotted.

use super::output::{check, check_distinct, Outputs};
use anyhow::{bail, Result};
use std::path::Path;
use tandem::io::load_all;
use tandem::{BackendChoice, Config, Model};

pub fn inspect(
    model_path: &Path,
    data: &Path,
    heatmap: &Path,
    weights_plot: &Path,
    backend: &str,
) -> Result<()> {
    check(heatmap, "--heatmap")?;
    check(weights_plot, "--weights-plot")?;
    check_distinct(&[(heatmap, "--heatmap"), (weights_plot, "--weights-plot")])?;
    let choice: BackendChoice = backend.parse()?;
    let model = Model::load(model_path)?;
    let mut cfg = Config::load(data)?;
    super::check_tasks(&model, model_path, &cfg)?;
    let dataset = load_all(&mut cfg, model.preprocess.as_ref())?;
    tandem::train::trainer::check_data(&model, &dataset, "inspection")?;
    let mut b = tandem::open_backend(choice)?;
    let names: Vec<String> = model.spec.tasks.iter().map(|t| t.name.clone()).collect();
    let Some(alloc) =
        tandem::train::allocation(&model, &dataset.features, dataset.rows, b.as_mut())?
    else {
        bail!(
            "{} has no gates: nothing to allocate; train with `experts = E` and \
             `expert = [...]` in [model], or an ensemble with combine = \"gate\"",
            model_path.display()
        );
    };
    let experts = alloc.first().map_or(0, |a| a.len());
    // MMoE: every task gates all experts e0…; PLE: the shared ones s0…, then
    // its own t0…; a gated ensemble: its members, by name.
    let (columns, what): (Vec<String>, &str) = match (model.spec.ple(), model.spec.ensemble()) {
        (Some(p), _) => (
            (0..p.shared)
                .map(|i| format!("s{i}"))
                .chain((0..p.per_task).map(|i| format!("t{i}")))
                .collect(),
            "expert",
        ),
        (None, Some(e)) => (e.members.iter().map(|m| m.name.clone()).collect(), "member"),
        (None, None) => ((0..experts).map(|e| format!("e{e}")).collect(), "expert"),
    };
    println!(
        "allocation: mean gate weight on each {what} over {} rows ({})",
        dataset.rows,
        b.describe()
    );
    let width = names.iter().map(|n| n.len()).max().unwrap_or(4).max(4);
    let mut head = format!("{:<width$}", "task");
    for c in &columns {
        head.push_str(&format!(" {c:>7}"));
    }
    println!("{head}");
    for (name, row) in names.iter().zip(&alloc) {
        let mut line = format!("{name:<width$}");
        for v in row {
            line.push_str(&format!(" {v:>7.4}"));
        }
        println!("{line}");
    }
    println!("\ntask weights by epoch:");
    let mut head = format!("{:>5}", "epoch");
    for n in &names {
        head.push_str(&format!(" {n:>12}"));
    }
    println!("{head}");
    for (e, w) in model.task_weights.iter().enumerate() {
        let mut line = format!("{:>5}", e + 1);
        for v in w {
            line.push_str(&format!(" {v:>12.5}"));
        }
        println!("{line}");
    }
    if model.task_weights.is_empty() {
        println!("(none recorded: the model was saved without a training history)");
    }
    if model.spec.ple().is_some() {
        println!("(PLE: the last level's gates; s = shared experts, t = the task's own)");
    }
    let title = format!("mean gate weight per {what}");
    let heat = tandem::io::plot::allocation_canvas(&title, &names, &columns, &alloc);
    let lines = tandem::io::plot::weights_canvas(&names, &model.task_weights);
    let mut outputs = Outputs::default();
    outputs.stage_bytes(heatmap, "--heatmap", &heat.png()?)?;
    outputs.stage_bytes(weights_plot, "--weights-plot", &lines.png()?)?;
    outputs.commit()?;
    eprintln!("wrote {} and {}", heatmap.display(), weights_plot.display());
    Ok(())
}
