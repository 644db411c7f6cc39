//! Shared test helpers: the GPU backend (or a skip), and a harness that runs
//! the same ops on the CPU and the GPU over sentinel-padded buffers.
#![allow(dead_code)]

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::sync::{Mutex, OnceLock};
use tandem::cpu::CpuBackend;
use tandem::gpu::GpuBackend;
use tandem::ops::{BufId, Op};
use tandem::Backend;

/// Value every padding element holds; a kernel that writes past its range changes it.
pub const SENTINEL: f32 = 7777.0;

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

/// |a − b| ≤ atol + rtol·|b|, with NaN equal to NaN.
pub fn close(a: f32, b: f32, atol: f32, rtol: f32) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    (a - b).abs() <= atol + rtol * b.abs()
}

struct Region {
    before: usize,
    len: usize,
    label: String,
}

/// The same buffers on both backends, each padded with sentinels.
pub struct Harness<'a> {
    pub cpu: CpuBackend,
    pub gpu: &'a mut GpuBackend,
    regions: Vec<Region>,
}

impl<'a> Harness<'a> {
    pub fn new(gpu: &'a mut GpuBackend) -> Self {
        gpu.clear();
        Harness {
            cpu: CpuBackend::new(),
            gpu,
            regions: Vec::new(),
        }
    }

    /// Starts a new case: drops every buffer on both backends.
    pub fn gpu_reset(&mut self) {
        self.gpu.clear();
        self.cpu.clear();
        self.regions.clear();
    }

    /// A buffer holding `data` after `before` sentinels and followed by 67 more.
    pub fn buffer(&mut self, label: &str, before: usize, data: &[f32]) -> BufId {
        let after = 67;
        let mut full = vec![SENTINEL; before + data.len() + after];
        full[before..before + data.len()].copy_from_slice(data);
        let a = self.cpu.alloc(full.len(), label).unwrap();
        let b = self.gpu.alloc(full.len(), label).unwrap();
        assert_eq!(a, b);
        self.cpu.write(a, 0, &full).unwrap();
        self.gpu.write(b, 0, &full).unwrap();
        self.regions.push(Region {
            before,
            len: data.len(),
            label: label.to_string(),
        });
        a
    }

    /// A buffer of u32 values (indices, counters), unpadded.
    pub fn buffer_u32(&mut self, label: &str, data: &[u32]) -> BufId {
        self.buffer(label, 0, bytemuck::cast_slice(data))
    }

    /// An output region of `len` elements, pre-filled with sentinels too.
    pub fn output(&mut self, label: &str, before: usize, len: usize) -> BufId {
        self.buffer(label, before, &vec![SENTINEL; len])
    }

    /// Runs `ops` on both backends and compares every buffer, element by
    /// element; the padding must still hold sentinels on both. Returns the
    /// largest |Δ| seen in the data regions.
    pub fn check(&mut self, what: &str, ops: &[Op], atol: f32, rtol: f32) -> f32 {
        let p = self.cpu.prepare(ops).unwrap();
        self.cpu.run(p, 1).unwrap();
        let p = self.gpu.prepare(ops).unwrap();
        self.gpu.run(p, 1).unwrap();
        let mut worst = 0.0f32;
        for (k, r) in self.regions.iter().enumerate() {
            let c = self.cpu.read(BufId(k)).unwrap();
            let g = self.gpu.read(BufId(k)).unwrap();
            let mut mismatches = Vec::new();
            for (i, (&x, &y)) in g.iter().zip(&c).enumerate() {
                let inside = i >= r.before && i < r.before + r.len;
                if !inside {
                    assert_eq!(
                        y.to_bits(),
                        SENTINEL.to_bits(),
                        "{what}: CPU wrote outside `{}` at element {i}",
                        r.label
                    );
                    if x.to_bits() != SENTINEL.to_bits() {
                        mismatches.push(format!(
                            "[{i}] outside the range: gpu {x} (sentinel overwritten)"
                        ));
                    }
                } else if !close(x, y, atol, rtol) {
                    mismatches.push(format!("[{}] gpu {x} cpu {y}", i - r.before));
                } else if x.is_finite() && y.is_finite() {
                    worst = worst.max((x - y).abs());
                }
            }
            assert!(
                mismatches.is_empty(),
                "{what}: buffer `{}` differs in {} elements; first: {}",
                r.label,
                mismatches.len(),
                mismatches[..mismatches.len().min(5)].join(", ")
            );
        }
        worst
    }
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
