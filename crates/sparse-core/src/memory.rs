//! Memory accounting: bytes held by networks, gradients and optimiser state.

/// Bytes held, by category. Reports from different owners (a network, its gradients, its
/// optimiser) add up with `+`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryReport {
    /// Weight values (live connections only for sparse layers).
    pub values: usize,
    /// Column indices of sparse layers.
    pub col_indices: usize,
    /// Row pointers of sparse layers.
    pub row_ptrs: usize,
    /// Index structures the kernels build on first use: transposed structures of sparse layers
    /// (column pointers, row indices and value permutation for backward-data), and the full
    /// patterns of dense layers that run on the sparse kernels.
    pub transposed: usize,
    /// Biases.
    pub biases: usize,
    /// Gradient buffers (weights and biases).
    pub gradients: usize,
    /// Optimiser state (Adam's two moments per parameter).
    pub optimizer: usize,
}

impl MemoryReport {
    /// Sum of all categories.
    pub fn total(&self) -> usize {
        self.values
            + self.col_indices
            + self.row_ptrs
            + self.transposed
            + self.biases
            + self.gradients
            + self.optimizer
    }
}

impl std::ops::Add for MemoryReport {
    type Output = MemoryReport;
    fn add(self, o: MemoryReport) -> MemoryReport {
        MemoryReport {
            values: self.values + o.values,
            col_indices: self.col_indices + o.col_indices,
            row_ptrs: self.row_ptrs + o.row_ptrs,
            transposed: self.transposed + o.transposed,
            biases: self.biases + o.biases,
            gradients: self.gradients + o.gradients,
            optimizer: self.optimizer + o.optimizer,
        }
    }
}

impl std::iter::Sum for MemoryReport {
    fn sum<T: Iterator<Item = MemoryReport>>(iter: T) -> MemoryReport {
        iter.fold(MemoryReport::default(), |a, b| a + b)
    }
}

/// Bytes of `n` `f32` values.
pub(crate) fn f32_bytes(n: usize) -> usize {
    n * std::mem::size_of::<f32>()
}
