//! The saved spec: models saved in the first format (`tandem-1`) still load
//! with their architecture, and every architecture round-trips through save
//! and load in the current format.

use std::path::{Path, PathBuf};
use tandem::model::{Architecture, Combine};
use tandem::Model;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/spec-v1")
        .join(name)
}

fn format_of(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    header.metadata().as_ref()?.get("format").cloned()
}

#[test]
fn first_format_files_load_with_their_architecture() {
    let shared = Model::load(fixture("shared-lv.safetensors")).unwrap();
    assert_eq!(
        shared.spec.architecture,
        Architecture::Shared { trunk: vec![6] }
    );
    assert!(shared.spec.log_vars && !shared.spec.gradnorm);
    assert_eq!(shared.spec.tasks[2].head, vec![4, 3]);

    let mmoe = Model::load(fixture("mmoe-gn.safetensors")).unwrap();
    let e = mmoe.spec.experts().expect("an MMoE");
    assert_eq!((e.count, e.layers.clone()), (4, vec![6, 5]));
    assert!(mmoe.spec.gradnorm);

    let ple = Model::load(fixture("ple2.safetensors")).unwrap();
    let p = ple.spec.ple().expect("a PLE");
    assert_eq!((p.shared, p.per_task, p.levels.clone()), (2, 1, vec![6, 5]));

    let ens = Model::load(fixture("ens-Concat-bagtrue-lvfalse.safetensors")).unwrap();
    let e = ens.spec.ensemble().expect("an ensemble");
    assert_eq!(e.combine, Combine::Concat);
    assert!(e.bagging);
    let names: Vec<&str> = e.members.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "frozen", "nolayers"]);
    assert!(!e.members[3].trainable);
}

#[test]
fn every_architecture_round_trips_in_the_current_format() {
    let dir = std::env::temp_dir().join(format!("tandem-spec-format-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["shared-lv", "mmoe-gn", "ple2", "ens-Concat-bagtrue-lvfalse"] {
        let old = fixture(&format!("{name}.safetensors"));
        assert_eq!(format_of(&old).as_deref(), Some("tandem-1"));
        let model = Model::load(&old).unwrap();
        let path = dir.join(format!("{name}.safetensors"));
        model.save(&path).unwrap();
        assert_eq!(format_of(&path).as_deref(), Some("tandem-2"));
        let back = Model::load(&path).unwrap();
        assert_eq!(back.spec, model.spec, "{name}");
        assert_eq!(back.params, model.params, "{name}");
        assert_eq!(back.layout(), model.layout(), "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
