//! Weights files (safetensors): a saved model is one file holding every
//! tensor under its DESIGN §3 name, with the spec (and the CSV preprocessing)
//! as JSON in `__metadata__`. Plain weight files (no metadata) load into a
//! model whose spec comes from a config, e.g. `--init`.

use super::params::ParamLayout;
use super::{Model, ModelSpec};
use crate::io::Preprocess;
use crate::{Error, Result};
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

const FORMAT: &str = "tandem-1";

/// Reads every tensor of `layout` from `path` into a flat vector. A missing,
/// extra, non-f32 or mis-shaped tensor is an error naming it (and both shapes).
pub fn read_tensors(path: &Path, layout: &ParamLayout) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::weights(path, format!("not a safetensors file: {e}")))?;
    let mut values = vec![0.0f32; layout.len];
    for t in &layout.tensors {
        if let (Some(v), Err(_)) = (super::weighting_init(&t.name), st.tensor(&t.name)) {
            // Weighting state is not a weight: an init file from elsewhere lacks it.
            values[t.offset] = v;
            continue;
        }
        let view = st.tensor(&t.name).map_err(|_| {
            Error::weights(
                path,
                format!("missing tensor `{}` (shape {:?})", t.name, t.shape),
            )
        })?;
        if view.shape() != t.shape.as_slice() {
            return Err(Error::weights(
                path,
                format!(
                    "tensor `{}`: expected shape {:?}, found {:?}",
                    t.name,
                    t.shape,
                    view.shape()
                ),
            ));
        }
        if view.dtype() != Dtype::F32 {
            return Err(Error::weights(
                path,
                format!(
                    "tensor `{}`: expected F32, found {:?}",
                    t.name,
                    view.dtype()
                ),
            ));
        }
        let dst = &mut values[t.offset..t.offset + t.len()];
        for (d, chunk) in dst.iter_mut().zip(view.data().chunks_exact(4)) {
            *d = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
    }
    let mut extra: Vec<&str> = st
        .names()
        .into_iter()
        .filter(|n| {
            // Optimizer and task-weighting state of another run's checkpoint is not a weight.
            layout.find(n).is_none()
                && !n.starts_with("adam.")
                && !n.starts_with("sgd.")
                && !n.starts_with("weighting.")
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
    Ok(values)
}

/// Writes `values` (in `layout`) plus `metadata` to `path`, atomically: a
/// temporary file renamed over the target, so a failed write loses nothing.
pub fn write_tensors(
    path: &Path,
    layout: &ParamLayout,
    values: &[f32],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = layout
        .tensors
        .iter()
        .map(|t| bytemuck::cast_slice(&values[t.offset..t.offset + t.len()]).to_vec())
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView)> = layout
        .tensors
        .iter()
        .zip(&bytes)
        .map(|(t, b)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, t.shape.clone(), b)
                .expect("shape matches data");
            (t.name.clone(), view)
        })
        .collect();
    let data = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::weights(path, format!("serialising: {e}")))?;
    let tmp = path.with_extension("safetensors.partial");
    std::fs::write(&tmp, data).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

impl Model {
    /// Replaces the parameters with those in a plain weights file (DESIGN §3 names).
    pub fn load_weights(&mut self, path: impl AsRef<Path>) -> Result<()> {
        self.params = read_tensors(path.as_ref(), &self.network.layout)?;
        Ok(())
    }

    /// Saves the model: tensors plus the spec and preprocessing in the metadata.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let mut meta = HashMap::new();
        meta.insert("format".to_string(), FORMAT.to_string());
        meta.insert(
            "spec".to_string(),
            serde_json::to_string(&self.spec).expect("spec serialises"),
        );
        if let Some(p) = &self.preprocess {
            meta.insert("preprocess".to_string(), p.to_json());
        }
        if !self.task_weights.is_empty() {
            meta.insert(
                "task_weights".to_string(),
                serde_json::to_string(&self.task_weights).expect("numbers serialise"),
            );
        }
        write_tensors(path.as_ref(), &self.network.layout, &self.params, meta)
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
        let spec: ModelSpec = serde_json::from_str(spec_json)
            .map_err(|e| Error::weights(path, format!("metadata `spec`: {e}")))?;
        let mut model = Model::new(spec, 0);
        model.params = read_tensors(path, &model.network.layout)?;
        if let Some(p) = meta.get("preprocess") {
            model.preprocess = Some(Preprocess::from_json(p)?);
        }
        if let Some(w) = meta.get("task_weights") {
            model.task_weights = serde_json::from_str(w)
                .map_err(|e| Error::weights(path, format!("metadata `task_weights`: {e}")))?;
        }
        Ok(model)
    }
}
