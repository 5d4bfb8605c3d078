//! The crate's error type: every constructor and shape check reports through it.

/// Everything that can go wrong when building or using sparse-core objects.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// `row_ptr` must have `n_rows + 1` entries.
    #[error("row_ptr has {got} entries, expected n_rows + 1 = {expected}")]
    RowPtrLength {
        /// `n_rows + 1`.
        expected: usize,
        /// Entries given.
        got: usize,
    },
    /// `row_ptr[0]` must be 0.
    #[error("row_ptr must start at 0, found {0}")]
    RowPtrStart(usize),
    /// `row_ptr` must never decrease.
    #[error("row_ptr decreases at row {row}")]
    RowPtrDecreasing {
        /// First row whose end lies before its start.
        row: usize,
    },
    /// `row_ptr[n_rows]`, the column-index count and the value count must agree.
    #[error(
        "row_ptr ends at {row_ptr_end} but there are {col_indices} column indices and {values} values"
    )]
    NnzMismatch {
        /// Last entry of `row_ptr`.
        row_ptr_end: usize,
        /// Length of the column-index array.
        col_indices: usize,
        /// Length of the value array.
        values: usize,
    },
    /// A column index is not below the column count.
    #[error("row {row}: column {col} is out of range (matrix has {n_cols} columns)")]
    ColumnOutOfRange {
        /// Row holding the entry.
        row: usize,
        /// The offending column.
        col: usize,
        /// Number of columns.
        n_cols: usize,
    },
    /// Columns within a row must increase.
    #[error("row {row}: columns are not sorted (column {col} follows a larger one)")]
    UnsortedColumns {
        /// Row holding the entries.
        row: usize,
        /// The column that broke the order.
        col: usize,
    },
    /// A column appears twice in one row.
    #[error("row {row}: column {col} appears twice")]
    DuplicateColumn {
        /// Row holding the entries.
        row: usize,
        /// The repeated column.
        col: usize,
    },
    /// The index type cannot address this many columns.
    #[error("{n_cols} columns do not fit the {index_bits}-bit column index type")]
    TooManyColumns {
        /// Columns requested.
        n_cols: usize,
        /// Width of the index type.
        index_bits: u32,
    },
    /// More stored entries than the 32-bit row pointers can address.
    #[error("{0} stored entries exceed the 32-bit row-pointer range")]
    TooManyEntries(usize),
    /// A weight, bias or other parameter is NaN or infinite.
    #[error("{what}[{index}] is not finite ({value})")]
    NonFinite {
        /// Which array.
        what: &'static str,
        /// Position in it.
        index: usize,
        /// The value found.
        value: f32,
    },
    /// λ of the Erdős–Rényi initialisation must be positive and finite.
    #[error("Erdős–Rényi λ must be a positive finite number, got {0}")]
    InvalidLambda(f64),
    /// A target sparsity must lie in [0, 1).
    #[error("sparsity must lie in [0, 1) (the fraction of absent connections), got {0}")]
    InvalidSparsity(f64),
    /// A layer or buffer dimension is zero.
    #[error("{0} must be at least 1")]
    ZeroDimension(&'static str),
    /// Two shapes that must agree do not.
    #[error("shape mismatch for {what}: expected {expected}, got {got}")]
    ShapeMismatch {
        /// What was being checked.
        what: &'static str,
        /// The size required.
        expected: usize,
        /// The size given.
        got: usize,
    },
    /// The tanh output bound must be positive and finite.
    #[error("output bound must be positive and finite, got {0}")]
    InvalidBound(f32),
    /// An optimiser hyper-parameter is outside its valid range.
    #[error("invalid Adam setting: {0}")]
    InvalidAdam(&'static str),
    /// A remap refers to an old position that does not exist.
    #[error("remap entry {index} points at old position {source_index}, but only {old_len} exist")]
    RemapOutOfRange {
        /// Position in the new layout.
        index: usize,
        /// The old position named.
        source_index: usize,
        /// Old length.
        old_len: usize,
    },
    /// A sprs matrix in CSC storage was given where CSR is required.
    #[error("expected a CSR matrix, got CSC storage")]
    NotCsr,
    /// A kernel implementation was named that does not exist or this CPU cannot run.
    #[error("kernels: {0}")]
    Kernels(String),
    /// The slots given to [`crate::Csr::splice`] for removal are not strictly increasing stored
    /// slots.
    #[error("splice: {0}")]
    InvalidSplice(&'static str),
}

/// Shorthand for results carrying [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that `got == expected`, naming `what` in the error.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            what,
            expected,
            got,
        })
    }
}

/// Checks that every value of `values` is finite.
pub(crate) fn check_finite(what: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(index) => Err(Error::NonFinite {
            what,
            index,
            value: values[index],
        }),
    }
}
