//! A bounds-checked front to the `gemm` crate: every CPU matrix product goes
//! through here. Strides let one routine serve x·Wᵀ, dz·W and dzᵀ·x without copies.

/// Where a matrix lives in a slice: element (r, c) is at `off + r·rs + c·cs`.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub off: usize,
    pub rs: usize,
    pub cs: usize,
}

impl Layout {
    /// Row-major with `cols` columns, starting at `off`.
    pub fn rows(off: usize, cols: usize) -> Self {
        Layout {
            off,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns, starting at `off`.
    pub fn transposed(off: usize, cols: usize) -> Self {
        Layout {
            off,
            rs: 1,
            cs: cols,
        }
    }
    fn last(&self, rows: usize, cols: usize) -> usize {
        self.off + (rows - 1) * self.rs + (cols - 1) * self.cs
    }
}

/// Products at least this large (m·n·k) use every core.
const PARALLEL_WORK: usize = 1 << 18;

/// True when `matmul` spreads an m×n×k product over every core itself.
pub fn uses_threads(m: usize, n: usize, k: usize) -> bool {
    m * n * k >= PARALLEL_WORK && m.min(n).min(k) >= 64
}

/// dst[m×n] (+)= lhs[m×k] · rhs[k×n]. Panics (a caller's bug) if a layout
/// runs past its slice.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    d: Layout,
    accumulate: bool,
    lhs: &[f32],
    l: Layout,
    rhs: &[f32],
    r: Layout,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(d.last(m, n) < dst.len(), "matmul: dst layout out of range");
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                for col in 0..n {
                    dst[d.off + row * d.rs + col * d.cs] = 0.0;
                }
            }
        }
        return;
    }
    assert!(l.last(m, k) < lhs.len(), "matmul: lhs layout out of range");
    assert!(r.last(k, n) < rhs.len(), "matmul: rhs layout out of range");
    // Thin products (a batch of 32 rows, a contraction over 32 rows) lose more
    // to thread hand-offs than they gain: the benchmark measured 8 fused
    // seed-sized members 1.4x slower threaded.
    let parallelism = if uses_threads(m, n, k) {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the asserts above keep every addressed element inside its slice;
    // dst is borrowed mutably and cannot alias lhs or rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr().add(d.off),
            d.cs as isize,
            d.rs as isize,
            accumulate,
            lhs.as_ptr().add(l.off),
            l.cs as isize,
            l.rs as isize,
            rhs.as_ptr().add(r.off),
            r.cs as isize,
            r.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}
