//! The seed's model collaboration in Rust: train three models with different
//! trunks on the Palmer penguins, then load them as pre-trained members of an
//! ensemble whose per-task stacking layer learns how to combine them, and
//! compare the ensemble with its best member on the validation rows.
//!
//!     cargo run --release --example ensemble

use tandem::io::load_split;
use tandem::model::{Activation, Architecture, Combine, EnsembleSpec, MemberSpec};
use tandem::train::metrics::TaskMetrics;
use tandem::{BackendChoice, Config, Model, ModelSpec};

fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/penguins/penguins.toml"
    );
    let mut cfg = Config::load(path)?;
    let split = load_split(&mut cfg)?;
    let valid = split
        .valid
        .as_ref()
        .expect("the penguins config holds out 20%");
    let dir = std::env::temp_dir().join(format!("tandem-ensemble-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    // 1. Three single models with different trunks, trained as usual and saved.
    let trunks = [
        ("narrow", vec![4], Activation::Relu),
        ("tanh", vec![16], Activation::Tanh),
        ("deep", vec![16, 8], Activation::Relu),
    ];
    let mut scores: Vec<(String, Vec<(String, TaskMetrics)>)> = Vec::new();
    let mut members = Vec::new();
    for (k, (name, trunk, act)) in trunks.iter().enumerate() {
        let spec = ModelSpec {
            architecture: Architecture::Shared {
                trunk: trunk.clone(),
            },
            activation: *act,
            ..cfg.model.clone()
        };
        let mut model = Model::new(spec, k as u64 + 1);
        model.preprocess = split.preprocess.clone();
        let backend = tandem::open_backend(BackendChoice::Auto)?;
        let h = tandem::fit(
            &mut model,
            &split.train,
            Some(valid),
            &cfg.train,
            backend,
            &mut |_| {},
        )?;
        model.save(dir.join(format!("{name}.safetensors")))?;
        scores.push((
            format!("member {name} {trunk:?}"),
            h.epochs.last().unwrap().valid.clone(),
        ));
        members.push(MemberSpec {
            name: name.to_string(),
            trunk: trunk.clone(),
            activation: *act,
            trainable: false,
            weights: None,
        });
    }

    // 2. The ensemble: the three frozen members, combined per task by a stacking
    //    layer that starts as their average and trains for a few epochs.
    let spec = ModelSpec {
        architecture: Architecture::Ensemble(EnsembleSpec {
            bagging: false,
            combine: Combine::Stack,
            members: members.clone(),
        }),
        ..cfg.model.clone()
    };
    let mut ensemble = Model::new(spec, 0);
    ensemble.preprocess = split.preprocess.clone();
    for m in &members {
        ensemble.load_member(&m.name, dir.join(format!("{}.safetensors", m.name)))?;
    }
    let mut train = cfg.train.clone();
    train.epochs = 5;
    let backend = tandem::open_backend(BackendChoice::Auto)?;
    let h = tandem::fit(
        &mut ensemble,
        &split.train,
        Some(valid),
        &train,
        backend,
        &mut |_| {},
    )?;
    scores.push((
        "stacked ensemble".into(),
        h.epochs.last().unwrap().valid.clone(),
    ));

    // 3. Validation metrics side by side.
    println!("validation ({} rows) on {}", valid.rows, h.backend);
    print!("{:<28}", "model");
    for (task, m) in &scores[0].1 {
        for (k, _) in m.values() {
            print!(" {:>18}", format!("{task}.{k}"));
        }
    }
    println!();
    for (name, metrics) in &scores {
        print!("{name:<28}");
        for (_, m) in metrics {
            for (_, v) in m.values() {
                print!(" {v:>18.4}");
            }
        }
        println!();
    }
    // 4. The headline metric of each task (accuracy, or R² for regression):
    //    the ensemble against its best member.
    let ens = &scores[3].1;
    for (j, (task, m)) in ens.iter().enumerate() {
        let best = scores[..3]
            .iter()
            .map(|(_, s)| s[j].1.headline())
            .fold(f64::MIN, f64::max);
        let verdict = if m.headline() >= best {
            "at least as good as"
        } else {
            "below"
        };
        println!(
            "{task}: ensemble {:.4} is {verdict} the best member ({best:.4})",
            m.headline()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
