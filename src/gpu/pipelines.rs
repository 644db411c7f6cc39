//! Compute pipelines, created once per kernel and cached (candle's kernel
//! registry): one shader module per WGSL file, one explicit bind group layout
//! per kernel from `Kernel::bindings`.

use super::context::GpuContext;
use crate::kernel::{Access, Kernel};
use crate::Result;
use std::collections::HashMap;

/// A kernel's pipeline and the layout its bind groups use.
pub struct Pipeline {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// Cache of shader modules and pipelines.
#[derive(Default)]
pub struct Pipelines {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    pipelines: HashMap<Kernel, Pipeline>,
}

fn layout_entries(kernel: Kernel) -> Vec<wgpu::BindGroupLayoutEntry> {
    let mut entries = vec![wgpu::BindGroupLayoutEntry {
        binding: 0,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }];
    for (k, access) in kernel.bindings().iter().enumerate() {
        entries.push(wgpu::BindGroupLayoutEntry {
            binding: k as u32 + 1,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: *access == Access::Read,
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            count: None,
        });
    }
    entries
}

impl Pipelines {
    /// The pipeline of `kernel`, built on first use.
    pub fn get(&mut self, ctx: &GpuContext, kernel: Kernel) -> Result<&Pipeline> {
        if !self.pipelines.contains_key(&kernel) {
            let file = kernel.file();
            if !self.modules.contains_key(file) {
                let module = ctx.scoped(file, || {
                    ctx.device
                        .create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(file),
                            source: wgpu::ShaderSource::Wgsl(kernel.source().into()),
                        })
                })?;
                self.modules.insert(file, module);
            }
            let module = &self.modules[file];
            let pipeline = ctx.scoped(kernel.entry(), || {
                let layout =
                    ctx.device
                        .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                            label: Some(kernel.entry()),
                            entries: &layout_entries(kernel),
                        });
                let pipeline_layout =
                    ctx.device
                        .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                            label: Some(kernel.entry()),
                            bind_group_layouts: &[Some(&layout)],
                            immediate_size: 0,
                        });
                let pipeline =
                    ctx.device
                        .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                            label: Some(kernel.entry()),
                            layout: Some(&pipeline_layout),
                            module,
                            entry_point: Some(kernel.entry()),
                            compilation_options: Default::default(),
                            cache: None,
                        });
                Pipeline { pipeline, layout }
            })?;
            self.pipelines.insert(kernel, pipeline);
        }
        Ok(&self.pipelines[&kernel])
    }
}
