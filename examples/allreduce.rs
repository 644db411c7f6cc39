//! Times the all-reduce data-parallel training does once per step: the sum of
//! the flat gradient buffer over the ranks (through `train::Collective`, as the
//! trainer calls it), for the gradient sizes of the benchmark's seed and large
//! workloads, and for one value (the latency).
//!
//! ```text
//! cargo build --release --features mpi --example allreduce
//! mpirun -n 2 target/release/examples/allreduce
//! mpirun -n 4 --oversubscribe target/release/examples/allreduce
//! ```
//!
//! Rank 0 prints, per size: the median time of one all-reduce (each started
//! together after a barrier), the algorithmic bandwidth (bytes / time) and the
//! bus bandwidth (2(P−1)/P · bytes / time, what a ring all-reduce moves per
//! link: comparable across P and with a link's nominal bandwidth).

use std::rc::Rc;
use std::time::{Duration, Instant};
use tandem::dist::mpi::{MpiCollective, MpiJob};
use tandem::model::{Activation, Architecture};
use tandem::train::Collective;
use tandem::{Model, ModelSpec, TaskKind, TaskSpec};

/// Parameters (= gradient values) of a hard-sharing model of binary tasks.
fn params(inputs: usize, trunk: &[usize], tasks: usize, head: &[usize]) -> usize {
    let spec = ModelSpec {
        inputs,
        architecture: Architecture::Shared {
            trunk: trunk.to_vec(),
        },
        activation: Activation::Relu,
        tasks: (0..tasks)
            .map(|j| TaskSpec {
                name: format!("t{j}"),
                kind: TaskKind::Binary,
                weight: 1.0,
                head: head.to_vec(),
                outputs: 1,
            })
            .collect(),
        ..Default::default()
    };
    Model::new(spec, 0).network.layout.len
}

/// The median time of one all-reduce of `len` values, on every rank.
fn time_all_reduce(c: &dyn Collective, len: usize) -> Duration {
    let mut data = vec![1.0f32; len];
    let barrier = |c: &dyn Collective| c.all_reduce_max(&mut [0]).unwrap();
    // At least 20 repetitions and about a second, the same number on every rank.
    let reps = {
        barrier(c);
        let t = Instant::now();
        c.all_reduce_sum(&mut data).unwrap();
        let once = t.elapsed().as_secs_f64().max(1e-6);
        let mut n = [((1.0 / once) as u32).clamp(20, 10_000)];
        c.all_reduce_max(&mut n).unwrap();
        n[0]
    };
    let mut times = Vec::with_capacity(reps as usize);
    for _ in 0..reps {
        data.fill(1.0);
        barrier(c);
        let t = Instant::now();
        c.all_reduce_sum(&mut data).unwrap();
        times.push(t.elapsed());
    }
    assert!(data.iter().all(|&v| v == c.size() as f32), "wrong sums");
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let job = MpiJob::init().unwrap_or_else(|e| {
        eprintln!("allreduce: {e}");
        std::process::exit(1)
    });
    let c: Rc<MpiCollective> = job.collective.clone();
    let p = c.size();
    let sizes = [
        ("one value (latency)", 1),
        ("seed workload gradient", params(100, &[64], 2, &[])),
        (
            "large workload gradient",
            params(512, &[1024, 1024], 4, &[256]),
        ),
    ];
    if c.rank() == 0 {
        println!("{} ranks; {}", p, MpiCollective::library_version().trim());
        println!(
            "| {:<24} | {:>9} | {:>10} | {:>12} | {:>12} | {:>12} |",
            "all-reduce of", "values", "bytes", "median", "alg GB/s", "bus GB/s"
        );
        println!("| {} |", ["---"; 6].join(" | "));
    }
    for (what, len) in sizes {
        let t = time_all_reduce(c.as_ref(), len).as_secs_f64();
        let bytes = (4 * len) as f64;
        let bus = 2.0 * (p as f64 - 1.0) / p as f64 * bytes;
        if c.rank() == 0 {
            println!(
                "| {:<24} | {:>9} | {:>10} | {:>9.1} µs | {:>12.3} | {:>12.3} |",
                what,
                len,
                4 * len,
                t * 1e6,
                bytes / t / 1e9,
                bus / t / 1e9
            );
        }
    }
}
