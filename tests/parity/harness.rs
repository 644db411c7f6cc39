//! The parity harness: the same ops on the plain CPU reference, the fast CPU
//! path and (when an adapter exists) the GPU, over sentinel-padded buffers;
//! both the fast path and the GPU are compared with the reference.

use tandem::cpu::CpuBackend;
use tandem::gpu::GpuBackend;
use tandem::ops::{BufId, Op};
use tandem::Backend;

/// Value every padding element holds; a kernel that writes past its range changes it.
pub const SENTINEL: f32 = 7777.0;

/// |a − b| ≤ atol + rtol·|b|, with NaN equal to NaN and an infinity equal to itself.
pub fn close(a: f32, b: f32, atol: f32, rtol: f32) -> bool {
    if a == b {
        return true;
    }
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

/// The same buffers on every backend, each padded with sentinels.
pub struct Harness<'a> {
    /// `cpu::reference` and the plain-loop twins: what the others must match.
    pub reference: CpuBackend,
    /// The fast CPU path (what CPU training runs).
    pub cpu: CpuBackend,
    pub gpu: Option<&'a mut GpuBackend>,
    regions: Vec<Region>,
}

impl<'a> Harness<'a> {
    pub fn new(mut gpu: Option<&'a mut GpuBackend>) -> Self {
        if let Some(g) = gpu.as_deref_mut() {
            g.clear();
        }
        Harness {
            reference: CpuBackend::reference(),
            cpu: CpuBackend::new(),
            gpu,
            regions: Vec::new(),
        }
    }

    /// Starts a new case: drops every buffer on every backend.
    pub fn reset(&mut self) {
        self.reference.clear();
        self.cpu.clear();
        if let Some(g) = self.gpu.as_deref_mut() {
            g.clear();
        }
        self.regions.clear();
    }

    /// Every backend under test, with its name.
    fn backends(&mut self) -> Vec<(&'static str, &mut dyn Backend)> {
        let mut all: Vec<(&'static str, &mut dyn Backend)> =
            vec![("reference", &mut self.reference), ("cpu", &mut self.cpu)];
        if let Some(g) = self.gpu.as_deref_mut() {
            all.push(("gpu", g));
        }
        all
    }

    /// A buffer holding `data` after `before` sentinels and followed by 67 more.
    pub fn buffer(&mut self, label: &str, before: usize, data: &[f32]) -> BufId {
        let after = 67;
        let mut full = vec![SENTINEL; before + data.len() + after];
        full[before..before + data.len()].copy_from_slice(data);
        let ids: Vec<BufId> = (self.backends().into_iter())
            .map(|(_, b)| {
                let id = b.alloc(full.len(), label).unwrap();
                b.write(id, 0, &full).unwrap();
                id
            })
            .collect();
        assert!(ids.iter().all(|&id| id == ids[0]));
        self.regions.push(Region {
            before,
            len: data.len(),
            label: label.to_string(),
        });
        ids[0]
    }

    /// A buffer of u32 values (indices, counters), unpadded.
    pub fn buffer_u32(&mut self, label: &str, data: &[u32]) -> BufId {
        self.buffer(label, 0, bytemuck::cast_slice(data))
    }

    /// An output region of `len` elements, pre-filled with sentinels too.
    pub fn output(&mut self, label: &str, before: usize, len: usize) -> BufId {
        self.buffer(label, before, &vec![SENTINEL; len])
    }

    /// Runs `ops` on every backend and compares every buffer of the fast CPU
    /// path and of the GPU with the reference, element by element; the
    /// padding must still hold sentinels everywhere. Returns the largest |Δ|
    /// seen in the data regions.
    pub fn check(&mut self, what: &str, ops: &[Op], atol: f32, rtol: f32) -> f32 {
        let mut results: Vec<(&'static str, Vec<Vec<f32>>)> = Vec::new();
        let regions = self.regions.len();
        for (name, b) in self.backends() {
            let p = b.prepare(ops).unwrap();
            b.run(p, 1).unwrap();
            let bufs = (0..regions).map(|k| b.read(BufId(k)).unwrap()).collect();
            results.push((name, bufs));
        }
        let (_, reference) = &results[0];
        let mut worst = 0.0f32;
        for (k, r) in self.regions.iter().enumerate() {
            for (i, y) in reference[k].iter().enumerate() {
                let inside = i >= r.before && i < r.before + r.len;
                assert!(
                    inside || y.to_bits() == SENTINEL.to_bits(),
                    "{what}: the reference wrote outside `{}` at element {i}",
                    r.label
                );
            }
            for (name, bufs) in &results[1..] {
                let mut mismatches = Vec::new();
                for (i, (&x, &y)) in bufs[k].iter().zip(&reference[k]).enumerate() {
                    let inside = i >= r.before && i < r.before + r.len;
                    if !inside {
                        if x.to_bits() != SENTINEL.to_bits() {
                            mismatches.push(format!(
                                "[{i}] outside the range: {name} {x} (sentinel overwritten)"
                            ));
                        }
                    } else if !close(x, y, atol, rtol) {
                        mismatches.push(format!("[{}] {name} {x} reference {y}", i - r.before));
                    } else if x.is_finite() && y.is_finite() {
                        worst = worst.max((x - y).abs());
                    }
                }
                assert!(
                    mismatches.is_empty(),
                    "{what}: buffer `{}` differs ({name} vs reference) in {} elements; first: {}",
                    r.label,
                    mismatches.len(),
                    mismatches[..mismatches.len().min(5)].join(", ")
                );
            }
        }
        worst
    }
}
