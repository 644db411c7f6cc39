//! The GPU context: adapter chosen from the environment, device with the
//! limits tandem needs raised to what the adapter offers, and errors caught
//! (error scopes, an uncaptured-error sink, device loss, bounded waits)
//! instead of wgpu's default panics.

use crate::{Error, Result};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long any wait on the device may take before it is reported as lost.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(120);

/// How to pick an adapter. `from_env` reads `WGPU_BACKEND` (e.g. "vulkan,metal"),
/// `WGPU_ADAPTER_NAME` (a case-insensitive substring), `WGPU_POWER_PREF`
/// ("low" / "high") and `TANDEM_FORCE_FALLBACK=1` (software adapter).
#[derive(Debug, Clone, Default)]
pub struct AdapterChoice {
    pub backends: Option<wgpu::Backends>,
    pub name: Option<String>,
    pub power: Option<wgpu::PowerPreference>,
    pub force_fallback: bool,
    /// On a machine with several adapters, take the k-th (modulo their
    /// number) of the best kind that matches `backends` and `name`: hardware
    /// before software, Vulkan/Metal/DX12 before GL (one GPU per rank of a job).
    pub index: Option<usize>,
}

impl AdapterChoice {
    /// The choice the environment asks for.
    pub fn from_env() -> Self {
        AdapterChoice {
            backends: wgpu::Backends::from_env(),
            name: std::env::var("WGPU_ADAPTER_NAME")
                .ok()
                .filter(|s| !s.is_empty()),
            power: wgpu::PowerPreference::from_env(),
            force_fallback: std::env::var("TANDEM_FORCE_FALLBACK").is_ok_and(|v| v == "1"),
            index: None,
        }
    }
}

/// Device, queue and what we know about the adapter.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Errors wgpu reported outside any error scope; checked after each submit.
    pub uncaptured: Arc<Mutex<Vec<String>>>,
    /// Set when the device is lost.
    pub lost: Arc<Mutex<Option<String>>>,
}

/// Every adapter the environment's backends expose, as "name (backend, type)".
pub fn list_adapters() -> Vec<wgpu::AdapterInfo> {
    let instance = new_instance(&AdapterChoice::from_env());
    pollster::block_on(
        instance.enumerate_adapters(wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())),
    )
    .iter()
    .map(|a| a.get_info())
    .collect()
}

fn new_instance(choice: &AdapterChoice) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = choice.backends.unwrap_or(wgpu::Backends::all());
    wgpu::Instance::new(desc)
}

/// The adapter `choice.name` and `choice.index` pick among those `backends` list.
fn pick_listed(choice: &AdapterChoice, backends: wgpu::Backends) -> Result<wgpu::Adapter> {
    let instance = new_instance(choice);
    let adapters = pollster::block_on(instance.enumerate_adapters(backends));
    let names: Vec<String> = adapters.iter().map(|a| describe(&a.get_info())).collect();
    let wanted = choice.name.as_ref().map(|n| n.to_lowercase());
    let mut matching: Vec<wgpu::Adapter> = (adapters.into_iter())
        .filter(|a| {
            let name = a.get_info().name.to_lowercase();
            wanted.as_ref().is_none_or(|w| name.contains(w))
        })
        .collect();
    if matching.is_empty() {
        let asked = match &choice.name {
            Some(name) => format!("WGPU_ADAPTER_NAME={name} matches no adapter"),
            None => format!("no GPU adapter among backends {backends:?}"),
        };
        return Err(Error::Gpu(format!(
            "{asked}; found: [{}]",
            names.join(", ")
        )));
    }
    let Some(k) = choice.index else {
        return Ok(matching.swap_remove(0));
    };
    let kind = |a: &wgpu::Adapter| {
        let i = a.get_info();
        (
            i.device_type == wgpu::DeviceType::Cpu,
            i.backend == wgpu::Backend::Gl,
        )
    };
    matching.sort_by_key(kind);
    let best = kind(&matching[0]);
    let n = matching.iter().take_while(|a| kind(a) == best).count();
    Ok(matching.swap_remove(k % n))
}

/// One line describing an adapter.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

impl GpuContext {
    /// Opens the adapter the environment asks for; an error (never a panic)
    /// when there is none.
    pub fn new() -> Result<Self> {
        Self::with_choice(&AdapterChoice::from_env())
    }

    /// Opens the adapter `choice` describes.
    pub fn with_choice(choice: &AdapterChoice) -> Result<Self> {
        let backends = choice.backends.unwrap_or(wgpu::Backends::all());
        let adapter = if choice.name.is_some() || choice.index.is_some() {
            pick_listed(choice, backends)?
        } else {
            let options = wgpu::RequestAdapterOptions {
                power_preference: choice
                    .power
                    .unwrap_or(wgpu::PowerPreference::HighPerformance),
                force_fallback_adapter: choice.force_fallback,
                compatible_surface: None,
                ..Default::default()
            };
            // Without WGPU_BACKEND, Vulkan/Metal/DX12 are asked first (probing GL
            // prints EGL errors on headless machines); GL is the last resort.
            let primary = new_instance(&AdapterChoice {
                backends: Some(choice.backends.unwrap_or(wgpu::Backends::PRIMARY)),
                ..choice.clone()
            });
            match pollster::block_on(primary.request_adapter(&options)) {
                Ok(a) => a,
                Err(e) if choice.backends.is_some() => {
                    return Err(Error::Gpu(format!(
                        "no GPU adapter ({e}); backends tried: {backends:?}"
                    )))
                }
                Err(_) => pollster::block_on(
                    new_instance(&AdapterChoice {
                        backends: Some(wgpu::Backends::GL),
                        ..choice.clone()
                    })
                    .request_adapter(&options),
                )
                .map_err(|e| {
                    Error::Gpu(format!(
                        "no GPU adapter ({e}); tried Vulkan, Metal, DX12 and GL"
                    ))
                })?,
            }
        };
        let info = adapter.get_info();
        let offered = adapter.limits();
        // tandem's kernels need 6 storage buffers per stage and 256-thread workgroups;
        // everything else is raised to what the adapter offers (bigger buffers).
        let needed = wgpu::Limits {
            max_storage_buffers_per_shader_stage: 6,
            max_compute_invocations_per_workgroup: 256,
            max_compute_workgroup_size_x: 256,
            ..wgpu::Limits::downlevel_defaults()
        };
        if offered.max_storage_buffers_per_shader_stage
            < needed.max_storage_buffers_per_shader_stage
            || offered.max_compute_invocations_per_workgroup < 256
        {
            return Err(Error::Gpu(format!(
                "adapter {} lacks compute limits tandem needs (6 storage buffers per stage, 256 invocations per workgroup)",
                describe(&info)
            )));
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("tandem"),
            required_features: wgpu::Features::empty(),
            required_limits: offered.clone(),
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("request_device on {}: {e}", describe(&info))))?;
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        let lost = Arc::new(Mutex::new(None));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            *lost_flag.lock().unwrap() = Some(format!("{reason:?}: {msg}"));
        });
        let limits = device.limits();
        Ok(GpuContext {
            device,
            queue,
            info,
            limits,
            uncaptured,
            lost,
        })
    }

    /// One line naming the adapter.
    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    /// Runs `f` inside validation and out-of-memory error scopes and turns
    /// what they catch into `Error::GpuOp` naming `op`.
    pub fn scoped<T>(&self, op: &str, f: impl FnOnce() -> T) -> Result<T> {
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let value = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = v.or(o) {
            return Err(Error::GpuOp {
                op: op.to_string(),
                message: e.to_string(),
            });
        }
        self.check(op)?;
        Ok(value)
    }

    /// Fails if the device was lost or an uncaptured error arrived.
    pub fn check(&self, op: &str) -> Result<()> {
        if let Some(reason) = self.lost.lock().unwrap().clone() {
            return Err(Error::GpuOp {
                op: op.to_string(),
                message: format!("device lost ({reason})"),
            });
        }
        let mut errs = self.uncaptured.lock().unwrap();
        if !errs.is_empty() {
            let message = errs.join("; ");
            errs.clear();
            return Err(Error::GpuOp {
                op: op.to_string(),
                message,
            });
        }
        Ok(())
    }

    /// Waits for all submitted work, at most `WAIT_TIMEOUT`.
    pub fn wait(&self, op: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::Wait {
                submission_index: None,
                timeout: Some(WAIT_TIMEOUT),
            })
            .map_err(|e| Error::GpuOp {
                op: op.to_string(),
                message: format!("waiting for the device: {e}"),
            })?;
        self.check(op)
    }
}
