//! The GPU backend: buffers on the device, ops turned into pipelines and bind
//! groups once (`prepare`), replayed into one compute pass per `run` with one
//! submit (the wgpu examples' host pattern: storage in, storage out, a staging
//! buffer to read back).

pub mod context;
pub mod pipelines;

use crate::backend::{Backend, Counters, ProgramId};
use crate::ops::{BufId, Op};
use crate::{Error, Result};
use context::GpuContext;
use pipelines::Pipelines;

struct GpuBuffer {
    buffer: wgpu::Buffer,
    len: usize,
    label: String,
}

/// One recorded dispatch: everything created at `prepare` time.
struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    groups: (u32, u32),
    _uniform: wgpu::Buffer,
}

/// Buffers and programs on one GPU adapter.
pub struct GpuBackend {
    ctx: GpuContext,
    pipelines: Pipelines,
    bufs: Vec<GpuBuffer>,
    programs: Vec<Vec<Dispatch>>,
    counters: Counters,
}

/// Folds a flat workgroup count into a 2-D grid within the per-dimension limit;
/// the shaders rebuild the flat index as `wid.x + wid.y · nwg.x` and guard it.
pub fn fold_grid(count: u32, max_dim: u32) -> (u32, u32) {
    if count == 0 {
        return (0, 0);
    }
    let x = count.min(max_dim);
    (x, count.div_ceil(x))
}

impl GpuBackend {
    /// Opens the adapter the environment asks for (see `AdapterChoice::from_env`).
    pub fn new() -> Result<Self> {
        Ok(Self::with_context(GpuContext::new()?))
    }

    /// A backend on an already opened context.
    pub fn with_context(ctx: GpuContext) -> Self {
        GpuBackend {
            ctx,
            pipelines: Pipelines::default(),
            bufs: Vec::new(),
            programs: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// The device context (adapter info, limits).
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    fn check_buffer(&self, buf: BufId, offset: usize, count: usize, what: &str) -> Result<()> {
        let b = &self.bufs[buf.0];
        if offset.checked_add(count).is_none_or(|end| end > b.len) {
            return Err(Error::Invalid(format!(
                "{what} of {count} elements at {offset} past the end of buffer `{}` ({} elements)",
                b.label, b.len
            )));
        }
        Ok(())
    }

    fn record(&mut self, op: &Op) -> Result<Dispatch> {
        let kernel = op.kernel();
        let ids = op.buffers();
        for id in &ids {
            if id.0 >= self.bufs.len() {
                return Err(Error::Invalid(format!(
                    "{kernel:?}: unknown buffer {}",
                    id.0
                )));
            }
        }
        let pipeline = self.pipelines.get(&self.ctx, kernel)?;
        let (pipe, layout) = (pipeline.pipeline.clone(), pipeline.layout.clone());
        let uniform_bytes = op.uniform();
        if uniform_bytes.len() != kernel.info().uniform_size {
            return Err(Error::Invalid(format!(
                "{kernel:?}: {} bytes of arguments, its row in kernel::KERNELS says {}",
                uniform_bytes.len(),
                kernel.info().uniform_size
            )));
        }
        let ctx = &self.ctx;
        let bufs = &self.bufs;
        let (uniform, bind_group) = ctx.scoped(kernel.entry(), || {
            let uniform = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(kernel.entry()),
                size: uniform_bytes.len() as u64,
                usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            ctx.queue.write_buffer(&uniform, 0, &uniform_bytes);
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: uniform.as_entire_binding(),
            }];
            for (k, id) in ids.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: k as u32 + 1,
                    resource: bufs[id.0].buffer.as_entire_binding(),
                });
            }
            let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(kernel.entry()),
                layout: &layout,
                entries: &entries,
            });
            (uniform, bind_group)
        })?;
        let groups = fold_grid(
            op.workgroups(),
            self.ctx.limits.max_compute_workgroups_per_dimension,
        );
        Ok(Dispatch {
            pipeline: pipe,
            bind_group,
            groups,
            _uniform: uniform,
        })
    }
}

impl Backend for GpuBackend {
    fn describe(&self) -> String {
        format!("gpu: {}", self.ctx.describe())
    }
    fn is_gpu(&self) -> bool {
        true
    }
    fn alloc(&mut self, len: usize, label: &str) -> Result<BufId> {
        // In u128: `len · 4` as a usize wraps for a crafted size, and a wrapped
        // byte count would pass the limit below.
        let bytes = len.max(1) as u128 * 4;
        let limit = self
            .ctx
            .limits
            .max_storage_buffer_binding_size
            .min(self.ctx.limits.max_buffer_size);
        if bytes > u128::from(limit) {
            return Err(Error::Gpu(format!(
                "buffer `{label}` needs {bytes} bytes; adapter {} binds at most {limit}",
                self.ctx.describe()
            )));
        }
        let size = bytes as u64;
        let buffer = self.ctx.scoped(label, || {
            self.ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.bufs.push(GpuBuffer {
            buffer,
            len,
            label: label.to_string(),
        });
        Ok(BufId(self.bufs.len() - 1))
    }
    fn max_buffer_len(&self) -> usize {
        let limits = &self.ctx.limits;
        let bytes = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size);
        usize::try_from(bytes / 4).unwrap_or(usize::MAX)
    }
    fn len(&self, buf: BufId) -> usize {
        self.bufs[buf.0].len
    }
    fn write(&mut self, buf: BufId, offset: usize, data: &[f32]) -> Result<()> {
        self.check_buffer(buf, offset, data.len(), "write")?;
        if data.is_empty() {
            return Ok(());
        }
        self.ctx.queue.write_buffer(
            &self.bufs[buf.0].buffer,
            (offset * 4) as u64,
            bytemuck::cast_slice(data),
        );
        self.ctx.check("write_buffer")
    }
    fn read(&mut self, buf: BufId) -> Result<Vec<f32>> {
        let b = &self.bufs[buf.0];
        if b.len == 0 {
            return Ok(Vec::new());
        }
        let size = (b.len * 4) as u64;
        let ctx = &self.ctx;
        let staging = ctx.scoped("read", || {
            let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("staging"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("read"),
                });
            enc.copy_buffer_to_buffer(&b.buffer, 0, &staging, 0, size);
            ctx.queue.submit([enc.finish()]);
            staging
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.wait(&format!("reading `{}`", b.label))?;
        match rx.try_recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                return Err(Error::GpuOp {
                    op: format!("reading `{}`", b.label),
                    message: e.to_string(),
                })
            }
            Err(_) => {
                return Err(Error::GpuOp {
                    op: format!("reading `{}`", b.label),
                    message: "the map callback never ran".into(),
                })
            }
        }
        let data = {
            let view = staging
                .slice(..)
                .get_mapped_range()
                .map_err(|e| Error::GpuOp {
                    op: format!("reading `{}`", b.label),
                    message: e.to_string(),
                })?;
            bytemuck::cast_slice::<u8, f32>(&view).to_vec()
        };
        staging.unmap();
        self.counters.submits += 1;
        self.counters.bytes_read += size;
        Ok(data)
    }
    fn prepare(&mut self, ops: &[Op]) -> Result<ProgramId> {
        let mut program = Vec::with_capacity(ops.len());
        for op in ops {
            program.push(self.record(op)?);
        }
        self.programs.push(program);
        Ok(ProgramId(self.programs.len() - 1))
    }
    fn run(&mut self, program: ProgramId, repeats: u32) -> Result<()> {
        let dispatches = &self.programs[program.0];
        let ctx = &self.ctx;
        ctx.scoped("run", || {
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("step"),
                });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("step"),
                    timestamp_writes: None,
                });
                for _ in 0..repeats {
                    for d in dispatches {
                        if d.groups.0 == 0 {
                            continue;
                        }
                        pass.set_pipeline(&d.pipeline);
                        pass.set_bind_group(0, &d.bind_group, &[]);
                        pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
                    }
                }
            }
            ctx.queue.submit([enc.finish()]);
        })?;
        let n = dispatches.iter().filter(|d| d.groups.0 > 0).count() as u64;
        self.counters.submits += 1;
        self.counters.dispatches += n * repeats as u64;
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        self.ctx.wait("finish")
    }
    fn clear(&mut self) {
        self.programs.clear();
        self.bufs.clear();
    }
    fn counters(&self) -> Counters {
        self.counters
    }
}
