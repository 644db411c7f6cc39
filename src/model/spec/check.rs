//! A spec checked before anything is allocated from it: at least one task,
//! every width ≥ 1, at least two classes per multiclass task, names usable in
//! tensor names, and every size within tandem's limits. The parameter and
//! tensor counts are computed in u128 from the spec alone (the same sums the
//! layout's placement makes), so a crafted spec (`inputs = 1e12`) is an error,
//! never an overflow or an allocation that aborts.

use std::collections::BTreeSet;

use super::{Architecture, ModelSpec, TaskKind, TaskSpec};
use crate::error::{Error, Result};

/// The most units of any width: inputs, a hidden layer, a task's outputs or classes.
pub const MAX_WIDTH: usize = 1 << 24;
/// The most tasks, experts per level, ensemble members, or layers in one stack.
pub const MAX_COUNT: usize = 1024;
/// The most named tensors in a model.
pub const MAX_TENSORS: usize = 1 << 20;
/// The most parameters of a model: 1 GiB of f32. Training keeps four such
/// vectors (weights, gradients, Adam's two moments), and every parameter
/// offset stays far inside the u32 the kernels index with.
pub const MAX_PARAMETERS: usize = 1 << 28;

/// How many tensors and parameters a spec's layout holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    pub tensors: usize,
    pub parameters: usize,
}

/// Counts in u128: with widths ≤ 2^24 and counts ≤ 2^10 no sum can overflow.
#[derive(Default)]
struct Count {
    tensors: u128,
    params: u128,
}

impl Count {
    /// `copies` dense layers W [outputs, inputs] + b [outputs].
    fn dense(&mut self, inputs: usize, outputs: usize, copies: usize) {
        let (i, o, c) = (inputs as u128, outputs as u128, copies as u128);
        self.tensors += 2 * c;
        self.params += c * (i * o + o);
    }

    /// `copies` stacks of dense layers `sizes` on `inputs`; returns the last width.
    fn chain(&mut self, inputs: usize, sizes: &[usize], copies: usize) -> usize {
        let mut width = inputs;
        for &h in sizes {
            self.dense(width, h, copies);
            width = h;
        }
        width
    }

    /// One head per task on `width`: its hidden layers, then its output layer.
    fn heads(&mut self, tasks: &[TaskSpec], width: usize) {
        for t in tasks {
            let w = self.chain(width, &t.head, 1);
            self.dense(w, t.outputs, 1);
        }
    }
}

impl ModelSpec {
    /// Checks the spec (see the module doc); the error names the field.
    pub fn check(&self) -> Result<Size> {
        let invalid = |m: String| Error::Invalid(format!("model spec: {m}"));
        let bad = |m: String| Err(invalid(m));
        if self.inputs == 0 {
            return bad("inputs must be ≥ 1".into());
        }
        if self.inputs > MAX_WIDTH {
            return bad(format!(
                "inputs = {} exceeds the limit {MAX_WIDTH}",
                self.inputs
            ));
        }
        check_tasks(&self.tasks).map_err(invalid)?;
        check_architecture(self).map_err(invalid)?;
        let size = self.size();
        if size.parameters > MAX_PARAMETERS {
            return bad(format!(
                "{} parameters ({} bytes as f32) exceed the limit {MAX_PARAMETERS} \
                 ({} bytes); make the layers narrower",
                size.parameters,
                size.parameters as u128 * 4,
                MAX_PARAMETERS * 4
            ));
        }
        if size.tensors > MAX_TENSORS {
            return bad(format!(
                "{} tensors exceed the limit {MAX_TENSORS}",
                size.tensors
            ));
        }
        Ok(size)
    }

    /// Tensors and parameters of the layout, saturated at `usize::MAX`. Only
    /// meaningful once the widths and counts are within the limits
    /// ([`ModelSpec::check`] checks them first).
    pub fn size(&self) -> Size {
        let mut c = Count::default();
        let t_n = self.tasks.len();
        match &self.architecture {
            Architecture::Shared { trunk } => {
                let w = c.chain(self.inputs, trunk, 1);
                c.heads(&self.tasks, w);
            }
            Architecture::Mmoe(x) => {
                let w = c.chain(self.inputs, &x.layers, x.count);
                c.dense(self.inputs, x.count, t_n);
                c.heads(&self.tasks, w);
            }
            Architecture::Ple(p) => {
                let e_n = p.shared + t_n * p.per_task;
                let mut width = self.inputs;
                for (l, &h) in p.levels.iter().enumerate() {
                    c.dense(width, h, e_n);
                    c.dense(width, p.shared + p.per_task, t_n);
                    if l + 1 < p.levels.len() {
                        c.dense(width, e_n, 1);
                    }
                    width = h;
                }
                c.heads(&self.tasks, width);
            }
            Architecture::Ensemble(e) => {
                let m = e.members.len();
                for member in &e.members {
                    let w = c.chain(self.inputs, &member.trunk, 1);
                    for t in &self.tasks {
                        c.dense(w, t.outputs, 1);
                    }
                }
                for t in &self.tasks {
                    match e.combine {
                        super::Combine::Stack => c.dense(m * t.outputs, t.outputs, 1),
                        super::Combine::Gate => c.dense(self.inputs, m, 1),
                        super::Combine::Mean | super::Combine::Concat => {}
                    }
                }
            }
        }
        let weighting = (usize::from(self.log_vars) + usize::from(self.gradnorm)) * t_n;
        c.tensors += weighting as u128;
        c.params += weighting as u128;
        let fit = |v: u128| usize::try_from(v).unwrap_or(usize::MAX);
        Size {
            tensors: fit(c.tensors),
            parameters: fit(c.params),
        }
    }

    /// The first difference between these tasks (a model's) and `other`
    /// (a config's): count, then per position name, kind and outputs. An
    /// `outputs` of 0 in `other` is still to be inferred and matches any.
    pub fn task_difference(&self, other: &[TaskSpec]) -> Option<String> {
        let names = |ts: &[TaskSpec]| ts.iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        if self.tasks.len() != other.len() {
            return Some(format!(
                "{} task(s) ({}) where the model has {} ({})",
                other.len(),
                names(other).join(", "),
                self.tasks.len(),
                names(&self.tasks).join(", ")
            ));
        }
        for (j, (ours, theirs)) in self.tasks.iter().zip(other).enumerate() {
            let what = if ours.name != theirs.name {
                format!("is named `{}`", theirs.name)
            } else if ours.kind != theirs.kind {
                format!("is {}", kind_name(theirs.kind))
            } else if theirs.outputs != 0 && ours.outputs != theirs.outputs {
                format!("has outputs = {}", theirs.outputs)
            } else {
                continue;
            };
            return Some(format!(
                "task {} {what} where the model's is `{}` ({}, outputs = {})",
                j + 1,
                ours.name,
                kind_name(ours.kind),
                ours.outputs
            ));
        }
        None
    }
}

fn kind_name(kind: TaskKind) -> &'static str {
    match kind {
        TaskKind::Binary => "binary",
        TaskKind::Multiclass => "multiclass",
        TaskKind::Regression => "regression",
    }
}

/// Letters, digits, '_' and '-', non-empty (names end up in tensor names).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Names valid and distinct; at most `MAX_COUNT`.
fn check_names<'a>(what: &str, names: impl Iterator<Item = &'a str>) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for name in names {
        if !valid_name(name) {
            return Err(format!(
                "{what} name `{name}` may only hold letters, digits, '_' and '-'"
            ));
        }
        if !seen.insert(name) {
            return Err(format!("{what} name `{name}` is used twice"));
        }
    }
    match seen.len() {
        n if n > MAX_COUNT => Err(format!("{n} {what}s exceed the limit {MAX_COUNT}")),
        _ => Ok(()),
    }
}

/// Every layer size in 1..=MAX_WIDTH, at most `MAX_COUNT` layers.
fn check_layers(key: &str, sizes: &[usize]) -> Result<(), String> {
    if sizes.len() > MAX_COUNT {
        return Err(format!(
            "{key} has {} layers, more than the limit {MAX_COUNT}",
            sizes.len()
        ));
    }
    match sizes.iter().find(|&&h| h == 0 || h > MAX_WIDTH) {
        Some(h) => Err(format!(
            "{key} = {sizes:?}: every layer size must be in 1..={MAX_WIDTH}, found {h}"
        )),
        None => Ok(()),
    }
}

/// At least one task; each with a valid name, ≥ 1 output (≥ 2 classes), a
/// finite weight ≥ 0 and valid head sizes.
fn check_tasks(tasks: &[TaskSpec]) -> Result<(), String> {
    if tasks.is_empty() {
        return Err("no tasks: a model needs at least one".into());
    }
    check_names("task", tasks.iter().map(|t| t.name.as_str()))?;
    for t in tasks {
        let min = if t.kind == TaskKind::Multiclass { 2 } else { 1 };
        if t.outputs < min || t.outputs > MAX_WIDTH {
            return Err(format!(
                "task `{}` ({}): outputs = {} must be in {min}..={MAX_WIDTH}",
                t.name,
                kind_name(t.kind),
                t.outputs
            ));
        }
        if !(t.weight.is_finite() && t.weight >= 0.0) {
            return Err(format!(
                "task `{}`: weight = {} must be finite and ≥ 0",
                t.name, t.weight
            ));
        }
        check_layers(&format!("task `{}` head", t.name), &t.head)?;
    }
    Ok(())
}

/// The architecture's counts and layer sizes.
fn check_architecture(spec: &ModelSpec) -> Result<(), String> {
    let count = |key: &str, n: usize| match n {
        0 => Err(format!("{key} must be ≥ 1")),
        n if n > MAX_COUNT => Err(format!("{key} = {n} exceeds the limit {MAX_COUNT}")),
        _ => Ok(()),
    };
    match &spec.architecture {
        Architecture::Shared { trunk } => check_layers("trunk", trunk),
        Architecture::Mmoe(x) => {
            count("experts", x.count)?;
            count("expert layers", x.layers.len())?;
            check_layers("expert", &x.layers)
        }
        Architecture::Ple(p) => {
            count("shared_experts", p.shared)?;
            count("task_experts", p.per_task)?;
            count("expert levels", p.levels.len())?;
            count(
                "shared_experts + tasks × task_experts",
                p.shared + spec.tasks.len() * p.per_task,
            )?;
            check_layers("expert", &p.levels)
        }
        Architecture::Ensemble(e) => {
            count("members", e.members.len())?;
            check_names("member", e.members.iter().map(|m| m.name.as_str()))?;
            e.members
                .iter()
                .try_for_each(|m| check_layers(&format!("member `{}` trunk", m.name), &m.trunk))
        }
    }
}
