//! Every WGSL file parses and validates with naga as it stands (no GPU needed),
//! and every kernel's entry point exists in its file.

use tandem::kernel::{Kernel, SHADER_FILES};

fn validate(name: &str, src: &str) -> naga::Module {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    module
}

#[test]
fn every_shader_file_validates() {
    for (name, src) in SHADER_FILES {
        validate(name, src);
    }
}

#[test]
fn every_kernel_has_its_entry_point() {
    for k in Kernel::ALL {
        let module = validate(k.file(), k.source());
        assert!(
            module.entry_points.iter().any(|e| e.name == k.entry()),
            "{k:?}: no entry point `{}` in shaders/{}",
            k.entry(),
            k.file()
        );
    }
}

#[test]
fn every_shader_file_is_registered() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".wgsl") {
            assert!(
                SHADER_FILES.iter().any(|(f, _)| *f == name),
                "shaders/{name} is not in kernel::SHADER_FILES"
            );
        }
    }
}
