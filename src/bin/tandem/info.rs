//! `tandem info`: the GPU adapters, the backend `auto` picks, and its limits.

use anyhow::Result;

pub fn info() -> Result<()> {
    let adapters = tandem::gpu::context::list_adapters();
    println!("tandem {}", env!("CARGO_PKG_VERSION"));
    if adapters.is_empty() {
        println!("adapters: none (install a Vulkan driver, e.g. Mesa's lavapipe: apt-get install mesa-vulkan-drivers libvulkan1)");
    } else {
        println!("adapters:");
        for a in &adapters {
            println!("  {}", tandem::gpu::context::describe(a));
        }
    }
    match tandem::gpu::GpuBackend::new() {
        Ok(g) => {
            let l = &g.context().limits;
            println!("backend auto: {}", tandem::Backend::describe(&g));
            println!(
                "  max buffer {} MiB, max storage binding {} MiB, {} storage buffers per stage, {} workgroups per dimension",
                l.max_buffer_size >> 20,
                l.max_storage_buffer_binding_size >> 20,
                l.max_storage_buffers_per_shader_stage,
                l.max_compute_workgroups_per_dimension
            );
        }
        Err(e) => println!("backend auto: cpu ({e})"),
    }
    Ok(())
}
