//! Realigning per-connection state (gradients, optimiser moments) when a topology changes.
//!
//! State is stored in the same order as a layer's CSR values. When the set of live connections
//! changes, a [`Remap`] says, for every slot of the new layout, which old slot it continues (or
//! that it is a new connection, whose state starts at zero).

use crate::csr::{ColIndex, Csr};
use crate::error::{Error, Result};

/// Maps each slot of a new per-connection layout to its slot in the old one, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remap {
    source: Vec<u32>,
    old_len: usize,
}

impl Remap {
    /// Marks a slot with no old counterpart.
    const NEW: u32 = u32::MAX;

    /// Builds a remap from `source[i]` = old slot of new slot `i` (`None`: a new connection).
    pub fn new(source: &[Option<usize>], old_len: usize) -> Result<Self> {
        let source = source
            .iter()
            .enumerate()
            .map(|(index, s)| match *s {
                None => Ok(Self::NEW),
                Some(src) if src < old_len && src < Self::NEW as usize => Ok(src as u32),
                Some(src) => Err(Error::RemapOutOfRange {
                    index,
                    source_index: src,
                    old_len,
                }),
            })
            .collect::<Result<_>>()?;
        Ok(Self { source, old_len })
    }

    /// The remap from `old` to `new` by position: a connection present in both keeps its state.
    /// One merge per row, O(nnz_old + nnz_new).
    pub fn between<I: ColIndex>(old: &Csr<I>, new: &Csr<I>) -> Result<Self> {
        if old.n_rows() != new.n_rows() {
            return Err(Error::ShapeMismatch {
                what: "remap rows",
                expected: old.n_rows(),
                got: new.n_rows(),
            });
        }
        let mut source = Vec::with_capacity(new.nnz());
        for row in 0..new.n_rows() {
            let (old_cols, _) = old.row(row);
            let old_base = old.row_ptr()[row] as usize;
            let (new_cols, _) = new.row(row);
            let mut i = 0;
            for &c in new_cols {
                while i < old_cols.len() && old_cols[i] < c {
                    i += 1;
                }
                if i < old_cols.len() && old_cols[i] == c {
                    source.push((old_base + i) as u32);
                } else {
                    source.push(Self::NEW);
                }
            }
        }
        Ok(Self {
            source,
            old_len: old.nnz(),
        })
    }

    /// Length of the new layout.
    pub fn new_len(&self) -> usize {
        self.source.len()
    }

    /// Length of the old layout this remap reads from.
    pub fn old_len(&self) -> usize {
        self.old_len
    }

    /// Old slot of new slot `i`, or `None` for a new connection.
    pub fn source(&self, i: usize) -> Option<usize> {
        match self.source[i] {
            Self::NEW => None,
            s => Some(s as usize),
        }
    }

    /// Number of new connections (slots with no old counterpart).
    pub fn num_new(&self) -> usize {
        self.source.iter().filter(|&&s| s == Self::NEW).count()
    }

    /// Rewrites `state` (old layout) into the new layout; new slots get `0.0`.
    pub fn apply(&self, state: &mut Vec<f32>) -> Result<()> {
        self.apply_with(state, 0.0)
    }

    /// Rewrites `state` (old layout) into the new layout; new slots get `fresh`.
    pub fn apply_with<T: Copy>(&self, state: &mut Vec<T>, fresh: T) -> Result<()> {
        if state.len() != self.old_len {
            return Err(Error::ShapeMismatch {
                what: "remapped state length",
                expected: self.old_len,
                got: state.len(),
            });
        }
        let remapped = self
            .source
            .iter()
            .map(|&s| {
                if s == Self::NEW {
                    fresh
                } else {
                    state[s as usize]
                }
            })
            .collect();
        *state = remapped;
        Ok(())
    }
}
