//! Every WGSL file parses and validates with naga as it stands (no GPU needed),
//! and the kernel table agrees with the WGSL, by naga's reflection: every row
//! of `kernel::KERNELS` names a `@compute` entry point of its file, which binds
//! a uniform of the row's size at binding 0 and the row's storage buffers, in
//! order and with their access, at 1, 2, …; every `@compute` entry point in
//! shaders/ has a row; the `ACT_*` constants equal `Activation::code()`.

use naga::valid::ModuleInfo;
use naga::{AddressSpace, Literal, Module, ShaderStage, StorageAccess};
use tandem::kernel::{Access, Activation, KernelInfo, KERNELS, SHADER_FILES};

fn validate(name: &str, src: &str) -> (Module, ModuleInfo) {
    let module = naga::front::wgsl::parse_str(src)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(src)));
    (module, info)
}

/// What an entry point binds at one binding of group 0.
#[derive(Debug, PartialEq)]
enum Bound {
    /// `var<uniform>` of this many bytes.
    Uniform(usize),
    /// `var<storage, read>` or `var<storage, read_write>`.
    Storage(Access),
    /// Anything else (a texture, a sampler, another group).
    Other(String),
}

/// The bindings entry point `entry` uses, by binding index, or None when the
/// module has no `@compute` entry point of that name.
fn bindings_of(module: &Module, info: &ModuleInfo, entry: &str) -> Option<Vec<(u32, Bound)>> {
    let index = module
        .entry_points
        .iter()
        .position(|e| e.name == entry && e.stage == ShaderStage::Compute)?;
    let uses = info.get_entry_point(index);
    let mut bound = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        if uses[handle].is_empty() {
            continue;
        }
        let what = match var.space {
            _ if binding.group != 0 => Bound::Other(format!("group {}", binding.group)),
            AddressSpace::Uniform => {
                Bound::Uniform(module.types[var.ty].inner.size(module.to_ctx()) as usize)
            }
            AddressSpace::Storage { access } if access.contains(StorageAccess::STORE) => {
                Bound::Storage(Access::ReadWrite)
            }
            AddressSpace::Storage { .. } => Bound::Storage(Access::Read),
            other => Bound::Other(format!("{other:?}")),
        };
        bound.push((binding.binding, what));
    }
    bound.sort_by_key(|(binding, _)| *binding);
    Some(bound)
}

/// What a row of `KERNELS` says the entry point binds.
fn declared(row: &KernelInfo) -> Vec<(u32, Bound)> {
    let storage =
        (row.bindings.iter().enumerate()).map(|(k, a)| (k as u32 + 1, Bound::Storage(*a)));
    std::iter::once((0, Bound::Uniform(row.uniform_size)))
        .chain(storage)
        .collect()
}

#[test]
fn every_shader_file_validates() {
    for (name, src) in SHADER_FILES {
        validate(name, src);
    }
}

#[test]
fn every_kernel_has_its_entry_point() {
    for row in KERNELS {
        let (module, _) = validate(row.file, row.kernel.source());
        assert!(
            module.entry_points.iter().any(|e| e.name == row.entry),
            "{:?}: no entry point `{}` in shaders/{}",
            row.kernel,
            row.entry,
            row.file
        );
    }
}

#[test]
fn every_kernel_binds_what_its_row_declares() {
    for row in KERNELS {
        let (module, info) = validate(row.file, row.kernel.source());
        let bound = bindings_of(&module, &info, row.entry).unwrap_or_else(|| {
            panic!(
                "{:?}: no @compute entry point `{}` in shaders/{}",
                row.kernel, row.entry, row.file
            )
        });
        assert_eq!(
            bound,
            declared(row),
            "{:?}: `{}` in shaders/{} binds (left) what its row in kernel::KERNELS does not \
             declare (right); uniform sizes are in bytes",
            row.kernel,
            row.entry,
            row.file
        );
    }
}

#[test]
fn every_compute_entry_point_has_a_kernel() {
    for (file, src) in SHADER_FILES {
        let (module, _) = validate(file, src);
        for e in &module.entry_points {
            assert!(
                e.stage != ShaderStage::Compute
                    || KERNELS.iter().any(|k| k.file == *file && k.entry == e.name),
                "shaders/{file}: @compute entry point `{}` has no row in kernel::KERNELS",
                e.name
            );
        }
    }
}

#[test]
fn activation_codes_match_the_wgsl_constants() {
    let mut files = 0;
    for (file, src) in SHADER_FILES {
        let (module, _) = validate(file, src);
        let constants: Vec<(String, u32)> = (module.constants.iter())
            .filter_map(|(_, c)| {
                let name = c.name.clone().filter(|n| n.starts_with("ACT_"))?;
                match module.global_expressions[c.init] {
                    naga::Expression::Literal(Literal::U32(v)) => Some((name, v)),
                    ref other => panic!("shaders/{file}: {name} = {other:?}, not a u32"),
                }
            })
            .collect();
        if constants.is_empty() {
            continue;
        }
        files += 1;
        let expected: Vec<(String, u32)> = (Activation::ALL.iter())
            .map(|a| (format!("ACT_{a:?}").to_uppercase(), a.code()))
            .collect();
        let mut constants = constants;
        constants.sort_by_key(|(_, v)| *v);
        assert_eq!(
            constants, expected,
            "shaders/{file}: the ACT_* constants (left) differ from Activation::code() (right)"
        );
    }
    assert!(files > 0, "no shader declares the ACT_* constants");
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
