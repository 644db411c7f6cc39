//! The parameter layout: every named tensor of a model as a view into one
//! flat f32 allocation (llm.c style). Gradients and optimizer state use the
//! same layout, so one offset addresses a weight, its gradient and its moments.
//! Sizes saturate rather than overflow; `ModelSpec::check` keeps a model far
//! below that (at most `spec::check::MAX_PARAMETERS`).

/// One named tensor inside the flat parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    /// Offset in elements into the flat vector.
    pub offset: usize,
}

impl TensorInfo {
    /// Number of elements (saturated: a spec that passed `ModelSpec::check`
    /// never comes near `usize::MAX`).
    pub fn len(&self) -> usize {
        self.shape.iter().fold(1usize, |n, &d| n.saturating_mul(d))
    }
    /// True for a tensor without elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where one dense layer's weight W [out, in] and bias b [out] live.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseSlot {
    pub inputs: usize,
    pub outputs: usize,
    /// Offset of W.
    pub w: usize,
    /// Offset of b: right after W (`add_dense`), or after all the group's
    /// weights (`add_dense_group`).
    pub bias: usize,
}

impl DenseSlot {
    /// Offset of the bias.
    pub fn b(&self) -> usize {
        self.bias
    }
    /// Elements of W and b together.
    pub fn len(&self) -> usize {
        self.inputs
            .saturating_mul(self.outputs)
            .saturating_add(self.outputs)
    }
    /// True for a layer without parameters (never built).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// All tensors of a model, in allocation order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParamLayout {
    pub tensors: Vec<TensorInfo>,
    /// Total elements.
    pub len: usize,
}

impl ParamLayout {
    /// Appends `{prefix}.weight` [outputs, inputs] and `{prefix}.bias` [outputs].
    pub fn add_dense(&mut self, prefix: &str, inputs: usize, outputs: usize) -> DenseSlot {
        let w = self.add(&format!("{prefix}.weight"), vec![outputs, inputs]);
        let bias = self.add(&format!("{prefix}.bias"), vec![outputs]);
        DenseSlot {
            inputs,
            outputs,
            w,
            bias,
        }
    }

    /// Appends the dense layers `{prefix}.weight` of every prefix, then every
    /// `{prefix}.bias`: the weights form one contiguous [K·out, in] matrix and
    /// the biases one [K·out] vector, so layer k's W is `k·in·out` and its b
    /// `k·out` past the first's (a batched dense over a shared input is then
    /// one matrix product). Returns the first layer's slot.
    pub fn add_dense_group(
        &mut self,
        prefixes: &[String],
        inputs: usize,
        outputs: usize,
    ) -> DenseSlot {
        assert!(!prefixes.is_empty(), "a dense group has layers");
        let w = self.len;
        for p in prefixes {
            self.add(&format!("{p}.weight"), vec![outputs, inputs]);
        }
        let bias = self.len;
        for p in prefixes {
            self.add(&format!("{p}.bias"), vec![outputs]);
        }
        DenseSlot {
            inputs,
            outputs,
            w,
            bias,
        }
    }

    /// Appends one tensor and returns its offset.
    pub fn add(&mut self, name: &str, shape: Vec<usize>) -> usize {
        let offset = self.len;
        let t = TensorInfo {
            name: name.to_string(),
            shape,
            offset,
        };
        self.len = self.len.saturating_add(t.len());
        self.tensors.push(t);
        offset
    }

    /// The tensor called `name`.
    pub fn find(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
