//! The parameter layout: every named tensor of a model as a view into one
//! flat f32 allocation (llm.c style). Gradients and optimizer state use the
//! same layout, so one offset addresses a weight, its gradient and its moments.

/// One named tensor inside the flat parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    /// Offset in elements into the flat vector.
    pub offset: usize,
}

impl TensorInfo {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// True for a tensor without elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Where one dense layer's weight W [out, in] and bias b [out] live; b follows W.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DenseSlot {
    pub inputs: usize,
    pub outputs: usize,
    /// Offset of W; b starts at `w + inputs·outputs`.
    pub w: usize,
}

impl DenseSlot {
    /// Offset of the bias.
    pub fn b(&self) -> usize {
        self.w + self.inputs * self.outputs
    }
    /// Elements of W and b together.
    pub fn len(&self) -> usize {
        self.inputs * self.outputs + self.outputs
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
        self.add(&format!("{prefix}.bias"), vec![outputs]);
        DenseSlot { inputs, outputs, w }
    }

    /// Appends one tensor and returns its offset.
    pub fn add(&mut self, name: &str, shape: Vec<usize>) -> usize {
        let offset = self.len;
        let t = TensorInfo {
            name: name.to_string(),
            shape,
            offset,
        };
        self.len += t.len();
        self.tensors.push(t);
        offset
    }

    /// The tensor called `name`.
    pub fn find(&self, name: &str) -> Option<&TensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}
