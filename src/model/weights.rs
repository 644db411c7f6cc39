//! Weights files (safetensors): a saved model is one file holding every
//! tensor under its layout name (`trunk.{i}.weight`, `heads.{task}.{i}.bias`,
//! `members.{name}.…`, `experts.{e}.{l}.…`; weights [out, in] as in PyTorch),
//! with the spec (and the CSV preprocessing) as JSON in `__metadata__`.
//! Plain weight files (no metadata) load into a model whose spec comes from a
//! config, e.g. `--init`.

use super::params::ParamLayout;
use super::spec::legacy::SpecV1;
use super::spec::preprocess::Preprocess;
use super::{Model, ModelSpec};
use crate::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The metadata format written: `tandem-2` holds the architecture as one
/// tagged value (`"architecture": {"mmoe": {…}}`).
const FORMAT: &str = "tandem-2";
/// The first format (no `format` key counts as it too): `experts`, `ple` and
/// `ensemble` as exclusive options beside a `trunk` (see `spec::legacy`).
const FORMAT_V1: &str = "tandem-1";

fn deserialize<'a>(path: &Path, bytes: &'a [u8]) -> Result<SafeTensors<'a>> {
    SafeTensors::deserialize(bytes)
        .map_err(|e| Error::weights(path, format!("not a safetensors file: {e}")))
}

/// Reads one f32 tensor of an exact shape from `st`, naming it (as `shown`) on error.
fn read_tensor(
    path: &Path,
    st: &SafeTensors,
    name: &str,
    shown: &str,
    shape: &[usize],
    dst: &mut [f32],
) -> Result<()> {
    let view = st
        .tensor(name)
        .map_err(|_| Error::weights(path, format!("missing tensor `{shown}` (shape {shape:?})")))?;
    if view.shape() != shape {
        return Err(Error::weights(
            path,
            format!(
                "tensor `{shown}`: expected shape {shape:?}, found {:?}",
                view.shape()
            ),
        ));
    }
    if view.dtype() != Dtype::F32 {
        return Err(Error::weights(
            path,
            format!("tensor `{shown}`: expected F32, found {:?}", view.dtype()),
        ));
    }
    for (d, chunk) in dst.iter_mut().zip(view.data().chunks_exact(4)) {
        *d = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    check_finite(path, shown, shape, dst)
}

/// A weight that is NaN or ±inf is an error naming the tensor and the element.
fn check_finite(path: &Path, shown: &str, shape: &[usize], values: &[f32]) -> Result<()> {
    let Some(i) = values.iter().position(|v| !v.is_finite()) else {
        return Ok(());
    };
    let mut index = Vec::with_capacity(shape.len());
    let mut rest = i;
    for &d in shape.iter().rev() {
        index.push(rest % d.max(1));
        rest /= d.max(1);
    }
    index.reverse();
    let bad = values.iter().filter(|v| !v.is_finite()).count();
    Err(Error::weights(
        path,
        format!(
            "tensor `{shown}`: non-finite value {} at index {index:?} ({bad} of {} values are NaN or ±inf)",
            values[i],
            values.len()
        ),
    ))
}

/// Reads the tensors of `layout` found in `path` into `values`. A tensor
/// missing from the file is an error unless `optional(name)`; a tensor the
/// model does not have, a wrong dtype or a wrong shape is an error naming it
/// (and both shapes).
pub fn read_into(
    path: &Path,
    layout: &ParamLayout,
    values: &mut [f32],
    optional: &dyn Fn(&str) -> bool,
) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = deserialize(path, &bytes)?;
    for t in &layout.tensors {
        if let (Some(v), Err(_)) = (super::weighting_init(&t.name), st.tensor(&t.name)) {
            // Weighting state is not a weight: an init file from elsewhere lacks it.
            values[t.offset] = v;
            continue;
        }
        if st.tensor(&t.name).is_err() && optional(&t.name) {
            continue;
        }
        read_tensor(
            path,
            &st,
            &t.name,
            &t.name,
            &t.shape,
            &mut values[t.offset..t.offset + t.len()],
        )?;
    }
    let mut extra: Vec<&str> = st
        .names()
        .into_iter()
        .filter(|n| {
            // Optimizer and task-weighting state of another run's checkpoint
            // (`checkpoint.*` in tandem's own) is not a weight.
            layout.find(n).is_none()
                && !n.starts_with("adam.")
                && !n.starts_with("sgd.")
                && !n.starts_with("weighting.")
                && !n.starts_with("checkpoint.")
        })
        .collect();
    if !extra.is_empty() {
        extra.sort();
        return Err(Error::weights(
            path,
            format!(
                "unexpected tensor(s) not in the model: {}",
                extra.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Reads every tensor of `layout` from `path` into a flat vector (all required).
pub fn read_tensors(path: &Path, layout: &ParamLayout) -> Result<Vec<f32>> {
    let mut values = super::zeros(layout.len, "weights")?;
    read_into(path, layout, &mut values, &|_| false)?;
    Ok(values)
}

/// Numeric indices of the `N.weight` keys of a PyTorch `nn.Sequential` state dict, in order.
fn sequential_linears(st: &SafeTensors) -> Vec<usize> {
    let mut idx: Vec<usize> = st
        .names()
        .iter()
        .filter_map(|n| n.strip_suffix(".weight").and_then(|k| k.parse().ok()))
        .collect();
    idx.sort_unstable();
    idx
}

/// The safetensors bytes of `values` (in `layout`) with `metadata`. Equal
/// inputs give equal bytes: tensors in name order and, in the JSON header,
/// every key sorted (safetensors itself writes the metadata in hash order).
pub fn tensor_bytes(
    layout: &ParamLayout,
    values: &[f32],
    metadata: BTreeMap<String, String>,
) -> Result<Vec<u8>> {
    let fail = |e: &dyn std::fmt::Display| Error::Invalid(format!("serialising the model: {e}"));
    let bytes: Vec<&[u8]> = layout
        .tensors
        .iter()
        .map(|t| {
            let v = values.get(t.offset..t.offset + t.len());
            v.map(bytemuck::cast_slice)
                .ok_or_else(|| fail(&format!("tensor `{}` lies outside the values", t.name)))
        })
        .collect::<Result<_>>()?;
    let views = layout
        .tensors
        .iter()
        .zip(bytes)
        .map(|(t, b)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), b)
                .map_err(|e| fail(&e))?;
            Ok((t.name.clone(), view))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata: HashMap<String, String> = metadata.into_iter().collect();
    let data = safetensors::serialize(views, Some(metadata)).map_err(|e| fail(&e))?;
    sort_header(&data).map_err(|e| fail(&e))
}

/// `file` (safetensors bytes) with its JSON header's object keys sorted and
/// re-padded to 8 bytes; the tensor data is unchanged (offsets are relative
/// to the end of the header).
fn sort_header(file: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let len: [u8; 8] = file
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .ok_or("no header length")?;
    let end = usize::try_from(u64::from_le_bytes(len))
        .ok()
        .and_then(|n| n.checked_add(8))
        .filter(|&end| end <= file.len())
        .ok_or("header length past the end")?;
    let mut header: serde_json::Value =
        serde_json::from_slice(&file[8..end]).map_err(|e| e.to_string())?;
    header.sort_all_objects();
    let mut text = serde_json::to_vec(&header).map_err(|e| e.to_string())?;
    text.resize(text.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + text.len() + file.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&file[end..]);
    Ok(out)
}

/// Writes `bytes` to `path` without ever leaving it half-written (see
/// [`crate::files::write_atomically`]).
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_atomically(path, bytes)
}

/// Writes `values` (in `layout`) plus `metadata` to `path` ([`tensor_bytes`]
/// through [`write_file`]): a failed write loses nothing.
pub fn write_tensors(
    path: &Path,
    layout: &ParamLayout,
    values: &[f32],
    metadata: BTreeMap<String, String>,
) -> Result<()> {
    write_file(path, &tensor_bytes(layout, values, metadata)?)
}

impl Model {
    /// Loads member `name`'s tensors from a single-model file: tandem naming
    /// (`trunk.{i}.*`, `heads.{task}.0.*`, as a saved tandem model or the
    /// golden member files have them) or a PyTorch `nn.Sequential` state dict
    /// saved with safetensors (`0.weight`, `2.weight`, …: the k-th Linear is
    /// the member's k-th layer, trunk first, then one output layer per task).
    pub fn load_member(&mut self, name: &str, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let prefix = format!("members.{name}.");
        let mine: Vec<(usize, String)> = self
            .layout()
            .tensors
            .iter()
            .enumerate()
            .filter_map(|(k, t)| t.name.strip_prefix(&prefix).map(|s| (k, s.to_string())))
            .collect();
        if mine.is_empty() {
            return Err(Error::Invalid(format!("the model has no member `{name}`")));
        }
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = deserialize(path, &bytes)?;
        let layout = self.network.layout.clone();
        let linears = sequential_linears(&st);
        let tandem_names = st
            .names()
            .iter()
            .any(|n| n.starts_with("trunk.") || n.starts_with("heads."));
        if tandem_names {
            for (k, short) in &mine {
                let t = &layout.tensors[*k];
                read_tensor(
                    path,
                    &st,
                    short,
                    short,
                    &t.shape,
                    &mut self.params[t.offset..t.offset + t.len()],
                )?;
            }
            let mut extra: Vec<&str> = st
                .names()
                .into_iter()
                .filter(|n| !mine.iter().any(|(_, s)| s == n))
                .collect();
            if !extra.is_empty() {
                extra.sort();
                return Err(Error::weights(
                    path,
                    format!(
                        "member `{name}`: tensor(s) the member does not have: {}",
                        extra.join(", ")
                    ),
                ));
            }
        } else if !linears.is_empty() {
            // Member layers in order: weights of mine, paired with their biases.
            let layers: Vec<&(usize, String)> = mine
                .iter()
                .filter(|(_, s)| s.ends_with(".weight"))
                .collect();
            if layers.len() != linears.len() {
                return Err(Error::weights(
                    path,
                    format!(
                        "member `{name}` has {} dense layers, the nn.Sequential state dict has {} Linear layers ({})",
                        layers.len(),
                        linears.len(),
                        linears.iter().map(|i| format!("{i}.weight")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            for ((k, short), idx) in layers.into_iter().zip(&linears) {
                let w = &layout.tensors[*k];
                let b = &layout.tensors[*k + 1];
                let shown = format!("{idx}.weight (member layer {short})");
                read_tensor(
                    path,
                    &st,
                    &format!("{idx}.weight"),
                    &shown,
                    &w.shape,
                    &mut self.params[w.offset..w.offset + w.len()],
                )?;
                let shown = format!(
                    "{idx}.bias (member layer {})",
                    b.name.trim_start_matches(&prefix)
                );
                read_tensor(
                    path,
                    &st,
                    &format!("{idx}.bias"),
                    &shown,
                    &b.shape,
                    &mut self.params[b.offset..b.offset + b.len()],
                )?;
            }
        } else {
            return Err(Error::weights(
                path,
                format!("member `{name}`: no tensors named like a tandem model (trunk.0.weight, heads.<task>.0.weight) or a PyTorch nn.Sequential (0.weight, …)"),
            ));
        }
        Ok(())
    }

    /// Builds the model `spec` describes ([`Model::new`] with `seed`), with
    /// ensemble members loaded from their `weights` files.
    pub fn from_spec(spec: &ModelSpec, seed: u64) -> Result<Model> {
        let mut model = Model::try_new(spec.clone(), seed)?;
        for m in spec.members() {
            if let Some(w) = &m.weights {
                model.load_member(&m.name, w)?;
            }
        }
        Ok(model)
    }

    /// Loads an init file (`--init`): every tensor the model has must be in
    /// it, except those of members loaded from their own `weights` file.
    pub fn load_init(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let from_files: Vec<String> = self
            .spec
            .members()
            .iter()
            .filter(|m| m.weights.is_some())
            .map(|m| format!("members.{}.", m.name))
            .collect();
        let layout = self.network.layout.clone();
        read_into(path.as_ref(), &layout, &mut self.params, &|name| {
            from_files.iter().any(|p| name.starts_with(p.as_str()))
        })
    }

    /// Replaces the parameters with those in a plain weights file (layout names).
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.params = read_tensors(path.as_ref(), &self.network.layout)?;
        Ok(())
    }

    /// The bytes [`Model::save`] writes: tensors plus the spec, the
    /// preprocessing and the task-weight history in the metadata. The same
    /// model always gives the same bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        tensor_bytes(&self.network.layout, &self.params, self.metadata()?)
    }

    /// The metadata [`Model::to_bytes`] writes: the format, the spec, the
    /// preprocessing and the task-weight history.
    pub fn metadata(&self) -> Result<BTreeMap<String, String>> {
        let json = |what: &str, r: serde_json::Result<String>| {
            r.map_err(|e| Error::Invalid(format!("serialising the model's {what}: {e}")))
        };
        let mut meta = BTreeMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert(
            "spec".to_string(),
            json("spec", serde_json::to_string(&self.spec))?,
        );
        if let Some(p) = &self.preprocess {
            meta.insert("preprocess".to_string(), p.to_json());
        }
        if !self.task_weights.is_empty() {
            let w = json("task weights", serde_json::to_string(&self.task_weights))?;
            meta.insert("task_weights".to_string(), w);
        }
        Ok(meta)
    }

    /// Saves the model ([`Model::to_bytes`]) through a temporary file: a
    /// failed save leaves an existing file as it was. Weights only: no
    /// optimizer state, step counter or shuffle position; a run that is to
    /// continue exactly saves a checkpoint (`train::checkpoint`) instead.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_file(path.as_ref(), &self.to_bytes()?)
    }

    /// Loads a model saved by [`Model::save`].
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let (_, header) = SafeTensors::read_metadata(&bytes)
            .map_err(|e| Error::weights(path, format!("not a safetensors file: {e}")))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let spec_json = meta.get("spec").ok_or_else(|| {
            Error::weights(
                path,
                "no model spec in the metadata: a plain weights file loads with `--init` and a config",
            )
        })?;
        let bad_spec = |e: serde_json::Error| Error::weights(path, format!("metadata `spec`: {e}"));
        let spec: ModelSpec = match meta.get("format").map(String::as_str) {
            None | Some(FORMAT_V1) => serde_json::from_str::<SpecV1>(spec_json)
                .map_err(bad_spec)?
                .into(),
            Some(FORMAT) => serde_json::from_str(spec_json).map_err(bad_spec)?,
            Some(other) => {
                return Err(Error::weights(
                    path,
                    format!(
                        "model format `{other}` is not one this tandem reads \
                         ({FORMAT_V1} or {FORMAT}): it was saved by another version"
                    ),
                ))
            }
        };
        // Checked before anything is allocated from it: a crafted spec is an error.
        let mut model = Model::try_new(spec, 0)
            .map_err(|e| Error::weights(path, format!("metadata `spec`: {e}")))?;
        let layout = model.network.layout.clone();
        read_into(path, &layout, &mut model.params, &|_| false)?;
        if let Some(p) = meta.get("preprocess") {
            let p = Preprocess::from_json(p)?;
            p.check(&model.spec)
                .map_err(|e| Error::weights(path, format!("metadata `preprocess`: {e}")))?;
            model.preprocess = Some(p);
        }
        if let Some(w) = meta.get("task_weights") {
            model.task_weights = serde_json::from_str(w)
                .map_err(|e| Error::weights(path, format!("metadata `task_weights`: {e}")))?;
        }
        Ok(model)
    }
}
