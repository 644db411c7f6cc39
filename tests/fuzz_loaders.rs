//! Mutation fuzzing of every loader a user's file reaches: the TOML config,
//! `.npy` arrays, CSV tables (through the whole CSV dataset path), Parquet
//! tables (read whole, in blocks, and through the dataset path), and
//! safetensors model files (header, tensors and the spec in the metadata).
//!
//! Each loader gets `TANDEM_FUZZ_CASES` (default 5,000) inputs made by seeded
//! mutations of a valid file: bit flips, byte and token edits, truncation,
//! repeated chunks, and numbers replaced by extremes (0, -1, huge, NaN). A case
//! passes when the loader returns `Ok` or `Err` — never a panic — and no single
//! allocation asks for more than `ALLOC_BOUND` bytes (the test's allocator
//! aborts the run naming the size if one does, since such a request would abort
//! or exhaust a user's machine). Failing inputs are written to the temporary
//! folder the message names, to be replayed with the same loader.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

/// The largest single allocation a loader may ask for while reading a small
/// (under 100 KB) hostile file.
const ALLOC_BOUND: usize = 1 << 30;

struct Bounded;

unsafe impl GlobalAlloc for Bounded {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_BOUND {
            over_bound(layout.size());
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_BOUND {
            over_bound(layout.size());
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_BOUND {
            over_bound(new_size);
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// Reports an allocation over the bound without allocating, then aborts.
fn over_bound(size: usize) -> ! {
    let mut digits = [0u8; 24];
    let mut n = size;
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut err = std::io::stderr();
    let _ = err.write_all(b"fuzz_loaders: a loader asked for one allocation of ");
    let _ = err.write_all(&digits[at..]);
    let _ = err.write_all(
        b" bytes, over the 1 GiB bound (the input being loaded is in the case folder)\n",
    );
    std::process::abort();
}

#[global_allocator]
static ALLOC: Bounded = Bounded;

fn cases() -> usize {
    std::env::var("TANDEM_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000)
}

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// Extreme values a number in a file is replaced by.
const EXTREMES: &[&str] = &[
    "0",
    "-1",
    "1",
    "2",
    "65535",
    "4294967296",
    "1000000000000",
    "18446744073709551615",
    "99999999999999999999999",
    "1e308",
    "-1e308",
    "nan",
    "inf",
    "0.5",
    "-0",
    "\"x\"",
    "[]",
    "",
];

/// Where most edits go: the whole file, or a safetensors file's JSON header
/// (its tensor table and the spec in its metadata), past which lie raw floats.
fn hot_len(base: &[u8], file: &str) -> usize {
    if file.ends_with(".safetensors") && base.len() >= 8 {
        let n = u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
        (8 + n).min(base.len())
    } else {
        base.len()
    }
}

/// One seeded mutation of `base` (one to three edits), four edits in five
/// inside its first `hot` bytes. Text formats also get number replacements.
fn mutate(rng: &mut ChaCha8Rng, base: &[u8], text: bool, hot: usize) -> Vec<u8> {
    let mut v = base.to_vec();
    let edits = 1 + rng.random_range(0..3);
    for _ in 0..edits {
        if v.is_empty() {
            v.push(rng.random());
            continue;
        }
        let span = if rng.random_range(0..5) < 4 {
            hot.min(v.len()).max(1)
        } else {
            v.len()
        };
        let at = rng.random_range(0..span);
        // Text formats: half the edits replace a number, so that the result
        // still parses and the values themselves are what is tested.
        match rng.random_range(0..if text { 14 } else { 7 }) {
            0 => v[at] ^= 1 << rng.random_range(0..8),
            1 => v[at] = rng.random(),
            2 => {
                v.remove(at);
            }
            3 => v.insert(at, rng.random()),
            4 => v.truncate(at),
            5 => {
                let end = (at + rng.random_range(1..64)).min(v.len());
                let chunk = v[at..end].to_vec();
                let to = rng.random_range(0..=v.len());
                v.splice(to..to, chunk);
            }
            6 => {
                // Overwrite an aligned u64 (a safetensors header length or an offset).
                let at = at & !7;
                let val: u64 = match rng.random_range(0..4) {
                    0 => 0,
                    1 => u64::MAX,
                    2 => rng.random_range(0..1 << 40),
                    _ => rng.random(),
                };
                for (k, b) in val.to_le_bytes().iter().enumerate() {
                    if let Some(slot) = v.get_mut(at + k) {
                        *slot = *b;
                    }
                }
            }
            _ => replace_number(rng, &mut v, at),
        }
    }
    v
}

/// Replaces the number nearest after `at` by an extreme value.
fn replace_number(rng: &mut ChaCha8Rng, v: &mut Vec<u8>, at: usize) {
    let Some(start) = (at..v.len()).find(|&i| v[i].is_ascii_digit()) else {
        return;
    };
    let end = (start..v.len())
        .find(|&i| !(v[i].is_ascii_digit() || v[i] == b'.' || v[i] == b'e'))
        .unwrap_or(v.len());
    let with = EXTREMES[rng.random_range(0..EXTREMES.len())].as_bytes();
    v.splice(start..end, with.iter().copied());
}

/// Runs `load` on `count` mutations of `base` written to `file` in a fresh
/// folder; fails listing the panicking cases (kept in the folder).
fn fuzz(name: &str, base: &[u8], text: bool, file: &str, load: &dyn Fn(&Path)) {
    let dir = std::env::temp_dir().join(format!("tandem-fuzz-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(file);
    let mut rng = ChaCha8Rng::seed_from_u64(0x7a6e_f022 ^ name.len() as u64);
    let count = cases();
    let hot = hot_len(base, file);
    let mut panics = Vec::new();
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for case in 0..count {
        let input = mutate(&mut rng, base, text, hot);
        // Written before loading, so an abort leaves the input behind.
        std::fs::write(&path, &input).unwrap();
        std::fs::write(dir.join("last-input"), &input).unwrap();
        if catch_unwind(AssertUnwindSafe(|| load(&path))).is_err() {
            let keep = dir.join(format!("panic-{case}-{file}"));
            std::fs::write(&keep, &input).unwrap();
            panics.push(keep.display().to_string());
        }
    }
    std::panic::set_hook(hook);
    println!("fuzz {name}: {count} inputs, {} panics", panics.len());
    assert!(
        panics.is_empty(),
        "{name}: {} of {count} inputs panicked; first ones:\n{}",
        panics.len(),
        panics
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn config_toml() {
    let base = std::fs::read(fixture("tests/fixtures/golden/mmoe-uw-small/config.toml")).unwrap();
    let ens = std::fs::read(fixture("examples/penguins/ensemble.toml")).unwrap();
    fuzz("toml", &base, true, "config.toml", &|p| {
        let _ = tandem::Config::load(p);
    });
    fuzz("toml-ensemble", &ens, true, "ensemble.toml", &|p| {
        let _ = tandem::Config::load(p);
    });
}

#[test]
fn npy_arrays() {
    let base = std::fs::read(fixture("tests/fixtures/golden/seed-small/x.npy")).unwrap();
    fuzz("npy", &base, false, "x.npy", &|p| {
        let _ = tandem::io::npy::read_f32(p);
        // The same file read by rows (what streaming reads).
        if let Ok(mut rows) = tandem::io::npy_rows::NpyRows::open(p) {
            let n = rows.rows;
            let _ = rows.read(0, n.min(4));
            let _ = rows.read(n.saturating_sub(1), n.min(1));
        }
    });
}

#[test]
fn csv_dataset() {
    // The penguins config against a mutated copy of the first rows of its CSV.
    let csv = std::fs::read_to_string(fixture("examples/penguins/penguins.csv")).unwrap();
    let head: String = csv.lines().take(40).map(|l| format!("{l}\n")).collect();
    let config = std::fs::read_to_string(fixture("examples/penguins/penguins.toml")).unwrap();
    fuzz("csv", head.as_bytes(), true, "penguins.csv", &|p| {
        let cfg_path = p.with_file_name("penguins.toml");
        if !cfg_path.exists() {
            std::fs::write(&cfg_path, &config).unwrap();
        }
        if let Ok(mut cfg) = tandem::Config::load(&cfg_path) {
            let _ = tandem::io::load_split(&mut cfg);
        }
    });
}

#[test]
fn parquet_tables() {
    // The penguins table as Parquet (three row groups, snappy, dictionary pages), read whole,
    // in blocks across row groups, and through the parquet config's dataset path.
    let base = std::fs::read(fixture("examples/penguins/penguins.parquet")).unwrap();
    let config = std::fs::read_to_string(fixture("examples/penguins/parquet.toml")).unwrap();
    let columns: Vec<String> = ["species", "island", "bill_length_mm", "sex", "year"]
        .iter()
        .map(|c| c.to_string())
        .collect();
    fuzz("parquet", &base, false, "penguins.parquet", &|p| {
        let _ = tandem::io::table_blocks::read_table(p, &columns);
        if let Ok(mut blocks) = tandem::io::open_blocks(p, 100) {
            let rows = blocks.rows();
            let _ = blocks.read(rows / 3, rows - rows / 3, &columns);
        }
        let cfg_path = p.with_file_name("parquet.toml");
        if !cfg_path.exists() {
            std::fs::write(&cfg_path, &config).unwrap();
        }
        if let Ok(mut cfg) = tandem::Config::load(&cfg_path) {
            let _ = tandem::io::load_split(&mut cfg);
        }
    });
}

/// A model file in the current format: the MMoE golden config's model, saved.
fn current_model_file() -> (tandem::Model, Vec<u8>) {
    let cfg = tandem::Config::load(fixture("tests/fixtures/golden/mmoe-uw-small/config.toml"))
        .expect("the golden config loads");
    let model = tandem::Model::from_spec(&cfg.model, 0).expect("its model builds");
    let path = std::env::temp_dir().join(format!(
        "tandem-fuzz-base-{}.safetensors",
        std::process::id()
    ));
    model.save(&path).expect("the model saves");
    let bytes = std::fs::read(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    (model, bytes)
}

#[test]
fn safetensors_models() {
    let (model, current) = current_model_file();
    let old = std::fs::read(fixture("tests/fixtures/spec-v1/ple2.safetensors")).unwrap();
    for (name, base) in [("safetensors", &current), ("safetensors-v1", &old)] {
        fuzz(name, base, true, "model.safetensors", &|p| {
            if let Ok(m) = tandem::Model::load(p) {
                let _ = m.params.len();
            }
        });
    }
    // `--init`: the same mutations read into an existing model's layout.
    fuzz(
        "safetensors-init",
        &current,
        true,
        "init.safetensors",
        &|p| {
            let mut m = model.clone();
            let _ = m.load_init(p);
        },
    );
}
