//! Shared test helpers: the GPU backend (or a skip), seeded random data, and
//! the checks that CPU and GPU training agree. (The parity harness is in
//! tests/parity/harness.rs.)
#![allow(dead_code)]

pub mod cli;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Mutex, OnceLock};
use tandem::gpu::GpuBackend;
use tandem::Backend;

/// True when `TANDEM_REQUIRE_GPU=1`: a GPU test with no adapter must fail.
pub fn gpu_required() -> bool {
    std::env::var("TANDEM_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// The shared GPU backend for this test binary, or None (printing that the
/// test skipped) when no adapter exists and the GPU is not required.
pub fn gpu() -> Option<&'static Mutex<GpuBackend>> {
    static GPU: OnceLock<Option<Mutex<GpuBackend>>> = OnceLock::new();
    let gpu = GPU.get_or_init(|| match GpuBackend::new() {
        Ok(g) => {
            println!("GPU adapter: {}", g.describe());
            Some(Mutex::new(g))
        }
        Err(e) => {
            assert!(
                !gpu_required(),
                "TANDEM_REQUIRE_GPU=1 but no GPU adapter: {e}"
            );
            None
        }
    });
    if gpu.is_none() {
        println!("skipped: no GPU adapter (set TANDEM_REQUIRE_GPU=1 to make this a failure)");
    }
    gpu.as_ref()
}

/// Seeded uniform values in [lo, hi).
pub fn random(seed: u64, len: usize, lo: f32, hi: f32) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..len).map(|_| rng.random_range(lo..hi)).collect()
}

/// The same training on the CPU and the GPU agrees: every step's losses within
/// 1e-4 relative (each step's entries: the objective, maybe per-task losses).
pub fn assert_same_losses(what: &str, cpu: &[Vec<f32>], gpu: &[Vec<f32>]) {
    assert_eq!(cpu.len(), gpu.len(), "{what}: step counts differ");
    for (k, (c, g)) in cpu.iter().zip(gpu).enumerate() {
        for (a, b) in c.iter().zip(g) {
            assert!(
                (a - b).abs() <= 1e-4 * a.abs().max(1.0),
                "{what} step {k}: cpu {c:?} gpu {g:?}"
            );
        }
    }
}

/// … and its final weights agree within 1e-4; returns the largest |Δ|.
pub fn assert_same_weights(what: &str, cpu: &[f32], gpu: &[f32]) -> f32 {
    assert_eq!(cpu.len(), gpu.len(), "{what}: parameter counts differ");
    let worst = cpu
        .iter()
        .zip(gpu)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst <= 1e-4, "{what}: weights differ by {worst}");
    worst
}

/// 7 inputs; a 3-class task, a 2-label binary task and a regression task,
/// each with some missing labels (the CPU-vs-GPU training tests' data).
pub fn mixed_tasks(rows: usize) -> tandem::Dataset {
    let features = random(1, rows * 7, -1.5, 1.5);
    let u = random(2, rows * 4, 0.0, 1.0);
    let (mut class, mut multi, mut value) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..rows {
        let x = &features[r * 7..r * 7 + 7];
        class.push(if r % 11 == 5 {
            f32::NAN
        } else {
            ((x[0] + x[1] > 0.0) as u8 + (x[2] > 0.5) as u8) as f32
        });
        multi.push((x[3] > 0.0) as u8 as f32);
        multi.push(if r % 7 == 3 {
            f32::NAN
        } else {
            (x[4] * u[r] > 0.1) as u8 as f32
        });
        value.push(if r % 5 == 0 {
            f32::NAN
        } else {
            x[5] * 2.0 - x[6] + 0.1 * u[rows + r]
        });
    }
    tandem::Dataset {
        rows,
        inputs: 7,
        features,
        targets: vec![class, multi, value],
        feature_names: vec![],
    }
}
